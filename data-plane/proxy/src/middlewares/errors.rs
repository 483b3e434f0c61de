//! `errors` (Traefik's `customerrors`): the request phase notes the request as the middleware
//! saw it (host, path and query, headers to pass on); the response phase, when the status of
//! what it wraps (later middlewares, the service, the proxy's own 502/503/504) is in `status`,
//! replaces the response by the page the error service answers for `GET query`, with the caught
//! status (or its `statusRewrites` replacement) and the page's headers and body. A page request
//! that fails gives the proxy's error body with that status.
//!
//! Because fetching the page waits on the network, the response phase of a route with an
//! `errors` middleware is [`respond`]: the synchronous phases run as usual, innermost first, and
//! each `errors` middleware is awaited in its place.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue, HOST};
use http::{Request, Response, StatusCode};
use switchyard_config::middlewares::errors::CompiledErrors;

use super::{apply_response_from, Mw, MwRequest, ResponseCtx};
use crate::body::{ProxyBody, UpBody};
use crate::errors::error_response;
use crate::server::forward::forward_to;
use crate::server::observe::Upstream;
use crate::server::ConnCtx;
use crate::services::{Node, Services};
use crate::util::resolve_ref;

/// The service of an `errors` middleware, linked per config version.
struct PageService(Arc<Node>);

/// What the response phase needs of the request.
#[derive(Debug)]
pub(crate) struct Seen {
    host: HeaderValue,
    /// `scheme://host/path?query` (for `{url}`).
    url: String,
    headers: HeaderMap,
}

/// Link every `errors` middleware to its service (once per config version).
pub(crate) fn link(
    mws: &std::collections::HashMap<String, Arc<Mw>>,
    services: &Services,
) -> Result<(), String> {
    for (name, m) in mws {
        if let Mw::Errors(e) = &**m {
            let svc = resolve_ref(&e.service);
            let node = services.nodes.get(svc).ok_or_else(|| {
                format!("middleware \"{name}\": errors.service: service \"{svc}\" not found")
            })?;
            let _ = e.service_slot.set(Box::new(PageService(node.clone())));
        }
    }
    Ok(())
}

/// Request phase: note the request.
pub(crate) fn on_request(e: &CompiledErrors, i: usize, req: &mut MwRequest<'_>) {
    let headers = match &e.request_headers {
        None => req.parts.headers.clone(),
        Some(list) => {
            let mut h = HeaderMap::new();
            for n in list {
                for v in req.parts.headers.get_all(n) {
                    h.append(n.clone(), v.clone());
                }
            }
            h
        }
    };
    let pq = req
        .parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let scheme = if req.tls { "https" } else { "http" };
    let url = format!("{scheme}://{}{pq}", req.host.to_str().unwrap_or(""));
    req.ctx.errors.push((
        i,
        Arc::new(Seen {
            host: req.host.clone(),
            url,
            headers,
        }),
    ));
}

/// Replace `resp` by the error page when its status is caught.
async fn on_response(
    cx: &ConnCtx,
    e: &CompiledErrors,
    seen: &Seen,
    resp: &mut Response<ProxyBody>,
) {
    let original = resp.status().as_u16();
    if !e.catches(original) {
        return;
    }
    let code = e.rewrite(original);
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let Some(PageService(node)) = e
        .service_slot
        .get()
        .and_then(|s| s.downcast_ref::<PageService>())
    else {
        return;
    };
    let query = e.page_query(code, original, &seen.url);
    let mut page = match Request::builder().uri(query.as_str()).body(()) {
        Ok(r) => r,
        Err(_) => {
            *resp = error_response(crate::errors::ErrorKind::Internal);
            *resp.status_mut() = status;
            return;
        }
    };
    *page.headers_mut() = seen.headers.clone();
    page.headers_mut().remove(HOST);
    let (parts, ()) = page.into_parts();
    // The page request is not the router's upstream: not observed as such.
    let mut up = Upstream::default();
    let mut out = match forward_to(
        cx,
        node,
        parts,
        UpBody::empty(),
        seen.host.clone(),
        false,
        &mut up,
    )
    .await
    {
        Ok((r, _guard)) => r,
        Err(kind) => error_response(kind),
    };
    *out.status_mut() = status;
    *resp = out;
}

/// The response phase of `mws[..upto]`, innermost first, awaiting `errors`, `contentType`
/// and `buffering` middlewares.
pub(crate) async fn respond(
    cx: &ConnCtx,
    mws: &[Arc<Mw>],
    upto: usize,
    ctx: &ResponseCtx,
    resp: &mut Response<ProxyBody>,
) {
    let mut end = upto.min(mws.len());
    // Middlewares whose response phase awaits: `errors` (that saw the request),
    // `contentType` and `buffering`.
    let awaits = |i: usize| match &*mws[i] {
        Mw::Errors(_) => ctx.errors.iter().any(|(at, _)| *at == i),
        Mw::ContentType(sniff) => *sniff,
        Mw::Buffering(_) => true,
        _ => false,
    };
    while let Some(at) = (0..end).rev().find(|i| awaits(*i)) {
        apply_response_from(mws, at + 1, end, ctx, resp);
        match &*mws[at] {
            Mw::Errors(e) => {
                if let Some((_, seen)) = ctx.errors.iter().find(|(i, _)| *i == at) {
                    on_response(cx, e, seen, resp).await;
                }
            }
            Mw::ContentType(sniff) => super::contenttype::on_response(*sniff, resp).await,
            Mw::Buffering(b) => super::buffering::on_response(b, resp).await,
            _ => {}
        }
        end = at;
    }
    apply_response_from(mws, 0, end, ctx, resp);
}
