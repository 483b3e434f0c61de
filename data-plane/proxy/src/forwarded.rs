//! Forwarded headers, hop-by-hop headers and `X-Request-Id` (Traefik's `forwardedheaders`
//! middleware plus Go's `httputil.ReverseProxy` header handling).
//!
//! **Entry point stage** ([`entrypoint_headers`], before routing, so rules see the result):
//! if the client's IP is not in the entry point's trusted IPs, every managed header
//! (`X-Forwarded-{For,Proto,Host,Port,Server,Prefix,Method,Uri,Tls-Client-Cert[-Info]}`,
//! `X-Real-Ip`, `X-Scheme`, and their `_` spellings) is removed. Then, when absent,
//! `X-Real-Ip` (client IP), `X-Forwarded-Proto` (`http`, or `ws` for a WebSocket upgrade),
//! `X-Forwarded-Port` (port of the Host, else 443 for `https`/`wss`, else 80) and
//! `X-Forwarded-Host` (the request host) are set; `X-Forwarded-Server` is set to the proxy id.
//!
//! **Forwarding stage** ([`append_xff`], [`remove_request_hop_by_hop`] and
//! [`remove_hop_by_hop`], [`ensure_request_id`]):
//! `X-Forwarded-For` gets the client IP appended to the (trusted) prior values; headers named
//! in `Connection` and the fixed hop-by-hop list (`Connection`, `Proxy-Connection`,
//! `Keep-Alive`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Transfer-Encoding`,
//! `Upgrade`) are removed from requests and responses; `TE: trailers` is kept; for an upgrade
//! `Connection: Upgrade` and `Upgrade` are put back. Unlike Go, `Trailer` is kept: hyper only
//! writes HTTP/1.1 trailers that a `Trailer` header announces. `X-Request-Id` (32 random hex
//! digits) is added when absent.
//!
//! Everything is done on the `HeaderMap` in place; the scan for managed headers is one pass
//! over the names, so a request without any pays no removals.

use std::net::IpAddr;

use http::header::{Entry, HeaderMap, HeaderName, HeaderValue, CONNECTION, TE, UPGRADE};
use ipnet::IpNet;

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub(crate) static X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
pub(crate) static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
pub(crate) static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static X_REPLACED_PATH: HeaderName = HeaderName::from_static("x-replaced-path");

/// Lowercase names (dash spelling) of the headers managed by the forwarded-headers stage.
const MANAGED: [&str; 12] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-prefix",
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
    "x-real-ip",
    "x-scheme",
];

/// Whether `name` (lowercase, as stored by `http`) is managed, in `-` or `_` spelling.
fn is_managed(name: &str) -> bool {
    let b = name.as_bytes();
    if !(b.starts_with(b"x-") || b.starts_with(b"x_")) {
        return false;
    }
    MANAGED.iter().any(|m| {
        m.len() == b.len()
            && m.bytes()
                .zip(b.iter())
                .all(|(x, &y)| x == y || (x == b'-' && y == b'_'))
    })
}

