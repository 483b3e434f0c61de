//! Entry point limits: Traefik's `transport.respondingTimeouts` and `transport.lifeCycle`,
//! request header limits, connection and stream limits ([`EntrypointLimits`]), and the
//! per-connection clock that decides when a timeout is due ([`ClockState`], pure: the caller
//! passes the time).
//!
//! A connection goes through three phases:
//!
//! * **head**: reading a request head, since the connection was accepted or since the first
//!   bytes of the next request arrived on an idle keep-alive connection. `readTimeout` counts
//!   from there and covers the whole request, body included (Go's `http.Server.ReadTimeout`):
//!   when the head is not complete in time the connection is closed without an answer; a body
//!   still arriving at the deadline fails the request with 408 and closes the connection.
//! * **busy**: requests in flight (HTTP/2: streams). No read or idle deadline; `writeTimeout`
//!   (0 = none) bounds the time from the end of the head to the end of the response.
//! * **idle**: no request in flight since `since`. `idleTimeout` closes the connection
//!   (HTTP/1: after the last response; HTTP/2: GOAWAY when no stream is open). As in Go, an
//!   `idleTimeout` of 0 falls back to `readTimeout`.
//!
//! On an HTTP/2 connection bytes arriving while idle (PING, SETTINGS, WINDOW_UPDATE) do not
//! start a head phase: only streams count.
//!
//! The clock also watches the raw bytes of an HTTP/1 head ([`HeadScan`]) for a request that
//! carries both `Content-Length` and `Transfer-Encoding`: hyper lets `Transfer-Encoding` win
//! and drops `Content-Length` before we see the request, but RFC 9112 §6.1 requires closing
//! the connection after answering such a request (a request smuggling attempt), so the entry
//! point must know.

use std::time::{Duration, Instant};

/// Limits of one entry point. Defaults are Traefik v3's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrypointLimits {
    /// `respondingTimeouts.readTimeout` (default 60 s; zero: none): reading a whole request.
    pub read_timeout: Duration,
    /// `respondingTimeouts.writeTimeout` (default 0: none): end of head to end of response.
    pub write_timeout: Duration,
    /// `respondingTimeouts.idleTimeout` (default 180 s; zero: `read_timeout`).
    pub idle_timeout: Duration,
    /// `lifeCycle.requestAcceptGraceTimeout` (default 0): after a shutdown signal, keep
    /// accepting and serving this long (`/readyz` answers 503 meanwhile).
    pub accept_grace: Duration,
    /// `lifeCycle.graceTimeOut` (default 10 s): then let in-flight requests finish this long.
    pub grace: Duration,
    /// `http.maxHeaderBytes` (default 1 MiB): request line and headers (HTTP/1), decoded
    /// header list as counted by HPACK (HTTP/2). Over it: 431.
    pub max_header_bytes: usize,
    /// Header fields per request (default 100). Over it: 431.
    pub max_headers: usize,
    /// Concurrent connections (default: unlimited). Over it, new connections are accepted and
    /// closed at once.
    pub max_connections: Option<usize>,
    /// `http2.maxConcurrentStreams` (default 250).
    pub max_concurrent_streams: u32,
}

impl Default for EntrypointLimits {
    fn default() -> Self {
        EntrypointLimits {
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::ZERO,
            idle_timeout: Duration::from_secs(180),
            accept_grace: Duration::ZERO,
            grace: Duration::from_secs(10),
            max_header_bytes: 1 << 20,
            max_headers: 100,
            max_connections: None,
            max_concurrent_streams: 250,
        }
    }
}

impl EntrypointLimits {
    /// The idle timeout in effect (Go: `IdleTimeout`, or `ReadTimeout` when zero).
    pub fn effective_idle(&self) -> Duration {
        if self.idle_timeout.is_zero() {
            self.read_timeout
        } else {
            self.idle_timeout
        }
    }

    fn opt(d: Duration) -> Option<Duration> {
        (!d.is_zero()).then_some(d)
    }
}

