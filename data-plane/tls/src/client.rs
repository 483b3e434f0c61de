//! TLS client configs towards `https` backends (one per servers transport).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use switchyard_config::ServersTransport;

use crate::certs::{parse_certified_key, parse_certs};
use crate::server::FieldError;

/// Check a servers transport's TLS settings (what [`client_config`] would refuse).
pub(crate) fn check(t: &ServersTransport) -> Result<(), FieldError> {
    build(t, true).map(|_| ())
}

/// Build the client config of a servers transport (`http2`: offer `h2` in ALPN). The error
/// names the field, e.g. `rootCAs[0]: invalid certificate PEM: …`.
pub fn client_config(t: &ServersTransport, http2: bool) -> Result<Arc<ClientConfig>, String> {
    build(t, http2).map_err(|(f, m)| format!("{f}: {m}"))
}

fn build(t: &ServersTransport, http2: bool) -> Result<Arc<ClientConfig>, FieldError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| (String::new(), e.to_string()))?;
    let builder = if t.insecure_skip_verify.unwrap_or(false) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        if t.root_cas.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for (i, pem) in t.root_cas.iter().enumerate() {
            let field = format!("rootCAs[{i}]");
            for c in parse_certs(pem).map_err(|e| (field.clone(), e.to_string()))? {
                roots
                    .add(c)
                    .map_err(|e| (field.clone(), format!("invalid CA certificate: {e}")))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut cfg = match t.certificates.as_slice() {
        [] => builder.with_no_client_auth(),
        [c] => {
            let ck = parse_certified_key(&c.cert_file, &c.key_file).map_err(|e| {
                let f = match e {
                    crate::PemError::Cert(_) => "certificates[0].certFile",
                    _ => "certificates[0].keyFile",
                };
                (f.to_string(), e.to_string())
            })?;
            builder
                .with_client_auth_cert(ck.cert.clone(), load_key(c)?)
                .map_err(|e| ("certificates[0]".to_string(), e.to_string()))?
        }
        _ => {
            return Err((
                "certificates".to_string(),
                "at most one client certificate per servers transport is supported".to_string(),
            ))
        }
    };
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(cfg))
}

fn load_key(
    c: &switchyard_config::Certificate,
) -> Result<rustls::pki_types::PrivateKeyDer<'static>, FieldError> {
    use rustls_pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(c.key_file.as_bytes()).map_err(|_| {
        (
            "certificates[0].keyFile".to_string(),
            crate::PemError::Key.to_string(),
        )
    })
}

/// `insecureSkipVerify`: any certificate is accepted; signatures are still verified so the
/// peer holds the key of the certificate it presented. Public so tests can look at what a server
/// presents without trusting it.
#[derive(Debug)]
pub struct AcceptAny(Arc<CryptoProvider>);

impl AcceptAny {
    /// With the workspace's crypto provider (ring).
    pub fn new() -> Arc<Self> {
        Arc::new(AcceptAny(
            Arc::new(rustls::crypto::ring::default_provider()),
        ))
    }
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
