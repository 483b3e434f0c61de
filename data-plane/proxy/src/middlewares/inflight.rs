//! `inFlightReq`: a request over `amount` in progress for its source (default: the host) is
//! answered `429 Too Many Requests`; otherwise its slot is held until the response body is
//! finished or dropped. With `scope: cluster` the limit is this proxy's part of `amount`
//! ([`switchyard_config::middlewares::inflight`]).

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use switchyard_config::middlewares::inflight::CompiledInFlight;
use switchyard_config::middlewares::ip::IpText;

use super::ratelimit::source_key;
use super::MwRequest;
use crate::body::ProxyBody;

/// Request phase.
pub(crate) fn on_request(
    c: &CompiledInFlight,
    req: &mut MwRequest<'_>,
) -> Option<Response<ProxyBody>> {
    let mut buf = IpText::default();
    let slot = c.acquire(&source_key(&c.source, req, &mut buf));
    match slot {
        Some(slot) => {
            req.ctx.held.push(slot);
            None
        }
        None => {
            let mut resp = Response::new(ProxyBody::full(Bytes::from_static(b"Too Many Requests")));
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Some(resp)
        }
    }
}
