//! `ipAllowList` / `ipWhiteList`: the client address chosen by the `ipStrategy` (the peer,
//! or an `X-Forwarded-For` entry as the entry point left it: a client's own header only
//! survives on trusted entry points) must be in `sourceRange`; otherwise the request is
//! answered with `rejectStatusCode` (403) and its status text.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::Response;
use switchyard_config::middlewares::ip::{CompiledIpAllowList, IpText, Strategy};

use super::MwRequest;
use crate::body::ProxyBody;
use crate::forwarded::X_FORWARDED_FOR;

/// Request phase.
pub(crate) fn on_request(
    a: &CompiledIpAllowList,
    req: &MwRequest<'_>,
) -> Option<Response<ProxyBody>> {
    let allowed = match &a.strategy {
        // The peer's address: checked as an address, without formatting it.
        Strategy::RemoteAddr { ipv6_subnet: None } => {
            a.allowed.contains_addr(req.client_ip.to_canonical())
        }
        s => {
            let xff = req
                .parts
                .headers
                .get(&X_FORWARDED_FOR)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let mut buf = IpText::default();
            a.allowed
                .contains(&s.client_key(req.client_ip, xff, &mut buf))
        }
    };
    if allowed {
        return None;
    }
    let text = a.reject.canonical_reason().unwrap_or("");
    let mut resp = Response::new(ProxyBody::full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = a.reject;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Some(resp)
}
