//! One access log line: the [`Record`] the request path fills (shared `Arc`s and short copies,
//! see [`Text`]) and its formatting, done by the writer thread, never on the request path. Pure.
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
//!
//! Formatting is the access log's main cost (callgrind: ~9k of its ~13k instructions per
//! request before this was tuned, see BENCHMARKS.md "Observability overhead"), so a JSON line
//! is written with as little per-field work as possible: the [`Layout`] holds each kept field
//! with its key text `,"Name":` made once; every field starts with a comma and the line's
//! first comma is overwritten with `{` at the end; integers take two digits per division;
//! strings are scanned for escapes eight bytes at a time; constant parts (`level`/`msg`, the
//! per-second `time` tail) are one copy each. The `golden` test pins the exact bytes.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue, Method, Uri, Version};

use super::config::{Fields, Format, HeaderMode};

/// Bytes of a [`Text`] kept inline.
const INLINE: usize = 62;

/// A short text copied out of the request (inline up to [`INLINE`] bytes, else on the heap).
///
/// The record keeps copies, not the request's `Uri` or `HeaderValue`s: those share hyper's
/// read buffer (`Bytes`), so holding them until the writer thread has formatted the line kept
/// hyper from reusing the buffer (a new one per request) and moved the last `free` of the
/// URI's bytes to the writer thread (allocations made on one thread and freed on another miss
/// glibc's per-thread cache on both). A copy of a few dozen bytes costs less than either.
#[derive(Clone)]
pub(crate) enum Text {
    /// (`ArrayString`: read back without validating the UTF-8 again.)
    Inline(arrayvec::ArrayString<INLINE>),
    Heap(Box<str>),
}

impl Text {
    pub(crate) fn new(s: &str) -> Text {
        match arrayvec::ArrayString::from(s) {
            Ok(a) => Text::Inline(a),
            Err(_) => Text::Heap(s.into()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Text::Inline(a) => a,
            Text::Heap(s) => s,
        }
    }
}

impl Default for Text {
    fn default() -> Text {
        Text::Inline(arrayvec::ArrayString::new())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::new(s)
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// `RequestPath` of `uri`: the path and query as one text, and the length of the path in it
/// (the query dropped: `&text[..len]`).
pub(crate) fn request_path(uri: &Uri) -> (Text, usize) {
    let path = uri.path();
    match uri.path_and_query() {
        Some(pq) => (Text::new(pq.as_str()), pq.path().len()),
        None => (Text::new(path), path.len()),
    }
}

/// Which parts of the request the configured fields write (decided once per configuration):
/// what is not written is not copied into the record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs {
    /// `RequestPath`.
    pub path: bool,
    /// `RequestAddr`, `RequestHost` or `RequestPort` (Go's `req.Host`).
    pub host: bool,
    /// `ClientHost` (a trusted client's `X-Forwarded-For`).
    pub forwarded_for: bool,
}

/// What is known about a request when its response is finished.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub start: SystemTime,
    /// Traefik's `RequestCount`.
    pub count: u64,
    pub peer: SocketAddr,
    /// `X-Forwarded-For` of a trusted client (Traefik logs it as `ClientHost`), when it is
    /// text.
    pub forwarded_for: Option<Text>,
    /// `ClientUsername` (basic auth user).
    pub username: Option<Arc<str>>,
    /// Go's `req.Host` (empty when it is not text).
    pub host: Text,
    pub method: Method,
    /// Path and query ([`request_path`]).
    pub path: Text,
    /// Length of the path in `path`.
    pub path_len: usize,
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
    /// `(TraceId, SpanId)` (written in hex).
    pub trace: Option<([u8; 16], [u8; 8])>,
    pub status: u16,
    pub downstream_headers: Vec<(HeaderName, HeaderValue)>,
    pub duration: Duration,
    /// Response body bytes sent to the client.
    pub size: u64,
}

impl Record {
    /// A record of nothing (a new box's, before the request path sets its fields).
    pub(crate) fn blank() -> Record {
        Record {
            start: SystemTime::UNIX_EPOCH,
            count: 0,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            forwarded_for: None,
            username: None,
            host: Text::default(),
            method: Method::GET,
            path: Text::default(),
            path_len: 0,
            version: Version::HTTP_11,
            tls: None,
            entrypoint: Arc::from(""),
            request_size: 0,
            request_headers: Vec::new(),
            router: None,
            service: None,
            server_url: None,
            server_addr: None,
            origin_status: None,
            origin_duration: None,
            retries: 0,
            trace: None,
            status: 0,
            downstream_headers: Vec::new(),
            duration: Duration::ZERO,
            size: 0,
        }
    }

