//! The supported middlewares, compiled once per config version (regexps, header names and
//! values, redirect templates) and applied per request with Traefik v3 semantics:
//!
//! * `addPrefix`: path = prefix + path.
//! * `stripPrefix`: the first configured prefix (in order) that the *decoded* path starts with
//!   is removed from the escaped path (a leading `/` is ensured; `forceSlash` trims one extra
//!   slash like Traefik); `X-Forwarded-Prefix` is added with the prefix.
//! * `stripPrefixRegex`: the first regexp whose first match is a prefix of the decoded path;
//!   that text is stripped and added as `X-Forwarded-Prefix`.
//! * `replacePath`: the escaped path goes to `X-Replaced-Path`, the path becomes `path`.
//! * `replacePathRegex`: when the regexp matches the escaped path and the replacement is
//!   not empty, `X-Replaced-Path` is set and the path becomes `regex.replace_all(path,
//!   replacement)` (`$1`, `${name}`); a result that does not unescape is a 400.
//! * `headers`: `customRequestHeaders` set (an empty value removes; `Host` sets the request
//!   host; an empty `X-Forwarded-For` suppresses the proxy's own `X-Forwarded-For`), and
//!   `customResponseHeaders` set or removed on every response passing back through the
//!   middleware, including responses the proxy generates behind it (502/503/…).
//! * `redirectScheme` / `redirectRegex`: the request URL is rebuilt like Traefik's
//!   `clientRequestURL` / `rawURL`, rewritten with the regexp, and when it changed the client
//!   gets 302 (GET) / 307, or 301 / 308 when `permanent`, with `Location` and the status text
//!   as body. When it did not change the request continues with the rewritten URL.
//! * `chain`: flattened into the router's list at compile time.
//!
//! Response header modifications are applied in reverse order (innermost first), so an outer
//! middleware's value wins, as with Go's nested handlers. A redirect short-circuits: only the
//! middlewares before it see its response.
//!
//! Paths are handled in escaped form (`Uri::path`); a path produced by a middleware has any
//! character that is not allowed in a URI path percent-encoded (Go's `EscapedPath`).
//!
//! No rewrite can bring back a dot segment the entry point removed
//! ([`switchyard_config::paths::check_rewrite`], 400): `stripPrefix`, `stripPrefixRegex` and
//! `replacePathRegex` refuse a result that cleaning would change (Traefik's check, so
//! `/api../x` stripped of `/api` is refused rather than sent as `/../x`), `addPrefix` and
//! `replacePath` one with a `.` or `..` segment; `%2e` counts as a dot.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST, LOCATION};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Response, StatusCode, Uri};
use regex::Regex;
use switchyard_config::paths::{check_rewrite, RewriteCheck};
use switchyard_config::rules::compile_regex;
use switchyard_config::{Middleware as MwConfig, StrOrInt};

use crate::body::ProxyBody;
use crate::errors::ErrorKind;
use crate::forwarded::{X_FORWARDED_FOR, X_FORWARDED_PREFIX, X_FORWARDED_PROTO, X_REPLACED_PATH};
use crate::util::resolve_ref;

/// A compiled middleware.
#[derive(Debug)]
pub(crate) enum Mw {
    AddPrefix(String),
    StripPrefix {
        prefixes: Vec<String>,
        force_slash: bool,
    },
    StripPrefixRegex(Vec<Regex>),
    ReplacePath(String),
    ReplacePathRegex {
        regex: Regex,
        replacement: String,
    },
    Headers {
        request: Vec<HeaderOp>,
        host: Option<HeaderValue>,
        suppress_xff: bool,
        response: Vec<HeaderOp>,
    },
    Redirect {
        kind: RedirectKind,
        regex: Regex,
        replacement: String,
        permanent: bool,
    },
}

/// Set (`Some`) or remove (`None`) a header.
#[derive(Debug, Clone)]
pub(crate) struct HeaderOp {
    pub name: HeaderName,
    pub value: Option<HeaderValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedirectKind {
    Scheme,
    Regex,
}

/// Go's `http.Request` view the middlewares work on.
pub(crate) struct MwRequest<'a> {
    pub parts: &'a mut Parts,
    /// Go's `req.Host` (authority or Host header).
    pub host: HeaderValue,
    /// Set by a `headers` middleware with an empty `X-Forwarded-For`.
    pub suppress_xff: bool,
}

/// What the request phase decided.
#[allow(clippy::large_enum_variant)] // boxed by the middleware branch
pub(crate) enum Flow {
    /// Continue to the service.
    Continue,
    /// Answer with this response (a redirect); `.1` is the index of the middleware that
    /// answered (response modifications of the middlewares before it still apply).
    Respond(Response<ProxyBody>, usize),
}

