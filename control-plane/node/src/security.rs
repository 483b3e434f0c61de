//! Security of a control node: the cluster CA and the certificates it issues, API tokens and the
//! role check every admin call goes through.
//!
//! Trust model (see ARCHITECTURE.md "Security"): the CA (certificate and key) lives in the replicated
//! store, created before Raft forms by the lowest founding node (`crate::peer_tls`) and committed by
//! the first leader together with the bootstrap admin token. Every node issues itself its API and
//! peer certificates from it; proxies get short-lived client certificates from
//! `JoinProxy` (join token) and renew them over the config stream.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SubjectPublicKeyInfo,
};
use switchyard_store::{ClusterCa, Role, SecurityState};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Status;

use crate::shared::Shared;

/// Metadata key of the bearer token.
pub const AUTHORIZATION: &str = "authorization";

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex(&b)
}

/// Hex SHA-256 of a token secret (what the store keeps).
pub fn hash_token(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.trim().as_bytes()).as_ref())
}

/// A new token: (id, secret). The secret is `sy_` + 32 random bytes in hex.
pub fn new_token() -> (String, String) {
    (random_hex(6), format!("sy_{}", random_hex(32)))
}

#[derive(Debug, thiserror::Error)]
#[error("certificate: {0}")]
pub struct CertError(String);

impl CertError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

fn cert_err(e: impl std::fmt::Display) -> CertError {
    CertError(e.to_string())
}

fn validity(params: &mut CertificateParams, ttl: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks that differ between nodes and proxies.
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(ttl.as_secs().min(i64::MAX as u64) as i64);
}

/// A new cluster CA (ECDSA P-256, ten years).
pub fn generate_ca() -> Result<ClusterCa, CertError> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Switchyard");
    dn.push(
        DnType::CommonName,
        format!("Switchyard cluster CA {}", random_hex(4)),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, Duration::from_secs(10 * 365 * 24 * 3600));
    let cert = params.self_signed(&key).map_err(cert_err)?;
    Ok(ClusterCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issuer(ca: &ClusterCa) -> Result<Issuer<'static, KeyPair>, CertError> {
    let key = KeyPair::from_pem(&ca.key_pem).map_err(cert_err)?;
    Issuer::from_ca_cert_pem(&ca.cert_pem, key).map_err(cert_err)
}

/// A node's certificate and key (PEM) for its API and peer ports: server and client use, valid for
/// `names` (IP addresses or DNS names) and `localhost`.
pub fn issue_node_cert(
    ca: &ClusterCa,
    node_id: u64,
    names: &[String],
) -> Result<(String, String), CertError> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for n in names {
        if !n.is_empty() && !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let mut params = CertificateParams::new(sans).map_err(cert_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("node:{node_id}"));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, Duration::from_secs(365 * 24 * 3600));
    let cert = params.signed_by(&key, &issuer(ca)?).map_err(cert_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A proxy client certificate for `public_key_pem`, valid for `ttl`. Returns (cert PEM, not-after).
pub fn issue_proxy_cert(
    ca: &ClusterCa,
    proxy_id: &str,
    public_key_pem: &str,
    ttl: Duration,
) -> Result<(String, u64), CertError> {
    let public = SubjectPublicKeyInfo::from_pem(public_key_pem)
        .map_err(|e| CertError(format!("public key: {e}")))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("proxy:{proxy_id}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, ttl);
    let not_after = params.not_after.unix_timestamp().max(0) as u64;
    let cert = params.signed_by(&public, &issuer(ca)?).map_err(cert_err)?;
    Ok((cert.pem(), not_after))
}

/// Writes `contents` to `path` with mode 0600 (replacing it).
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What an admin method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    /// `JoinProxy`: a proxy join token (or admin).
    Join,
    /// `ClusterStatus`: a read that proxies also make (node discovery with their join token).
    Discover,
}

/// The role each `switchyard.admin.v1.Admin` method requires (unknown methods: admin).
pub fn need_for(method: &str) -> Need {
    match method {
        "Get" | "List" | "GetConfig" | "ListProxies" | "ListCertificates" | "GetRollout" => {
            Need::Read
        }
        "ClusterStatus" => Need::Discover,
        "JoinProxy" => Need::Join,
        _ => Need::Write,
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Token(Role),
}

pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let v = v.trim();
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

/// Authenticates a bearer token against the applied security state.
pub fn authenticate(sec: &SecurityState, token: Option<&str>) -> Result<Caller, Status> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(Status::unauthenticated(
            "missing bearer token (pass --token or SWITCHYARD_TOKEN)",
        ));
    };
    match sec.token_by_hash(&hash_token(token), now_unix()) {
        Some(t) => Ok(Caller::Token(t.role)),
        None => Err(Status::unauthenticated("invalid, expired or revoked token")),
    }
}

