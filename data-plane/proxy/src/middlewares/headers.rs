//! `headers`, as Traefik's `Header` (custom headers, CORS) wrapping `unrolled/secure`:
//!
//! * Request phase, in Traefik's order: a CORS preflight (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`, when a CORS option is set) is answered by the proxy
//!   (200, `Content-Length: 0`, the `Access-Control-*` headers); then custom request headers
//!   (an empty value removes; `Host` sets the request host; an empty `X-Forwarded-For`
//!   suppresses the proxy's own); then the host check (`allowedHosts` against the host or the
//!   first non-empty `hostsProxyHeaders`; a mismatch is answered `500 Bad Host` unless
//!   `isDevelopment`), and whether the request is secure (TLS, or an `sslProxyHeaders`
//!   value) is recorded for the response.
//! * Response phase (every response passing back, including the proxy's own errors):
//!   security headers (STS and public key pins on secure requests, or STS with
//!   `forceSTSHeader`; never with `isDevelopment`), then custom response headers (an empty
//!   value removes), then `Access-Control-Allow-Origin` for an allowed `Origin` (nothing for
//!   a disallowed one), `-Allow-Credentials`, `-Expose-Headers` and `Vary: Origin`.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN, VARY};
use http::{HeaderMap, Method, Response, StatusCode};
use switchyard_config::middlewares::headers::{Cors, HeaderOp, Secure};
use switchyard_config::middlewares::CompiledHeaders;

use super::{MwRequest, ResponseCtx};
use crate::body::ProxyBody;
use crate::errors::ErrorKind;

const ACAO: HeaderName = HeaderName::from_static("access-control-allow-origin");
const ACAC: HeaderName = HeaderName::from_static("access-control-allow-credentials");
const ACAH: HeaderName = HeaderName::from_static("access-control-allow-headers");
const ACAM: HeaderName = HeaderName::from_static("access-control-allow-methods");
const ACMA: HeaderName = HeaderName::from_static("access-control-max-age");
const ACEH: HeaderName = HeaderName::from_static("access-control-expose-headers");
const ACRM: HeaderName = HeaderName::from_static("access-control-request-method");
const ACRH: HeaderName = HeaderName::from_static("access-control-request-headers");
const STS: HeaderName = HeaderName::from_static("strict-transport-security");
const HPKP: HeaderName = HeaderName::from_static("public-key-pins");
const TRUE: HeaderValue = HeaderValue::from_static("true");

