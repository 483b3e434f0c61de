//! A running control node: Raft, its three listeners, bootstrap and self-registration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::{Config, SnapshotPolicy};
use switchyard_proto::admin::admin_client::AdminClient;
use switchyard_proto::admin::admin_server::AdminServer;
use switchyard_proto::raft::raft_peer_server::RaftPeerServer;
use switchyard_proto::stream::config_stream_server::ConfigStreamServer;
use switchyard_store::{LogStore, Node, NodeId, Raft};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::admin::AdminService;
use crate::metrics::Metrics;
use crate::options::NodeOptions;
use crate::raft_net::{pool, ChannelPool, Network, PeerService};
use crate::security::{self, Authed};
use crate::shared::Shared;
use crate::stream::{History, Registry, StreamService};

#[derive(Debug, Error)]
pub enum NodeError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] switchyard_store::StoreError),
    #[error("raft config: {0}")]
    RaftConfig(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("peer TLS: {0}")]
    PeerTls(String),
    #[error("--initial-cluster does not list this node's id {0}")]
    NotInInitialCluster(NodeId),
    #[error("{0}")]
    Tracing(String),
}

/// `(term, last log index)` if the stored vote is this node's own committed vote (it was the
/// leader when it stopped, and openraft will restore it as leader of that term).
async fn restored_leadership(
    id: NodeId,
    log: &LogStore,
) -> Result<Option<(u64, u64)>, openraft::StorageError<NodeId>> {
    use openraft::storage::RaftLogStorage;
    let mut log = log.clone();
    let Some(vote) = log.read_vote().await? else {
        return Ok(None);
    };
    if !vote.is_committed() || vote.leader_id().voted_for() != Some(id) {
        return Ok(None);
    }
    let last = log.get_log_state().await?.last_log_id.map(|l| l.index);
    Ok(last.map(|index| (vote.leader_id().get_term(), index)))
}

/// A started control node. Dropping it does not stop it; call [`ControlNode::shutdown`].
pub struct ControlNode {
    pub shared: Arc<Shared>,
    pub api_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The OTLP metrics push (`--metrics.otlp.*`), while the node runs.
    _otlp_metrics: Option<switchyard_otel::MetricsExport>,
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

impl ControlNode {
    pub async fn start(opts: NodeOptions) -> Result<Self, NodeError> {
        std::fs::create_dir_all(&opts.data_dir).map_err(|source| NodeError::DataDir {
            path: opts.data_dir.display().to_string(),
            source,
        })?;
        // Bind first: a port in use fails the start before anything is written.
        let api_listener = bind("API", &opts.api_addr).await?;
        let peer_listener = bind("peer", &opts.peer_addr).await?;
        let http_listener = bind("HTTP", &opts.http_addr).await?;
        let api_addr = local(&api_listener);
        let peer_addr = local(&peer_listener);
        let http_addr = local(&http_listener);

        let (log, mut sm) = switchyard_store::open(&opts.data_dir.join("raft"))?;
        let restored_leadership = restored_leadership(opts.node_id, &log)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let metrics = Metrics::new();
        let hist = metrics.apply_seconds.clone();
        sm.set_apply_observer(Arc::new(move |s| hist.observe(s)));
        let applied = sm.subscribe();
        let committed = log.committed_handle();

        let config = Config {
            cluster_name: "switchyard".into(),
            heartbeat_interval: opts.raft.heartbeat.as_millis() as u64,
            election_timeout_min: opts.raft.election_min.as_millis() as u64,
            election_timeout_max: opts.raft.election_max.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_threshold),
            max_in_snapshot_log_to_keep: opts.snapshot_keep_logs,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::RaftConfig(e.to_string()))?;

