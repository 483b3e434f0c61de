//! OTLP metrics export: the series of the process's own `/metrics` (Switchyard's and, on the
//! proxy, Traefik's names), as OpenTelemetry instruments, pushed by the SDK's periodic reader.
//!
//! Every counter family becomes an observable counter and every gauge an observable gauge of
//! the same name (counters without `_total`, as OTLP → Prometheus adds it back), with the
//! labels as attributes. OpenTelemetry has no asynchronous histogram, so a histogram family is
//! sent as two observable counters, `NAME_count` and `NAME_sum`. The callbacks read one
//! encoding of the registry per collection: nothing is recorded twice on the request path.
//! A family that appears later (a labelled family is written once it has a series) gets its
//! instrument within one push interval.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{AsyncInstrument, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use crate::config::{Protocol, TracingOptions};
use crate::exposition::{self, Kind, Sample};
use crate::{Identity, OtelError};

/// Where and how often metrics are pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsOptions {
    /// Transport.
    pub protocol: Protocol,
    /// Collector endpoint (`None`: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, then the protocol's default).
    pub endpoint: Option<String>,
    /// Time between pushes.
    pub interval: Duration,
}

/// The OTLP metrics flags (Traefik's `metrics.otlp` static options).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsFlags {
    /// Push the `/metrics` series over OTLP (Traefik's `metrics.otlp`): counters and gauges
    /// under their names, histograms as NAME_count and NAME_sum. Off by default; any
    /// `--metrics.otlp.*` flag or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` turns it on;
    /// `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL` are read too.
    #[arg(long = "metrics.otlp", help_heading = "Metrics")]
    pub metrics_otlp: bool,
    /// Push over OTLP/gRPC to this collector (`http://HOST:4317`).
    #[arg(
        long = "metrics.otlp.grpc.endpoint",
        value_name = "URL",
        conflicts_with = "metrics_http_endpoint",
        help_heading = "Metrics"
    )]
    pub metrics_grpc_endpoint: Option<String>,
    /// Push over OTLP/HTTP (protobuf) to this URL (`http://HOST:4318/v1/metrics`).
    #[arg(
        long = "metrics.otlp.http.endpoint",
        value_name = "URL",
        help_heading = "Metrics"
    )]
    pub metrics_http_endpoint: Option<String>,
    /// Time between pushes (default 10s).
    #[arg(
        long = "metrics.otlp.pushInterval",
        alias = "metrics.otlp.pushinterval",
        value_name = "DURATION",
        help_heading = "Metrics"
    )]
    pub metrics_push_interval: Option<String>,
}

impl MetricsFlags {
    /// The metrics export options (`None`: off); `env` reads the environment.
    pub fn options(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<MetricsOptions>, String> {
        let any = self.metrics_otlp
            || self.metrics_grpc_endpoint.is_some()
            || self.metrics_http_endpoint.is_some()
            || self.metrics_push_interval.is_some();
        let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let by_env = !disabled && env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some();
        if !any && !by_env {
            return Ok(None);
        }
        let (protocol, endpoint) = match (&self.metrics_grpc_endpoint, &self.metrics_http_endpoint)
        {
            (Some(e), _) => (Protocol::Grpc, Some(e.clone())),
            (None, Some(e)) => (Protocol::HttpProtobuf, Some(e.clone())),
            (None, None) => {
                let p = match env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") {
                    Some(p) => p.parse()?,
                    None => TracingOptions::protocol_from_env(&env)?,
                };
                (p, None)
            }
        };
        let interval = match &self.metrics_push_interval {
            None => Duration::from_secs(10),
            Some(t) => {
                let nanos = switchyard_config::duration::parse_go_duration(t)
                    .map_err(|e| format!("--metrics.otlp.pushInterval: {e}"))?;
                if nanos <= 0 {
                    return Err(format!(
                        "--metrics.otlp.pushInterval: must be positive, got {t:?}"
                    ));
                }
                Duration::from_nanos(nanos as u64)
            }
        };
        Ok(Some(MetricsOptions {
            protocol,
            endpoint,
            interval,
        }))
    }
}

/// The exposition text of the process (its `/metrics` body).
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

/// One reading of the registry, shared by every instrument's callback of a collection.
struct Snapshot {
    source: Source,
    last: Mutex<(Option<Instant>, Arc<Vec<Sample>>)>,
}

impl Snapshot {
    /// The samples, read again unless a reading is less than 100 ms old (one collection calls
    /// every callback in a row).
    fn samples(&self) -> Arc<Vec<Sample>> {
        let Ok(mut last) = self.last.lock() else {
            return Arc::default();
        };
        if last
            .0
            .is_none_or(|t| t.elapsed() > Duration::from_millis(100))
        {
            let (_, samples) = exposition::parse(&(self.source)());
            *last = (Some(Instant::now()), Arc::new(samples));
        }
        last.1.clone()
    }

    fn observe(&self, family: &str, suffix: &[&str], obs: &dyn AsyncInstrument<f64>) {
        for s in self.samples().iter() {
            if s.family == family && suffix.contains(&s.suffix.as_str()) {
                let attrs: Vec<KeyValue> = s
                    .labels
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                    .collect();
                obs.observe(s.value, &attrs);
            }
        }
    }
}

