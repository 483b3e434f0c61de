//! Access log options, as Traefik's static `accessLog` section: format, file, filters
//! (`statusCodes`, `retryAttempts`, `minDuration`), fields (`defaultMode`, `names`,
//! `headers.defaultMode`, `headers.names`, `queryParameters`) and `bufferingSize`. Pure: the
//! flags of `switchyard-proxy` parse into [`AccessLogOptions`], checked here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

/// Line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Traefik's `common`: the Common Log Format with request count, router, server URL and
    /// duration appended.
    #[default]
    Common,
    /// Traefik's `genericCLF`: the plain Common Log Format (with referer and user agent).
    GenericClf,
    /// One JSON object per line, Traefik's field names.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "common" => Ok(Format::Common),
            "genericCLF" | "genericclf" => Ok(Format::GenericClf),
            "json" => Ok(Format::Json),
            _ => Err(format!(
                "unknown access log format {s:?} (expected common, genericCLF or json)"
            )),
        }
    }
}

/// What happens to a header in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMode {
    /// Written with its value (`request_User-Agent: "curl/8"`).
    Keep,
    /// Left out.
    Drop,
    /// Written as `REDACTED`.
    Redact,
}

impl std::str::FromStr for HeaderMode {
    type Err = String;
    fn from_str(s: &str) -> Result<HeaderMode, String> {
        match s {
            "keep" => Ok(HeaderMode::Keep),
            "drop" => Ok(HeaderMode::Drop),
            "redact" => Ok(HeaderMode::Redact),
            _ => Err(format!(
                "unknown header mode {s:?} (expected keep, drop or redact)"
            )),
        }
    }
}

/// Traefik's `accessLog.filters`: with none set every line is written; otherwise a line is
/// written when any set filter matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Status code ranges (`200`, `300-302`).
    pub status_codes: Vec<(u16, u16)>,
    /// Keep requests that were retried at least once.
    pub retry_attempts: bool,
    /// Keep requests that took longer than this (zero: not set).
    pub min_duration: Duration,
}

impl Filters {
    /// Parse Traefik's status code list (`["200", "300-302"]`).
    pub fn parse_status_codes(list: &[String]) -> Result<Vec<(u16, u16)>, String> {
        let mut out = Vec::new();
        for block in list.iter().flat_map(|b| b.split(',')) {
            let block = block.trim();
            if block.is_empty() {
                continue;
            }
            let (lo, hi) = block.split_once('-').unwrap_or((block, block));
            let parse = |s: &str| {
                s.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("invalid status code range {block:?}"))
            };
            out.push((parse(lo)?, parse(hi)?));
        }
        Ok(out)
    }

    /// Whether a finished request is written (Traefik's `keepAccessLog`).
    pub fn keep(&self, status: u16, retries: u32, duration: Duration) -> bool {
        if self.status_codes.is_empty() && !self.retry_attempts && self.min_duration.is_zero() {
            return true;
        }
        self.status_codes
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
            || (self.retry_attempts && retries > 0)
            || (!self.min_duration.is_zero() && duration > self.min_duration)
    }
}

/// Traefik's `accessLog.fields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// `defaultMode`: keep (default) or drop every core field.
    pub default_keep: bool,
    /// `names`: per-field keep/drop, by field name (case-insensitive).
    pub names: HashMap<String, bool>,
    /// `headers.defaultMode` (Traefik's default: drop).
    pub headers_default: HeaderMode,
    /// `headers.names`: per-header mode.
    pub header_names: Vec<(HeaderName, HeaderMode)>,
    /// `queryParameters.defaultMode`: keep (default) or drop the query from `RequestPath`.
    pub keep_query: bool,
}

impl Default for Fields {
    fn default() -> Fields {
        Fields {
            default_keep: true,
            names: HashMap::new(),
            headers_default: HeaderMode::Drop,
            header_names: Vec::new(),
            keep_query: true,
        }
    }
}

impl Fields {
    /// Whether core field `name` is written.
    pub fn keep(&self, name: &str) -> bool {
        if self.names.is_empty() {
            return self.default_keep;
        }
        self.names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(self.default_keep, |(_, keep)| *keep)
    }

    /// What happens to header `name`.
    pub fn header(&self, name: &HeaderName) -> HeaderMode {
        self.header_names
            .iter()
            .find(|(n, _)| n == name)
            .map_or(self.headers_default, |(_, m)| *m)
    }

