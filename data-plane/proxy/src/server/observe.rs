//! What the request pipeline records for access logs and traces: an [`Obs`] per request,
//! filled by the stages of [`super::handler`] and by [`super::forward`] ([`Upstream`]), and
//! handed to the response's [`super::Completion`] as a [`Done`] that submits the line and
//! ends the server span when the body is finished. With access logs and tracing off, `Obs` holds
//! nothing and costs nothing.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::request::Parts;
use http::{HeaderMap, Response};
use switchyard_otel::{Kind, ReqSpan, SpanCx, Val};

use super::ConnCtx;
use crate::accesslog::line::select_headers;
use crate::accesslog::{request_path, AccessLog, Line, Text};
use crate::errors::ErrorKind;
use crate::otel::Tracing;
use crate::runtime::RouteRt;
use crate::services::lb::Server;
use crate::shared::Entrypoint;
use crate::traefik_metrics::ReqLabels;

/// `(TLSVersion, TLSCipher)` with Go's names (`1.3`, `TLS_AES_128_GCM_SHA256`).
pub(crate) fn tls_info(c: &rustls::ServerConnection) -> (&'static str, &'static str) {
    let version = match c.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "unknown",
    };
    let cipher = c
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .map_or("unknown", |n| go_cipher_name(n));
    (version, cipher)
}