/// IPv4-mapped IPv6 addresses are compared as IPv4.
pub(crate) fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is in one of the trusted networks.
pub(crate) fn is_trusted(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = unmap(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// Whether any value line of `name` contains the comma-separated `token` (case-insensitive).
pub(crate) fn contains_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The port of a Host value (`a.com:8080` → `8080`; `[::1]:80` → `80`), if any.
fn host_port(host: &[u8]) -> Option<&[u8]> {
    let i = host.iter().rposition(|&b| b == b':')?;
    if host.first() == Some(&b'[') {
        // IPv6 literal: the port follows the closing bracket.
        if host.get(i.checked_sub(1)?) != Some(&b']') {
            return None;
        }
    } else if host[..i].contains(&b':') {
        return None;
    }
    let p = &host[i + 1..];
    (!p.is_empty()).then_some(p)
}

/// The request's own `X-Forwarded-Proto`: `http`/`https`, or `ws`/`wss` for a WebSocket
/// upgrade (read with the head's other fields by the connection).
pub(crate) fn proto_name(websocket: bool, tls: bool) -> &'static str {
    match (websocket, tls) {
        (false, false) => "http",
        (false, true) => "https",
        (true, false) => "ws",
        (true, true) => "wss",
    }
}

/// The entry point stage (see the module documentation); `proto` is [`proto_name`].
pub(crate) fn entrypoint_headers(
    headers: &mut HeaderMap,
    host: Option<&HeaderValue>,
    trusted: bool,
    client_ip: &HeaderValue,
    server: Option<&HeaderValue>,
    ep_port: Option<&HeaderValue>,
    proto: &'static str,
) {
    if !trusted && headers.keys().any(|k| is_managed(k.as_str())) {
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|k| is_managed(k.as_str()))
            .cloned()
            .collect();
        for n in names {
            headers.remove(n);
        }
    }
    // From an untrusted client no managed header is left: ours are appended without looking
    // for a prior value. From a trusted one, one lookup each (`entry`), not a `contains_key`
    // and then an `insert`.
    let absent = !trusted;
    set_default(headers, absent, &X_REAL_IP, || client_ip.clone());
    let ours = || HeaderValue::from_static(proto);
    let proto = if absent {
        let p = ours();
        headers.append(&X_FORWARDED_PROTO, p.clone());
        p
    } else {
        match headers.entry(&X_FORWARDED_PROTO) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(e) => e.insert(ours()).clone(),
        }
    };
    set_default(headers, absent, &X_FORWARDED_PORT, || {
        let port = match host.and_then(|h| host_port(h.as_bytes())) {
            // The common case (the Host names the entry point's own port) does not allocate.
            Some(p) => match ep_port {
                Some(ep) if ep.as_bytes() == p => Some(ep.clone()),
                _ => HeaderValue::from_bytes(p).ok(),
            },
            None => None,
        };
        port.unwrap_or_else(|| {
            let tls = proto.as_bytes() == b"https" || proto.as_bytes() == b"wss";
            HeaderValue::from_static(if tls { "443" } else { "80" })
        })
    });
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        set_default(headers, absent, &X_FORWARDED_HOST, || h.clone());
    }
    if let Some(s) = server {
        if absent {
            headers.append(&X_FORWARDED_SERVER, s.clone());
        } else {
            headers.insert(&X_FORWARDED_SERVER, s.clone());
        }
    }
}

/// Set `name` to `make()` unless it has a value; `absent` says it has none for sure (then it
/// is appended without a lookup first).
fn set_default(
    headers: &mut HeaderMap,
    absent: bool,
    name: &'static HeaderName,
    make: impl FnOnce() -> HeaderValue,
) {
    if absent {
        headers.append(name, make());
    } else if let Entry::Vacant(e) = headers.entry(name) {
        e.insert(make());
    }
}

/// Append the client IP to `X-Forwarded-For` (Go's ReverseProxy: prior values joined with
/// `", "`).
pub(crate) fn append_xff(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    // One lookup (`entry`): usually there is no prior value.
    let mut e = match headers.entry(&X_FORWARDED_FOR) {
        Entry::Vacant(e) => {
            e.insert(client_ip.clone());
            return;
        }
        Entry::Occupied(e) => e,
    };
    let mut prior = e.iter();
    let Some(first) = prior.next() else {
        e.insert(client_ip.clone());
        return;
    };
    let mut v: Vec<u8> = Vec::with_capacity(first.len() + client_ip.len() + 8);
    v.extend_from_slice(first.as_bytes());
    for p in prior {
        v.extend_from_slice(b", ");
        v.extend_from_slice(p.as_bytes());
    }
    v.extend_from_slice(b", ");
    v.extend_from_slice(client_ip.as_bytes());
    if let Ok(hv) = HeaderValue::from_bytes(&v) {
        // Replaces every prior value.
        e.insert(hv);
    }
}