        let pool = if opts.insecure {
            ChannelPool::default()
        } else {
            ChannelPool::secure()
        };
        let election_clock = Arc::new(crate::raft_net::watchdog::ElectionClock::default());
        let raft = Raft::new(
            opts.node_id,
            Arc::new(config),
            Network::new(pool.clone(), election_clock.clone()),
            log.clone(),
            sm,
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;

        let history = History::follow(applied.clone());
        let cpu = crate::offload::CpuPool::default();
        let tracer = match &opts.tracing {
            Some(t) => Some(Arc::new(crate::trace::start(t, &opts, &metrics)?)),
            None => None,
        };
        let proposer = crate::proposer::Proposer::start(
            raft.clone(),
            applied.clone(),
            cpu.clone(),
            opts.write_timeout,
            opts.max_write_batch,
            tracer.clone(),
        );
        let shared = Arc::new(Shared {
            id: opts.node_id,
            opts,
            raft,
            applied,
            committed,
            log,
            pool,
            metrics,
            cpu,
            proposer,
            proxies: Registry::default(),
            history,
            election_clock,
            peer_identity: watch::channel(None).0,
            restored_leadership,
            leader_progress: Default::default(),
            tracer,
        });
        if !shared.opts.insecure {
            let initialized = shared
                .raft
                .is_initialized()
                .await
                .map_err(|e| NodeError::Raft(e.to_string()))?;
            crate::peer_tls::init(&shared, initialized)
                .map_err(|e| NodeError::PeerTls(e.to_string()))?;
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(spawn_api(shared.clone(), api_listener, stop_rx.clone()));
        tasks.push(spawn_peer(shared.clone(), peer_listener, stop_rx.clone()));
        tasks.push(spawn_http(shared.clone(), http_listener, stop_rx.clone()));

        bootstrap(&shared).await?;
        if shared.opts.insecure {
            tracing::warn!(
                "INSECURE MODE: plaintext gRPC, no authentication; anyone who can reach this node can read and change the cluster. Development only."
            );
        } else {
            tasks.push(tokio::spawn(security_bootstrap(
                shared.clone(),
                stop_rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::peer_tls::provision_loop(
                shared.clone(),
                stop_rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::peer_tls::follow_store(
                shared.clone(),
                stop_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(register_loop(shared.clone(), stop_rx.clone())));
        tasks.push(tokio::spawn(crate::catch_up::run(
            shared.clone(),
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::raft_net::watchdog::run(
            shared.clone(),
            stop_rx.clone(),
        )));
        tasks.push(crate::rollout::spawn(shared.clone(), stop_rx.clone()));
        tasks.push(crate::acme::spawn(shared.clone(), stop_rx));
        let otlp_metrics = match &shared.opts.otlp_metrics {
            Some(m) => Some(crate::trace::start_metrics(m, &shared)?),
            None => None,
        };
        Ok(Self {
            shared,
            api_addr,
            peer_addr,
            http_addr,
            stop,
            tasks,
            _otlp_metrics: otlp_metrics,
        })
    }

    /// Stops serving and shuts Raft down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        for t in self.tasks {
            t.abort();
        }
    }
}

fn local(l: &TcpListener) -> SocketAddr {
    l.local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Accepted connections of a pre-bound listener, with Nagle off. (The builder's `tcp_nodelay`
/// applies only to listeners tonic binds itself; without this every small response waits for the
/// peer's delayed ACK, ~40 ms.)
fn incoming(l: TcpListener) -> TcpIncoming {
    TcpIncoming::from(l).with_nodelay(Some(true))
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn spawn_api(shared: Arc<Shared>, l: TcpListener, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter.set_serving::<AdminServer<AdminService>>().await;
        // Both reflection versions: grpcurl and other tools still differ in which one they ask.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(switchyard_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let (reflection_v1, reflection_v1alpha) =
            match (reflection().build_v1(), reflection().build_v1alpha()) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "reflection service");
                    return;
                }
            };
        let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
        if !shared.opts.insecure {
            // Connections queue on the bound listener until the node holds the cluster CA.
            let Some(ca) = wait_for_ca(&shared, stop.clone()).await else {
                return;
            };
            let tls = match api_tls(&shared, &ca) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "API TLS configuration");
                    return;
                }
            };
            builder = match builder.tls_config(tls) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "API TLS configuration");
                    return;
                }
            };
            tracing::info!(addr = %shared.opts.api_addr, "API serving TLS with a certificate from the cluster CA");
        }
        let r = builder
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(admin_server(shared.clone()))
            .add_service(
                ConfigStreamServer::new(StreamService::new(shared))
                    .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES)
                    .max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(incoming(l), stopped(stop))
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "API server stopped");
        }
    })
}