/// Which limit was hit: the `limit` label of `switchyard_proxy_entrypoint_limit_hits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// A request (head or body) was not read within `readTimeout`.
    ReadTimeout,
    /// A response was not written within `writeTimeout`.
    WriteTimeout,
    /// A keep-alive connection was idle for `idleTimeout` (closed).
    IdleTimeout,
    /// Request headers over `maxHeaderBytes` (431).
    HeaderBytes,
    /// More header fields than allowed (431).
    Headers,
    /// A connection over the entry point's connection limit (closed at once).
    Connections,
    /// An HTTP/2 connection closed with `ENHANCE_YOUR_CALM` (too many reset streams).
    H2Resets,
}

impl LimitKind {
    /// Every kind, in label order.
    pub const ALL: [LimitKind; 7] = [
        LimitKind::ReadTimeout,
        LimitKind::WriteTimeout,
        LimitKind::IdleTimeout,
        LimitKind::HeaderBytes,
        LimitKind::Headers,
        LimitKind::Connections,
        LimitKind::H2Resets,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            LimitKind::ReadTimeout => "read_timeout",
            LimitKind::WriteTimeout => "write_timeout",
            LimitKind::IdleTimeout => "idle_timeout",
            LimitKind::HeaderBytes => "header_bytes",
            LimitKind::Headers => "headers",
            LimitKind::Connections => "connections",
            LimitKind::H2Resets => "h2_resets",
        }
    }

    /// Index into [`LimitKind::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            LimitKind::ReadTimeout => 0,
            LimitKind::WriteTimeout => 1,
            LimitKind::IdleTimeout => 2,
            LimitKind::HeaderBytes => 3,
            LimitKind::Headers => 4,
            LimitKind::Connections => 5,
            LimitKind::H2Resets => 6,
        }
    }
}

/// The phase of a connection (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading a request head since `since`.
    Head {
        /// When the head started (accept, or first bytes after idle).
        since: Instant,
    },
    /// `n` requests in flight.
    Busy {
        /// Requests (streams) in flight.
        n: u32,
    },
    /// Nothing in flight since `since`.
    Idle {
        /// When the last response finished.
        since: Instant,
    },
}

/// What the connection's watchdog should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Check again at this time (nothing can expire before).
    At(Instant),
    /// Nothing can ever expire (every timeout disabled).
    Never,
    /// This limit expired now.
    Expired(LimitKind),
}

/// Finds `Content-Length` and `Transfer-Encoding` header names in the raw bytes of a request
/// head, fed in pieces as they are read; stops at the blank line that ends the head.
#[derive(Debug, Clone)]
pub(crate) struct HeadScan {
    name: [u8; 17],
    name_len: usize,
    collecting: bool,
    line_len: usize,
    done: bool,
    content_length: bool,
    transfer_encoding: bool,
}

impl Default for HeadScan {
    fn default() -> Self {
        HeadScan {
            name: [0; 17],
            name_len: 0,
            collecting: true,
            line_len: 0,
            done: false,
            content_length: false,
            transfer_encoding: false,
        }
    }
}

impl HeadScan {
    /// Feed the next bytes read.
    ///
    /// A line whose first byte cannot start either name (everything but `c`/`t`), or whose
    /// name is complete, is skipped to its `\n` with a plain search instead of byte by byte.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !self.done {
            if !self.collecting {
                // Mid-line (`line_len > 0`): only the line's end matters.
                match data.iter().position(|&b| b == b'\n') {
                    Some(i) => data = data.get(i..).unwrap_or_default(),
                    None => return,
                }
            }
            let Some((&b, rest)) = data.split_first() else {
                return;
            };
            data = rest;
            match b {
                b'\n' => {
                    if self.line_len == 0 {
                        self.done = true;
                    }
                    self.line_len = 0;
                    self.name_len = 0;
                    self.collecting = true;
                }
                b'\r' => {}
                _ => {
                    self.line_len += 1;
                    if b == b':' {
                        self.collecting = false;
                        match self.name.get(..self.name_len) {
                            Some(b"content-length") => self.content_length = true,
                            Some(b"transfer-encoding") => self.transfer_encoding = true,
                            _ => {}
                        }
                    } else if self.name_len == 0 && !matches!(b | 0x20, b'c' | b't') {
                        // Neither `content-length` nor `transfer-encoding`.
                        self.collecting = false;
                    } else if let Some(slot) = self.name.get_mut(self.name_len) {
                        *slot = b.to_ascii_lowercase();
                        self.name_len += 1;
                    } else {
                        self.collecting = false;
                    }
                }
            }
        }
    }

    /// Both `Content-Length` and `Transfer-Encoding` were seen.
    pub(crate) fn ambiguous(&self) -> bool {
        self.content_length && self.transfer_encoding
    }
}

