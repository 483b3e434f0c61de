//! The request pipeline of an entry point:
//!
//! 1. load the current runtime (one atomic load; kept until the response headers are sent);
//!    start the request's observations ([`super::observe::Obs`]: access log line, spans);
//! 2. reject `CONNECT` (501); the entry point's path hygiene
//!    ([`switchyard_config::paths::entrypoint_path`]: Traefik's `normalizePath`, then
//!    `sanitizePath` unless turned off): `%XX` of unreserved characters decoded, `.`/`..`
//!    segments resolved, duplicate slashes merged — the cleaned path replaces the request's
//!    path, so it is what is routed, rewritten and forwarded; a malformed `%` is a 400; then
//!    ACME HTTP-01 answers on plaintext connections (ahead of every router) and the entry
//!    point's redirection to HTTPS;
//! 3. forwarded-headers stage ([`crate::forwarded::entrypoint_headers`]);
//! 4. route with the host-indexed table (404 without a match), then the entry point's
//!    `encodedCharacters` (a denied `%2F %5C %00 %3B %25 %3F %23` in the path is a 400, as
//!    Traefik's router-level check);
//! 5. the router's middlewares (request phase, awaited: `forwardAuth` asks its server; a
//!    redirect or a refusal answers directly);
//! 6. forward to the service ([`super::forward`], through `retry` when the router has one);
//! 7. the middlewares' response phase, and a [`super::Completion`] on the body that records
//!    metrics, submits the access log line and ends the spans when the body is done.
//!
//! Nothing here allocates per request beyond what hyper and the headers we add need: the
//! header list for rules is only built when a rule of the config looks at headers, and Go's
//! `req.Host` is a clone of the `Host` header value (or, for HTTP/2 and absolute-form
//! requests, of the authority).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use switchyard_config::paths::entrypoint_path;
use switchyard_config::rules::RequestView;

use super::forward::forward;
use super::hygiene::HeadFields;
use super::observe::Obs;
use super::{Completion, ConnCtx};
use crate::body::{ProxyBody, UpBody};
use crate::errors::{error_response, ErrorKind};
use crate::forwarded;
use crate::metrics::RouteStats;
use crate::middlewares::errors::respond;
use crate::middlewares::retry;
use crate::middlewares::{apply_request, set_path, Flow, MwRequest, ResponseCtx};

/// Go's `req.Host`: the URI authority (HTTP/2, absolute-form) or the `Host` header
/// (`header_host`, read with the head's other fields: [`HeadFields`]).
fn request_host(parts: &http::request::Parts, header_host: Option<&HeaderValue>) -> HeaderValue {
    if let Some(a) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
            return v;
        }
    }
    header_host
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(""))
}

/// The response's [`Completion`] (metrics, access log, spans when its body ends). The response
/// is taken by reference: moving it in and out would copy its head twice.
fn finish(
    rt: &crate::runtime::Runtime,
    resp: &mut Response<ProxyBody>,
    stats: Arc<RouteStats>,
    start: Instant,
    inflight: Option<crate::services::lb::InflightGuard>,
    obs: &mut Obs,
) {
    let code = resp.status().as_u16();
    rt.version_stats.record(code, start.elapsed());
    let (labels, retries) = (obs.labels, obs.up.attempts.saturating_sub(1));
    let done = obs.respond(resp);
    resp.body_mut().set_completion(Completion::new(
        stats, start, code, inflight, done, labels, retries,
    ));
}

/// The HTTP-01 prefix (RFC 8555 §8.3).
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// HTTP-01 answers, ahead of every router on plaintext connections of every entry point: a
/// pending token gets its key authorization (200, `text/plain`). An unknown token gets 404
/// when the config has an ACME resolver with `httpChallenge` or challenges are pending
/// (Traefik's challenge router has the highest priority and answers 404 itself); otherwise the
/// request goes to the routers. TLS connections never answer HTTP-01 (the CA uses port 80).
fn acme_http01(rt: &crate::runtime::Runtime, path: &str) -> Option<Response<ProxyBody>> {
    let token = path.strip_prefix(ACME_CHALLENGE_PREFIX)?;
    match rt.tls.http01(token) {
        Some(key_auth) => {
            let mut resp = Response::new(ProxyBody::full(bytes::Bytes::copy_from_slice(
                key_auth.as_bytes(),
            )));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            Some(resp)
        }
        None if rt.http01_enabled => Some(error_response(ErrorKind::NoRoute)),
        None => None,
    }
}

