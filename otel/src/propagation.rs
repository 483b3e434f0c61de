//! W3C trace context (`traceparent`, `tracestate`): read from and written to HTTP headers, and
//! carried as a plain `traceparent` string where a trace crosses something that is not HTTP
//! (gRPC metadata, a Raft log entry, a pushed config message).

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::SpanContext;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// `traceparent` (a constant: a `&str` key is parsed and hashed on every map access).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct OneExtractor<'a>(&'a str);

impl Extractor for OneExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// The context in `headers` (empty when there is no `traceparent`).
pub(crate) fn extract(p: &TraceContextPropagator, headers: &HeaderMap) -> Context {
    if !headers.contains_key(TRACEPARENT) {
        return Context::new();
    }
    p.extract(&HeaderExtractor(headers))
}

/// The remote span context a `traceparent` value names (empty context when it is malformed).
pub fn context_from_traceparent(tp: &str) -> Context {
    TraceContextPropagator::new().extract(&OneExtractor(tp))
}

/// The `traceparent` value of `sc` (`None` when it is not a valid span context).
pub fn traceparent(sc: &SpanContext) -> Option<String> {
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The two lower-case hex digits of every byte.
const HEX2: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (b, o) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&HEX2[usize::from(*b)]);
    }
}

/// Sets `traceparent` (and `tracestate`) of `sc` on an outgoing request.
pub fn inject(sc: &SpanContext, headers: &mut HeaderMap) {
    if !sc.is_valid() {
        return;
    }
    // `traceparent` written in place (no formatting machinery: this runs per request).
    let mut tp = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&sc.trace_id().to_bytes(), &mut tp[3..35]);
    hex_into(&sc.span_id().to_bytes(), &mut tp[36..52]);
    hex_into(&[sc.trace_flags().to_u8()], &mut tp[53..55]);
    if let Ok(v) = HeaderValue::from_bytes(&tp) {
        headers.insert(http::header::HeaderName::from_static("traceparent"), v);
    }
    let ts = sc.trace_state().header();
    if ts.is_empty() {
        headers.remove("tracestate");
    } else if let Ok(v) = HeaderValue::from_str(&ts) {
        headers.insert(http::header::HeaderName::from_static("tracestate"), v);
    }
}

/// Sets `traceparent` (and `tracestate`) of a request span's context on an outgoing request.
pub fn inject_cx(cx: &crate::SpanCx, headers: &mut HeaderMap) {
    let mut tp = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&cx.trace_id, &mut tp[3..35]);
    hex_into(&cx.span_id, &mut tp[36..52]);
    hex_into(&[u8::from(cx.sampled)], &mut tp[53..55]);
    if let Ok(v) = HeaderValue::from_bytes(&tp) {
        headers.insert(TRACEPARENT, v);
    }
    match cx.state.as_deref().map(HeaderValue::from_str) {
        Some(Ok(v)) => {
            headers.insert(TRACESTATE, v);
        }
        _ => {
            headers.remove(TRACESTATE);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use opentelemetry::trace::TraceContextExt;

    use super::*;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn extract_and_inject_keep_the_trace_id() {
        let p = TraceContextPropagator::new();
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(TP));
        h.insert("tracestate", HeaderValue::from_static("vendor=x"));
        let cx = extract(&p, &h);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let mut out = HeaderMap::new();
        inject(&sc, &mut out);
        assert_eq!(out["traceparent"], TP);
        assert_eq!(out["tracestate"], "vendor=x");
        assert!(
            extract(&p, &HeaderMap::new())
                .span()
                .span_context()
                .trace_id()
                == opentelemetry::trace::TraceId::INVALID
        );
    }

    #[test]
    fn request_span_contexts_inject_as_the_sdk_does() {
        let p = TraceContextPropagator::new();
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(TP));
        h.insert("tracestate", HeaderValue::from_static("vendor=x"));
        let cx = crate::SpanCx::from_sdk(extract(&p, &h).span().span_context()).unwrap();
        assert!(cx.remote && cx.sampled);
        let mut out = HeaderMap::new();
        out.insert("tracestate", HeaderValue::from_static("stale=1"));
        inject_cx(&cx, &mut out);
        assert_eq!(out["traceparent"], TP);
        assert_eq!(out["tracestate"], "vendor=x");
        let unsampled = crate::SpanCx {
            sampled: false,
            state: None,
            ..cx
        };
        inject_cx(&unsampled, &mut out);
        assert_eq!(
            out["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
        );
        assert!(out.get("tracestate").is_none());
    }

    #[test]
    fn traceparent_strings_round_trip_and_garbage_is_no_context() {
        let cx = context_from_traceparent(TP);
        let sc = cx.span().span_context().clone();
        assert_eq!(traceparent(&sc).as_deref(), Some(TP));
        for bad in [
            "",
            "00-xyz",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        ] {
            let cx = context_from_traceparent(bad);
            assert!(!cx.span().span_context().is_valid(), "{bad:?}");
            assert_eq!(traceparent(cx.span().span_context()), None);
        }
    }
}