/// The timing state of one connection.
#[derive(Debug, Clone)]
pub(crate) struct ClockState {
    phase: Phase,
    h2: bool,
    scan: HeadScan,
    /// HTTP/1: the write deadline of the request in flight.
    write_deadline: Option<Instant>,
    /// Bytes read in the current head phase (tells header size from count on a 431).
    head_bytes: usize,
}

impl ClockState {
    /// A connection accepted at `now`: reading its first request head.
    pub(crate) fn new(now: Instant) -> ClockState {
        ClockState {
            phase: Phase::Head { since: now },
            h2: false,
            scan: HeadScan::default(),
            write_deadline: None,
            head_bytes: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// `data` was read from the client.
    pub(crate) fn on_read(&mut self, now: Instant, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match self.phase {
            Phase::Idle { .. } if !self.h2 => {
                self.phase = Phase::Head { since: now };
                self.head_bytes = data.len();
                self.scan = HeadScan::default();
                self.scan.feed(data);
            }
            Phase::Head { .. } => {
                self.head_bytes = self.head_bytes.saturating_add(data.len());
                if !self.h2 {
                    self.scan.feed(data);
                }
            }
            _ => {}
        }
    }

    /// The connection turned out to be HTTP/2 (its preface was read).
    pub(crate) fn on_h2(&mut self, now: Instant) {
        self.h2 = true;
        if let Phase::Head { .. } = self.phase {
            self.phase = Phase::Idle { since: now };
        }
    }

    /// Whether the connection is HTTP/2.
    #[cfg(test)]
    pub(crate) fn is_h2(&self) -> bool {
        self.h2
    }

    /// Whether bytes read now can change the state (a head being read, or an idle HTTP/1
    /// connection).
    pub(crate) fn wants_reads(&self) -> bool {
        match self.phase {
            Phase::Head { .. } => true,
            Phase::Idle { .. } => !self.h2,
            Phase::Busy { .. } => false,
        }
    }

    /// Bytes read in the current head phase.
    pub(crate) fn head_bytes(&self) -> usize {
        self.head_bytes
    }

    /// A request's head was read at `now`; returns when reading it started (the base of its
    /// read deadline) and whether its head had both `Content-Length` and `Transfer-Encoding`.
    pub(crate) fn begin(&mut self, now: Instant, limits: &EntrypointLimits) -> (Instant, bool) {
        let (t0, n) = match self.phase {
            Phase::Head { since } => (since, 0),
            Phase::Busy { n } => (now, n),
            Phase::Idle { .. } => (now, 0),
        };
        let ambiguous = !self.h2 && self.scan.ambiguous();
        self.scan = HeadScan::default();
        self.phase = Phase::Busy {
            n: n.saturating_add(1),
        };
        self.head_bytes = 0;
        if !self.h2 {
            self.write_deadline = EntrypointLimits::opt(limits.write_timeout).map(|w| now + w);
        }
        (t0, ambiguous)
    }

    /// A response finished (or was dropped) at `now`.
    pub(crate) fn end(&mut self, now: Instant) {
        if let Phase::Busy { n } = self.phase {
            self.phase = if n <= 1 {
                self.write_deadline = None;
                Phase::Idle { since: now }
            } else {
                Phase::Busy { n: n - 1 }
            };
        }
    }

    /// What is due at `now`. A check is never scheduled later than the shortest timeout from
    /// now: a phase that starts after `now` cannot expire before that.
    pub(crate) fn due(&self, now: Instant, limits: &EntrypointLimits) -> Due {
        let read = EntrypointLimits::opt(limits.read_timeout);
        let idle = EntrypointLimits::opt(limits.effective_idle());
        let write = EntrypointLimits::opt(limits.write_timeout);
        let floor = [read, idle, write]
            .into_iter()
            .flatten()
            .min()
            .map(|d| now + d);
        let deadline = match self.phase {
            Phase::Head { since } => read.map(|r| (since + r, LimitKind::ReadTimeout)),
            Phase::Idle { since } => idle.map(|i| (since + i, LimitKind::IdleTimeout)),
            Phase::Busy { .. } => self.write_deadline.map(|w| (w, LimitKind::WriteTimeout)),
        };
        match (deadline, floor) {
            (Some((at, kind)), _) if now >= at => Due::Expired(kind),
            (Some((at, _)), Some(f)) => Due::At(at.min(f)),
            (Some((at, _)), None) => Due::At(at),
            (None, Some(f)) => Due::At(f),
            (None, None) => Due::Never,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn lim(read: u64, idle: u64, write: u64) -> EntrypointLimits {
        EntrypointLimits {
            read_timeout: Duration::from_secs(read),
            idle_timeout: Duration::from_secs(idle),
            write_timeout: Duration::from_secs(write),
            ..EntrypointLimits::default()
        }
    }

    /// The head scan finds both names in any case and in any split of the bytes, only in
    /// names (not values, not the request line, not after the head), and nothing else.
    #[test]
    fn head_scan_finds_both_framing_headers() {
        let cases: [(&[u8], bool); 8] = [
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", true),
            (b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH:3\r\n\r\n", true),
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nX: content-length\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nContent-Lengthx: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            (b"GET / HTTP/1.1\nContent-Length: 0\nTransfer-Encoding: x\n\n", true),
        ];
        for (head, want) in cases {
            for split in 0..=head.len() {
                let mut s = HeadScan::default();
                let (a, b) = head.split_at(split);
                s.feed(a);
                s.feed(b);
                assert_eq!(
                    s.ambiguous(),
                    want,
                    "{:?} split at {split}",
                    String::from_utf8_lossy(head)
                );
            }
            let mut s = HeadScan::default();
            for b in head {
                s.feed(std::slice::from_ref(b));
            }
            assert_eq!(s.ambiguous(), want);
        }
    }

    #[test]
    fn defaults_are_traefiks() {
        let d = EntrypointLimits::default();
        assert_eq!(d.read_timeout, Duration::from_secs(60));
        assert_eq!(d.write_timeout, Duration::ZERO);
        assert_eq!(d.idle_timeout, Duration::from_secs(180));
        assert_eq!(d.accept_grace, Duration::ZERO);
        assert_eq!(d.grace, Duration::from_secs(10));
        assert_eq!(d.max_header_bytes, 1 << 20);
        assert_eq!(d.max_concurrent_streams, 250);
        assert_eq!(lim(5, 0, 0).effective_idle(), Duration::from_secs(5));
    }

    #[test]
    fn labels_and_indexes_agree() {
        for (i, k) in LimitKind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
            assert!(!k.label().is_empty());
        }
    }

    #[test]
    fn head_then_busy_then_idle_then_head() {
        let l = lim(2, 10, 0);
        let t = Instant::now();
        let s = |x: u64| t + Duration::from_secs(x);
        let mut c = ClockState::new(t);
        assert_eq!(c.due(s(1), &l), Due::At(s(2)));
        assert_eq!(c.due(s(2), &l), Due::Expired(LimitKind::ReadTimeout));
        // Checks come at least every min(read, idle).
        assert_eq!(ClockState::new(t).due(t, &lim(10, 2, 0)), Due::At(s(2)));
        c.on_read(s(1), b"GET / HTTP");
        assert_eq!(c.head_bytes(), 10);
        // The head completes at 1 s: the read deadline counts from accept.
        assert_eq!(c.begin(s(1), &l), (t, false));
        assert_eq!(c.phase(), Phase::Busy { n: 1 });
        assert!(!c.wants_reads());
        // Busy: nothing expires, however long the backend takes.
        assert_eq!(c.due(s(100), &l), Due::At(s(102)));
        c.end(s(100));
        assert_eq!(c.phase(), Phase::Idle { since: s(100) });
        assert!(c.wants_reads());
        assert_eq!(c.due(s(105), &l), Due::At(s(107)));
        assert_eq!(c.due(s(109), &l), Due::At(s(110)));
        assert_eq!(c.due(s(110), &l), Due::Expired(LimitKind::IdleTimeout));
        // Next request's first bytes at 105: the read deadline counts from there.
        c.on_read(s(105), b"GET");
        assert_eq!(c.phase(), Phase::Head { since: s(105) });
        assert_eq!(c.due(s(106), &l), Due::At(s(107)));
        assert_eq!(c.begin(s(106), &l), (s(105), false));
    }

    #[test]
    fn write_deadline_applies_to_http1_requests_in_flight() {
        let l = lim(60, 180, 3);
        let t = Instant::now();
        let s = |x: u64| t + Duration::from_secs(x);
        let mut c = ClockState::new(t);
        c.begin(s(1), &l);
        assert_eq!(c.due(s(2), &l), Due::At(s(4)));
        assert_eq!(c.due(s(4), &l), Due::Expired(LimitKind::WriteTimeout));
        c.end(s(3));
        assert_eq!(c.due(s(4), &l), Due::At(s(7)));
        assert_eq!(c.due(s(182), &l), Due::At(s(183)));
        assert_eq!(c.due(s(183), &l), Due::Expired(LimitKind::IdleTimeout));
    }

    #[test]
    fn http2_counts_streams_and_ignores_idle_bytes() {
        let l = lim(2, 10, 3);
        let t = Instant::now();
        let s = |x: u64| t + Duration::from_secs(x);
        let mut c = ClockState::new(t);
        assert!(c.wants_reads());
        c.on_h2(s(0));
        assert!(c.is_h2());
        assert!(!c.wants_reads());
        assert_eq!(c.phase(), Phase::Idle { since: s(0) });
        // A PING while idle does not start a head phase.
        c.on_read(s(5), &[0u8; 17]);
        assert_eq!(c.phase(), Phase::Idle { since: s(0) });
        c.begin(s(6), &l);
        c.begin(s(7), &l);
        // No connection-wide write deadline on HTTP/2 (it is per stream).
        assert_eq!(c.due(s(20), &l), Due::At(s(22)));
        assert_eq!(c.due(s(99), &l), Due::At(s(101)));
        c.end(s(21));
        assert_eq!(c.phase(), Phase::Busy { n: 1 });
        c.end(s(22));
        assert_eq!(c.due(s(32), &l), Due::Expired(LimitKind::IdleTimeout));
    }

    #[test]
    fn content_length_with_transfer_encoding_is_spotted_across_reads() {
        let l = lim(60, 180, 0);
        let t = Instant::now();
        let mut c = ClockState::new(t);
        for piece in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nconTent-Len"[..],
            b"gth: 5\r\nTransfer-",
            b"Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            c.on_read(t, piece);
        }
        assert_eq!(c.begin(t, &l), (t, true));
        c.end(t);
        // The next request is judged on its own head.
        c.on_read(t, b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
        assert!(!c.begin(t, &l).1);
        c.end(t);
        // Names in the body, a longer name, or a value do not count.
        c.on_read(
            t,
            b"POST / HTTP/1.1\nContent-Length: 40\nX: Transfer-Encoding: chunked\nTransfer-Encoding-X: 1\n\nTransfer-Encoding: chunked\r\n",
        );
        assert!(!c.begin(t, &l).1);
    }

    #[test]
    fn zero_disables() {
        let l = lim(0, 0, 0);
        let t = Instant::now();
        let mut c = ClockState::new(t);
        assert_eq!(c.due(t, &l), Due::Never);
        c.begin(t, &l);
        assert_eq!(c.due(t, &l), Due::Never);
        c.end(t);
        assert_eq!(c.due(t + Duration::from_secs(99_999), &l), Due::Never);
    }
}
