//! The request view rules are evaluated against, and the request canonicalisation Traefik
//! applies before matching (canonical host, routing path, query parsing).

use std::borrow::Cow;
use std::net::IpAddr;

/// A plain view of the parts of a request that rules look at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Request method, as received (case-sensitive).
    pub method: &'a str,
    /// Raw Host header (or `:authority`), including any port.
    pub host: &'a str,
    /// Raw escaped path (no query).
    pub path: &'a str,
    /// Raw query string without the `?`, if any.
    pub query: Option<&'a str>,
    /// Header lines as (name, value).
    pub headers: &'a [(&'a str, &'a str)],
    /// The peer address (ClientIP never reads X-Forwarded-For).
    pub client_ip: Option<IpAddr>,
}

/// Traefik's canonical host: the port stripped (IPv6 brackets removed), trimmed and lowercased.
/// A trailing dot is kept (see [`host_key`]).
pub fn canonical_host(raw: &str) -> String {
    host_without_port(raw).to_lowercase()
}

/// Exactly [`canonical_host`], borrowing from `raw` when lowercasing would not change anything
/// (ASCII without uppercase letters), which is the common case of rule evaluation.
pub(crate) fn canonical_host_cow(raw: &str) -> Cow<'_, str> {
    let h = host_without_port(raw);
    if h.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(h)
    } else {
        Cow::Owned(h.to_lowercase())
    }
}

/// The host part of a raw Host header: trimmed, the port stripped (IPv6 brackets removed),
/// trimmed — the slicing every host comparison starts from (case is left alone).
pub fn host_without_port(raw: &str) -> &str {
    let h = raw.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        match rest.find(']') {
            Some(end) => &rest[..end],
            None => h,
        }
    } else {
        match h.rfind(':') {
            Some(i) if !h[..i].contains(':') => &h[..i],
            _ => h,
        }
    };
    h.trim()
}

/// The key to look a request up in a host index built from
/// [`super::CompiledRule::host_constraint`]: the canonical host without a trailing dot.
pub fn host_key(raw: &str) -> String {
    let mut h = canonical_host(raw);
    if h.ends_with('.') {
        h.pop();
    }
    h
}

/// Characters that stay percent-encoded in the routing path (Traefik's `reservedCharacters`).
const RESERVED: &[u8] = b":/?#[]@!$&'()*+,;=%";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The routing path: the escaped path with non-reserved `%XX` sequences decoded and reserved
/// ones (`%2F %3F %23 %25 %3A …`) kept encoded, so ``PathPrefix(`/foo bar`)`` matches
/// `/foo%20bar` while `%2F` never turns into a path separator. `Err(())` on a malformed `%`
/// sequence (Traefik answers 400).
#[allow(clippy::result_unit_err)]
pub fn routing_path(raw: &str) -> Result<Cow<'_, str>, ()> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    match decode_path(raw, true)? {
        Ok(s) => Ok(Cow::Owned(s)),
        // Decoding produced invalid UTF-8: decode only ASCII sequences, keep the rest encoded.
        Err(()) => match decode_path(raw, false)? {
            Ok(s) => Ok(Cow::Owned(s)),
            Err(()) => Err(()),
        },
    }
}

