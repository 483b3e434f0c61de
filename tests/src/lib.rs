//! # switchyard-e2e: the end-to-end harness
//!
//! The suites under `tests/tests/` start real `switchyard` processes on loopback and drive them
//! through the real admin CLI, exactly as an operator would. This library is the shared harness;
//! it knows nothing about any particular test and is meant to grow (issue 3 adds proxies).
//!
//! ## Binaries
//! The binaries are looked up in `$SWITCHYARD_BIN_DIR`, else in `<workspace>/target/debug`
//! (derived from this crate's `CARGO_MANIFEST_DIR`). They are *not* built by the tests: run
//! `cargo build --workspace --bins` first (the harness panics with that hint when one is missing).
//!
//! ## Processes
//! * [`ControlNode`] wraps one `switchyard server` process. It lives in its own temporary
//!   directory (`data/` is the data dir, `node.log` collects stdout and stderr, appended across
//!   restarts). [`ControlNode::kill`] is `kill -9`, [`ControlNode::stop`] is SIGTERM and wait,
//!   [`ControlNode::restart`] starts the same command line on the same data dir and ports.
//!   Dropping a node kills it. Nodes run with test-friendly Raft timers ([`TEST_TIMERS`]:
//!   heartbeat 100ms, election timeout 800ms–1600ms) unless the extra flags override them.
//! * [`Cluster`] is a set of nodes; [`Cluster::start`] founds an `n`-node cluster with a shared
//!   `--initial-cluster` and waits until it has a leader and every node is ready.
//!
//! Ports: [`free_addr`] picks a random port below the kernel's ephemeral range (so no outgoing
//! connection can take it before the child binds it), claims it across every test process with a
//! file under `$TMPDIR/switchyard-test-ports`, and checks it is bindable. Every test starts its own
//! cluster on its own ports and directories, so tests run in parallel.
//!
//! ## Talking to nodes
//! * [`cli`] / [`cli_stdin`] run the admin CLI (`switchyard --endpoints … ARGS`) with a timeout
//!   and return a [`CliOutput`] (exit status, stdout, stderr). Helpers on top: [`apply_yaml`],
//!   [`config_version`], [`get_config`], [`cluster_status_json`].
//! * [`http_get`] is a tiny HTTP/1.1 GET over `std::net::TcpStream` for `/healthz`, `/readyz`,
//!   `/metrics`; [`metric_value`] reads one sample out of Prometheus text.
//!
//! ## Waiting
//! Tests never sleep to synchronise. [`wait_until`] polls a closure (returning `bool`, `Option`
//! or `Result`) until it succeeds or a deadline passes, and then panics with what it was waiting
//! for and the last value it observed. [`assert_holds_for`] is its mirror for properties that
//! must stay true for a while (e.g. a removed node does not come back).
//!
//! ## Proxies and backends (issue 3)
//! * [`proxy`]: the [`Proxy`] process wrapper ([`ProxySpec`]), `get proxies`, `apply --wait`
//!   and `explain` helpers.
//! * [`backends`]: HTTP/h2c, WebSocket and gRPC backends served inside the test process on a
//!   shared tokio runtime ([`backends::runtime`], [`backends::block_on`]).
//! * [`client`]: HTTP/1.1 and HTTP/2 clients, streamed uploads/downloads, [`client::LoadLoop`].
//! * [`raw`]: raw client sockets, limit/error metric readers, open fd counts, and a proxy
//!   serving a config file without a control plane (issue 8: limits, malformed traffic).
//! * [`Cluster::start_each`] founds a cluster with per-node flags (e.g. `--region`/`--zone`).
//!
//! ## Debugging failures
//! When a test panics, every [`ControlNode`] that is dropped during the unwind prints the tail of
//! its log (`SWITCHYARD_E2E_LOG_LINES`, default 60) and keeps its directory on disk, printing the
//! path. `SWITCHYARD_E2E_RUST_LOG` sets `RUST_LOG` for the nodes (otherwise the product default
//! applies), and `SWITCHYARD_E2E_KEEP=1` keeps node directories even when tests pass.

#![allow(clippy::unwrap_used)]

pub mod acme;
pub mod backends;
pub mod browser;
pub mod chaos;
pub mod client;
pub mod deploy_files;
pub mod failover;
pub mod ocsp;
pub mod otlp;
pub mod proxy;
pub mod raw;

pub use proxy::{
    applied_version, apply_to, apply_wait, explain, get_proxies, host_route, proxy_entry,
    proxy_status, single_node_stack, wait_attached, wait_attached_to, zoned_cluster, Explained,
    Proxy, ProxySpec, PROXY_SETTLE,
};

use std::collections::HashSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

/// The directory holding the product binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SWITCHYARD_BIN_DIR") {
        return PathBuf::from(d);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("debug")
}

/// The path of a product binary, e.g. `binary("switchyard")`; panics with a hint when missing.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "binary {} not found: build the binaries first: cargo build --workspace --bins \
             (or point SWITCHYARD_BIN_DIR at them)",
            path.display()
        );
    }
    path
}

/// The `switchyard` binary (control node and admin CLI).
pub fn switchyard_bin() -> PathBuf {
    binary("switchyard")
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Where listen ports are picked: below the kernel's ephemeral range (32768–60999 on Linux), so an
/// outgoing connection of another test never takes a port between our pick and the child's bind.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_700;

/// The folder of cross-process port claims: one file per port, holding the claiming pid. Suites
/// run as separate processes (nextest runs each test in its own), so a claim must be visible to
/// all of them; a claim whose process is gone is taken over.
fn claims_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("switchyard-test-ports");
        std::fs::create_dir_all(&dir).expect("creating the port-claims dir");
        dir
    })
}

