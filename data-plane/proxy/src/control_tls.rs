//! The proxy's credentials towards the control plane (secure mode): the cluster CA that control
//! nodes' certificates are verified with, a join token, and the short-lived client certificate the
//! join token buys (`JoinProxy`). The certificate is renewed over the config stream at 2/3 of its
//! lifetime with a fresh key; the private key never leaves the process and nothing is written to
//! disk. If the certificate expired while no node was reachable, the proxy joins again with its
//! join token.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard_proto::admin::admin_client::AdminClient;
use switchyard_proto::admin::{JoinProxyRequest, ProxyCertificate};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::Proxy;

/// A client certificate and its key (PEM).
#[derive(Clone)]
struct ClientIdentity {
    cert_pem: String,
    key_pem: String,
    issued_at: u64,
    not_after: u64,
}

/// Secure-mode settings of the config client (`--ca-cert`, `--join-token`).
pub struct ControlTls {
    ca_pem: String,
    join_token: MetadataValue<Ascii>,
    identity: Mutex<Option<ClientIdentity>>,
}

impl std::fmt::Debug for ControlTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlTls").finish_non_exhaustive()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh key pair: (private key PEM, public key PEM).
pub fn new_key() -> Result<(String, String), String> {
    let k = rcgen::KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
    Ok((k.serialize_pem(), k.public_key_pem()))
}

impl ControlTls {
    /// From the CA certificate (PEM) and the join token.
    pub fn new(ca_pem: String, join_token: &str) -> Result<Arc<Self>, String> {
        let join_token = format!("Bearer {}", join_token.trim())
            .parse()
            .map_err(|_| "--join-token: not a valid token".to_string())?;
        Ok(Arc::new(Self {
            ca_pem,
            join_token,
            identity: Mutex::new(None),
        }))
    }

    fn current(&self) -> Option<ClientIdentity> {
        match self.identity.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, proxy: &Proxy, id: ClientIdentity) {
        proxy.metrics().cert_expiry.set(id.not_after as i64);
        match self.identity.lock() {
            Ok(mut g) => *g = Some(id),
            Err(p) => *p.into_inner() = Some(id),
        }
    }

    /// Installs a certificate issued for `key_pem` (by `JoinProxy` or a renewal).
    pub fn install(&self, proxy: &Proxy, key_pem: String, cert: ProxyCertificate) {
        self.set(
            proxy,
            ClientIdentity {
                cert_pem: cert.cert_pem,
                key_pem,
                issued_at: now_unix(),
                not_after: cert.not_after_unix,
            },
        );
    }

    /// The join token as a bearer header value (for `JoinProxy` and node discovery).
    pub fn bearer(&self) -> MetadataValue<Ascii> {
        self.join_token.clone()
    }

    /// How long until the current certificate should be renewed (2/3 of its lifetime).
    pub fn renew_in(&self) -> Option<Duration> {
        let id = self.current()?;
        let life = id.not_after.saturating_sub(id.issued_at);
        let at = id.issued_at + life * 2 / 3;
        Some(Duration::from_secs(at.saturating_sub(now_unix())))
    }

    fn tls(&self, identity: Option<&ClientIdentity>) -> ClientTlsConfig {
        let mut t = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        if let Some(id) = identity {
            t = t.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
        }
        t
    }

    /// A TLS channel to `endpoint` presenting a valid client certificate, joining first (with the
    /// join token) when there is none or it is about to expire.
    pub async fn channel(&self, proxy: &Proxy, endpoint: Endpoint) -> Result<Channel, String> {
        let usable = self.current().filter(|id| now_unix() + 2 < id.not_after);
        let id = match usable {
            Some(id) => id,
            None => {
                self.join(proxy, endpoint.clone()).await?;
                self.current()
                    .ok_or_else(|| "join gave no certificate".to_string())?
            }
        };
        endpoint
            .tls_config(self.tls(Some(&id)))
            .map_err(|e| format!("TLS: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("connect: {}", chain(&e)))
    }

    async fn join(&self, proxy: &Proxy, endpoint: Endpoint) -> Result<(), String> {
        let ch = endpoint
            .tls_config(self.tls(None))
            .map_err(|e| format!("TLS: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("connect: {}", chain(&e)))?;
        let (key_pem, public_key_pem) = new_key()?;
        let mut req = tonic::Request::new(JoinProxyRequest {
            proxy_id: proxy.id().to_string(),
            public_key_pem,
        });
        req.metadata_mut().insert("authorization", self.bearer());
        req.set_timeout(Duration::from_secs(5));
        let cert = AdminClient::new(ch)
            .join_proxy(req)
            .await
            .map_err(|s| format!("join refused: {} ({:?})", s.message(), s.code()))?
            .into_inner();
        tracing::info!(
            not_after_unix = cert.not_after_unix,
            "joined the cluster: client certificate issued"
        );
        self.install(proxy, key_pem, cert);
        Ok(())
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
