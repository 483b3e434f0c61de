//! PEM parsing and the certificate store (SNI → certificate).
//!
//! Errors about private keys never include key material: only what is wrong.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use switchyard_config::acme::is_inline_pem;
use switchyard_config::{ConfigError, DynamicConfig};

/// A PEM or key problem (never contains key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// The certificate PEM is malformed or holds no certificate.
    #[error("invalid certificate PEM: {0}")]
    Cert(String),
    /// The private key PEM is malformed or of an unsupported kind.
    #[error("invalid private key PEM (expected a PKCS#8, PKCS#1 or SEC1 key)")]
    Key,
    /// The key cannot sign (unsupported algorithm).
    #[error("unsupported private key: {0}")]
    KeyKind(String),
    /// The key is not the certificate's.
    #[error("the private key does not match the certificate")]
    Mismatch,
}

/// Parse a PEM certificate chain (at least one certificate).
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Cert(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemError::Cert("no CERTIFICATE block found".into()));
    }
    for c in &certs {
        webpki::EndEntityCert::try_from(c)
            .map_err(|e| PemError::Cert(format!("not a valid X.509 certificate ({e})")))?;
    }
    Ok(certs)
}

/// Parse a certificate chain and its private key, and check that they belong together.
pub fn parse_certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, PemError> {
    certified_key(parse_certs(cert_pem)?, key_pem)
}

/// A TLS-ALPN-01 challenge certificate and its key. RFC 8737 requires its acmeIdentifier
/// extension to be critical, which webpki refuses as an unknown critical extension, so only the
/// PEM structure and the key are checked (rustls' key match parses the certificate with webpki
/// too); the certificate is only ever shown to the CA.
pub fn parse_challenge_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, PemError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Cert(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemError::Cert("no CERTIFICATE block found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| PemError::Key)?;
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| PemError::KeyKind(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(certs, signer)))
}

fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key_pem: &str,
) -> Result<Arc<CertifiedKey>, PemError> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| PemError::Key)?;
    let provider = rustls::crypto::ring::default_provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| PemError::KeyKind(e.to_string()))?;
    let ck = CertifiedKey::new(certs, signer);
    match ck.keys_match() {
        Ok(()) => Ok(Arc::new(ck)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(Arc::new(ck)),
        Err(_) => Err(PemError::Mismatch),
    }
}

/// The DNS names (lower case) a certificate serves: its subject alternative names.
pub(crate) fn dns_names(ck: &CertifiedKey) -> Vec<String> {
    let Some(leaf) = ck.cert.first() else {
        return Vec::new();
    };
    match webpki::EndEntityCert::try_from(leaf) {
        Ok(c) => c
            .valid_dns_names()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A certificate as served: with its OCSP staple until the staple's `nextUpdate`, then without.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    plain: Arc<CertifiedKey>,
    /// The same certificate with `ocsp` set, and the staple's `nextUpdate` (Unix seconds).
    stapled: Option<(Arc<CertifiedKey>, i64)>,
}

impl Served {
    fn new(plain: Arc<CertifiedKey>, staples: &Staples) -> Self {
        let stapled = plain
            .cert
            .first()
            .and_then(|leaf| staples.get(&fingerprint(leaf)))
            .map(|(der, next_update)| {
                let mut ck = (*plain).clone();
                ck.ocsp = Some(der.clone());
                (Arc::new(ck), *next_update)
            });
        Self { plain, stapled }
    }

    /// What to send at `now` (Unix seconds): a staple past its `nextUpdate` is never sent.
    pub(crate) fn at(&self, now: i64) -> &Arc<CertifiedKey> {
        match &self.stapled {
            Some((ck, next_update)) if now < *next_update => ck,
            _ => &self.plain,
        }
    }

    fn key(&self) -> &CertifiedKey {
        &self.plain
    }
}

/// The SHA-256 fingerprint of a DER certificate, lower-case hex: how `managed.ocsp` names the
/// certificate a staple is for.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Decoded staples: fingerprint → (DER response, `nextUpdate`).
pub(crate) type Staples = HashMap<String, (Vec<u8>, i64)>;

/// `managed.ocsp`, decoded (a bad response is reported and not stapled).
fn staples(cfg: &DynamicConfig, errors: &mut Vec<ConfigError>) -> Staples {
    use base64::Engine;
    let mut out = HashMap::new();
    for (fp, s) in &cfg.managed.ocsp {
        match base64::engine::general_purpose::STANDARD.decode(s.response.as_bytes()) {
            Ok(der) if !der.is_empty() => {
                out.insert(fp.clone(), (der, s.next_update));
            }
            _ => errors.push(ConfigError::at(
                format!("managed.ocsp[{}].response", switchyard_config::quote(fp)),
                "not a base64 DER OCSP response",
            )),
        }
    }
    out
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The certificates serving one name: at most one per key algorithm (ECDSA, RSA, Ed25519),
/// in preference order (the first inserted for an algorithm wins).
pub(crate) type Candidates = Vec<Served>;

/// SNI → certificate.
#[derive(Debug, Default)]
pub(crate) struct CertStore {
    exact: HashMap<Box<str>, Candidates>,
    /// `example.com` for `*.example.com`.
    wildcard: HashMap<Box<str>, Candidates>,
    default: Option<Served>,
}

impl CertStore {
    fn add(&mut self, ck: &Served, names: &[String]) {
        for n in names {
            let (map, key) = match n.strip_prefix("*.") {
                Some(s) => (&mut self.wildcard, s),
                None => (&mut self.exact, n.as_str()),
            };
            let list = map.entry(Box::from(key)).or_default();
            let alg = ck.key().key.algorithm();
            if !list.iter().any(|c| c.key().key.algorithm() == alg) {
                list.push(ck.clone());
                // ECDSA first (cheapest handshakes, what Go prefers), then Ed25519, then RSA.
                list.sort_by_key(|c| alg_rank(c.key().key.algorithm()));
            }
        }
    }

    /// The certificates for `sni` by name (exact, then one-label wildcard).
    pub(crate) fn candidates(&self, sni: &str) -> Option<&Candidates> {
        let name = sni.trim_end_matches('.').to_ascii_lowercase();
        self.exact.get(name.as_str()).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
    }
}

fn alg_rank(a: rustls::SignatureAlgorithm) -> u8 {
    match a {
        rustls::SignatureAlgorithm::ECDSA => 0,
        rustls::SignatureAlgorithm::ED25519 => 1,
        rustls::SignatureAlgorithm::RSA => 2,
        _ => 3,
    }
}

/// Of the certificates for one name, the first whose key can sign with a scheme the client
/// offered (`signature_algorithms`); the preferred one when none can (the handshake then fails
/// as it would with a single certificate).
pub(crate) fn choose<'a>(
    list: &'a Candidates,
    offered: &[rustls::SignatureScheme],
) -> Option<&'a Served> {
    list.iter()
        .find(|c| c.key().key.choose_scheme(offered).is_some())
        .or_else(|| list.first())
}

