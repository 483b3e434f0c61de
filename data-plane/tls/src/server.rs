//! One rustls `ServerConfig` per TLS option, and the TLS-ALPN-01 answering config.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use switchyard_config::{quote, TlsOptions};

use crate::certs::{parse_certs, CertStore, Resolver};
use crate::ACME_TLS_ALPN;

/// `(field, message)`.
pub(crate) type FieldError = (String, String);

fn ferr(field: &str, msg: impl Into<String>) -> FieldError {
    (field.to_string(), msg.into())
}

/// TLS 1.2 suite names as Go (and Traefik) spell them → rustls suite (same IANA names).
fn suite_name(s: &SupportedCipherSuite) -> String {
    format!("{:?}", s.suite())
}

/// Protocol versions of an option: rustls has TLS 1.2 and 1.3; 1.0/1.1 minimums clamp to 1.2.
fn versions(o: &TlsOptions) -> Result<Vec<&'static SupportedProtocolVersion>, FieldError> {
    let rank = |v: &str| match v {
        "VersionTLS10" => Some(10),
        "VersionTLS11" => Some(11),
        "VersionTLS12" => Some(12),
        "VersionTLS13" => Some(13),
        _ => None,
    };
    let min = match o.min_version.as_deref().filter(|s| !s.is_empty()) {
        None => 12,
        Some(v) => rank(v)
            .ok_or_else(|| ferr("minVersion", format!("unknown TLS version {}", quote(v))))?,
    };
    let max = match o.max_version.as_deref().filter(|s| !s.is_empty()) {
        None => 13,
        Some(v) => rank(v)
            .ok_or_else(|| ferr("maxVersion", format!("unknown TLS version {}", quote(v))))?,
    };
    if max < 12 {
        return Err(ferr(
            "maxVersion",
            "TLS 1.0 and 1.1 are not supported (rustls implements TLS 1.2 and 1.3)",
        ));
    }
    let mut out = Vec::new();
    if min <= 12 && max >= 12 {
        out.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(ferr("minVersion", "must not be greater than maxVersion"));
    }
    Ok(out)
}

/// The crypto provider of an option: ring, restricted by `cipherSuites` and `curvePreferences`.
fn provider(o: &TlsOptions) -> Result<CryptoProvider, FieldError> {
    let mut p = rustls::crypto::ring::default_provider();
    if !o.cipher_suites.is_empty() {
        let all = p.cipher_suites.clone();
        for name in &o.cipher_suites {
            let known = all.iter().any(|s| &suite_name(s) == name)
                || matches!(
                    name.as_str(),
                    "TLS_AES_128_GCM_SHA256"
                        | "TLS_AES_256_GCM_SHA384"
                        | "TLS_CHACHA20_POLY1305_SHA256"
                );
            if !known {
                let mut names: Vec<String> = all
                    .iter()
                    .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
                    .map(suite_name)
                    .collect();
                names.sort();
                return Err(ferr(
                    "cipherSuites",
                    format!(
                        "unknown or unsupported cipher suite {}, expected one of {}",
                        quote(name),
                        names.join(", ")
                    ),
                ));
            }
        }
        // TLS 1.3 suites are not configurable (as in Go).
        p.cipher_suites.retain(|s| {
            matches!(s, SupportedCipherSuite::Tls13(_)) || o.cipher_suites.contains(&suite_name(s))
        });
    }
    if !o.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for c in &o.curve_preferences {
            let want = match c.as_str() {
                "X25519" => "X25519",
                "CurveP256" | "secp256r1" => "secp256r1",
                "CurveP384" | "secp384r1" => "secp384r1",
                _ => {
                    return Err(ferr(
                        "curvePreferences",
                        format!(
                            "unsupported curve {}, expected X25519, CurveP256 or CurveP384",
                            quote(c)
                        ),
                    ))
                }
            };
            if let Some(g) = p
                .kx_groups
                .iter()
                .find(|g| format!("{:?}", g.name()) == want)
            {
                groups.push(*g);
            }
        }
        p.kx_groups = groups;
    }
    Ok(p)
}

/// Traefik's five client authentication modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

