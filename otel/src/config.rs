//! Tracing options (Traefik's static `tracing` section with its OTLP exporter), from flags and
//! the standard OpenTelemetry variables. Pure: the environment is passed in.

use std::time::Duration;

/// How spans are sent to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// OTLP over gRPC (tonic); default endpoint `http://localhost:4317`.
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies; default endpoint `http://localhost:4318/v1/traces`.
    HttpProtobuf,
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        match s {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" | "http" => Ok(Protocol::HttpProtobuf),
            _ => Err(format!(
                "unsupported OTLP protocol {s:?} (expected grpc or http/protobuf)"
            )),
        }
    }
}

/// Default span queue capacity (spans waiting for export).
pub const DEFAULT_QUEUE: usize = 4096;

/// Tracing options.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingOptions {
    /// Transport.
    pub protocol: Protocol,
    /// Collector endpoint (`None`: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, then the protocol's default).
    pub endpoint: Option<String>,
    /// `service.name` (`None`: `OTEL_SERVICE_NAME`, else the binary's name).
    pub service_name: Option<String>,
    /// Ratio of new traces sampled (`None`: `OTEL_TRACES_SAMPLER`/`_ARG`, else every trace);
    /// a sampled client's decision is always followed (parent-based).
    pub sample_rate: Option<f64>,
    /// More resource attributes (`KEY=VALUE`; `OTEL_RESOURCE_ATTRIBUTES` is read too).
    pub resource_attributes: Vec<(String, String)>,
    /// Spans queued for export; over it spans are dropped and counted.
    pub queue: usize,
    /// Longest time one export may take.
    pub export_timeout: Duration,
}

impl Default for TracingOptions {
    fn default() -> TracingOptions {
        TracingOptions {
            protocol: Protocol::Grpc,
            endpoint: None,
            service_name: None,
            sample_rate: None,
            resource_attributes: Vec::new(),
            queue: DEFAULT_QUEUE,
            export_timeout: Duration::from_secs(10),
        }
    }
}

impl TracingOptions {
    /// The protocol from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`
    /// (gRPC when neither is set).
    pub fn protocol_from_env(env: impl Fn(&str) -> Option<String>) -> Result<Protocol, String> {
        match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            Some(p) => p.parse(),
            None => Ok(Protocol::Grpc),
        }
    }

    /// Whether the environment asks for export (`OTEL_EXPORTER_OTLP_*ENDPOINT` set, and the
    /// SDK not disabled by `OTEL_SDK_DISABLED=true`).
    pub fn enabled_by_env(env: impl Fn(&str) -> Option<String>) -> bool {
        let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        !disabled
            && (env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
                || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn protocol_and_enabling_from_env() {
        assert_eq!(
            TracingOptions::protocol_from_env(env(&[])),
            Ok(Protocol::Grpc)
        );
        assert_eq!(
            TracingOptions::protocol_from_env(env(&[(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/protobuf"
            )])),
            Ok(Protocol::HttpProtobuf)
        );
        assert_eq!(
            TracingOptions::protocol_from_env(env(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
            ])),
            Ok(Protocol::Grpc)
        );
        assert!(TracingOptions::protocol_from_env(env(&[(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/json"
        )]))
        .is_err());
        assert!(!TracingOptions::enabled_by_env(env(&[])));
        assert!(TracingOptions::enabled_by_env(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://c:4317"
        )])));
        assert!(!TracingOptions::enabled_by_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_SDK_DISABLED", "true")
        ])));
    }
}