    /// Drops what the line held (shared names, headers, copies on the heap) and resets what
    /// the request path sets only sometimes, so that a recycled record is as
    /// [`Record::blank`] for those fields (the request path sets the others every time).
    pub(crate) fn clear(&mut self) {
        self.forwarded_for = None;
        self.username = None;
        self.host = Text::default();
        self.path = Text::default();
        self.request_headers.clear();
        self.router = None;
        self.service = None;
        self.server_url = None;
        self.server_addr = None;
        self.origin_status = None;
        self.origin_duration = None;
        self.retries = 0;
        self.trace = None;
        self.status = 0;
        self.downstream_headers.clear();
        self.duration = Duration::ZERO;
        self.size = 0;
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-request-id` → `X-Request-Id`.
#[cfg(test)]
pub(crate) fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    canonical_into(name, &mut out);
    out
}

/// [`canonical`] appended to `out`.
fn canonical_into(name: &str, out: &mut String) {
    let mut up = true;
    for c in name.chars() {
        out.push(if up {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        up = c == '-';
    }
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

/// Go's `net.SplitHostPort` as Traefik uses it (`-` as the port when there is none).
fn split_host_port(v: &str) -> (&str, &str) {
    let Some(i) = v.bytes().rposition(|b| b == b':') else {
        return (v, "-");
    };
    let (h, p) = (&v[..i], &v[i + 1..]);
    if !p.is_empty()
        && p.bytes().all(|b| b.is_ascii_digit())
        && (!h.as_bytes().contains(&b':') || (h.starts_with('[') && h.ends_with(']')))
    {
        (h.trim_start_matches('[').trim_end_matches(']'), p)
    } else {
        (v, "-")
    }
}

/// A core field of a line (Traefik's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    StartUtc,
    StartLocal,
    Duration,
    ClientAddr,
    ClientHost,
    ClientPort,
    ClientUsername,
    RequestMethod,
    RequestPath,
    RequestProtocol,
    RequestScheme,
    RequestContentSize,
    RequestCount,
    EntryPointName,
    RetryAttempts,
    DownstreamStatus,
    DownstreamContentSize,
    RequestAddr,
    RequestHost,
    RequestPort,
    TlsVersion,
    TlsCipher,
    RouterName,
    ServiceName,
    ServiceUrl,
    ServiceAddr,
    OriginStatus,
    OriginContentSize,
    OriginDuration,
    Overhead,
    TraceId,
    SpanId,
}

/// Every core field.
const FIELDS: [Field; 32] = [
    Field::StartUtc,
    Field::StartLocal,
    Field::Duration,
    Field::ClientAddr,
    Field::ClientHost,
    Field::ClientPort,
    Field::ClientUsername,
    Field::RequestMethod,
    Field::RequestPath,
    Field::RequestProtocol,
    Field::RequestScheme,
    Field::RequestContentSize,
    Field::RequestCount,
    Field::EntryPointName,
    Field::RetryAttempts,
    Field::DownstreamStatus,
    Field::DownstreamContentSize,
    Field::RequestAddr,
    Field::RequestHost,
    Field::RequestPort,
    Field::TlsVersion,
    Field::TlsCipher,
    Field::RouterName,
    Field::ServiceName,
    Field::ServiceUrl,
    Field::ServiceAddr,
    Field::OriginStatus,
    Field::OriginContentSize,
    Field::OriginDuration,
    Field::Overhead,
    Field::TraceId,
    Field::SpanId,
];

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::StartUtc => "StartUTC",
            Field::StartLocal => "StartLocal",
            Field::Duration => "Duration",
            Field::ClientAddr => "ClientAddr",
            Field::ClientHost => "ClientHost",
            Field::ClientPort => "ClientPort",
            Field::ClientUsername => "ClientUsername",
            Field::RequestMethod => "RequestMethod",
            Field::RequestPath => "RequestPath",
            Field::RequestProtocol => "RequestProtocol",
            Field::RequestScheme => "RequestScheme",
            Field::RequestContentSize => "RequestContentSize",
            Field::RequestCount => "RequestCount",
            Field::EntryPointName => "EntryPointName",
            Field::RetryAttempts => "RetryAttempts",
            Field::DownstreamStatus => "DownstreamStatus",
            Field::DownstreamContentSize => "DownstreamContentSize",
            Field::RequestAddr => "RequestAddr",
            Field::RequestHost => "RequestHost",
            Field::RequestPort => "RequestPort",
            Field::TlsVersion => "TLSVersion",
            Field::TlsCipher => "TLSCipher",
            Field::RouterName => "RouterName",
            Field::ServiceName => "ServiceName",
            Field::ServiceUrl => "ServiceURL",
            Field::ServiceAddr => "ServiceAddr",
            Field::OriginStatus => "OriginStatus",
            Field::OriginContentSize => "OriginContentSize",
            Field::OriginDuration => "OriginDuration",
            Field::Overhead => "Overhead",
            Field::TraceId => "TraceId",
            Field::SpanId => "SpanId",
        }
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }

    /// Whether the field's JSON value is a string (the others are numbers).
    fn is_text(self) -> bool {
        !matches!(
            self,
            Field::Duration
                | Field::RequestContentSize
                | Field::RequestCount
                | Field::RetryAttempts
                | Field::DownstreamStatus
                | Field::DownstreamContentSize
                | Field::OriginStatus
                | Field::OriginContentSize
                | Field::OriginDuration
                | Field::Overhead
        )
    }

    /// `,"Name":`, what precedes the field's value in a JSON line, with the value's opening
    /// quote when it is a string (`,"Name":"`: one push less per field).
    fn json_key(self) -> Key {
        let quote = if self.is_text() { "\"" } else { "" };
        let text = format!(",\"{}\":{quote}", self.name());
        let mut key = Key {
            text: [0; KEY],
            len: text.len().min(KEY),
        };
        key.text[..key.len].copy_from_slice(&text.as_bytes()[..key.len]);
        key
    }
}

/// Room for the longest key text (`,"DownstreamContentSize":` is 25 bytes).
const KEY: usize = 32;

/// A field's JSON key text in a fixed-size array: appended as [`KEY`] bytes and cut back to
/// its length, a copy of a known size (a few vector moves) rather than a `memcpy` call of a
/// variable length per field.
#[derive(Debug, Clone)]
struct Key {
    text: [u8; KEY],
    len: usize,
}

impl Key {
    fn put(&self, out: &mut Vec<u8>) {
        let end = out.len() + self.len;
        out.extend_from_slice(&self.text);
        out.truncate(end);
    }
}

/// What lines look like, computed once from the options (the writer keeps one): the format,
/// the core fields kept (`fields.defaultMode` and `fields.names` applied once, not per line)
/// and their JSON key order.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    format: Format,
    keep_query: bool,
    /// Bit `Field as u32`: the field is written.
    kept: u64,
    /// The kept fields, by name in byte order (Go's `encoding/json` writes a map sorted),
    /// with their JSON key text (`,"Name":`), made once here rather than piece by piece per
    /// line.
    sorted: Vec<(Field, Key)>,
}

impl Layout {
    pub(crate) fn new(format: Format, fields: &Fields) -> Layout {
        let mut sorted: Vec<Field> = FIELDS
            .iter()
            .copied()
            .filter(|f| fields.keep(f.name()))
            .collect();
        sorted.sort_unstable_by_key(|f| f.name());
        Layout {
            format,
            keep_query: fields.keep_query,
            kept: sorted.iter().fold(0, |m, f| m | f.bit()),
            sorted: sorted.into_iter().map(|f| (f, f.json_key())).collect(),
        }
    }

    fn keeps(&self, f: Field) -> bool {
        self.kept & f.bit() != 0
    }

    /// What the request path must copy for these lines.
    pub(crate) fn needs(&self) -> Needs {
        Needs {
            path: self.keeps(Field::RequestPath),
            host: self.keeps(Field::RequestAddr)
                || self.keeps(Field::RequestHost)
                || self.keeps(Field::RequestPort),
            forwarded_for: self.keeps(Field::ClientHost),
        }
    }
}

/// A text made once per second (a formatted time), reused for every line of that second.
#[derive(Debug, Default)]
struct PerSecond {
    sec: Option<u64>,
    text: String,
}

impl PerSecond {
    fn get(&mut self, sec: u64, make: impl FnOnce(SystemTime) -> String) -> &str {
        if self.sec != Some(sec) {
            self.text = make(SystemTime::UNIX_EPOCH + Duration::from_secs(sec));
            self.sec = Some(sec);
        }
        &self.text
    }
}

/// What the writer reuses from line to line: formatted times per second (chrono's local time
/// zone lookups and formatting run once a second, not per line) and the merged header list.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    start_utc: PerSecond,
    start_local: PerSecond,
    clf_utc: PerSecond,
    clf_local: PerSecond,
    now: PerSecond,
    /// The writer's clock (seconds since the epoch) for the `time` field, read once per
    /// batch of lines rather than per line ([`Scratch::read_clock`]); `None`: read per line.
    clock: Option<u64>,
    /// `(key, value)` of the header fields of the current line.
    headers: Vec<(String, String)>,
    /// The configuration's names of the last line, JSON-escaped once per configuration
    /// version rather than scanned per line.
    entrypoint: Escaped,
    router: Escaped,
    service: Escaped,
    server_url: Escaped,
    server_addr: Escaped,
    /// The last client address written (`ClientAddr`, `ClientHost`, `ClientPort`).
    peer: PeerText,
    /// `StartUTC` / `StartLocal` per second, with their keys.
    json_start_utc: StartText,
    json_start_local: StartText,
}

/// A shared text (a name from the configuration) and its whole JSON field (`,"Key":"value"`,
/// escaped), remade only when a line carries another `Arc`: consecutive lines mostly share
/// their router, service and server, so their names are escaped once per configuration
/// version, not per line, and written with their key in one copy. Holding the `Arc` keeps its
/// address from being reused by another text. (One `Escaped` per field: the key is the same
/// for every line of a writer.)
#[derive(Debug, Default)]
struct Escaped {
    of: Option<Arc<str>>,
    json: Vec<u8>,
}