/// Compile every middleware of a config. Chains are resolved by [`flatten`].
pub(crate) fn compile_all(
    mws: &BTreeMap<String, MwConfig>,
) -> Result<HashMap<String, Arc<Compiled>>, String> {
    let mut out = HashMap::with_capacity(mws.len());
    for (name, m) in mws {
        let c = match m {
            MwConfig::Chain(c) => Compiled::Chain(c.middlewares.clone()),
            other => Compiled::Mw(Arc::new(
                compile(other).map_err(|e| format!("middleware \"{name}\": {e}"))?,
            )),
        };
        out.insert(name.clone(), Arc::new(c));
    }
    Ok(out)
}

/// A compiled middleware or an unresolved chain.
#[derive(Debug)]
pub(crate) enum Compiled {
    Mw(Arc<Mw>),
    Chain(Vec<String>),
}

/// Expand a router's middleware references (chains recursively, iteratively so deep chains
/// cannot overflow the stack) into the list applied per request.
pub(crate) fn flatten(
    refs: &[String],
    all: &HashMap<String, Arc<Compiled>>,
) -> Result<Box<[Arc<Mw>]>, String> {
    let mut out = Vec::new();
    // Stack of reference lists being walked, with the position in each.
    let mut stack: Vec<(&[String], usize)> = vec![(refs, 0)];
    while let Some((list, pos)) = stack.pop() {
        let Some(r) = list.get(pos) else { continue };
        stack.push((list, pos + 1));
        if stack.len() > 10_000 {
            return Err("middleware chains are nested too deeply".into());
        }
        let name = resolve_ref(r);
        match all.get(name).map(|c| &**c) {
            Some(Compiled::Mw(m)) => out.push(m.clone()),
            Some(Compiled::Chain(children)) => stack.push((children, 0)),
            None => return Err(format!("middleware \"{name}\" not found")),
        }
    }
    Ok(out.into_boxed_slice())
}

fn header_ops(map: &BTreeMap<String, String>) -> Result<Vec<HeaderOp>, String> {
    map.iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("invalid header name \"{k}\""))?;
            let value = if v.is_empty() {
                None
            } else {
                Some(
                    HeaderValue::from_str(v)
                        .map_err(|_| format!("invalid value for header \"{k}\""))?,
                )
            };
            Ok(HeaderOp { name, value })
        })
        .collect()
}

/// The pattern Traefik's redirectScheme rewrites with.
const SCHEME_URI_PATTERN: &str =
    r"^(https?://)?(\[[0-9A-Za-z_:.]+\]|[0-9A-Za-z_._-]+)?(:\d+)?(.*)$";

/// Go's `uriRegexp` of the redirect middlewares (a constant pattern; `None` is unreachable).
fn uri_regexp() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(https?)://(\[[0-9A-Za-z_:.]+\]|[0-9A-Za-z_._-]+)?(:\d+)?(.*)$").ok()
    })
    .as_ref()
}

/// Compile one non-chain middleware.
pub(crate) fn compile(m: &MwConfig) -> Result<Mw, String> {
    let re = |s: &str| compile_regex(s).map_err(|e| format!("invalid regexp \"{s}\": {e}"));
    Ok(match m {
        MwConfig::AddPrefix(a) => Mw::AddPrefix(a.prefix.clone()),
        MwConfig::StripPrefix(s) => Mw::StripPrefix {
            prefixes: s.prefixes.clone(),
            force_slash: s.force_slash.unwrap_or(false),
        },
        MwConfig::StripPrefixRegex(s) => {
            Mw::StripPrefixRegex(s.regex.iter().map(|r| re(r)).collect::<Result<_, _>>()?)
        }
        MwConfig::ReplacePath(r) => Mw::ReplacePath(r.path.clone()),
        MwConfig::ReplacePathRegex(r) => Mw::ReplacePathRegex {
            regex: re(&r.regex)?,
            replacement: r.replacement.clone(),
        },
        MwConfig::Headers(h) => {
            let mut request = header_ops(&h.custom_request_headers)?;
            let mut host = None;
            let mut suppress_xff = false;
            request.retain(|op| {
                if op.name == HOST {
                    host = op.value.clone();
                    // An empty Host value deletes the (already moved out) Host header in Go:
                    // no effect on req.Host.
                    false
                } else if op.name == X_FORWARDED_FOR && op.value.is_none() {
                    suppress_xff = true;
                    true
                } else {
                    true
                }
            });
            Mw::Headers {
                request,
                host,
                suppress_xff,
                response: header_ops(&h.custom_response_headers)?,
            }
        }
        MwConfig::RedirectScheme(r) => {
            let port = match &r.port {
                None => String::new(),
                Some(StrOrInt::Int(p)) => p.to_string(),
                Some(StrOrInt::Str(s)) => s.clone(),
            };
            let default_port =
                (r.scheme == "http" && port == "80") || (r.scheme == "https" && port == "443");
            let port = if port.is_empty() || default_port {
                String::new()
            } else {
                format!(":{port}")
            };
            Mw::Redirect {
                kind: RedirectKind::Scheme,
                regex: re(SCHEME_URI_PATTERN)?,
                replacement: format!("{}://${{2}}{port}${{4}}", r.scheme),
                permanent: r.permanent.unwrap_or(false),
            }
        }
        MwConfig::RedirectRegex(r) => Mw::Redirect {
            kind: RedirectKind::Regex,
            regex: re(&r.regex)?,
            replacement: r.replacement.clone(),
            permanent: r.permanent.unwrap_or(false),
        },
        other => {
            return Err(format!(
                "{} middlewares are not supported by this version of Switchyard",
                other.kind_name()
            ))
        }
    })
}