fn apply_ops(ops: &[HeaderOp], headers: &mut HeaderMap<HeaderValue>) {
    for op in ops {
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

/// Go's `Header.Get`: the first value, `""` when absent or not text.
fn get<'a>(headers: &'a HeaderMap<HeaderValue>, name: &HeaderName) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Request phase.
pub(crate) fn on_request(
    h: &CompiledHeaders,
    i: usize,
    req: &mut MwRequest<'_>,
) -> Result<Option<Response<ProxyBody>>, ErrorKind> {
    if let Some(cors) = &h.cors {
        if let Some(resp) = preflight(cors, req) {
            return Ok(Some(resp));
        }
    }
    apply_ops(&h.request, &mut req.parts.headers);
    if let Some(host) = &h.host {
        req.host = host.clone();
    }
    if h.suppress_xff {
        req.suppress_xff = true;
    }
    if h.cors.is_some() {
        req.ctx.origin = req.parts.headers.get(ORIGIN).cloned();
    }
    if let Some(sec) = &h.secure {
        if !host_allowed(sec, req) {
            let mut resp = Response::new(ProxyBody::full(Bytes::from_static(b"Bad Host\n")));
            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            let hm = resp.headers_mut();
            hm.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            hm.insert(
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            );
            // Written through this middleware's own response modifier (not the secure one).
            custom_and_cors(h, &req.ctx, hm);
            return Ok(Some(resp));
        }
        if is_secure(sec, req) {
            ResponseCtx::set(&mut req.ctx.secure, i);
        }
    }
    Ok(None)
}

/// A CORS preflight answered here, as Traefik's `processCorsHeaders`.
fn preflight(cors: &Cors, req: &MwRequest<'_>) -> Option<Response<ProxyBody>> {
    let headers = &req.parts.headers;
    let method = get(headers, &ACRM);
    let origin = get(headers, &ORIGIN);
    if method.is_empty() || origin.is_empty() || req.parts.method != Method::OPTIONS {
        return None;
    }
    let mut resp = Response::new(ProxyBody::full(Bytes::new()));
    let out = resp.headers_mut();
    if cors.allow_credentials {
        out.insert(ACAC, TRUE);
    }
    if cors.allow_headers_any && cors.allow_credentials {
        if let Some(v) = headers.get(ACRH).filter(|v| !v.is_empty()) {
            out.insert(ACAH, v.clone());
        }
    } else if let Some(v) = &cors.allow_headers {
        out.insert(ACAH, v.clone());
    }
    if cors.allow_methods_any && cors.allow_credentials {
        if let Some(v) = headers.get(ACRM) {
            out.insert(ACAM, v.clone());
        }
    } else if let Some(v) = &cors.allow_methods {
        out.insert(ACAM, v.clone());
    }
    if let Some(v) = cors
        .match_origin(origin)
        .and_then(|m| HeaderValue::from_str(m).ok())
    {
        out.insert(ACAO, v);
    }
    if let Some(v) = &cors.max_age {
        out.insert(ACMA, v.clone());
    }
    if let Some(v) = &cors.expose_headers {
        out.insert(ACEH, v.clone());
    }
    out.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    Some(resp)
}

/// `unrolled/secure`'s allowed-hosts check.
fn host_allowed(sec: &Secure, req: &MwRequest<'_>) -> bool {
    if sec.allowed_hosts.is_empty() || sec.is_development {
        return true;
    }
    let mut host = req.host.to_str().unwrap_or("");
    for name in &sec.hosts_proxy_headers {
        let v = get(&req.parts.headers, name);
        if !v.is_empty() {
            host = v;
            break;
        }
    }
    sec.allowed_hosts
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host))
}

/// `unrolled/secure`'s `isSSL`: TLS, an `https` absolute-form request, or an
/// `sslProxyHeaders` match.
fn is_secure(sec: &Secure, req: &MwRequest<'_>) -> bool {
    req.tls
        || req.parts.uri.scheme_str() == Some("https")
        || sec
            .ssl_proxy_headers
            .iter()
            .any(|(k, v)| get(&req.parts.headers, k) == v)
}

/// Response phase.
pub(crate) fn on_response(
    h: &CompiledHeaders,
    i: usize,
    ctx: &ResponseCtx,
    headers: &mut HeaderMap<HeaderValue>,
) {
    if let Some(sec) = &h.secure {
        let secure = ResponseCtx::get(ctx.secure, i);
        if !sec.is_development {
            if let Some(v) = &sec.sts {
                if secure || sec.force_sts {
                    headers.insert(STS, v.clone());
                }
            }
            if let Some(v) = &sec.public_key {
                if secure {
                    headers.insert(HPKP, v.clone());
                }
            }
        }
        for (k, v) in &sec.always {
            headers.insert(k.clone(), v.clone());
        }
    }
    custom_and_cors(h, ctx, headers);
}

/// Traefik's `PostRequestModifyResponseHeaders`.
fn custom_and_cors(h: &CompiledHeaders, ctx: &ResponseCtx, headers: &mut HeaderMap<HeaderValue>) {
    apply_ops(&h.response, headers);
    let Some(cors) = &h.cors else { return };
    if let Some(v) = ctx
        .origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .and_then(|o| cors.match_origin(o))
        .and_then(|m| HeaderValue::from_str(m).ok())
    {
        headers.insert(ACAO, v);
    }
    if cors.allow_credentials {
        headers.insert(ACAC, TRUE);
    }
    if let Some(v) = &cors.expose_headers {
        headers.insert(ACEH, v.clone());
    }
    if !cors.add_vary {
        return;
    }
    let vary = get(headers, &VARY);
    if vary == "Origin" {
        return;
    }
    let v = if vary.is_empty() {
        HeaderValue::from_static("Origin")
    } else {
        match HeaderValue::from_str(&format!("{vary},Origin")) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    headers.insert(VARY, v);
}
