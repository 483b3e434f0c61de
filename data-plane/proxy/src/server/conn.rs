//! One client connection's limits at work: the [`ConnClock`] shared by the connection's I/O,
//! its requests and its [`watchdog`]; [`ConnIo`], the socket wrapper that reports bytes read
//! and the HTTP/2 preface to the clock and holds the connection's slot of the entry point's
//! connection limit for as long as the socket lives (also inside a WebSocket tunnel); and
//! [`RespBody`], the response body that tells the clock when the response is done and bounds
//! an HTTP/2 stream's response by `writeTimeout`.
//!
//! The decisions themselves (what is due when) are the pure [`crate::limits::ClockState`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use crate::limits::{ClockState, Due, EntrypointLimits, LimitKind};

/// The HTTP/2 connection preface starts with this (RFC 9113 §3.4); no HTTP/1 method does.
const H2_PREFIX: &[u8] = b"PRI * HTTP/2.0";

/// The timing state of one connection, shared by its I/O, requests and watchdog (a lock per
/// connection, never contended beyond the connection's own streams).
pub(crate) struct ConnClock {
    state: Mutex<ClockState>,
    /// Whether reads matter to the state ([`ClockState::wants_reads`]): the read path skips
    /// the lock while a request is in flight and on HTTP/2.
    reads: AtomicBool,
    limits: EntrypointLimits,
}

impl ConnClock {
    pub(crate) fn new(limits: EntrypointLimits) -> ConnClock {
        ConnClock {
            state: Mutex::new(ClockState::new(Instant::now().into_std())),
            reads: AtomicBool::new(true),
            limits,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut ClockState) -> R) -> Option<R> {
        self.state.lock().ok().map(|mut s| {
            let r = f(&mut s);
            self.reads.store(s.wants_reads(), Ordering::Relaxed);
            r
        })
    }

    pub(crate) fn limits(&self) -> &EntrypointLimits {
        &self.limits
    }

    /// A request's head was read (at `now`): returns when reading it started, and whether the
    /// head had both `Content-Length` and `Transfer-Encoding` (the connection must close after
    /// it).
    pub(crate) fn begin(&self, now: Instant) -> (Instant, bool) {
        self.with(|s| {
            let (t0, ambiguous) = s.begin(now.into_std(), &self.limits);
            (Instant::from_std(t0), ambiguous)
        })
        .unwrap_or((now, false))
    }

    /// Bytes read in the current head phase.
    pub(crate) fn head_bytes(&self) -> usize {
        self.with(|s| s.head_bytes()).unwrap_or(0)
    }

    fn end(&self) {
        let now = Instant::now().into_std();
        self.with(|s| s.end(now));
    }

    fn on_read(&self, data: &[u8]) {
        if !self.reads.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now().into_std();
        self.with(|s| s.on_read(now, data));
    }

    fn on_h2(&self) {
        let now = Instant::now().into_std();
        self.with(|s| s.on_h2(now));
    }

    fn due(&self) -> Due {
        let now = Instant::now().into_std();
        self.with(|s| s.due(now, &self.limits))
            .unwrap_or(Due::Never)
    }
}

/// Resolves with the first timeout that expires on the connection (read, write or idle).
pub(crate) async fn watchdog(clock: Arc<ConnClock>) -> LimitKind {
    loop {
        match clock.due() {
            Due::Expired(kind) => return kind,
            Due::At(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
            Due::Never => std::future::pending::<()>().await,
        }
    }
}

/// A request in flight: ends it on the clock when dropped.
pub(crate) struct InFlight(Arc<ConnClock>);

impl InFlight {
    pub(crate) fn new(clock: Arc<ConnClock>) -> InFlight {
        InFlight(clock)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The client socket (plaintext or TLS) of a connection.
pub(crate) struct ConnIo<T> {
    inner: T,
    clock: Arc<ConnClock>,
    /// Bytes of [`H2_PREFIX`] matched so far; `usize::MAX` once decided.
    preface: usize,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<T> ConnIo<T> {
    pub(crate) fn new(
        inner: T,
        clock: Arc<ConnClock>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> ConnIo<T> {
        ConnIo {
            inner,
            clock,
            preface: 0,
            _permit: permit,
        }
    }

    fn sniff(&mut self, read: &[u8]) {
        let mut matched = self.preface;
        for b in read {
            if matched == H2_PREFIX.len() {
                break;
            }
            if H2_PREFIX.get(matched) != Some(b) {
                self.preface = usize::MAX;
                return;
            }
            matched += 1;
        }
        if matched == H2_PREFIX.len() {
            self.preface = usize::MAX;
            self.clock.on_h2();
        } else {
            self.preface = matched;
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let new = buf.filled().get(before..).unwrap_or_default();
            if !new.is_empty() {
                if this.preface != usize::MAX {
                    this.sniff(new);
                }
                this.clock.on_read(new);
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why a response was abandoned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The response was not written within the entry point's `writeTimeout`.
    #[error("response not written within the entry point's writeTimeout")]
    WriteTimeout,
    /// The backend's body failed.
    #[error(transparent)]
    Body(#[from] hyper::Error),
}

/// A response body on its way to the client: ends the request on the connection's clock when
/// finished or dropped; on HTTP/2, fails the stream at the `writeTimeout` deadline (HTTP/1's
/// is enforced on the whole connection by the watchdog).
pub(crate) struct RespBody<B> {
    inner: B,
    in_flight: Option<InFlight>,
    deadline: Option<(
        Pin<Box<Sleep>>,
        prometheus_client::metrics::counter::Counter,
    )>,
}

impl<B> RespBody<B> {
    #[inline]
    pub(crate) fn new(
        inner: B,
        in_flight: InFlight,
        deadline: Option<(Instant, prometheus_client::metrics::counter::Counter)>,
    ) -> RespBody<B> {
        RespBody {
            inner,
            in_flight: Some(in_flight),
            deadline: deadline.map(|(at, c)| (Box::pin(tokio::time::sleep_until(at)), c)),
        }
    }
}

impl<B> Body for RespBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = ConnError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ConnError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.in_flight.take();
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(r)) => Poll::Ready(Some(r.map_err(ConnError::from))),
            Poll::Pending => {
                if let Some((sleep, hits)) = &mut this.deadline {
                    if sleep.as_mut().poll(cx).is_ready() {
                        hits.inc();
                        this.deadline = None;
                        this.in_flight.take();
                        return Poll::Ready(Some(Err(ConnError::WriteTimeout)));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
