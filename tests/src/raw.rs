//! # Raw client connections: bytes on a socket, for limits and malformed traffic
//!
//! * [`RawConn`]: a blocking `TcpStream` with a read deadline: write any bytes, read what the
//!   peer sends until it closes ([`RawConn::read_until_closed`]) or one response head arrives
//!   ([`RawConn::read_head`]); [`Outcome`] says whether the peer closed and what it sent.
//! * [`status_of`]: the status code of the first HTTP/1 response in some bytes.
//! * [`limit_hits`]: `switchyard_proxy_entrypoint_limit_hits_total{entrypoint,limit}` out of
//!   metrics text; [`error_hits`]: `switchyard_proxy_errors_total{kind}`.
//! * [`open_fds`]: the number of open file descriptors of a process (`/proc/PID/fd`).
//! * [`config_file_proxy`]: a `switchyard-proxy` serving a dynamic config file (no control
//!   plane), with extra flags.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::proxy::{Proxy, ProxySpec};

/// A raw client connection.
pub struct RawConn {
    /// The socket.
    pub stream: TcpStream,
    /// When it was connected.
    pub started: Instant,
}

/// How a read ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Everything the peer sent.
    pub bytes: Vec<u8>,
    /// The peer closed (EOF or reset) before the deadline.
    pub closed: bool,
    /// Time from connect to the end of the read.
    pub elapsed: Duration,
}

impl Outcome {
    /// The status of the first response, if one came.
    pub fn status(&self) -> Option<u16> {
        status_of(&self.bytes)
    }

    /// The bytes as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.text();
        let head: String = t.chars().take(300).collect();
        write!(
            f,
            "closed={} after {:.2?}, {} bytes: {head:?}",
            self.closed,
            self.elapsed,
            self.bytes.len()
        )
    }
}

impl RawConn {
    /// Connects to `addr`.
    pub fn connect(addr: &str) -> Result<RawConn, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(RawConn {
            stream,
            started: Instant::now(),
        })
    }

    /// Writes all of `b`.
    pub fn send(&mut self, b: &[u8]) -> Result<(), String> {
        self.stream.write_all(b).map_err(|e| format!("write: {e}"))
    }

    /// Reads until the peer closes or `timeout` passes.
    pub fn read_until_closed(&mut self, timeout: Duration) -> Outcome {
        self.read_while(timeout, |_| true)
    }

    /// Reads until one complete response head (`\r\n\r\n`) arrived, the peer closes, or
    /// `timeout` passes.
    pub fn read_head(&mut self, timeout: Duration) -> Outcome {
        self.read_while(timeout, |b| !b.windows(4).any(|w| w == b"\r\n\r\n"))
    }

    /// Reads while `more(bytes so far)` and the peer has not closed, up to `timeout`.
    pub fn read_while(&mut self, timeout: Duration, more: impl Fn(&[u8]) -> bool) -> Outcome {
        let deadline = Instant::now() + timeout;
        let mut bytes = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let mut closed = false;
        while more(&bytes) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let _ = self
                .stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => bytes.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        Outcome {
            bytes,
            closed,
            elapsed: self.started.elapsed(),
        }
    }
}

/// The status code of the first HTTP/1 response in `b`.
pub fn status_of(b: &[u8]) -> Option<u16> {
    let line = b.split(|c| *c == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

fn labeled(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.get(name.len()..).is_some_and(|r| r.starts_with('{')))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// `switchyard_proxy_entrypoint_limit_hits_total{entrypoint, limit}` (0 when absent).
pub fn limit_hits(metrics: &str, entrypoint: &str, limit: &str) -> f64 {
    labeled(
        metrics,
        "switchyard_proxy_entrypoint_limit_hits_total",
        &[("entrypoint", entrypoint), ("limit", limit)],
    )
}

/// `switchyard_proxy_errors_total{kind}` (0 when absent).
pub fn error_hits(metrics: &str, kind: &str) -> f64 {
    labeled(metrics, "switchyard_proxy_errors_total", &[("kind", kind)])
}

/// Sockets of process `pid` whose local port is `port` (an entry point: its listener and the
/// client connections it accepted), from `/proc/PID/fd` and `/proc/net/tcp{,6}`.
pub fn sockets_on_port(pid: u32, port: u16) -> Result<usize, String> {
    let mut inodes = std::collections::HashSet::new();
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| e.to_string())?;
    for e in dir.flatten() {
        if let Ok(t) = std::fs::read_link(e.path()) {
            if let Some(i) = t
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (f.get(1), f.get(9)) else {
                continue;
            };
            let p = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if p == Some(port) && inodes.contains(*inode) {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Open file descriptors of process `pid`.
pub fn open_fds(pid: u32) -> Result<usize, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .map_err(|e| format!("/proc/{pid}/fd: {e}"))
}

/// A proxy `id` serving the dynamic config `doc` from a file, without a control plane, with
/// entry points `entrypoints` and extra flags `args`; waits until it is ready. The file is
/// removed once the proxy has loaded it (it is read once, at start: do not restart this proxy).
pub fn config_file_proxy(id: &str, doc: &str, entrypoints: &[&str], args: &[&str]) -> Proxy {
    let dir = tempfile::Builder::new()
        .prefix(&format!("switchyard-e2e-config-{id}-"))
        .tempdir()
        .expect("temp dir for a config file");
    let path = dir.path().join("dynamic.yml");
    std::fs::write(&path, doc).expect("writing the config file");
    let mut flags = vec!["--config-file".to_string(), path.display().to_string()];
    flags.extend(args.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let p = Proxy::start(ProxySpec::new(id, "").entrypoints(entrypoints).args(&flags));
    p.wait_ready(crate::PROXY_SETTLE);
    drop(dir);
    p
}
