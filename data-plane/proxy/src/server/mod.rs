//! Entry points: accepting connections and serving them with hyper.
//!
//! Each entry point runs one accept loop. TCP routers see a connection first
//! ([`crate::tcp::route`]: it reads nothing when the entry point has none); then a connection
//! is TLS or plaintext by its first byte ([`crate::tls`]); the TLS handshake runs in the connection's task, never in the accept
//! loop. Connections are served by hyper-util's `auto`
//! builder: HTTP/1.1 with keep-alive (and upgrades, for WebSocket) or HTTP/2 with prior
//! knowledge (h2c), detected from the connection preface. `TCP_NODELAY` is set on every
//! socket. The entry point's [`EntrypointLimits`] apply: connection limit at accept, header
//! limits (hyper for HTTP/1, `hygiene` for HTTP/2), and the read, write and idle
//! timeouts of each connection's clock and watchdog ([`conn`]).
//!
//! Connection tasks live in a `JoinSet` owned by the accept loop: on shutdown the loop keeps
//! accepting for `requestAcceptGraceTimeout`, then stops, asks every connection to finish
//! (HTTP/1: close after the in-flight response; HTTP/2: GOAWAY) and waits for them; if the
//! grace timeout expires first, [`crate::Proxy::shutdown`] aborts the loop, which drops the
//! set and with it every remaining connection. Upgraded connections (WebSocket tunnels) are
//! detached from hyper and tracked by a [`Tracker`].

mod conn;
pub(crate) mod forward;
mod handler;
mod hygiene;
pub(crate) mod observe;
pub(crate) use observe::SpanParent;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use self::conn::{ConnClock, ConnError, ConnIo, InFlight, RespBody};
use self::hygiene::{head_fields, header_limit, strip_h2c_upgrade};
use crate::body::{ProxyBody, ReadDeadline};
use crate::errors::{error_response, ErrorKind};
use crate::forwarded::is_trusted;
use crate::limits::{EntrypointLimits, LimitKind};
use crate::metrics::RouteStats;
use crate::services::lb::InflightGuard;
use crate::shared::Shared;
use crate::tls::Accepted;
use crate::traefik_metrics::ReqLabels;

/// What a request knows about its connection.
pub(crate) struct ConnCtx {
    pub shared: Arc<Shared>,
    /// Entry point index.
    pub ep: usize,
    pub peer: SocketAddr,
    /// `peer`'s IP as text, made once per connection when tracing is on (the server span's
    /// `client.address`).
    pub peer_ip: Option<Arc<str>>,
    /// The client IP as a header value (X-Forwarded-For, X-Real-Ip).
    pub client_ip: HeaderValue,
    /// Whether `X-Forwarded-*` from this client are trusted.
    pub trusted: bool,
    /// Whether the connection is TLS (only routers with `tls` serve it).
    pub tls: bool,
    /// The SNI of a TLS connection (for the domain-fronting check).
    pub sni: Option<Box<str>>,
    /// `(TLSVersion, TLSCipher)` of a TLS connection, Go's names (access logs).
    pub tls_info: Option<(&'static str, &'static str)>,
    /// The client's certificates on a mutual-TLS connection (leaf first), for
    /// `passTLSClientCert`.
    pub client_certs: Box<[rustls::pki_types::CertificateDer<'static>]>,
}

/// Runs when a response is finished (body sent or dropped): records the request's metrics,
/// releases the backend's in-flight slot, and submits the access log line ([`observe::Done`]).
pub(crate) struct Completion {
    stats: Arc<RouteStats>,
    start: Instant,
    code: u16,
    _inflight: Option<InflightGuard>,
    obs: Option<Box<observe::Done>>,
    /// Response body bytes sent so far.
    sent: u64,
    labels: ReqLabels,
    retries: u32,
}

impl Completion {
    pub(crate) fn new(
        stats: Arc<RouteStats>,
        start: Instant,
        code: u16,
        inflight: Option<InflightGuard>,
        obs: Option<Box<observe::Done>>,
        labels: ReqLabels,
        retries: u32,
    ) -> Completion {
        Completion {
            stats,
            start,
            code,
            _inflight: inflight,
            obs,
            sent: 0,
            labels,
            retries,
        }
    }