/// Run the request phase of `mws` in order.
pub(crate) fn apply_request(mws: &[Arc<Mw>], req: &mut MwRequest<'_>) -> Result<Flow, ErrorKind> {
    for (i, m) in mws.iter().enumerate() {
        if let Some(resp) = m.on_request(req)? {
            return Ok(Flow::Respond(resp, i));
        }
    }
    Ok(Flow::Continue)
}

/// Apply the response phase of `mws[..upto]`, innermost first.
pub(crate) fn apply_response(mws: &[Arc<Mw>], upto: usize, headers: &mut http::HeaderMap) {
    for m in mws[..upto.min(mws.len())].iter().rev() {
        if let Mw::Headers { response, .. } = &**m {
            for op in response {
                match &op.value {
                    Some(v) => {
                        headers.insert(op.name.clone(), v.clone());
                    }
                    None => {
                        headers.remove(&op.name);
                    }
                }
            }
        }
    }
}

/// Whether any middleware modifies responses.
pub(crate) fn has_response_phase(mws: &[Arc<Mw>]) -> bool {
    mws.iter()
        .any(|m| matches!(&**m, Mw::Headers { response, .. } if !response.is_empty()))
}

impl Mw {
    fn on_request(
        &self,
        req: &mut MwRequest<'_>,
    ) -> Result<Option<Response<ProxyBody>>, ErrorKind> {
        match self {
            Mw::AddPrefix(prefix) => {
                let p = format!("{prefix}{}", req.parts.uri.path());
                let p = ensure_leading_slash(&p);
                rewrite_ok(&p, RewriteCheck::NoDotSegments)?;
                set_path(req.parts, p)?;
            }
            Mw::StripPrefix {
                prefixes,
                force_slash,
            } => {
                let raw = req.parts.uri.path();
                for prefix in prefixes {
                    if let Some(at) = strip_decoded_prefix(raw, prefix) {
                        let rest = &raw[at..];
                        let new = if *force_slash {
                            format!("/{}", rest.strip_prefix('/').unwrap_or(rest))
                        } else {
                            ensure_leading_slash(rest).into_owned()
                        };
                        let header = HeaderValue::from_str(prefix.trim())
                            .map_err(|_| ErrorKind::BadRequest)?;
                        rewrite_ok(&new, RewriteCheck::Clean)?;
                        set_path(req.parts, Cow::Owned(new))?;
                        req.parts.headers.append(X_FORWARDED_PREFIX.clone(), header);
                        break;
                    }
                }
            }
            Mw::StripPrefixRegex(regexes) => {
                let raw = req.parts.uri.path().to_string();
                let decoded = decode_path(&raw);
                for re in regexes {
                    let Some(m) = re.find(&decoded) else { continue };
                    let prefix = m.as_str();
                    if prefix.is_empty() || !decoded.starts_with(prefix) {
                        continue;
                    }
                    let Some(at) = strip_decoded_prefix(&raw, prefix) else {
                        continue;
                    };
                    let header =
                        HeaderValue::from_str(prefix).map_err(|_| ErrorKind::BadRequest)?;
                    let new = ensure_leading_slash(&raw[at..]);
                    rewrite_ok(&new, RewriteCheck::Clean)?;
                    set_path(req.parts, new)?;
                    req.parts.headers.append(X_FORWARDED_PREFIX.clone(), header);
                    break;
                }
            }
            Mw::ReplacePath(path) => {
                let old = HeaderValue::from_str(req.parts.uri.path())
                    .map_err(|_| ErrorKind::BadRequest)?;
                rewrite_ok(path, RewriteCheck::NoDotSegments)?;
                set_path(req.parts, Cow::Borrowed(path))?;
                req.parts.headers.append(X_REPLACED_PATH.clone(), old);
            }
            Mw::ReplacePathRegex { regex, replacement } => {
                let current = req.parts.uri.path();
                if !replacement.is_empty() && regex.is_match(current) {
                    let new = regex
                        .replace_all(current, replacement.as_str())
                        .into_owned();
                    if path_unescape_fails(&new) {
                        return Err(ErrorKind::BadRequest);
                    }
                    let old = HeaderValue::from_str(current).map_err(|_| ErrorKind::BadRequest)?;
                    rewrite_ok(&new, RewriteCheck::Clean)?;
                    set_path(req.parts, Cow::Owned(new))?;
                    req.parts.headers.append(X_REPLACED_PATH.clone(), old);
                }
            }
            Mw::Headers {
                request,
                host,
                suppress_xff,
                ..
            } => {
                for op in request {
                    match &op.value {
                        Some(v) => {
                            req.parts.headers.insert(op.name.clone(), v.clone());
                        }
                        None => {
                            req.parts.headers.remove(&op.name);
                        }
                    }
                }
                if let Some(h) = host {
                    req.host = h.clone();
                }
                if *suppress_xff {
                    req.suppress_xff = true;
                }
            }
            Mw::Redirect {
                kind,
                regex,
                replacement,
                permanent,
            } => {
                let old = match kind {
                    RedirectKind::Scheme => client_request_url(req),
                    RedirectKind::Regex => raw_url(req),
                };
                if !regex.is_match(&old) {
                    return Ok(None);
                }
                let new = regex.replace_all(&old, replacement.as_str());
                if new != old {
                    return redirect_response(&new, &req.parts.method, *permanent).map(Some);
                }
                // Unchanged: continue with the (identical) URL.
            }
        }
        Ok(None)
    }
}

