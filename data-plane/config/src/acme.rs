//! ACME certificate resolvers (`certificatesResolvers`) and the cluster-managed TLS material
//! (`managed`) that the control plane writes and every proxy serves.
//!
//! `certificatesResolvers` is written exactly as Traefik writes it in its *static* configuration
//! (`certificatesResolvers.<name>.acme.{email, caServer, …}`), but in Switchyard it is cluster
//! configuration: it is applied with the rest of the document, replicated, and validated by
//! [`crate::validate`]. `storage` is accepted and ignored (the cluster is the storage).
//!
//! [`ManagedTls`] is not user input: the document parser refuses a top-level `managed` key. The
//! control plane's ACME manager fills it through Raft commands (issued certificates and the
//! answers to pending HTTP-01 and TLS-ALPN-01 challenges), and the config stream carries it to the
//! proxies inside the config snapshot ([`crate::from_stream_value`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::null_default;

/// `certificatesResolvers.<name>`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertResolver {
    /// The ACME resolver (the only kind Switchyard implements; `tailscale` is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeResolver>,
    /// Traefik's Tailscale resolver (parsed so the error is precise; not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailscale: Option<serde_json::Value>,
}

/// `certificatesResolvers.<name>.acme`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcmeResolver {
    /// Account contact e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Directory URL; default Let's Encrypt production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_server: Option<String>,
    /// Extra roots to trust for the ACME directory: inline PEM (the CLI uploads file contents).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ca_certificates: Vec<String>,
    /// Also trust the system roots when `caCertificates` is set (Traefik's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_system_cert_pool: Option<bool>,
    /// Server name to verify the ACME server's certificate against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_server_name: Option<String>,
    /// External account binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab: Option<Eab>,
    /// `EC256`, `EC384`, `RSA2048`, `RSA4096` (Traefik's default) or `RSA8192`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// Expected certificate lifetime in hours (default 2160); selects the renewal window and
    /// check interval as Traefik does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_duration: Option<i64>,
    /// Switchyard extension: renew this long before expiry (Go duration), overriding the window
    /// derived from `certificatesDuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    /// Switchyard extension: how often certificates are checked for renewal (Go duration),
    /// overriding the interval derived from `certificatesDuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_check_interval: Option<String>,
    /// HTTP-01 challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_challenge: Option<HttpChallenge>,
    /// TLS-ALPN-01 challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_challenge: Option<TlsChallenge>,
    /// DNS-01 challenge (parsed; not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_challenge: Option<serde_json::Value>,
    /// Traefik's local storage file: accepted and ignored, the cluster is the storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Preferred chain (issuer common name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_chain: Option<String>,
    /// ACME profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// E-mail addresses to put in the CSR.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub email_addresses: Vec<String>,
    /// Leave the common name out of the CSR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_common_name: Option<bool>,
    /// HTTP client timeout towards the CA (Go duration; default 2m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_timeout: Option<String>,
    /// Response header timeout towards the CA (Go duration; default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_response_header_timeout: Option<String>,
    /// How long to wait for the certificate once the order is finalized (Go duration; 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_timeout: Option<String>,
}

/// `eab`
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Eab {
    /// Key identifier.
    #[serde(default)]
    pub kid: String,
    /// Base64url HMAC key.
    #[serde(default)]
    pub hmac_encoded: String,
}

/// `httpChallenge`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpChallenge {
    /// Entry point the CA reaches (port 80 in production).
    #[serde(default)]
    pub entry_point: String,
    /// Delay before telling the CA the challenge is ready (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
}

/// `tlsChallenge`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsChallenge {
    /// Delay before telling the CA the challenge is ready (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
}

/// TLS material the control plane manages for the proxies. Never accepted from users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedTls {
    /// Certificates issued by a resolver, by name (`<resolver>/<first domain>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub certificates: BTreeMap<String, ManagedCertificate>,
    /// Pending HTTP-01 challenges: token → key authorization, served at
    /// `/.well-known/acme-challenge/<token>` on every entry point ahead of every router.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http01: BTreeMap<String, String>,
    /// Pending TLS-ALPN-01 challenges: domain → the challenge certificate, served to clients
    /// offering only the `acme-tls/1` protocol with that SNI.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tls_alpn01: BTreeMap<String, KeyPair>,
}

impl ManagedTls {
    /// True when nothing is managed.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty() && self.http01.is_empty() && self.tls_alpn01.is_empty()
    }
}

/// An issued certificate as the proxies serve it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedCertificate {
    /// The resolver that issued it.
    pub resolver: String,
    /// The names it was ordered for (first = main domain).
    pub domains: Vec<String>,
    /// Certificate chain and private key, PEM.
    pub pair: KeyPair,
}

/// A certificate chain with its private key, both PEM.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyPair {
    /// Certificate chain, PEM, leaf first.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for Eab {
    /// Never prints the HMAC key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eab")
            .field("kid", &self.kid)
            .field("hmac_encoded", &format_args!("<redacted>"))
            .finish()
    }
}

impl std::fmt::Debug for KeyPair {
    /// Never prints the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

/// True when a `certFile`/`keyFile`/CA value holds PEM text rather than a path.
pub fn is_inline_pem(v: &str) -> bool {
    v.trim_start().starts_with("-----BEGIN ")
}