/// Largest admin request a node decodes: a document of the largest size `apply` accepts
/// ([`switchyard_config::MAX_DOCUMENT_BYTES`]) plus room for the other fields. Anything larger is
/// refused by gRPC from its length prefix, before it is buffered.
pub const MAX_ADMIN_REQUEST_BYTES: usize = switchyard_config::MAX_DOCUMENT_BYTES + 1024 * 1024;

/// The Admin service behind the role check (`--insecure`: open).
fn admin_server(shared: Arc<Shared>) -> Authed<AdminServer<AdminService>> {
    let guard = (!shared.opts.insecure).then(|| shared.clone());
    Authed::new(
        AdminServer::new(AdminService::new(shared))
            .max_decoding_message_size(MAX_ADMIN_REQUEST_BYTES)
            .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES),
        guard,
    )
}

/// Waits until the applied state holds the cluster CA, writes `DATA_DIR/ca.pem` and returns it
/// (`None` when the node stops first).
async fn wait_for_ca(
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Option<switchyard_store::ClusterCa> {
    let mut applied = shared.applied.clone();
    let mut logged = false;
    loop {
        if let Some(ca) = applied.borrow_and_update().state.security.ca.clone() {
            let path = shared.opts.data_dir.join("ca.pem");
            match security::write_private(&path, &ca.cert_pem) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "wrote the cluster CA certificate")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the CA certificate")
                }
            }
            return Some(ca);
        }
        if !logged {
            tracing::info!("API waits for the cluster CA (created when the cluster forms)");
            logged = true;
        }
        tokio::select! {
            r = applied.changed() => if r.is_err() { return None; },
            _ = stopped(stop.clone()) => return None,
        }
    }
}

/// TLS for the API port: a fresh node certificate from the CA; proxy client certificates are
/// verified against the CA when presented (required by the config stream, not by admin calls,
/// which use bearer tokens).
fn api_tls(
    shared: &Shared,
    ca: &switchyard_store::ClusterCa,
) -> Result<tonic::transport::ServerTlsConfig, security::CertError> {
    let (cert, key) = security::issue_node_cert(ca, shared.id, &shared.cert_names())?;
    Ok(tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(cert, key))
        .client_ca_root(tonic::transport::Certificate::from_pem(&ca.cert_pem))
        .client_auth_optional(true))
}

/// Secure mode: the first leader of a cluster without a committed CA commits the CA its peer port
/// uses (`crate::peer_tls`) with a new bootstrap admin token, and writes the token to
/// `DATA_DIR/admin.token` (0600). Only the first committed `Init` counts, so concurrent attempts
/// agree.
async fn security_bootstrap(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if *stop.borrow() || shared.applied.borrow().state.security.ca.is_some() {
            return;
        }
        if shared.raft_metrics().current_leader != Some(shared.id) {
            continue;
        }
        // The CA the peer port already uses (every member holds the same one), so whichever
        // leader commits `Init` first commits that CA.
        let Some(ca) = shared.peer_identity.borrow().as_ref().map(|i| i.ca.clone()) else {
            continue;
        };
        let (id, secret) = security::new_token();
        let cmd = switchyard_store::Request::Security {
            cmd: switchyard_store::SecurityCommand::Init {
                ca,
                admin_token_id: id.clone(),
                admin_token_hash: security::hash_token(&secret),
            },
            at: security::now_unix(),
        };
        let timeout = shared.opts.write_timeout;
        match tokio::time::timeout(timeout, shared.raft.client_write(cmd)).await {
            Ok(Ok(resp)) if resp.data == switchyard_store::Response::Done => {
                let path = shared.opts.data_dir.join("admin.token");
                match security::write_private(&path, &format!("{secret}\n")) {
                    Ok(()) => tracing::info!(
                        path = %path.display(),
                        token_id = %id,
                        "created the cluster CA and the bootstrap admin token"
                    ),
                    Err(e) => tracing::error!(
                        path = %path.display(),
                        error = %e,
                        "created the cluster CA but cannot write the admin token; create another with a node's data"
                    ),
                }
                return;
            }
            Ok(Ok(_)) => return,
            Ok(Err(e)) => tracing::debug!(error = %e, "CA bootstrap deferred"),
            Err(_) => tracing::debug!("CA bootstrap timed out; retrying"),
        }
    }
}