/// Checks that `caller` may call a method needing `need`.
pub fn authorize(caller: &Caller, need: Need, method: &str) -> Result<(), Status> {
    let ok = matches!(
        (caller, need),
        (Caller::Token(Role::Admin), _)
            | (Caller::Token(Role::Viewer), Need::Read | Need::Discover)
            | (Caller::Token(Role::Proxy), Need::Join | Need::Discover)
    );
    if ok {
        Ok(())
    } else {
        let Caller::Token(r) = caller;
        let role = r.as_str();
        Err(Status::permission_denied(format!(
            "role {role} may not call {method}"
        )))
    }
}

/// Wraps a gRPC service of the Admin API: every call is authenticated and authorized by method
/// before it reaches the service (the one place the role table is enforced). `None` shared: open
/// (`--insecure`).
#[derive(Clone)]
pub struct Authed<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S> Authed<S> {
    pub fn new(inner: S, shared: Option<Arc<Shared>>) -> Self {
        Self { inner, shared }
    }
}

impl<S: NamedService> NamedService for Authed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower_service::Service<http::Request<Body>> for Authed<S>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if let Some(shared) = &self.shared {
            let method = req
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            let verdict = {
                let applied = shared.applied.borrow();
                authenticate(&applied.state.security, bearer(req.headers()))
                    .and_then(|c| authorize(&c, need_for(&method), &method))
            };
            if let Err(status) = verdict {
                tracing::debug!(method = %method, code = ?status.code(), "admin call refused");
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        let fut = self.inner.call(req);
        Box::pin(fut)
    }
}

/// The node id of a CA-issued node certificate (DER): its common name `node:ID`.
pub fn node_id_of(der: &[u8]) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    cn.strip_prefix("node:")?.parse().ok()
}

/// The proxy id of a CA-issued proxy client certificate (DER): its common name `proxy:ID`.
pub fn proxy_id_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    cn.strip_prefix("proxy:").map(str::to_string)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        let viewer = Caller::Token(Role::Viewer);
        let proxy = Caller::Token(Role::Proxy);
        let admin = Caller::Token(Role::Admin);
        for m in [
            "Get",
            "List",
            "GetConfig",
            "ClusterStatus",
            "ListProxies",
            "ListCertificates",
            "GetRollout",
        ] {
            assert!(authorize(&viewer, need_for(m), m).is_ok(), "{m}");
        }
        for m in [
            "Apply",
            "Delete",
            "AddNode",
            "PromoteNode",
            "RemoveNode",
            "CreateToken",
            "ListTokens",
            "RevokeToken",
            "JoinProxy",
            "ControlRollout",
            "Unknown",
        ] {
            let e = authorize(&viewer, need_for(m), m).unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied, "{m}");
            assert!(authorize(&admin, need_for(m), m).is_ok(), "{m}");
        }
        assert!(authorize(&proxy, need_for("JoinProxy"), "JoinProxy").is_ok());
        assert!(authorize(&proxy, need_for("ClusterStatus"), "ClusterStatus").is_ok());
        assert!(authorize(&proxy, need_for("Get"), "Get").is_err());
    }

    #[test]
    fn authentication() {
        let mut sec = SecurityState::default();
        assert_eq!(
            authenticate(&sec, None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let ca = generate_ca().unwrap();
        let (id, secret) = new_token();
        sec.apply(
            &switchyard_store::SecurityCommand::Init {
                ca: ca.clone(),
                admin_token_id: id.clone(),
                admin_token_hash: hash_token(&secret),
            },
            now_unix(),
        );
        assert_eq!(
            authenticate(&sec, Some(&secret)).unwrap(),
            Caller::Token(Role::Admin)
        );
        assert!(authenticate(&sec, Some("sy_wrong")).is_err());
        sec.apply(
            &switchyard_store::SecurityCommand::RevokeToken { id },
            now_unix(),
        );
        assert!(authenticate(&sec, Some(&secret)).is_err());
    }

    #[test]
    fn certificates_chain_to_the_ca() {
        let ca = generate_ca().unwrap();
        let (cert, key) = issue_node_cert(&ca, 3, &["10.0.0.1".into()]).unwrap();
        assert!(cert.contains("BEGIN CERTIFICATE") && key.contains("PRIVATE KEY"));
        let k = KeyPair::generate().unwrap();
        let (pem, not_after) =
            issue_proxy_cert(&ca, "edge-1", &k.public_key_pem(), Duration::from_secs(60)).unwrap();
        assert!(not_after > now_unix() && not_after <= now_unix() + 61);
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        assert_eq!(proxy_id_of(&der.contents).as_deref(), Some("edge-1"));
        assert!(issue_proxy_cert(&ca, "x", "not a key", Duration::from_secs(60)).is_err());
    }
}