/// The fixed hop-by-hop headers (Go's `hopHeaders`, less `Trailer`).
static FIXED_HOPS: [HeaderName; 8] = [
    CONNECTION,
    TE,
    http::header::TRANSFER_ENCODING,
    UPGRADE,
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];
/// Bits of `Connection` and `TE` in a mask of [`FIXED_HOPS`].
const CONNECTION_BIT: u8 = 1;
const TE_BIT: u8 = 1 << 1;
const UPGRADE_BIT: u8 = 1 << 3;
/// The usual token of `Connection: close` (Go removes a header of that name too).
static CLOSE: HeaderName = HeaderName::from_static("close");

/// [`FIXED_HOPS`] as lowercase bytes.
const FIXED_HOP_NAMES: [&[u8]; 8] = [
    b"connection",
    b"te",
    b"transfer-encoding",
    b"upgrade",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"keep-alive",
    b"proxy-connection",
];

/// The candidate index in [`FIXED_HOPS`] of a header name, from its length and first byte.
fn hop_slot(name: &[u8]) -> Option<usize> {
    Some(match (name.len(), name.first()? | 0x20) {
        (10, b'c') => 0,
        (2, b't') => 1,
        (17, b't') => 2,
        (7, b'u') => 3,
        (18, b'p') => 4,
        (19, b'p') => 5,
        (10, b'k') => 6,
        (16, b'p') => 7,
        _ => return None,
    })
}

/// The index in [`FIXED_HOPS`] of a header name (any ASCII case): dispatched on the length
/// and first byte, so a name that is not hop-by-hop costs a few comparisons.
fn hop_index(name: &[u8]) -> Option<usize> {
    let i = hop_slot(name)?;
    FIXED_HOP_NAMES
        .get(i)
        .filter(|h| eq_lower(name, h))
        .map(|_| i)
}

/// `a` equals `lower` (lowercase) in any ASCII case. The usual all-lowercase token (e.g.
/// `Connection: keep-alive`) is one plain comparison; only another case is compared byte by
/// byte (`eq_ignore_ascii_case` lowercases both sides of every byte).
fn eq_lower(a: &[u8], lower: &[u8]) -> bool {
    a == lower || a.eq_ignore_ascii_case(lower)
}

/// [`hop_index`] of a map key (stored lowercase: compared as bytes).
fn hop_index_of_key(name: &HeaderName) -> Option<usize> {
    let name = name.as_str().as_bytes();
    let i = hop_slot(name)?;
    FIXED_HOP_NAMES.get(i).filter(|h| **h == name).map(|_| i)
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(v: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    v.as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Remove the header a `Connection` token names. `&str` lookups lowercase on the stack: no
/// `HeaderName` is allocated; a name that is not valid UTF-8 names no header.
fn remove_named(headers: &mut HeaderMap, token: &[u8]) {
    if eq_lower(token, b"close") {
        headers.remove(&CLOSE);
    } else if let Ok(name) = std::str::from_utf8(token) {
        headers.remove(name);
    }
}

/// Removes the headers the `Connection` header names (not `Connection` itself). Allocates
/// nothing.
pub(crate) fn remove_connection_named(headers: &mut HeaderMap) {
    let mut i = 0;
    // Values are read by index (a cheap clone) because removing needs the map mutably.
    while let Some(v) = headers.get_all(CONNECTION).iter().nth(i).cloned() {
        i += 1;
        for t in tokens(&v) {
            // `Connection` stays (and readable for its next values).
            if !t.eq_ignore_ascii_case(b"connection") {
                remove_named(headers, t);
            }
        }
    }
}

/// Remove hop-by-hop headers (see the module documentation). `TE: trailers` is kept and,
/// when `upgrade` is given, `Connection: Upgrade` + `Upgrade` are put back.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    strip_hop_by_hop(headers, false);
    if let Some(u) = upgrade {
        put_upgrade(headers, u);
    }
}

/// [`remove_hop_by_hop`] of a request to a backend. When `allow_upgrade` (HTTP/1) and the
/// request asks for one (`Connection` has the token `upgrade` and there is an `Upgrade`
/// field), `Connection: Upgrade` + the first `Upgrade` value are put back and that value is
/// returned (the protocol being upgraded to). The upgrade is found in the same pass that
/// removes the headers: no lookup when the request has no `Connection` field.
pub(crate) fn remove_request_hop_by_hop(
    headers: &mut HeaderMap,
    allow_upgrade: bool,
) -> Option<HeaderValue> {
    let upgrade = strip_hop_by_hop(headers, allow_upgrade);
    if let Some(u) = &upgrade {
        put_upgrade(headers, u.clone());
    }
    upgrade
}

fn put_upgrade(headers: &mut HeaderMap, u: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, u);
}

