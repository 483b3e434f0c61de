//! # Proxies: the `switchyard-proxy` process, and the CLI commands about proxies
//!
//! * [`Proxy`] wraps one `switchyard-proxy` process started from a [`ProxySpec`]: its own
//!   temporary directory (`proxy.log` collects stdout and stderr across restarts, `cache/` is
//!   the `--cache-dir` when enabled), ephemeral loopback ports for every entry point and the
//!   admin endpoint, kept across restarts. [`Proxy::kill`] is `kill -9`, [`Proxy::stop`]
//!   SIGTERM and wait, [`Proxy::restart`] the same command line again. When a test panics, the
//!   proxy prints the tail of its log and keeps its directory, like a control node.
//! * Admin endpoint: [`Proxy::readyz`], [`Proxy::wait_ready`], [`Proxy::metrics`],
//!   [`Proxy::config_version`] (`switchyard_proxy_config_version`), [`Proxy::wait_version`].
//! * CLI: [`get_proxies`] (`get proxies -o json`), [`proxy_status`], [`wait_attached`],
//!   [`apply_wait`] (`apply -f - --wait…`), [`explain`].

use std::fmt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::{
    binary, cli, cli_stdin, free_addr, http_get, log_lines, metric_value, wait_until, CliError,
    CliOutput, HttpResponse, START_TIMEOUT,
};

/// The `switchyard-proxy` binary.
pub fn proxy_bin() -> PathBuf {
    binary("switchyard-proxy")
}

/// How to start a proxy.
#[derive(Debug, Clone)]
pub struct ProxySpec {
    /// `--proxy-id`.
    pub id: String,
    /// `--control` (comma-separated URLs); empty: not passed.
    pub control: String,
    /// `--region` (empty: not passed).
    pub region: String,
    /// `--zone` (empty: not passed).
    pub zone: String,
    /// `--label K=V`.
    pub labels: Vec<(String, String)>,
    /// Entry point names; each gets an ephemeral loopback port.
    pub entrypoints: Vec<String>,
    /// Whether to pass `--cache-dir` (a `cache/` directory kept across restarts).
    pub cache: bool,
    /// Any other flags.
    pub extra: Vec<String>,
    /// Entry points bound to a given address instead of an ephemeral `127.0.0.1` port.
    pub fixed_addrs: Vec<(String, String)>,
}

impl ProxySpec {
    /// Proxy `id` fed by `control` (comma-separated URLs), one entry point `web`.
    pub fn new(id: &str, control: &str) -> ProxySpec {
        ProxySpec {
            id: id.into(),
            control: control.into(),
            region: String::new(),
            zone: String::new(),
            labels: Vec::new(),
            entrypoints: vec!["web".into()],
            cache: false,
            extra: Vec::new(),
            fixed_addrs: Vec::new(),
        }
    }

    /// Sets region and zone.
    pub fn zone(mut self, region: &str, zone: &str) -> ProxySpec {
        self.region = region.into();
        self.zone = zone.into();
        self
    }

    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> ProxySpec {
        self.labels.push((k.into(), v.into()));
        self
    }