/// Claims `port` for this process across every test process on the machine.
fn claim(port: u16) -> bool {
    let path = claims_dir().join(port.to_string());
    let me = std::process::id().to_string();
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => return f.write_all(me.as_bytes()).is_ok(),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                let alive = !owner.is_empty() && Path::new(&format!("/proc/{owner}")).exists();
                if alive {
                    return false;
                }
                // A stale claim (its process is gone, or it is half-written and will be
                // retried by its owner): remove it and try once more.
                let _ = std::fs::remove_file(&path);
            }
            Err(_) => return false,
        }
    }
    false
}

/// A free loopback port for a process under test to listen on: picked outside the kernel's
/// ephemeral range, claimed across test processes, and checked bindable. Never the same port
/// twice on the machine while this process lives.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..10_000 {
        let port = rng.random_range(PORT_RANGE);
        let mut seen = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&port) || !claim(port) {
            continue;
        }
        seen.insert(port);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found after 10000 attempts");
}

/// Marks `port` as handed out (a port a test backend listens on), so [`free_port`] never
/// returns it, even while that backend is stopped.
pub fn reserve_port(port: u16) {
    handed_out()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(port);
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The three listen addresses of a control node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddrs {
    /// Admin API and config stream (gRPC).
    pub api: String,
    /// Raft between control nodes.
    pub peer: String,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http: String,
}

impl NodeAddrs {
    /// Three fresh ephemeral loopback addresses.
    pub fn allocate() -> Self {
        NodeAddrs {
            api: free_addr(),
            peer: free_addr(),
            http: free_addr(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// Something a [`wait_until`] closure can return: success with a value, or the observed state.
pub trait Check {
    /// What a successful check yields.
    type Output;
    /// `Ok` when the condition holds, else a description of what was observed.
    fn check(self) -> Result<Self::Output, String>;
}

impl Check for bool {
    type Output = ();
    fn check(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("condition was false".into())
        }
    }
}

impl<T> Check for Option<T> {
    type Output = T;
    fn check(self) -> Result<T, String> {
        self.ok_or_else(|| "None".to_string())
    }
}

impl<T, E: fmt::Display> Check for Result<T, E> {
    type Output = T;
    fn check(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Polls `f` until it succeeds or `timeout` passes; panics naming `what` and the last observed
/// value. `f` runs at least once, and once more at (or after) the deadline.
pub fn wait_until<C: Check>(timeout: Duration, what: &str, mut f: impl FnMut() -> C) -> C::Output {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut interval = Duration::from_millis(20);
    loop {
        match f().check() {
            Ok(v) => return v,
            Err(last) => {
                let now = Instant::now();
                if now >= deadline {
                    panic!(
                        "timed out after {:.1?} waiting for {what}; last observed: {last}",
                        now - start
                    );
                }
                thread::sleep(interval.min(deadline - now));
                interval = (interval * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// The opposite of [`wait_until`]: checks `f` repeatedly for `period` and panics (naming `what`
/// and the observed value) the first time it fails. For "X stays true" properties; `f` runs at
/// least twice (at the start and at the end of the period).
pub fn assert_holds_for<C: Check>(period: Duration, what: &str, mut f: impl FnMut() -> C) {
    let start = Instant::now();
    loop {
        if let Err(observed) = f().check() {
            panic!(
                "{what} stopped holding after {:.1?}; observed: {observed}",
                start.elapsed()
            );
        }
        if start.elapsed() >= period {
            return;
        }
        thread::sleep(Duration::from_millis(100).min(period.saturating_sub(start.elapsed())));
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------------------------

/// A minimal HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header lines as (lower-case name, value).
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked), lossily decoded as UTF-8.
    pub body: String,
}

/// `GET path` on `addr` (`host:port`) over HTTP/1.1 with `Connection: close`, 5 s timeouts.
pub fn http_get(addr: &str, path: &str) -> Result<HttpResponse, String> {
    let timeout = Duration::from_secs(5);
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("resolving {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolving {addr}: no address"))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: switchyard-e2e\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("writing to {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    parse_http_response(&raw).map_err(|e| format!("GET http://{addr}{path}: {e}"))
}

fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_str:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}

/// The value of the first sample of metric `name` (exact name, optionally followed by labels) in
/// Prometheus/OpenMetrics text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            return None;
        }
        let value_part = if rest.starts_with('{') {
            &rest[rest.find('}')? + 1..]
        } else {
            rest
        };
        value_part.split_whitespace().next()?.parse().ok()
    })
}

// ---------------------------------------------------------------------------------------------
// The admin CLI
// ---------------------------------------------------------------------------------------------

/// How long one CLI invocation may take before the harness kills it and fails the test.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// What a CLI invocation produced.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The command line, for messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time of the invocation.
    pub elapsed: Duration,
}

impl CliOutput {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics (with the whole output) unless the command succeeded; returns self.
    pub fn expect_success(self) -> Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panics (with the whole output) unless the command failed; returns self.
    pub fn expect_failure(self) -> Self {
        assert!(!self.success(), "command unexpectedly succeeded: {self}");
        self
    }

    /// Stdout parsed as JSON; panics with the output when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// The `config version N` line of stderr, if any.
    pub fn stderr_version(&self) -> Option<u64> {
        self.stderr.lines().find_map(|l| {
            l.trim()
                .strip_prefix("config version ")?
                .trim()
                .parse()
                .ok()
        })
    }
}

impl fmt::Display for CliOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.status,
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Harness marker in a node's extra flags: run it secure (TLS, tokens). That is the default; the
/// marker only documents intent. Removed before the flags reach the binary.
pub const SECURE: &str = "+secure";

/// Harness marker in a node's extra flags: run it `--insecure` (plaintext, no tokens), e.g. for a
/// test that talks raw plaintext gRPC. Removed before the flags reach the binary.
pub const INSECURE: &str = "+insecure";

/// What a CLI needs to talk to a secure cluster: the CA certificate file and a token.
#[derive(Debug, Clone)]
pub struct SecureCreds {
    /// `DATA_DIR/ca.pem` of a node.
    pub ca: PathBuf,
    /// The bootstrap admin token (`DATA_DIR/admin.token` of the node that formed the cluster).
    pub token: String,
    /// A proxy join token, created on first use and shared by the cluster's proxies.
    join: std::sync::Arc<OnceLock<String>>,
}

/// API address (`host:port`) → the credentials of the secure cluster it belongs to.
fn registry() -> &'static Mutex<std::collections::HashMap<String, SecureCreds>> {
    static R: OnceLock<Mutex<std::collections::HashMap<String, SecureCreds>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn strip_scheme(ep: &str) -> &str {
    let ep = ep.trim();
    ep.split_once("://").map_or(ep, |(_, rest)| rest)
}

/// Registers `creds` for a node's API address (the harness does it for every secure cluster).
pub fn register_creds(api: &str, creds: &SecureCreds) {
    let mut r = registry().lock().unwrap_or_else(|p| p.into_inner());
    r.insert(strip_scheme(api).to_string(), creds.clone());
}

/// The credentials registered for any of `endpoints` (comma-separated).
pub fn creds_for(endpoints: &str) -> Option<SecureCreds> {
    let r = registry().lock().unwrap_or_else(|p| p.into_inner());
    endpoints
        .split(',')
        .find_map(|e| r.get(strip_scheme(e)).cloned())
}

impl SecureCreds {
    /// The proxy join token of this cluster (created through `endpoints` on first use).
    pub fn join_token(&self, endpoints: &str) -> String {
        self.join
            .get_or_init(|| self.create_token(endpoints, "proxy"))
            .clone()
    }

    /// Runs `switchyard --endpoints E --ca-cert CA --token TOKEN ARGS…`.
    pub fn cli(&self, endpoints: &str, args: &[&str]) -> CliOutput {
        self.cli_token(endpoints, Some(&self.token), args, None)
    }

    /// Like [`SecureCreds::cli`] with standard input.
    pub fn cli_stdin(&self, endpoints: &str, args: &[&str], stdin: &str) -> CliOutput {
        self.cli_token(endpoints, Some(&self.token), args, Some(stdin))
    }

    /// Runs the CLI with the CA and `token` instead of the admin token (`None`: no token).
    pub fn cli_token(
        &self,
        endpoints: &str,
        token: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
    ) -> CliOutput {
        let ca = self.ca.display().to_string();
        let mut full: Vec<&str> = vec!["--endpoints", endpoints, "--ca-cert", &ca];
        if let Some(t) = token {
            full.extend(["--token", t]);
        }
        full.extend_from_slice(args);
        run_binary(&switchyard_bin(), &full, stdin, CLI_TIMEOUT)
    }

    /// Creates a token with `role` (admin, viewer, proxy) and returns its secret.
    pub fn create_token(&self, endpoints: &str, role: &str) -> String {
        let out = self
            .cli(endpoints, &["token", "create", "--role", role])
            .expect_success();
        out.stdout.trim().to_string()
    }
}

/// Runs `switchyard --endpoints ENDPOINTS ARGS…`.
pub fn cli(endpoints: &str, args: &[&str]) -> CliOutput {
    run_cli(endpoints, args, None)
}

/// Runs `switchyard --endpoints ENDPOINTS ARGS…` with `stdin` as standard input.
pub fn cli_stdin(endpoints: &str, args: &[&str], stdin: &str) -> CliOutput {
    run_cli(endpoints, args, Some(stdin))
}

/// Runs `switchyard --endpoints ENDPOINTS ARGS…` (with the harness cluster's credentials, as
/// [`cli`] does) on a pseudo-terminal, through util-linux `script`: what a user at a terminal
/// sees. The transcript (standard output and error, as the terminal got them, escape sequences
/// included) is [`CliOutput::stdout`]. Arguments must not contain a single quote. A token is read
/// by the shell from a file, so it never appears in the command line that failures print.
pub fn cli_in_terminal(endpoints: &str, args: &[&str]) -> CliOutput {
    let quote = |w: &str| {
        assert!(!w.contains('\''), "cli_in_terminal: {w:?} holds a quote");
        format!("'{w}'")
    };
    let mut line = vec![
        quote(&switchyard_bin().display().to_string()),
        "--endpoints".into(),
        quote(endpoints),
    ];
    let token_dir = tempfile::tempdir().expect("tempdir");
    if endpoints.starts_with("http://") {
        line.push("--insecure".into());
    } else if let Some(c) = creds_for(endpoints) {
        let token = token_dir.path().join("token");
        std::fs::write(&token, &c.token).expect("writing the token file");
        line.push("--ca-cert".into());
        line.push(quote(&c.ca.display().to_string()));
        line.push(format!(
            "--token \"$(cat {})\"",
            quote(&token.display().to_string())
        ));
    }
    line.extend(args.iter().map(|a| quote(a)));
    run_binary(
        Path::new("script"),
        &["-q", "-e", "-c", &line.join(" "), "/dev/null"],
        None,
        CLI_TIMEOUT,
    )
}

fn run_cli(endpoints: &str, args: &[&str], stdin: Option<&str>) -> CliOutput {
    let mut full: Vec<&str> = vec!["--endpoints", endpoints];
    // Plaintext endpoints are the harness's insecure clusters; https ones get their credentials
    // from the caller (see [`SecureCreds::cli`]).
    let creds = if endpoints.starts_with("http://") {
        full.push("--insecure");
        None
    } else {
        creds_for(endpoints)
    };
    let ca = creds.as_ref().map(|c| c.ca.display().to_string());
    if let (Some(c), Some(ca)) = (&creds, &ca) {
        full.extend(["--ca-cert", ca.as_str(), "--token", c.token.as_str()]);
    }
    full.extend_from_slice(args);
    run_binary(&switchyard_bin(), &full, stdin, CLI_TIMEOUT)
}

/// Runs a binary to completion with a timeout (killing it and panicking when it hangs).
pub fn run_binary(bin: &Path, args: &[&str], stdin: Option<&str>, timeout: Duration) -> CliOutput {
    let command = format!(
        "{} {}",
        bin.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        redacted(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>()).join(" ")
    );
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("SWITCHYARD_ENDPOINTS")
        .env_remove("SWITCHYARD_TOKEN")
        .env_remove("SWITCHYARD_CA_CERT")
        .env_remove("SWITCHYARD_INSECURE")
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning `{command}`: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_string();
        // A writer thread, so a child that does not read cannot deadlock us.
        thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let out_reader = reader_thread(child.stdout.take());
    let err_reader = reader_thread(child.stderr.take());
    let deadline = start + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out_reader.join().unwrap_or_default();
                let stderr = err_reader.join().unwrap_or_default();
                panic!(
                    "`{command}` did not finish within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for `{command}`: {e}"),
        }
    };
    CliOutput {
        command,
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

fn reader_thread<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The one-line error of a failed CLI call (its stderr, trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<CliError> for String {
    fn from(e: CliError) -> String {
        e.0
    }
}

impl CliError {
    fn from_output(o: &CliOutput) -> Self {
        let msg = o.stderr.trim();
        CliError(if msg.is_empty() {
            format!(
                "exit {} without a message; stdout: {}",
                o.status,
                o.stdout.trim()
            )
        } else {
            msg.to_string()
        })
    }

    /// Whether the message contains `s`.
    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }
}

/// `apply -f -` of `doc` (YAML or JSON); the committed config version, or the CLI's error line.
pub fn apply_yaml(endpoint: &str, doc: &str) -> Result<u64, CliError> {
    let out = cli_stdin(endpoint, &["-o", "json", "apply", "-f", "-"], doc);
    if !out.success() {
        return Err(CliError::from_output(&out));
    }
    let v = out.json();
    Ok(v["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("apply answered without a version: {out}")))
}

/// The config version `get config` reports (its stderr line); the error line on failure.
pub fn try_config_version(endpoint: &str) -> Result<u64, CliError> {
    get_config(endpoint).map(|(v, _)| v)
}

/// The config version `get config` reports; panics when the call fails.
pub fn config_version(endpoint: &str) -> u64 {
    try_config_version(endpoint).unwrap_or_else(|e| panic!("get config on {endpoint} failed: {e}"))
}

/// `get config -o json`: (version, document).
pub fn get_config(endpoint: &str) -> Result<(u64, Value), CliError> {
    let out = cli(endpoint, &["-o", "json", "get", "config"]);
    if !out.success() {
        return Err(CliError::from_output(&out));
    }
    let version = out
        .stderr_version()
        .unwrap_or_else(|| panic!("no `config version N` line on stderr: {out}"));
    Ok((version, out.json()))
}

/// `get KIND NAME -o json`: (version, the resource's JSON) or the error line.
pub fn get_resource(endpoint: &str, kind: &str, name: &str) -> Result<(u64, Value), CliError> {
    let out = cli(endpoint, &["-o", "json", "get", kind, name]);
    if !out.success() {
        return Err(CliError::from_output(&out));
    }
    let version = out
        .stderr_version()
        .unwrap_or_else(|| panic!("no `config version N` line on stderr: {out}"));
    let plural = match kind {
        "router" | "routers" => "routers",
        "service" | "services" => "services",
        "middleware" | "middlewares" => "middlewares",
        other => panic!("get_resource: unknown kind {other:?}"),
    };
    let doc = out.json();
    let item = doc["http"][plural][name].clone();
    if item.is_null() {
        panic!("`get {kind} {name}` succeeded but the document lacks it: {out}");
    }
    Ok((version, item))
}

/// `cluster status -o json`, or the error line.
pub fn try_cluster_status_json(endpoint: &str) -> Result<Value, CliError> {
    let out = cli(endpoint, &["-o", "json", "cluster", "status"]);
    if !out.success() {
        return Err(CliError::from_output(&out));
    }
    Ok(out.json())
}

/// `cluster status -o json`; panics when the call fails.
pub fn cluster_status_json(endpoint: &str) -> Value {
    try_cluster_status_json(endpoint)
        .unwrap_or_else(|e| panic!("cluster status on {endpoint} failed: {e}"))
}

/// The `nodes[]` entry of node `id` in a `cluster status -o json` document.
pub fn status_node(status: &Value, id: u64) -> Option<&Value> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"].as_u64() == Some(id))
}

// ---------------------------------------------------------------------------------------------
// Control nodes
// ---------------------------------------------------------------------------------------------

/// Raft timer flags every test node gets unless its extra flags set them: fast failover that
/// still holds on a loaded 2-core machine.
pub const TEST_TIMERS: [(&str, &str); 3] = [
    ("--heartbeat-interval", "100ms"),
    ("--election-timeout-min", "800ms"),
    ("--election-timeout-max", "1600ms"),
];

/// Harness marker in a node's extra flags: run it with the product's default Raft timers instead
/// of [`TEST_TIMERS`] (e.g. to measure failover as shipped). Removed before the flags reach the
/// binary.
pub const DEFAULT_TIMERS: &str = "+default-timers";

/// How long a node may take to start serving `/healthz`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`ControlNode::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `bin` with `args`, appending its stdout and stderr to `log` after a header line naming
/// `what`. `RUST_LOG` comes from `SWITCHYARD_E2E_RUST_LOG` (else the binary's default); the
/// variables in `env_remove` are cleared so the caller's environment cannot leak into a test.
/// Appends one line to a process log (best effort: a harness note must not fail a test).
pub(crate) fn append_log(log: &Path, line: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "{line}");
    }
}

/// SIGKILL and reap.
pub(crate) fn kill_child(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// SIGTERM, then wait up to [`STOP_TIMEOUT`] (SIGKILL after that), noting the outcome in `log`.
/// Returns the exit status of a graceful stop, or `None` when the process had to be killed.
pub(crate) fn stop_child(mut c: Child, log: &Path, who: &str) -> Option<ExitStatus> {
    let note = |what: &str| append_log(log, &format!("===== harness: {who} {what} ====="));
    let pid = c.id().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(term, Ok(s) if s.success()) {
        kill_child(c);
        note("could not send SIGTERM; killed with SIGKILL");
        return None;
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match c.try_wait() {
            Ok(Some(st)) => {
                note(&format!("stopped with SIGTERM: {st}"));
                return Some(st);
            }
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                kill_child(c);
                note(&format!(
                    "did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed with SIGKILL"
                ));
                eprintln!("warning: {who} did not exit within {STOP_TIMEOUT:?} of SIGTERM");
                return None;
            }
        }
    }
}

/// Environment a developer's shell may carry that would change what the binaries do.
const SECURITY_ENV: [&str; 4] = [
    "SWITCHYARD_TOKEN",
    "SWITCHYARD_CA_CERT",
    "SWITCHYARD_INSECURE",
    "SWITCHYARD_JOIN_TOKEN",
];

/// `args` with the values of `--token` and `--join-token` masked (for logs).
fn redacted(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut mask = false;
    for a in args {
        out.push(if mask {
            "<redacted>".to_string()
        } else {
            a.clone()
        });
        mask = a == "--token" || a == "--join-token";
    }
    out
}

pub(crate) fn spawn_logged(
    bin: &Path,
    args: &[String],
    env_remove: &[&str],
    log: &Path,
    what: &str,
) -> Child {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
    let mut header = file.try_clone().expect("cloning the log file handle");
    let _ = writeln!(
        header,
        "===== harness: {what}: {} {} =====",
        bin.display(),
        redacted(args).join(" ")
    );
    let mut cmd = Command::new(bin);
    for v in SECURITY_ENV {
        cmd.env_remove(v);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            file.try_clone().expect("cloning the log file handle"),
        ))
        .stderr(Stdio::from(file));
    for v in env_remove {
        cmd.env_remove(v);
    }
    match std::env::var("SWITCHYARD_E2E_RUST_LOG") {
        Ok(filter) => cmd.env("RUST_LOG", filter),
        Err(_) => cmd.env_remove("RUST_LOG"),
    };
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"))
}

/// One `switchyard server` process.
pub struct ControlNode {
    /// Node id.
    pub id: u64,
    /// Listen addresses.
    pub addrs: NodeAddrs,
    /// Secure (TLS and tokens; the default) rather than `--insecure` ([`INSECURE`]).
    secure: bool,
    args: Vec<String>,
    dir: Option<TempDir>,
    dir_path: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl fmt::Debug for ControlNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlNode")
            .field("id", &self.id)
            .field("addrs", &self.addrs)
            .field("dir", &self.dir_path)
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl ControlNode {
    /// Starts node `id` on `addrs` with extra flags (e.g. `--initial-cluster …`, `--join …`,
    /// `--snapshot-threshold 20`) and waits until it serves `/healthz`.
    pub fn start(id: u64, addrs: NodeAddrs, extra: &[String]) -> ControlNode {
        let mut n = Self::spawn(id, addrs, extra);
        n.wait_healthy();
        n
    }

    /// Like [`ControlNode::start`] without waiting for `/healthz` (to start several at once).
    pub fn spawn(id: u64, addrs: NodeAddrs, extra: &[String]) -> ControlNode {
        // Nodes run secure unless the flags carry the harness marker [`INSECURE`].
        let secure = !extra.iter().any(|a| a == INSECURE);
        let default_timers = extra.iter().any(|a| a == DEFAULT_TIMERS);
        let extra: Vec<String> = extra
            .iter()
            .filter(|a| *a != SECURE && *a != INSECURE && *a != DEFAULT_TIMERS)
            .cloned()
            .collect();
        let extra = &extra[..];
        let dir = tempfile::Builder::new()
            .prefix(&format!("switchyard-e2e-node{id}-"))
            .tempdir()
            .expect("creating a temp dir for a node");
        let dir_path = dir.path().to_path_buf();
        let data_dir = dir_path.join("data");
        let mut args: Vec<String> = vec![
            "server".into(),
            "--node-id".into(),
            id.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--api-addr".into(),
            addrs.api.clone(),
            "--peer-addr".into(),
            addrs.peer.clone(),
            "--http-addr".into(),
            addrs.http.clone(),
        ];
        for (flag, value) in TEST_TIMERS {
            let overridden = extra
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
            if !overridden && !default_timers {
                args.push(flag.into());
                args.push(value.into());
            }
        }
        if !secure {
            args.push("--insecure".into());
        }
        args.extend(extra.iter().cloned());
        let mut n = ControlNode {
            id,
            addrs,
            secure,
            args,
            dir: Some(dir),
            dir_path,
            child: None,
            starts: 0,
        };
        n.launch();
        n
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        self.starts += 1;
        self.child = Some(spawn_logged(
            &switchyard_bin(),
            &self.args,
            &["SWITCHYARD_ENDPOINTS"],
            &self.log_path(),
            &format!("start #{} of node {}", self.starts, self.id),
        ));
    }

    /// The node's log file (stdout and stderr of every start).
    pub fn log_path(&self) -> PathBuf {
        self.dir_path.join("node.log")
    }

    /// The node's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir_path.join("data")
    }

    /// The admin endpoint URL, `http://127.0.0.1:P`.
    pub fn endpoint(&self) -> String {
        if self.secure {
            format!("https://{}", self.addrs.api)
        } else {
            format!("http://{}", self.addrs.api)
        }
    }

    /// Whether this node runs secure (TLS and tokens; the harness default).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The full command line (after `switchyard`).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Whether the harness believes the process runs (it has not been killed or stopped). Panics
    /// with the log when the process exited on its own.
    pub fn is_running(&mut self) -> bool {
        let id = self.id;
        match self.child.as_mut().map(|c| c.try_wait()) {
            None => false,
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.child = None;
                panic!(
                    "node {id} exited unexpectedly with {status}\n{}",
                    self.log_tail(log_lines())
                );
            }
            Some(Err(e)) => panic!("waiting for node {id}: {e}"),
        }
    }

    /// The process id of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether a process is attached (without reaping it).
    pub fn has_process(&self) -> bool {
        self.child.is_some()
    }

    /// Waits until `/healthz` answers 200 (panics with the log when the process exits or the
    /// start timeout passes).
    pub fn wait_healthy(&mut self) {
        let start = Instant::now();
        loop {
            if !self.is_running() {
                panic!("node {} is not running", self.id);
            }
            match http_get(&self.addrs.http, "/healthz") {
                Ok(r) if r.status == 200 => return,
                Ok(r) if start.elapsed() > START_TIMEOUT => panic!(
                    "node {} /healthz answered {} {:?} after {START_TIMEOUT:?}\n{}",
                    self.id,
                    r.status,
                    r.body,
                    self.log_tail(log_lines())
                ),
                Err(e) if start.elapsed() > START_TIMEOUT => panic!(
                    "node {} did not serve /healthz within {START_TIMEOUT:?}: {e}\n{}",
                    self.id,
                    self.log_tail(log_lines())
                ),
                _ => thread::sleep(Duration::from_millis(25)),
            }
        }
    }

    /// `kill -9`: SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.take() {
            kill_child(c);
            self.note("killed with SIGKILL");
        }
    }

    /// SIGTERM, then wait up to [`STOP_TIMEOUT`] (SIGKILL after that). Returns the exit status
    /// of a graceful stop, or `None` when the node had to be killed (or was not running).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let c = self.child.take()?;
        stop_child(c, &self.log_path(), &format!("node {}", self.id))
    }

    /// Starts the same command line again (same id, ports and data dir) and waits for `/healthz`.
    /// Kills the old process first if it still runs.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_healthy();
    }

    /// Starts the node again without waiting for `/healthz`.
    pub fn respawn(&mut self) {
        self.kill();
        self.launch();
    }

    fn note(&self, what: &str) {
        append_log(
            &self.log_path(),
            &format!("===== harness: node {} {what} =====", self.id),
        );
    }

    /// GET on the node's HTTP port.
    pub fn http(&self, path: &str) -> Result<HttpResponse, String> {
        http_get(&self.addrs.http, path)
    }

    /// `/readyz` status code (or the connection error).
    pub fn readyz(&self) -> Result<u16, String> {
        self.http("/readyz").map(|r| r.status)
    }

    /// `/metrics` body (an error when not 200).
    pub fn metrics(&self) -> Result<String, String> {
        let r = self.http("/metrics")?;
        if r.status != 200 {
            return Err(format!("/metrics answered {}: {}", r.status, r.body));
        }
        Ok(r.body)
    }

    /// One metric from `/metrics`.
    pub fn metric(&self, name: &str) -> Result<f64, String> {
        let m = self.metrics()?;
        metric_value(&m, name).ok_or_else(|| format!("metric {name} missing from /metrics"))
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(n);
        format!(
            "----- node {} log ({}), last {} of {} lines -----\n{}\n----- end of node {} log -----",
            self.id,
            self.log_path().display(),
            lines.len() - from,
            lines.len(),
            lines[from..].join("\n"),
            self.id
        )
    }
}

