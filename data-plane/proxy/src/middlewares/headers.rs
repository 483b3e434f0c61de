//! `headers`: custom request headers (an empty value removes; `Host` sets the request host;
//! an empty `X-Forwarded-For` suppresses the proxy's own `X-Forwarded-For`), and custom
//! response headers set or removed on every response passing back through the middleware,
//! including responses the proxy generates behind it (502/503/…).

use http::header::HeaderValue;
use http::{HeaderMap, Response};
use switchyard_config::middlewares::headers::HeaderOp;
use switchyard_config::middlewares::CompiledHeaders;

use super::{MwRequest, ResponseCtx};
use crate::body::ProxyBody;
use crate::errors::ErrorKind;

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

/// Request phase.
pub(crate) fn on_request(
    h: &CompiledHeaders,
    _i: usize,
    req: &mut MwRequest<'_>,
) -> Result<Option<Response<ProxyBody>>, ErrorKind> {
    apply_ops(&h.request, &mut req.parts.headers);
    if let Some(host) = &h.host {
        req.host = host.clone();
    }
    if h.suppress_xff {
        req.suppress_xff = true;
    }
    Ok(None)
}

/// Response phase.
pub(crate) fn on_response(
    h: &CompiledHeaders,
    _i: usize,
    _ctx: &ResponseCtx,
    headers: &mut HeaderMap<HeaderValue>,
) {
    apply_ops(&h.response, headers);
}
