//! The middlewares' runtime, one file per family. Their options are compiled once per config
//! version by [`switchyard_config::middlewares`] (pure code the control plane also runs when
//! validating); here they are applied per request with Traefik v3 semantics:
//!
//! * [`rewrite`]: `addPrefix`, `stripPrefix`, `stripPrefixRegex`, `replacePath`,
//!   `replacePathRegex`;
//! * [`redirect`]: `redirectScheme`, `redirectRegex`;
//! * [`headers`]: the `headers` middleware;
//! * [`ipallowlist`]: `ipAllowList` and `ipWhiteList`;
//! * [`basicauth`]: the `basicAuth` middleware;
//! * [`digestauth`]: the `digestAuth` middleware;
//! * [`ratelimit`]: the `rateLimit` middleware (per-proxy scope);
//! * [`inflight`]: the `inFlightReq` middleware;
//! * [`retry`]: the `retry` middleware (around the forward to the service);
//! * [`circuitbreaker`]: the `circuitBreaker` middleware (fallback in the request phase,
//!   responses recorded in the response phase);
//! * [`compress`]: the `compress` middleware (response bodies encoded as they stream);
//! * [`forwardauth`]: the `forwardAuth` middleware (the request phase awaits the
//!   authentication server);
//! * [`errors`]: the `errors` middleware (the response phase awaits the error page, see
//!   [`errors::respond`]);
//! * [`contenttype`]: `contentType` (the response phase awaits the first data to sniff);
//! * [`buffering`]: `buffering` (both phases await the whole body; retries in
//!   [`retry::forward`]);
//! * [`grpcweb`]: `grpcWeb` (preflight, gRPC-Web ↔ gRPC);
//! * [`passtlsclientcert`]: `passTLSClientCert` (the connection's client certificates);
//! * `encodedCharacters`: 400 for a denied encoded character in the path (here);
//! * `chain`: flattened into the router's list at compile time ([`flatten`]).
//!
//! The request phase runs the middlewares in order; one may answer directly (a redirect, a
//! refusal), and then only the middlewares before it see its response. The response phase
//! runs in reverse order (innermost first), so an outer middleware's value wins, as with Go's
//! nested handlers; it also runs on responses the proxy generates behind the middlewares
//! (502/503/…).

pub(crate) mod basicauth;
pub(crate) mod buffering;
pub(crate) mod circuitbreaker;
pub(crate) mod compress;
pub(crate) mod contenttype;
pub(crate) mod digestauth;
pub(crate) mod errors;
pub(crate) mod forwardauth;
pub(crate) mod grpcweb;
pub(crate) mod headers;
pub(crate) mod inflight;
pub(crate) mod ipallowlist;
pub(crate) mod passtlsclientcert;
pub(crate) mod ratelimit;
pub(crate) mod redirect;
pub(crate) mod retry;
pub(crate) mod rewrite;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::HeaderValue;
use http::request::Parts;
use http::Response;
use switchyard_config::middlewares::compile;
pub(crate) use switchyard_config::middlewares::CompiledMiddleware as Mw;
use switchyard_config::Middleware as MwConfig;

use crate::body::{ProxyBody, UpBody};
use crate::errors::ErrorKind;
use crate::util::resolve_ref;

pub(crate) use redirect::redirect_response;
pub(crate) use rewrite::{escape_path, set_path};

/// Go's `http.Request` view the middlewares work on.
pub(crate) struct MwRequest<'a> {
    pub parts: &'a mut Parts,
    /// Go's `req.Host` (authority or Host header).
    pub host: HeaderValue,
    /// Set by a `headers` middleware with an empty `X-Forwarded-For`.
    pub suppress_xff: bool,
    /// The client's address (the TCP peer).
    pub client_ip: IpAddr,
    /// The request came over TLS.
    pub tls: bool,
    /// What the response phase needs to know about the request.
    pub ctx: ResponseCtx,
    /// The request body (a middleware may buffer it).
    pub body: UpBody,
    /// The client's TLS certificates (leaf first; empty without mutual TLS).
    pub client_certs: &'a [rustls::pki_types::CertificateDer<'static>],
    /// The tracer and the request's server span (tracing on for this request): middlewares
    /// that call out (`forwardAuth`) make a client span under it.
    pub trace: Option<crate::server::SpanParent>,
}