fn spawn_peer(shared: Arc<Shared>, l: TcpListener, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    if !shared.opts.insecure {
        return tokio::spawn(serve_peer_secure(shared, l, stop));
    }
    tokio::spawn(async move {
        let peer = RaftPeerServer::new(PeerService::new(shared.clone()))
            .max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES);
        let r = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(peer)
            // Followers forward leader-only admin calls here.
            .add_service(admin_server(shared))
            .serve_with_incoming_shutdown(incoming(l), stopped(stop))
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "peer server stopped");
        }
    })
}

type Conns = tokio::sync::mpsc::Sender<Result<tokio::net::TcpStream, std::io::Error>>;

/// Serves connections sent on the returned sender with `router` over `tls`.
fn serve_conns(
    tls: tonic::transport::ServerTlsConfig,
    what: &'static str,
    stop: watch::Receiver<bool>,
    add: impl FnOnce(tonic::transport::Server) -> tonic::transport::server::Router,
) -> Option<Conns> {
    let builder = match tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .tls_config(tls)
    {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "peer TLS configuration ({what})");
            return None;
        }
    };
    let router = add(builder);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let conns = tokio_stream::wrappers::ReceiverStream::new(rx);
        if let Err(e) = router
            .serve_with_incoming_shutdown(conns, stopped(stop))
            .await
        {
            tracing::error!(error = %e, "peer server stopped ({what})");
        }
    });
    Some(tx)
}

/// Secure peer port. While the node has no cluster CA, connections go to the first-contact
/// server (`PeerBootstrap` only, temporary self-signed certificate); from the moment it has one,
/// every new connection goes to the strict server: mutual TLS with CA-issued node certificates,
/// Raft and forwarded admin calls.
async fn serve_peer_secure(shared: Arc<Shared>, l: TcpListener, stop: watch::Receiver<bool>) {
    use futures::StreamExt;
    let mut conns = incoming(l);
    let mut boot: Option<Conns> = None;
    let mut strict: Option<Conns> = None;
    loop {
        let conn = tokio::select! {
            c = conns.next() => c,
            _ = stopped(stop.clone()) => return,
        };
        let Some(conn) = conn else { return };
        let conn = match conn {
            Ok(c) => Ok(c),
            Err(e) => {
                tracing::debug!(error = %e, "peer accept");
                continue;
            }
        };
        let identity = shared.peer_identity.borrow().clone();
        let tx = match identity {
            Some(identity) => {
                // Ends the first-contact server once its connections finish.
                boot = None;
                if strict.is_none() {
                    let shared = shared.clone();
                    strict = serve_conns(identity.server_tls(), "strict", stop.clone(), |b| {
                        let peer = RaftPeerServer::new(PeerService::new(shared.clone()))
                            .max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES)
                            .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES);
                        let mut b = b;
                        // Followers forward leader-only admin calls here: the caller's verified
                        // node certificate is its credential (the entry node checked the user).
                        let admin = AdminServer::new(AdminService::new(shared))
                            .max_decoding_message_size(MAX_ADMIN_REQUEST_BYTES)
                            .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES);
                        b.add_service(crate::peer_tls::NodeOnly::new(peer))
                            .add_service(crate::peer_tls::NodeOnly::new(admin))
                    });
                }
                strict.as_ref()
            }
            None => {
                if boot.is_none() {
                    let tls = match crate::peer_tls::bootstrap_tls() {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!(error = %e, "peer first-contact certificate");
                            continue;
                        }
                    };
                    let svc =
                        switchyard_proto::raft::peer_bootstrap_server::PeerBootstrapServer::new(
                            crate::peer_tls::BootstrapService::new(shared.clone()),
                        );
                    boot = serve_conns(tls, "first contact", stop.clone(), |mut b| {
                        b.add_service(svc)
                    });
                }
                boot.as_ref()
            }
        };
        if let Some(tx) = tx {
            let _ = tx.send(conn).await;
        }
    }
}