/// The entry point redirection to HTTPS (`--redirect-to-https`): `https://` + the request's
/// host without its port + `port` (`:8443`, or empty for 443) + the path and query.
fn https_redirect(
    parts: &http::request::Parts,
    header_host: Option<&HeaderValue>,
    port: &str,
    permanent: bool,
) -> Result<Response<ProxyBody>, ErrorKind> {
    let host = request_host(parts, header_host);
    let host = host.to_str().map_err(|_| ErrorKind::BadRequest)?;
    let name = host_name(host);
    if name.is_empty() {
        return Err(ErrorKind::BadRequest);
    }
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{name}{port}{pq}");
    crate::middlewares::redirect_response(&location, &parts.method, permanent)
}

/// A host value without its port (`[::1]:80` → `[::1]`, `a.com:80` → `a.com`).
fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => &host[..rest.find(']').map_or(host.len(), |i| i + 2)],
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    }
}

/// Traefik's domain-fronting check (`snicheck`): on a TLS connection, a request whose host
/// differs from the SNI is refused (421) when the two names select different TLS options, so a
/// client cannot use the SNI of a lax option (e.g. no client certificate) to reach a router
/// protected by a stricter one. Nothing is computed when the host equals the SNI.
fn misdirected(rt: &crate::runtime::Runtime, sni: Option<&str>, host: &HeaderValue) -> bool {
    let host = host_name(host.to_str().unwrap_or(""));
    let sni = sni.unwrap_or("");
    if host.eq_ignore_ascii_case(sni) {
        return false;
    }
    rt.tls.option_for(host) != rt.tls.option_for(sni)
}

