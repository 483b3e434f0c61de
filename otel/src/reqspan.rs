//! Request spans without the SDK: the proxy's per-request spans (the server span, a
//! `ReverseProxy` client span per attempt, an `AuthRequest` span per forwardAuth call) are
//! [`ReqSpan`]s, not `opentelemetry_sdk` spans.
//!
//! Why: measured with callgrind, the SDK's per-span machinery (`SpanBuilder`, a `Vec<KeyValue>`
//! of attributes, `SpanData` construction, the processor's `on_end`, `Context` and
//! `SpanContext` clones) was most of what tracing added per request once export was cheap. A
//! `ReqSpan` is one boxed [`Rec`] — ids, kind, static name, start/end as Unix nanoseconds, up
//! to [`MAX_ATTRS`] attributes held inline whose values are static strings, the `Arc<str>`s
//! the config version already built (router, service, server URL), short copies of the
//! request's path and host held in the record ([`Val::Inline`]: not reference-counted clones
//! of the request's bytes, see there) or integers, and the status — moved into the bounded
//! queue when it ends (`try_send`; a full queue drops it and counts it, as for SDK spans) and
//! encoded by `otlp` straight to `ExportTraceServiceRequest` bytes in the export task, which
//! then sends the box back to the thread that made it for its next span
//! ([`crate::recycle`]: no allocation per span in the steady state). Ids come from a per-thread generator ([`next_id`]); the sampler ([`Sampler`]) has the
//! SDK's semantics (ratio on the trace id, parent-based, `OTEL_TRACES_SAMPLER`/`_ARG`). A span
//! that is not sampled has a context (its ids are propagated, flag `00`) but records nothing.
//!
//! The control node's spans and the proxy's `config apply` span stay on the SDK ([`crate::Span`]):
//! they are not per request. Both kinds share the queue and the export task.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;

use crate::processor::{Item, Queue};
use crate::recycle::{Home, Local, Returns};

/// Most attributes a request span holds (the server span has 12); more are dropped and counted
/// in the span's `dropped_attributes_count`.
pub const MAX_ATTRS: usize = 12;

/// A span context on the request path: what is propagated in `traceparent`/`tracestate` and
/// what child spans hang from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanCx {
    /// Trace id (never all zero).
    pub trace_id: [u8; 16],
    /// Span id (never all zero).
    pub span_id: [u8; 8],
    /// The sampled flag.
    pub sampled: bool,
    /// Whether the span is another process's (extracted from a request).
    pub remote: bool,
    /// The `tracestate` header value (`None` when empty).
    pub state: Option<Arc<str>>,
}

impl SpanCx {
    /// The context of an SDK span context (`None` when it is not valid).
    pub fn from_sdk(sc: &opentelemetry::trace::SpanContext) -> Option<SpanCx> {
        if !sc.is_valid() {
            return None;
        }
        let state = sc.trace_state().header();
        Some(SpanCx {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            sampled: sc.is_sampled(),
            remote: sc.is_remote(),
            state: (!state.is_empty()).then(|| Arc::from(state)),
        })
    }
}

/// An attribute value.
#[derive(Debug, Clone)]
pub enum Val {
    /// A static string.
    Static(&'static str),
    /// A string shared with the config version (router, service, server URL…).
    Shared(Arc<str>),
    /// A string copied from the request.
    Owned(Box<str>),
    /// A header value (not UTF-8: encoded lossily).
    Header(HeaderValue),
    /// A request target's path (a reference-counted clone of the request's).
    Path(http::uri::PathAndQuery),
    /// A short string copied from the request ([`Val::copy`]): held in place, not a
    /// reference-counted clone of the request's `Bytes` — a clone keeps hyper's read buffer
    /// shared until the export task drops the span on another thread, so the buffer is freed
    /// there and hyper's next one misses the worker's allocation cache.
    Inline(arrayvec::ArrayString<INLINE>),
    /// An integer.
    Int(i64),
}

/// Longest string a [`Val::Inline`] holds.
const INLINE: usize = 46;

impl Val {
    /// A copy of `s` from the request: held in place when short, else boxed.
    #[inline]
    pub fn copy(s: &str) -> Val {
        match arrayvec::ArrayString::from(s) {
            Ok(a) => Val::Inline(a),
            Err(_) => Val::Owned(s.into()),
        }
    }

