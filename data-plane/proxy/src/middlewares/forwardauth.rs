//! `forwardAuth` (Traefik's `pkg/middlewares/auth/forward.go`): the request's head (and, with
//! `forwardBody`, its body) is sent to the authentication server with `GET` (or the request's
//! method with `preserveRequestMethod`) and `X-Forwarded-Method/Proto/Host/Uri/For` (and
//! `-Port` when `trustForwardHeader` is set; unset keeps Traefik's legacy header set).
//!
//! * 2xx: the request goes on, with `authResponseHeaders` and the headers matching
//!   `authResponseHeadersRegex` (canonical names, e.g. `^X-Auth-`) taken from the answer in
//!   place of the client's; the answer's cookies named in `addAuthCookiesToResponse` replace
//!   the backend's cookies of the same name in the response.
//! * any other status: the answer (status, headers without hop-by-hop ones, body) goes back to
//!   the client; a relative `Location` is resolved against `address` unless
//!   `preserveLocationHeader`; a 401 becomes a 302 to `authSigninURL` when set.
//! * the server cannot be reached, or does not answer within 30 s: 500 (Traefik's client
//!   timeout); a request body over `maxBodySize`, or an answer body over
//!   `maxResponseBodySize`: 401.
//!
//! The client (a keep-alive pool, TLS from `tls`) is built once per config version
//! ([`prepare`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION,
    SET_COOKIE, TE, TRANSFER_ENCODING, UPGRADE, USER_AGENT,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use switchyard_config::middlewares::forwardauth::{
    canonical_header_key, is_managed_x_header, CompiledForwardAuth,
};
use switchyard_config::{Certificate, ServersTransport};
use switchyard_otel::{Kind, Val};

use super::MwRequest;
use crate::body::{ProxyBody, UpBody};
use crate::forwarded::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PORT, X_FORWARDED_PROTO};
use crate::upstream::{Client, ServerUrl, Transport};

/// Traefik's auth client timeout.
const TIMEOUT: Duration = Duration::from_secs(30);

static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

/// The client to one authentication server.
struct AuthClient(Client);

/// Build the client of a compiled `forwardAuth` (once per config version).
pub(crate) fn prepare(f: &CompiledForwardAuth) -> Result<(), String> {
    let url = ServerUrl::parse(&f.address)?;
    let mut st = ServersTransport::default();
    if let Some(tls) = &f.tls {
        st.insecure_skip_verify = tls.insecure_skip_verify;
        if !tls.ca.trim().is_empty() {
            st.root_cas.push(tls.ca.clone());
        }
        if !tls.cert.trim().is_empty() {
            st.certificates.push(Certificate {
                cert_file: tls.cert.clone(),
                key_file: tls.key.clone(),
                ..Certificate::default()
            });
        }
    }
    // HTTP/1.1 to the authentication server.
    st.disable_http2 = Some(true);
    let transport = Transport::new(Some(&st)).map_err(|e| format!("forwardAuth.tls: {e}"))?;
    let client = transport.client(&url)?;
    let _ = f.client.set(Box::new(AuthClient(client)));
    Ok(())
}

fn status_only(status: StatusCode) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// Read a body whole, failing with `Ok(Err(()))` beyond `limit` bytes.
pub(crate) async fn read_limited<B>(body: B, limit: Option<u64>) -> Result<Result<Bytes, ()>, ()>
where
    B: http_body::Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if limit.is_some_and(|l| buf.len() as u64 > l) {
                return Ok(Err(()));
            }
        }
    }
    Ok(Ok(buf.freeze()))
}

/// The hop-by-hop headers Traefik removes from auth requests and answers.
fn remove_hop(h: &mut HeaderMap) {
    crate::forwarded::remove_connection_named(h);
    for n in [CONNECTION, TE, TRANSFER_ENCODING, UPGRADE] {
        h.remove(n);
    }
    for n in ["keep-alive", "trailer", "trailers"] {
        h.remove(n);
    }
}

/// Go's `forwardedPort`.
fn forwarded_port(host: &str, h: &HeaderMap, tls: bool) -> HeaderValue {
    if let Some((_, port)) = host.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(v) = HeaderValue::from_str(port) {
                return v;
            }
        }
    }
    let proto = h.get(&X_FORWARDED_PROTO).map(HeaderValue::as_bytes);
    HeaderValue::from_static(if matches!(proto, Some(b"https" | b"wss")) || tls {
        "443"
    } else {
        "80"
    })
}

