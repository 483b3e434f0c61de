//! `switchyard-proxy`: flags → [`ProxyOptions`], then [`switchyard_proxy::run`].
//!
//! The proxy follows the control plane's config stream (`--control`); for development it can
//! instead serve a Traefik v3 dynamic config file (`--config-file`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use switchyard_config::paths::PathOptions;
use switchyard_proxy::cache::Cache;
use switchyard_proxy::control::ControlOptions;
use switchyard_proxy::{ConfigSource, HttpsRedirect, ProxyOptions};

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
    #[arg(long, env = "SWITCHYARD_INSECURE")]
    insecure: bool,
    /// Join token (`switchyard token create --role proxy`): exchanged for a short-lived client
    /// certificate, renewed over the config stream.
    #[arg(long, env = "SWITCHYARD_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// The cluster CA certificate (PEM; a control node's DATA_DIR/ca.pem).
    #[arg(long, value_name = "FILE", env = "SWITCHYARD_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Entry point NAME=HOST:PORT (repeatable).
    #[arg(long = "entrypoint", value_name = "NAME=HOST:PORT", required = true)]
    entrypoints: Vec<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9180")]
    admin_addr: String,
    /// Proxy identity (default: the host name).
    #[arg(long, env = "SWITCHYARD_PROXY_ID")]
    proxy_id: Option<String>,
    /// The proxy's region (zone-aware balancing).
    #[arg(long, default_value = "")]
    region: String,
    /// The proxy's zone (zone-aware balancing).
    #[arg(long, default_value = "")]
    zone: String,
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
    /// How long shutdown waits for in-flight requests (Go duration, e.g. 10s).
    #[arg(long, default_value = "10s")]
    drain_timeout: String,
    /// Serve this Traefik v3 dynamic config file (YAML or JSON) as version 1, without a control
    /// plane.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["control", "cache_dir"])]
    config_file: Option<PathBuf>,
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
    let drain = switchyard_config::parse_go_duration(&args.drain_timeout)
        .map_err(|e| format!("--drain-timeout: {e}"))?;
    Ok(ProxyOptions {
        proxy_id: args.proxy_id.clone().unwrap_or_else(hostname),
        region: args.region.clone(),
        zone: args.zone.clone(),
        entrypoints,
        trusted_ips,
        admin_addr: args.admin_addr.clone(),
        drain_timeout: Duration::from_nanos(u64::try_from(drain).unwrap_or(0)),
        https_redirects,
        paths,
    })
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
    let cache = match &args.cache_dir {
        Some(d) => Some(Cache::open(d).map_err(|e| e.to_string())?),
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
        let (Some(ca), Some(token)) = (&args.ca_cert, &args.join_token) else {
            return Err(
                "--control needs --ca-cert FILE and --join-token TOKEN (or --insecure for a plaintext development cluster)"
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
        entrypoints: opts.entrypoints.iter().map(|(n, _)| n.clone()).collect(),
        cache,
        tls,
    }))
}

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
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