    /// A copy of a header value (not UTF-8: decoded lossily, as it is encoded).
    pub fn copy_header(h: &HeaderValue) -> Val {
        match h.to_str() {
            Ok(s) => Val::copy(s),
            Err(_) => Val::Owned(String::from_utf8_lossy(h.as_bytes()).into()),
        }
    }

    /// The value as text (integers excepted).
    pub(crate) fn text(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match self {
            Val::Static(s) => Some(Cow::Borrowed(s)),
            Val::Shared(s) => Some(Cow::Borrowed(s)),
            Val::Owned(s) => Some(Cow::Borrowed(s)),
            Val::Header(h) => Some(String::from_utf8_lossy(h.as_bytes())),
            Val::Path(p) => Some(Cow::Borrowed(p.path())),
            Val::Inline(s) => Some(Cow::Borrowed(s)),
            Val::Int(_) => None,
        }
    }
}

/// Span kinds of request spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The proxy's span of a request it serves.
    Server,
    /// A request the proxy makes (to a server, to an authentication server).
    Client,
}

impl Kind {
    /// OTLP's `SpanKind` number.
    pub(crate) fn otlp(self) -> u32 {
        match self {
            Kind::Server => 2,
            Kind::Client => 3,
        }
    }
}

/// A finished (or running) span's record: what is exported.
#[derive(Debug)]
pub(crate) struct Rec {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero: a root span.
    pub parent_id: [u8; 8],
    pub parent_remote: bool,
    pub state: Option<Arc<str>>,
    pub kind: Kind,
    pub name: &'static str,
    /// Unix nanoseconds.
    pub start: u64,
    pub end: u64,
    /// (An `ArrayVec`, not an array of `Option`s: nothing to write for the empty slots when
    /// the span starts, nor to check when it is dropped.)
    pub attrs: arrayvec::ArrayVec<(&'static str, Val), MAX_ATTRS>,
    pub dropped_attrs: u32,
    /// `Some(description)`: status `Error`; `None`: `Unset`.
    pub error: Option<Val>,
    /// Where the box goes back to once exported (see [`crate::recycle`]); `None`: freed.
    pub home: Option<Arc<Home<Rec>>>,
}

impl Rec {
    pub(crate) fn attrs(&self) -> impl Iterator<Item = (&'static str, &Val)> {
        self.attrs.iter().map(|(k, v)| (*k, v))
    }

    /// A record with nothing set.
    pub(crate) fn empty(home: Option<Arc<Home<Rec>>>) -> Rec {
        Rec {
            trace_id: [0; 16],
            span_id: [0; 8],
            parent_id: [0; 8],
            parent_remote: false,
            state: None,
            kind: Kind::Server,
            name: "",
            start: 0,
            end: 0,
            attrs: arrayvec::ArrayVec::new(),
            dropped_attrs: 0,
            error: None,
            home,
        }
    }

    /// Drops what the span held (its attribute values, `tracestate`, status), keeping the box.
    fn clear(&mut self) {
        self.attrs.clear();
        self.state = None;
        self.error = None;
    }
}

impl crate::recycle::Homed for Rec {
    fn home(&self) -> Option<&Arc<Home<Rec>>> {
        self.home.as_ref()
    }
}

thread_local! {
    /// This thread's record boxes (see [`crate::recycle`]).
    static BOXES: RefCell<Local<Rec>> = RefCell::new(Local::default());
}

/// A record box with nothing set but `home` (its other fields are the caller's to set): a
/// returned one, else a new one.
fn take_box() -> Box<Rec> {
    BOXES
        .try_with(|b| {
            let mut b = b.borrow_mut();
            b.take()
                .unwrap_or_else(|| Box::new(Rec::empty(Some(b.home()))))
        })
        // (Only while this thread's locals are being destroyed.)
        .unwrap_or_else(|_| Box::new(Rec::empty(None)))
}

/// A record that is not exported goes back to this thread's free list.
fn give_back(mut r: Box<Rec>) {
    r.clear();
    let _ = BOXES.try_with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            b.give_back(r);
        }
    });
}