    /// Count body bytes sent to the client.
    pub(crate) fn sent(&mut self, n: usize) {
        self.sent += n as u64;
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        self.stats
            .record_all(self.code, elapsed, self.labels, self.sent, self.retries);
        if let Some(o) = self.obs.take() {
            o.finish(elapsed, self.sent);
        }
    }
}

/// Counts detached tasks (WebSocket tunnels) so shutdown can wait for them, and stops them.
pub(crate) struct Tracker {
    active: AtomicUsize,
    idle: Notify,
    stop: watch::Sender<bool>,
}

/// Held by a tracked task.
pub(crate) struct TrackGuard(Arc<Tracker>);

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        Tracker {
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            stop: watch::channel(false).0,
        }
    }

    /// Register a task; it should also watch [`Tracker::stopped`].
    pub(crate) fn enter(self: &Arc<Self>) -> TrackGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        TrackGuard(self.clone())
    }

    /// Resolves when [`Tracker::stop_all`] is called.
    pub(crate) fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Wait until no task is registered, or the deadline.
    pub(crate) async fn wait_idle(&self, deadline: tokio::time::Instant) {
        loop {
            let notified = self.idle.notified();
            if self.active.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Ask every registered task to stop.
    pub(crate) fn stop_all(&self) {
        let _ = self.stop.send(true);
    }
}

/// Counts an open connection for as long as it lives (also when its task is aborted), in
/// Switchyard's gauge and Traefik's.
struct OpenGuard([prometheus_client::metrics::gauge::Gauge; 2]);

impl OpenGuard {
    fn new(g: [prometheus_client::metrics::gauge::Gauge; 2]) -> OpenGuard {
        for x in &g {
            x.inc();
        }
        OpenGuard(g)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        for x in &self.0 {
            x.dec();
        }
    }
}

fn builder(l: &EntrypointLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // Head, body and idle timeouts are the connection clock's (`conn`), not hyper's.
    b.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(None)
        // A head that does not fit the read buffer is refused with 431: the buffer limit is
        // the head limit (hyper-util's auto builder has no separate one; at least 8 KiB).
        .max_buf_size(l.max_header_bytes.max(MIN_BUF));
    // hyper's default is the same limit (100) on a stack array; an explicit limit makes it
    // fill two heap-sized arrays per request head (~1,700 instructions per request).
    if l.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        b.http1().max_headers(l.max_headers);
    }
    // HTTP/2: the exact header limits are checked per request (and counted); the HPACK
    // decoder's own bound is a backstop. Rapid reset (CVE-2023-44487): at most 20 streams
    // reset by the client before the server accepted them, and 1024 streams the server had
    // to reset for protocol errors, then GOAWAY ENHANCE_YOUR_CALM.
    let list = u32::try_from(
        l.max_header_bytes
            .saturating_mul(2)
            .saturating_add(64 * 1024),
    )
    .unwrap_or(u32::MAX);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(l.max_concurrent_streams)
        .max_header_list_size(list)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS);
    b
}

/// hyper's limit of request header fields when none is set (`DEFAULT_MAX_HEADERS`).
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;
/// hyper's smallest read buffer limit.
const MIN_BUF: usize = 8192;
/// HTTP/2 streams reset by the client before they were accepted (h2's default).
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// HTTP/2 streams reset by the server because of the client's errors.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// The limit behind a connection's error, if any: hyper's 431 (header size or count, told
/// apart by the bytes of the head read so far) or HTTP/2 `ENHANCE_YOUR_CALM`.
fn error_limit(e: &(dyn std::error::Error + 'static), clock: &ConnClock) -> Option<LimitKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_parse_too_large() {
                return Some(if clock.head_bytes() >= clock.limits().max_header_bytes {
                    LimitKind::HeaderBytes
                } else {
                    LimitKind::Headers
                });
            }
        }
        if let Some(h) = err.downcast_ref::<h2::Error>() {
            if h.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) {
                return Some(LimitKind::H2Resets);
            }
        }
        cur = err.source();
    }
    None
}

