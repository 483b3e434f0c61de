//! TLS of the peer port (Raft, forwarded admin calls, status probes) in secure mode.
//!
//! Trust model (ARCHITECTURE.md "Security"): the peer port serves mutual TLS only. Both sides
//! present a node certificate (`CN=node:ID`) issued by the cluster CA and verify the other's
//! against it, so only holders of the CA talk Raft. A node learns the CA before any Raft traffic:
//! - from `DATA_DIR/cluster-ca.json` (0600; written as soon as it learned the CA) or its store;
//! - on a new cluster, the lowest id of `--initial-cluster` generates the CA at start (as does the
//!   lowest voter of a cluster that has data but no CA, e.g. first run `--insecure`);
//! - otherwise from a push: a node without a CA serves only `PeerBootstrap.Provision` on its peer
//!   port, over TLS with a temporary self-signed certificate, and takes the first CA pushed to it
//!   (trust on first contact; with `--ca-cert` the pushed CA must be that one). Nodes holding the CA
//!   push it to every `--initial-cluster` member and every Raft member that lacks it.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use switchyard_proto::raft::peer_bootstrap_client::PeerBootstrapClient;
use switchyard_proto::raft::peer_bootstrap_server::PeerBootstrap;
use switchyard_proto::raft::{ProvisionReply, ProvisionRequest};
use switchyard_store::ClusterCa;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::security::{self, CertError};
use crate::shared::Shared;

/// The name peer clients verify in a node's certificate (every node certificate has it).
const PEER_SERVER_NAME: &str = "localhost";

/// File holding the cluster CA (certificate and key, JSON) of a secure node.
pub const CA_FILE: &str = "cluster-ca.json";

/// What a node presents and trusts on the peer port.
pub struct PeerIdentity {
    pub ca: ClusterCa,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerIdentity").finish_non_exhaustive()
    }
}

impl PeerIdentity {
    pub fn new(shared: &Shared, ca: ClusterCa) -> Result<Self, CertError> {
        let (cert_pem, key_pem) = security::issue_node_cert(&ca, shared.id, &shared.cert_names())?;
        Ok(Self {
            ca,
            cert_pem,
            key_pem,
        })
    }

    pub fn server_tls(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca.cert_pem))
            .client_auth_optional(false)
    }

    pub fn client_tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca.cert_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(PEER_SERVER_NAME)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("this node already has a different cluster CA")]
    Conflict,
}

fn ca_path(shared: &Shared) -> std::path::PathBuf {
    shared.opts.data_dir.join(CA_FILE)
}