/// Sends the request spans' boxes of an exported batch back to the threads that made them
/// (see [`crate::recycle`]); SDK spans are dropped.
pub(crate) fn recycle(batch: Vec<Item>) {
    let mut back = Returns::default();
    for it in batch {
        if let Item::Fast(mut r) = it {
            r.clear();
            back.push(r);
        }
    }
    back.send();
}

/// A request span (see the module documentation); it ends when [`ReqSpan::end`] is called or
/// when it is dropped.
#[derive(Debug)]
pub struct ReqSpan {
    cx: SpanCx,
    rec: Option<(Arc<Queue>, Box<Rec>)>,
}

impl ReqSpan {
    /// Its context (to inject, to hang child spans from).
    #[inline]
    pub fn context(&self) -> &SpanCx {
        &self.cx
    }

    /// Whether it records (it is sampled): attributes of a span that does not are ignored, so
    /// skip computing them.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.rec.is_some()
    }

    /// Sets an attribute (the key must not be set already).
    #[inline]
    pub fn set(&mut self, key: &'static str, v: Val) {
        if let Some((_, r)) = &mut self.rec {
            if r.attrs.try_push((key, v)).is_err() {
                r.dropped_attrs += 1;
            }
        }
    }

    /// Sets the status to `Error` with `description`.
    #[inline]
    pub fn set_error(&mut self, description: Val) {
        if let Some((_, r)) = &mut self.rec {
            r.error = Some(description);
        }
    }

    /// Ends the span now: it is queued for export.
    pub fn end(mut self) {
        self.finish();
    }

    /// Drops the span without exporting it.
    pub fn discard(mut self) {
        if let Some((_, r)) = self.rec.take() {
            give_back(r);
        }
    }

    fn finish(&mut self) {
        if let Some((q, mut r)) = self.rec.take() {
            r.end = nanos(SystemTime::now());
            q.push(Item::Fast(r));
        }
    }
}

impl Drop for ReqSpan {
    fn drop(&mut self) {
        self.finish();
    }
}

pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    // `RandomState` keys are random per process and differ per instance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(nanos(SystemTime::now()));
    h.finish()
}

/// A random non-zero 64-bit id from this thread's generator (wyrand: not cryptographic, which
/// span ids need not be; each thread is seeded from the process's random hash keys).
pub fn next_id() -> u64 {
    RNG.with(|s| loop {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        let v = (t as u64) ^ ((t >> 64) as u64);
        if v != 0 {
            return v;
        }
    })
}

/// Which spans are sampled: the SDK's samplers, for request spans.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    /// Every span.
    AlwaysOn,
    /// No span.
    AlwaysOff,
    /// The spans whose trace id is under the ratio (the SDK's `TraceIdRatioBased`).
    Ratio(f64),
    /// The parent's decision; the inner sampler for root spans.
    ParentBased(Box<Sampler>),
}

impl Sampler {
    /// `ParentBased(Ratio(rate))` for a configured rate, else what `OTEL_TRACES_SAMPLER` and
    /// `OTEL_TRACES_SAMPLER_ARG` say, as the SDK reads them (default `parentbased_always_on`;
    /// an unknown name or a missing ratio falls back as the SDK does).
    pub fn new(rate: Option<f64>, env: impl Fn(&str) -> Option<String>) -> Sampler {
        use Sampler::*;
        if let Some(r) = rate {
            return ParentBased(Box::new(Ratio(r)));
        }
        let ratio = || {
            env("OTEL_TRACES_SAMPLER_ARG")
                .and_then(|a| a.parse::<f64>().ok())
                .unwrap_or(1.0)
        };
        match env("OTEL_TRACES_SAMPLER").as_deref() {
            Some("always_on") => AlwaysOn,
            Some("always_off") => AlwaysOff,
            Some("traceidratio") => Ratio(ratio()),
            Some("parentbased_always_off") => ParentBased(Box::new(AlwaysOff)),
            Some("parentbased_traceidratio") => ParentBased(Box::new(Ratio(ratio()))),
            _ => ParentBased(Box::new(AlwaysOn)),
        }
    }