impl Escaped {
    /// `key` and `s` as a JSON string appended to `out`.
    fn push(&mut self, out: &mut Vec<u8>, key: &Key, s: &Arc<str>) {
        if !self.of.as_ref().is_some_and(|o| Arc::ptr_eq(o, s)) {
            self.json.clear();
            key.put(&mut self.json);
            json_str_open(&mut self.json, s);
            self.of = Some(s.clone());
        }
        out.extend_from_slice(&self.json);
    }
}

/// The client's address texts as JSON string values with their closing quote (`ClientAddr`,
/// its IP for `ClientHost`, its port for `ClientPort`), remade when the peer changes:
/// consecutive lines mostly come from the same connections.
#[derive(Debug, Default)]
struct PeerText {
    of: Option<SocketAddr>,
    addr: Vec<u8>,
    ip: Vec<u8>,
    port: Vec<u8>,
}

impl PeerText {
    fn get(&mut self, peer: SocketAddr) -> &PeerText {
        if self.of != Some(peer) {
            self.addr.clear();
            self.ip.clear();
            self.port.clear();
            push_ip(&mut self.ip, peer.ip());
            match peer {
                SocketAddr::V4(_) => {
                    self.addr.extend_from_slice(&self.ip);
                    self.addr.push(b':');
                    push_u64(&mut self.addr, peer.port().into());
                }
                a => {
                    let _ = write!(self.addr, "{a}");
                }
            }
            push_u64(&mut self.port, peer.port().into());
            for t in [&mut self.addr, &mut self.ip, &mut self.port] {
                t.push(b'"');
            }
            self.of = Some(peer);
        }
        self
    }
}

/// `StartUTC` or `StartLocal` of the current second as JSON: the key and the time up to the
/// seconds (`,"StartUTC":"2017-06-12T15:04:05`), and the offset with the closing quote
/// (`Z"`, `+01:00"`); a line adds only its sub-second digits between them.
#[derive(Debug, Default)]
struct StartText {
    sec: Option<u64>,
    /// Empty when chrono's text does not have the expected shape (the line then formats the
    /// whole time).
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl StartText {
    fn get(&mut self, sec: u64, key: &Key, utc: bool) -> &StartText {
        if self.sec != Some(sec) {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(sec);
            let text = if utc {
                chrono::DateTime::<chrono::Utc>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            } else {
                chrono::DateTime::<chrono::Local>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            };
            self.head.clear();
            self.tail.clear();
            if let Some(b'Z' | b'+' | b'-') = text.as_bytes().get(19) {
                key.put(&mut self.head);
                self.head.extend_from_slice(&text.as_bytes()[..19]);
                self.tail.extend_from_slice(&text.as_bytes()[19..]);
                self.tail.push(b'"');
            }
            self.sec = Some(sec);
        }
        self
    }
}

/// The wall clock in whole seconds since the epoch (logrus's `time` of a line).
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Scratch {
    /// Reads the clock for the `time` field of the next lines (the writer calls it per batch
    /// and every few dozen lines, so the field stays the time the line was written to within
    /// microseconds).
    pub(crate) fn read_clock(&mut self) {
        self.clock = Some(now_secs());
    }
}

/// A field's value.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Num(u64),
    /// Written as a string (no escaping needed).
    Ip(IpAddr),
    Addr(SocketAddr),
    Port(u16),
    /// `StartUTC` (true) or `StartLocal` (false), RFC 3339.
    Start(bool),
    Hex(&'a [u8]),
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The two-digit numbers `00`..`99`, for [`push_u64`].
const DIGITS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// `n` in decimal (two digits per division: most values are status codes, sizes and
/// nanosecond durations, and the writer formats a dozen per line).
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    let len = buf.len() - i;
    if len <= 8 {
        // Up to eight digits (most values): the last eight bytes as one word, shifted so the
        // digits come first, appended whole and cut back — a copy of a known size instead of
        // a `memcpy` call of a variable one.
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[12..]);
        let word = u64::from_le_bytes(w) >> (8 * (8 - len));
        let end = out.len() + len;
        out.extend_from_slice(&word.to_le_bytes());
        out.truncate(end);
    } else {
        out.extend_from_slice(&buf[i..]);
    }
}

/// An address as `Display` writes it (IPv4 by hand: it is most lines' client).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, o.into());
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// chrono's `SecondsFormat::AutoSi` fraction: none, 3, 6 or 9 digits.
fn push_fraction(out: &mut Vec<u8>, nanos: u32) {
    let digits = if nanos == 0 {
        return;
    } else if nanos.is_multiple_of(1_000_000) {
        3
    } else if nanos.is_multiple_of(1_000) {
        6
    } else {
        9
    };
    // The point and the nine digits (zero-padded), two per division, appended whole (a copy
    // of a known size) and cut back to the point and the first `digits`.
    let mut buf = [b'.'; 10];
    let mut n = nanos as usize;
    buf[9] = b'0' + (n % 10) as u8;
    n /= 10;
    for i in (0..4).rev() {
        let d = n % 100 * 2;
        n /= 100;
        buf[1 + 2 * i..3 + 2 * i].copy_from_slice(&DIGITS[d..d + 2]);
    }
    let end = out.len() + 1 + digits;
    out.extend_from_slice(&buf);
    out.truncate(end);
}

impl Record {
    /// `RequestPath`: the path and, unless dropped, the query.
    fn path(&self, keep_query: bool) -> &str {
        let full = self.path.as_str();
        if keep_query {
            full
        } else {
            full.get(..self.path_len).unwrap_or(full)
        }
    }

    fn host_str(&self) -> &str {
        self.host.as_str()
    }

    /// The value of core field `f`, `None` when this request has none.
    /// `host`: [`Record::host_str`] (looked up once per line, not per field).
    fn value<'a>(&'a self, f: Field, keep_query: bool, host: &'a str) -> Option<Val<'a>> {
        let host = || Some(host).filter(|h| !h.is_empty());
        Some(match f {
            Field::StartUtc => Val::Start(true),
            Field::StartLocal => Val::Start(false),
            Field::Duration => Val::Num(nanos(self.duration)),
            Field::ClientAddr => Val::Addr(self.peer),
            Field::ClientHost => match self.forwarded_for.as_ref().map(Text::as_str) {
                Some(x) if !x.is_empty() => Val::Str(x),
                _ => Val::Ip(self.peer.ip()),
            },
            Field::ClientPort => Val::Port(self.peer.port()),
            Field::ClientUsername => Val::Str(self.username.as_deref().unwrap_or("-")),
            Field::RequestMethod => Val::Str(self.method.as_str()),
            Field::RequestPath => Val::Str(self.path(keep_query)),
            Field::RequestProtocol => Val::Str(protocol(self.version)),
            Field::RequestScheme => Val::Str(if self.tls.is_some() { "https" } else { "http" }),
            Field::RequestContentSize => Val::Num(self.request_size),
            Field::RequestCount => Val::Num(self.count),
            Field::EntryPointName => Val::Str(&self.entrypoint),
            Field::RetryAttempts => Val::Num(self.retries.into()),
            Field::DownstreamStatus => Val::Num(self.status.into()),
            Field::DownstreamContentSize => Val::Num(self.size),
            Field::RequestAddr => Val::Str(host()?),
            Field::RequestHost => Val::Str(split_host_port(host()?).0),
            Field::RequestPort => Val::Str(split_host_port(host()?).1),
            Field::TlsVersion => Val::Str(self.tls?.0),
            Field::TlsCipher => Val::Str(self.tls?.1),
            Field::RouterName => Val::Str(self.router.as_deref()?),
            Field::ServiceName => Val::Str(self.service.as_deref()?),
            Field::ServiceUrl => Val::Str(self.server_url.as_deref()?),
            Field::ServiceAddr => Val::Str(self.server_addr.as_deref()?),
            Field::OriginStatus => Val::Num(self.origin_status?.into()),
            Field::OriginContentSize => {
                self.origin_status?;
                Val::Num(self.size)
            }
            Field::OriginDuration => Val::Num(nanos(self.origin_duration?)),
            Field::Overhead => Val::Num(nanos(
                self.duration
                    .saturating_sub(self.origin_duration.unwrap_or_default()),
            )),
            Field::TraceId => Val::Hex(&self.trace.as_ref()?.0),
            Field::SpanId => Val::Hex(&self.trace.as_ref()?.1),
        })
    }

