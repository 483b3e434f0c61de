//! OpenTelemetry tracing of the proxy (Traefik v3's tracing): per request a server span named
//! after the method (entry point, router, service, server URL, status, retries) and a
//! `ReverseProxy` client span per attempt to a server; W3C `traceparent`/`tracestate` are
//! extracted from the client (its trace id is kept) and injected to the backend. Spans are
//! exported over OTLP (gRPC with tonic, or HTTP/protobuf) by [`processor`]: a bounded queue,
//! never waited on; dropped spans are counted in `switchyard_proxy_tracing_dropped_spans_total`.
//! A router with `observability.tracing: false` makes no span. Off by default.

pub mod config;
mod processor;

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, Span};
use opentelemetry_sdk::Resource;

pub use config::{Protocol, TracingOptions};
use processor::{Counters, QueueProcessor};

use crate::errors::ProxyError;
use crate::metrics::Metrics;

/// Who this proxy is (resource attributes).
pub(crate) struct Identity<'a> {
    pub proxy_id: &'a str,
    pub region: &'a str,
    pub zone: &'a str,
}

/// The running tracer of a proxy.
pub(crate) struct Tracing {
    tracer: SdkTracer,
    _provider: SdkTracerProvider,
    propagator: TraceContextPropagator,
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

impl Tracing {
    /// Build the exporter (inside the runtime: tonic's channel connects lazily, so an absent
    /// collector does not fail the start), the processor and the tracer.
    pub(crate) fn start(
        opts: &TracingOptions,
        id: &Identity<'_>,
        metrics: &Metrics,
        handle: &tokio::runtime::Handle,
    ) -> Result<Arc<Tracing>, ProxyError> {
        let _guard = handle.enter();
        let bad = |e: opentelemetry_otlp::ExporterBuildError| {
            ProxyError::Options(format!("tracing: OTLP exporter: {e}"))
        };
        let mut exporter = match opts.protocol {
            Protocol::Grpc => {
                let mut b = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_timeout(opts.export_timeout);
                if let Some(e) = &opts.endpoint {
                    b = b.with_endpoint(e.clone());
                }
                b.build().map_err(bad)?
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
                b.build().map_err(bad)?
            }
        };
        let mut attrs = vec![KeyValue::new(
            "service.instance.id",
            id.proxy_id.to_string(),
        )];
        attrs.push(KeyValue::new(
            "switchyard.proxy.id",
            id.proxy_id.to_string(),
        ));
        if !id.region.is_empty() {
            attrs.push(KeyValue::new("cloud.region", id.region.to_string()));
        }
        if !id.zone.is_empty() {
            attrs.push(KeyValue::new(
                "cloud.availability_zone",
                id.zone.to_string(),
            ));
        }
        for (k, v) in &opts.resource_attributes {
            attrs.push(KeyValue::new(k.clone(), v.clone()));
        }
        let mut rb = Resource::builder().with_attributes(attrs);
        if let Some(n) = &opts.service_name {
            rb = rb.with_service_name(n.clone());
        } else if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            rb = rb.with_service_name("switchyard-proxy");
        }
        let resource = rb.build();
        opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &resource);
        let counters = Counters::default();
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
        let processor =
            QueueProcessor::start(exporter, opts.queue, opts.export_timeout, counters, handle);
        let mut pb = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(processor);
        if let Some(r) = opts.sample_rate {
            pb = pb.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                r,
            ))));
        }
        let provider = pb.build();
        let tracer = provider.tracer("switchyard-proxy");
        Ok(Arc::new(Tracing {
            tracer,
            _provider: provider,
            propagator: TraceContextPropagator::new(),
        }))
    }

    /// The client's trace context (W3C `traceparent`, `tracestate`), if any.
    pub(crate) fn extract(&self, headers: &HeaderMap) -> Context {
        if !headers.contains_key("traceparent") {
            return Context::new();
        }
        self.propagator.extract(&HeaderExtractor(headers))
    }

    /// Start a server span (`name`: the method) under `parent`.
    pub(crate) fn server_span(
        &self,
        parent: &Context,
        name: &'static str,
        start: SystemTime,
        attrs: Vec<KeyValue>,
    ) -> Span {
        self.tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, parent)
    }

    /// Start a client span (`ReverseProxy`) under the server span `parent`.
    pub(crate) fn client_span(&self, parent: &SpanContext, attrs: Vec<KeyValue>) -> Span {
        let cx = Context::new().with_remote_span_context(parent.clone());
        self.tracer
            .span_builder("ReverseProxy")
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &cx)
    }
}

/// Set `traceparent` (and `tracestate`) of `sc` on an outgoing request.
pub(crate) fn inject(sc: &SpanContext, headers: &mut HeaderMap) {
    if !sc.is_valid() {
        return;
    }
    let tp = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    if let Ok(v) = HeaderValue::from_str(&tp) {
        headers.insert(http::header::HeaderName::from_static("traceparent"), v);
    }
    let ts = sc.trace_state().header();
    if ts.is_empty() {
        headers.remove("tracestate");
    } else if let Ok(v) = HeaderValue::from_str(&ts) {
        headers.insert(http::header::HeaderName::from_static("tracestate"), v);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn extract_and_inject_keep_the_trace_id() {
        let p = TraceContextPropagator::new();
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        h.insert("tracestate", HeaderValue::from_static("vendor=x"));
        let cx = p.extract(&HeaderExtractor(&h));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let mut out = HeaderMap::new();
        inject(&sc, &mut out);
        assert_eq!(
            out["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(out["tracestate"], "vendor=x");
    }
}