    /// Whether any header can appear in a line (else headers are not even looked at).
    pub fn any_header(&self) -> bool {
        self.headers_default != HeaderMode::Drop
            || self
                .header_names
                .iter()
                .any(|(_, m)| *m != HeaderMode::Drop)
    }

    /// Set `names.FIELD=keep|drop`.
    pub fn set_name(&mut self, spec: &str) -> Result<(), String> {
        let (name, mode) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected FIELD=keep|drop"))?;
        let keep = match mode {
            "keep" => true,
            "drop" => false,
            _ => return Err(format!("{spec:?}: field mode must be keep or drop")),
        };
        self.names.insert(name.trim().to_ascii_lowercase(), keep);
        Ok(())
    }

    /// Set `headers.names.HEADER=keep|drop|redact`.
    pub fn set_header(&mut self, spec: &str) -> Result<(), String> {
        let (name, mode) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected HEADER=keep|drop|redact"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{spec:?}: invalid header name"))?;
        let mode = mode.parse::<HeaderMode>()?;
        self.header_names.retain(|(n, _)| *n != name);
        self.header_names.push((name, mode));
        Ok(())
    }
}

/// Default capacity of the queue between requests and the writer (lines).
pub const DEFAULT_BUFFER: usize = 4096;

/// Access log options (Traefik's static `accessLog`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessLogOptions {
    /// The file (created with its directories, appended to); `None`: standard output.
    pub file_path: Option<PathBuf>,
    /// Line format.
    pub format: Format,
    /// Filters.
    pub filters: Filters,
    /// Fields.
    pub fields: Fields,
    /// Traefik's `bufferingSize`: lines queued for the writer (0: [`DEFAULT_BUFFER`]). Lines are
    /// never written on the request path: when the queue is full a line is dropped and counted.
    pub buffering_size: usize,
}

impl AccessLogOptions {
    /// The queue capacity.
    pub fn capacity(&self) -> usize {
        if self.buffering_size == 0 {
            DEFAULT_BUFFER
        } else {
            self.buffering_size
        }
    }
}

/// Go's `time.ParseDuration` subset used by Traefik's durations (`10ms`, `1.5s`, `2m`, `1h`;
/// a bare number is seconds, as paerser reads it).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"));
    }
    let bad = || format!("invalid duration {s:?}");
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() || c == 'µ')
        .ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(n * scale).map_err(|_| bad())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn status_code_ranges() {
        let r = Filters::parse_status_codes(&["200".into(), "300-302, 404".into()]).unwrap();
        assert_eq!(r, vec![(200, 200), (300, 302), (404, 404)]);
        assert!(Filters::parse_status_codes(&["2xx".into()]).is_err());
    }

    /// Traefik's `keepAccessLog` cases (logger_test.go `TestNewLogHandlerOutputStdout`).
    #[test]
    fn filters_keep() {
        let none = Filters::default();
        assert!(none.keep(123, 0, Duration::ZERO));
        let codes = Filters {
            status_codes: vec![(200, 200), (300, 302)],
            ..Filters::default()
        };
        assert!(codes.keep(200, 0, Duration::ZERO));
        assert!(codes.keep(301, 0, Duration::ZERO));
        assert!(!codes.keep(404, 0, Duration::ZERO));
        let retries = Filters {
            retry_attempts: true,
            ..Filters::default()
        };
        assert!(!retries.keep(200, 0, Duration::ZERO));
        assert!(retries.keep(200, 2, Duration::ZERO));
        let slow = Filters {
            min_duration: Duration::from_millis(10),
            ..Filters::default()
        };
        assert!(!slow.keep(200, 0, Duration::from_millis(10)));
        assert!(slow.keep(200, 0, Duration::from_millis(11)));
    }

    #[test]
    fn fields_and_headers() {
        let mut f = Fields::default();
        assert!(f.keep("ClientHost"));
        f.set_name("ClientHost=drop").unwrap();
        assert!(!f.keep("clienthost"));
        f.default_keep = false;
        f.set_name("RequestPath=keep").unwrap();
        assert!(f.keep("RequestPath"));
        assert!(!f.keep("Duration"));
        assert!(!f.any_header());
        f.set_header("Authorization=redact").unwrap();
        f.set_header("user-agent=keep").unwrap();
        assert!(f.any_header());
        assert_eq!(
            f.header(&HeaderName::from_static("authorization")),
            HeaderMode::Redact
        );
        assert_eq!(
            f.header(&HeaderName::from_static("x-other")),
            HeaderMode::Drop
        );
        assert!(f.set_header("bad header=keep").is_err());
        assert!(f.set_name("X=maybe").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