/// Runs on every request and response: one pass over the names finds the fixed hop-by-hop
/// headers present (a bit mask), `Connection` is taken out in one lookup, and the headers its
/// tokens name are removed unless they are fixed ones (removed anyway). Allocates nothing
/// unless `Connection` has more than one line. With `find_upgrade`, returns the first
/// `Upgrade` value when `Connection` has the token `upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, find_upgrade: bool) -> Option<HeaderValue> {
    let mut mask = 0u8;
    for k in headers.keys() {
        if let Some(i) = hop_index_of_key(k) {
            mask |= 1 << i;
        }
    }
    if mask == 0 {
        return None;
    }
    let mut upgrade = None;
    let te_trailers = mask & TE_BIT != 0 && contains_token(headers, &TE, "trailers");
    if mask & CONNECTION_BIT != 0 {
        let (mut first, mut more) = (None, Vec::new());
        if let Entry::Occupied(e) = headers.entry(CONNECTION) {
            let mut values = e.remove_entry_mult().1;
            first = values.next();
            more.extend(values);
        }
        mask &= !CONNECTION_BIT;
        if find_upgrade
            && mask & UPGRADE_BIT != 0
            && first
                .iter()
                .chain(&more)
                .any(|v| tokens(v).any(|t| eq_lower(t, b"upgrade")))
        {
            upgrade = headers.get(UPGRADE).cloned();
        }
        for v in first.iter().chain(&more) {
            for t in tokens(v).filter(|t| hop_index(t).is_none()) {
                remove_named(headers, t);
            }
        }
    }
    for (i, name) in FIXED_HOPS.iter().enumerate() {
        if mask & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    upgrade
}

/// Bytes of request ids carved per allocation (16 ids): an id is a slice of a shared chunk,
/// so a request does not pay a `malloc`/`free` for it (a chunk lives until its last id is
/// dropped).
const ID_CHUNK: usize = 32 * 16;

thread_local! {
    static ID_BUF: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
}

