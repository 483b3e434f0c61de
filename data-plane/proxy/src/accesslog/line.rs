//! One access log line: the [`Record`] the request path fills (cheap clones of what it already
//! holds) and its formatting, done by the writer thread, never on the request path. Pure.
//!
//! Field names and value types are Traefik's (`pkg/middlewares/accesslog/logdata.go`):
//! durations are nanoseconds in `json`, sizes and codes are numbers, `ClientPort` and
//! `RequestPort` strings; `json` lines also carry logrus's `level`, `msg` and `time`; headers
//! are `request_<Canonical-Name>` and `downstream_<Canonical-Name>`, several values joined
//! with `,`, `REDACTED` when redacted. `common` is Traefik's CLF with extra fields:
//!
//! ```text
//! ClientHost - ClientUsername [StartUTC] "Method Path Protocol" Status Size "Referer" "User-Agent" RequestCount "Router" "ServiceURL" Durationms
//! ```

use std::borrow::Cow;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue, Method, Uri, Version};

use super::config::{Fields, Format, HeaderMode};

/// What is known about a request when its response is finished.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub start: SystemTime,
    /// Traefik's `RequestCount`.
    pub count: u64,
    pub peer: SocketAddr,
    /// `X-Forwarded-For` of a trusted client (Traefik logs it as `ClientHost`).
    pub forwarded_for: Option<HeaderValue>,
    /// `ClientUsername` (basic auth user).
    pub username: Option<Arc<str>>,
    /// Go's `req.Host`.
    pub host: HeaderValue,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    /// `(TLSVersion, TLSCipher)` of a TLS connection.
    pub tls: Option<(&'static str, &'static str)>,
    pub entrypoint: Arc<str>,
    /// `Content-Length` of the request (0 without one).
    pub request_size: u64,
    /// Request headers selected by the `fields.headers` options.
    pub request_headers: Vec<(HeaderName, HeaderValue)>,
    pub router: Option<Arc<str>>,
    pub service: Option<Arc<str>>,
    /// The server URL as configured.
    pub server_url: Option<Arc<str>>,
    /// `host:port` of the server.
    pub server_addr: Option<Arc<str>>,
    pub origin_status: Option<u16>,
    pub origin_duration: Option<Duration>,
    pub retries: u32,
    /// `(TraceId, SpanId)` in hex.
    pub trace: Option<(String, String)>,
    pub status: u16,
    pub downstream_headers: Vec<(HeaderName, HeaderValue)>,
    pub duration: Duration,
    /// Response body bytes sent to the client.
    pub size: u64,
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-request-id` → `X-Request-Id`.
pub(crate) fn canonical(name: &str) -> String {
    let mut up = true;
    name.chars()
        .map(|c| {
            let out = if up {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            up = c == '-';
            out
        })
        .collect()
}

/// The headers of `all` that `fields` writes (with their mode).
pub(crate) fn select_headers(
    fields: &Fields,
    all: &http::HeaderMap,
) -> Vec<(HeaderName, HeaderValue)> {
    if !fields.any_header() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, value) in all {
        match fields.header(name) {
            HeaderMode::Keep => out.push((name.clone(), value.clone())),
            HeaderMode::Redact => {
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name.clone(), HeaderValue::from_static("REDACTED")));
                }
            }
            HeaderMode::Drop => {}
        }
    }
    out
}

fn split_host_port(v: &str) -> (String, String) {
    match v.rsplit_once(':') {
        Some((h, p))
            if !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || (h.starts_with('[') && h.ends_with(']'))) =>
        {
            (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.to_string(),
            )
        }
        _ => (v.to_string(), "-".to_string()),
    }
}

/// A field's value: JSON strings and numbers are all a line holds.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Str(Cow<'a, str>),
    Num(u64),
}

impl<'a> From<&'a str> for Val<'a> {
    fn from(s: &'a str) -> Self {
        Val::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Val<'_> {
    fn from(s: String) -> Self {
        Val::Str(Cow::Owned(s))
    }
}

impl From<u64> for Val<'_> {
    fn from(n: u64) -> Self {
        Val::Num(n)
    }
}

impl From<u32> for Val<'_> {
    fn from(n: u32) -> Self {
        Val::Num(n.into())
    }
}

impl From<u16> for Val<'_> {
    fn from(n: u16) -> Self {
        Val::Num(n.into())
    }
}

fn nanos(d: Duration) -> Val<'static> {
    Val::Num(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The fields of one line, by name (few: a linear search is the fastest map here).
type Entries<'a> = Vec<(Cow<'a, str>, Val<'a>)>;

fn get<'e>(entries: &'e Entries<'_>, key: &str) -> Option<&'e Val<'e>> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

impl Record {
    /// `RequestPath`: the path and, unless dropped, the query.
    fn path(&self, keep_query: bool) -> &str {
        match (keep_query, self.uri.path_and_query()) {
            (true, Some(pq)) => pq.as_str(),
            _ => self.uri.path(),
        }
    }

    fn client_host(&self) -> Val<'_> {
        match self.forwarded_for.as_ref().and_then(|v| v.to_str().ok()) {
            Some(x) if !x.is_empty() => x.into(),
            _ => self.peer.ip().to_string().into(),
        }
    }

    /// Every core field Traefik computes (before `fields` filtering).
    fn core(&self, keep_query: bool) -> Vec<(&'static str, Val<'_>)> {
        let utc = chrono::DateTime::<chrono::Utc>::from(self.start);
        let local = chrono::DateTime::<chrono::Local>::from(self.start);
        let host = self.host.to_str().unwrap_or("");
        let mut v: Vec<(&'static str, Val<'_>)> = vec![
            (
                "StartUTC",
                utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    .into(),
            ),
            (
                "StartLocal",
                local
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
                    .into(),
            ),
            ("Duration", nanos(self.duration)),
            ("ClientAddr", self.peer.to_string().into()),
            ("ClientHost", self.client_host()),
            ("ClientPort", self.peer.port().to_string().into()),
            (
                "ClientUsername",
                self.username.as_deref().unwrap_or("-").into(),
            ),
            ("RequestMethod", self.method.as_str().into()),
            ("RequestPath", self.path(keep_query).into()),
            ("RequestProtocol", protocol(self.version).into()),
            (
                "RequestScheme",
                if self.tls.is_some() { "https" } else { "http" }.into(),
            ),
            ("RequestContentSize", self.request_size.into()),
            ("RequestCount", self.count.into()),
            ("EntryPointName", (&*self.entrypoint).into()),
            ("RetryAttempts", self.retries.into()),
            ("DownstreamStatus", self.status.into()),
            ("DownstreamContentSize", self.size.into()),
        ];
        if !host.is_empty() {
            let (h, p) = split_host_port(host);
            v.push(("RequestAddr", host.into()));
            v.push(("RequestHost", h.into()));
            v.push(("RequestPort", p.into()));
        }
        if let Some((version, cipher)) = self.tls {
            v.push(("TLSVersion", version.into()));
            v.push(("TLSCipher", cipher.into()));
        }
        if let Some(r) = &self.router {
            v.push(("RouterName", (&**r).into()));
        }
        if let Some(s) = &self.service {
            v.push(("ServiceName", (&**s).into()));
        }
        if let Some(u) = &self.server_url {
            v.push(("ServiceURL", (&**u).into()));
        }
        if let Some(a) = &self.server_addr {
            v.push(("ServiceAddr", (&**a).into()));
        }
        let mut overhead = self.duration;
        if let Some(s) = self.origin_status {
            v.push(("OriginStatus", s.into()));
            v.push(("OriginContentSize", self.size.into()));
        }
        if let Some(d) = self.origin_duration {
            v.push(("OriginDuration", nanos(d)));
            overhead = overhead.saturating_sub(d);
        }
        v.push(("Overhead", nanos(overhead)));
        if let Some((t, s)) = &self.trace {
            v.push(("TraceId", t.as_str().into()));
            v.push(("SpanId", s.as_str().into()));
        }
        v
    }

    /// The line (with its trailing newline) appended to `out`.
    pub(crate) fn write(&self, format: Format, fields: &Fields, out: &mut Vec<u8>) {
        let core = self.core(fields.keep_query);
        let mut entries: Entries<'_> = Vec::with_capacity(core.len() + 8);
        for (k, val) in core {
            if fields.keep(k) {
                entries.push((Cow::Borrowed(k), val));
            }
        }
        for (prefix, list) in [
            ("request_", &self.request_headers),
            ("downstream_", &self.downstream_headers),
        ] {
            for (name, value) in list {
                let key = format!("{prefix}{}", canonical(name.as_str()));
                let value = String::from_utf8_lossy(value.as_bytes());
                match entries.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, Val::Str(s))) if s != "REDACTED" => {
                        let s = s.to_mut();
                        s.push(',');
                        s.push_str(&value);
                    }
                    Some(_) => {}
                    None => entries.push((Cow::Owned(key), Val::Str(value))),
                }
            }
        }
        match format {
            Format::Json => {
                entries.push(("level".into(), "info".into()));
                entries.push(("msg".into(), "".into()));
                entries.push((
                    "time".into(),
                    chrono::Local::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
                        .into(),
                ));
                // Sorted keys, as Go's encoding/json writes a map (logrus's JSON formatter).
                entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                out.push(b'{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_str(out, k);
                    out.push(b':');
                    match v {
                        Val::Str(s) => json_str(out, s),
                        Val::Num(n) => {
                            let _ = write!(out, "{n}");
                        }
                    }
                }
                out.extend_from_slice(b"}\n");
            }
            Format::Common | Format::GenericClf => self.clf(format, &entries, out),
        }
    }

    fn clf(&self, format: Format, map: &Entries<'_>, out: &mut Vec<u8>) {
        let plain = |k: &str| -> Cow<'_, str> {
            match get(map, k) {
                Some(Val::Str(s)) if !s.is_empty() => Cow::Borrowed(s.as_ref()),
                Some(Val::Str(_)) | None => "-".into(),
                Some(Val::Num(n)) => n.to_string().into(),
            }
        };
        let quoted = |k: &str| -> Cow<'_, str> {
            match get(map, k) {
                Some(Val::Str(s)) if !s.is_empty() => {
                    format!("\"{}\"", s.replace('"', "\\\"")).into()
                }
                Some(Val::Str(_)) | None => "\"-\"".into(),
                Some(Val::Num(n)) => n.to_string().into(),
            }
        };
        let timestamp = if get(map, "StartUTC").is_some() {
            chrono::DateTime::<chrono::Utc>::from(self.start)
                .format("%d/%b/%Y:%H:%M:%S %z")
                .to_string()
        } else if get(map, "StartLocal").is_some() {
            chrono::DateTime::<chrono::Local>::from(self.start)
                .format("%d/%b/%Y:%H:%M:%S %z")
                .to_string()
        } else {
            "-".into()
        };
        let _ = write!(
            out,
            "{} - {} [{}] \"{} {} {}\" {} {} {} {}",
            plain("ClientHost"),
            plain("ClientUsername"),
            timestamp,
            plain("RequestMethod"),
            plain("RequestPath"),
            plain("RequestProtocol"),
            plain("DownstreamStatus"),
            plain("DownstreamContentSize"),
            quoted("request_Referer"),
            quoted("request_User-Agent"),
        );
        if format == Format::Common {
            let millis = if get(map, "Duration").is_some() {
                self.duration.as_millis()
            } else {
                0
            };
            let _ = write!(
                out,
                " {} {} {} {}ms",
                plain("RequestCount"),
                quoted("RouterName"),
                quoted("ServiceURL"),
                millis
            );
        }
        out.push(b'\n');
    }
}

/// Go's `fmt` name of an HTTP version (`RequestProtocol`).
fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `s` as a JSON string (serde_json's escaping).
fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn record() -> Record {
        Record {
            // 2017-06-12T15:04:05.123Z, Traefik's test clock is close enough.
            start: SystemTime::UNIX_EPOCH + Duration::from_millis(1_497_279_845_123),
            count: 7,
            peer: "10.0.0.1:34567".parse().unwrap(),
            forwarded_for: None,
            username: None,
            host: HeaderValue::from_static("example.com:8080"),
            method: Method::GET,
            uri: Uri::from_static("/a/b?c=d"),
            version: Version::HTTP_11,
            tls: None,
            entrypoint: "web".into(),
            request_size: 0,
            request_headers: vec![
                (
                    http::header::USER_AGENT,
                    HeaderValue::from_static("curl/8.0"),
                ),
                (http::header::REFERER, HeaderValue::from_static("http://r/")),
            ],
            router: Some("api@file".into()),
            service: Some("svc@file".into()),
            server_url: Some("http://127.0.0.1:9000".into()),
            server_addr: Some("127.0.0.1:9000".into()),
            origin_status: Some(200),
            origin_duration: Some(Duration::from_millis(3)),
            retries: 0,
            trace: None,
            status: 200,
            downstream_headers: Vec::new(),
            duration: Duration::from_millis(5),
            size: 12,
        }
    }

    fn line(r: &Record, f: Format, fields: &Fields) -> String {
        let mut out = Vec::new();
        r.write(f, fields, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Traefik's `TestCommonLogFormatter_Format` shape.
    #[test]
    fn common_format() {
        let r = record();
        let l = line(&r, Format::Common, &Fields::default());
        assert_eq!(
            l,
            "10.0.0.1 - - [12/Jun/2017:15:04:05 +0000] \"GET /a/b?c=d HTTP/1.1\" 200 12 \"http://r/\" \"curl/8.0\" 7 \"api@file\" \"http://127.0.0.1:9000\" 5ms\n"
        );
        let g = line(&r, Format::GenericClf, &Fields::default());
        assert_eq!(
            g,
            "10.0.0.1 - - [12/Jun/2017:15:04:05 +0000] \"GET /a/b?c=d HTTP/1.1\" 200 12 \"http://r/\" \"curl/8.0\"\n"
        );
    }

    #[test]
    fn common_format_without_optional_fields() {
        let mut r = record();
        r.router = None;
        r.server_url = None;
        r.request_headers.clear();
        let l = line(&r, Format::Common, &Fields::default());
        assert!(l.ends_with("200 12 \"-\" \"-\" 7 \"-\" \"-\" 5ms\n"), "{l}");
    }

    #[test]
    fn json_fields() {
        let mut r = record();
        r.tls = Some(("1.3", "TLS_AES_128_GCM_SHA256"));
        r.retries = 2;
        r.trace = Some((
            "0af7651916cd43dd8448eb211c80319c".into(),
            "b7ad6b7169203331".into(),
        ));
        let mut fields = Fields::default();
        fields.set_header("User-Agent=keep").unwrap();
        fields.set_header("Referer=redact").unwrap();
        let mut h = http::HeaderMap::new();
        for (n, v) in &r.request_headers {
            h.append(n.clone(), v.clone());
        }
        r.request_headers = select_headers(&fields, &h);
        let l = line(&r, Format::Json, &fields);
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["ClientHost"], "10.0.0.1");
        assert_eq!(v["ClientPort"], "34567");
        assert_eq!(v["ClientAddr"], "10.0.0.1:34567");
        assert_eq!(v["RequestHost"], "example.com");
        assert_eq!(v["RequestPort"], "8080");
        assert_eq!(v["RequestAddr"], "example.com:8080");
        assert_eq!(v["RequestPath"], "/a/b?c=d");
        assert_eq!(v["RequestProtocol"], "HTTP/1.1");
        assert_eq!(v["RequestScheme"], "https");
        assert_eq!(v["DownstreamStatus"], 200);
        assert_eq!(v["OriginStatus"], 200);
        assert_eq!(v["Duration"], 5_000_000);
        assert_eq!(v["OriginDuration"], 3_000_000);
        assert_eq!(v["Overhead"], 2_000_000);
        assert_eq!(v["RetryAttempts"], 2);
        assert_eq!(v["TLSVersion"], "1.3");
        assert_eq!(v["TraceId"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(v["StartUTC"], "2017-06-12T15:04:05.123Z");
        assert_eq!(v["request_User-Agent"], "curl/8.0");
        assert_eq!(v["request_Referer"], "REDACTED");
        assert_eq!(v["level"], "info");
        assert_eq!(v["EntryPointName"], "web");
    }

    /// Keys in byte order (Go's encoding/json on a map), strings escaped, one line.
    #[test]
    fn json_is_sorted_and_escaped() {
        let mut r = record();
        r.uri = Uri::from_static("/q?a=%22b%22");
        r.username = Some("al\"ice\\".into());
        let l = line(&r, Format::Json, &Fields::default());
        assert!(l.ends_with("}\n") && l.matches('\n').count() == 1, "{l}");
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["ClientUsername"], "al\"ice\\");
        // (A parsed Value sorts its keys itself: check the raw line.)
        let at = |k: &str| l.find(&format!("\"{k}\":")).unwrap();
        let order = [
            "ClientAddr",
            "ClientHost",
            "Duration",
            "RequestPath",
            "level",
            "msg",
            "time",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{l}");
    }

    #[test]
    fn fields_drop_and_query() {
        let r = record();
        let mut fields = Fields {
            default_keep: false,
            keep_query: false,
            ..Fields::default()
        };
        fields.set_name("RequestPath=keep").unwrap();
        let v: Value = serde_json::from_str(&line(&r, Format::Json, &fields)).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(v["RequestPath"], "/a/b");
        assert!(!obj.contains_key("ClientHost"));
        assert!(!obj.contains_key("Duration"));
    }

    #[test]
    fn header_selection() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer x"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let mut fields = Fields::default();
        assert!(select_headers(&fields, &h).is_empty());
        fields.headers_default = HeaderMode::Keep;
        fields.set_header("Authorization=redact").unwrap();
        let sel = select_headers(&fields, &h);
        assert_eq!(sel.len(), 3);
        let mut r = record();
        r.request_headers = sel;
        let v: Value = serde_json::from_str(&line(&r, Format::Json, &fields)).unwrap();
        assert_eq!(v["request_Authorization"], "REDACTED");
        assert_eq!(v["request_X-A"], "1,2");
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("x-request-id"), "X-Request-Id");
        assert_eq!(canonical("USER-AGENT"), "User-Agent");
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a.com"), ("a.com".into(), "-".into()));
        assert_eq!(split_host_port("[::1]:80"), ("::1".into(), "80".into()));
        assert_eq!(split_host_port("::1"), ("::1".into(), "-".into()));
    }
}
