//! Forwarding a routed request to its service (Go's `httputil.ReverseProxy` behaviour):
//! `X-Forwarded-For`, hop-by-hop headers and `X-Request-Id` on the way out, service graph
//! resolution (weighted, failover, mirroring) down to a load balancer, server choice, the
//! upstream URI and Host, the send with the response header timeout, passive-health
//! accounting, hop-by-hop removal on the response, sticky cookies, and WebSocket tunnels.
//!
//! **Host and URI.** With `passHostHeader` (default) the client's host is sent as `Host` and,
//! for HTTP/2 backends (`h2c`, or `https` when ALPN picks h2), as `:authority`; without it
//! the server URL's host is used. The connection always goes to the chosen server (see
//! [`crate::upstream::connect`]). With `preservePath`, the server URL's path is prepended.
//!
//! **Upgrades.** An HTTP/1.1 request with `Connection: upgrade` keeps `Connection`/`Upgrade`;
//! when the backend answers 101, both upgraded connections are spliced with
//! `copy_bidirectional` in a task tracked for graceful shutdown.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, COOKIE, HOST, SET_COOKIE, UPGRADE};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme as UriScheme};
use http::{Extensions, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::observe::Upstream;
use super::ConnCtx;
use crate::body::{ProxyBody, Tee, UpBody};
use crate::errors::{classify_upstream, is_client_side, ErrorKind};
use crate::forwarded::{
    append_xff, ensure_request_id, remove_hop_by_hop, remove_request_hop_by_hop, X_FORWARDED_FOR,
};
use crate::runtime::RouteRt;
use crate::services::lb::{InflightGuard, LoadBalancer, Server};
use crate::services::{Mirroring, Node, Step, MIRROR_MAX_INFLIGHT};
use crate::upstream::{PooledBody, Scheme};

/// Forward a request whose middlewares have run. Returns the response (body streamed) and
/// the in-flight guard of the server, or the error the proxy answers with.
///
/// A plain function returning [`forward_to`]'s future: an `async` wrapper would be one more
/// future state the request's `Parts` and body are moved into.
pub(crate) fn forward<'a>(
    cx: &'a ConnCtx,
    rr: &'a RouteRt,
    parts: Parts,
    body: UpBody,
    host: HeaderValue,
    suppress_xff: bool,
    obs: &'a mut Upstream,
) -> impl std::future::Future<Output = Result<(Response<ProxyBody>, Option<InflightGuard>), ErrorKind>>
       + 'a {
    forward_to(cx, &rr.service, parts, body, host, suppress_xff, obs)
}

/// [`forward`] to a given service (e.g. the `errors` middleware's page service).
pub(crate) async fn forward_to(
    cx: &ConnCtx,
    service: &Arc<Node>,
    mut parts: Parts,
    body: UpBody,
    host: HeaderValue,
    suppress_xff: bool,
    obs: &mut Upstream,
) -> Result<(Response<ProxyBody>, Option<InflightGuard>), ErrorKind> {
    obs.attempts += 1;
    let client_version = parts.version;
    if suppress_xff {
        parts.headers.remove(&X_FORWARDED_FOR);
    } else {
        append_xff(&mut parts.headers, &cx.client_ip);
    }
    // The protocol being upgraded to (HTTP/1 only), found while removing hop-by-hop headers.
    let upgrade = remove_request_hop_by_hop(&mut parts.headers, client_version <= Version::HTTP_11);
    ensure_request_id(&mut parts.headers);
    if client_version == Version::HTTP_2 {
        merge_cookies(&mut parts.headers);
    }
    let client_upgrade = if upgrade.is_some() {
        parts.extensions.remove::<OnUpgrade>()
    } else {
        None
    };
    parts.extensions = Extensions::new();

    // Resolve the service graph down to a load balancer.
    let mut cookies: Vec<HeaderValue> = Vec::new();
    let mut body = body;
    let mut node: &Arc<Node> = service;
    let lb = loop {
        match node.step(&parts.headers) {
            Step::Lb(lb) => break lb,
            Step::Next(child, cookie) => {
                cookies.extend(cookie);
                node = child;
            }
            Step::Mirror(m) => {
                body = mirror(cx, m, &parts, &host, body);
                node = &m.main;
            }
            Step::Unavailable => return Err(ErrorKind::NoHealthyServer),
        }
    };
    let picked = lb.pick(&parts.headers).ok_or(ErrorKind::NoHealthyServer)?;
    cookies.extend(picked.set_cookie);
    let server = picked.server;
    prepare(&mut parts, &server, lb.pass_host_header, &host)?;
    let guard = server.start_request();
    obs.attempt(&lb.name, &server, &parts.method, &mut parts.headers);
    // The send awaited here (not through `send`: one future less for the request to be
    // moved into).
    let req = Request::from_parts(parts, body);
    let res = match lb.response_header_timeout {
        Some(t) => tokio::time::timeout(t, server.client.request(req))
            .await
            .map_err(|_| header_timeout(lb, &server)),
        None => Ok(server.client.request(req).await),
    };
    let resp = match res.and_then(|r| r.map_err(|e| send_failed(lb, &server, &e))) {
        Ok(r) => r,
        Err(kind) => {
            obs.failed(kind);
            return Err(kind);
        }
    };
    obs.answered(resp.status());

    let (mut rparts, rbody) = resp.into_parts();
    // Answer in the client's protocol (a backend may speak HTTP/1.0 or HTTP/2); hyper writes
    // the status line from this version.
    rparts.version = if client_version == Version::HTTP_2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    if rparts.status == StatusCode::SWITCHING_PROTOCOLS {
        let backend_upgrade = rparts.extensions.remove::<OnUpgrade>();
        let up = rparts.headers.get(UPGRADE).cloned();
        remove_hop_by_hop(&mut rparts.headers, up);
        match (client_upgrade, backend_upgrade) {
            (Some(c), Some(b)) => tunnel(cx, c, b),
            _ => return Err(ErrorKind::BadGateway),
        }
    } else {
        remove_hop_by_hop(&mut rparts.headers, None);
    }
    for c in cookies {
        rparts.headers.append(SET_COOKIE, c);
    }
    Ok((
        Response::from_parts(rparts, ProxyBody::incoming(rbody)),
        Some(guard),
    ))
}