/// The certificate resolver of one TLS option.
///
/// The one clock read of this crate is here, at handshake time: a certificate's OCSP staple is
/// sent only before its `nextUpdate`, whether or not a newer config arrived.
#[derive(Debug)]
pub(crate) struct Resolver {
    pub store: Arc<CertStore>,
    pub strict: bool,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(list) = hello.server_name().and_then(|n| self.store.candidates(n)) {
            if let Some(c) = choose(list, hello.signature_schemes()) {
                return Some(c.at(now_unix()).clone());
            }
        }
        if self.strict {
            return None;
        }
        self.store
            .default
            .as_ref()
            .map(|c| c.at(now_unix()).clone())
    }
}

/// Build the store from `tls.certificates`, `managed.certificates` and the default store.
pub(crate) fn build_store(
    cfg: &DynamicConfig,
    default_cert: Option<Arc<CertifiedKey>>,
    errors: &mut Vec<ConfigError>,
) -> CertStore {
    let mut store = CertStore::default();
    let staples = staples(cfg, errors);
    // The last certificate for a name wins: `apply` appends a changed certificate, so a
    // re-applied certificate replaces the older one for its names.
    for (i, c) in cfg.tls.certificates.iter().enumerate().rev() {
        if !is_inline_pem(&c.cert_file) || !is_inline_pem(&c.key_file) {
            continue; // reported by validate
        }
        match parse_certified_key(&c.cert_file, &c.key_file) {
            Ok(ck) => {
                let names = dns_names(&ck);
                store.add(&Served::new(ck, &staples), &names);
            }
            Err(e) => errors.push(ConfigError::at(
                format!("tls.certificates[{i}].{}", pem_field(&e)),
                e.to_string(),
            )),
        }
    }
    for (name, m) in &cfg.managed.certificates {
        match parse_certified_key(&m.pair.cert_pem, &m.pair.key_pem) {
            Ok(ck) => {
                let mut names = dns_names(&ck);
                names.extend(m.domains.iter().map(|d| d.to_ascii_lowercase()));
                store.add(&Served::new(ck, &staples), &names);
            }
            Err(e) => errors.push(ConfigError::at(
                format!("managed.certificates[{}]", switchyard_config::quote(name)),
                e.to_string(),
            )),
        }
    }
    store.default = default_cert.map(|ck| Served::new(ck, &staples));
    if let Some(dc) = cfg
        .tls
        .stores
        .get("default")
        .and_then(|s| s.default_certificate.as_ref())
    {
        if is_inline_pem(&dc.cert_file) && is_inline_pem(&dc.key_file) {
            match parse_certified_key(&dc.cert_file, &dc.key_file) {
                Ok(ck) => store.default = Some(Served::new(ck, &staples)),
                Err(e) => errors.push(ConfigError::field(
                    "tlsStore",
                    "default",
                    format!("defaultCertificate.{}", pem_field(&e)),
                    e.to_string(),
                )),
            }
        }
    }
    store
}

fn pem_field(e: &PemError) -> &'static str {
    match e {
        PemError::Cert(_) => "certFile",
        _ => "keyFile",
    }
}
