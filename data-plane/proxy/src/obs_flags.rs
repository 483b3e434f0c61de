//! `switchyard-proxy`'s observability flags, named after Traefik's static options in their CLI
//! form (`--accesslog.filepath` is Traefik's `--accesslog.filepath`); map-valued options take
//! `KEY=VALUE` (`--accesslog.fields.headers.names User-Agent=keep`, repeatable).

use std::path::PathBuf;

use switchyard_otel::TracingFlags;
use switchyard_proxy::accesslog::{config, AccessLogOptions, Fields, Filters};
use switchyard_proxy::otel::TracingOptions;

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

    /// Tracing flags (`--tracing.*`), shared with `switchyard server`.
    #[command(flatten)]
    pub tracing: TracingFlags,
    /// OTLP metrics flags (`--metrics.otlp.*`), shared with `switchyard server`.
    #[command(flatten)]
    pub metrics: switchyard_otel::MetricsFlags,
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
        self.tracing.options(env)
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        obs: ObsFlags,
    }

    fn flags(args: &[&str]) -> ObsFlags {
        let mut argv = vec!["t"];
        argv.extend_from_slice(args);
        T::try_parse_from(argv).unwrap().obs
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn access_log_is_off_unless_asked_and_parses_traefiks_options() {
        assert_eq!(flags(&[]).access_log().unwrap(), None);
        let o = flags(&[
            "--accesslog.format",
            "json",
            "--accesslog.filters.statuscodes",
            "200,300-302",
            "--accesslog.filters.minduration",
            "10ms",
            "--accesslog.fields.names",
            "ClientHost=drop",
            "--accesslog.fields.headers.names",
            "Authorization=redact",
        ])
        .access_log()
        .unwrap()
        .unwrap();
        assert_eq!(o.format, config::Format::Json);
        assert_eq!(o.filters.status_codes, vec![(200, 200), (300, 302)]);
        assert_eq!(o.filters.min_duration, std::time::Duration::from_millis(10));
        assert!(!o.fields.keep("ClientHost"));
        assert_eq!(o.file_path, None);
        for (args, want) in [
            (&["--accesslog.format", "xml"][..], "--accesslog.format"),
            (
                &["--accesslog.filters.statuscodes", "2xx"][..],
                "statuscodes",
            ),
            (
                &["--accesslog.fields.defaultmode", "redact"][..],
                "keep or drop",
            ),
            (
                &["--accesslog.fields.headers.names", "X-A=hide"][..],
                "headers.names",
            ),
        ] {
            let e = flags(args).access_log().expect_err(&format!("{args:?}"));
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn tracing_flags_are_the_shared_ones() {
        assert_eq!(flags(&[]).tracing(no_env).unwrap(), None);
        let o = flags(&["--tracing.otlp.grpc.endpoint", "http://c:4317"])
            .tracing(no_env)
            .unwrap()
            .unwrap();
        assert_eq!(o.endpoint.as_deref(), Some("http://c:4317"));
    }
}
