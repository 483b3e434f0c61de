//! The connection pool of one backend server, driven from the request's own task.
//!
//! hyper-util's legacy pooled client costs, per request, a checkout future racing a connect
//! future, a pool lock shared by keys, and (for HTTP/1 bodies not yet read when the head
//! arrives) a spawned task that waits for the connection to be ready again. This pool is
//! simpler: each server has its own [`Client`] holding
//!
//! * a LIFO stack of idle HTTP/1.1 connections (`hyper::client::conn::http1::SendRequest`),
//!   each driven by one task per *connection* (hyper's `Connection` future). The request task
//!   pops one, sends on it, and the response body ([`PooledBody`]) pushes it back the moment
//!   the body ends: no task per request, no waiting on readiness in another task;
//! * one shared HTTP/2 connection (`h2c`, or `https` when ALPN picks `h2`), multiplexed by
//!   cloning its `SendRequest`.
//!
//! Semantics kept from Go's transport as Traefik configures it: `dialTimeout` and the TLS
//! handshake timeout ([`super::connect`]); `idleConnTimeout` (a connection with nothing in
//! flight for that long is closed by its own task, with one timer per connection re-armed
//! only when it fires); `maxIdleConnsPerHost` (a connection coming back to a full stack is
//! closed; 0 in the compiled transport disables reuse); a request that failed on a *reused*
//! connection before it was written (the backend closed the idle connection) is sent again on
//! another one, as Go and hyper-util do.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::uri::{PathAndQuery, Port, Scheme as UriScheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::Instant;

use super::connect::{connect, Target};
use crate::body::UpBody;