/// Serve one connection until it ends, a timeout expires, or the entry point drains.
async fn serve<I>(
    io: I,
    cx: Arc<ConnCtx>,
    clock: Arc<ConnClock>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut drain: watch::Receiver<bool>,
    hits: Arc<[Counter]>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let clock = clock.clone();
        service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let cx = cx.clone();
            let clock = clock.clone();
            async move { request(&cx, clock, req).await }
        })
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut closing = *drain.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    // The drain signal and the watchdog, polled only when one of them woke the task (see
    // `Gated`): the connection's I/O wakes the task a few times per request.
    let dog = clock.clone();
    let mut guard = crate::gate::Gated::new(async move {
        tokio::select! {
            biased;
            _ = drain.changed() => None,
            kind = conn::watchdog(dog) => Some(kind),
        }
    });
    let res = loop {
        tokio::select! {
            biased;
            r = conn.as_mut() => break r,
            event = &mut guard, if !closing => match event {
                None => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Some(kind) => {
                    if let Some(c) = hits.get(kind.index()) {
                        c.inc();
                    }
                    if kind == LimitKind::IdleTimeout {
                        // HTTP/1: close now (nothing in flight); HTTP/2: GOAWAY.
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    } else {
                        // A head not read in time, or a response not written in time: close
                        // without an answer (as Go's server does).
                        tracing::debug!(limit = kind.label(), "connection closed");
                        return;
                    }
                }
            },
        }
    };
    if let Err(e) = res {
        let err: &(dyn std::error::Error + 'static) = &*e;
        if let Some(c) = error_limit(err, &clock).and_then(|k| hits.get(k.index())) {
            c.inc();
        }
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// One request: the clock, HTTP/2 header limits, the body's read deadline, the write
/// deadline, then the pipeline ([`handler::handle`]).
async fn request(
    cx: &ConnCtx,
    clock: Arc<ConnClock>,
    mut req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<RespBody<ProxyBody>>, ConnError> {
    // One clock read for the head's end, the request's start and its deadlines.
    let head_done = tokio::time::Instant::now();
    let (t0, ambiguous) = clock.begin(head_done);
    let in_flight = InFlight::new(clock.clone());
    let shared = &cx.shared;
    let Some(ep) = shared.entrypoints.get(cx.ep) else {
        return Ok(error_response(ErrorKind::Internal).map(|b| RespBody::new(b, in_flight, None)));
    };
    let l = &ep.limits;
    // The request is checked and amended in place (no `into_parts`/`from_parts`: each would
    // copy its head).
    // `Host`, `Upgrade` and `Connection` in one pass, for the checks here and the handler.
    let fields = head_fields(&req);
    if !fields.valid_host {
        shared.metrics.count_error(ErrorKind::BadRequest);
        let mut resp = error_response(ErrorKind::BadRequest);
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(resp.map(|b| RespBody::new(b, in_flight, None)));
    }
    strip_h2c_upgrade(req.headers_mut(), &fields);
    if let Some(kind) = header_limit(&req, l) {
        ep.hit(kind);
        shared.metrics.count_error(ErrorKind::HeaderFieldsTooLarge);
        let resp = error_response(ErrorKind::HeaderFieldsTooLarge);
        return Ok(resp.map(|b| RespBody::new(b, in_flight, None)));
    }
    if !l.read_timeout.is_zero() && !http_body::Body::is_end_stream(req.body()) {
        req.extensions_mut().insert(ReadDeadline {
            at: t0 + l.read_timeout,
            hits: ep.limit_hits[LimitKind::ReadTimeout.index()].clone(),
        });
    }
    let version = req.version();
    // Bytes after a refused CONNECT were meant for a tunnel, not to be read as requests.
    let connect = req.method() == http::Method::CONNECT;
    // HTTP/1's write deadline covers the whole connection (the watchdog closes it); HTTP/2's
    // is per stream: the response future here, then its body.
    let write = (!l.write_timeout.is_zero() && version == http::Version::HTTP_2)
        .then(|| head_done + l.write_timeout);
    let mut resp = match write {
        Some(at) => {
            match tokio::time::timeout_at(
                at,
                handler::handle(cx, req, head_done.into_std(), fields),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => {
                    ep.hit(LimitKind::WriteTimeout);
                    return Err(ConnError::WriteTimeout);
                }
            }
        }
        None => handler::handle(cx, req, head_done.into_std(), fields).await,
    };
    // After a late body, a refused CONNECT, or a head with both Content-Length and
    // Transfer-Encoding (RFC 9112 §6.1: a smuggling attempt), the connection must not carry
    // another request.
    if (ambiguous || connect || resp.status() == http::StatusCode::REQUEST_TIMEOUT)
        && version < http::Version::HTTP_2
    {
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let deadline = write.map(|at| (at, ep.limit_hits[LimitKind::WriteTimeout.index()].clone()));
    Ok(resp.map(|b| RespBody::new(b, in_flight, deadline)))
}

/// Accept and serve connections of entry point `ep` until `stop` turns true (and its
/// `requestAcceptGraceTimeout` has passed).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    ep: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(entry) = shared.entrypoints.get(ep) else {
        return;
    };
    let limits = entry.limits.clone();
    let name = entry.name.to_string();
    let hits: Arc<[Counter]> = Arc::from(entry.limit_hits.to_vec());
    let builder = Arc::new(builder(&limits));
    let slots = limits
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut conns: JoinSet<()> = JoinSet::new();
    let open = [
        shared.metrics.open_connections(&name),
        shared.metrics.traefik_open_connections(&name),
    ];
    let stop_at = tokio::time::sleep(Duration::from_secs(365 * 86_400));
    tokio::pin!(stop_at);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed(), if !stopping => {
                // Keep accepting for requestAcceptGraceTimeout (/readyz already says 503).
                stopping = true;
                stop_at.as_mut().reset(tokio::time::Instant::now() + limits.accept_grace);
            }
            () = &mut stop_at, if stopping => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            res = listener.accept() => {
                let (stream, peer) = match res {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(entrypoint = %name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let permit = match &slots {
                    Some(s) => match s.clone().try_acquire_owned() {
                        Ok(p) => Some(p),
                        Err(_) => {
                            hits[LimitKind::Connections.index()].inc();
                            tracing::debug!(entrypoint = %name, %peer, "connection limit reached: closed");
                            drop(stream);
                            continue;
                        }
                    },
                    None => None,
                };
                let _ = stream.set_nodelay(true);
                let trusted = is_trusted(&entry.trusted, peer.ip());
                let ip = crate::forwarded::unmap(peer.ip());
                let client_ip = HeaderValue::from_str(&ip.to_string())
                    .unwrap_or_else(|_| HeaderValue::from_static(""));
                let peer_ip = shared
                    .tracing
                    .is_some()
                    .then(|| Arc::from(peer.ip().to_string()));
                let shared = shared.clone();
                let drain = drain_rx.clone();
                let builder = builder.clone();
                let open = open.clone();
                let clock = Arc::new(ConnClock::new(limits.clone()));
                let hits = hits.clone();
                conns.spawn(async move {
                    let _open = OpenGuard::new(open);
                    // TCP routers first (they may read the first bytes: replayed to HTTP).
                    let Some(stream) = crate::tcp::route(stream, peer, ep, &shared).await else {
                        return;
                    };
                    let accepted = crate::tls::accept(stream, &shared).await;
                    let sni = match &accepted {
                        Accepted::Tls(s) => s.get_ref().1.server_name().map(Box::from),
                        _ => None,
                    };
                    let tls_info = match &accepted {
                        Accepted::Tls(s) => Some(observe::tls_info(s.get_ref().1)),
                        _ => None,
                    };
                    let client_certs = match &accepted {
                        Accepted::Tls(s) => s
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
                            .unwrap_or_default(),
                        _ => Box::default(),
                    };
                    let cx = Arc::new(ConnCtx {
                        shared,
                        ep,
                        peer,
                        peer_ip,
                        client_ip,
                        trusted,
                        tls: matches!(accepted, Accepted::Tls(_)),
                        sni,
                        tls_info,
                        client_certs,
                    });
                    match accepted {
                        Accepted::Plain(s) => {
                            let io = ConnIo::new(s, clock.clone(), permit);
                            serve(io, cx, clock, builder, drain, hits).await;
                        }
                        Accepted::Tls(s) => {
                            let io = ConnIo::new(*s, clock.clone(), permit);
                            serve(io, cx, clock, builder, drain, hits).await;
                        }
                        Accepted::Done => {}
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = drain_tx.send(true);
    while conns.join_next().await.is_some() {}
}