pub(crate) fn redirect_response(
    location: &str,
    method: &Method,
    permanent: bool,
) -> Result<Response<ProxyBody>, ErrorKind> {
    let get = method == Method::GET;
    let status = match (permanent, get) {
        (false, true) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (true, false) => StatusCode::PERMANENT_REDIRECT,
    };
    let loc = HeaderValue::from_str(location).map_err(|_| ErrorKind::Internal)?;
    let text = status.canonical_reason().unwrap_or("");
    let mut resp = Response::new(ProxyBody::full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(LOCATION, loc);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

/// Go's `req.RequestURI`: the request target as received (absolute form for HTTP/1.x proxy
/// requests, else path and query).
fn request_uri(parts: &Parts) -> String {
    if parts.version < http::Version::HTTP_2 && parts.uri.scheme().is_some() {
        return parts.uri.to_string();
    }
    parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string())
}

/// Go's `net.SplitHostPort`-based split used by redirectScheme: `(host, ":port")`.
fn split_host_port(host: &str) -> (String, String) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let after = &rest[end + 1..];
            if let Some(p) = after.strip_prefix(':') {
                return (rest[..end].to_string(), format!(":{p}"));
            }
        }
        return (host.to_string(), String::new());
    }
    match host.rfind(':') {
        Some(i) if !host[..i].contains(':') => {
            (host[..i].to_string(), format!(":{}", &host[i + 1..]))
        }
        _ => (host.to_string(), String::new()),
    }
}

/// Traefik's redirectScheme `clientRequestURL` (no TLS on our entry points yet).
fn client_request_url(req: &MwRequest<'_>) -> String {
    let host_s = req.host.to_str().unwrap_or("");
    let (mut host, mut port) = split_host_port(host_s);
    let mut scheme = "http".to_string();
    let mut uri = request_uri(req.parts);
    if let Some(c) = uri_regexp().and_then(|re| re.captures(&uri)) {
        scheme = c.get(1).map_or("", |m| m.as_str()).to_string();
        if let Some(h) = c.get(2).filter(|m| !m.as_str().is_empty()) {
            host = h.as_str().to_string();
        }
        if let Some(p) = c.get(3).filter(|m| !m.as_str().is_empty()) {
            port = p.as_str().to_string();
        }
        uri = c.get(4).map_or("", |m| m.as_str()).to_string();
    }
    if let Some(xp) = req
        .parts
        .headers
        .get(&X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        if xp.eq_ignore_ascii_case("http") || xp.eq_ignore_ascii_case("ws") {
            scheme = "http".into();
        } else if xp.eq_ignore_ascii_case("https") || xp.eq_ignore_ascii_case("wss") {
            scheme = "https".into();
        }
    }
    if (scheme == "http" && port == ":80") || (scheme == "https" && port == ":443") {
        port.clear();
    }
    format!("{scheme}://{host}{port}{uri}")
}