/// Why a request to a backend failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Dialing, the TLS handshake or the HTTP/2 handshake failed.
    #[error("connect error: {0}")]
    Connect(#[source] io::Error),
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake failed: {0}")]
    Handshake(#[source] hyper::Error),
    /// The exchange failed (the request could not be written, the response not read, or the
    /// client's body failed).
    #[error("backend request failed: {0}")]
    Request(#[source] hyper::Error),
}

impl Error {
    /// True when no connection could be made.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_) | Error::Handshake(_))
    }
}

/// Pool settings from the servers transport.
pub(crate) struct Settings {
    /// HTTP/2 with prior knowledge (`h2c`).
    pub h2_only: bool,
    /// `idleConnTimeout`; `None`: no limit.
    pub idle_timeout: Option<Duration>,
    /// `maxIdleConnsPerHost` (0: no reuse).
    pub max_idle: usize,
    /// HTTP/2 pings: (interval, timeout).
    pub h2_keepalive: Option<(Duration, Duration)>,
}

/// The pooled client of one backend server (cheap to clone).
#[derive(Clone)]
pub(crate) struct Client(Arc<Inner>);

struct Inner {
    target: Target,
    settings: Settings,
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Option<H2>>,
}

/// An idle HTTP/1.1 connection.
struct Idle {
    tx: http1::SendRequest<UpBody>,
    conn: Arc<ConnState>,
}

/// The shared HTTP/2 connection.
#[derive(Clone)]
struct H2 {
    tx: http2::SendRequest<UpBody>,
    conn: Arc<ConnState>,
}

/// What a connection's task needs to close it when idle.
struct ConnState {
    /// Requests in flight (HTTP/1: 0 or 1).
    inflight: AtomicUsize,
    /// When the last request ended, in ms since [`epoch`].
    last: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight on a connection.
struct Use(Arc<ConnState>);

impl Use {
    fn new(conn: Arc<ConnState>) -> Use {
        conn.inflight.fetch_add(1, Ordering::Relaxed);
        Use(conn)
    }
}

impl Drop for Use {
    fn drop(&mut self) {
        self.0.last.store(now_ms(), Ordering::Relaxed);
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Sender {
    H1(http1::SendRequest<UpBody>),
    H2(http2::SendRequest<UpBody>),
}

impl Client {
    pub(crate) fn new(target: Target, settings: Settings) -> Client {
        Client(Arc::new(Inner {
            target,
            settings,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
        }))
    }

    /// Send `req` (absolute or origin-form URI) to the server.
    pub(crate) async fn request(
        &self,
        mut req: Request<UpBody>,
    ) -> Result<Response<PooledBody>, Error> {
        loop {
            let (sender, conn, reused) = self.checkout().await?;
            let inflight = Use::new(conn);
            match sender {
                Sender::H1(mut tx) => {
                    let absolute = h1_form(&mut req);
                    match tx.try_send_request(req).await {
                        Ok(resp) => return Ok(self.response(resp, Some(tx), inflight)),
                        Err(mut e) => match e.take_message() {
                            // The backend closed the idle connection before the request
                            // was written: try another one.
                            Some(mut r) if reused => {
                                if let Some(uri) = absolute {
                                    *r.uri_mut() = uri;
                                }
                                req = r;
                            }
                            _ => return Err(Error::Request(e.into_error())),
                        },
                    }
                }
                Sender::H2(mut tx) => {
                    *req.version_mut() = Version::HTTP_2;
                    match tx.try_send_request(req).await {
                        Ok(resp) => return Ok(self.response(resp, None, inflight)),
                        Err(mut e) => match e.take_message() {
                            Some(r) if reused => {
                                self.drop_h2(&inflight.0);
                                req = r;
                            }
                            _ => return Err(Error::Request(e.into_error())),
                        },
                    }
                }
            }
        }
    }

    fn response(
        &self,
        resp: Response<Incoming>,
        tx: Option<http1::SendRequest<UpBody>>,
        inflight: Use,
    ) -> Response<PooledBody> {
        // An upgraded connection leaves the pool with the upgrade.
        let tx = tx.filter(|_| resp.status() != StatusCode::SWITCHING_PROTOCOLS);
        let (parts, body) = resp.into_parts();
        let mut body = PooledBody {
            inner: body,
            back: tx.map(|tx| (self.0.clone(), tx)),
            inflight: Some(inflight),
        };
        if body.inner.is_end_stream() {
            body.finish();
        }
        Response::from_parts(parts, body)
    }

    /// Forget the shared HTTP/2 connection if it is `conn` (it refused a request).
    fn drop_h2(&self, conn: &Arc<ConnState>) {
        if let Ok(mut h2) = self.0.h2.lock() {
            if h2.as_ref().is_some_and(|h| Arc::ptr_eq(&h.conn, conn)) {
                *h2 = None;
            }
        }
    }

    /// A connection to send on: the shared HTTP/2 one, an idle HTTP/1.1 one, or a new one.
    /// The flag says whether it was used before.
    async fn checkout(&self) -> Result<(Sender, Arc<ConnState>, bool), Error> {
        let inner = &*self.0;
        let shared = inner.h2.lock().ok().and_then(|mut h2| match &*h2 {
            Some(h) if !h.tx.is_closed() => Some(h.clone()),
            Some(_) => {
                *h2 = None;
                None
            }
            None => None,
        });
        if let Some(h) = shared {
            return Ok((Sender::H2(h.tx), h.conn, true));
        }
        loop {
            let popped = inner.idle.lock().ok().and_then(|mut v| v.pop());
            let Some(mut idle) = popped else {
                break;
            };
            if idle.tx.is_closed() {
                continue;
            }
            // Normally ready: it came back when its response ended; the connection task may
            // not have run since.
            if !idle.tx.is_ready() && idle.tx.ready().await.is_err() {
                continue;
            }
            return Ok((Sender::H1(idle.tx), idle.conn, true));
        }
        self.dial().await
    }

    async fn dial(&self) -> Result<(Sender, Arc<ConnState>, bool), Error> {
        let inner = &*self.0;
        let io = connect(&inner.target).await.map_err(Error::Connect)?;
        let h2 = inner.settings.h2_only || io.is_h2();
        let conn = Arc::new(ConnState {
            inflight: AtomicUsize::new(0),
            last: AtomicU64::new(now_ms()),
        });
        let idle = inner.settings.idle_timeout;
        if h2 {
            let mut b = http2::Builder::new(TokioExecutor::new());
            b.timer(TokioTimer::new());
            if let Some((interval, timeout)) = inner.settings.h2_keepalive {
                b.keep_alive_interval(interval).keep_alive_timeout(timeout);
            }
            let (tx, driver) = b
                .handshake::<_, UpBody>(TokioIo::new(io))
                .await
                .map_err(Error::Handshake)?;
            tokio::spawn(drive(driver, conn.clone(), idle));
            if let Ok(mut shared) = inner.h2.lock() {
                *shared = Some(H2 {
                    tx: tx.clone(),
                    conn: conn.clone(),
                });
            }
            Ok((Sender::H2(tx), conn, false))
        } else {
            let (tx, driver) = http1::Builder::new()
                .handshake::<_, UpBody>(TokioIo::new(io))
                .await
                .map_err(Error::Request)?;
            tokio::spawn(drive(driver.with_upgrades(), conn.clone(), idle));
            Ok((Sender::H1(tx), conn, false))
        }
    }
}

impl Inner {
    /// An HTTP/1.1 connection whose response ended comes back.
    fn checkin(&self, tx: http1::SendRequest<UpBody>, conn: Arc<ConnState>) {
        if tx.is_closed() || self.settings.max_idle == 0 {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.settings.max_idle {
                idle.push(Idle { tx, conn });
            }
        }
    }
}

/// Drive a connection until it ends, closing it once nothing was in flight for `idle`.
async fn drive<F>(conn: F, state: Arc<ConnState>, idle: Option<Duration>)
where
    F: Future,
    F::Output: std::fmt::Debug,
{
    tokio::pin!(conn);
    let Some(idle) = idle else {
        let r = conn.await;
        tracing::trace!(result = ?r, "backend connection ended");
        return;
    };
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    // The idle timer is polled only when it fires, not on each wake-up by the connection.
    let mut idle_out = crate::gate::Gated::new(async move {
        let timer = tokio::time::sleep(idle);
        tokio::pin!(timer);
        loop {
            (&mut timer).await;
            let now = now_ms();
            let next = if state.inflight.load(Ordering::Relaxed) == 0 {
                let last = state.last.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= idle_ms {
                    return;
                }
                last.saturating_add(idle_ms)
            } else {
                now.saturating_add(idle_ms)
            };
            timer.as_mut().reset(epoch() + Duration::from_millis(next));
        }
    });
    tokio::select! {
        biased;
        r = &mut conn => tracing::trace!(result = ?r, "backend connection ended"),
        () = &mut idle_out => tracing::trace!("idle backend connection closed (idleConnTimeout)"),
    }
}

/// HTTP/1.1 wants the origin form and a `Host` header; returns the absolute URI it replaced
/// (to send again on HTTP/2 after a retry).
fn h1_form(req: &mut Request<UpBody>) -> Option<Uri> {
    req.uri().authority()?;
    let uri = req.uri().clone();
    if !req.headers().contains_key(HOST) {
        if let Some(host) = host_header(&uri) {
            req.headers_mut().insert(HOST, host);
        }
    }
    *req.uri_mut() = match uri.path_and_query() {
        Some(pq) if pq.as_str() != "/" => Uri::from(pq.clone()),
        _ => Uri::from(PathAndQuery::from_static("/")),
    };
    Some(uri)
}

/// The `Host` of an absolute URI: its host, and its port unless the scheme's default.
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default = match uri.scheme() {
        Some(s) if *s == UriScheme::HTTPS => 443,
        _ => 80,
    };
    match uri.port().map(|p: Port<&str>| p.as_u16()) {
        Some(p) if p != default => HeaderValue::from_str(&format!("{host}:{p}")).ok(),
        _ => HeaderValue::from_str(host).ok(),
    }
}

/// A backend's response body: returns its HTTP/1.1 connection to the pool as soon as the
/// body has ended (also when dropped after its end); a body dropped before its end takes its
/// connection with it (hyper closes it).
pub(crate) struct PooledBody {
    inner: Incoming,
    back: Option<(Arc<Inner>, http1::SendRequest<UpBody>)>,
    inflight: Option<Use>,
}

impl PooledBody {
    fn finish(&mut self) {
        let inflight = self.inflight.take();
        if let (Some((pool, tx)), Some(u)) = (self.back.take(), &inflight) {
            pool.checkin(tx, u.0.clone());
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.back.is_some() && self.inner.is_end_stream() {
            self.finish();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.finish(),
            Poll::Ready(Some(Err(_))) => {
                this.back = None;
                this.inflight = None;
            }
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn origin_form_and_host() {
        let mut req = Request::new(UpBody::empty());
        *req.uri_mut() = "http://a.example:80/x?y=1".parse().unwrap();
        let abs = h1_form(&mut req).unwrap();
        assert_eq!(abs, "http://a.example:80/x?y=1");
        assert_eq!(req.uri(), "/x?y=1");
        assert_eq!(req.headers()[HOST], "a.example");

        let mut req = Request::new(UpBody::empty());
        *req.uri_mut() = "https://b.example:8443".parse().unwrap();
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("client.example"));
        h1_form(&mut req).unwrap();
        assert_eq!(req.uri(), "/");
        assert_eq!(req.headers()[HOST], "client.example");

        let mut req = Request::new(UpBody::empty());
        *req.uri_mut() = "https://[::1]:8443/p".parse().unwrap();
        h1_form(&mut req).unwrap();
        assert_eq!(req.headers()[HOST], "[::1]:8443");

        // Already origin-form: untouched.
        let mut req = Request::new(UpBody::empty());
        *req.uri_mut() = "/z".parse().unwrap();
        assert!(h1_form(&mut req).is_none());
        assert_eq!(req.uri(), "/z");
    }

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    /// A raw HTTP/1.1 backend answering `ok` to every request; reports each connection it
    /// accepts (`Open`) and sees closed (`Closed`). With `close_after`, it answers the n-th
    /// request of a connection with `Connection: close` and closes it.
    #[derive(Debug, PartialEq)]
    enum Ev {
        Open,
        Closed,
    }

    async fn backend(close_after: Option<usize>) -> (u16, mpsc::UnboundedReceiver<Ev>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let _ = tx.send(Ev::Open);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut served = 0;
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..i + 4);
                            served += 1;
                            let last = close_after.is_some_and(|c| served >= c);
                            let resp: &[u8] = if last {
                                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
                            } else {
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                            };
                            let _ = s.write_all(resp).await;
                        }
                        if close_after.is_some_and(|c| served >= c) {
                            break;
                        }
                    }
                    let _ = tx.send(Ev::Closed);
                });
            }
        });
        (port, rx)
    }

    fn client(port: u16, max_idle: usize, idle: Option<Duration>) -> Client {
        Client::new(
            Target {
                host: "127.0.0.1".into(),
                port,
                tls: None,
                dial_timeout: Duration::from_secs(5),
            },
            Settings {
                h2_only: false,
                idle_timeout: idle,
                max_idle,
                h2_keepalive: None,
            },
        )
    }

    async fn get(c: &Client) -> Result<Bytes, Error> {
        let mut req = Request::new(UpBody::empty());
        *req.uri_mut() = "/".parse().unwrap();
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("b.example"));
        let resp = c.request(req).await?;
        assert_eq!(resp.status(), StatusCode::OK);
        Ok(resp.into_body().collect().await.unwrap().to_bytes())
    }

    fn opened(rx: &mut mpsc::UnboundedReceiver<Ev>) -> usize {
        let mut n = 0;
        while let Ok(ev) = rx.try_recv() {
            n += usize::from(ev == Ev::Open);
        }
        n
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection() {
        let (port, mut rx) = backend(None).await;
        let c = client(port, 200, Some(Duration::from_secs(90)));
        for _ in 0..20 {
            assert_eq!(get(&c).await.unwrap(), "ok");
        }
        assert_eq!(opened(&mut rx), 1);
    }

    #[tokio::test]
    async fn no_reuse_when_max_idle_is_zero() {
        let (port, mut rx) = backend(None).await;
        let c = client(port, 0, Some(Duration::from_secs(90)));
        for _ in 0..3 {
            assert_eq!(get(&c).await.unwrap(), "ok");
        }
        assert_eq!(opened(&mut rx), 3);
    }

    #[tokio::test]
    async fn concurrent_requests_get_their_own_connections_then_share_the_pool() {
        let (port, mut rx) = backend(None).await;
        let c = client(port, 200, Some(Duration::from_secs(90)));
        let (a, b, d, e) = tokio::join!(get(&c), get(&c), get(&c), get(&c));
        for r in [a, b, d, e] {
            assert_eq!(r.unwrap(), "ok");
        }
        let first = opened(&mut rx);
        assert!((1..=4).contains(&first), "{first}");
        for _ in 0..10 {
            get(&c).await.unwrap();
        }
        assert_eq!(
            opened(&mut rx),
            0,
            "later requests reuse pooled connections"
        );
    }

    #[tokio::test]
    async fn idle_connections_close_after_idle_conn_timeout() {
        let (port, mut rx) = backend(None).await;
        let c = client(port, 200, Some(Duration::from_millis(300)));
        get(&c).await.unwrap();
        assert_eq!(rx.recv().await, Some(Ev::Open));
        let closed = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await;
        assert_eq!(closed.unwrap(), Some(Ev::Closed));
        // The pool dials again.
        assert_eq!(get(&c).await.unwrap(), "ok");
        assert_eq!(rx.recv().await, Some(Ev::Open));
    }

    #[tokio::test]
    async fn a_connection_the_backend_closes_is_not_reused() {
        let (port, mut rx) = backend(Some(1)).await;
        let c = client(port, 200, Some(Duration::from_secs(90)));
        for _ in 0..5 {
            assert_eq!(get(&c).await.unwrap(), "ok");
        }
        let mut opens = 0;
        while let Ok(ev) = rx.try_recv() {
            opens += usize::from(ev == Ev::Open);
        }
        assert_eq!(opens, 5);
    }

    #[tokio::test]
    async fn dial_failure_is_a_connect_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let c = client(port, 200, None);
        let e = get(&c).await.unwrap_err();
        assert!(e.is_connect(), "{e}");
    }
}
