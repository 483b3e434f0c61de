//! `buffering` (see [`switchyard_config::middlewares::buffering`]): the request body is read
//! whole before the request goes on (413 over `maxRequestBodyBytes`), the response body
//! before it is answered (500 over `maxResponseBodyBytes`), and `retryExpression` sends the
//! buffered request again ([`retry_of`], applied by [`super::retry::forward`]).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Response, StatusCode};
use switchyard_config::middlewares::buffering::{CompiledBuffering, RetryExpr};

use super::forwardauth::read_limited;
use super::{Mw, MwRequest};
use crate::body::{ProxyBody, UpBody};
use crate::errors::{error_response, ErrorKind};

fn too_large() -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(Bytes::from_static(
        b"Request Entity Too Large",
    )));
    *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Request phase: read the body whole.
pub(crate) async fn on_request(
    b: &CompiledBuffering,
    req: &mut MwRequest<'_>,
) -> Result<Option<Response<ProxyBody>>, ErrorKind> {
    let declared = req
        .parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if let (Some(max), Some(n)) = (b.max_request, declared) {
        if n > max {
            return Ok(Some(too_large()));
        }
    }
    let body = std::mem::replace(&mut req.body, UpBody::empty());
    match read_limited(body, b.max_request).await {
        Ok(Ok(data)) => {
            req.parts.headers.remove(TRANSFER_ENCODING);
            if data.is_empty() {
                if declared.is_some() {
                    req.parts
                        .headers
                        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                }
            } else {
                req.parts
                    .headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(data.len() as u64));
                req.body = UpBody::Full(Some(data));
            }
            Ok(None)
        }
        Ok(Err(())) => Ok(Some(too_large())),
        Err(()) => Err(ErrorKind::BadRequest),
    }
}

/// Response phase: read the body whole (500 over the limit).
pub(crate) async fn on_response(b: &CompiledBuffering, resp: &mut Response<ProxyBody>) {
    let body = std::mem::replace(resp.body_mut(), ProxyBody::full(Bytes::new()));
    match read_limited(body, b.max_response).await {
        Ok(Ok(data)) => {
            let h = resp.headers_mut();
            h.remove(TRANSFER_ENCODING);
            // An empty body keeps the length the backend gave (a HEAD answer's).
            let bodiless = resp.status().is_informational()
                || resp.status() == StatusCode::NO_CONTENT
                || resp.status() == StatusCode::NOT_MODIFIED;
            let keep = data.is_empty() && resp.headers().contains_key(CONTENT_LENGTH);
            if !(bodiless || keep) {
                resp.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(data.len() as u64));
            }
            *resp.body_mut() = ProxyBody::full(data);
        }
        _ => *resp = error_response(ErrorKind::Internal),
    }
}

/// The `retryExpression` of the route's first `buffering` that has one.
pub(crate) fn retry_of(mws: &[Arc<Mw>]) -> Option<&RetryExpr> {
    mws.iter().find_map(|m| match &**m {
        Mw::Buffering(b) => b.retry.as_ref(),
        _ => None,
    })
}