/// The headers of the auth request (Go's `writeHeader` / `oldWriteHeader`).
fn auth_headers(f: &CompiledForwardAuth, req: &MwRequest<'_>) -> HeaderMap {
    let mut h = req.parts.headers.clone();
    h.remove(HOST);
    h.remove(CONTENT_LENGTH);
    remove_hop(&mut h);
    if f.trust_forward_header == Some(false) {
        let managed: Vec<HeaderName> = h
            .keys()
            .filter(|k| is_managed_x_header(k.as_str()))
            .cloned()
            .collect();
        for k in managed {
            h.remove(k);
        }
    }
    if f.trust_forward_header.is_some() && !req.parts.headers.contains_key(USER_AGENT) {
        h.insert(USER_AGENT, HeaderValue::from_static(""));
    }
    if !f.auth_request_headers.is_empty() {
        let mut kept = HeaderMap::new();
        for name in &f.auth_request_headers {
            for v in h.get_all(name) {
                kept.append(name.clone(), v.clone());
            }
        }
        h = kept;
    }
    let ip = HeaderValue::from_str(&req.client_ip.to_string()).ok();
    let host = req.host.clone();
    let uri = req
        .parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let uri = HeaderValue::from_str(uri).ok();
    let method = HeaderValue::from_str(req.parts.method.as_str()).ok();
    let proto = HeaderValue::from_static(if req.tls { "https" } else { "http" });
    match f.trust_forward_header {
        None => {
            if let Some(ip) = ip {
                h.insert(X_FORWARDED_FOR.clone(), ip);
            }
            h.insert(X_FORWARDED_PROTO.clone(), proto);
            if let Some(m) = method {
                h.insert(X_FORWARDED_METHOD.clone(), m);
            }
            h.insert(X_FORWARDED_HOST.clone(), host);
            if let Some(u) = uri {
                h.insert(X_FORWARDED_URI.clone(), u);
            }
        }
        Some(_) => {
            if let Some(ip) = ip {
                crate::forwarded::append_xff(&mut h, &ip);
            }
            let set = |h: &mut HeaderMap, k: &HeaderName, v: Option<HeaderValue>| {
                if let (false, Some(v)) = (h.contains_key(k), v) {
                    h.insert(k.clone(), v);
                }
            };
            set(&mut h, &X_FORWARDED_METHOD, method);
            set(&mut h, &X_FORWARDED_PROTO, Some(proto));
            let port = forwarded_port(host.to_str().unwrap_or(""), &h, req.tls);
            set(&mut h, &X_FORWARDED_PORT, Some(port));
            set(&mut h, &X_FORWARDED_HOST, Some(host));
            set(&mut h, &X_FORWARDED_URI, uri);
        }
    }
    h
}

/// The name of a `Set-Cookie` value.
fn cookie_name(v: &HeaderValue) -> &str {
    let s = v.to_str().unwrap_or("");
    s.split_once('=').map_or("", |(n, _)| n.trim())
}