    /// The header fields (`request_X`, `downstream_X`, several values joined with `,`) into
    /// `list`, sorted by key.
    fn header_fields(&self, list: &mut Vec<(String, String)>) {
        list.clear();
        for (prefix, headers) in [
            ("request_", &self.request_headers),
            ("downstream_", &self.downstream_headers),
        ] {
            for (name, value) in headers {
                let mut key = String::with_capacity(prefix.len() + name.as_str().len());
                key.push_str(prefix);
                canonical_into(name.as_str(), &mut key);
                let value = String::from_utf8_lossy(value.as_bytes());
                match list.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, s)) if s != "REDACTED" => {
                        s.push(',');
                        s.push_str(&value);
                    }
                    Some(_) => {}
                    None => list.push((key, value.into_owned())),
                }
            }
        }
        list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }

    /// The line (with its trailing newline) appended to `out`.
    #[cfg(test)]
    pub(crate) fn write(&self, format: Format, fields: &Fields, out: &mut Vec<u8>) {
        self.write_with(&Layout::new(format, fields), &mut Scratch::default(), out);
    }

    /// The line appended to `out`, with the writer's layout and scratch.
    pub(crate) fn write_with(&self, lay: &Layout, sc: &mut Scratch, out: &mut Vec<u8>) {
        let mut headers = std::mem::take(&mut sc.headers);
        self.header_fields(&mut headers);
        match lay.format {
            Format::Json => self.json(lay, sc, &headers, out),
            Format::Common | Format::GenericClf => self.clf(lay, sc, &headers, out),
        }
        sc.headers = headers;
    }

    fn json(
        &self,
        lay: &Layout,
        sc: &mut Scratch,
        headers: &[(String, String)],
        out: &mut Vec<u8>,
    ) {
        // Every field is written as `,"Key":value`; the first comma becomes the `{` at the
        // end (there is always one: `level`), so no field checks whether it is the first.
        let start = out.len();
        out.reserve(1024);
        let host = self.host_str();
        let split = if host.is_empty()
            || lay.kept & (Field::RequestHost.bit() | Field::RequestPort.bit()) == 0
        {
            ("", "")
        } else {
            split_host_port(host)
        };
        let start_t = self.start.duration_since(SystemTime::UNIX_EPOCH).ok();
        for (f, key) in &lay.sorted {
            self.json_field(*f, key, lay.keep_query, (host, split), start_t, sc, out);
        }
        // Core keys start with an upper-case letter: in byte order they come first, then
        // `downstream_*`, `level`, `msg`, `request_*`, `time`.
        let field = |k: &str, v: &str, out: &mut Vec<u8>| {
            out.push(b',');
            json_str(out, k);
            out.push(b':');
            json_str(out, v);
        };
        let split = headers.partition_point(|(k, _)| k.as_str() < "level");
        for (k, v) in &headers[..split] {
            field(k, v, out);
        }
        out.extend_from_slice(b",\"level\":\"info\",\"msg\":\"\"");
        for (k, v) in &headers[split..] {
            field(k, v, out);
        }
        let now = sc.clock.unwrap_or_else(now_secs);
        // `,"time":"…"}` and the newline, made once a second.
        let tail = sc.now.get(now, |t| {
            let time = chrono::DateTime::<chrono::Local>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
            let mut tail = Vec::with_capacity(time.len() + 12);
            field("time", &time, &mut tail);
            tail.extend_from_slice(b"}\n");
            String::from_utf8(tail).unwrap_or_default()
        });
        out.extend_from_slice(tail.as_bytes());
        out[start] = b'{';
    }

    /// Core field `f` as `,"Key":value` (nothing when this request has none): the same values
    /// as [`Record::value`], written in one step. `host`: [`Record::host_str`] and its
    /// [`split_host_port`] (looked up once per line); `start`: [`Record::start`] since the
    /// epoch (`None` before it). The key of a string field carries the opening quote. Strings
    /// that cannot hold a character JSON escapes (methods are tokens, ports digits, the rest
    /// static) are not scanned.
    #[allow(clippy::too_many_arguments)]
    fn json_field(
        &self,
        f: Field,
        key: &Key,
        keep_query: bool,
        host: (&str, (&str, &str)),
        start: Option<Duration>,
        sc: &mut Scratch,
        out: &mut Vec<u8>,
    ) {
        let num = |out: &mut Vec<u8>, n: u64| {
            key.put(out);
            push_u64(out, n);
        };
        let text = |out: &mut Vec<u8>, s: &str| {
            key.put(out);
            json_str_open(out, s);
        };
        let safe = |out: &mut Vec<u8>, s: &str| {
            key.put(out);
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        };
        let (host, (req_host, req_port)) = host;
        match f {
            Field::StartUtc | Field::StartLocal => {
                let utc = f == Field::StartUtc;
                let cache = if utc {
                    &mut sc.json_start_utc
                } else {
                    &mut sc.json_start_local
                };
                match start.map(|d| (d, cache.get(d.as_secs(), key, utc))) {
                    Some((d, t)) if !t.head.is_empty() => {
                        out.extend_from_slice(&t.head);
                        push_fraction(out, d.subsec_nanos());
                        out.extend_from_slice(&t.tail);
                    }
                    _ => {
                        key.put(out);
                        self.rfc3339(utc, sc, out);
                        out.push(b'"');
                    }
                }
            }
            Field::Duration => num(out, nanos(self.duration)),
            Field::ClientAddr => {
                key.put(out);
                out.extend_from_slice(&sc.peer.get(self.peer).addr);
            }
            Field::ClientHost => match self.forwarded_for.as_ref().map(Text::as_str) {
                Some(x) if !x.is_empty() => text(out, x),
                _ => {
                    key.put(out);
                    out.extend_from_slice(&sc.peer.get(self.peer).ip);
                }
            },
            Field::ClientPort => {
                key.put(out);
                out.extend_from_slice(&sc.peer.get(self.peer).port);
            }
            Field::ClientUsername => match self.username.as_deref() {
                Some(u) => text(out, u),
                None => safe(out, "-"),
            },
            Field::RequestMethod => safe(out, self.method.as_str()),
            Field::RequestPath => text(out, self.path(keep_query)),
            Field::RequestProtocol => safe(out, protocol(self.version)),
            Field::RequestScheme => safe(out, if self.tls.is_some() { "https" } else { "http" }),
            Field::RequestContentSize => num(out, self.request_size),
            Field::RequestCount => num(out, self.count),
            Field::EntryPointName => sc.entrypoint.push(out, key, &self.entrypoint),
            Field::RetryAttempts => num(out, self.retries.into()),
            Field::DownstreamStatus => num(out, self.status.into()),
            Field::DownstreamContentSize => num(out, self.size),
            Field::RequestAddr if !host.is_empty() => text(out, host),
            Field::RequestHost if !host.is_empty() => text(out, req_host),
            Field::RequestPort if !host.is_empty() => safe(out, req_port),
            Field::RequestAddr | Field::RequestHost | Field::RequestPort => {}
            Field::TlsVersion => {
                if let Some((v, _)) = self.tls {
                    safe(out, v);
                }
            }
            Field::TlsCipher => {
                if let Some((_, c)) = self.tls {
                    safe(out, c);
                }
            }
            Field::RouterName => {
                if let Some(v) = &self.router {
                    sc.router.push(out, key, v);
                }
            }
            Field::ServiceName => {
                if let Some(v) = &self.service {
                    sc.service.push(out, key, v);
                }
            }
            Field::ServiceUrl => {
                if let Some(v) = &self.server_url {
                    sc.server_url.push(out, key, v);
                }
            }
            Field::ServiceAddr => {
                if let Some(v) = &self.server_addr {
                    sc.server_addr.push(out, key, v);
                }
            }
            Field::OriginStatus => {
                if let Some(s) = self.origin_status {
                    num(out, s.into());
                }
            }
            Field::OriginContentSize => {
                if self.origin_status.is_some() {
                    num(out, self.size);
                }
            }
            Field::OriginDuration => {
                if let Some(d) = self.origin_duration {
                    num(out, nanos(d));
                }
            }
            Field::Overhead => num(
                out,
                nanos(
                    self.duration
                        .saturating_sub(self.origin_duration.unwrap_or_default()),
                ),
            ),
            Field::TraceId | Field::SpanId => {
                if let Some((t, s)) = &self.trace {
                    key.put(out);
                    push_hex(out, if f == Field::TraceId { t } else { s });
                    out.push(b'"');
                }
            }
        }
    }

    /// A value as plain text (no quoting, no escaping).
    fn display(&self, v: Val<'_>, sc: &mut Scratch, out: &mut Vec<u8>) {
        match v {
            Val::Str(s) => out.extend_from_slice(s.as_bytes()),
            Val::Num(n) => push_u64(out, n),
            Val::Ip(ip) => push_ip(out, ip),
            Val::Addr(SocketAddr::V4(a)) => {
                push_ip(out, IpAddr::V4(*a.ip()));
                out.push(b':');
                push_u64(out, a.port().into());
            }
            Val::Addr(a) => {
                let _ = write!(out, "{a}");
            }
            Val::Port(p) => push_u64(out, p.into()),
            Val::Hex(b) => push_hex(out, b),
            Val::Start(utc) => self.rfc3339(utc, sc, out),
        }
    }

    /// `StartUTC` / `StartLocal`: RFC 3339 with the sub-second digits there are.
    fn rfc3339(&self, utc: bool, sc: &mut Scratch, out: &mut Vec<u8>) {
        let full = || {
            if utc {
                chrono::DateTime::<chrono::Utc>::from(self.start)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            } else {
                chrono::DateTime::<chrono::Local>::from(self.start)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
            }
        };
        let Ok(d) = self.start.duration_since(SystemTime::UNIX_EPOCH) else {
            out.extend_from_slice(full().as_bytes());
            return;
        };
        let cache = if utc {
            &mut sc.start_utc
        } else {
            &mut sc.start_local
        };
        // `YYYY-MM-DDTHH:MM:SS` then the offset (`Z`, `+01:00`).
        let text = cache.get(d.as_secs(), |t| {
            if utc {
                chrono::DateTime::<chrono::Utc>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            } else {
                chrono::DateTime::<chrono::Local>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            }
        });
        match text.as_bytes().get(19) {
            Some(b'Z' | b'+' | b'-') => {
                out.extend_from_slice(&text.as_bytes()[..19]);
                push_fraction(out, d.subsec_nanos());
                out.extend_from_slice(&text.as_bytes()[19..]);
            }
            _ => out.extend_from_slice(full().as_bytes()),
        }
    }

    fn clf(&self, lay: &Layout, sc: &mut Scratch, headers: &[(String, String)], out: &mut Vec<u8>) {
        let host = self.host_str();
        let get = |f: Field| {
            if lay.keeps(f) {
                self.value(f, lay.keep_query, host)
            } else {
                None
            }
        };
        let header = |k: &str| {
            headers
                .binary_search_by(|(key, _)| key.as_str().cmp(k))
                .ok()
                .map(|i| Val::Str(&headers[i].1))
        };
        let plain = |v: Option<Val<'_>>, sc: &mut Scratch, out: &mut Vec<u8>| match v {
            Some(Val::Str("")) | None => out.push(b'-'),
            Some(v) => self.display(v, sc, out),
        };
        let quoted = |v: Option<Val<'_>>, sc: &mut Scratch, out: &mut Vec<u8>| match v {
            Some(Val::Str("")) | None => out.extend_from_slice(b"\"-\""),
            Some(Val::Num(n)) => push_u64(out, n),
            Some(Val::Str(s)) => {
                out.push(b'"');
                for (i, part) in s.split('"').enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b"\\\"");
                    }
                    out.extend_from_slice(part.as_bytes());
                }
                out.push(b'"');
            }
            Some(v) => {
                out.push(b'"');
                self.display(v, sc, out);
                out.push(b'"');
            }
        };
        plain(get(Field::ClientHost), sc, out);
        out.extend_from_slice(b" - ");
        plain(get(Field::ClientUsername), sc, out);
        out.extend_from_slice(b" [");
        self.clf_time(lay, sc, out);
        out.extend_from_slice(b"] \"");
        plain(get(Field::RequestMethod), sc, out);
        out.push(b' ');
        plain(get(Field::RequestPath), sc, out);
        out.push(b' ');
        plain(get(Field::RequestProtocol), sc, out);
        out.extend_from_slice(b"\" ");
        plain(get(Field::DownstreamStatus), sc, out);
        out.push(b' ');
        plain(get(Field::DownstreamContentSize), sc, out);
        out.push(b' ');
        quoted(header("request_Referer"), sc, out);
        out.push(b' ');
        quoted(header("request_User-Agent"), sc, out);
        if lay.format == Format::Common {
            out.push(b' ');
            plain(get(Field::RequestCount), sc, out);
            out.push(b' ');
            quoted(get(Field::RouterName), sc, out);
            out.push(b' ');
            quoted(get(Field::ServiceUrl), sc, out);
            out.push(b' ');
            let millis = if lay.keeps(Field::Duration) {
                u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX)
            } else {
                0
            };
            push_u64(out, millis);
            out.extend_from_slice(b"ms");
        }
        out.push(b'\n');
    }

    /// `[12/Jun/2017:15:04:05 +0000]`'s inside: UTC when `StartUTC` is kept, else local time
    /// when `StartLocal` is, else `-`.
    fn clf_time(&self, lay: &Layout, sc: &mut Scratch, out: &mut Vec<u8>) {
        const CLF: &str = "%d/%b/%Y:%H:%M:%S %z";
        let utc = if lay.keeps(Field::StartUtc) {
            true
        } else if lay.keeps(Field::StartLocal) {
            false
        } else {
            out.push(b'-');
            return;
        };
        let format = |t: SystemTime| {
            if utc {
                chrono::DateTime::<chrono::Utc>::from(t)
                    .format(CLF)
                    .to_string()
            } else {
                chrono::DateTime::<chrono::Local>::from(t)
                    .format(CLF)
                    .to_string()
            }
        };
        match self.start.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => {
                let cache = if utc {
                    &mut sc.clf_utc
                } else {
                    &mut sc.clf_local
                };
                out.extend_from_slice(cache.get(d.as_secs(), format).as_bytes());
            }
            Err(_) => out.extend_from_slice(format(self.start).as_bytes()),
        }
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

