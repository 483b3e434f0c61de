//! Body types of the data path. All are concrete enums (no boxing per request) and `Unpin`.
//!
//! * [`ClientBody`]: the client's request body, failing with [`BodyError::ReadTimeout`] when it
//!   is still arriving at the entry point's `readTimeout` deadline.
//! * [`UpBody`]: what is sent to a backend: the client's streaming body as is, a small
//!   buffered body (mirrors), or a [`Tee`] that streams the client's body to the main backend
//!   while keeping a bounded copy for mirrors.
//! * [`ProxyBody`]: what is sent to the client: the backend's streaming body (trailers
//!   included) or a small fixed body (errors, redirects), plus a [`Completion`] guard that
//!   records metrics and releases the backend's in-flight slot when the body is finished or
//!   dropped (client gone), so durations and p2c in-flight counts cover the whole exchange.
//!
//! Frames are forwarded as they arrive; nothing is buffered beyond hyper's write buffer, so
//! responses are effectively flushed immediately (Traefik's `flushInterval: -1`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::middlewares::compress::Encoder;
use crate::server::Completion;
use crate::upstream::PooledBody;

/// Why a client's body failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// Reading from the client failed (it went away, sent garbage).
    #[error(transparent)]
    Client(#[from] hyper::Error),
    /// The body was still arriving at the entry point's `readTimeout` deadline.
    #[error("request body not read within the entry point's readTimeout")]
    ReadTimeout,
}

/// The read deadline of a request body (a request extension set by the entry point).
#[derive(Clone)]
pub(crate) struct ReadDeadline {
    /// When the whole request must have been read.
    pub at: Instant,
    /// `switchyard_proxy_entrypoint_limit_hits_total{limit="read_timeout"}` of the entry point.
    pub hits: Counter,
}

/// The client's request body, bounded by its [`ReadDeadline`].
pub(crate) struct ClientBody {
    inner: Incoming,
    deadline: Option<(Pin<Box<Sleep>>, Counter)>,
}

impl ClientBody {
    pub(crate) fn new(inner: Incoming, deadline: Option<ReadDeadline>) -> ClientBody {
        let deadline = deadline
            .filter(|_| !inner.is_end_stream())
            .map(|d| (Box::pin(tokio::time::sleep_until(d.at)), d.hits));
        ClientBody { inner, deadline }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if let Some((sleep, hits)) = &mut this.deadline {
                    if sleep.as_mut().poll(cx).is_ready() {
                        hits.inc();
                        this.deadline = None;
                        return Poll::Ready(Some(Err(BodyError::ReadTimeout)));
                    }
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(r)) => {
                if this.inner.is_end_stream() {
                    this.deadline = None;
                }
                Poll::Ready(Some(r.map_err(BodyError::from)))
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

/// A request body sent to a backend.
pub(crate) enum UpBody {
    /// The client's body, streamed.
    Incoming(ClientBody),
    /// A buffered body (possibly empty).
    Full(Option<Bytes>),
    /// The client's body, streamed, with a bounded copy kept for mirrors.
    Tee(Tee),
}

impl UpBody {
    pub(crate) fn empty() -> UpBody {
        UpBody::Full(None)
    }

    /// The client's body, bounded by the read deadline the entry point put in the request's
    /// extensions (taken out of them).
    pub(crate) fn client(body: Incoming, parts: &mut http::request::Parts) -> UpBody {
        UpBody::Incoming(ClientBody::new(
            body,
            parts.extensions.remove::<ReadDeadline>(),
        ))
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpBody::Incoming(b) => Pin::new(b).poll_frame(cx),
            UpBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
            UpBody::Tee(t) => Pin::new(t).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Incoming(b) => b.is_end_stream(),
            UpBody::Full(b) => b.is_none(),
            UpBody::Tee(t) => t.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Incoming(b) => b.size_hint(),
            UpBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            UpBody::Full(None) => SizeHint::with_exact(0),
            UpBody::Tee(t) => t.inner.size_hint(),
        }
    }
}

/// Streams a body through while copying up to `limit` bytes; when the body ends within the
/// limit, the copy is sent on `done`. When the limit is exceeded, the body fails, or the tee is
/// dropped early, `done` is dropped (the mirrors are skipped).
pub(crate) struct Tee {
    inner: ClientBody,
    buf: BytesMut,
    limit: usize,
    done: Option<oneshot::Sender<Bytes>>,
}

impl Tee {
    pub(crate) fn new(inner: ClientBody, limit: usize, done: oneshot::Sender<Bytes>) -> Tee {
        let mut t = Tee {
            inner,
            buf: BytesMut::new(),
            limit,
            done: Some(done),
        };
        if t.inner.is_end_stream() {
            t.finish();
        }
        t
    }

    fn finish(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(std::mem::take(&mut self.buf).freeze());
        }
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(d), true) = (frame.data_ref(), this.done.is_some()) {
                    if this.buf.len() + d.len() > this.limit {
                        this.done = None;
                        this.buf = BytesMut::new();
                    } else {
                        this.buf.extend_from_slice(d);
                    }
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Err(_))) => this.done = None,
            Poll::Pending => {}
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

enum Inner {
    Incoming(PooledBody),
    Full(Option<Bytes>),
    /// Another body, encoded as it streams (the `compress` middleware).
    Encoded(Box<Encoded>),
    /// A first data frame already read (the `contentType` sniff), then the rest.
    Prefixed(Option<Bytes>, Box<ProxyBody>),
    /// A gRPC body sent as gRPC-Web (the `grpcWeb` middleware).
    GrpcWeb(Box<crate::middlewares::grpcweb::WebBody>),
}

/// A body encoded frame by frame: each data frame is compressed and flushed; at the end the
/// encoder's last bytes are sent, then the source's trailers if any.
pub(crate) struct Encoded {
    src: ProxyBody,
    encoder: Option<Encoder>,
    trailers: Option<http::HeaderMap>,
}

impl Encoded {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        loop {
            let Some(enc) = self.encoder.as_mut() else {
                return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match Pin::new(&mut self.src).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => match enc.push(&data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        // Memory-only writers do not fail; end the stream if one does.
                        Err(_) => {
                            self.encoder = None;
                            return Poll::Ready(None);
                        }
                    },
                    Err(frame) => {
                        self.trailers = frame.into_trailers().ok();
                    }
                },
                Poll::Ready(None) => {}
            }
            // Source finished (or trailers arrived): the encoder's last bytes.
            if let Some(enc) = self.encoder.take() {
                match enc.finish() {
                    Ok(out) if !out.is_empty() => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    _ => {}
                }
            }
        }
    }
}

