//! OpenTelemetry tracing of a control node (`--tracing.*`, the same options, tracer and bounded
//! export queue as the proxy: [`switchyard_otel`]). A config change is one trace:
//!
//! ```text
//! admin Apply (server span; the caller's traceparent metadata is its parent)
//! └─ admin Apply (on the leader, when the call was forwarded)
//!    ├─ config validate   (the proposer's screen of the batch, on the leader)
//!    ├─ raft commit       (proposal → committed and applied on the leader)
//!    └─ config stream send  (each node, per attached proxy: the Raft entry carries the
//!       │                    trace, so followers' streams continue it)
//!       └─ config apply   (each proxy: compile + swap + ACK)
//! ```

use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use switchyard_otel::{Span, Tracer, TracingOptions};

use crate::metrics::Metrics;
use crate::node::NodeError;
use crate::options::NodeOptions;

/// gRPC metadata key of the W3C trace context (as in HTTP).
pub const TRACEPARENT: &str = "traceparent";

/// Span names.
pub const VALIDATE: &str = "config validate";
pub const COMMIT: &str = "raft commit";
pub const STREAM_SEND: &str = "config stream send";

/// Starts the tracer on the current runtime; its counters go to the node's `/metrics`.
pub fn start(
    t: &TracingOptions,
    opts: &NodeOptions,
    metrics: &Metrics,
) -> Result<Tracer, NodeError> {
    Tracer::start(
        t,
        identity(opts),
        metrics.tracing.clone(),
        &tokio::runtime::Handle::current(),
    )
    .map_err(|e| NodeError::Tracing(e.to_string()))
}

fn identity(opts: &NodeOptions) -> switchyard_otel::Identity {
    switchyard_otel::Identity {
        service: "switchyard",
        instance: opts.node_id.to_string(),
        region: opts.region.clone(),
        zone: opts.zone.clone(),
        attributes: vec![KeyValue::new("switchyard.node.id", opts.node_id as i64)],
    }
}

/// Starts the OTLP metrics push of the node's `/metrics` series (on the current runtime).
pub fn start_metrics(
    m: &switchyard_otel::MetricsOptions,
    shared: &std::sync::Arc<crate::shared::Shared>,
) -> Result<switchyard_otel::MetricsExport, NodeError> {
    let s = shared.clone();
    switchyard_otel::MetricsExport::start(
        m,
        identity(&shared.opts),
        std::sync::Arc::new(move || s.metrics.render()),
        &tokio::runtime::Handle::current(),
    )
    .map_err(|e| NodeError::Tracing(format!("metrics: {e}")))
}

/// A `traceparent` value as received (gRPC metadata, a log entry): short printable ASCII.
pub fn valid_traceparent(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}

/// The server span of an admin call `method` on node `node`, under the caller's `traceparent`.
pub fn admin_span(
    tracer: &Tracer,
    method: &'static str,
    node: u64,
    caller: Option<&str>,
    forwarded: bool,
) -> Span {
    let parent = caller
        .map(switchyard_otel::context_from_traceparent)
        .unwrap_or_default();
    tracer.span(
        format!("admin {method}"),
        SpanKind::Server,
        &parent,
        None,
        vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", "switchyard.admin.v1.Admin"),
            KeyValue::new("rpc.method", method),
            KeyValue::new("switchyard.node.id", node as i64),
            KeyValue::new("switchyard.forwarded", forwarded),
        ],
    )
}

/// The span context a `traceparent` names, when valid.
pub fn remote(tp: &str) -> Option<SpanContext> {
    let cx: Context = switchyard_otel::context_from_traceparent(tp);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}
