//! Entry points: accepting connections and serving them with hyper.
//!
//! Each entry point runs one accept loop. A connection is TLS or plaintext by its first byte
//! ([`crate::tls`]); the TLS handshake runs in the connection's task, never in the accept
//! loop. Connections are served by hyper-util's `auto`
//! builder: HTTP/1.1 with keep-alive (and upgrades, for WebSocket) or HTTP/2 with prior
//! knowledge (h2c), detected from the connection preface. `TCP_NODELAY` is set on every
//! socket. HTTP/1 header reads time out after 30 s; HTTP/2 allows 250 concurrent streams
//! (Traefik's default).
//!
//! Connection tasks live in a `JoinSet` owned by the accept loop and are watched by a
//! `GracefulShutdown`: on shutdown the loop stops accepting, asks every connection to finish
//! (HTTP/1: close after the in-flight response; HTTP/2: GOAWAY) and waits for them; if the
//! drain timeout expires first, [`crate::Proxy::shutdown`] aborts the loop, which drops the
//! set and with it every remaining connection. Upgraded connections (WebSocket tunnels) are
//! detached from hyper and tracked by a [`Tracker`].

pub(crate) mod forward;
mod handler;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::forwarded::is_trusted;
use crate::metrics::RouteStats;
use crate::proxy::Shared;
use crate::services::lb::InflightGuard;
use crate::tls::Accepted;

/// What a request knows about its connection.
pub(crate) struct ConnCtx {
    pub shared: Arc<Shared>,
    /// Entry point index.
    pub ep: usize,
    pub peer: SocketAddr,
    /// The client IP as a header value (X-Forwarded-For, X-Real-Ip).
    pub client_ip: HeaderValue,
    /// Whether `X-Forwarded-*` from this client are trusted.
    pub trusted: bool,
    /// Whether the connection is TLS (only routers with `tls` serve it).
    pub tls: bool,
    /// The SNI of a TLS connection (for the domain-fronting check).
    pub sni: Option<Box<str>>,
}

/// Runs when a response is finished (body sent or dropped): records the request's metrics and
/// releases the backend's in-flight slot.
pub(crate) struct Completion {
    stats: Arc<RouteStats>,
    start: Instant,
    code: u16,
    _inflight: Option<InflightGuard>,
}

impl Completion {
    pub(crate) fn new(
        stats: Arc<RouteStats>,
        start: Instant,
        code: u16,
        inflight: Option<InflightGuard>,
    ) -> Completion {
        Completion {
            stats,
            start,
            code,
            _inflight: inflight,
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.stats.record(self.code, self.start.elapsed());
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

/// Counts an open connection for as long as it lives (also when its task is aborted).
struct OpenGuard(prometheus_client::metrics::gauge::Gauge);

impl OpenGuard {
    fn new(g: prometheus_client::metrics::gauge::Gauge) -> OpenGuard {
        g.inc();
        OpenGuard(g)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(Duration::from_secs(30));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(250);
    b
}

/// Accept and serve connections of entry point `ep` until `stop` turns true.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    ep: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let builder = Arc::new(builder());
    let graceful = GracefulShutdown::new();
    let mut conns: JoinSet<()> = JoinSet::new();
    let name = shared
        .entrypoints
        .get(ep)
        .map(|e| e.name.to_string())
        .unwrap_or_default();
    let open = shared.metrics.open_connections(&name);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
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
                let _ = stream.set_nodelay(true);
                let trusted = shared
                    .entrypoints
                    .get(ep)
                    .is_some_and(|e| is_trusted(&e.trusted, peer.ip()));
                let ip = crate::forwarded::unmap(peer.ip());
                let client_ip = HeaderValue::from_str(&ip.to_string())
                    .unwrap_or_else(|_| HeaderValue::from_static(""));
                let shared = shared.clone();
                let watcher = graceful.watcher();
                let builder = builder.clone();
                let open = open.clone();
                conns.spawn(async move {
                    let _open = OpenGuard::new(open);
                    let accepted = crate::tls::accept(stream, &shared).await;
                    let sni = match &accepted {
                        Accepted::Tls(s) => s.get_ref().1.server_name().map(Box::from),
                        _ => None,
                    };
                    let cx = Arc::new(ConnCtx {
                        shared,
                        ep,
                        peer,
                        client_ip,
                        trusted,
                        tls: matches!(accepted, Accepted::Tls(_)),
                        sni,
                    });
                    let svc = service_fn(move |req| {
                        let cx = cx.clone();
                        async move { Ok::<_, Infallible>(handler::handle(&cx, req).await) }
                    });
                    let res = match accepted {
                        Accepted::Plain(s) => {
                            watcher
                                .watch(builder.serve_connection_with_upgrades(TokioIo::new(s), svc))
                                .await
                        }
                        Accepted::Tls(s) => {
                            watcher
                                .watch(builder.serve_connection_with_upgrades(TokioIo::new(*s), svc))
                                .await
                        }
                        Accepted::Done => Ok(()),
                    };
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    while conns.join_next().await.is_some() {}
}