/// A response body sent to the client.
pub struct ProxyBody {
    inner: Inner,
    completion: Option<Completion>,
    /// `inFlightReq` slots released with the body.
    held: Vec<switchyard_config::middlewares::inflight::Slot>,
}

impl ProxyBody {
    /// A fixed body.
    pub(crate) fn full(b: Bytes) -> ProxyBody {
        ProxyBody {
            inner: Inner::Full(if b.is_empty() { None } else { Some(b) }),
            completion: None,
            held: Vec::new(),
        }
    }

    /// The backend's body, streamed.
    pub(crate) fn incoming(b: PooledBody) -> ProxyBody {
        ProxyBody {
            inner: Inner::Incoming(b),
            completion: None,
            held: Vec::new(),
        }
    }

    /// This body, encoded by `encoder` as it streams.
    pub(crate) fn encoded(self, encoder: Encoder) -> ProxyBody {
        ProxyBody {
            inner: Inner::Encoded(Box::new(Encoded {
                src: self,
                encoder: Some(encoder),
                trailers: None,
            })),
            completion: None,
            held: Vec::new(),
        }
    }

    /// `first`, then `rest`.
    pub(crate) fn prefixed(first: Bytes, rest: ProxyBody) -> ProxyBody {
        ProxyBody {
            inner: Inner::Prefixed(Some(first), Box::new(rest)),
            completion: None,
            held: Vec::new(),
        }
    }

    /// A gRPC-Web body.
    pub(crate) fn grpc_web(b: crate::middlewares::grpcweb::WebBody) -> ProxyBody {
        ProxyBody {
            inner: Inner::GrpcWeb(Box::new(b)),
            completion: None,
            held: Vec::new(),
        }
    }

    /// Hold `inFlightReq` slots until the body is finished or dropped.
    pub(crate) fn hold(&mut self, slots: Vec<switchyard_config::middlewares::inflight::Slot>) {
        self.held.extend(slots);
    }

    /// Attach the guard that runs when the body is finished or dropped.
    pub(crate) fn set_completion(&mut self, c: Completion) {
        self.completion = Some(c);
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let res = match &mut this.inner {
            Inner::Incoming(b) => Pin::new(b).poll_frame(cx),
            Inner::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
            Inner::Encoded(e) => e.poll_frame(cx),
            Inner::Prefixed(first, rest) => match first.take() {
                Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
                None => Pin::new(&mut **rest).poll_frame(cx),
            },
            Inner::GrpcWeb(w) => w.poll_frame(cx),
        };
        match &res {
            Poll::Ready(None) => {
                // Finished: record now rather than when hyper gets around to dropping us.
                this.completion.take();
                this.held.clear();
            }
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(c), Some(d)) = (&mut this.completion, f.data_ref()) {
                    c.sent(d.len());
                }
            }
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Incoming(b) => b.is_end_stream(),
            Inner::Full(b) => b.is_none(),
            Inner::Encoded(e) => e.encoder.is_none() && e.trailers.is_none(),
            Inner::Prefixed(first, rest) => first.is_none() && rest.is_end_stream(),
            Inner::GrpcWeb(w) => w.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Incoming(b) => b.size_hint(),
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Encoded(_) | Inner::GrpcWeb(_) => SizeHint::default(),
            Inner::Prefixed(Some(first), rest) => {
                let r = rest.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(r.lower() + first.len() as u64);
                if let Some(u) = r.upper() {
                    h.set_upper(u + first.len() as u64);
                }
                h
            }
            Inner::Prefixed(None, rest) => rest.size_hint(),
        }
    }
}
