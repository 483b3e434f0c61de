//! `retry`: the forward to the service is attempted again when it got no response (the
//! proxy would answer 502 or 504), up to `attempts` in all, after an exponential backoff
//! (see [`switchyard_config::middlewares::retry`]). Each attempt goes through the service's
//! load balancer again, so it may reach another server. Requests with a body (nothing to
//! replay) and upgrades are sent once. The first `retry` of a router's list applies.

use std::sync::Arc;

use http::header::HeaderValue;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body as _;
use switchyard_config::middlewares::retry::CompiledRetry;

use super::Mw;
use crate::body::{ProxyBody, UpBody};
use crate::errors::ErrorKind;
use crate::runtime::RouteRt;
use crate::server::forward;
use crate::server::observe::Upstream;
use crate::server::ConnCtx;
use crate::services::lb::InflightGuard;

fn retry_of(mws: &[Arc<Mw>]) -> Option<&CompiledRetry> {
    mws.iter().find_map(|m| match &**m {
        Mw::Retry(r) => Some(r),
        _ => None,
    })
}

/// A copy of the request head (extensions are not copied: none survive forwarding).
fn copy(p: &Parts) -> Parts {
    let (mut c, ()) = Request::new(()).into_parts();
    c.method = p.method.clone();
    c.uri = p.uri.clone();
    c.version = p.version;
    c.headers = p.headers.clone();
    c
}

/// How a route's forward is retried (see [`plan`]).
pub(crate) enum Plan<'a> {
    /// `buffering.retryExpression` over the buffered body.
    Buffered(
        &'a switchyard_config::middlewares::buffering::RetryExpr,
        Option<bytes::Bytes>,
    ),
    /// The `retry` middleware (a replayable request: no body, no upgrade).
    Retry(&'a CompiledRetry),
}

/// Whether the route's forward is retried, and how: `None` (most routes) means one plain
/// [`forward::forward`], awaited by the caller itself (no retry future between the pipeline
/// and the forward for the request's head and body to be moved into).
pub(crate) fn plan<'a>(rr: &'a RouteRt, parts: &Parts, body: &UpBody) -> Option<Plan<'a>> {
    if let Some(expr) = super::buffering::retry_of(&rr.middlewares) {
        if let UpBody::Full(buffered) = body {
            return Some(Plan::Buffered(expr, buffered.clone()));
        }
    }
    let retry = retry_of(&rr.middlewares).filter(|r| r.attempts > 1)?;
    let replayable = body.is_end_stream()
        && !parts.headers.contains_key(http::header::UPGRADE)
        && parts.method != http::Method::CONNECT;
    replayable.then_some(Plan::Retry(retry))
}

/// Forward, retrying as `plan` (from [`plan`]) says.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn forward(
    cx: &ConnCtx,
    rr: &RouteRt,
    plan: Plan<'_>,
    parts: Parts,
    body: UpBody,
    host: HeaderValue,
    suppress_xff: bool,
    up: &mut Upstream,
) -> Result<(Response<ProxyBody>, Option<InflightGuard>), ErrorKind> {
    let retry = match plan {
        Plan::Buffered(expr, buffered) => {
            drop(body);
            return buffered_forward(cx, rr, parts, buffered, host, suppress_xff, up, expr).await;
        }
        Plan::Retry(retry) => retry,
    };
    drop(body);
    let mut attempt = 1;
    loop {
        let last = attempt >= retry.attempts;
        let res = forward::forward(
            cx,
            rr,
            copy(&parts),
            UpBody::empty(),
            host.clone(),
            suppress_xff,
            up,
        )
        .await;
        match res {
            Err(ErrorKind::BadGateway | ErrorKind::GatewayTimeout) if !last => {
                let wait = retry.backoff(attempt);
                if !wait.is_zero() {
                    tokio::time::sleep(wait.mul_f64(0.5 + rand::random::<f64>())).await;
                }
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// `buffering.retryExpression`: the buffered request is sent again while the expression
/// holds for the last attempt (at most [`MAX_ATTEMPTS`] in all).
#[allow(clippy::too_many_arguments)]
async fn buffered_forward(
    cx: &ConnCtx,
    rr: &RouteRt,
    parts: Parts,
    body: Option<bytes::Bytes>,
    host: HeaderValue,
    suppress_xff: bool,
    up: &mut Upstream,
    expr: &switchyard_config::middlewares::buffering::RetryExpr,
) -> Result<(Response<ProxyBody>, Option<InflightGuard>), ErrorKind> {
    use switchyard_config::middlewares::buffering::{Attempt, MAX_ATTEMPTS};
    let mut attempts = 1;
    loop {
        let res = forward::forward(
            cx,
            rr,
            copy(&parts),
            UpBody::Full(body.clone()),
            host.clone(),
            suppress_xff,
            up,
        )
        .await;
        let code = match &res {
            Ok((r, _)) => r.status().as_u16(),
            Err(k) => k.status().as_u16(),
        };
        let again = Attempt {
            attempts,
            response_code: code,
        };
        if attempts >= MAX_ATTEMPTS || !expr.eval(&again) {
            return res;
        }
        attempts += 1;
    }
}