/// A running metrics export; dropping it pushes once more and stops.
pub struct MetricsExport {
    provider: SdkMeterProvider,
    /// Registers the instruments of families that appear later.
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MetricsExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsExport")
    }
}

impl Drop for MetricsExport {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.provider.shutdown();
    }
}

impl MetricsExport {
    /// Builds the exporter (inside `handle`'s runtime, as for spans) and one instrument per
    /// family `source` shows (checked again every push interval, on `handle`).
    pub fn start(
        opts: &MetricsOptions,
        id: Identity,
        source: Source,
        handle: &tokio::runtime::Handle,
    ) -> Result<MetricsExport, OtelError> {
        let _guard = handle.enter();
        let exporter = match opts.protocol {
            Protocol::Grpc => {
                let mut b = opentelemetry_otlp::MetricExporter::builder().with_tonic();
                if let Some(e) = &opts.endpoint {
                    b = b.with_endpoint(e.clone());
                }
                b.build()?
            }
            Protocol::HttpProtobuf => {
                let mut b = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_headers(Default::default());
                if let Some(e) = &opts.endpoint {
                    b = b.with_endpoint(e.clone());
                }
                b.build()?
            }
        };
        let reader = PeriodicReader::builder(exporter)
            .with_interval(opts.interval)
            .build();
        let service = id.service;
        let provider = SdkMeterProvider::builder()
            .with_resource(crate::resource(&TracingOptions::default(), id))
            .with_reader(reader)
            .build();
        let meter = provider.meter(service);
        let snap = Arc::new(Snapshot {
            source,
            last: Mutex::new((None, Arc::default())),
        });
        let mut known = std::collections::HashSet::new();
        register_new(&meter, &snap, &mut known);
        // Families that appear later (a labelled family is only written once it has a series)
        // get their instrument at the next check.
        let interval = opts.interval;
        let task = handle.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                register_new(&meter, &snap, &mut known);
            }
        });
        Ok(MetricsExport { provider, task })
    }
}

/// Creates an instrument for each family of the registry not seen before.
fn register_new(
    meter: &opentelemetry::metrics::Meter,
    snap: &Arc<Snapshot>,
    known: &mut std::collections::HashSet<String>,
) {
    let (families, _) = exposition::parse(&(snap.source)());
    for f in families {
        if !known.insert(f.name.clone()) {
            continue;
        }
        let (s, i) = (snap.clone(), f.name.clone());
        match f.kind {
            Kind::Counter => {
                meter
                    .f64_observable_counter(f.name)
                    .with_description(f.help)
                    .with_callback(move |o| s.observe(&i, &["_total", ""], o))
                    .build();
            }
            Kind::Gauge => {
                meter
                    .f64_observable_gauge(f.name)
                    .with_description(f.help)
                    .with_callback(move |o| s.observe(&i, &[""], o))
                    .build();
            }
            Kind::Histogram => {
                let (s2, i2) = (snap.clone(), i.clone());
                meter
                    .f64_observable_counter(format!("{}_count", f.name))
                    .with_description(f.help.clone())
                    .with_callback(move |o| s.observe(&i, &["_count"], o))
                    .build();
                meter
                    .f64_observable_counter(format!("{}_sum", f.name))
                    .with_description(f.help)
                    .with_callback(move |o| s2.observe(&i2, &["_sum"], o))
                    .build();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        m: MetricsFlags,
    }

    fn flags(args: &[&str]) -> MetricsFlags {
        let mut argv = vec!["t"];
        argv.extend_from_slice(args);
        T::try_parse_from(argv).unwrap().m
    }

    #[test]
    fn metrics_and_tracing_flags_live_together() {
        use clap::CommandFactory;
        #[derive(Debug, Parser)]
        struct Both {
            #[command(flatten)]
            m: MetricsFlags,
            #[command(flatten)]
            t: crate::TracingFlags,
        }
        Both::command().debug_assert();
    }

    #[test]
    fn metrics_flags_and_environment() {
        let none = |_: &str| None;
        assert_eq!(flags(&[]).options(none).unwrap(), None);
        // The generic endpoint turns tracing on, not metrics (as Traefik: metrics.otlp is asked).
        let generic = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c".into());
        assert_eq!(flags(&[]).options(generic).unwrap(), None);
        let o = flags(&["--metrics.otlp"])
            .options(generic)
            .unwrap()
            .unwrap();
        assert_eq!((o.protocol, o.endpoint), (Protocol::Grpc, None));
        assert_eq!(o.interval, Duration::from_secs(10));
        let o = flags(&[
            "--metrics.otlp.http.endpoint",
            "http://c:4318/v1/metrics",
            "--metrics.otlp.pushInterval",
            "2s",
        ])
        .options(none)
        .unwrap()
        .unwrap();
        assert_eq!(o.protocol, Protocol::HttpProtobuf);
        assert_eq!(o.interval, Duration::from_secs(2));
        let by_env =
            |k: &str| (k == "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").then(|| "http://c:4317".into());
        assert!(flags(&[]).options(by_env).unwrap().is_some());
        let e = flags(&["--metrics.otlp.pushInterval", "0s"])
            .options(none)
            .unwrap_err();
        assert!(e.contains("pushInterval"), "{e}");
    }
}