fn spawn_http(shared: Arc<Shared>, l: TcpListener, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let r = axum::serve(l, crate::http::router(shared))
            .with_graceful_shutdown(stopped(stop))
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    })
}

/// A node without data starts a cluster (`--initial-cluster`), asks to join one (`--join`), or waits
/// to be added (`cluster add`). A node with data resumes and ignores both flags.
async fn bootstrap(shared: &Arc<Shared>) -> Result<(), NodeError> {
    let initialized = shared
        .raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    if initialized {
        tracing::info!(node = shared.id, "resuming from existing data");
        return Ok(());
    }
    let opts = &shared.opts;
    if !opts.initial_cluster.is_empty() {
        if !opts.initial_cluster.iter().any(|(id, _)| *id == shared.id) {
            return Err(NodeError::NotInInitialCluster(shared.id));
        }
        let members: BTreeMap<NodeId, Node> = opts
            .initial_cluster
            .iter()
            .map(|(id, addr)| {
                (
                    *id,
                    Node {
                        peer_addr: addr.clone(),
                    },
                )
            })
            .collect();
        tracing::info!(node = shared.id, ?members, "bootstrapping a new cluster");
        if let Err(e) = shared.raft.initialize(members).await {
            // Another member's initialization reached us first: that is the same cluster.
            tracing::info!(error = %e, "initialize");
        }
    } else if let Some(join) = opts.join.clone() {
        let shared = shared.clone();
        tokio::spawn(async move { join_loop(shared, join).await });
    } else {
        tracing::info!(
            node = shared.id,
            "no data, no --initial-cluster and no --join: waiting to be added with `switchyard cluster add`"
        );
    }
    Ok(())
}

/// Asks the cluster at `endpoints` (comma-separated admin URLs) to add this node as a learner,
/// retrying until one accepts.
async fn join_loop(shared: Arc<Shared>, endpoints: String) {
    let endpoints: Vec<String> = endpoints
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut attempt = 0u32;
    loop {
        for ep in &endpoints {
            let r = async {
                let mut endpoint = pool::endpoint(ep).map_err(|e| e.to_string())?;
                if endpoint.uri().scheme_str() == Some("https") {
                    let ca = match &shared.opts.ca_cert {
                        Some(p) => std::fs::read_to_string(p)
                            .map_err(|e| format!("--ca-cert {}: {e}", p.display()))?,
                        None => return Err("--join over https needs --ca-cert".to_string()),
                    };
                    endpoint = endpoint
                        .tls_config(
                            tonic::transport::ClientTlsConfig::new()
                                .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
                        )
                        .map_err(|e| e.to_string())?;
                }
                let ch = endpoint.connect().await.map_err(|e| e.to_string())?;
                let mut req = tonic::Request::new(shared.add_request());
                if let Some(t) = &shared.opts.token {
                    let v = format!("Bearer {}", t.trim())
                        .parse()
                        .map_err(|_| "--token is not a valid header value".to_string())?;
                    req.metadata_mut().insert(security::AUTHORIZATION, v);
                }
                AdminClient::new(ch)
                    .add_node(req)
                    .await
                    .map_err(|s| s.message().to_string())
            }
            .await;
            match r {
                Ok(_) => {
                    tracing::info!(node = shared.id, endpoint = %ep, "joined the cluster as a learner");
                    return;
                }
                Err(e) => tracing::warn!(endpoint = %ep, error = %e, "join failed; retrying"),
            }
        }
        attempt = attempt.saturating_add(1);
        let backoff = Duration::from_millis(200u64.saturating_mul(u64::from(attempt.min(10))));
        tokio::time::sleep(backoff).await;
    }
}

/// Keeps this node's entry in the replicated node directory current (API address, region, zone).
async fn register_loop(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if *stop.borrow() {
            return;
        }
        let m = shared.raft_metrics();
        if m.current_leader.is_none() || shared.role_of(&m, shared.id) == "none" {
            continue;
        }
        let want = shared.my_info();
        if shared.applied.borrow().state.nodes.get(&shared.id) == Some(&want) {
            continue;
        }
        let svc = AdminService::new(shared.clone());
        if let Err(e) = svc.add_node_routed(shared.add_request()).await {
            tracing::debug!(error = %e, "node registration deferred");
        }
    }
}