/// rustls names TLS 1.3 suites `TLS13_*`; Go (and so Traefik) `TLS_*`.
fn go_cipher_name(n: &'static str) -> &'static str {
    match n {
        "TLS13_AES_128_GCM_SHA256" => "TLS_AES_128_GCM_SHA256",
        "TLS13_AES_256_GCM_SHA384" => "TLS_AES_256_GCM_SHA384",
        "TLS13_CHACHA20_POLY1305_SHA256" => "TLS_CHACHA20_POLY1305_SHA256",
        other => other,
    }
}

/// What forwarding learns: the service and server that answered, the origin's status and
/// when the last attempt started, and the attempts made (`retry`); with tracing, a
/// `ReverseProxy` client span per attempt, whose context is injected to the backend.
#[derive(Default)]
pub(crate) struct Upstream {
    /// Whether anything is recorded (an access log line or a span wants it).
    on: bool,
    pub service: Option<Arc<str>>,
    pub server: Option<Arc<Server>>,
    pub origin_status: Option<u16>,
    pub origin_start: Option<Instant>,
    /// Attempts made (0 or 1: not retried).
    pub attempts: u32,
    /// The tracer and the server span's context (tracing on for this request).
    trace: Option<SpanParent>,
    /// The client span of the current attempt.
    span: Option<ReqSpan>,
}

impl Upstream {
    /// A server was chosen for an attempt; `headers` are the request's to the server.
    pub(crate) fn attempt(
        &mut self,
        service: &Arc<str>,
        server: &Arc<Server>,
        method: &http::Method,
        headers: &mut HeaderMap,
    ) {
        if !self.on {
            return;
        }
        self.service = Some(service.clone());
        self.server = Some(server.clone());
        self.origin_status = None;
        self.origin_start = Some(Instant::now());
        if let Some((t, parent)) = &self.trace {
            let mut span = t.req_span("ReverseProxy", Kind::Client, Some(parent), None);
            if span.is_recording() {
                span.set("http.request.method", method_value(method));
                span.set("url.full", Val::Shared(server.url.clone()));
                span.set("server.address", Val::Shared(server.authority_str.clone()));
                span.set("traefik.service.name", Val::Shared(service.clone()));
            }
            crate::otel::inject_cx(span.context(), headers);
            self.span = Some(span);
        }
    }

    /// The server answered.
    pub(crate) fn answered(&mut self, status: http::StatusCode) {
        if self.on {
            self.origin_status = Some(status.as_u16());
        }
        if let Some(mut span) = self.span.take() {
            span.set(
                "http.response.status_code",
                Val::Int(i64::from(status.as_u16())),
            );
            if status.is_server_error() {
                span.set_error(Val::Static(""));
            }
            span.end();
        }
    }

    /// The attempt failed without a response.
    pub(crate) fn failed(&mut self, kind: ErrorKind) {
        if let Some(mut span) = self.span.take() {
            if span.is_recording() {
                span.set("error.type", Val::Static(kind.label()));
                span.set_error(Val::Owned(kind.to_string().into_boxed_str()));
            }
            span.end();
        }
    }
}

/// The tracer and the span that client spans of a request hang from.
pub(crate) type SpanParent = (Arc<Tracing>, SpanCx);

/// The server span, started when the request is received; a router with
/// `observability.tracing: false` discards it.
struct Trace {
    tracer: Arc<Tracing>,
    span: ReqSpan,
}

/// Span names must be static: the standard methods, else Traefik's `_OTHER` convention.
fn method_name(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        http::Method::TRACE => "TRACE",
        http::Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// `http.request.method`: a static string for the standard methods.
pub(crate) fn method_value(m: &http::Method) -> Val {
    match method_name(m) {
        "_OTHER" => Val::Owned(m.as_str().into()),
        name => Val::Static(name),
    }
}

/// `network.protocol.version`: the version's `Debug` text, static.
fn version_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// A request's observations (see the module documentation).
#[derive(Default)]
pub(crate) struct Obs {
    /// Traefik's metric labels of the request (always computed).
    pub labels: ReqLabels,
    log: Option<(Arc<AccessLog>, Box<Line>)>,
    /// Inline (no allocation of its own: the span's record is one already).
    trace: Option<Trace>,
    pub up: Upstream,
}

impl Obs {
    /// Stage 1: the request as received. `body_len`: the exact length of its body when hyper
    /// knows it (from `Content-Length`, 0 without a body), the access log's
    /// `RequestContentSize` without a second header look-up.
    pub(crate) fn begin(
        cx: &ConnCtx,
        ep: &Entrypoint,
        parts: &Parts,
        body_len: Option<u64>,
    ) -> Obs {
        let shared = &cx.shared;
        let labels = ReqLabels::of(parts);
        if shared.accesslog.is_none() && shared.tracing.is_none() {
            return Obs {
                labels,
                ..Obs::default()
            };
        }
        let now = SystemTime::now();
        // The `Host` header (for an origin-form request), looked up at most once for the span
        // and the access log, and only when one of them writes it.
        let host_cell = std::cell::OnceCell::new();
        let host_header = || *host_cell.get_or_init(|| parts.headers.get(http::header::HOST));
        let trace = shared.tracing.as_ref().map(|t| {
            let parent = t.extract_cx(&parts.headers);
            let mut span = t.req_span(
                method_name(&parts.method),
                Kind::Server,
                parent.as_ref(),
                Some(now),
            );
            if span.is_recording() {
                // Path and host are copied (held in the span's record when short), not
                // reference-counted clones of the request's bytes: a clone keeps hyper's read
                // buffer shared until the export task drops the span, on another thread.
                let host = match parts.uri.authority() {
                    Some(a) => Val::copy(a.as_str()),
                    None => host_header().map_or(Val::Static(""), Val::copy_header),
                };
                let scheme = if cx.tls { "https" } else { "http" };
                span.set("entry_point", Val::Shared(ep.name.clone()));
                span.set("http.request.method", method_value(&parts.method));
                span.set("url.path", Val::copy(parts.uri.path()));
                span.set("url.scheme", Val::Static(scheme));
                span.set("server.address", host);
                span.set(
                    "network.protocol.version",
                    Val::Static(version_name(parts.version)),
                );
                span.set(
                    "client.address",
                    match &cx.peer_ip {
                        Some(ip) => Val::Shared(ip.clone()),
                        None => Val::Owned(cx.peer.ip().to_string().into_boxed_str()),
                    },
                );
            }
            Trace {
                tracer: t.clone(),
                span,
            }
        });
        let log = shared.accesslog.as_ref().map(|al| {
            // Copies of only what the lines show (see `accesslog::Text`).
            let needs = al.needs;
            let forwarded_for = if cx.trusted && needs.forwarded_for {
                parts
                    .headers
                    .get(&crate::forwarded::X_FORWARDED_FOR)
                    .and_then(|v| v.to_str().ok())
                    .map(Text::new)
            } else {
                None
            };
            let (path, path_len) = if needs.path {
                request_path(&parts.uri)
            } else {
                (Text::default(), 0)
            };
            // Go's `req.Host`: the authority of an absolute URI, else the `Host` header (read,
            // not cloned: a clone of the `HeaderValue` shares hyper's read buffer).
            let host = if needs.host {
                Text::new(match parts.uri.authority() {
                    Some(a) => a.as_str(),
                    None => host_header().and_then(|v| v.to_str().ok()).unwrap_or(""),
                })
            } else {
                Text::default()
            };
            // Set in place in a recycled box (see `accesslog::Line`): the fields not set
            // here are as `Record::blank` makes them.
            let mut line = Line::take();
            let r = &mut line.r;
            r.start = now;
            r.count = al.next_count();
            r.peer = cx.peer;
            r.forwarded_for = forwarded_for;
            r.host = host;
            r.method = parts.method.clone();
            r.path = path;
            r.path_len = path_len;
            r.version = parts.version;
            r.tls = cx.tls_info;
            r.entrypoint = ep.name.clone();
            r.request_size = body_len.unwrap_or(0);
            r.request_headers = select_headers(&al.fields, &parts.headers);
            (al.clone(), line)
        });
        Obs {
            labels,
            log,
            trace,
            up: Upstream {
                on: true,
                ..Upstream::default()
            },
        }
    }

    /// Stage 4: the router that matched (its `observability` switches apply from here).
    pub(crate) fn routed(&mut self, rr: &RouteRt) {
        if !rr.obs.access_logs {
            self.log = None;
        }
        if !rr.obs.tracing {
            if let Some(t) = self.trace.take() {
                t.span.discard();
            }
        }
        if let Some((_, r)) = &mut self.log {
            r.router = Some(rr.route.name.clone());
        }
        if let Some(t) = &mut self.trace {
            t.span
                .set("traefik.router.name", Val::Shared(rr.route.name.clone()));
            t.span
                .set("traefik.service.name", Val::Shared(rr.service.name.clone()));
            self.up.trace = Some((t.tracer.clone(), t.span.context().clone()));
        }
        self.up.on = self.log.is_some() || self.trace.is_some();
    }

    /// The tracer and the server span (once routed, tracing on for the router), for client
    /// spans made outside forwarding (`forwardAuth`).
    pub(crate) fn span_parent(&self) -> Option<SpanParent> {
        self.up.trace.clone()
    }

    /// Stage 7: the response head is known; what is left is done on completion. Taken by
    /// reference (what is needed is taken out of it): moving the observations in would copy
    /// them.
    pub(crate) fn respond<B>(&mut self, resp: &Response<B>) -> Option<Box<Done>> {
        if self.log.is_none() && self.trace.is_none() {
            return None;
        }
        let up = std::mem::take(&mut self.up);
        let status = resp.status();
        let retries = up.attempts.saturating_sub(1);
        let span = self.trace.take().map(|t| {
            let mut span = t.span;
            span.set(
                "http.response.status_code",
                Val::Int(i64::from(status.as_u16())),
            );
            if let Some(s) = &up.server {
                span.set("traefik.service.server.url", Val::Shared(s.url.clone()));
            }
            if retries > 0 {
                span.set("http.request.resend_count", Val::Int(i64::from(retries)));
            }
            if status.is_server_error() {
                span.set_error(Val::Static(""));
            }
            span
        });
        let log = self.log.take().map(|(al, mut r)| {
            r.status = status.as_u16();
            r.downstream_headers = select_headers(&al.fields, resp.headers());
            r.service = up.service.clone();
            if let Some(s) = &up.server {
                r.server_url = Some(s.url.clone());
                r.server_addr = Some(s.authority_str.clone());
            }
            r.origin_status = up.origin_status;
            r.retries = retries;
            if let Some(sp) = &span {
                let sc = sp.context();
                if sc.sampled {
                    r.trace = Some((sc.trace_id, sc.span_id));
                }
            }
            (al, r)
        });
        Some(Box::new(Done {
            log,
            span,
            origin_start: up.origin_start.filter(|_| up.origin_status.is_some()),
        }))
    }
}

/// The part of [`Obs`] finished when the response body is.
pub(crate) struct Done {
    log: Option<(Arc<AccessLog>, Box<Line>)>,
    span: Option<ReqSpan>,
    origin_start: Option<Instant>,
}

impl Done {
    /// The body is finished (or the client is gone): `sent` bytes in `elapsed`.
    pub(crate) fn finish(self, elapsed: Duration, sent: u64) {
        if let Some(span) = self.span {
            span.end();
        }
        if let Some((al, mut r)) = self.log {
            r.duration = elapsed;
            r.size = sent;
            r.origin_duration = self.origin_start.map(|t| t.elapsed());
            al.submit(r);
        }
    }
}
