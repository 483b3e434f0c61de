//! OpenTelemetry tracing of the proxy (Traefik v3's tracing): per request a server span named
//! after the method (entry point, router, service, server URL, status, retries), a
//! `ReverseProxy` client span per attempt to a server and a `forwardAuth` client span per call
//! to an authentication server; W3C `traceparent`/`tracestate` are extracted from the client
//! (its trace id is kept) and injected to the backend. A pushed config version that carries a
//! trace context gets a `config apply` span (compile + swap + ACK) in that trace. The tracer,
//! its options and the bounded export queue are [`switchyard_otel`]'s, shared with the control
//! node; dropped spans are counted in `switchyard_proxy_tracing_dropped_spans_total`. A router
//! with `observability.tracing: false` makes no span. Off by default.
//!
//! Request spans are [`switchyard_otel::ReqSpan`]s (a boxed record with static names and the
//! config version's `Arc<str>`s, queued and encoded to OTLP without the SDK's `Span`; see
//! [`switchyard_otel::reqspan`]); only the `config apply` span (once per pushed version) is an
//! SDK span.

use std::sync::Arc;

use opentelemetry::KeyValue;
pub use switchyard_otel::{config, Protocol, TracingOptions};
pub(crate) use switchyard_otel::{inject_cx, Tracer as Tracing};

use crate::errors::ProxyError;
use crate::metrics::Metrics;

/// Who this proxy is (resource attributes).
pub(crate) struct Identity<'a> {
    pub proxy_id: &'a str,
    pub region: &'a str,
    pub zone: &'a str,
}

/// Starts the tracer: its counters go to the proxy's `/metrics`.
pub(crate) fn start(
    opts: &TracingOptions,
    id: &Identity<'_>,
    metrics: &Metrics,
    handle: &tokio::runtime::Handle,
) -> Result<Arc<Tracing>, ProxyError> {
    let counters = switchyard_otel::Counters::default();
    metrics.register(
        "tracing_dropped_spans",
        "Spans dropped because the export queue was full (collector slow or down)",
        counters.dropped.clone(),
    );
    metrics.register(
        "tracing_exported_spans",
        "Spans sent to the OTLP collector",
        counters.exported.clone(),
    );
    metrics.register(
        "tracing_failed_spans",
        "Spans lost in failed or timed-out OTLP exports",
        counters.failed.clone(),
    );
    switchyard_otel::Tracer::start(opts, identity(id), counters, handle)
        .map(Arc::new)
        .map_err(|e| ProxyError::Options(e.to_string()))
}

/// Starts the OTLP metrics push of the proxy's `/metrics` series.
pub(crate) fn start_metrics(
    opts: &switchyard_otel::MetricsOptions,
    id: &Identity<'_>,
    metrics: &Arc<Metrics>,
    handle: &tokio::runtime::Handle,
) -> Result<switchyard_otel::MetricsExport, ProxyError> {
    let m = metrics.clone();
    switchyard_otel::MetricsExport::start(opts, identity(id), Arc::new(move || m.encode()), handle)
        .map_err(|e| ProxyError::Options(format!("metrics: {e}")))
}

fn identity(id: &Identity<'_>) -> switchyard_otel::Identity {
    switchyard_otel::Identity {
        service: "switchyard-proxy",
        instance: id.proxy_id.to_string(),
        region: id.region.to_string(),
        zone: id.zone.to_string(),
        attributes: vec![KeyValue::new(
            "switchyard.proxy.id",
            id.proxy_id.to_string(),
        )],
    }
}

/// The `config apply` span of a pushed version (compile + swap + ACK), in the trace of the
/// change that made it (the message's `traceparent`); `None` when either side does not trace.
pub(crate) fn config_apply_span(
    proxy: &crate::Proxy,
    msg: &switchyard_proto::stream::ConfigMessage,
) -> Option<switchyard_otel::Span> {
    use opentelemetry::trace::{SpanKind, TraceContextExt};
    let tracer = proxy.tracer()?;
    if msg.traceparent.is_empty() {
        return None;
    }
    let cx = switchyard_otel::context_from_traceparent(&msg.traceparent);
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let kind = match msg.body {
        Some(switchyard_proto::stream::config_message::Body::Delta(_)) => "delta",
        _ => "snapshot",
    };
    Some(tracer.span(
        "config apply",
        SpanKind::Consumer,
        &cx,
        None,
        vec![
            KeyValue::new("switchyard.proxy.id", proxy.id().to_string()),
            KeyValue::new("switchyard.config.version", msg.version as i64),
            KeyValue::new("switchyard.config.message", kind),
            KeyValue::new("switchyard.node.id", msg.node_id as i64),
        ],
    ))
}

/// Records the answer (ACK, or NACK with its error) on a `config apply` span; the span ends
/// when dropped, after the answer is sent.
pub(crate) fn end_config_apply(
    span: &mut switchyard_otel::Span,
    reply: &switchyard_proto::stream::proxy_message::Msg,
) {
    use opentelemetry::trace::{Span as _, Status};
    use switchyard_proto::stream::proxy_message::Msg;
    match reply {
        Msg::Ack(_) => span.set_attribute(KeyValue::new("switchyard.config.outcome", "ack")),
        Msg::Nack(n) => {
            span.set_attribute(KeyValue::new("switchyard.config.outcome", "nack"));
            span.set_status(Status::error(n.error.clone()));
        }
        _ => {}
    }
}