/// Traefik's redirectRegex `rawURL`.
fn raw_url(req: &MwRequest<'_>) -> String {
    let mut scheme = "http".to_string();
    let mut host = req.host.to_str().unwrap_or("").to_string();
    let mut port = String::new();
    let mut uri = request_uri(req.parts);
    if let Some(c) = uri_regexp().and_then(|re| re.captures(&uri)) {
        scheme = c.get(1).map_or("", |m| m.as_str()).to_string();
        if let Some(h) = c.get(2).filter(|m| !m.as_str().is_empty()) {
            host = h.as_str().to_string();
        }
        port = c.get(3).map_or("", |m| m.as_str()).to_string();
        uri = c.get(4).map_or("", |m| m.as_str()).to_string();
    }
    format!("{scheme}://{host}{port}{uri}")
}

fn ensure_leading_slash(s: &str) -> Cow<'_, str> {
    if s.is_empty() || s.starts_with('/') {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("/{s}"))
    }
}

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Walk the escaped path `raw` decoding `%XX` as we go, and when the decoded bytes start with
/// `prefix`, return the index in `raw` where the rest begins.
pub(crate) fn strip_decoded_prefix(raw: &str, prefix: &str) -> Option<usize> {
    let r = raw.as_bytes();
    let p = prefix.as_bytes();
    let (mut i, mut j) = (0, 0);
    while j < p.len() {
        let (b, step) = match r.get(i)? {
            b'%' => match (
                r.get(i + 1).and_then(|&b| hexval(b)),
                r.get(i + 2).and_then(|&b| hexval(b)),
            ) {
                (Some(h), Some(l)) => (h * 16 + l, 3),
                _ => (b'%', 1),
            },
            &b => (b, 1),
        };
        if b != p[j] {
            return None;
        }
        i += step;
        j += 1;
    }
    // Never split inside a UTF-8 sequence of the raw path.
    raw.is_char_boundary(i).then_some(i)
}

/// Go's `URL.Path`: the fully decoded path (invalid escapes kept, invalid UTF-8 replaced).
pub(crate) fn decode_path(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&x| hexval(x)),
                b.get(i + 2).and_then(|&x| hexval(x)),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `url.PathUnescape` failing: a `%` not followed by two hex digits.
fn path_unescape_fails(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !(b.get(i + 1).is_some_and(|&x| hexval(x).is_some())
                && b.get(i + 2).is_some_and(|&x| hexval(x).is_some()))
    })
}

/// Percent-encode the bytes that may not appear in a URI path (RFC 3986 `pchar`, `/`, and an
/// existing `%`).
pub(crate) fn escape_path(s: &str) -> Cow<'_, str> {
    fn ok(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
    }
    if s.bytes().all(ok) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if ok(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 0xf) as usize]));
        }
    }
    Cow::Owned(out)
}

/// The dot-segment check of a path a rewriting middleware produced
/// ([`switchyard_config::paths::check_rewrite`]): 400 when it fails.
fn rewrite_ok(path: &str, how: RewriteCheck) -> Result<(), ErrorKind> {
    check_rewrite(path, how).map_err(|_| ErrorKind::BadRequest)
}

