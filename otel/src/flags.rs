//! The tracing flags both binaries take (`switchyard-proxy` and `switchyard server`), named
//! after Traefik's static `tracing` options in their CLI form.

use crate::config::{Protocol, TracingOptions};

/// Tracing flags (flattened into a binary's arguments).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TracingFlags {
    /// OpenTelemetry tracing (Traefik's `tracing`), exported over OTLP. Off by default; any
    /// `--tracing.*` flag, or `OTEL_EXPORTER_OTLP_ENDPOINT` /
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` in the environment, turns it on. Also read:
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (grpc, http/protobuf), `OTEL_EXPORTER_OTLP_HEADERS`,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
    /// `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SDK_DISABLED`; flags win.
    #[arg(long = "tracing", help_heading = "Tracing")]
    pub tracing: bool,
    /// `service.name` of the spans (default: the binary's name).
    #[arg(
        long = "tracing.serviceName",
        alias = "tracing.servicename",
        value_name = "NAME",
        help_heading = "Tracing"
    )]
    pub service_name: Option<String>,
    /// Ratio of new traces sampled, 0 to 1 (default 1); a caller's sampled trace is followed.
    #[arg(
        long = "tracing.sampleRate",
        alias = "tracing.samplerate",
        value_name = "RATIO",
        help_heading = "Tracing"
    )]
    pub sample_rate: Option<f64>,
    /// A resource attribute KEY=VALUE (repeatable). `service.instance.id` (the proxy or node
    /// id), `cloud.region` and `cloud.availability_zone` are always set.
    #[arg(
        long = "tracing.resourceAttributes",
        alias = "tracing.resourceattributes",
        value_name = "KEY=VALUE",
        help_heading = "Tracing"
    )]
    pub resource_attributes: Vec<String>,
    /// Export over OTLP/gRPC to this collector (`http://HOST:4317`).
    #[arg(
        long = "tracing.otlp.grpc.endpoint",
        value_name = "URL",
        conflicts_with = "http_endpoint",
        help_heading = "Tracing"
    )]
    pub grpc_endpoint: Option<String>,
    /// Export over OTLP/HTTP (protobuf) to this URL (`http://HOST:4318/v1/traces`).
    #[arg(
        long = "tracing.otlp.http.endpoint",
        value_name = "URL",
        help_heading = "Tracing"
    )]
    pub http_endpoint: Option<String>,
    /// Spans queued for export (default 4096); over it spans are dropped and counted in
    /// `switchyard_*_tracing_dropped_spans_total`.
    #[arg(
        long = "tracing.queueSize",
        alias = "tracing.queuesize",
        value_name = "SPANS",
        help_heading = "Tracing"
    )]
    pub queue: Option<usize>,
    /// Longest time one export may take (default 10s).
    #[arg(
        long = "tracing.exportTimeout",
        alias = "tracing.exporttimeout",
        value_name = "DURATION",
        help_heading = "Tracing"
    )]
    pub export_timeout: Option<String>,
}

impl TracingFlags {
    /// The tracing options (`None`: off); `env` reads the environment.
    pub fn options(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<TracingOptions>, String> {
        let any = self.tracing
            || self.service_name.is_some()
            || self.sample_rate.is_some()
            || !self.resource_attributes.is_empty()
            || self.grpc_endpoint.is_some()
            || self.http_endpoint.is_some()
            || self.queue.is_some()
            || self.export_timeout.is_some();
        if !any && !TracingOptions::enabled_by_env(&env) {
            return Ok(None);
        }
        let mut o = TracingOptions {
            service_name: self.service_name.clone(),
            ..TracingOptions::default()
        };
        (o.protocol, o.endpoint) = match (&self.grpc_endpoint, &self.http_endpoint) {
            (Some(e), _) => (Protocol::Grpc, Some(e.clone())),
            (None, Some(e)) => (Protocol::HttpProtobuf, Some(e.clone())),
            (None, None) => (TracingOptions::protocol_from_env(&env)?, None),
        };
        if let Some(r) = self.sample_rate {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!(
                    "--tracing.sampleRate {r}: expected a ratio from 0 to 1"
                ));
            }
            o.sample_rate = Some(r);
        }
        for a in &self.resource_attributes {
            let (k, v) = a
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("--tracing.resourceAttributes {a:?}: expected KEY=VALUE"))?;
            o.resource_attributes.push((k.to_string(), v.to_string()));
        }
        if let Some(q) = self.queue {
            if q == 0 {
                return Err("--tracing.queueSize: must be at least 1".into());
            }
            o.queue = q;
        }
        if let Some(t) = &self.export_timeout {
            let nanos = switchyard_config::duration::parse_go_duration(t)
                .map_err(|e| format!("--tracing.exportTimeout: {e}"))?;
            if nanos <= 0 {
                return Err(format!(
                    "--tracing.exportTimeout: must be positive, got {t:?}"
                ));
            }
            o.export_timeout = std::time::Duration::from_nanos(nanos as u64);
        }
        Ok(Some(o))
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
        t: TracingFlags,
    }

    fn flags(args: &[&str]) -> TracingFlags {
        let mut argv = vec!["t"];
        argv.extend_from_slice(args);
        T::try_parse_from(argv).unwrap().t
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn tracing_flags_and_environment() {
        assert_eq!(flags(&[]).options(no_env).unwrap(), None);
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4317".into());
        let o = flags(&[]).options(env).unwrap().unwrap();
        assert_eq!((o.protocol, o.endpoint), (Protocol::Grpc, None));
        let o = flags(&[
            "--tracing.otlp.http.endpoint",
            "http://c:4318/v1/traces",
            "--tracing.sampleRate",
            "0.25",
            "--tracing.resourceAttributes",
            "team=edge",
            "--tracing.exportTimeout",
            "250ms",
        ])
        .options(no_env)
        .unwrap()
        .unwrap();
        assert_eq!(o.protocol, Protocol::HttpProtobuf);
        assert_eq!(o.sample_rate, Some(0.25));
        assert_eq!(o.resource_attributes, vec![("team".into(), "edge".into())]);
        assert_eq!(o.export_timeout, std::time::Duration::from_millis(250));
        for bad in [
            &["--tracing.sampleRate", "2"][..],
            &["--tracing.resourceAttributes", "x"][..],
            &["--tracing.queueSize", "0"][..],
            &["--tracing.exportTimeout", "soon"][..],
        ] {
            let e = flags(bad).options(no_env).expect_err(&format!("{bad:?}"));
            assert!(e.contains(bad[0]), "{bad:?}: {e}");
        }
    }
}