/// Whether `s` has a byte JSON escapes (a control character, `"` or `\\`), eight bytes at a
/// time.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero (below `n`): the classic bit tricks, exact as a yes/no answer.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let bad = |c: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let x = u64::from_le_bytes(b);
        below(x, 0x20) | below(x ^ (ONES * 0x22), 1) | below(x ^ (ONES * 0x5c), 1) != 0
    };
    let Some(last) = s.len().checked_sub(8) else {
        return s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    };
    let mut chunks = s.chunks_exact(8);
    if chunks.any(bad) {
        return true;
    }
    // The last bytes (fewer than eight) as the last eight, overlapping the last chunk: one
    // word rather than a loop over bytes.
    !s.len().is_multiple_of(8) && bad(&s[last..])
}

/// `s` as a JSON string (serde_json's escaping; most strings need none).
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_str_open(out, s);
}

/// [`json_str`] after its opening quote (already in `out`, ending it).
fn json_str_open(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        out.pop();
        let _ = serde_json::to_writer(&mut *out, s);
    }
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
            host: "example.com:8080".into(),
            method: Method::GET,
            path: "/a/b?c=d".into(),
            path_len: 4,
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
            0x0af7651916cd43dd8448eb211c80319c_u128.to_be_bytes(),
            0xb7ad6b7169203331_u64.to_be_bytes(),
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
        assert_eq!(v["SpanId"], "b7ad6b7169203331");
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
        (r.path, r.path_len) = request_path(&Uri::from_static("/q?a=%22b%22"));
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

    /// The per-second caches and the hand-written fraction give chrono's text exactly.
    #[test]
    fn times_match_chrono() {
        let mut r = record();
        let mut sc = Scratch::default();
        for nanos in [
            0,
            5,
            1_000,
            120_000_000,
            123_456_000,
            123_456_789,
            999_999_999,
        ] {
            for secs in [0, 1_497_279_845, 1_497_279_846] {
                r.start = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
                for utc in [true, false] {
                    let mut out = Vec::new();
                    r.rfc3339(utc, &mut sc, &mut out);
                    let want = if utc {
                        chrono::DateTime::<chrono::Utc>::from(r.start)
                            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    } else {
                        chrono::DateTime::<chrono::Local>::from(r.start)
                            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
                    };
                    assert_eq!(String::from_utf8(out).unwrap(), want);
                }
            }
        }
    }

    /// Every core field, header fields and `level`/`msg`/`time` in byte order, as the
    /// sort of the whole map would give.
    #[test]
    fn json_keys_are_in_byte_order() {
        let mut r = record();
        r.tls = Some(("1.3", "TLS_AES_128_GCM_SHA256"));
        r.trace = Some(([1; 16], [2; 8]));
        r.downstream_headers = vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        )];
        let l = line(&r, Format::Json, &Fields::default());
        let mut keys = Vec::new();
        let v: Value = serde_json::from_str(&l).unwrap();
        for k in v.as_object().unwrap().keys() {
            keys.push((l.find(&format!("\"{k}\":")).unwrap(), k.clone()));
        }
        assert_eq!(keys.len(), 38, "{l}");
        keys.sort();
        let in_line: Vec<&String> = keys.iter().map(|(_, k)| k).collect();
        let mut sorted = in_line.clone();
        sorted.sort();
        assert_eq!(in_line, sorted);
        assert_eq!(v["downstream_Content-Type"], "text/plain");
        assert_eq!(v["SpanId"], "0202020202020202");
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for a in [
            "10.0.0.1:34567",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:80",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let mut r = record();
            r.peer = a;
            let v: Value =
                serde_json::from_str(&line(&r, Format::Json, &Fields::default())).unwrap();
            assert_eq!(v["ClientAddr"], a.to_string());
            assert_eq!(v["ClientHost"], a.ip().to_string());
            assert_eq!(v["ClientPort"], a.port().to_string());
        }
    }

    /// Byte-exact lines (the `time` field cut, `StartLocal` dropped: both depend on the
    /// clock or the time zone), recorded before the formatter was rewritten for speed.
    fn golden_lines() -> Vec<String> {
        let mut out = Vec::new();
        let no_local = || {
            let mut f = Fields::default();
            f.set_name("StartLocal=drop").unwrap();
            f
        };
        let mut full = record();
        full.tls = Some(("1.3", "TLS_AES_128_GCM_SHA256"));
        full.retries = 2;
        full.trace = Some(([0xab; 16], [0x01; 8]));
        full.username = Some("al\"ice\\\u{1}".into());
        (full.path, full.path_len) = request_path(&Uri::from_static("/q?a=%22b%22"));
        full.downstream_headers = vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        )];
        let mut v6 = record();
        v6.peer = "[2001:db8::1]:443".parse().unwrap();
        v6.host = "[::1]:8443".into();
        v6.forwarded_for = Some("1.2.3.4, 5.6.7.8".into());
        v6.router = None;
        v6.service = None;
        v6.server_url = None;
        v6.server_addr = None;
        v6.origin_status = None;
        v6.origin_duration = None;
        v6.request_headers.clear();
        v6.count = 18_446_744_073_709_551_615;
        v6.size = 1_234_567_890;
        v6.start += Duration::from_nanos(456_789);
        let mut hosts = record();
        hosts.host = "".into();
        let mut mixed = no_local();
        mixed.headers_default = HeaderMode::Keep;
        mixed.set_header("Referer=redact").unwrap();
        let mut dropped = no_local();
        dropped.default_keep = false;
        dropped.keep_query = false;
        dropped.set_name("RequestPath=keep").unwrap();
        dropped.set_name("Duration=keep").unwrap();
        for r in [record(), full, v6, hosts] {
            for (format, fields) in [
                (Format::Json, no_local()),
                (Format::Json, mixed.clone()),
                (Format::Json, dropped.clone()),
                (Format::Common, no_local()),
                (Format::GenericClf, no_local()),
                (Format::Common, dropped.clone()),
            ] {
                let l = line(&r, format, &fields);
                out.push(match l.find(",\"time\":") {
                    Some(i) => l[..i].to_string(),
                    None => l,
                });
            }
        }
        out
    }

    #[test]
    fn golden() {
        let got = golden_lines();
        let want: &[&str] = &[
            "{\"ClientAddr\":\"10.0.0.1:34567\",\"ClientHost\":\"10.0.0.1\",\"ClientPort\":\"34567\",\"ClientUsername\":\"-\",\"DownstreamContentSize\":12,\"DownstreamStatus\":200,\"Duration\":5000000,\"EntryPointName\":\"web\",\"OriginContentSize\":12,\"OriginDuration\":3000000,\"OriginStatus\":200,\"Overhead\":2000000,\"RequestAddr\":\"example.com:8080\",\"RequestContentSize\":0,\"RequestCount\":7,\"RequestHost\":\"example.com\",\"RequestMethod\":\"GET\",\"RequestPath\":\"/a/b?c=d\",\"RequestPort\":\"8080\",\"RequestProtocol\":\"HTTP/1.1\",\"RequestScheme\":\"http\",\"RetryAttempts\":0,\"RouterName\":\"api@file\",\"ServiceAddr\":\"127.0.0.1:9000\",\"ServiceName\":\"svc@file\",\"ServiceURL\":\"http://127.0.0.1:9000\",\"StartUTC\":\"2017-06-12T15:04:05.123Z\",\"level\":\"info\",\"msg\":\"\",\"request_Referer\":\"http://r/\",\"request_User-Agent\":\"curl/8.0\"",
            "{\"ClientAddr\":\"10.0.0.1:34567\",\"ClientHost\":\"10.0.0.1\",\"ClientPort\":\"34567\",\"ClientUsername\":\"-\",\"DownstreamContentSize\":12,\"DownstreamStatus\":200,\"Duration\":5000000,\"EntryPointName\":\"web\",\"OriginContentSize\":12,\"OriginDuration\":3000000,\"OriginStatus\":200,\"Overhead\":2000000,\"RequestAddr\":\"example.com:8080\",\"RequestContentSize\":0,\"RequestCount\":7,\"RequestHost\":\"example.com\",\"RequestMethod\":\"GET\",\"RequestPath\":\"/a/b?c=d\",\"RequestPort\":\"8080\",\"RequestProtocol\":\"HTTP/1.1\",\"RequestScheme\":\"http\",\"RetryAttempts\":0,\"RouterName\":\"api@file\",\"ServiceAddr\":\"127.0.0.1:9000\",\"ServiceName\":\"svc@file\",\"ServiceURL\":\"http://127.0.0.1:9000\",\"StartUTC\":\"2017-06-12T15:04:05.123Z\",\"level\":\"info\",\"msg\":\"\",\"request_Referer\":\"http://r/\",\"request_User-Agent\":\"curl/8.0\"",
            "{\"Duration\":5000000,\"RequestPath\":\"/a/b\",\"level\":\"info\",\"msg\":\"\",\"request_Referer\":\"http://r/\",\"request_User-Agent\":\"curl/8.0\"",
            "10.0.0.1 - - [12/Jun/2017:15:04:05 +0000] \"GET /a/b?c=d HTTP/1.1\" 200 12 \"http://r/\" \"curl/8.0\" 7 \"api@file\" \"http://127.0.0.1:9000\" 5ms\n",
            "10.0.0.1 - - [12/Jun/2017:15:04:05 +0000] \"GET /a/b?c=d HTTP/1.1\" 200 12 \"http://r/\" \"curl/8.0\"\n",
            "- - - [-] \"- /a/b -\" - - \"http://r/\" \"curl/8.0\" - \"-\" \"-\" 5ms\n",
            "{\"ClientAddr\":\"10.0.0.1:34567\",\"ClientHost\":\"10.0.0.1\",\"ClientPort\":\"34567\",\"ClientUsername\":\"al\\\"ice\\\\\\u0001\",\"DownstreamContentSize\":12,\"DownstreamStatus\":200,\"Duration\":5000000,\"EntryPointName\":\"web\",\"OriginContentSize\":12,\"OriginDuration\":3000000,\"OriginStatus\":200,\"Overhead\":2000000,\"RequestAddr\":\"example.com:8080\",\"RequestContentSize\":0,\"RequestCount\":7,\"RequestHost\":\"example.com\",\"RequestMethod\":\"GET\",\"RequestPath\":\"/q?a=%22b%22\",\"RequestPort\":\"8080\",\"RequestProtocol\":\"HTTP/1.1\",\"RequestScheme\":\"https\",\"RetryAttempts\":2,\"RouterName\":\"api@file\",\"ServiceAddr\":\"127.0.0.1:9000\",\"ServiceName\":\"svc@file\",\"ServiceURL\":\"http://127.0.0.1:9000\",\"SpanId\":\"0101010101010101\",\"StartUTC\":\"2017-06-12T15:04:05.123Z\",\"TLSCipher\":\"TLS_AES_128_GCM_SHA256\",\"TLSVersion\":\"1.3\",\"TraceId\":\"abababababababababababababababab\",\"downstream_Content-Type\":\"text/plain\",\"level\":\"info\",\"msg\":\"\",\"request_Referer\":\"http://r/\",\"request_User-Agent\":\"curl/8.0\"",
            "{\"ClientAddr\":\"10.0.0.1:34567\",\"ClientHost\":\"10.0.0.1\",\"ClientPort\":\"34567\",\"ClientUsername\":\"al\\\"ice\\\\\\u0001\",\"DownstreamContentSize\":12,\"DownstreamStatus\":200,\"Duration\":5000000,\"EntryPointName\":\"web\",\"OriginContentSize\":12,\"OriginDuration\":3000000,\"OriginStatus\":200,\"Overhead\":2000000,\"RequestAddr\":\"example.com:8080\",\"RequestContentSize\":0,\"RequestCount\":7,\"RequestHost\":\"example.com\",\"RequestMethod\":\"GET\",\"RequestPath\":\"/q?a=%22b%22\",\"RequestPort\":\"8080\",\"RequestProtocol\":\"HTTP/1.1\",\"RequestScheme\":\"https\",\"RetryAttempts\":2,\"RouterName\":\"api@file\",\"ServiceAddr\":\"127.0.0.1:9000\",\"ServiceName\":\"svc@file\",\"ServiceURL\":\"http://127.0.0.1:9000\",\"SpanId\":\"0101010101010101\",\"StartUTC\":\"2017-06-12T15:04:05.123Z\",\"TLSCipher\":\"TLS_AES_128_GCM_SHA256\",\"TLSVersion\":\"1.3\",\"TraceId\":\"abababababababababababababababab\",\"downstream_Content-Type\":\"text/plain\",\"level\":\"info\",\"msg\":\"\",\"request_Referer\":\"http://r/\",\"request_User-Agent\":\"curl/8.0\"",
            "{\"Duration\":5000000,\"RequestPath\":\"/q\",\"downstream_Content-Type\":\"text/plain\",\"level\":\"info\",\"msg\":\"\",\"request_Referer\":\"http://r/\",\"request_User-Agent\":\"curl/8.0\"",
            "10.0.0.1 - al\"ice\\\u{1} [12/Jun/2017:15:04:05 +0000] \"GET /q?a=%22b%22 HTTP/1.1\" 200 12 \"http://r/\" \"curl/8.0\" 7 \"api@file\" \"http://127.0.0.1:9000\" 5ms\n",
            "10.0.0.1 - al\"ice\\\u{1} [12/Jun/2017:15:04:05 +0000] \"GET /q?a=%22b%22 HTTP/1.1\" 200 12 \"http://r/\" \"curl/8.0\"\n",
            "- - - [-] \"- /q -\" - - \"http://r/\" \"curl/8.0\" - \"-\" \"-\" 5ms\n",
            "{\"ClientAddr\":\"[2001:db8::1]:443\",\"ClientHost\":\"1.2.3.4, 5.6.7.8\",\"ClientPort\":\"443\",\"ClientUsername\":\"-\",\"DownstreamContentSize\":1234567890,\"DownstreamStatus\":200,\"Duration\":5000000,\"EntryPointName\":\"web\",\"Overhead\":5000000,\"RequestAddr\":\"[::1]:8443\",\"RequestContentSize\":0,\"RequestCount\":18446744073709551615,\"RequestHost\":\"::1\",\"RequestMethod\":\"GET\",\"RequestPath\":\"/a/b?c=d\",\"RequestPort\":\"8443\",\"RequestProtocol\":\"HTTP/1.1\",\"RequestScheme\":\"http\",\"RetryAttempts\":0,\"StartUTC\":\"2017-06-12T15:04:05.123456789Z\",\"level\":\"info\",\"msg\":\"\"",
            "{\"ClientAddr\":\"[2001:db8::1]:443\",\"ClientHost\":\"1.2.3.4, 5.6.7.8\",\"ClientPort\":\"443\",\"ClientUsername\":\"-\",\"DownstreamContentSize\":1234567890,\"DownstreamStatus\":200,\"Duration\":5000000,\"EntryPointName\":\"web\",\"Overhead\":5000000,\"RequestAddr\":\"[::1]:8443\",\"RequestContentSize\":0,\"RequestCount\":18446744073709551615,\"RequestHost\":\"::1\",\"RequestMethod\":\"GET\",\"RequestPath\":\"/a/b?c=d\",\"RequestPort\":\"8443\",\"RequestProtocol\":\"HTTP/1.1\",\"RequestScheme\":\"http\",\"RetryAttempts\":0,\"StartUTC\":\"2017-06-12T15:04:05.123456789Z\",\"level\":\"info\",\"msg\":\"\"",
            "{\"Duration\":5000000,\"RequestPath\":\"/a/b\",\"level\":\"info\",\"msg\":\"\"",
            "1.2.3.4, 5.6.7.8 - - [12/Jun/2017:15:04:05 +0000] \"GET /a/b?c=d HTTP/1.1\" 200 1234567890 \"-\" \"-\" 18446744073709551615 \"-\" \"-\" 5ms\n",
            "1.2.3.4, 5.6.7.8 - - [12/Jun/2017:15:04:05 +0000] \"GET /a/b?c=d HTTP/1.1\" 200 1234567890 \"-\" \"-\"\n",
            "- - - [-] \"- /a/b -\" - - \"-\" \"-\" - \"-\" \"-\" 5ms\n",
            "{\"ClientAddr\":\"10.0.0.1:34567\",\"ClientHost\":\"10.0.0.1\",\"ClientPort\":\"34567\",\"ClientUsername\":\"-\",\"DownstreamContentSize\":12,\"DownstreamStatus\":200,\"Duration\":5000000,\"EntryPointName\":\"web\",\"OriginContentSize\":12,\"OriginDuration\":3000000,\"OriginStatus\":200,\"Overhead\":2000000,\"RequestContentSize\":0,\"RequestCount\":7,\"RequestMethod\":\"GET\",\"RequestPath\":\"/a/b?c=d\",\"RequestProtocol\":\"HTTP/1.1\",\"RequestScheme\":\"http\",\"RetryAttempts\":0,\"RouterName\":\"api@file\",\"ServiceAddr\":\"127.0.0.1:9000\",\"ServiceName\":\"svc@file\",\"ServiceURL\":\"http://127.0.0.1:9000\",\"StartUTC\":\"2017-06-12T15:04:05.123Z\",\"level\":\"info\",\"msg\":\"\",\"request_Referer\":\"http://r/\",\"request_User-Agent\":\"curl/8.0\"",
            "{\"ClientAddr\":\"10.0.0.1:34567\",\"ClientHost\":\"10.0.0.1\",\"ClientPort\":\"34567\",\"ClientUsername\":\"-\",\"DownstreamContentSize\":12,\"DownstreamStatus\":200,\"Duration\":5000000,\"EntryPointName\":\"web\",\"OriginContentSize\":12,\"OriginDuration\":3000000,\"OriginStatus\":200,\"Overhead\":2000000,\"RequestContentSize\":0,\"RequestCount\":7,\"RequestMethod\":\"GET\",\"RequestPath\":\"/a/b?c=d\",\"RequestProtocol\":\"HTTP/1.1\",\"RequestScheme\":\"http\",\"RetryAttempts\":0,\"RouterName\":\"api@file\",\"ServiceAddr\":\"127.0.0.1:9000\",\"ServiceName\":\"svc@file\",\"ServiceURL\":\"http://127.0.0.1:9000\",\"StartUTC\":\"2017-06-12T15:04:05.123Z\",\"level\":\"info\",\"msg\":\"\",\"request_Referer\":\"http://r/\",\"request_User-Agent\":\"curl/8.0\"",
            "{\"Duration\":5000000,\"RequestPath\":\"/a/b\",\"level\":\"info\",\"msg\":\"\",\"request_Referer\":\"http://r/\",\"request_User-Agent\":\"curl/8.0\"",
            "10.0.0.1 - - [12/Jun/2017:15:04:05 +0000] \"GET /a/b?c=d HTTP/1.1\" 200 12 \"http://r/\" \"curl/8.0\" 7 \"api@file\" \"http://127.0.0.1:9000\" 5ms\n",
            "10.0.0.1 - - [12/Jun/2017:15:04:05 +0000] \"GET /a/b?c=d HTTP/1.1\" 200 12 \"http://r/\" \"curl/8.0\"\n",
            "- - - [-] \"- /a/b -\" - - \"http://r/\" \"curl/8.0\" - \"-\" \"-\" 5ms\n",
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w);
        }
    }

    #[test]
    fn integers_and_escapes() {
        for n in [
            0,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            65_535,
            1_234_567_890,
            u64::MAX,
        ]
        .into_iter()
        .chain((1..20).flat_map(|k| {
            let p = 10u64.pow(k);
            [p - 1, p, p + 7, p / 9 * 8]
        })) {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        for s in [
            "",
            "plain",
            "exactly8",
            "/some/longer/path?q=1&r=2",
            "caf\u{e9} \u{1F600} unicode stays",
            "\u{7f}del is not escaped",
        ] {
            assert!(!needs_escape(s.as_bytes()), "{s:?}");
        }
        for s in [
            "\"",
            "a\\b",
            "tab\there",
            "01234567\n",
            "0123456789abcdef\"",
            "\u{1}",
        ] {
            assert!(needs_escape(s.as_bytes()), "{s:?}");
            let mut out = Vec::new();
            json_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap());
        }
    }

    /// The writer's scratch (times per second, the last client address) gives the lines a
    /// fresh one gives, whatever came before.
    #[test]
    fn scratch_reuse_is_invisible() {
        let lay = Layout::new(Format::Json, &Fields::default());
        let mut sc = Scratch::default();
        for peer in [
            "10.0.0.1:1",
            "10.0.0.2:2",
            "10.0.0.2:3",
            "[::1]:4",
            "10.0.0.1:5",
        ] {
            let mut r = record();
            r.peer = peer.parse().unwrap();
            let (mut reused, mut fresh) = (Vec::new(), Vec::new());
            r.write_with(&lay, &mut sc, &mut reused);
            r.write_with(&lay, &mut Scratch::default(), &mut fresh);
            let cut = |l: &[u8]| {
                let l = String::from_utf8(l.to_vec()).unwrap();
                l[..l.find(",\"time\":").unwrap()].to_string()
            };
            assert_eq!(cut(&reused), cut(&fresh));
        }
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("x-request-id"), "X-Request-Id");
        assert_eq!(canonical("USER-AGENT"), "User-Agent");
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a.com"), ("a.com", "-"));
        assert_eq!(split_host_port("[::1]:80"), ("::1", "80"));
        assert_eq!(split_host_port("::1"), ("::1", "-"));
    }
}