    /// Whether a span of `trace_id` under `parent` is sampled.
    pub fn sample(&self, parent: Option<&SpanCx>, trace_id: &[u8; 16]) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::Ratio(r) => {
                if *r >= 1.0 {
                    return true;
                }
                let bound = (r.max(0.0) * (1u64 << 63) as f64) as u64;
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace_id[8..]);
                (u64::from_be_bytes(low) >> 1) < bound
            }
            Sampler::ParentBased(root) => match parent {
                Some(p) => p.sampled,
                None => root.sample(None, trace_id),
            },
        }
    }
}

/// Starts a request span (used by [`crate::Tracer::req_span`]).
pub(crate) fn start(
    queue: &Arc<Queue>,
    sampler: &Sampler,
    name: &'static str,
    kind: Kind,
    parent: Option<&SpanCx>,
    start: Option<SystemTime>,
) -> ReqSpan {
    let trace_id = match parent {
        Some(p) => p.trace_id,
        None => {
            let mut t = [0u8; 16];
            t[..8].copy_from_slice(&next_id().to_be_bytes());
            t[8..].copy_from_slice(&next_id().to_be_bytes());
            t
        }
    };
    let span_id = next_id().to_be_bytes();
    let sampled = sampler.sample(parent, &trace_id);
    let state = parent.and_then(|p| p.state.clone());
    let rec = sampled.then(|| {
        // Fields written in place (a recycled box: no record built and copied into it).
        let mut r = take_box();
        r.trace_id = trace_id;
        r.span_id = span_id;
        r.parent_id = parent.map_or([0; 8], |p| p.span_id);
        r.parent_remote = parent.is_some_and(|p| p.remote);
        r.state = state.clone();
        r.kind = kind;
        r.name = name;
        r.start = nanos(start.unwrap_or_else(SystemTime::now));
        r.end = 0;
        r.dropped_attrs = 0;
        (queue.clone(), r)
    });
    ReqSpan {
        cx: SpanCx {
            trace_id,
            span_id,
            sampled,
            remote: false,
            state,
        },
        rec,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn cx(sampled: bool) -> SpanCx {
        SpanCx {
            trace_id: [1; 16],
            span_id: [2; 8],
            sampled,
            remote: true,
            state: None,
        }
    }

    #[test]
    fn samplers_follow_the_sdk() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        use Sampler::*;
        assert_eq!(
            Sampler::new(None, env(&[])),
            ParentBased(Box::new(AlwaysOn))
        );
        assert_eq!(
            Sampler::new(Some(0.5), env(&[("OTEL_TRACES_SAMPLER", "always_off")])),
            ParentBased(Box::new(Ratio(0.5)))
        );
        assert_eq!(
            Sampler::new(
                None,
                env(&[
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "0.25")
                ])
            ),
            ParentBased(Box::new(Ratio(0.25)))
        );
        assert_eq!(
            Sampler::new(None, env(&[("OTEL_TRACES_SAMPLER", "traceidratio")])),
            Ratio(1.0)
        );
        assert_eq!(
            Sampler::new(None, env(&[("OTEL_TRACES_SAMPLER", "always_off")])),
            AlwaysOff
        );
        assert_eq!(
            Sampler::new(None, env(&[("OTEL_TRACES_SAMPLER", "nonsense")])),
            ParentBased(Box::new(AlwaysOn))
        );

        let pb = ParentBased(Box::new(Ratio(0.0)));
        assert!(pb.sample(Some(&cx(true)), &[0; 16]));
        assert!(!ParentBased(Box::new(AlwaysOn)).sample(Some(&cx(false)), &[0; 16]));
        assert!(!pb.sample(None, &[0xff; 16]));
        // The SDK's ratio: the trace id's low 64 bits, shifted right once, under ratio * 2^63.
        let mut low = [0u8; 16];
        low[8..].copy_from_slice(&(1u64 << 62).to_be_bytes()); // 2^61 after the shift
        assert!(Ratio(0.26).sample(None, &low));
        assert!(!Ratio(0.24).sample(None, &low));
        assert!(Ratio(1.0).sample(None, &[0xff; 16]));
        assert!(AlwaysOn.sample(Some(&cx(false)), &[0; 16]));
    }

    /// Batches the export task hands over.
    struct Capture(std::sync::mpsc::Sender<Vec<Rec>>);

    impl crate::processor::Export for Capture {
        async fn export(&self, batch: Vec<Item>) -> Result<(), String> {
            let recs = batch
                .into_iter()
                .filter_map(|it| match it {
                    Item::Fast(r) => Some(*r),
                    Item::Sdk(_) => None,
                })
                .collect();
            self.0.send(recs).map_err(|e| e.to_string())
        }
    }

    /// Ended and dropped spans are exported, discarded and unsampled ones are not; children
    /// keep the trace id and `tracestate`; attributes over the limit are counted.
    #[test]
    fn spans_end_into_the_queue() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let counters = crate::Counters::default();
        let q = Queue::start(
            Capture(tx),
            64,
            std::time::Duration::from_secs(5),
            counters.clone(),
            rt.handle(),
        );
        let on = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
        let remote = SpanCx {
            state: Some("vendor=x".into()),
            ..cx(true)
        };
        let mut server = start(&q, &on, "GET", Kind::Server, Some(&remote), None);
        assert!(server.is_recording());
        for i in 0..MAX_ATTRS + 2 {
            server.set("k", Val::Int(i as i64));
        }
        let mut client = start(
            &q,
            &on,
            "ReverseProxy",
            Kind::Client,
            Some(server.context()),
            None,
        );
        client.set_error(Val::Static("boom"));
        let (sid, cid) = (server.context().span_id, client.context().span_id);
        assert_eq!(client.context().trace_id, remote.trace_id);
        assert_eq!(client.context().state.as_deref(), Some("vendor=x"));
        drop(client);
        server.end();
        start(&q, &on, "GET", Kind::Server, None, None).discard();
        let quiet = start(&q, &on, "GET", Kind::Server, Some(&cx(false)), None);
        assert!(!quiet.is_recording() && !quiet.context().sampled);
        assert_ne!(quiet.context().span_id, [2; 8]);
        drop(quiet);

        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < 2 && std::time::Instant::now() < deadline {
            if let Ok(b) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
                got.extend(b);
            }
        }
        assert_eq!(got.len(), 2, "{got:?}");
        let (c, s) = (&got[0], &got[1]);
        assert_eq!((c.name, c.span_id, c.parent_id), ("ReverseProxy", cid, sid));
        assert!(!c.parent_remote && c.error.is_some() && c.end >= c.start);
        assert_eq!(
            (s.name, s.parent_id, s.parent_remote),
            ("GET", [2; 8], true)
        );
        assert_eq!((s.attrs().count(), s.dropped_attrs), (MAX_ATTRS, 2));
        // Nothing else comes (the discarded and the unsampled span).
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(500))
            .is_err());
        assert_eq!(counters.dropped.get(), 0);
    }

    /// An exported record's box comes back to the thread that made it, cleared; one made on
    /// a thread that is gone is freed.
    #[test]
    fn boxes_go_back_home() {
        let mut r = take_box();
        r.attrs.push(("k", Val::Shared("v".into())));
        r.error = Some(Val::Static("e"));
        r.state = Some("a=b".into());
        let at: *const Rec = &*r;
        let other = std::thread::spawn(|| {
            let mut o = take_box();
            o.name = "other";
            o
        })
        .join()
        .unwrap();
        recycle(vec![Item::Fast(r), Item::Fast(other)]);
        let again = take_box();
        assert!(std::ptr::eq(at, &*again));
        assert!(again.attrs.is_empty() && again.error.is_none() && again.state.is_none());
        // (The other thread is gone: its box was freed, nothing else came back here.)
        assert!(BOXES.with(|b| b.borrow_mut().take()).is_none());
    }

    #[test]
    fn ids_are_non_zero_and_differ() {
        let ids: std::collections::HashSet<u64> = (0..10_000).map(|_| next_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(!ids.contains(&0));
        let other = std::thread::spawn(next_id).join().unwrap();
        assert!(!ids.contains(&other));
    }
}
