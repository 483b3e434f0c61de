//! # switchyard-otel
//!
//! The OpenTelemetry setup both planes share: the proxy's request spans and the control node's
//! admin, Raft and config stream spans go through the same [`Tracer`].
//!
//! | module | role |
//! |---|---|
//! | [`config`] | [`TracingOptions`] from flags and the standard `OTEL_*` variables (pure) |
//! | [`flags`] | [`TracingFlags`], the `--tracing.*` flags of both binaries |
//! | `otlp` | the OTLP/gRPC span exporter: spans encoded straight to protobuf bytes |
//! | `processor` | the span queue (request spans and the SDK's), never waited on; drops are counted |
//! | [`reqspan`] | the proxy's request spans, recorded without the SDK's `Span` |
//! | [`metrics`] | OTLP metrics: the `/metrics` series as instruments, pushed periodically |
//! | [`exposition`] | reads the OpenMetrics text `prometheus-client` writes (pure) |
//! | [`propagation`] | W3C `traceparent`/`tracestate` in HTTP headers and in config messages |
//!
//! Export is OTLP over gRPC (tonic; spans encoded by `otlp`, not by `opentelemetry-otlp`) or
//! HTTP/protobuf (`opentelemetry-otlp`). A slow, black-holed or absent collector
//! costs the caller nothing: a finished span is put in the queue with `try_send`, and one task
//! exports batches with a deadline; a span that does not fit is dropped and counted
//! ([`Counters::dropped`]).

pub mod config;
pub mod exposition;
pub mod flags;
pub mod metrics;
mod otlp;
mod processor;
pub mod propagation;
pub mod recycle;
pub mod reqspan;

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

pub use config::{Protocol, TracingOptions};
pub use flags::TracingFlags;
pub use metrics::{MetricsExport, MetricsFlags, MetricsOptions};
pub use opentelemetry::trace::Span as SpanExt;
pub use opentelemetry_sdk::trace::Span;
pub use otlp::EndpointError;
pub use processor::Counters;
pub use propagation::{context_from_traceparent, inject, inject_cx, traceparent};
pub use reqspan::{Kind, ReqSpan, Sampler, SpanCx, Val};

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The OTLP exporter refused its options.
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The OTLP/gRPC endpoint is not a URI.
    #[error("OTLP exporter: {0}")]
    Endpoint(#[from] otlp::EndpointError),
}

/// Who is tracing: `service.name` when neither the options nor `OTEL_SERVICE_NAME` set it,
/// the instrumentation scope, and resource attributes (`service.instance.id`, region, zone…).
#[derive(Debug, Clone)]
pub struct Identity {
    /// Default `service.name` (`switchyard-proxy`, `switchyard`).
    pub service: &'static str,
    /// `service.instance.id`.
    pub instance: String,
    /// `cloud.region` (left out when empty).
    pub region: String,
    /// `cloud.availability_zone` (left out when empty).
    pub zone: String,
    /// More resource attributes of the binary (e.g. `switchyard.proxy.id`).
    pub attributes: Vec<KeyValue>,
}

/// A running tracer: spans it makes are exported by the queue processor.
pub struct Tracer {
    tracer: SdkTracer,
    _provider: SdkTracerProvider,
    propagator: TraceContextPropagator,
    /// Where request spans go (SDK spans too, through the processor).
    queue: std::sync::Arc<processor::Queue>,
    /// The request spans' sampler (the SDK's has the same semantics).
    sampler: Sampler,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracer")
    }
}