/// Per-request facts the request phase records for the response phase (the request itself
/// has gone to the backend by then).
#[derive(Debug, Default)]
pub(crate) struct ResponseCtx {
    /// The request's `Origin` (recorded when a `headers` middleware does CORS).
    pub origin: Option<HeaderValue>,
    /// Bit `i`: middleware `i` (a `headers` middleware) saw a secure request (TLS, or one of
    /// its `sslProxyHeaders`); only the first 64 middlewares of a route are tracked.
    pub secure: u64,
    /// The innermost `compress` middleware that chose an encoding: its index and the encoding.
    pub compress: Option<(usize, switchyard_config::middlewares::compress::Encoding)>,
    /// `inFlightReq` slots, held until the response body is finished.
    pub held: Vec<switchyard_config::middlewares::inflight::Slot>,
    /// `forwardAuth` middlewares (index) whose authentication server set cookies, with those
    /// named in `addAuthCookiesToResponse`.
    pub auth_cookies: Vec<(usize, Arc<[HeaderValue]>)>,
    /// `errors` middlewares (index) the request went through, with what they saw of it.
    pub errors: Vec<(usize, Arc<errors::Seen>)>,
    /// When the first `circuitBreaker` let the request pass (its latency is measured from
    /// there).
    pub started: Option<std::time::Instant>,
    /// The `grpcWeb` middleware that turned the request into gRPC.
    pub grpc_web: Option<grpcweb::Seen>,
}

impl ResponseCtx {
    pub(crate) fn set(bits: &mut u64, i: usize) {
        if i < 64 {
            *bits |= 1 << i;
        }
    }

    pub(crate) fn get(bits: u64, i: usize) -> bool {
        i < 64 && bits & (1 << i) != 0
    }
}

/// What the request phase decided.
pub(crate) enum Flow {
    /// Continue to the service.
    Continue,
    /// Answer with this response; `.1` is the index of the middleware that answered
    /// (response modifications of the middlewares before it still apply).
    Respond(Box<Response<ProxyBody>>, usize),
}

/// Compile every middleware of a config (chains are resolved by [`flatten`]).
pub(crate) fn compile_all(
    mws: &switchyard_config::Map<MwConfig>,
) -> Result<HashMap<String, Arc<Mw>>, String> {
    let mut out = HashMap::with_capacity(mws.len());
    for (name, m) in mws {
        let c = compile(m).map_err(|errs| {
            let list: Vec<String> = errs
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            format!("middleware \"{name}\": {}", list.join("; "))
        })?;
        if let Mw::ForwardAuth(f) = &c {
            forwardauth::prepare(f).map_err(|e| format!("middleware \"{name}\": {e}"))?;
        }
        out.insert(name.clone(), Arc::new(c));
    }
    Ok(out)
}

