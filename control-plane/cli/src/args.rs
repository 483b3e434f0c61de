//! Command-line interface definition.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// No scheme: `https://` unless `--insecure`.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7400";

#[derive(Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "Switchyard control plane: run a control node, or manage a cluster through its admin API",
    long_about = "Switchyard control plane.\n\n\
        `switchyard server` runs a control node; `switchyard dev` runs a local setup (a control node, \
        a proxy and a demo backend) with a sample route. Every other command is an admin client that talks to any control node over \
        gRPC (--endpoints or SWITCHYARD_ENDPOINTS); a follower forwards writes to the leader.\n\n\
        Security: without --insecure every connection is TLS verified with the cluster CA (--ca-cert, \
        DATA_DIR/ca.pem of a control node) and every admin call carries a bearer token (--token; the \
        bootstrap admin token is DATA_DIR/admin.token on the node that formed the cluster). Endpoints \
        without a scheme use https://; an explicit http:// endpoint needs --insecure."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Admin API endpoints of control nodes, comma-separated; the first reachable one is used.
    #[arg(long, global = true, env = "SWITCHYARD_ENDPOINTS", value_delimiter = ',', default_value = DEFAULT_ENDPOINT)]
    pub endpoints: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Bearer token for admin calls (role admin, or viewer for reads). `switchyard server --join`
    /// uses it to ask to be added.
    #[arg(long, global = true, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The cluster CA certificate (PEM) that control nodes' TLS certificates are verified with.
    #[arg(long, global = true, env = "SWITCHYARD_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Plaintext gRPC without TLS or tokens (development only). For `server`: serve plaintext and
    /// accept every call from anyone (logged as a warning at start). SWITCHYARD_INSECURE accepts
    /// 1/0, true/false, yes/no, on/off.
    #[arg(long, global = true, env = "SWITCHYARD_INSECURE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub insecure: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a control node. Secure by default: TLS API with a certificate from the cluster CA
    /// (created when the cluster forms; DATA_DIR/ca.pem), mutual TLS with CA-issued node
    /// certificates on the peer port (first contact: see --peer-addr), bearer tokens for admin
    /// calls (bootstrap token in DATA_DIR/admin.token on the first leader), client certificates for
    /// proxies. --insecure: plaintext and open (development only).
    Server(Box<ServerArgs>),
    /// Run a local setup: one control node, one proxy and a demo backend, with a sample route.
    Dev(DevArgs),
    /// Create or update resources from a Traefik v3 dynamic configuration file (YAML or JSON).
    ///
    /// A document is at most 16 MiB, 64 levels deep and 100,000 resources. A document starting
    /// with `{"` is JSON, read strictly (no trailing commas); duplicate keys are refused in JSON
    /// and YAML.
    Apply(ApplyArgs),
    /// Show resources, the whole config, or one resource by name.
    Get(GetArgs),
    /// Delete a router, service or middleware (HTTP), or a tcp-router, tcp-service,
    /// tcp-middleware or tcp-servers-transport.
    Delete(DeleteArgs),
    /// Show and change cluster membership.
    Cluster(ClusterArgs),
    /// Create, list and revoke API tokens (admin role).
    Token(TokenArgs),
    /// Show, pause, resume or abort the progressive rollout (`apply --rollout`).
    Rollout(RolloutArgs),
    /// Which router a request would reach, and why the routers before it did not match
    /// (`explain tcp SNI`: which TCP router a connection would reach).
    Explain(ExplainArgs),
    /// Print the version of this binary.
    Version,
    /// Load tools (see BENCHMARKS.md).
    Bench(BenchArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Small config writes from concurrent clients; prints writes/s and latency percentiles.
    Apply(BenchApplyArgs),
    /// Time from `apply` returning to every proxy having the new version: real proxies attached to
    /// the cluster (ACK seen in `get proxies`) and simulated proxy streams opened by this command.
    Propagate(BenchPropagateArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchPropagateArgs {
    /// Config changes to time.
    #[arg(long, default_value_t = 200)]
    pub changes: usize,
    /// Simulated proxy streams to open (spread over --endpoints).
    #[arg(long, default_value_t = 200)]
    pub simulated: usize,
    /// Routers in the config (one of them changes each time).
    #[arg(long, default_value_t = 10_000)]
    pub routers: usize,
}

#[derive(Args, Debug, Clone)]
pub struct BenchApplyArgs {
    /// Concurrent clients per round, comma-separated (one round each).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub clients: Vec<usize>,
    /// Writes per round (spread over the clients).
    #[arg(long, default_value_t = 2000)]
    pub writes: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// This node's id: a positive number, unique in the cluster and stable across restarts.
    #[arg(long)]
    pub node_id: u64,
    /// Where the node keeps its Raft log, snapshots and state.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Admin API and config stream (gRPC).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub api_addr: String,
    /// Raft traffic between control nodes (gRPC). Secure: mutual TLS, both sides presenting a node
    /// certificate from the cluster CA (kept in DATA_DIR/cluster-ca.json, 0600). A node without the
    /// CA (new, before its first contact) serves only the CA push here, with a self-signed
    /// certificate, and trusts the first member that pushes it (with --ca-cert: only that CA).
    #[arg(long, default_value = "127.0.0.1:7401")]
    pub peer_addr: String,
    /// /healthz, /readyz, /metrics, Traefik's read API (/api/...) and the dashboard (/dashboard/).
    #[arg(long, default_value = "127.0.0.1:7402")]
    pub http_addr: String,
    /// API address to advertise to other nodes and clients, if --api-addr binds a wildcard.
    #[arg(long)]
    pub advertise_api_addr: Option<String>,
    /// Peer address to advertise to other nodes, if --peer-addr binds a wildcard.
    #[arg(long)]
    pub advertise_peer_addr: Option<String>,
    /// Members of a new cluster, ID=HOST:PEERPORT,… (the same on every founding node; ignored once
    /// the node has data). Secure: the lowest id creates the cluster CA at start and pushes it to
    /// the others before any Raft traffic; start it on a network you trust for that first contact.
    #[arg(long, conflicts_with = "join")]
    pub initial_cluster: Option<String>,
    /// Admin endpoint(s) of a running cluster to join as a learner (ignored once the node has data).
    /// A secure cluster: `https://API` with --ca-cert (its ca.pem) and --token (an admin token).
    #[arg(long)]
    pub join: Option<String>,
    /// Region this node runs in (shown in `cluster status`; proxies prefer nodes of their region).
    #[arg(long, default_value = "")]
    pub region: String,
    /// Zone this node runs in.
    #[arg(long, default_value = "")]
    pub zone: String,
    /// Raft timer preset: `lan` (heartbeat 100ms, election timeout 300ms–600ms: one data
    /// centre, writes resume ~1–2 s after a leader dies) or `wan` (300ms, 1500ms–3000ms: voters
    /// in regions up to ~200 ms round trip apart). The three timer flags override it.
    #[arg(long, value_enum, default_value = "lan")]
    pub raft_profile: RaftProfile,
    /// Raft heartbeat interval (Go duration) [default: from --raft-profile: 100ms, wan 300ms].
    #[arg(long)]
    pub heartbeat_interval: Option<String>,
    /// Lower bound of the randomized Raft election timeout. A follower starts an election when
    /// it has not heard from the leader for the max election timeout (the leader's lease) plus
    /// its own timeout between min and max [default: from --raft-profile: 300ms, wan 1500ms].
    #[arg(long)]
    pub election_timeout_min: Option<String>,
    /// Upper bound of the randomized Raft election timeout [default: from --raft-profile:
    /// 600ms, wan 3000ms].
    #[arg(long)]
    pub election_timeout_max: Option<String>,
    /// Take a snapshot (and compact the log) after this many entries since the last one.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_threshold: u64,
    /// Log entries kept behind a snapshot for followers slightly behind.
    #[arg(long, default_value_t = 1_000)]
    pub snapshot_keep_logs: u64,
    /// A write not committed within this time fails with UNAVAILABLE.
    #[arg(long, default_value = "5s")]
    pub write_timeout: String,
    /// Config writes arriving while the previous ones are being committed go into one Raft
    /// entry, at most this many (1: one entry per write).
    #[arg(long, default_value_t = switchyard_node::proposer::MAX_BATCH)]
    pub max_write_batch: usize,
    /// Lifetime of the client certificates issued to proxies (they renew at 2/3 of it).
    #[arg(long, default_value = "24h", hide = true)]
    pub proxy_cert_ttl: String,
    /// How often the leader rotates the TLS session-ticket keys shared by every proxy (Go
    /// duration; the previous key still decrypts for one more period; 0 disables shared keys).
    #[arg(long, default_value = "12h")]
    pub tls_ticket_rotation: String,
    /// OpenTelemetry spans of admin calls, validation, Raft commits and the config stream; a
    /// config change is one trace, continued by each proxy's `config apply` span.
    #[command(flatten)]
    pub tracing: switchyard_otel::TracingFlags,
    /// OTLP push of the node's `/metrics` series.
    #[command(flatten)]
    pub metrics: switchyard_otel::MetricsFlags,
}

#[derive(Args, Debug, Clone)]
pub struct DevArgs {
    /// Data directory (default: a fresh temporary directory, removed on exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Control node admin API.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub api_addr: String,
    /// Control node Raft port.
    #[arg(long, default_value = "127.0.0.1:7401")]
    pub peer_addr: String,
    /// Control node /healthz, /readyz, /metrics, /api/... and /dashboard/.
    #[arg(long, default_value = "127.0.0.1:7402")]
    pub http_addr: String,
    /// The proxy's `web` entry point.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub proxy_addr: String,
    /// The proxy's /healthz, /readyz, /metrics.
    #[arg(long, default_value = "127.0.0.1:7403")]
    pub proxy_admin_addr: String,
    /// The demo backend the sample route sends to.
    #[arg(long, default_value = "127.0.0.1:7480")]
    pub backend_addr: String,
}

#[derive(Args, Debug, Clone)]
pub struct ApplyArgs {
    /// File to apply, or - for standard input.
    #[arg(short = 'f', long = "filename")]
    pub file: String,
    /// Validate and show the changes without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Make the file the whole config: resources it does not name are deleted.
    #[arg(long)]
    pub prune: bool,
    /// Return only once every proxy attached to a reachable control node (listed before the
    /// write or during the wait) has ACKed the new version (default timeout 30s); exit non-zero
    /// naming any proxy that NACKed it, or that did not ACK or was no longer attached in time. A
    /// control node that cannot be asked is named in a warning: its proxies are counted once
    /// they re-attach to a reachable node. On a terminal, a progress line (proxies ACKed / total,
    /// by zone) is shown on stderr while waiting; with -o json|yaml the final line goes to stderr.
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "30s", require_equals = true)]
    pub wait: Option<String>,
    /// With --wait, only wait for proxies matching all of these (keys region, zone, cluster, id
    /// or a proxy label), e.g. region=eu,zone=eu-1 or cluster=edge-eu.
    #[arg(long, value_name = "KEY=VALUE,…", requires = "wait")]
    pub wait_selector: Option<String>,
    /// Roll the change out stage by stage instead of to every proxy at once: comma-separated
    /// selectors, in order, each `zone=NAME`, `region=NAME`, `cluster=NAME`, or `*` (every
    /// proxy; last only), e.g. `zone=a,zone=b,*`. Proxies no stage reached yet keep the previous
    /// version. After each bake the leader compares the new version's error rate (and p99 with
    /// --max-p99) with the proxies still on the previous version, and promotes the next stage
    /// or rolls every proxy back to the previous config. Follow it with `switchyard rollout
    /// status`. Config writes are refused until the rollout ends.
    #[arg(long, value_name = "STAGES", conflicts_with = "wait")]
    pub rollout: Option<String>,
    /// With --rollout, how long each stage runs before it is judged (default 60s, at most 168h).
    #[arg(long, value_name = "DURATION", requires = "rollout")]
    pub bake: Option<String>,
    /// With --rollout, the largest error rate (5xx responses and connect failures) the new
    /// version may show above the previous version's, e.g. 1% or 0.5% (default 1%). With no
    /// proxy left on the previous version (or none of them busy), an absolute limit.
    #[arg(long, value_name = "PERCENT", requires = "rollout")]
    pub max_error_rate: Option<String>,
    /// With --rollout, the largest p99 latency (to response headers) the new version may show
    /// above the previous version's, e.g. 200ms (default: latency is not judged).
    #[arg(long, value_name = "DURATION", requires = "rollout")]
    pub max_p99: Option<String>,
    /// Record the change in this W3C trace (`00-TRACEID-SPANID-01`, sent as `traceparent` gRPC
    /// metadata): control nodes started with `--tracing.*` make their admin call span its child,
    /// and the Raft commit, the config stream sends and each proxy's `config apply` follow.
    /// Without it a tracing node starts the trace; its id is printed (stderr; `traceId` in
    /// JSON/YAML output).
    #[arg(long, env = "TRACEPARENT", value_name = "TRACEPARENT")]
    pub traceparent: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum RolloutCommand {
    /// The rollout in progress, or the latest one: stage, status, why it ended, each stage's
    /// verdict.
    Status,
    /// Stop judging and promoting; every proxy keeps the version it has.
    Pause,
    /// Resume a paused rollout; the current stage bakes again from now.
    Resume,
    /// Stop the rollout and send every proxy the previous config again (as a new version).
    Abort,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetKind {
    #[value(alias = "router")]
    Routers,
    #[value(alias = "service")]
    Services,
    #[value(alias = "middleware")]
    Middlewares,
    Config,
    /// Every proxy attached to any control node.
    #[value(alias = "proxy")]
    Proxies,
    /// Every certificate: uploaded and ACME-managed (names, issuer, validity, source, status,
    /// last error; never a private key).
    #[value(alias = "cert", alias = "certificates", alias = "certificate")]
    Certs,
}

#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// What to show.
    #[arg(value_enum)]
    pub kind: GetKind,
    /// One resource by name.
    pub name: Option<String>,
    /// Linearizable read: confirmed by the leader with a quorum (default: the answering node's
    /// applied state, which may trail the leader by a few milliseconds).
    #[arg(long)]
    pub consistent: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteKind {
    #[value(alias = "routers")]
    Router,
    #[value(alias = "services")]
    Service,
    #[value(alias = "middlewares")]
    Middleware,
    /// `tcp.routers`
    #[value(alias = "tcp-routers")]
    TcpRouter,
    /// `tcp.services`
    #[value(alias = "tcp-services")]
    TcpService,
    /// `tcp.middlewares`
    #[value(alias = "tcp-middlewares")]
    TcpMiddleware,
    /// `tcp.serversTransports`
    #[value(alias = "tcp-servers-transports")]
    TcpServersTransport,
}

#[derive(Args, Debug, Clone)]
pub struct DeleteArgs {
    #[arg(value_enum)]
    pub kind: DeleteKind,
    pub name: String,
}

#[derive(Args, Debug, Clone)]
pub struct ExplainArgs {
    /// HTTP method, e.g. GET; or `tcp` to explain a TCP connection.
    pub method: String,
    /// Request URL, e.g. http://api.example.com/v1/users?id=3 (the host becomes the Host header);
    /// after `tcp`: the SNI of the connection's TLS ClientHello.
    pub url: String,
    /// With `tcp`: a plain TCP connection (no TLS; the SNI argument is ignored).
    #[arg(long)]
    pub plain: bool,
    /// With `tcp`: an ALPN protocol the client offers (repeatable).
    #[arg(long)]
    pub alpn: Vec<String>,
    /// A request header, 'Name: value' (repeatable). A Host header overrides the URL's host.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Client address, for ClientIP matchers.
    #[arg(long)]
    pub client_ip: Option<std::net::IpAddr>,
    /// Entry point the request arrives on (default: consider every router).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Evaluate what the proxies of this proxy cluster (`switchyard-proxy --cluster`) serve:
    /// the routers scoped to it and the unscoped ones (default: every router).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Evaluate the leader's latest config rather than the answering node's.
    #[arg(long)]
    pub consistent: bool,
    /// The entry point's `sanitizePath`, as the proxy's `--sanitize-path NAME=BOOL`: resolve
    /// `.`/`..` segments (also `%2e`) and merge duplicate slashes before routing.
    #[arg(long, value_name = "BOOL", default_value = "true", value_parser = parse_bool_arg, action = clap::ArgAction::Set)]
    pub sanitize_path: bool,
    /// The entry point's `encodedCharacters`, as the proxy's `--encoded-characters NAME=…`,
    /// e.g. `allowEncodedSlash=false,allowEncodedHash=false` (default: all allowed).
    #[arg(long, value_name = "OPTION=BOOL[,OPTION=BOOL…]")]
    pub encoded_characters: Option<String>,
}

fn parse_bool_arg(s: &str) -> Result<bool, String> {
    switchyard_config::paths::parse_bool(s).ok_or_else(|| format!("invalid boolean {s:?}"))
}

#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ClusterCommand {
    /// Every node: id, addresses, region/zone, voter or learner, leader, term, applied version,
    /// reachable.
    Status,
    /// Add a running node (started without --initial-cluster and --join) as a learner.
    Add(ClusterAddArgs),
    /// Make a learner a voter.
    Promote {
        /// Node id.
        node_id: u64,
    },
    /// Remove a node from the cluster.
    Remove {
        /// Node id.
        node_id: u64,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ClusterAddArgs {
    #[arg(long)]
    pub node_id: u64,
    /// The node's admin API address.
    #[arg(long)]
    pub api_addr: String,
    /// The node's Raft peer address.
    #[arg(long)]
    pub peer_addr: String,
    #[arg(long, default_value = "")]
    pub http_addr: String,
    #[arg(long, default_value = "")]
    pub region: String,
    #[arg(long, default_value = "")]
    pub zone: String,
}

#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown once; the cluster keeps only its hash).
    Create {
        /// admin (everything), viewer (reads only) or proxy (join token for switchyard-proxy).
        #[arg(long)]
        role: String,
        /// Lifetime (e.g. 1h, 30d as 720h); default: never expires.
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id; it stops working at once on every node.
    Revoke { id: String },
}

#[cfg(test)]
mod tests {
    use clap::{ArgAction, CommandFactory, FromArgMatches};

    use super::Cli;

    /// The boolean flags that can also come from an environment variable.
    fn bool_env_flags(cmd: &clap::Command) -> Vec<(String, bool)> {
        cmd.get_arguments()
            .filter(|a| a.get_env().is_some())
            .filter_map(|a| match a.get_action() {
                ArgAction::SetTrue => Some((a.get_id().to_string(), true)),
                ArgAction::SetFalse => Some((a.get_id().to_string(), false)),
                _ => None,
            })
            .collect()
    }

    /// `export SWITCHYARD_INSECURE=1` (what README and `switchyard dev` print) and every other
    /// usual spelling of a boolean work for every boolean flag read from the environment.
    #[test]
    fn boolean_env_flags_accept_boolish_values() {
        let cmd = Cli::command();
        let flags = bool_env_flags(&cmd);
        assert!(flags.iter().any(|(id, _)| id == "insecure"), "{flags:?}");
        for sub in cmd.get_subcommands() {
            assert_eq!(
                bool_env_flags(sub),
                vec![],
                "subcommand {}: add its boolean env flags to this test",
                sub.get_name()
            );
        }
        for (id, set_true) in flags {
            // A variable of this test's own, so that parallel tests never see it.
            let var: &'static str = Box::leak(
                format!("SWITCHYARD_TEST_BOOLISH_CLI_{}", id.to_uppercase()).into_boxed_str(),
            );
            for (value, on) in [
                ("1", true),
                ("0", false),
                ("true", true),
                ("false", false),
                ("TRUE", true),
                ("yes", true),
                ("no", false),
                ("on", true),
                ("off", false),
            ] {
                std::env::set_var(var, value);
                let m = Cli::command()
                    .mut_arg(&id, |a| a.env(var))
                    .try_get_matches_from(["switchyard", "version"])
                    .unwrap_or_else(|e| panic!("{var}={value}: {e}"));
                assert_eq!(m.get_flag(&id), on == set_true, "{var}={value}");
                if id == "insecure" {
                    let cli = Cli::from_arg_matches(&m).expect("typed");
                    assert_eq!(cli.global.insecure, on, "{var}={value}");
                }
            }
            std::env::set_var(var, "maybe");
            let err = Cli::command()
                .mut_arg(&id, |a| a.env(var))
                .try_get_matches_from(["switchyard", "version"])
                .expect_err("maybe is not a boolean");
            assert!(err.to_string().contains("maybe"), "{err}");
            std::env::remove_var(var);
        }
    }
}

/// `switchyard server --raft-profile`: Raft timer presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RaftProfile {
    /// One data centre (the openraft-tuned LAN defaults).
    Lan,
    /// Voters in different regions (round trips up to ~200 ms).
    Wan,
}

impl RaftProfile {
    /// (heartbeat, election timeout min, election timeout max), as Go durations.
    pub fn timers(self) -> (&'static str, &'static str, &'static str) {
        match self {
            RaftProfile::Lan => ("100ms", "300ms", "600ms"),
            RaftProfile::Wan => ("300ms", "1500ms", "3000ms"),
        }
    }
}