pub(crate) fn log_lines() -> usize {
    std::env::var("SWITCHYARD_E2E_LOG_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

impl Drop for ControlNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let keep = thread::panicking() || std::env::var_os("SWITCHYARD_E2E_KEEP").is_some();
        if thread::panicking() {
            eprintln!("{}", self.log_tail(log_lines()));
        }
        if keep {
            if let Some(d) = self.dir.take() {
                let path = d.keep();
                eprintln!("node {} files kept in {}", self.id, path.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

/// One node's view of leadership (from `/metrics`).
#[derive(Debug, Clone)]
pub struct LeaderView {
    /// The node.
    pub id: u64,
    /// `switchyard_raft_term`.
    pub term: u64,
    /// `switchyard_raft_is_leader`.
    pub is_leader: bool,
    /// `switchyard_raft_leader_id` (0: none known).
    pub leader_id: u64,
    /// Why the view could not be read.
    pub error: Option<String>,
}

/// How long a fresh cluster may take to elect a leader and become ready.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// A set of control nodes.
pub struct Cluster {
    /// The nodes, in the order they were added.
    pub nodes: Vec<ControlNode>,
    /// Flags every node of this cluster was started with (besides id, dirs and addresses).
    pub common_args: Vec<String>,
    /// Credentials of a secure cluster (the default), once formed.
    secure_creds: Option<SecureCreds>,
}

impl Cluster {
    /// Founds an `n`-node cluster (ids 1..=n) with a shared `--initial-cluster`, and waits until
    /// it has a leader and every node is ready.
    pub fn start(n: u64) -> Cluster {
        Self::start_with(n, &[])
    }

    /// [`Cluster::start`] with extra flags for every node (e.g. `--snapshot-threshold 20`).
    pub fn start_with(n: u64, common: &[&str]) -> Cluster {
        let per_node: Vec<Vec<&str>> = (0..n).map(|_| Vec::new()).collect();
        Self::start_each(common, &per_node)
    }

    /// Founds a cluster of `per_node.len()` nodes (ids 1..=n): every node gets `common` plus its
    /// own flags (e.g. `["--region", "eu", "--zone", "eu-a"]`). Waits like [`Cluster::start`].
    pub fn start_each<S: AsRef<str>>(common: &[&str], per_node: &[Vec<S>]) -> Cluster {
        let addrs: Vec<NodeAddrs> = per_node.iter().map(|_| NodeAddrs::allocate()).collect();
        let peers: Vec<String> = addrs.iter().map(|a| a.peer.clone()).collect();
        Self::start_each_on(addrs, &peers, common, per_node)
    }

    /// [`Cluster::start_each`] on given listen addresses, with `initial_peers[i]` as node
    /// `i + 1`'s address in `--initial-cluster` (e.g. a relay in front of its peer port).
    pub fn start_each_on<S: AsRef<str>>(
        addrs: Vec<NodeAddrs>,
        initial_peers: &[String],
        common: &[&str],
        per_node: &[Vec<S>],
    ) -> Cluster {
        let n = per_node.len() as u64;
        assert!(n > 0, "a cluster needs at least one node");
        assert_eq!(addrs.len(), per_node.len(), "one address set per node");
        assert_eq!(initial_peers.len(), per_node.len(), "one peer per node");
        let initial = initial_peers
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let common_args: Vec<String> = common.iter().map(|s| s.to_string()).collect();
        let mut extra = common_args.clone();
        extra.push("--initial-cluster".into());
        extra.push(initial);
        let mut nodes: Vec<ControlNode> = addrs
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let mut args = extra.clone();
                args.extend(per_node[i].iter().map(|s| s.as_ref().to_string()));
                ControlNode::spawn(i as u64 + 1, a, &args)
            })
            .collect();
        for node in &mut nodes {
            node.wait_healthy();
        }
        let mut cluster = Cluster {
            nodes,
            common_args,
            secure_creds: None,
        };
        cluster.wait_for_leader(FORM_TIMEOUT);
        cluster.wait_ready(FORM_TIMEOUT);
        if cluster.nodes.iter().all(|n| n.secure) {
            let creds = cluster.creds();
            for n in &cluster.nodes {
                // The API serves once the node applied the CA (and wrote ca.pem).
                wait_until(FORM_TIMEOUT, &format!("node {} ca.pem", n.id), || {
                    if n.data_dir().join("ca.pem").exists() {
                        Ok(())
                    } else {
                        Err("missing".to_string())
                    }
                });
                register_creds(&n.addrs.api, &creds);
            }
            cluster.secure_creds = Some(creds);
            // Nodes register themselves (a Raft write each) once they hold the CA: let that
            // settle so a test starts from a quiet cluster, as with an insecure one.
            let ep = cluster.endpoints();
            let ids = cluster.ids();
            // Log (from index 0): membership, the leader's blank entry, the CA, one registration
            // per node.
            let settled = 2 + ids.len() as u64;
            wait_until(FORM_TIMEOUT, "every node registered", || {
                let st = try_cluster_status_json(&ep).map_err(|e| e.to_string())?;
                let all = ids.iter().all(|id| {
                    status_node(&st, *id)
                        .and_then(|n| n["appliedIndex"].as_u64())
                        .is_some_and(|a| a >= settled)
                });
                if all {
                    Ok(())
                } else {
                    Err(st.to_string())
                }
            });
            cluster.wait_ready(FORM_TIMEOUT);
        }
        cluster
    }

    /// The credentials of a secure cluster (the default): waits until the CA
    /// certificate and the bootstrap admin token are on disk (on the node that formed it).
    pub fn creds(&self) -> SecureCreds {
        if let Some(c) = &self.secure_creds {
            return c.clone();
        }
        wait_until(
            FORM_TIMEOUT,
            "ca.pem and admin.token in a node's data dir",
            || {
                for n in &self.nodes {
                    let dir = n.data_dir();
                    let (ca, token) = (dir.join("ca.pem"), dir.join("admin.token"));
                    if let (true, Ok(t)) = (ca.exists(), std::fs::read_to_string(&token)) {
                        if !t.trim().is_empty() {
                            return Ok(SecureCreds {
                                ca,
                                token: t.trim().to_string(),
                                join: Default::default(),
                            });
                        }
                    }
                }
                Err("not yet".to_string())
            },
        )
    }

    /// Node `id`; panics when there is none.
    pub fn node(&self, id: u64) -> &ControlNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    /// Node `id`, mutably; panics when there is none.
    pub fn node_mut(&mut self, id: u64) -> &mut ControlNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    /// Ids of all nodes.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Ids of the nodes with a process attached.
    pub fn running_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.has_process())
            .map(|n| n.id)
            .collect()
    }

    /// `http://api1,http://api2,…` of every node.
    pub fn endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Endpoints of the running nodes only.
    pub fn running_endpoints(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.has_process())
            .map(|n| n.endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Adds a started node (e.g. one started with `--join`).
    pub fn add(&mut self, node: ControlNode) {
        assert!(
            self.nodes.iter().all(|n| n.id != node.id),
            "node {} already in the cluster",
            node.id
        );
        if let Some(c) = &self.secure_creds {
            register_creds(&node.addrs.api, c);
        }
        self.nodes.push(node);
    }

    /// Starts node `id` with `--join ENDPOINT` (and the cluster's common flags) and adds it.
    pub fn start_joining(&mut self, id: u64, join_endpoint: &str) -> &mut ControlNode {
        let mut extra = self.common_args.clone();
        extra.push("--join".into());
        extra.push(join_endpoint.into());
        if let Some(c) = &self.secure_creds {
            extra.extend([
                "--ca-cert".into(),
                c.ca.display().to_string(),
                "--token".into(),
                c.token.clone(),
            ]);
        }
        let node = ControlNode::start(id, NodeAddrs::allocate(), &extra);
        self.add(node);
        self.node_mut(id)
    }

    /// Each running node's view of leadership, from its `/metrics`.
    pub fn leader_views(&self) -> Vec<LeaderView> {
        self.nodes
            .iter()
            .filter(|n| n.has_process())
            .map(|n| {
                let view = n.metrics().and_then(|m| {
                    let get = |name: &str| {
                        metric_value(&m, name).ok_or_else(|| format!("{name} missing"))
                    };
                    Ok((
                        get("switchyard_raft_term")? as u64,
                        get("switchyard_raft_is_leader")? >= 1.0,
                        get("switchyard_raft_leader_id")? as u64,
                    ))
                });
                match view {
                    Ok((term, is_leader, leader_id)) => LeaderView {
                        id: n.id,
                        term,
                        is_leader,
                        leader_id,
                        error: None,
                    },
                    Err(e) => LeaderView {
                        id: n.id,
                        term: 0,
                        is_leader: false,
                        leader_id: 0,
                        error: Some(e),
                    },
                }
            })
            .collect()
    }

    /// The leader among the running nodes: the node claiming leadership with the highest term,
    /// provided every running node at that term agrees; `None` while there is none.
    pub fn leader_id(&self) -> Option<u64> {
        self.leader_id_verbose().ok()
    }

    fn leader_id_verbose(&self) -> Result<u64, String> {
        let views = self.leader_views();
        let (leader, term) = views
            .iter()
            .filter(|v| v.error.is_none() && v.is_leader)
            .map(|v| (v.id, v.term))
            .max_by_key(|(_, term)| *term)
            .ok_or_else(|| format!("no running node claims leadership: {views:?}"))?;
        let disagree = views
            .iter()
            .any(|v| v.error.is_none() && v.term == term && v.leader_id != leader);
        if disagree {
            return Err(format!("nodes disagree on the leader: {views:?}"));
        }
        Ok(leader)
    }

    /// Waits until [`Cluster::leader_id`] finds a leader; returns its id.
    pub fn wait_for_leader(&self, timeout: Duration) -> u64 {
        wait_until(timeout, "a leader among the running nodes", || {
            self.leader_id_verbose()
        })
    }

    /// Waits until every running node answers `/readyz` with 200.
    pub fn wait_ready(&self, timeout: Duration) {
        for n in self.nodes.iter().filter(|n| n.has_process()) {
            wait_until(
                timeout,
                &format!("node {} /readyz = 200", n.id),
                || match n.http("/readyz") {
                    Ok(r) if r.status == 200 => Ok(()),
                    Ok(r) => Err(format!("{} {}", r.status, r.body.trim())),
                    Err(e) => Err(e),
                },
            );
        }
    }

    /// Waits until every running node's `get config` reports `version` (they apply
    /// asynchronously); panics naming the lagging node and what it reported.
    pub fn wait_version_everywhere(&self, version: u64, timeout: Duration) {
        for n in self.nodes.iter().filter(|n| n.has_process()) {
            let ep = n.endpoint();
            wait_until(
                timeout,
                &format!("node {} to serve config version {version}", n.id),
                || match try_config_version(&ep) {
                    Ok(v) if v == version => Ok(()),
                    Ok(v) => Err(format!("version {v}")),
                    Err(e) => Err(e.to_string()),
                },
            );
        }
    }

    /// The leader's config version (waits for a leader first).
    pub fn leader_version(&self, timeout: Duration) -> u64 {
        let leader = self.wait_for_leader(timeout);
        config_version(&self.node(leader).endpoint())
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.nodes.iter()).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Config documents
// ---------------------------------------------------------------------------------------------

/// A small valid document: router `NAME` (Host rule) on service `NAME-svc` with one server.
pub fn router_doc(name: &str) -> String {
    format!(
        r#"http:
  routers:
    {name}:
      rule: "Host(`{name}.example`)"
      service: {name}-svc
  services:
    {name}-svc:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:8080"
"#
    )
}

/// Whether a `get config -o json` document has a resource of `plural` kind named `name`.
pub fn doc_has(doc: &Value, plural: &str, name: &str) -> bool {
    doc["http"][plural].get(name).is_some_and(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values() {
        let text = "# HELP x\nswitchyard_raft_term 3\nswitchyard_raft_term_total 9\n\
                    switchyard_api_requests_total{method=\"Apply\",code=\"Ok\"} 2\n# EOF\n";
        assert_eq!(metric_value(text, "switchyard_raft_term"), Some(3.0));
        assert_eq!(
            metric_value(text, "switchyard_api_requests_total"),
            Some(2.0)
        );
        assert_eq!(metric_value(text, "switchyard_raft"), None);
    }

    #[test]
    fn http_parsing() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse_http_response(raw).expect("parses");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "abcde");
        let raw = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 3\r\n\r\nno\n";
        let r = parse_http_response(raw).expect("parses");
        assert_eq!((r.status, r.body.as_str()), (503, "no\n"));
    }

    #[test]
    fn ports_are_unique() {
        let a: HashSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(a.len(), 50);
    }
}
