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
    /// DNS-01 challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_challenge: Option<DnsChallenge>,
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

/// `dnsChallenge`: Traefik's fields, plus the provider's settings. Traefik reads a lego
/// provider's settings from environment variables of the one Traefik process; in Switchyard the
/// leader of the moment runs the challenge, so the settings live in the replicated config, in a
/// block named like the provider whose fields are lego's variable names in camelCase
/// (`RFC2136_TSIG_SECRET` → `rfc2136.tsigSecret`). Secrets (`tsigSecret`, `password`) are
/// redacted like private keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsChallenge {
    /// `rfc2136`, `httpreq` or `exec`.
    #[serde(default)]
    pub provider: String,
    /// DNS servers (`host:port`, port 53 when omitted) for the propagation check; the system's
    /// (`/etc/resolv.conf`) when empty.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resolvers: Vec<String>,
    /// Propagation check settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<DnsPropagation>,
    /// Traefik v2 spelling of `propagation.delayBeforeChecks` (deprecated in v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_before_check: Option<String>,
    /// Traefik v2 spelling of `propagation.disableChecks` (deprecated in v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_propagation_check: Option<bool>,
    /// Settings of provider `rfc2136`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc2136: Option<Rfc2136>,
    /// Settings of provider `httpreq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub httpreq: Option<HttpReq>,
    /// Settings of provider `exec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecHook>,
}

impl DnsChallenge {
    /// Wait this long after the records are published before checking (or, with checks
    /// disabled, before telling the CA): `propagation.delayBeforeChecks`, else the v2 name.
    pub fn delay_before_checks(&self) -> Option<&str> {
        self.propagation
            .as_ref()
            .and_then(|p| p.delay_before_checks.as_deref())
            .or(self.delay_before_check.as_deref())
    }

    /// Whether the propagation check is skipped.
    pub fn checks_disabled(&self) -> bool {
        self.propagation
            .as_ref()
            .and_then(|p| p.disable_checks)
            .or(self.disable_propagation_check)
            .unwrap_or(false)
    }
}

/// `dnsChallenge.propagation`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsPropagation {
    /// Skip the propagation check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_checks: Option<bool>,
    /// Skip the check against the zone's authoritative name servers.
    #[serde(
        default,
        rename = "disableANSChecks",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_ans_checks: Option<bool>,
    /// Require every resolver to see the record (the default: any one of them suffices).
    #[serde(
        default,
        rename = "requireAllRNS",
        skip_serializing_if = "Option::is_none"
    )]
    pub require_all_rns: Option<bool>,
    /// Go duration to wait before the first check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_before_checks: Option<String>,
}

/// `dnsChallenge.rfc2136`: lego's `RFC2136_*` variables.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rfc2136 {
    /// The primary server accepting updates, `host:port` (port 53 when omitted).
    #[serde(default)]
    pub nameserver: String,
    /// TSIG key name (no TSIG when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_key: Option<String>,
    /// TSIG secret, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_secret: Option<String>,
    /// `hmac-sha256.` (default), `hmac-sha384.` or `hmac-sha512.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_algorithm: Option<String>,
    /// TTL of the TXT records (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// The zone to update; found with an SOA query when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// `dnsChallenge.httpreq`: lego's `HTTPREQ_*` variables. `POST <endpoint>/present` and
/// `/cleanup` with `{"fqdn", "value"}`, or in `RAW` mode `{"domain", "token", "keyAuth"}`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpReq {
    /// Base URL.
    #[serde(default)]
    pub endpoint: String,
    /// `RAW` or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Basic authentication user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Basic authentication password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `dnsChallenge.exec`: lego's `EXEC_*` variables. Runs `<path> present <fqdn> <value>` and
/// `<path> cleanup <fqdn> <value>` on the leader, or in `RAW` mode
/// `<path> present -- <domain> <token> <keyAuth>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecHook {
    /// Program to run (absolute path; it must exist on every control node).
    #[serde(default)]
    pub path: String,
    /// `RAW` or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl std::fmt::Debug for Rfc2136 {
    /// Never prints the TSIG secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136")
            .field("nameserver", &self.nameserver)
            .field("tsig_key", &self.tsig_key)
            .field(
                "tsig_secret",
                &self.tsig_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("tsig_algorithm", &self.tsig_algorithm)
            .field("ttl", &self.ttl)
            .field("zone", &self.zone)
            .finish()
    }
}

impl std::fmt::Debug for HttpReq {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpReq")
            .field("endpoint", &self.endpoint)
            .field("mode", &self.mode)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
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
    /// TLS session-ticket keys shared by every proxy of the cluster, newest first: the first
    /// encrypts new tickets, every one decrypts (the previous key keeps tickets issued before a
    /// rotation valid for one more period).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ticket_keys: Vec<TicketKey>,
    /// Stapled OCSP responses, by the SHA-256 fingerprint (lower-case hex) of the leaf
    /// certificate they answer for: fetched by the control plane's leader from the responder
    /// the certificate names, served by every proxy until their `nextUpdate`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ocsp: BTreeMap<String, OcspStaple>,
}

/// One OCSP response a proxy staples for a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OcspStaple {
    /// The DER `OCSPResponse`, base64 (standard alphabet).
    pub response: String,
    /// The certificate's status in it: `good`, `revoked` or `unknown`.
    pub status: String,
    /// Its `thisUpdate` (Unix seconds).
    pub this_update: i64,
    /// Its `nextUpdate` (Unix seconds): proxies stop stapling it then.
    pub next_update: i64,
    /// The responder it came from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub responder: String,
}

impl ManagedTls {
    /// True when nothing is managed.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
            && self.http01.is_empty()
            && self.tls_alpn01.is_empty()
            && self.ticket_keys.is_empty()
            && self.ocsp.is_empty()
    }
}

/// One session-ticket key (generated by the control plane's leader).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketKey {
    /// Key name, 16 bytes in hex: written in front of every ticket it encrypts.
    pub name: String,
    /// AES-256-GCM key, 32 bytes in base64.
    pub key: String,
    /// When it was generated (Unix seconds).
    pub created_unix: u64,
    /// The rotation period it was made for (seconds); its tickets' lifetime hint is two
    /// periods, the longest a ticket stays decryptable.
    pub lifetime_secs: u32,
}

impl std::fmt::Debug for TicketKey {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKey")
            .field("name", &self.name)
            .field("created_unix", &self.created_unix)
            .finish_non_exhaustive()
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

/// A DNS server address: an IP with an optional port (53), `[v6]:port` for IPv6 with a port.
pub fn parse_dns_server(s: &str) -> Option<std::net::SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Some(a);
    }
    s.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
}

/// Whether `s` is a DNS name (letters, digits, `-`, `_`, labels of 1-63 bytes, at most 253
/// bytes; a trailing dot is allowed).
pub fn is_dns_name(s: &str) -> bool {
    let n = s.strip_suffix('.').unwrap_or(s);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The TSIG algorithms the RFC 2136 provider signs with, by lego's names (with or without the
/// trailing dot, any case). HMAC-MD5 and HMAC-SHA1 are refused: the DNS library implements the
/// SHA-2 ones only.
pub fn tsig_algorithm(s: &str) -> Option<&'static str> {
    match s.trim().trim_end_matches('.').to_ascii_lowercase().as_str() {
        "" | "hmac-sha256" => Some("hmac-sha256"),
        "hmac-sha384" => Some("hmac-sha384"),
        "hmac-sha512" => Some("hmac-sha512"),
        _ => None,
    }
}