/// Serve one request (its head read at `start`; `fields` read from it by the connection).
pub(crate) async fn handle(
    cx: &ConnCtx,
    req: Request<Incoming>,
    start: Instant,
    fields: HeadFields,
) -> Response<ProxyBody> {
    let shared = &cx.shared;
    let Some(ep) = shared.entrypoints.get(cx.ep) else {
        shared.metrics.count_error(ErrorKind::Internal);
        return error_response(ErrorKind::Internal);
    };
    let rt = shared.current.load_full();
    let error = |kind: ErrorKind, stats: Arc<RouteStats>, mut obs: Obs| {
        shared.metrics.count_error(kind);
        let mut resp = error_response(kind);
        finish(&rt, &mut resp, stats, start, None, &mut obs);
        resp
    };
    let (mut parts, body) = req.into_parts();
    let body_len = hyper::body::Body::size_hint(&body).exact();
    let mut obs = Obs::begin(cx, ep, &parts, body_len);
    let body = UpBody::client(body, &mut parts);

    if parts.method == http::Method::CONNECT {
        return error(ErrorKind::NotImplemented, ep.no_route.clone(), obs);
    }
    match entrypoint_path(parts.uri.path(), ep.paths.sanitize) {
        Err(_) => return error(ErrorKind::BadRequest, ep.no_route.clone(), obs),
        Ok(Cow::Borrowed(_)) => {}
        Ok(Cow::Owned(clean)) => {
            if set_path(&mut parts, Cow::Owned(clean)).is_err() {
                return error(ErrorKind::BadRequest, ep.no_route.clone(), obs);
            }
        }
    }
    if !cx.tls {
        if let Some(mut resp) = acme_http01(&rt, parts.uri.path()) {
            finish(&rt, &mut resp, ep.no_route.clone(), start, None, &mut obs);
            return resp;
        }
        if let Some((port, permanent)) = &ep.https_redirect {
            let mut resp = https_redirect(&parts, fields.host.as_ref(), port, *permanent)
                .unwrap_or_else(error_response);
            finish(&rt, &mut resp, ep.no_route.clone(), start, None, &mut obs);
            return resp;
        }
    }
    let host = request_host(&parts, fields.host.as_ref());
    if cx.tls && misdirected(&rt, cx.sni.as_deref(), &host) {
        return error(ErrorKind::Misdirected, ep.no_route.clone(), obs);
    }
    forwarded::entrypoint_headers(
        &mut parts.headers,
        Some(&host),
        cx.trusted,
        &cx.client_ip,
        shared.proxy_id.as_ref(),
        ep.port.as_ref(),
        forwarded::proto_name(fields.websocket, cx.tls),
    );

    let route = {
        let list: Vec<(&str, &str)>;
        let headers: &[(&str, &str)] = if rt.needs_headers {
            list = parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
                .collect();
            &list
        } else {
            &[]
        };
        let view = RequestView {
            method: parts.method.as_str(),
            host: host.to_str().unwrap_or(""),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers,
            client_ip: Some(cx.peer.ip()),
        };
        rt.table
            .lookup_conn(&ep.name, cx.tls, &view)
            .and_then(|r| rt.route(r))
    };
    let Some(rr) = route else {
        return error(ErrorKind::NoRoute, ep.no_route.clone(), obs);
    };
    obs.routed(rr);
    // `observability.metrics: false`: counted for the entry point only.
    let stats = rr
        .stats(cx.ep, &ep.name, &shared.metrics)
        .filter(|_| rr.obs.metrics)
        .unwrap_or_else(|| ep.no_route.clone());
    if ep.paths.encoded.check(parts.uri.path()).is_err() {
        return error(ErrorKind::BadRequest, stats, obs);
    }

    let mut mreq = MwRequest {
        parts: &mut parts,
        host,
        suppress_xff: false,
        client_ip: forwarded::unmap(cx.peer.ip()),
        tls: cx.tls,
        ctx: ResponseCtx::default(),
        body,
        client_certs: &cx.client_certs,
        trace: obs.span_parent(),
    };
    let flow = if rr.middlewares.is_empty() {
        Ok(Flow::Continue)
    } else {
        apply_request(&rr.middlewares, &mut mreq).await
    };
    let MwRequest {
        host,
        suppress_xff,
        ctx: mut mctx,
        body,
        ..
    } = mreq;
    match flow {
        Err(kind) => {
            shared.metrics.count_error(kind);
            let mut resp = error_response(kind);
            respond(cx, &rr.middlewares, rr.middlewares.len(), &mctx, &mut resp).await;
            finish(&rt, &mut resp, stats, start, None, &mut obs);
            return resp;
        }
        Ok(Flow::Respond(resp, at)) => {
            let mut resp = *resp;
            respond(cx, &rr.middlewares, at, &mctx, &mut resp).await;
            finish(&rt, &mut resp, stats, start, None, &mut obs);
            return resp;
        }
        Ok(Flow::Continue) => {}
    }

    // Most routes have no retry: their forward is awaited here, one future less.
    let res = match retry::plan(rr, &parts, &body) {
        None => forward(cx, rr, parts, body, host, suppress_xff, &mut obs.up).await,
        Some(plan) => {
            retry::forward(cx, rr, plan, parts, body, host, suppress_xff, &mut obs.up).await
        }
    };
    let (mut resp, inflight) = match res {
        Ok(x) => x,
        Err(kind) => {
            shared.metrics.count_error(kind);
            (error_response(kind), None)
        }
    };
    if rr.response_phase {
        respond(cx, &rr.middlewares, rr.middlewares.len(), &mctx, &mut resp).await;
    }
    if !mctx.held.is_empty() {
        resp.body_mut().hold(std::mem::take(&mut mctx.held));
    }
    finish(&rt, &mut resp, stats, start, inflight, &mut obs);
    resp
}