/// Outer error: malformed escape. Inner error: decoded bytes are not UTF-8.
#[allow(clippy::type_complexity)]
fn decode_path(raw: &str, decode_high: bool) -> Result<Result<String, ()>, ()> {
    let b = raw.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        if i + 2 >= b.len() {
            return Err(());
        }
        let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) else {
            return Err(());
        };
        let v = h * 16 + l;
        if RESERVED.contains(&v) || (!decode_high && v >= 0x80) {
            out.extend_from_slice(&b[i..i + 3]);
        } else {
            out.push(v);
        }
        i += 3;
    }
    Ok(String::from_utf8(out).map_err(|_| ()))
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` decoded; `None` on a malformed escape.
fn query_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let h = hex(*b.get(i + 1)?)?;
                let l = hex(*b.get(i + 2)?)?;
                out.push(h * 16 + l);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Parse a raw query string like Go's `url.ParseQuery` (as used by `req.URL.Query()`): pairs
/// separated by `&`, key and value unescaped, pairs containing `;` or a bad escape dropped.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in raw.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) {
            out.push((k, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_hosts() {
        assert_eq!(canonical_host("Example.COM:8080"), "example.com");
        assert_eq!(canonical_host(" a.com "), "a.com");
        assert_eq!(canonical_host("[::1]:443"), "::1");
        assert_eq!(canonical_host("[::1]"), "::1");
        assert_eq!(canonical_host("::1"), "::1");
        assert_eq!(canonical_host("a.com."), "a.com.");
        assert_eq!(host_key("A.com.:80"), "a.com");
        assert_eq!(canonical_host(""), "");
    }

    #[test]
    fn canonical_host_borrows_when_already_canonical() {
        // (raw, borrowed)
        for (raw, borrowed) in [
            ("a.com", true),
            ("a.com.", true),
            (" a.com:80 ", true),
            ("[::1]:443", true),
            ("[fe80::1", true),
            ("::1", true),
            ("", true),
            // Only the host part matters: the NBSP is trimmed.
            ("a\u{a0}", true),
            ("A.com", false),
            ("a.COM.:8080", false),
            ("\u{212A}.com", false),
            ("\u{130}x", false),
            ("é.com", false),
            ("Ä.com:1", false),
        ] {
            let cow = canonical_host_cow(raw);
            assert_eq!(cow, canonical_host(raw), "{raw:?}");
            assert_eq!(matches!(cow, Cow::Borrowed(_)), borrowed, "{raw:?}");
        }
        // Random strings over the characters that matter to canonicalisation.
        const ALPHABET: &[&str] = &[
            "a", "Z", ".", ":", ":", "[", "]", " ", "\t", "1", "\u{212A}", "\u{130}", "\u{a0}",
            "\u{3a3}", "\u{2000}",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 10) as usize;
            let mut x = state;
            let raw: String = (0..len)
                .map(|_| {
                    x = x.rotate_left(7) ^ 0x9e37_79b9;
                    ALPHABET[(x % ALPHABET.len() as u64) as usize]
                })
                .collect();
            assert_eq!(canonical_host_cow(&raw), canonical_host(&raw), "{raw:?}");
        }
    }

    #[test]
    fn routing_paths() {
        assert_eq!(routing_path("/a/b").as_deref(), Ok("/a/b"));
        assert_eq!(routing_path("/foo%20bar").as_deref(), Ok("/foo bar"));
        assert_eq!(routing_path("/a%2Fb").as_deref(), Ok("/a%2Fb"));
        assert_eq!(routing_path("/a%2fb").as_deref(), Ok("/a%2fb"));
        assert_eq!(routing_path("/a%25b").as_deref(), Ok("/a%25b"));
        assert_eq!(routing_path("/%3Fx%23").as_deref(), Ok("/%3Fx%23"));
        assert_eq!(routing_path("/%41%62").as_deref(), Ok("/Ab"));
        assert_eq!(routing_path("/caf%C3%A9").as_deref(), Ok("/café"));
        assert_eq!(routing_path("/x%FF").as_deref(), Ok("/x%FF"));
        assert_eq!(routing_path("/a%"), Err(()));
        assert_eq!(routing_path("/a%4"), Err(()));
        assert_eq!(routing_path("/a%zz"), Err(()));
    }

    #[test]
    fn queries() {
        assert_eq!(
            parse_query("a=1&b=x+y&c=%41&d&&e=&bad=%zz&s;=1"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x y".to_string()),
                ("c".to_string(), "A".to_string()),
                ("d".to_string(), String::new()),
                ("e".to_string(), String::new()),
            ]
        );
    }
}
