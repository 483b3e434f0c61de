//! `switchyard-proxy`: flags → [`ProxyOptions`], then [`switchyard_proxy::run`].
//!
//! The proxy follows the control plane's config stream (`--control`); for development it can
//! instead serve a Traefik v3 dynamic config file (`--config-file`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

mod obs_flags;
use ipnet::IpNet;
use switchyard_config::paths::PathOptions;
use switchyard_proxy::cache::Cache;
use switchyard_proxy::control::ControlOptions;
use switchyard_proxy::{ConfigSource, EntrypointLimits, HttpsRedirect, ProxyOptions};

/// Switchyard data plane: a Traefik v3 compatible reverse proxy fed by the control plane.
///
/// It holds the latest config it was sent in memory, keeps serving it when every control node is
/// gone, and fails over between control nodes (preferring its own region, then zone).
#[derive(Debug, Parser)]
#[command(name = "switchyard-proxy", version)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["control", "config_file"]))]
struct Args {
    /// Admin API URLs of control nodes, comma-separated (more are discovered from the cluster).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "URL,URL…",
        env = "SWITCHYARD_CONTROL"
    )]
    control: Vec<String>,
    /// Keep the last applied config here and serve it at start when no control node answers.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// A label sent to the control plane, KEY=VALUE (repeatable; `apply --wait-selector` matches it).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Plaintext, unauthenticated control connection (development only; logged as a warning).
    /// Without it the proxy connects over TLS (`--ca-cert`) and joins with `--join-token`.
    /// SWITCHYARD_INSECURE accepts 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "SWITCHYARD_INSECURE", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    insecure: bool,
    /// Join token (`switchyard token create --role proxy`): exchanged for a short-lived client
    /// certificate, renewed over the config stream.
    #[arg(long, env = "SWITCHYARD_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// A file holding the join token (e.g. a mounted Secret or a systemd credential); read once
    /// at start, surrounding whitespace ignored.
    #[arg(
        long,
        value_name = "FILE",
        env = "SWITCHYARD_JOIN_TOKEN_FILE",
        conflicts_with = "join_token"
    )]
    join_token_file: Option<PathBuf>,
    /// The cluster CA certificate (PEM; a control node's DATA_DIR/ca.pem).
    #[arg(long, value_name = "FILE", env = "SWITCHYARD_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Entry point NAME=HOST:PORT (repeatable).
    #[arg(long = "entrypoint", value_name = "NAME=HOST:PORT", required = true)]
    entrypoints: Vec<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9180")]
    admin_addr: String,
    /// Threads serving requests (0: one per CPU the process may use). With one, the proxy runs
    /// a single-threaded runtime (no work stealing, no cross-thread wake-ups).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "SWITCHYARD_WORKERS"
    )]
    workers: usize,
    /// Proxy identity (default: the host name).
    #[arg(long, env = "SWITCHYARD_PROXY_ID")]
    proxy_id: Option<String>,
    /// The proxy's region (zone-aware balancing).
    #[arg(long, default_value = "")]
    region: String,
    /// The proxy's zone (zone-aware balancing).
    #[arg(long, default_value = "")]
    zone: String,
    /// The proxy cluster this proxy serves: it receives only the routers scoped to it (a router's
    /// `clusters` field) or unscoped, and what they use. Its cache file is per cluster.
    #[arg(long, env = "SWITCHYARD_CLUSTER", default_value = "default")]
    cluster: String,
    /// Trusted sources of X-Forwarded-* headers: NAME=CIDR[,CIDR…] (repeatable).
    #[arg(long = "trusted-ips", value_name = "NAME=CIDR,…")]
    trusted_ips: Vec<String>,
    /// Redirect every plaintext request on entry point FROM to HTTPS on the port of entry point
    /// TO (Traefik's `entryPoints.FROM.http.redirections.entryPoint{to: TO, scheme: https}`),
    /// except ACME HTTP-01 challenges. `permanent` (default) answers 301 for GET and 308
    /// otherwise, `temporary` 302/307. Repeatable, e.g. `--redirect-to-https web=websecure`.
    #[arg(
        long = "redirect-to-https",
        value_name = "FROM=TO[,permanent|temporary]"
    )]
    redirect_to_https: Vec<String>,
    /// Traefik's `transport.respondingTimeouts.readTimeout`: the longest time to read a whole
    /// request, body included, counted from its first byte (0: none). A head not read in time
    /// closes the connection; a body still arriving gets 408 and the connection is closed.
    /// `[NAME=]DURATION`: without NAME for every entry point (repeatable).
    #[arg(long, value_name = "[NAME=]DURATION", default_value = "60s")]
    read_timeout: Vec<String>,
    /// `respondingTimeouts.writeTimeout`: the longest time from the end of a request's head to
    /// the end of its response (0: none). Over it the connection (HTTP/2: the stream) is
    /// closed. `[NAME=]DURATION` (repeatable).
    #[arg(long, value_name = "[NAME=]DURATION", default_value = "0s")]
    write_timeout: Vec<String>,
    /// `respondingTimeouts.idleTimeout`: close a keep-alive connection idle this long (HTTP/2:
    /// GOAWAY once no stream is open; 0: the read timeout). `[NAME=]DURATION` (repeatable).
    #[arg(long, value_name = "[NAME=]DURATION", default_value = "180s")]
    idle_timeout: Vec<String>,
    /// `lifeCycle.requestAcceptGraceTimeout`: on SIGTERM keep accepting requests this long
    /// while `/readyz` answers 503, so a load balancer in front can stop sending.
    /// `[NAME=]DURATION` (repeatable).
    #[arg(long, value_name = "[NAME=]DURATION", default_value = "0s")]
    request_accept_grace_timeout: Vec<String>,
    /// `lifeCycle.graceTimeOut`: then stop accepting and let in-flight requests finish this
    /// long before closing the connections. `[NAME=]DURATION` (repeatable; alias
    /// `--drain-timeout`).
    #[arg(
        long,
        alias = "drain-timeout",
        value_name = "[NAME=]DURATION",
        default_value = "10s"
    )]
    grace_timeout: Vec<String>,
    /// Largest request head (request line and header fields; HTTP/2: the HPACK-counted header
    /// list), like Traefik's `http.maxHeaderBytes`; over it: 431. `[NAME=]BYTES` (repeatable).
    #[arg(long, value_name = "[NAME=]BYTES", default_value = "1048576")]
    max_header_bytes: Vec<String>,
    /// Most header fields per request; over it: 431. `[NAME=]COUNT` (repeatable).
    #[arg(long, value_name = "[NAME=]COUNT", default_value = "100")]
    max_headers: Vec<String>,
    /// Most concurrent client connections per entry point (0: unlimited); a connection over
    /// it is closed as soon as it is accepted. `[NAME=]COUNT` (repeatable).
    #[arg(long, value_name = "[NAME=]COUNT", default_value = "0")]
    max_connections: Vec<String>,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` (Traefik's `http2.maxConcurrentStreams`).
    /// `[NAME=]COUNT` (repeatable).
    #[arg(long, value_name = "[NAME=]COUNT", default_value = "250")]
    max_concurrent_streams: Vec<String>,
    /// Traefik's `entryPoints.NAME.http.sanitizePath`: resolve `.` and `..` segments and merge
    /// duplicate slashes of the request path before routing and forwarding (default true, also
    /// for `%2e` forms). `NAME=false` turns it off for entry point NAME. Repeatable.
    #[arg(long = "sanitize-path", value_name = "NAME=true|false")]
    sanitize_path: Vec<String>,
    /// Traefik's `entryPoints.NAME.http.encodedCharacters`: which percent-encoded characters a
    /// routed request path may hold (a denied one is a 400). All allowed by default; options
    /// allowEncodedSlash, allowEncodedBackSlash, allowEncodedNullCharacter,
    /// allowEncodedSemicolon, allowEncodedPercent, allowEncodedQuestionMark, allowEncodedHash.
    /// Repeatable, e.g. `--encoded-characters web=allowEncodedSlash=false,allowEncodedHash=false`.
    #[arg(
        long = "encoded-characters",
        value_name = "NAME=OPTION=BOOL[,OPTION=BOOL…]"
    )]
    encoded_characters: Vec<String>,

    /// Serve this Traefik v3 dynamic config file (YAML or JSON) as version 1, without a control
    /// plane.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["control", "cache_dir"])]
    config_file: Option<PathBuf>,

    #[command(flatten)]
    obs: obs_flags::ObsFlags,
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "switchyard-proxy".to_string())
}

fn options(args: &Args) -> Result<ProxyOptions, String> {
    let mut entrypoints = Vec::new();
    for e in &args.entrypoints {
        let (name, addr) = e
            .split_once('=')
            .ok_or_else(|| format!("--entrypoint {e:?}: expected NAME=HOST:PORT"))?;
        entrypoints.push((name.to_string(), addr.to_string()));
    }
    let mut trusted_ips: HashMap<String, Vec<IpNet>> = HashMap::new();
    for t in &args.trusted_ips {
        let (name, list) = t
            .split_once('=')
            .ok_or_else(|| format!("--trusted-ips {t:?}: expected NAME=CIDR[,CIDR…]"))?;
        for c in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let net = c
                .parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("--trusted-ips: invalid IP or CIDR {c:?}"))?;
            trusted_ips.entry(name.to_string()).or_default().push(net);
        }
    }
    let mut https_redirects = Vec::new();
    for r in &args.redirect_to_https {
        let bad = || format!("--redirect-to-https {r:?}: expected FROM=TO[,permanent|temporary]");
        let (from, rest) = r.split_once('=').ok_or_else(bad)?;
        let (to, kind) = rest.split_once(',').unwrap_or((rest, "permanent"));
        let permanent = match kind {
            "permanent" => true,
            "temporary" => false,
            _ => return Err(bad()),
        };
        if from.is_empty() || to.is_empty() {
            return Err(bad());
        }
        https_redirects.push(HttpsRedirect {
            from: from.to_string(),
            to: to.to_string(),
            permanent,
        });
    }
    let names: Vec<&str> = entrypoints.iter().map(|(n, _)| n.as_str()).collect();
    let (limits, entrypoint_limits) = limits(args, &names)?;
    let mut paths: HashMap<String, PathOptions> = HashMap::new();
    for s in &args.sanitize_path {
        let bad = || format!("--sanitize-path {s:?}: expected NAME=true|false");
        let (name, v) = s.split_once('=').ok_or_else(bad)?;
        let v = switchyard_config::paths::parse_bool(v.trim()).ok_or_else(bad)?;
        paths.entry(name.to_string()).or_default().sanitize = v;
    }
    for e in &args.encoded_characters {
        let (name, list) = e.split_once('=').ok_or_else(|| {
            format!("--encoded-characters {e:?}: expected NAME=OPTION=BOOL[,OPTION=BOOL…]")
        })?;
        paths
            .entry(name.to_string())
            .or_default()
            .encoded
            .apply_list(list)
            .map_err(|m| format!("--encoded-characters {e:?}: {m}"))?;
    }

    Ok(ProxyOptions {
        proxy_id: args.proxy_id.clone().unwrap_or_else(hostname),
        region: args.region.clone(),
        zone: args.zone.clone(),
        entrypoints,
        trusted_ips,
        admin_addr: args.admin_addr.clone(),
        limits,
        entrypoint_limits,
        https_redirects,
        paths,
        access_log: args.obs.access_log()?,
        tracing: args.obs.tracing(|k| std::env::var(k).ok())?,
        otlp_metrics: args.obs.metrics.options(|k| std::env::var(k).ok())?,
    })
}

/// `[NAME=]VALUE`: (Some(NAME), VALUE) when NAME is one of the entry points.
fn scoped<'a>(v: &'a str, names: &[&str]) -> (Option<&'a str>, &'a str) {
    match v.split_once('=') {
        Some((n, rest)) if names.contains(&n) => (Some(n), rest),
        Some((n, _)) if !n.is_empty() && !n.contains(char::is_whitespace) => (Some(n), v),
        _ => (None, v),
    }
}

fn duration(flag: &str, v: &str) -> Result<Duration, String> {
    let ns = switchyard_config::parse_go_duration(v).map_err(|e| format!("--{flag} {v:?}: {e}"))?;
    u64::try_from(ns)
        .map(Duration::from_nanos)
        .map_err(|_| format!("--{flag} {v:?}: must not be negative"))
}

fn count(flag: &str, v: &str) -> Result<usize, String> {
    v.trim()
        .parse::<usize>()
        .map_err(|_| format!("--{flag} {v:?}: expected a non-negative integer"))
}

type Setter = fn(&mut EntrypointLimits, &str, &str) -> Result<(), String>;

/// The entry point limits: every flag applies in order, unscoped values to every entry point,
/// `NAME=VALUE` to entry point NAME only.
fn limits(
    args: &Args,
    names: &[&str],
) -> Result<(EntrypointLimits, HashMap<String, EntrypointLimits>), String> {
    let flags: [(&str, &Vec<String>, Setter); 9] = [
        ("read-timeout", &args.read_timeout, |l, f, v| {
            l.read_timeout = duration(f, v)?;
            Ok(())
        }),
        ("write-timeout", &args.write_timeout, |l, f, v| {
            l.write_timeout = duration(f, v)?;
            Ok(())
        }),
        ("idle-timeout", &args.idle_timeout, |l, f, v| {
            l.idle_timeout = duration(f, v)?;
            Ok(())
        }),
        (
            "request-accept-grace-timeout",
            &args.request_accept_grace_timeout,
            |l, f, v| {
                l.accept_grace = duration(f, v)?;
                Ok(())
            },
        ),
        ("grace-timeout", &args.grace_timeout, |l, f, v| {
            l.grace = duration(f, v)?;
            Ok(())
        }),
        ("max-header-bytes", &args.max_header_bytes, |l, f, v| {
            let n = count(f, v)?;
            if n < 1024 {
                return Err(format!("--{f} {v:?}: must be at least 1024"));
            }
            l.max_header_bytes = n;
            Ok(())
        }),
        ("max-headers", &args.max_headers, |l, f, v| {
            let n = count(f, v)?;
            if n == 0 {
                return Err(format!("--{f} {v:?}: must be at least 1"));
            }
            l.max_headers = n;
            Ok(())
        }),
        ("max-connections", &args.max_connections, |l, f, v| {
            let n = count(f, v)?;
            l.max_connections = (n > 0).then_some(n);
            Ok(())
        }),
        (
            "max-concurrent-streams",
            &args.max_concurrent_streams,
            |l, f, v| {
                let n = count(f, v)?;
                l.max_concurrent_streams = u32::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--{f} {v:?}: must be between 1 and 2^32-1"))?;
                Ok(())
            },
        ),
    ];
    let mut all = EntrypointLimits::default();
    let mut per: HashMap<String, EntrypointLimits> = HashMap::new();
    // Unscoped values first (the defaults of every entry point), then scoped ones.
    for (flag, values, set) in &flags {
        for v in values.iter() {
            if let (None, value) = scoped(v, names) {
                set(&mut all, flag, value)?;
            }
        }
    }
    for (flag, values, set) in &flags {
        for v in values.iter() {
            if let (Some(name), value) = scoped(v, names) {
                if !names.contains(&name) {
                    return Err(format!("--{flag} {v:?}: unknown entry point {name:?}"));
                }
                let l = per.entry(name.to_string()).or_insert_with(|| all.clone());
                set(l, flag, value)?;
            }
        }
    }
    Ok((all, per))
}

fn source(args: &Args, opts: &ProxyOptions) -> Result<ConfigSource, String> {
    if let Some(p) = &args.config_file {
        return Ok(ConfigSource::File(p.clone()));
    }
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("--label {l:?}: expected KEY=VALUE"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    if let Some(p) = switchyard_config::scope::cluster_name_problem(&args.cluster) {
        return Err(format!("--cluster: {p}"));
    }
    let cache = match &args.cache_dir {
        Some(d) => Some(Cache::open_for(d, &args.cluster).map_err(|e| e.to_string())?),
        None => None,
    };
    let tls = if args.insecure {
        None
    } else {
        if let Some(u) = args.control.iter().find(|u| u.starts_with("http://")) {
            return Err(format!(
                "--control {u}: plaintext; use https:// (the default without a scheme) or --insecure"
            ));
        }
        let token = match (&args.join_token, &args.join_token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => {
                let t = std::fs::read_to_string(f)
                    .map_err(|e| format!("--join-token-file {}: {e}", f.display()))?;
                if t.trim().is_empty() {
                    return Err(format!("--join-token-file {}: empty", f.display()));
                }
                Some(t.trim().to_string())
            }
            (None, None) => None,
        };
        let (Some(ca), Some(token)) = (&args.ca_cert, &token) else {
            return Err(
                "--control needs --ca-cert FILE and --join-token TOKEN or --join-token-file FILE (or --insecure for a plaintext development cluster)"
                    .into(),
            );
        };
        let pem =
            std::fs::read_to_string(ca).map_err(|e| format!("--ca-cert {}: {e}", ca.display()))?;
        Some(switchyard_proxy::control_tls::ControlTls::new(pem, token)?)
    };
    Ok(ConfigSource::Control(ControlOptions {
        endpoints: args.control.clone(),
        labels,
        cluster: args.cluster.clone(),
        entrypoints: opts.entrypoints.iter().map(|(n, _)| n.clone()).collect(),
        cache,
        tls,
    }))
}

#[cfg(test)]
#[path = "main_flags_tests.rs"]
mod flags_tests;

fn main() -> ExitCode {
    let args = Args::parse();
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if args.insecure && args.config_file.is_none() {
        tracing::warn!(
            "*** --insecure: plaintext, unauthenticated connection to the control plane. Development only. ***"
        );
    }
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let source = match source(&args, &opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime_builder(args.workers).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(switchyard_proxy::run(opts, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime for `--workers`: one thread per usable CPU by default; a single-threaded
/// runtime when that is one (measured: less CPU per request than a one-worker multi-threaded
/// runtime, see BENCHMARKS.md "Proxy throughput").
fn runtime_builder(workers: usize) -> tokio::runtime::Builder {
    let n = match workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    if n == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(n);
        b
    }
}

/// The entry point limit flags (`--read-timeout`, `--max-connections`, …).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod limit_flags {
    use super::*;

    fn parse(extra: &[&str]) -> Result<ProxyOptions, String> {
        let mut argv = vec![
            "switchyard-proxy",
            "--config-file",
            "x.yml",
            "--entrypoint",
            "web=127.0.0.1:0",
            "--entrypoint",
            "api=127.0.0.1:0",
        ];
        argv.extend_from_slice(extra);
        options(&Args::try_parse_from(argv).map_err(|e| e.to_string())?)
    }

    #[test]
    fn limits_default_to_traefiks_and_scope_by_entry_point() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.limits, EntrypointLimits::default());
        assert!(o.entrypoint_limits.is_empty());

        let o = parse(&[
            "--read-timeout",
            "api=5s",
            "--read-timeout",
            "30s",
            "--drain-timeout",
            "3s",
            "--max-connections",
            "web=10",
            "--max-header-bytes",
            "8192",
        ])
        .unwrap();
        // Unscoped values apply to every entry point, scoped ones on top.
        assert_eq!(o.limits.read_timeout, Duration::from_secs(30));
        assert_eq!(o.limits.grace, Duration::from_secs(3));
        assert_eq!(o.limits.max_header_bytes, 8192);
        let api = &o.entrypoint_limits["api"];
        assert_eq!(api.read_timeout, Duration::from_secs(5));
        assert_eq!(api.grace, Duration::from_secs(3));
        assert_eq!(api.max_connections, None);
        let web = &o.entrypoint_limits["web"];
        assert_eq!(web.read_timeout, Duration::from_secs(30));
        assert_eq!(web.max_connections, Some(10));
    }

    #[test]
    fn bad_limits_name_the_flag() {
        for (args, want) in [
            (&["--read-timeout", "soon"][..], "--read-timeout"),
            (
                &["--idle-timeout", "nope=1s"][..],
                "unknown entry point \"nope\"",
            ),
            (&["--max-headers", "0"][..], "--max-headers"),
            (&["--max-header-bytes", "web=10"][..], "at least 1024"),
            (
                &["--max-concurrent-streams", "0"][..],
                "--max-concurrent-streams",
            ),
            (&["--write-timeout=-1s"][..], "--write-timeout"),
        ] {
            let e = parse(args).expect_err(&format!("{args:?} accepted"));
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }
}