impl Tracer {
    /// Builds the exporter (inside `handle`'s runtime: tonic's channel connects lazily, so an
    /// absent collector does not fail the start), the processor (its task on `handle`, counting
    /// into `counters`) and the tracer.
    pub fn start(
        opts: &TracingOptions,
        id: Identity,
        counters: Counters,
        handle: &tokio::runtime::Handle,
    ) -> Result<Tracer, OtelError> {
        let _guard = handle.enter();
        let resource = resource(opts, id.clone());
        // Request spans' scope: the one `provider.tracer(id.service)` gives SDK spans.
        let scope = opentelemetry::InstrumentationScope::builder(id.service).build();
        let queue = match opts.protocol {
            Protocol::Grpc => {
                // Our own encoder (see `otlp`): the SDK's conversion and prost encoding cost
                // most of a traced request.
                let mut exporter =
                    otlp::GrpcExporter::new(opts.endpoint.as_deref(), opts.export_timeout, |k| {
                        std::env::var(k).ok()
                    })?;
                exporter.set_resource(&resource);
                exporter.scope = scope;
                processor::Queue::start(exporter, opts.queue, opts.export_timeout, counters, handle)
            }
            Protocol::HttpProtobuf => {
                let mut b = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(opts.export_timeout)
                    .with_headers(Default::default());
                if let Some(e) = &opts.endpoint {
                    b = b.with_endpoint(e.clone());
                }
                let mut exporter = b.build()?;
                opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &resource);
                processor::Queue::start(
                    otlp::HttpExporter {
                        inner: exporter,
                        scope,
                    },
                    opts.queue,
                    opts.export_timeout,
                    counters,
                    handle,
                )
            }
        };
        let processor = processor::QueueProcessor(queue.clone());
        let mut pb = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(processor);
        if let Some(r) = opts.sample_rate {
            use opentelemetry_sdk::trace::Sampler as S;
            pb = pb.with_sampler(S::ParentBased(Box::new(S::TraceIdRatioBased(r))));
        }
        let provider = pb.build();
        let tracer = provider.tracer(id.service);
        Ok(Tracer {
            tracer,
            _provider: provider,
            propagator: TraceContextPropagator::new(),
            queue,
            sampler: Sampler::new(opts.sample_rate, |k| std::env::var(k).ok()),
        })
    }

    /// The caller's trace context from W3C `traceparent`/`tracestate` headers (empty when none).
    pub fn extract(&self, headers: &http::HeaderMap) -> Context {
        propagation::extract(&self.propagator, headers)
    }

    /// The caller's span context from W3C `traceparent`/`tracestate` headers (`None` when
    /// there is none or it is malformed), for request spans.
    pub fn extract_cx(&self, headers: &http::HeaderMap) -> Option<SpanCx> {
        if !headers.contains_key(propagation::TRACEPARENT) {
            return None;
        }
        let cx = propagation::extract(&self.propagator, headers);
        SpanCx::from_sdk(cx.span().span_context())
    }

    /// Starts a request span (see [`reqspan`]) named `name` under `parent` (a root span when
    /// `None`), at `start` (now when `None`).
    pub fn req_span(
        &self,
        name: &'static str,
        kind: Kind,
        parent: Option<&SpanCx>,
        start: Option<SystemTime>,
    ) -> ReqSpan {
        reqspan::start(&self.queue, &self.sampler, name, kind, parent, start)
    }

    /// Starts a span named `name` of `kind` under `parent` (a root span when `parent` holds
    /// none), at `start` (now when `None`).
    pub fn span(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: &Context,
        start: Option<SystemTime>,
        attrs: Vec<KeyValue>,
    ) -> Span {
        let mut b = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attrs);
        if let Some(t) = start {
            b = b.with_start_time(t);
        }
        b.start_with_context(&self.tracer, parent)
    }

    /// Starts a span under the span `parent` (a local or remote span context).
    pub fn child(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: &SpanContext,
        attrs: Vec<KeyValue>,
    ) -> Span {
        let cx = Context::new().with_remote_span_context(parent.clone());
        self.span(name, kind, &cx, None, attrs)
    }
}

/// The resource of a process's spans and metrics.
fn resource(opts: &TracingOptions, id: Identity) -> Resource {
    let mut attrs = vec![KeyValue::new("service.instance.id", id.instance)];
    if !id.region.is_empty() {
        attrs.push(KeyValue::new("cloud.region", id.region));
    }
    if !id.zone.is_empty() {
        attrs.push(KeyValue::new("cloud.availability_zone", id.zone));
    }
    attrs.extend(id.attributes);
    for (k, v) in &opts.resource_attributes {
        attrs.push(KeyValue::new(k.clone(), v.clone()));
    }
    let mut rb = Resource::builder().with_attributes(attrs);
    if let Some(n) = &opts.service_name {
        rb = rb.with_service_name(n.clone());
    } else if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        rb = rb.with_service_name(id.service);
    }
    rb.build()
}