/// The CA persisted in the data dir, if any.
pub fn load_ca(shared: &Shared) -> Result<Option<ClusterCa>, PeerTlsError> {
    let path = ca_path(shared);
    match std::fs::read_to_string(&path) {
        Ok(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|source| PeerTlsError::Json {
                path: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PeerTlsError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Adopts `ca` as this node's cluster CA: persists it (0600), then makes it the peer identity
/// (server and client TLS). Idempotent for the same CA; a different CA is refused.
pub fn adopt(shared: &Shared, ca: ClusterCa) -> Result<bool, PeerTlsError> {
    if let Some(cur) = shared.peer_identity.borrow().as_ref() {
        return if cur.ca == ca {
            Ok(false)
        } else {
            Err(PeerTlsError::Conflict)
        };
    }
    let identity = PeerIdentity::new(shared, ca)?;
    let path = ca_path(shared);
    let json = serde_json::to_string(&identity.ca).map_err(|source| PeerTlsError::Json {
        path: path.display().to_string(),
        source,
    })?;
    security::write_private(&path, &json).map_err(|source| PeerTlsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let identity = Arc::new(identity);
    let mut adopted = false;
    shared.peer_identity.send_if_modified(|cur| {
        if cur.is_none() {
            *cur = Some(identity.clone());
            adopted = true;
        }
        adopted
    });
    if adopted {
        shared.pool.set_tls(identity.client_tls());
        tracing::info!(path = %path.display(), "peer port: mutual TLS with the cluster CA");
        Ok(true)
    } else if shared
        .peer_identity
        .borrow()
        .as_ref()
        .is_some_and(|c| c.ca == identity.ca)
    {
        Ok(false)
    } else {
        Err(PeerTlsError::Conflict)
    }
}

/// At start (secure mode): the CA from the data dir or the store, or a new one if this node is the
/// one that creates it. `initialized`: the node has Raft state.
pub fn init(shared: &Shared, initialized: bool) -> Result<(), PeerTlsError> {
    let stored = shared.applied.borrow().state.security.ca.clone();
    if let Some(ca) = load_ca(shared)?.or(stored) {
        adopt(shared, ca)?;
        return Ok(());
    }
    let creator = if initialized {
        let m = shared.raft_metrics();
        let lowest = m.membership_config.membership().voter_ids().min();
        lowest == Some(shared.id)
    } else {
        shared.opts.initial_cluster.iter().map(|(id, _)| *id).min() == Some(shared.id)
    };
    if creator {
        adopt(shared, security::generate_ca()?)?;
        tracing::info!("created the cluster CA; pushing it to the other members");
    } else {
        tracing::info!("peer port: no cluster CA yet; waiting for a member to provide it");
    }
    Ok(())
}

/// Follows the applied state: a CA committed in the store is adopted (a node that learned it by
/// replication only, e.g. upgraded data).
pub async fn follow_store(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut applied = shared.applied.clone();
    loop {
        let ca = applied.borrow_and_update().state.security.ca.clone();
        if let Some(ca) = ca {
            match adopt(&shared, ca) {
                Ok(_) => {}
                Err(PeerTlsError::Conflict) => tracing::error!(
                    "the committed cluster CA differs from this node's peer CA; restart the node"
                ),
                Err(e) => tracing::error!(error = %e, "cannot adopt the committed cluster CA"),
            }
            return;
        }
        tokio::select! {
            r = applied.changed() => if r.is_err() { return; },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Pushes the CA to `--initial-cluster` members and Raft members that do not have it yet.
pub async fn provision_loop(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut done: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut since_reset = std::time::Instant::now();
    loop {
        tick.tick().await;
        if *stop.borrow() {
            return;
        }
        // Check served members again now and then: one may have lost its data dir.
        if since_reset.elapsed() > Duration::from_secs(3) {
            done.clear();
            since_reset = std::time::Instant::now();
        }
        let Some(identity) = shared.peer_identity.borrow().clone() else {
            continue;
        };
        let mut targets: Vec<String> = shared
            .opts
            .initial_cluster
            .iter()
            .filter(|(id, _)| *id != shared.id)
            .map(|(_, a)| a.clone())
            .collect();
        let m = shared.raft_metrics();
        targets.extend(
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != shared.id)
                .map(|(_, n)| n.peer_addr.clone()),
        );
        targets.retain(|t| !done.contains(t));
        targets.sort();
        targets.dedup();
        let pushes = targets.into_iter().map(|addr| {
            let identity = identity.clone();
            async move {
                let r = tokio::time::timeout(Duration::from_secs(2), push(&identity, &addr)).await;
                (addr, r)
            }
        });
        for (addr, r) in futures::future::join_all(pushes).await {
            match r {
                Ok(Ok(true)) => {
                    tracing::info!(peer = %addr, "pushed the cluster CA");
                    done.insert(addr);
                }
                Ok(Ok(false)) => {
                    done.insert(addr);
                }
                Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "CA push deferred"),
                Err(_) => tracing::debug!(peer = %addr, "CA push timed out"),
            }
        }
    }
}

/// One push: `Ok(true)` provisioned, `Ok(false)` the peer already serves strict TLS.
async fn push(identity: &PeerIdentity, addr: &str) -> Result<bool, String> {
    let config = tofu_client_config(identity)?;
    let hostport = addr
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(addr)
        .to_string();
    let channel = crate::raft_net::pool::endpoint(&format!("http://{hostport}"))
        .map_err(|e| e.to_string())?
        .connect_with_connector(TofuConnector {
            config: Arc::new(config),
            addr: hostport,
        })
        .await
        .map_err(|e| e.to_string())?;
    let req = ProvisionRequest {
        ca_cert_pem: identity.ca.cert_pem.clone(),
        ca_key_pem: identity.ca.key_pem.clone(),
    };
    match PeerBootstrapClient::new(channel).provision(req).await {
        Ok(_) => Ok(true),
        // A strict peer port (it has a CA) does not serve PeerBootstrap.
        Err(s) if s.code() == tonic::Code::Unimplemented => Ok(false),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(false),
        Err(s) => Err(s.message().to_string()),
    }
}

fn tofu_client_config(identity: &PeerIdentity) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|_| "node key: not a PEM private key".to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        // Trust on first contact: any server certificate (a new node's self-signed one); the
        // handshake signature is still checked. Presents this node's certificate, so a strict
        // peer port completes the handshake and answers `UNIMPLEMENTED`.
        .with_custom_certificate_verifier(switchyard_tls::AcceptAny::new())
        .with_client_auth_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

#[derive(Clone)]
struct TofuConnector {
    config: Arc<rustls::ClientConfig>,
    addr: String,
}

impl tower_service::Service<http::Uri> for TofuConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(&this.addr).await?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(PEER_SERVER_NAME)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// TLS of the first-contact server: a throwaway self-signed certificate (no client certificates).
pub fn bootstrap_tls() -> Result<ServerTlsConfig, CertError> {
    let ck = rcgen::generate_simple_self_signed(vec![PEER_SERVER_NAME.to_string()])
        .map_err(|e| CertError::new(e.to_string()))?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
    )))
}

/// `PeerBootstrap`, served only while this node has no CA.
pub struct BootstrapService {
    shared: Arc<Shared>,
}

impl BootstrapService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl PeerBootstrap for BootstrapService {
    async fn provision(
        &self,
        req: Request<ProvisionRequest>,
    ) -> Result<Response<ProvisionReply>, Status> {
        let req = req.into_inner();
        let ca = ClusterCa {
            cert_pem: req.ca_cert_pem,
            key_pem: req.ca_key_pem,
        };
        if let Some(path) = &self.shared.opts.ca_cert {
            // A joining node knows the cluster it joins: only that CA is accepted.
            let expected = std::fs::read_to_string(path)
                .map_err(|e| Status::internal(format!("--ca-cert: {e}")))?;
            if expected.trim() != ca.cert_pem.trim() {
                return Err(Status::permission_denied(
                    "pushed CA is not the one given with --ca-cert",
                ));
            }
        }
        match adopt(&self.shared, ca) {
            Ok(_) => {
                tracing::info!("received the cluster CA from a peer");
                Ok(Response::new(ProvisionReply {}))
            }
            Err(PeerTlsError::Conflict) => Err(Status::already_exists("this node has a CA")),
            Err(PeerTlsError::Cert(e)) => Err(Status::invalid_argument(e.to_string())),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}

/// Wraps a service of the strict peer port: only clients whose verified certificate names a node
/// (`CN=node:ID`) get through (the TLS layer already verified it chains to the CA); proxies'
/// client certificates, also CA-issued, are refused.
#[derive(Clone)]
pub struct NodeOnly<S> {
    inner: S,
}

impl<S> NodeOnly<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for NodeOnly<S> {
    const NAME: &'static str = S::NAME;
}

fn is_node_client(req: &http::Request<Body>) -> bool {
    req.extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.peer_certs())
        .and_then(|certs| certs.first().and_then(|c| security::node_id_of(c)))
        .is_some()
}

impl<S> tower_service::Service<http::Request<Body>> for NodeOnly<S>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<
        Box<dyn Future<Output = Result<http::Response<Body>, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if !is_node_client(&req) {
            let status = Status::permission_denied("peer port: a node certificate is required");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(self.inner.call(req))
    }
}