    /// Replaces the entry point names.
    pub fn entrypoints(mut self, names: &[&str]) -> ProxySpec {
        self.entrypoints = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Binds entry point `name` (added when missing) to `addr`, e.g. `127.0.0.3:PORT`.
    pub fn entrypoint_at(mut self, name: &str, addr: &str) -> ProxySpec {
        if !self.entrypoints.iter().any(|n| n == name) {
            self.entrypoints.push(name.into());
        }
        self.fixed_addrs.push((name.into(), addr.into()));
        self
    }

    /// Enables `--cache-dir`.
    pub fn with_cache(mut self) -> ProxySpec {
        self.cache = true;
        self
    }

    /// Adds raw flags.
    pub fn args(mut self, a: &[&str]) -> ProxySpec {
        self.extra.extend(a.iter().map(|s| s.to_string()));
        self
    }
}

/// One `switchyard-proxy` process.
pub struct Proxy {
    /// `--proxy-id`.
    pub id: String,
    /// (name, `127.0.0.1:PORT`) of every entry point.
    pub entrypoints: Vec<(String, String)>,
    /// The admin address.
    pub admin: String,
    args: Vec<String>,
    dir: Option<TempDir>,
    dir_path: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("id", &self.id)
            .field("entrypoints", &self.entrypoints)
            .field("admin", &self.admin)
            .field("dir", &self.dir_path)
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl Proxy {
    /// Starts a proxy and waits until its admin endpoint answers `/healthz`.
    pub fn start(spec: ProxySpec) -> Proxy {
        let mut p = Self::spawn(spec);
        p.wait_healthy();
        p
    }

    /// Starts a proxy without waiting.
    pub fn spawn(spec: ProxySpec) -> Proxy {
        let dir = tempfile::Builder::new()
            .prefix(&format!("switchyard-e2e-proxy-{}-", spec.id))
            .tempdir()
            .expect("creating a temp dir for a proxy");
        let dir_path = dir.path().to_path_buf();
        let entrypoints: Vec<(String, String)> = spec
            .entrypoints
            .iter()
            .map(|n| {
                let fixed = spec.fixed_addrs.iter().find(|(f, _)| f == n);
                (
                    n.clone(),
                    fixed.map(|(_, a)| a.clone()).unwrap_or_else(free_addr),
                )
            })
            .collect();
        let admin = free_addr();
        let mut args: Vec<String> = Vec::new();
        if !spec.control.is_empty() {
            args.extend(["--control".into(), spec.control.clone()]);
            // Plaintext control URLs are the harness's insecure clusters (`--insecure`); secure
            // ones get `--ca-cert` and the cluster's join token unless the spec brings its own.
            if spec.control.starts_with("http://") {
                args.push("--insecure".into());
            } else if !spec.extra.iter().any(|a| a == "--join-token") {
                // A secure cluster of the harness: its CA and its shared join token.
                if let Some(c) = crate::creds_for(&spec.control) {
                    args.extend([
                        "--ca-cert".into(),
                        c.ca.display().to_string(),
                        "--join-token".into(),
                        c.join_token(&spec.control),
                    ]);
                }
            }
        }
        for (n, a) in &entrypoints {
            args.extend(["--entrypoint".into(), format!("{n}={a}")]);
        }
        args.extend(["--admin-addr".into(), admin.clone()]);
        args.extend(["--proxy-id".into(), spec.id.clone()]);
        if !spec.region.is_empty() {
            args.extend(["--region".into(), spec.region.clone()]);
        }
        if !spec.zone.is_empty() {
            args.extend(["--zone".into(), spec.zone.clone()]);
        }
        for (k, v) in &spec.labels {
            args.extend(["--label".into(), format!("{k}={v}")]);
        }
        if spec.cache {
            args.extend([
                "--cache-dir".into(),
                dir_path.join("cache").display().to_string(),
            ]);
        }
        args.extend(spec.extra.iter().cloned());
        let mut p = Proxy {
            id: spec.id,
            entrypoints,
            admin,
            args,
            dir: Some(dir),
            dir_path,
            child: None,
            starts: 0,
        };
        p.launch();
        p
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "proxy {} is already running", self.id);
        self.starts += 1;
        self.child = Some(crate::spawn_logged(
            &proxy_bin(),
            &self.args,
            &["SWITCHYARD_PROXY_ID", "SWITCHYARD_CONTROL"],
            &self.log_path(),
            &format!("start #{} of proxy {}", self.starts, self.id),
        ));
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir_path.join("proxy.log")
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The `--cache-dir` (whether or not it was enabled).
    pub fn cache_dir(&self) -> PathBuf {
        self.dir_path.join("cache")
    }

    /// The address of entry point `name`; panics when there is none.
    pub fn entry(&self, name: &str) -> &str {
        self.entrypoints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.as_str())
            .unwrap_or_else(|| panic!("proxy {} has no entry point {name:?}", self.id))
    }