/// HTTP/2 clients may split `Cookie` into several fields; HTTP/1.1 backends expect one
/// (RFC 9113 §8.2.3), so they are joined with `"; "` (as Go's HTTP/2 server does).
fn merge_cookies(headers: &mut http::HeaderMap) {
    let mut all = headers.get_all(COOKIE).iter();
    let (Some(first), Some(_)) = (all.next(), all.next()) else {
        return;
    };
    let mut v = first.as_bytes().to_vec();
    for c in headers.get_all(COOKIE).iter().skip(1) {
        v.extend_from_slice(b"; ");
        v.extend_from_slice(c.as_bytes());
    }
    if let Ok(joined) = HeaderValue::from_bytes(&v) {
        headers.insert(COOKIE, joined);
    }
}

/// Set the upstream URI, version and Host for `server`.
fn prepare(
    parts: &mut Parts,
    server: &Server,
    pass_host: bool,
    host: &HeaderValue,
) -> Result<(), ErrorKind> {
    let scheme = server.parsed.scheme;
    let h2c = scheme == Scheme::H2c;
    let pass = pass_host && !host.is_empty();
    let pq = match (server.preserve_path, parts.uri.path_and_query()) {
        (true, pq) => {
            let p = pq.map_or("/", PathAndQuery::as_str);
            PathAndQuery::try_from(format!("{}{p}", server.parsed.path))
                .map_err(|_| ErrorKind::BadRequest)?
        }
        (false, Some(pq)) => pq.clone(),
        (false, None) => PathAndQuery::from_static("/"),
    };
    // Plain `http` servers get the origin form directly (what HTTP/1.1 sends).
    parts.uri = if scheme == Scheme::Http {
        Uri::from(pq)
    } else {
        // The authority only reaches the wire for HTTP/2 (`:authority`).
        let authority = if pass {
            http::uri::Authority::try_from(host.as_bytes())
                .unwrap_or_else(|_| server.authority.clone())
        } else {
            server.authority.clone()
        };
        let mut up = http::uri::Parts::default();
        up.scheme = Some(if scheme == Scheme::Https {
            UriScheme::HTTPS
        } else {
            UriScheme::HTTP
        });
        up.authority = Some(authority);
        up.path_and_query = Some(pq);
        Uri::from_parts(up).map_err(|_| ErrorKind::BadRequest)?
    };
    parts.version = if h2c {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    if h2c {
        // HTTP/2 carries the host in `:authority`.
        parts.headers.remove(HOST);
    } else if pass {
        parts.headers.insert(HOST, host.clone());
    } else {
        parts.headers.insert(HOST, server.host_header.clone());
    }
    Ok(())
}

/// Send to `server`, with the response header timeout; failures feed passive health.
async fn send(
    lb: &LoadBalancer,
    server: &Server,
    req: Request<UpBody>,
) -> Result<Response<PooledBody>, ErrorKind> {
    let fut = server.client.request(req);
    let res = match lb.response_header_timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => return Err(header_timeout(lb, server)),
        },
        None => fut.await,
    };
    res.map_err(|e| send_failed(lb, server, &e))
}

/// The response header timeout expired: a failure for passive health.
fn header_timeout(lb: &LoadBalancer, server: &Server) -> ErrorKind {
    lb.report_failure(server, false);
    tracing::debug!(service = %lb.name, server = %server.url, "response header timeout");
    ErrorKind::GatewayTimeout
}

