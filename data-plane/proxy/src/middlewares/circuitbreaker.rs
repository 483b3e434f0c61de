//! `circuitBreaker`: the request phase asks the breaker (see
//! [`switchyard_config::middlewares::circuitbreaker`]) whether the request passes; if not it
//! answers the fallback (`responseCode`, its status text as body), as Traefik. A request that
//! passes is timed from here; the response phase records its status and latency (the
//! response head of whatever the breaker wraps: the middlewares after it and the service,
//! 502/504 when the service could not be reached) and lets the breaker re-evaluate.

use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::Response;
use switchyard_config::middlewares::circuitbreaker::CompiledCircuitBreaker;

use super::{MwRequest, ResponseCtx};
use crate::body::ProxyBody;

/// Request phase.
pub(crate) fn on_request(
    c: &CompiledCircuitBreaker,
    req: &mut MwRequest<'_>,
) -> Option<Response<ProxyBody>> {
    let now = Instant::now();
    if c.allow(now) {
        req.ctx.started.get_or_insert(now);
        return None;
    }
    let text = c.response_code.canonical_reason().unwrap_or("");
    let mut resp = Response::new(ProxyBody::full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = c.response_code;
    if !text.is_empty() {
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    Some(resp)
}

/// Response phase.
pub(crate) fn on_response(c: &CompiledCircuitBreaker, ctx: &ResponseCtx, status: u16) {
    // Not started: the request was refused before reaching the breaker.
    if let Some(started) = ctx.started {
        let now = Instant::now();
        c.record(status, now.saturating_duration_since(started), now);
    }
}