    /// The address of the first entry point.
    pub fn web(&self) -> &str {
        &self.entrypoints[0].1
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Peak resident set size (`VmHWM` in `/proc/PID/status`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status.lines().find_map(|l| {
            l.strip_prefix("VmHWM:")?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
    }

    /// Whether a process is attached.
    pub fn has_process(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process runs; panics with the log when it exited on its own.
    pub fn is_running(&mut self) -> bool {
        let id = self.id.clone();
        match self.child.as_mut().map(|c| c.try_wait()) {
            None => false,
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.child = None;
                panic!(
                    "proxy {id} exited unexpectedly with {status}\n{}",
                    self.log_tail(log_lines())
                );
            }
            Some(Err(e)) => panic!("waiting for proxy {id}: {e}"),
        }
    }

    /// Waits until `/healthz` answers 200.
    pub fn wait_healthy(&mut self) {
        let start = Instant::now();
        loop {
            if !self.is_running() {
                panic!("proxy {} is not running", self.id);
            }
            match http_get(&self.admin, "/healthz") {
                Ok(r) if r.status == 200 => return,
                Ok(r) if start.elapsed() > START_TIMEOUT => panic!(
                    "proxy {} /healthz answered {} {:?} after {START_TIMEOUT:?}\n{}",
                    self.id,
                    r.status,
                    r.body,
                    self.log_tail(log_lines())
                ),
                Err(e) if start.elapsed() > START_TIMEOUT => panic!(
                    "proxy {} did not serve /healthz within {START_TIMEOUT:?}: {e}\n{}",
                    self.id,
                    self.log_tail(log_lines())
                ),
                _ => thread::sleep(Duration::from_millis(25)),
            }
        }
    }

    /// GET on the admin endpoint.
    pub fn http(&self, path: &str) -> Result<HttpResponse, String> {
        http_get(&self.admin, path)
    }

    /// `/readyz`: (status, body).
    pub fn readyz(&self) -> Result<(u16, String), String> {
        self.http("/readyz").map(|r| (r.status, r.body))
    }

    /// Waits until `/readyz` answers 200; returns its body.
    pub fn wait_ready(&self, timeout: Duration) -> String {
        wait_until(
            timeout,
            &format!("proxy {} /readyz = 200", self.id),
            || match self.readyz() {
                Ok((200, body)) => Ok(body),
                Ok((s, body)) => Err(format!("{s} {}", body.trim())),
                Err(e) => Err(e),
            },
        )
    }

    /// `/metrics` body.
    pub fn metrics(&self) -> Result<String, String> {
        let r = self.http("/metrics")?;
        if r.status != 200 {
            return Err(format!("/metrics answered {}: {}", r.status, r.body));
        }
        Ok(r.body)
    }

    /// One metric sample (exact name, first series).
    pub fn metric(&self, name: &str) -> Result<f64, String> {
        let m = self.metrics()?;
        metric_value(&m, name).ok_or_else(|| format!("metric {name} missing from /metrics"))
    }

    /// `switchyard_proxy_config_version`.
    pub fn config_version(&self) -> Result<u64, String> {
        self.metric("switchyard_proxy_config_version")
            .map(|v| v as u64)
    }

    /// Waits until the proxy serves config version `v` or later; returns the version.
    pub fn wait_version(&self, v: u64, timeout: Duration) -> u64 {
        wait_until(
            timeout,
            &format!("proxy {} to serve config version >= {v}", self.id),
            || match self.config_version() {
                Ok(have) if have >= v => Ok(have),
                Ok(have) => Err(format!("version {have}")),
                Err(e) => Err(e),
            },
        )
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.take() {
            crate::kill_child(c);
            self.note("killed with SIGKILL");
        }
    }

    /// SIGTERM, then wait up to [`crate::STOP_TIMEOUT`] (SIGKILL after that).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let c = self.child.take()?;
        crate::stop_child(c, &self.log_path(), &format!("proxy {}", self.id))
    }

    /// Kills the process and starts the same command line (same ports, same cache dir), then
    /// waits for `/healthz`.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_healthy();
    }

    fn note(&self, what: &str) {
        crate::append_log(
            &self.log_path(),
            &format!("===== harness: proxy {} {what} =====", self.id),
        );
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(n);
        format!(
            "----- proxy {} log ({}), last {} of {} lines -----\n{}\n----- end of proxy {} log -----",
            self.id,
            self.log_path().display(),
            lines.len() - from,
            lines.len(),
            lines[from..].join("\n"),
            self.id
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let panicking = thread::panicking();
        if panicking {
            eprintln!("{}", self.log_tail(log_lines()));
        }
        if panicking || std::env::var_os("SWITCHYARD_E2E_KEEP").is_some() {
            if let Some(d) = self.dir.take() {
                let path = d.keep();
                eprintln!("proxy {} files kept in {}", self.id, path.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CLI: proxies, apply --wait, explain
// ---------------------------------------------------------------------------------------------

/// `get proxies -o json` through `endpoints`.
pub fn get_proxies(endpoints: &str) -> Result<Value, CliError> {
    let out = cli(endpoints, &["-o", "json", "get", "proxies"]);
    if !out.success() {
        return Err(CliError(format!(
            "get proxies failed: {}",
            out.stderr.trim()
        )));
    }
    Ok(out.json())
}

/// The `proxies[]` entry with `id` in a `get proxies -o json` document.
pub fn proxy_entry<'a>(doc: &'a Value, id: &str) -> Option<&'a Value> {
    doc["proxies"]
        .as_array()?
        .iter()
        .find(|p| p["id"].as_str() == Some(id))
}

/// The `get proxies` entry of proxy `id`, or why there is none.
pub fn proxy_status(endpoints: &str, id: &str) -> Result<Value, String> {
    let doc = get_proxies(endpoints).map_err(|e| e.to_string())?;
    proxy_entry(&doc, id)
        .cloned()
        .ok_or_else(|| format!("proxy {id} not listed: {doc}"))
}

/// Waits until `get proxies` lists proxy `id` as attached; returns its entry.
pub fn wait_attached(endpoints: &str, id: &str, timeout: Duration) -> Value {
    wait_until(
        timeout,
        &format!("proxy {id} listed by get proxies"),
        || proxy_status(endpoints, id),
    )
}

/// Waits until control node `node` (asked at `node_endpoint`, so its own registry answers and no
/// peer round trip can hide the proxy) lists proxy `id` attached to it; returns the entry. A
/// proxy's `/healthz` answers before its config stream is attached: tests that depend on where a
/// proxy is attached wait on this, not on the proxy's start.
pub fn wait_attached_to(node_endpoint: &str, id: &str, node: u64, timeout: Duration) -> Value {
    wait_until(
        timeout,
        &format!("proxy {id} attached to control node {node}"),
        || {
            let e = proxy_status(node_endpoint, id)?;
            if e["node"].as_u64() == Some(node) {
                Ok(e)
            } else {
                Err(format!("attached elsewhere: {e}"))
            }
        },
    )
}

/// `apply -f - --wait=WAIT [--wait-selector SELECTOR]` of `doc` through `endpoint` (table
/// output: `applied: config version N`, then `K proxies at config version N or later`).
pub fn apply_wait(endpoint: &str, doc: &str, wait: &str, selector: Option<&str>) -> CliOutput {
    let wait_flag = format!("--wait={wait}");
    let mut args = vec!["apply", "-f", "-", wait_flag.as_str()];
    if let Some(s) = selector {
        args.extend(["--wait-selector", s]);
    }
    cli_stdin(endpoint, &args, doc)
}

/// The committed version a table-format `apply` printed (`applied: config version N` or
/// `unchanged: config version N`).
pub fn applied_version(out: &CliOutput) -> Option<u64> {
    out.stdout.lines().find_map(|l| {
        let l = l.trim();
        let rest = l
            .strip_prefix("applied: config version ")
            .or_else(|| l.strip_prefix("unchanged: config version "))?;
        rest.trim().parse().ok()
    })
}

/// What `explain -o json` answered.
#[derive(Debug, Clone)]
pub struct Explained {
    /// The CLI output.
    pub out: CliOutput,
    /// Exit code.
    pub code: Option<i32>,
    /// Stdout as JSON (`Null` when it is not JSON).
    pub json: Value,
}

impl Explained {
    /// The winning router's name (without an `@provider` suffix), `None` on a 404.
    pub fn winner(&self) -> Option<String> {
        self.json["winner"]["name"]
            .as_str()
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
    }
}

/// `explain -o json METHOD URL -H … [--client-ip IP] [--entrypoint NAME]` through `endpoint`.
pub fn explain(
    endpoint: &str,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    client_ip: Option<&str>,
    entrypoint: Option<&str>,
) -> Explained {
    let hs: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let mut args: Vec<&str> = vec!["-o", "json", "explain", method, url];
    for h in &hs {
        args.extend(["-H", h.as_str()]);
    }
    if let Some(ip) = client_ip {
        args.extend(["--client-ip", ip]);
    }
    if let Some(ep) = entrypoint {
        args.extend(["--entrypoint", ep]);
    }
    let out = cli(endpoint, &args);
    let json = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    Explained {
        code: out.status.code(),
        out,
        json,
    }
}

/// How long config propagation, attachment and similar may take on a loaded 2-core machine.
pub const PROXY_SETTLE: Duration = Duration::from_secs(30);

/// Applies `doc` through `endpoints` (plain `apply`, no `--wait`) and waits until `proxy`
/// serves that version (its `switchyard_proxy_config_version`); returns the version.
pub fn apply_to(endpoints: &str, proxy: &Proxy, doc: &str) -> u64 {
    let v = crate::apply_yaml(endpoints, doc).unwrap_or_else(|e| panic!("apply failed: {e}"));
    proxy.wait_version(v, PROXY_SETTLE);
    v
}

/// A one-node control plane and one proxy (`p1`, entry point `web`, built by `spec` from the
/// default spec) serving `doc`; waits until the proxy is ready with it.
pub fn single_node_stack(
    doc: &str,
    spec: impl FnOnce(ProxySpec) -> ProxySpec,
) -> (crate::Cluster, Proxy) {
    let c = crate::Cluster::start(1);
    let p = Proxy::start(spec(ProxySpec::new("p1", &c.endpoints())));
    apply_to(&c.endpoints(), &p, doc);
    p.wait_ready(PROXY_SETTLE);
    (c, p)
}

/// A 3-node cluster spread over two regions: node 1 in r1/a, node 2 in r1/b, node 3 in r2/c.
pub fn zoned_cluster() -> crate::Cluster {
    crate::Cluster::start_each(
        &[],
        &[
            vec!["--region", "r1", "--zone", "a"],
            vec!["--region", "r1", "--zone", "b"],
            vec!["--region", "r2", "--zone", "c"],
        ],
    )
}

/// A router `name` for ``Host(`name.test`)`` to service `name-svc`, load-balancing to `backend`.
pub fn host_route(name: &str, backend: &crate::backends::HttpBackend) -> String {
    format!(
        r#"http:
  routers:
    {name}:
      rule: "Host(`{name}.test`)"
      service: {name}-svc
  services:
    {name}-svc:
      loadBalancer:
        servers:
          - url: "{}"
"#,
        backend.url()
    )
}