/// Go's `http.Redirect(w, r, url, 302)`.
fn signin_redirect(url: &HeaderValue, method: &Method) -> Response<ProxyBody> {
    let body = if method == Method::GET {
        let u = url.to_str().unwrap_or("");
        let escaped = u
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&#34;")
            .replace('\'', "&#39;");
        Bytes::from(format!("<a href=\"{escaped}\">Found</a>.\n\n"))
    } else {
        Bytes::new()
    };
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut().insert(LOCATION, url.clone());
    if method == Method::GET || method == Method::HEAD {
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    resp
}

/// Request phase: ask the authentication server. `Some`: its refusal (or an error status)
/// answers the client.
pub(crate) async fn on_request(
    f: &CompiledForwardAuth,
    i: usize,
    req: &mut MwRequest<'_>,
) -> Option<Response<ProxyBody>> {
    let Some(AuthClient(client)) = f.client.get().and_then(|c| c.downcast_ref::<AuthClient>())
    else {
        tracing::warn!(address = %f.address, "forwardAuth client missing");
        return Some(status_only(StatusCode::INTERNAL_SERVER_ERROR));
    };
    let method = if f.preserve_request_method {
        req.parts.method.clone()
    } else {
        Method::GET
    };
    // A CONNECT body of unknown length is tunnel data, never forwarded.
    let tunnel =
        req.parts.method == Method::CONNECT && !req.parts.headers.contains_key(CONTENT_LENGTH);
    let forward_body = f.forward_body && !tunnel;
    let mut auth_body = UpBody::empty();
    if forward_body {
        let body = std::mem::replace(&mut req.body, UpBody::empty());
        match read_limited(body, f.max_body_size).await {
            Ok(Ok(b)) => {
                if !b.is_empty() {
                    auth_body = UpBody::Full(Some(b.clone()));
                    req.body = UpBody::Full(Some(b));
                }
            }
            Ok(Err(())) => return Some(status_only(StatusCode::UNAUTHORIZED)),
            Err(()) => return Some(status_only(StatusCode::INTERNAL_SERVER_ERROR)),
        }
    }
    let headers = auth_headers(f, req);
    let Ok(mut auth_req) = Request::builder()
        .method(method)
        .uri(f.address.as_str())
        .body(auth_body)
    else {
        return Some(status_only(StatusCode::INTERNAL_SERVER_ERROR));
    };
    *auth_req.headers_mut() = headers;
    // Traefik's `AuthRequest` client span, its context sent to the authentication server.
    let mut span = req.trace.as_ref().map(|(t, parent)| {
        let mut span = t.req_span("AuthRequest", Kind::Client, Some(parent), None);
        if span.is_recording() {
            span.set(
                "http.request.method",
                crate::server::observe::method_value(auth_req.method()),
            );
            span.set("url.full", Val::Owned(f.address.as_str().into()));
        }
        crate::otel::inject_cx(span.context(), auth_req.headers_mut());
        span
    });
    let resp = match tokio::time::timeout(TIMEOUT, client.request(auth_req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(address = %f.address, error = ?e, "forwardAuth: error calling the authentication server");
            if let Some(s) = &mut span {
                s.set_error(Val::Owned(e.to_string().into_boxed_str()));
            }
            return Some(status_only(StatusCode::INTERNAL_SERVER_ERROR));
        }
        Err(_) => {
            tracing::debug!(address = %f.address, "forwardAuth: authentication server timed out");
            if let Some(s) = &mut span {
                s.set_error(Val::Static("timed out"));
            }
            return Some(status_only(StatusCode::INTERNAL_SERVER_ERROR));
        }
    };
    if let Some(mut s) = span {
        s.set(
            "http.response.status_code",
            Val::Int(i64::from(resp.status().as_u16())),
        );
        if resp.status().is_server_error() {
            s.set_error(Val::Static(""));
        }
        s.end();
    }
    let (mut parts, body) = resp.into_parts();
    let body = match read_limited(body, f.max_response_body_size).await {
        Ok(Ok(b)) => b,
        Ok(Err(())) => return Some(status_only(StatusCode::UNAUTHORIZED)),
        Err(()) => return Some(status_only(StatusCode::INTERNAL_SERVER_ERROR)),
    };
    if let (Some(url), StatusCode::UNAUTHORIZED) = (&f.auth_signin_url, parts.status) {
        return Some(signin_redirect(url, &req.parts.method));
    }
    if !parts.status.is_success() {
        remove_hop(&mut parts.headers);
        parts.headers.remove(CONTENT_LENGTH);
        if let Some(loc) = parts.headers.get(LOCATION).cloned() {
            if !f.preserve_location_header {
                let resolved = loc
                    .to_str()
                    .ok()
                    .and_then(|l| f.url.join(l).ok())
                    .and_then(|u| HeaderValue::from_str(u.as_str()).ok());
                match resolved {
                    Some(v) => {
                        parts.headers.insert(LOCATION, v);
                    }
                    None => return Some(status_only(StatusCode::INTERNAL_SERVER_ERROR)),
                }
            }
        }
        let mut out = Response::new(ProxyBody::full(body));
        *out.status_mut() = parts.status;
        *out.headers_mut() = parts.headers;
        return Some(out);
    }
    for name in &f.auth_response_headers {
        req.parts.headers.remove(name);
        for v in parts.headers.get_all(name) {
            req.parts.headers.append(name.clone(), v.clone());
        }
    }
    if let Some(re) = &f.auth_response_headers_regex {
        let drop: Vec<HeaderName> = req
            .parts
            .headers
            .keys()
            .filter(|k| re.is_match(&canonical_header_key(k.as_str())))
            .cloned()
            .collect();
        for k in drop {
            req.parts.headers.remove(k);
        }
        for (k, v) in &parts.headers {
            if re.is_match(&canonical_header_key(k.as_str())) {
                req.parts.headers.append(k.clone(), v.clone());
            }
        }
    }
    if parts.headers.contains_key(SET_COOKIE) && !f.add_auth_cookies_to_response.is_empty() {
        let cookies: Vec<HeaderValue> = parts
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .filter(|c| f.add_auth_cookies_to_response.contains(cookie_name(c)))
            .cloned()
            .collect();
        req.ctx.auth_cookies.push((i, Arc::from(cookies)));
    }
    None
}

/// Response phase: the backend's cookies named in `addAuthCookiesToResponse` give way to the
/// authentication server's.
pub(crate) fn on_response(
    f: &CompiledForwardAuth,
    i: usize,
    ctx: &super::ResponseCtx,
    resp: &mut Response<ProxyBody>,
) {
    let Some((_, auth)) = ctx.auth_cookies.iter().find(|(at, _)| *at == i) else {
        return;
    };
    let h = resp.headers_mut();
    let backend: Vec<HeaderValue> = h.get_all(SET_COOKIE).iter().cloned().collect();
    h.remove(SET_COOKIE);
    for c in backend {
        if !f.add_auth_cookies_to_response.contains(cookie_name(&c)) {
            h.append(SET_COOKIE, c);
        }
    }
    for c in auth.iter() {
        h.append(SET_COOKIE, c.clone());
    }
}