/// Replace the path of the request URI, keeping the query.
pub(crate) fn set_path(parts: &mut Parts, path: Cow<'_, str>) -> Result<(), ErrorKind> {
    let path = if path.is_empty() {
        Cow::Borrowed("/")
    } else {
        path
    };
    let path = escape_path(&path);
    let pq = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.into_owned(),
    };
    let pq = PathAndQuery::try_from(pq).map_err(|_| ErrorKind::BadRequest)?;
    let mut up = std::mem::take(&mut parts.uri).into_parts();
    up.path_and_query = Some(pq);
    parts.uri = Uri::from_parts(up).map_err(|_| ErrorKind::BadRequest)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use switchyard_config::parse_document;

    fn mws(yaml: &str) -> HashMap<String, Arc<Compiled>> {
        let cfg = parse_document(yaml).unwrap();
        switchyard_config::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
        compile_all(&cfg.http.middlewares).unwrap()
    }

    fn route(all: &HashMap<String, Arc<Compiled>>, names: &[&str]) -> Box<[Arc<Mw>]> {
        let refs: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        flatten(&refs, all).unwrap()
    }

    struct Out {
        parts: Parts,
        host: HeaderValue,
        suppress_xff: bool,
        resp: Option<(Response<ProxyBody>, usize)>,
    }

    fn run(
        list: &[Arc<Mw>],
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<Out, ErrorKind> {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut parts, ()) = b.body(()).unwrap().into_parts();
        let host = parts
            .headers
            .get(HOST)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static(""));
        let mut req = MwRequest {
            parts: &mut parts,
            host,
            suppress_xff: false,
        };
        let flow = apply_request(list, &mut req)?;
        let (host, suppress_xff) = (req.host.clone(), req.suppress_xff);
        Ok(Out {
            parts,
            host,
            suppress_xff,
            resp: match flow {
                Flow::Continue => None,
                Flow::Respond(r, i) => Some((r, i)),
            },
        })
    }

    fn hdr(p: &Parts, k: &str) -> Vec<String> {
        p.headers
            .get_all(k)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    const ALL: &str = r#"
http:
  middlewares:
    add: {addPrefix: {prefix: /api}}
    strip: {stripPrefix: {prefixes: [/foo, /bar/]}}
    stripslash: {stripPrefix: {prefixes: [/foo], forceSlash: true}}
    stripre: {stripPrefixRegex: {regex: ["/v[0-9]+"]}}
    replace: {replacePath: {path: /new}}
    replacere: {replacePathRegex: {regex: "^/old/(.*)", replacement: "/new/$1"}}
    badre: {replacePathRegex: {regex: "^/x", replacement: "/%zz"}}
    hdrs:
      headers:
        customRequestHeaders: {X-Added: yes, X-Removed: "", Host: backend.local}
        customResponseHeaders: {X-Resp: outer, Server: ""}
    inner:
      headers:
        customResponseHeaders: {X-Resp: inner, X-Inner: "1"}
    noxff: {headers: {customRequestHeaders: {X-Forwarded-For: ""}}}
    https: {redirectScheme: {scheme: https, permanent: true}}
    https8443: {redirectScheme: {scheme: https, port: "8443"}}
    https443: {redirectScheme: {scheme: https, port: 443}}
    rr: {redirectRegex: {regex: "^http://old\\.com/(.*)", replacement: "http://new.com/${1}"}}
    same: {redirectRegex: {regex: "^(.*)$", replacement: "$1"}}
    ch: {chain: {middlewares: [strip, ch2]}}
    ch2: {chain: {middlewares: [add]}}
"#;

    #[test]
    fn add_prefix() {
        let all = mws(ALL);
        let o = run(&route(&all, &["add"]), "GET", "/users?x=1", &[]).unwrap();
        assert_eq!(o.parts.uri, "/api/users?x=1");
    }

    #[test]
    fn strip_prefix() {
        let all = mws(ALL);
        let r = route(&all, &["strip"]);
        let o = run(&r, "GET", "/foo/bar?q", &[]).unwrap();
        assert_eq!(o.parts.uri, "/bar?q");
        assert_eq!(hdr(&o.parts, "x-forwarded-prefix"), ["/foo"]);
        // No segment boundary: /foobar -> /bar.
        let o = run(&r, "GET", "/foobar", &[]).unwrap();
        assert_eq!(o.parts.uri, "/bar");
        // Exact prefix -> "/".
        let o = run(&r, "GET", "/foo", &[]).unwrap();
        assert_eq!(o.parts.uri, "/");
        // Matched on the decoded path, stripped from the escaped one.
        let o = run(&r, "GET", "/f%6Fo/a%20b", &[]).unwrap();
        assert_eq!(o.parts.uri, "/a%20b");
        // Second prefix, with its trailing slash.
        let o = run(&r, "GET", "/bar/x", &[]).unwrap();
        assert_eq!(o.parts.uri, "/x");
        assert_eq!(hdr(&o.parts, "x-forwarded-prefix"), ["/bar/"]);
        // No match: untouched, no header.
        let o = run(&r, "GET", "/baz", &[]).unwrap();
        assert_eq!(o.parts.uri, "/baz");
        assert!(hdr(&o.parts, "x-forwarded-prefix").is_empty());
        // forceSlash trims one extra slash; a result with an empty segment is refused
        // (Traefik's sanitised-path check).
        let o = run(&route(&all, &["stripslash"]), "GET", "/foox", &[]).unwrap();
        assert_eq!(o.parts.uri, "/x");
        assert_eq!(
            run(&route(&all, &["stripslash"]), "GET", "/foo//x", &[]).err(),
            Some(ErrorKind::BadRequest)
        );
        let o = run(&route(&all, &["stripslash"]), "GET", "/foo", &[]).unwrap();
        assert_eq!(o.parts.uri, "/");
        assert_eq!(
            run(&r, "GET", "/foo//x", &[]).err(),
            Some(ErrorKind::BadRequest)
        );
    }

    /// No rewriting middleware produces a path with dot segments: Traefik's strip_prefix_test
    /// ("/api./foo", "/api../foo" → 400), strip_prefix_regex_test, replace_path_regex_test
    /// ("/foo../bar" with `^/foo(.*)` → `/$1` → 400), and the same for addPrefix/replacePath.
    #[test]
    fn rewrites_never_produce_dot_segments() {
        let all = mws(r#"
http:
  middlewares:
    api: {stripPrefix: {prefixes: ["/api"]}}
    apiforce: {stripPrefix: {prefixes: ["/api"], forceSlash: true}}
    apire: {stripPrefixRegex: {regex: ["/api"]}}
    rre: {replacePathRegex: {regex: "^/foo(.*)", replacement: "/$1"}}
    renc: {replacePathRegex: {regex: "^/enc/(.*)", replacement: "/%2e%2e/$1"}}
    addp: {addPrefix: {prefix: "/p"}}
    adddot: {addPrefix: {prefix: "/p/."}}
    repdot: {replacePath: {path: "/a/../etc/passwd"}}
"#);
        let bad = [
            ("api", "/api../etc/passwd"),
            ("api", "/api./foo"),
            ("api", "/api../foo"),
            ("apiforce", "/api../foo"),
            ("apire", "/api./foo"),
            ("apire", "/api../foo"),
            ("rre", "/foo../bar"),
            ("rre", "/foo/../bar"),
            ("rre", "/foo/bar"),
            ("renc", "/enc/etc/passwd"),
            ("addp", "/../x"),
            ("addp", "/%2e%2e/x"),
            ("adddot", "/x"),
            ("repdot", "/anything"),
        ];
        for (mw, path) in bad {
            assert_eq!(
                run(&route(&all, &[mw]), "GET", path, &[]).err(),
                Some(ErrorKind::BadRequest),
                "{mw} on {path}"
            );
        }
        let good = [
            ("api", "/api/x", "/x"),
            ("api", "/api..x", "/..x"),
            ("apire", "/api/x/..y", "/x/..y"),
            ("rre", "/foobar", "/bar"),
            ("addp", "/x", "/p/x"),
            ("addp", "//x", "/p//x"),
        ];
        for (mw, path, want) in good {
            match run(&route(&all, &[mw]), "GET", path, &[]) {
                Ok(o) => assert_eq!(o.parts.uri, want, "{mw} on {path}"),
                Err(e) => panic!("{mw} on {path}: {e:?}"),
            }
        }
    }

    #[test]
    fn strip_prefix_regex() {
        let all = mws(ALL);
        let r = route(&all, &["stripre"]);
        let o = run(&r, "GET", "/v12/users", &[]).unwrap();
        assert_eq!(o.parts.uri, "/users");
        assert_eq!(hdr(&o.parts, "x-forwarded-prefix"), ["/v12"]);
        // The match must be a prefix.
        let o = run(&r, "GET", "/a/v1/users", &[]).unwrap();
        assert_eq!(o.parts.uri, "/a/v1/users");
    }

    #[test]
    fn replace_path() {
        let all = mws(ALL);
        let o = run(&route(&all, &["replace"]), "GET", "/a%20b?k=v", &[]).unwrap();
        assert_eq!(o.parts.uri, "/new?k=v");
        assert_eq!(hdr(&o.parts, "x-replaced-path"), ["/a%20b"]);
        let o = run(&route(&all, &["replacere"]), "GET", "/old/x/y", &[]).unwrap();
        assert_eq!(o.parts.uri, "/new/x/y");
        assert_eq!(hdr(&o.parts, "x-replaced-path"), ["/old/x/y"]);
        let o = run(&route(&all, &["replacere"]), "GET", "/other", &[]).unwrap();
        assert_eq!(o.parts.uri, "/other");
        assert!(hdr(&o.parts, "x-replaced-path").is_empty());
        assert_eq!(
            run(&route(&all, &["badre"]), "GET", "/x", &[]).err(),
            Some(ErrorKind::BadRequest)
        );
    }

    #[test]
    fn headers() {
        let all = mws(ALL);
        let r = route(&all, &["hdrs", "inner"]);
        let o = run(
            &r,
            "GET",
            "/",
            &[("host", "a.com"), ("x-removed", "1"), ("x-added", "old")],
        )
        .unwrap();
        assert_eq!(hdr(&o.parts, "x-added"), ["yes"]);
        assert!(hdr(&o.parts, "x-removed").is_empty());
        assert_eq!(o.host, "backend.local");
        assert!(!o.suppress_xff);
        let mut h = http::HeaderMap::new();
        h.insert("server", HeaderValue::from_static("nginx"));
        apply_response(&r, r.len(), &mut h);
        // Outer (first) middleware wins.
        assert_eq!(h["x-resp"], "outer");
        assert_eq!(h["x-inner"], "1");
        assert!(h.get("server").is_none());
        assert!(has_response_phase(&r));
        let o = run(&route(&all, &["noxff"]), "GET", "/", &[]).unwrap();
        assert!(o.suppress_xff);
    }

    #[test]
    fn redirect_scheme() {
        let all = mws(ALL);
        let o = run(
            &route(&all, &["https"]),
            "GET",
            "/p?q=1",
            &[("host", "a.com:8080"), ("x-forwarded-proto", "http")],
        )
        .unwrap();
        let (resp, i) = o.resp.unwrap();
        assert_eq!(i, 0);
        assert_eq!(resp.status(), 301);
        assert_eq!(resp.headers()[LOCATION], "https://a.com/p?q=1");
        // POST -> 308.
        let o = run(
            &route(&all, &["https"]),
            "POST",
            "/",
            &[("host", "a.com"), ("x-forwarded-proto", "http")],
        )
        .unwrap();
        assert_eq!(o.resp.unwrap().0.status(), 308);
        // Not permanent, explicit port.
        let o = run(
            &route(&all, &["https8443"]),
            "GET",
            "/x",
            &[("host", "a.com"), ("x-forwarded-proto", "http")],
        )
        .unwrap();
        let (resp, _) = o.resp.unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()[LOCATION], "https://a.com:8443/x");
        let o = run(
            &route(&all, &["https8443"]),
            "PUT",
            "/x",
            &[("host", "a.com"), ("x-forwarded-proto", "http")],
        )
        .unwrap();
        assert_eq!(o.resp.unwrap().0.status(), 307);
        // Default port is dropped.
        let o = run(
            &route(&all, &["https443"]),
            "GET",
            "/",
            &[("host", "a.com"), ("x-forwarded-proto", "http")],
        )
        .unwrap();
        assert_eq!(o.resp.unwrap().0.headers()[LOCATION], "https://a.com/");
        // Already https (trusted X-Forwarded-Proto): passes through.
        let o = run(
            &route(&all, &["https"]),
            "GET",
            "/",
            &[("host", "a.com"), ("x-forwarded-proto", "https")],
        )
        .unwrap();
        assert!(o.resp.is_none());
    }

    #[test]
    fn redirect_regex() {
        let all = mws(ALL);
        let o = run(
            &route(&all, &["rr"]),
            "GET",
            "/a/b?c",
            &[("host", "old.com")],
        )
        .unwrap();
        let (resp, _) = o.resp.unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()[LOCATION], "http://new.com/a/b?c");
        let o = run(&route(&all, &["rr"]), "GET", "/a", &[("host", "other.com")]).unwrap();
        assert!(o.resp.is_none());
        let o = run(&route(&all, &["same"]), "GET", "/a", &[("host", "x.com")]).unwrap();
        assert!(o.resp.is_none());
        assert_eq!(o.parts.uri, "/a");
    }

    #[test]
    fn chains_flatten_in_order() {
        let all = mws(ALL);
        let r = route(&all, &["ch"]);
        assert_eq!(r.len(), 2);
        let o = run(&r, "GET", "/foo/x", &[]).unwrap();
        assert_eq!(o.parts.uri, "/api/x");
        // Response phase stops at the redirect.
        let r = route(&all, &["hdrs", "https", "inner"]);
        let o = run(
            &r,
            "GET",
            "/",
            &[("host", "a.com"), ("x-forwarded-proto", "http")],
        )
        .unwrap();
        let (mut resp, i) = o.resp.unwrap();
        apply_response(&r, i, resp.headers_mut());
        assert_eq!(resp.headers()["x-resp"], "outer");
        assert!(resp.headers().get("x-inner").is_none());
    }

    #[test]
    fn helpers() {
        assert_eq!(strip_decoded_prefix("/a%2Fb/c", "/a/b"), Some(6));
        assert_eq!(strip_decoded_prefix("/ab", "/abc"), None);
        assert_eq!(decode_path("/a%20b%zz"), "/a b%zz");
        assert_eq!(escape_path("/a b?#é"), "/a%20b%3F%23%C3%A9");
        assert!(path_unescape_fails("/a%2"));
        assert!(!path_unescape_fails("/a%20"));
        assert_eq!(split_host_port("a.com:80"), ("a.com".into(), ":80".into()));
        assert_eq!(split_host_port("[::1]:80"), ("::1".into(), ":80".into()));
        assert_eq!(split_host_port("a.com"), ("a.com".into(), "".into()));
    }
}