/// A send failed: a failure for passive health unless the client caused it; the proxy's answer.
fn send_failed(lb: &LoadBalancer, server: &Server, e: &crate::upstream::Error) -> ErrorKind {
    if !is_client_side(e) {
        lb.report_failure(server, e.is_connect());
    }
    let kind = classify_upstream(e);
    tracing::debug!(service = %lb.name, server = %server.url, error = ?e, "backend request failed");
    kind
}

/// Splice the client's and the backend's upgraded connections.
fn tunnel(cx: &ConnCtx, client: OnUpgrade, backend: OnUpgrade) {
    let tracker = cx.shared.tunnels.clone();
    let guard = tracker.enter();
    let mut stop = tracker.stopped();
    cx.shared.handle.spawn(async move {
        let _guard = guard;
        let (c, b) = tokio::join!(client, backend);
        let (Ok(c), Ok(b)) = (c, b) else {
            return;
        };
        let mut c = TokioIo::new(c);
        let mut b = TokioIo::new(b);
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut c, &mut b) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "tunnel closed with an error");
                }
            }
            _ = stop.changed() => {}
        }
    });
}

/// A request to copy to mirrors.
struct Copy {
    method: http::Method,
    uri: Uri,
    headers: http::HeaderMap,
    host: HeaderValue,
}

/// Start mirroring a request (see [`crate::services`]); returns the body to send to the main
/// service (a tee when the body is mirrored).
fn mirror(cx: &ConnCtx, m: &Mirroring, parts: &Parts, host: &HeaderValue, body: UpBody) -> UpBody {
    let targets: Vec<Arc<Node>> = m.active().into_iter().cloned().collect();
    if targets.is_empty() {
        return body;
    }
    if m.state.inflight.load(std::sync::atomic::Ordering::Relaxed) >= MIRROR_MAX_INFLIGHT {
        tracing::debug!("mirror copies dropped: too many in flight");
        return body;
    }
    let copy = Copy {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        host: host.clone(),
    };
    let state = m.state.clone();
    match body {
        UpBody::Incoming(inc) if m.mirror_body && !http_body::Body::is_end_stream(&inc) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<Bytes>();
            cx.shared.handle.spawn(async move {
                match rx.await {
                    Ok(b) => send_mirrors(targets, copy, Some(b), state).await,
                    Err(_) => tracing::debug!("mirror skipped: body too large or not complete"),
                }
            });
            UpBody::Tee(Tee::new(inc, m.max_body, tx))
        }
        other => {
            cx.shared
                .handle
                .spawn(send_mirrors(targets, copy, None, state));
            other
        }
    }
}

async fn send_mirrors(
    targets: Vec<Arc<Node>>,
    copy: Copy,
    body: Option<Bytes>,
    state: Arc<crate::services::MirrorState>,
) {
    for target in targets {
        state
            .inflight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = send_one_mirror(&target, &copy, body.clone()).await;
        state
            .inflight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(kind) = r {
            tracing::debug!(mirror = %target.name, error = %kind, "mirror request failed");
        }
    }
}

async fn send_one_mirror(
    target: &Arc<Node>,
    copy: &Copy,
    body: Option<Bytes>,
) -> Result<(), ErrorKind> {
    let mut node = target;
    let lb = loop {
        match node.step(&copy.headers) {
            Step::Lb(lb) => break lb,
            Step::Next(child, _) => node = child,
            // Mirrors of mirrors are not copied again.
            Step::Mirror(m) => node = &m.main,
            Step::Unavailable => return Err(ErrorKind::NoHealthyServer),
        }
    };
    let picked = lb.pick(&copy.headers).ok_or(ErrorKind::NoHealthyServer)?;
    let mut req = Request::new(UpBody::Full(body.filter(|b| !b.is_empty())));
    *req.method_mut() = copy.method.clone();
    *req.uri_mut() = copy.uri.clone();
    *req.headers_mut() = copy.headers.clone();
    // The copy's body may differ from the original (none, or buffered): let hyper frame it.
    req.headers_mut().remove(http::header::CONTENT_LENGTH);
    let (mut parts, body) = req.into_parts();
    prepare(&mut parts, &picked.server, lb.pass_host_header, &copy.host)?;
    let _guard = picked.server.start_request();
    let resp = send(lb, &picked.server, Request::from_parts(parts, body)).await?;
    // Drain and discard.
    let _ = resp.into_body().collect().await;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_merged() {
        let mut h = http::HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1"));
        merge_cookies(&mut h);
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        h.append(COOKIE, HeaderValue::from_static("c=3"));
        merge_cookies(&mut h);
        let all: Vec<_> = h.get_all(COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
    }
}
