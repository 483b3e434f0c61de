//! What the request pipeline records for access logs and traces: an [`Obs`] per request,
//! filled by the stages of [`super::handler`] and by [`super::forward`] ([`Upstream`]), and
//! handed to the response's [`super::Completion`] as a [`Done`] that submits the line and
//! ends the spans when the body is finished. With access logs and tracing off, `Obs` holds
//! nothing and costs nothing.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::request::Parts;
use http::{HeaderValue, Response};

use super::ConnCtx;
use crate::accesslog::line::select_headers;
use crate::accesslog::{AccessLog, Record};
use crate::proxy::Entrypoint;
use crate::runtime::RouteRt;
use crate::services::lb::Server;

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
/// when the last attempt started, and the attempts made (`retry`).
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
}

impl Upstream {
    /// A server was chosen for an attempt.
    pub(crate) fn attempt(&mut self, service: &Arc<str>, server: &Arc<Server>) {
        if self.on {
            self.service = Some(service.clone());
            self.server = Some(server.clone());
            self.origin_status = None;
            self.origin_start = Some(Instant::now());
        }
    }

    /// The server answered.
    pub(crate) fn answered(&mut self, status: http::StatusCode) {
        if self.on {
            self.origin_status = Some(status.as_u16());
        }
    }
}

/// A request's observations (see the module documentation).
#[derive(Default)]
pub(crate) struct Obs {
    log: Option<(Arc<AccessLog>, Box<Record>)>,
    pub up: Upstream,
}

impl Obs {
    /// Stage 1: the request as received.
    pub(crate) fn begin(cx: &ConnCtx, ep: &Entrypoint, parts: &Parts) -> Obs {
        let Some(al) = &cx.shared.accesslog else {
            return Obs::default();
        };
        let forwarded_for = if cx.trusted {
            parts
                .headers
                .get(&crate::forwarded::X_FORWARDED_FOR)
                .cloned()
        } else {
            None
        };
        let host = match parts.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => parts.headers.get(http::header::HOST).cloned(),
        }
        .unwrap_or_else(|| HeaderValue::from_static(""));
        let request_size = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let record = Record {
            start: SystemTime::now(),
            count: al.next_count(),
            peer: cx.peer,
            forwarded_for,
            username: None,
            host,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            tls: cx.tls_info,
            entrypoint: ep.name.clone(),
            request_size,
            request_headers: select_headers(&al.fields, &parts.headers),
            router: None,
            service: None,
            server_url: None,
            server_addr: None,
            origin_status: None,
            origin_duration: None,
            retries: 0,
            trace: None,
            status: 0,
            downstream_headers: Vec::new(),
            duration: Duration::ZERO,
            size: 0,
        };
        Obs {
            log: Some((al.clone(), Box::new(record))),
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
        if let Some((_, r)) = &mut self.log {
            r.router = Some(rr.name.clone());
        }
        self.up.on = self.log.is_some();
    }

    /// Stage 7: the response head is known; what is left is done on completion.
    pub(crate) fn respond<B>(self, resp: &Response<B>) -> Option<Box<Done>> {
        let (al, mut r) = self.log?;
        r.status = resp.status().as_u16();
        r.downstream_headers = select_headers(&al.fields, resp.headers());
        let up = self.up;
        r.service = up.service;
        if let Some(s) = &up.server {
            r.server_url = Some(s.url.clone());
            r.server_addr = Some(Arc::from(s.authority.as_str()));
        }
        r.origin_status = up.origin_status;
        r.retries = up.attempts.saturating_sub(1);
        Some(Box::new(Done {
            log: Some((al, r)),
            origin_start: up.origin_start.filter(|_| up.origin_status.is_some()),
        }))
    }
}

/// The part of [`Obs`] finished when the response body is.
pub(crate) struct Done {
    log: Option<(Arc<AccessLog>, Box<Record>)>,
    origin_start: Option<Instant>,
}

impl Done {
    /// The body is finished (or the client is gone): `sent` bytes in `elapsed`.
    pub(crate) fn finish(self, elapsed: Duration, sent: u64) {
        if let Some((al, mut r)) = self.log {
            r.duration = elapsed;
            r.size = sent;
            r.origin_duration = self.origin_start.map(|t| t.elapsed());
            al.submit(r);
        }
    }
}