fn client_verifier(
    o: &TlsOptions,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, FieldError> {
    let Some(ca) = &o.client_auth else {
        return Ok(None);
    };
    let mut roots = RootCertStore::empty();
    for (i, pem) in ca.ca_files.iter().enumerate() {
        let field = format!("clientAuth.caFiles[{i}]");
        let certs = parse_certs(pem).map_err(|e| (field.clone(), e.to_string()))?;
        for c in certs {
            roots
                .add(c)
                .map_err(|e| (field.clone(), format!("invalid CA certificate: {e}")))?;
        }
    }
    // As in Traefik: CA files alone mean RequireAndVerifyClientCert.
    let default = if ca.ca_files.is_empty() {
        AuthMode::NoClientCert
    } else {
        AuthMode::RequireAndVerifyClientCert
    };
    let mode = match ca.client_auth_type.as_deref().filter(|s| !s.is_empty()) {
        None => default,
        Some("NoClientCert") => AuthMode::NoClientCert,
        Some("RequestClientCert") => AuthMode::RequestClientCert,
        Some("RequireAnyClientCert") => AuthMode::RequireAnyClientCert,
        Some("VerifyClientCertIfGiven") => AuthMode::VerifyClientCertIfGiven,
        Some("RequireAndVerifyClientCert") => AuthMode::RequireAndVerifyClientCert,
        Some(other) => {
            return Err(ferr(
                "clientAuth.clientAuthType",
                format!("unknown client auth type {}", quote(other)),
            ))
        }
    };
    let roots = Arc::new(roots);
    let verify = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, FieldError> {
        if roots.is_empty() {
            return Err(ferr(
                "clientAuth.caFiles",
                "is required with clientAuthType VerifyClientCertIfGiven or RequireAndVerifyClientCert",
            ));
        }
        let mut b = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
        if optional {
            b = b.allow_unauthenticated();
        }
        b.build()
            .map_err(|e| ferr("clientAuth.caFiles", format!("{e}")))
    };
    Ok(match mode {
        AuthMode::NoClientCert => None,
        AuthMode::RequestClientCert => Some(Arc::new(AnyClientCert {
            provider: provider.clone(),
            mandatory: false,
        })),
        AuthMode::RequireAnyClientCert => Some(Arc::new(AnyClientCert {
            provider: provider.clone(),
            mandatory: true,
        })),
        AuthMode::VerifyClientCertIfGiven => Some(verify(true)?),
        AuthMode::RequireAndVerifyClientCert => Some(verify(false)?),
    })
}

/// `RequestClientCert` / `RequireAnyClientCert`: any certificate is accepted (its signature is
/// still checked, so the client holds its key).
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server config of one TLS option.
pub(crate) fn server_config(
    o: &TlsOptions,
    store: Arc<CertStore>,
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
) -> Result<Arc<ServerConfig>, FieldError> {
    let versions = versions(o)?;
    let provider = Arc::new(provider(o)?);
    let verifier = client_verifier(o, &provider)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| ferr("cipherSuites", format!("{e}")))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(Resolver {
        store,
        strict: o.sni_strict.unwrap_or(false),
    }));
    cfg.alpn_protocols = if o.alpn_protocols.is_empty() {
        vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()]
    } else {
        o.alpn_protocols
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect()
    };
    if o.disable_session_tickets.unwrap_or(false) {
        cfg.send_tls13_tickets = 0;
    } else if let Some(t) = ticketer {
        cfg.ticketer = t;
    }
    Ok(Arc::new(cfg))
}

/// Resolver for TLS-ALPN-01 challenge certificates (exact SNI only).
#[derive(Debug)]
struct AcmeResolver(HashMap<Box<str>, Arc<CertifiedKey>>);

impl ResolvesServerCert for AcmeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        self.0.get(name.as_str()).cloned()
    }
}

/// The config answering TLS-ALPN-01 challenges: ALPN `acme-tls/1` only, TLS 1.2+.
pub(crate) fn acme_config(
    keys: HashMap<Box<str>, Arc<CertifiedKey>>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(AcmeResolver(keys)));
    cfg.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(cfg))
}
