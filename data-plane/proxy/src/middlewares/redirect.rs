//! `redirectScheme` / `redirectRegex`: the request URL is rebuilt like Traefik's
//! `clientRequestURL` / `rawURL`, rewritten with the regexp, and when it changed the client
//! gets 302 (GET) / 307, or 301 / 308 when `permanent`, with `Location` and the status text
//! as body. When it did not change the request continues with the rewritten URL.

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{HeaderValue, LOCATION};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use regex::Regex;
use switchyard_config::middlewares::RedirectKind;

use super::{Mw, MwRequest};
use crate::body::ProxyBody;
use crate::errors::ErrorKind;
use crate::forwarded::X_FORWARDED_PROTO;

/// Go's `uriRegexp` of the redirect middlewares (a constant pattern; `None` is unreachable).
fn uri_regexp() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(https?)://(\[[0-9A-Za-z_:.]+\]|[0-9A-Za-z_._-]+)?(:\d+)?(.*)$").ok()
    })
    .as_ref()
}

/// Request phase of a redirect middleware.
pub(crate) fn on_request(
    m: &Mw,
    req: &mut MwRequest<'_>,
) -> Result<Option<Response<ProxyBody>>, ErrorKind> {
    let Mw::Redirect {
        kind,
        regex,
        replacement,
        permanent,
    } = m
    else {
        return Ok(None);
    };
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
    Ok(None)
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
pub(crate) fn split_host_port(host: &str) -> (String, String) {
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