/// The `rateLimit` and `inFlightReq` middlewares with `scope: cluster`, by name.
pub(crate) fn cluster_limiters(all: &HashMap<String, Arc<Mw>>) -> Vec<(String, Arc<Mw>)> {
    let mut out: Vec<(String, Arc<Mw>)> = all
        .iter()
        .filter(|(_, m)| match &***m {
            Mw::RateLimit(r) => r.cluster && r.rate.is_some(),
            Mw::InFlightReq(c) => c.cluster && c.amount > 0,
            _ => false,
        })
        .map(|(n, m)| (n.clone(), m.clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Expand a router's middleware references (chains recursively, iteratively so deep chains
/// cannot overflow the stack) into the list applied per request.
pub(crate) fn flatten(
    refs: &[String],
    all: &HashMap<String, Arc<Mw>>,
) -> Result<Box<[Arc<Mw>]>, String> {
    let mut out = Vec::new();
    // Stack of reference lists being walked, with the position in each.
    let mut stack: Vec<(&[String], usize)> = vec![(refs, 0)];
    while let Some((list, pos)) = stack.pop() {
        let Some(r) = list.get(pos) else { continue };
        stack.push((list, pos + 1));
        if stack.len() > 10_000 {
            return Err("middleware chains are nested too deeply".into());
        }
        let name = resolve_ref(r);
        match all.get(name) {
            Some(m) => match &**m {
                Mw::Chain(children) => stack.push((children, 0)),
                _ => out.push(m.clone()),
            },
            None => return Err(format!("middleware \"{name}\" not found")),
        }
    }
    Ok(out.into_boxed_slice())
}

/// Run the request phase of `mws` in order (middlewares that wait on the network, such as
/// `forwardAuth`, are awaited here; the others are synchronous).
pub(crate) async fn apply_request(
    mws: &[Arc<Mw>],
    req: &mut MwRequest<'_>,
) -> Result<Flow, ErrorKind> {
    for (i, m) in mws.iter().enumerate() {
        let answer = match &**m {
            Mw::ForwardAuth(f) => forwardauth::on_request(f, i, req).await,
            Mw::Buffering(b) => buffering::on_request(b, req).await?,
            Mw::GrpcWeb(g) => grpcweb::on_request(g, i, req).await,
            _ => on_request(m, i, req)?,
        };
        if let Some(resp) = answer {
            return Ok(Flow::Respond(Box::new(resp), i));
        }
    }
    Ok(Flow::Continue)
}

fn on_request(
    m: &Mw,
    i: usize,
    req: &mut MwRequest<'_>,
) -> Result<Option<Response<ProxyBody>>, ErrorKind> {
    match m {
        Mw::AddPrefix(_)
        | Mw::StripPrefix { .. }
        | Mw::StripPrefixRegex(_)
        | Mw::ReplacePath(_)
        | Mw::ReplacePathRegex { .. } => {
            rewrite::on_request(m, req)?;
            Ok(None)
        }
        Mw::Headers(h) => headers::on_request(h, i, req),
        Mw::Redirect { .. } => redirect::on_request(m, req),
        Mw::IpAllowList(a) => Ok(ipallowlist::on_request(a, req)),
        Mw::BasicAuth(a) => Ok(basicauth::on_request(a, req)),
        Mw::DigestAuth(a) => Ok(digestauth::on_request(a, req)),
        Mw::RateLimit(r) => Ok(ratelimit::on_request(r, req)),
        Mw::InFlightReq(c) => Ok(inflight::on_request(c, req)),
        Mw::CircuitBreaker(c) => Ok(circuitbreaker::on_request(c, req)),
        Mw::Compress(c) => {
            compress::on_request(c, i, req);
            Ok(None)
        }
        // Applied around the forward (see `retry::forward`); expanded by `flatten`.
        Mw::Retry(_) | Mw::Chain(_) => Ok(None),
        // Asynchronous: run by `apply_request`.
        Mw::ForwardAuth(_) | Mw::Buffering(_) | Mw::GrpcWeb(_) => Ok(None),
        // Response phase only.
        Mw::ContentType(_) => Ok(None),
        Mw::PassTlsClientCert(p) => {
            passtlsclientcert::on_request(p, req);
            Ok(None)
        }
        Mw::EncodedCharacters(e) => Ok(e.check(req.parts.uri.path()).is_err().then(|| {
            let mut r = Response::new(ProxyBody::full(bytes::Bytes::new()));
            *r.status_mut() = http::StatusCode::BAD_REQUEST;
            r
        })),
        Mw::Errors(e) => {
            errors::on_request(e, i, req);
            Ok(None)
        }
    }
}

/// Apply the response phase of `mws[..upto]`, innermost first.
#[cfg(test)]
pub(crate) fn apply_response(
    mws: &[Arc<Mw>],
    upto: usize,
    ctx: &ResponseCtx,
    resp: &mut Response<ProxyBody>,
) {
    apply_response_from(mws, 0, upto, ctx, resp);
}

/// Apply the response phase of `mws[from..upto]`, innermost first (`errors` is awaited by
/// [`errors::respond`], not here).
pub(crate) fn apply_response_from(
    mws: &[Arc<Mw>],
    from: usize,
    upto: usize,
    ctx: &ResponseCtx,
    resp: &mut Response<ProxyBody>,
) {
    for (i, m) in mws[..upto.min(mws.len())]
        .iter()
        .enumerate()
        .skip(from)
        .rev()
    {
        match &**m {
            Mw::ForwardAuth(f) => forwardauth::on_response(f, i, ctx, resp),
            Mw::Headers(h) => headers::on_response(h, i, ctx, resp.headers_mut()),
            Mw::Compress(c) => compress::on_response(c, i, ctx, resp),
            Mw::CircuitBreaker(c) => {
                circuitbreaker::on_response(c, ctx, resp.status().as_u16());
            }
            Mw::GrpcWeb(_) => grpcweb::on_response(i, ctx, resp),
            _ => {}
        }
    }
}

/// Whether any middleware modifies responses.
pub(crate) fn has_response_phase(mws: &[Arc<Mw>]) -> bool {
    mws.iter().any(|m| match &**m {
        Mw::ForwardAuth(f) => !f.add_auth_cookies_to_response.is_empty(),
        Mw::Errors(_) => true,
        Mw::Headers(h) => h.has_response_phase(),
        Mw::Compress(_) | Mw::CircuitBreaker(_) | Mw::GrpcWeb(_) | Mw::Buffering(_) => true,
        Mw::ContentType(sniff) => *sniff,
        _ => false,
    })
}

/// What `basicAuth` and `digestAuth` do with an authenticated request: the user in
/// `headerField` (removed when it is no valid header value), and `Authorization` dropped when
/// `removeHeader` is set.
pub(crate) fn pass_user(
    headers: &mut http::HeaderMap,
    user: &str,
    header_field: Option<&http::header::HeaderName>,
    remove_header: bool,
) {
    if let Some(field) = header_field {
        match HeaderValue::from_str(user) {
            Ok(v) => {
                headers.insert(field.clone(), v);
            }
            Err(_) => {
                headers.remove(field);
            }
        }
    }
    if remove_header {
        headers.remove(http::header::AUTHORIZATION);
    }
}
