//! `switchyard-proxy`'s observability flags, named after Traefik's static options in their CLI
//! form (`--accesslog.filepath` is Traefik's `--accesslog.filepath`); map-valued options take
//! `KEY=VALUE` (`--accesslog.fields.headers.names User-Agent=keep`, repeatable).

use std::path::PathBuf;

use switchyard_proxy::accesslog::{config, AccessLogOptions, Fields, Filters};
use switchyard_proxy::otel::{Protocol, TracingOptions};

/// Access log and tracing flags (flattened into the binary's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct ObsFlags {
    /// Access logs (Traefik's `accessLog`): one line per request to standard output, or to
    /// `--accesslog.filepath`. Off by default; any `--accesslog.*` flag turns them on. Lines
    /// are written by a background thread: a line that does not fit the queue is dropped and
    /// counted (`switchyard_proxy_accesslog_dropped_total`). SIGUSR1 reopens the file.
    #[arg(long = "accesslog", help_heading = "Access logs")]
    pub accesslog: bool,
    /// The access log file (created with its directory; appended to).
    #[arg(
        long = "accesslog.filepath",
        value_name = "FILE",
        help_heading = "Access logs"
    )]
    pub filepath: Option<PathBuf>,
    /// Line format: `common` (Traefik's CLF with request count, router, server URL and
    /// duration), `genericCLF`, or `json` (Traefik's field names).
    #[arg(
        long = "accesslog.format",
        value_name = "common|genericCLF|json",
        help_heading = "Access logs"
    )]
    pub format: Option<String>,
    /// Lines queued for the writer (default 4096).
    #[arg(
        long = "accesslog.bufferingsize",
        value_name = "LINES",
        help_heading = "Access logs"
    )]
    pub buffering_size: Option<usize>,
    /// Keep only lines whose status is in these codes or ranges (`200,300-302`).
    #[arg(
        long = "accesslog.filters.statuscodes",
        value_name = "CODE|FROM-TO,…",
        help_heading = "Access logs"
    )]
    pub status_codes: Vec<String>,
    /// Keep lines of retried requests.
    #[arg(long = "accesslog.filters.retryattempts", help_heading = "Access logs")]
    pub retry_attempts: bool,
    /// Keep lines of requests that took longer than this (`10ms`).
    #[arg(
        long = "accesslog.filters.minduration",
        value_name = "DURATION",
        help_heading = "Access logs"
    )]
    pub min_duration: Option<String>,
    /// `keep` (default) or `drop` every field not named in `--accesslog.fields.names`.
    #[arg(
        long = "accesslog.fields.defaultmode",
        value_name = "keep|drop",
        help_heading = "Access logs"
    )]
    pub fields_default: Option<String>,
    /// Keep or drop one field, e.g. `ClientUsername=drop` (repeatable).
    #[arg(
        long = "accesslog.fields.names",
        value_name = "FIELD=keep|drop",
        help_heading = "Access logs"
    )]
    pub field_names: Vec<String>,
    /// `drop` (default), `keep` or `redact` every header not named in
    /// `--accesslog.fields.headers.names`.
    #[arg(
        long = "accesslog.fields.headers.defaultmode",
        value_name = "keep|drop|redact",
        help_heading = "Access logs"
    )]
    pub headers_default: Option<String>,
    /// Keep, drop or redact one header, e.g. `Authorization=redact` (repeatable).
    #[arg(
        long = "accesslog.fields.headers.names",
        value_name = "HEADER=keep|drop|redact",
        help_heading = "Access logs"
    )]
    pub header_names: Vec<String>,
    /// `keep` (default) or `drop` the query string from `RequestPath`.
    #[arg(
        long = "accesslog.fields.queryparameters.defaultmode",
        value_name = "keep|drop",
        help_heading = "Access logs"
    )]
    pub query_default: Option<String>,

    /// OpenTelemetry tracing (Traefik's `tracing`): a server span per request and a client
    /// span per attempt to a server, W3C trace context extracted and injected, exported over
    /// OTLP. Off by default; any `--tracing.*` flag, or `OTEL_EXPORTER_OTLP_ENDPOINT` /
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` in the environment, turns it on. Also read:
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (grpc, http/protobuf), `OTEL_EXPORTER_OTLP_HEADERS`,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
    /// `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SDK_DISABLED`; flags win.
    #[arg(long = "tracing", help_heading = "Tracing")]
    pub tracing: bool,
    /// `service.name` of the spans (default `switchyard-proxy`).
    #[arg(
        long = "tracing.serviceName",
        alias = "tracing.servicename",
        value_name = "NAME",
        help_heading = "Tracing"
    )]
    pub service_name: Option<String>,
    /// Ratio of new traces sampled, 0 to 1 (default 1); a client's sampled trace is followed.
    #[arg(
        long = "tracing.sampleRate",
        alias = "tracing.samplerate",
        value_name = "RATIO",
        help_heading = "Tracing"
    )]
    pub sample_rate: Option<f64>,
    /// A resource attribute KEY=VALUE (repeatable). `service.instance.id`/`switchyard.proxy.id`
    /// (the proxy id), `cloud.region` and `cloud.availability_zone` are always set.
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
    /// `switchyard_proxy_tracing_dropped_spans_total`.
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

fn keep_drop(flag: &str, v: &str) -> Result<bool, String> {
    match v {
        "keep" => Ok(true),
        "drop" => Ok(false),
        _ => Err(format!("--{flag} {v:?}: expected keep or drop")),
    }
}

impl ObsFlags {
    /// The tracing options (`None`: off); `env` reads the environment.
    pub fn tracing(
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
            o.export_timeout =
                config::parse_duration(t).map_err(|e| format!("--tracing.exportTimeout: {e}"))?;
        }
        Ok(Some(o))
    }

    /// The access log options (`None`: off).
    pub fn access_log(&self) -> Result<Option<AccessLogOptions>, String> {
        let any = self.accesslog
            || self.filepath.is_some()
            || self.format.is_some()
            || self.buffering_size.is_some()
            || !self.status_codes.is_empty()
            || self.retry_attempts
            || self.min_duration.is_some()
            || self.fields_default.is_some()
            || !self.field_names.is_empty()
            || self.headers_default.is_some()
            || !self.header_names.is_empty()
            || self.query_default.is_some();
        if !any {
            return Ok(None);
        }
        let format = match &self.format {
            Some(f) => f.parse().map_err(|e| format!("--accesslog.format: {e}"))?,
            None => config::Format::Common,
        };
        let filters = Filters {
            status_codes: Filters::parse_status_codes(&self.status_codes)
                .map_err(|e| format!("--accesslog.filters.statuscodes: {e}"))?,
            retry_attempts: self.retry_attempts,
            min_duration: match &self.min_duration {
                Some(d) => config::parse_duration(d)
                    .map_err(|e| format!("--accesslog.filters.minduration: {e}"))?,
                None => std::time::Duration::ZERO,
            },
        };
        let mut fields = Fields::default();
        if let Some(d) = &self.fields_default {
            fields.default_keep = keep_drop("accesslog.fields.defaultmode", d)?;
        }
        for n in &self.field_names {
            fields
                .set_name(n)
                .map_err(|e| format!("--accesslog.fields.names {e}"))?;
        }
        if let Some(d) = &self.headers_default {
            fields.headers_default = d
                .parse()
                .map_err(|e| format!("--accesslog.fields.headers.defaultmode: {e}"))?;
        }
        for n in &self.header_names {
            fields
                .set_header(n)
                .map_err(|e| format!("--accesslog.fields.headers.names {e}"))?;
        }
        if let Some(d) = &self.query_default {
            fields.keep_query = keep_drop("accesslog.fields.queryparameters.defaultmode", d)?;
        }
        Ok(Some(AccessLogOptions {
            file_path: self.filepath.clone(),
            format,
            filters,
            fields,
            buffering_size: self.buffering_size.unwrap_or(0),
        }))
    }
}