/// Add `X-Request-Id` (32 random hex digits) when absent.
pub(crate) fn ensure_request_id(headers: &mut HeaderMap) {
    // One lookup (`entry`), not a `contains_key` and then an `insert`.
    let Entry::Vacant(e) = headers.entry(&X_REQUEST_ID) else {
        return;
    };
    let mut hex = [0u8; 32];
    let (a, b) = (crate::util::rand_u64(), crate::util::rand_u64());
    crate::util::hex_u64(a, &mut hex[..16]);
    crate::util::hex_u64(b, &mut hex[16..]);
    let id = ID_BUF.with_borrow_mut(|buf| {
        if buf.capacity() - buf.len() < hex.len() {
            *buf = bytes::BytesMut::with_capacity(ID_CHUNK);
        }
        buf.extend_from_slice(&hex);
        buf.split().freeze()
    });
    if let Ok(v) = HeaderValue::from_maybe_shared(id) {
        e.insert(v);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn get<'a>(h: &'a HeaderMap, k: &str) -> Vec<&'a str> {
        h.get_all(k).iter().map(|v| v.to_str().unwrap()).collect()
    }

    /// Connection tokens in any case: fixed hop names are recognised (and not looked up as
    /// other headers), `upgrade` and `close` too.
    #[test]
    fn connection_tokens_in_any_case() {
        for (t, i) in [
            ("keep-alive", Some(6)),
            ("Keep-Alive", Some(6)),
            ("KEEP-ALIVE", Some(6)),
            ("keep-alivf", None),
            ("Upgrade", Some(3)),
            ("x-keep-alive", None),
        ] {
            assert_eq!(hop_index(t.as_bytes()), i, "{t}");
        }
        assert!(eq_lower(b"close", b"close") && eq_lower(b"ClOsE", b"close"));
        assert!(!eq_lower(b"closed", b"close") && !eq_lower(b"clos", b"close"));
        let mut h = hm(&[
            ("connection", "Keep-Alive, X-A, CLOSE"),
            ("keep-alive", "timeout=5"),
            ("x-a", "1"),
            ("close", "1"),
            ("x-b", "2"),
        ]);
        assert_eq!(remove_request_hop_by_hop(&mut h, true), None);
        assert_eq!(h.len(), 1);
        assert_eq!(get(&h, "x-b"), ["2"]);
        let mut h = hm(&[("connection", "UPGRADE"), ("upgrade", "websocket")]);
        assert_eq!(
            remove_request_hop_by_hop(&mut h, true)
                .as_ref()
                .map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
    }

    #[test]
    fn trust() {
        let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        assert!(is_trusted(&nets, "10.1.2.3".parse().unwrap()));
        assert!(is_trusted(&nets, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(is_trusted(&nets, "::1".parse().unwrap()));
        assert!(!is_trusted(&nets, "11.0.0.1".parse().unwrap()));
        assert!(!is_trusted(&[], "10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn untrusted_headers_are_replaced() {
        let mut h = hm(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.com"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-prefix", "/evil"),
            ("x-other", "kept"),
        ]);
        let host = HeaderValue::from_static("a.com:8080");
        let ip = HeaderValue::from_static("1.2.3.4");
        let server = HeaderValue::from_static("proxy-1");
        entrypoint_headers(&mut h, Some(&host), false, &ip, Some(&server), None, "http");
        append_xff(&mut h, &ip);
        assert_eq!(get(&h, "x-forwarded-for"), ["1.2.3.4"]);
        assert_eq!(get(&h, "x-forwarded-proto"), ["http"]);
        assert_eq!(get(&h, "x-forwarded-host"), ["a.com:8080"]);
        assert_eq!(get(&h, "x-forwarded-port"), ["8080"]);
        assert_eq!(get(&h, "x-forwarded-server"), ["proxy-1"]);
        assert_eq!(get(&h, "x-real-ip"), ["1.2.3.4"]);
        assert!(get(&h, "x_forwarded_for").is_empty());
        assert!(get(&h, "x-forwarded-prefix").is_empty());
        assert_eq!(get(&h, "x-other"), ["kept"]);
    }

    #[test]
    fn trusted_headers_are_honoured() {
        let mut h = hm(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "front.com"),
            ("x-real-ip", "6.6.6.6"),
        ]);
        let host = HeaderValue::from_static("a.com");
        let ip = HeaderValue::from_static("10.0.0.1");
        entrypoint_headers(&mut h, Some(&host), true, &ip, None, None, "http");
        append_xff(&mut h, &ip);
        assert_eq!(get(&h, "x-forwarded-for"), ["6.6.6.6, 7.7.7.7, 10.0.0.1"]);
        assert_eq!(get(&h, "x-forwarded-proto"), ["https"]);
        assert_eq!(get(&h, "x-forwarded-host"), ["front.com"]);
        // No port in the host and the (trusted) proto is https.
        assert_eq!(get(&h, "x-forwarded-port"), ["443"]);
        assert_eq!(get(&h, "x-real-ip"), ["6.6.6.6"]);
        assert!(get(&h, "x-forwarded-server").is_empty());
    }

    #[test]
    fn websocket_proto_and_ports() {
        let mut h = hm(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        let ip = HeaderValue::from_static("1.2.3.4");
        entrypoint_headers(
            &mut h,
            None,
            false,
            &ip,
            None,
            None,
            proto_name(true, false),
        );
        assert_eq!(get(&h, "x-forwarded-proto"), ["ws"]);
        assert_eq!(get(&h, "x-forwarded-port"), ["80"]);
        assert!(get(&h, "x-forwarded-host").is_empty());
        assert_eq!(host_port(b"[::1]:9000"), Some(&b"9000"[..]));
        assert_eq!(host_port(b"[::1]"), None);
        assert_eq!(host_port(b"::1"), None);
        assert_eq!(host_port(b"a.com:"), None);
    }

    #[test]
    fn hop_by_hop() {
        let mut h = hm(&[
            ("connection", "close, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "gzip, trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic x"),
            ("trailer", "grpc-status"),
            ("x-keep", "1"),
        ]);
        remove_hop_by_hop(&mut h, None);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["te", "trailer", "x-keep"]);
        assert_eq!(get(&h, "te"), ["trailers"]);

        let mut h = hm(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
        ]);
        let h0 = h.clone();
        let up = remove_request_hop_by_hop(&mut h, true);
        assert_eq!(up.as_ref().map(|v| v.as_bytes()), Some(&b"websocket"[..]));
        assert_eq!(get(&h, "connection"), ["Upgrade"]);
        assert_eq!(get(&h, "upgrade"), ["websocket"]);
        assert!(get(&h, "te").is_empty());
        // HTTP/2 (no upgrade allowed), or `Connection` without the `upgrade` token: removed.
        for (mut h, allow) in [
            (h0, false),
            (hm(&[("connection", "x"), ("upgrade", "ws")]), true),
        ] {
            assert!(remove_request_hop_by_hop(&mut h, allow).is_none());
            assert!(get(&h, "connection").is_empty() && get(&h, "upgrade").is_empty());
        }
        // `upgrade` without an `Upgrade` field: nothing to put back.
        let mut h = hm(&[("connection", "keep-alive, upgrade")]);
        assert!(remove_request_hop_by_hop(&mut h, true).is_none());
        assert!(h.is_empty());

        // Several `Connection` lines, any case; `close` names a header too (as in Go).
        let mut h = hm(&[
            ("connection", "Keep-Alive"),
            ("connection", " X-A ,,CLOSE"),
            ("keep-alive", "timeout=5"),
            ("x-a", "1"),
            ("close", "1"),
            ("x-keep", "1"),
        ]);
        remove_hop_by_hop(&mut h, None);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-keep"]);

        // Only the tokens named: `Connection` itself stays for the caller.
        let mut h = hm(&[
            ("connection", "x-a, Connection"),
            ("x-a", "1"),
            ("x-b", "1"),
        ]);
        remove_connection_named(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["connection", "x-b"]);

        // Nothing to remove: untouched.
        let mut h = hm(&[("accept", "*/*")]);
        remove_hop_by_hop(&mut h, None);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn request_id() {
        let mut h = HeaderMap::new();
        ensure_request_id(&mut h);
        let id = h[&X_REQUEST_ID].to_str().unwrap().to_string();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        ensure_request_id(&mut h);
        assert_eq!(h[&X_REQUEST_ID], id.as_str());
        let mut h2 = HeaderMap::new();
        ensure_request_id(&mut h2);
        assert_ne!(h2[&X_REQUEST_ID], id.as_str());
        // Ids carved from shared chunks stay distinct and well-formed across chunk refills.
        let ids: std::collections::HashSet<String> = (0..100)
            .map(|_| {
                let mut h = HeaderMap::new();
                ensure_request_id(&mut h);
                h[&X_REQUEST_ID].to_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids.len(), 100);
        assert!(ids
            .iter()
            .all(|i| i.len() == 32 && i.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))));
    }
}
