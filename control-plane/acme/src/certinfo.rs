//! What `switchyard get certs` shows about a certificate, parsed from its PEM chain. Pure.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Facts about the leaf of a PEM chain. Never holds key material.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// DNS names and IP addresses of the subject alternative names (the subject CN when none).
    pub names: Vec<String>,
    /// Issuer common name (the whole issuer DN when it has no CN).
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Serial number, lowercase hex.
    pub serial: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CertInfoError {
    #[error("no certificate in PEM")]
    Empty,
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("invalid certificate: {0}")]
    Der(String),
}

/// Parses the leaf (first certificate) of a PEM chain.
pub fn parse_leaf(pem: &str) -> Result<CertInfo, CertInfoError> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or(CertInfoError::Empty)?
        .map_err(|e| CertInfoError::Pem(e.to_string()))?;
    parse_der(&der)
}

/// Parses one DER certificate.
pub fn parse_der(der: &[u8]) -> Result<CertInfo, CertInfoError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertInfoError::Der(e.to_string()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names.push(std::net::Ipv4Addr::from([b[0], b[1], b[2], b[3]]).to_string()),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        names.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert.subject().iter_common_name().next() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_string());
            }
        }
    }
    let issuer = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok().map(str::to_string))
        .unwrap_or_else(|| cert.issuer().to_string());
    Ok(CertInfo {
        names,
        issuer,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: cert.raw_serial_as_string().replace(':', ""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_issuer_validity_serial() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p =
            rcgen::CertificateParams::new(vec!["a.test".into(), "b.test".into()]).expect("params");
        p.serial_number = Some(rcgen::SerialNumber::from(vec![0x0a, 0xbc]));
        let cert = p.self_signed(&key).expect("cert");
        let info = parse_leaf(&cert.pem()).expect("parses");
        assert_eq!(info.names, vec!["a.test", "b.test"]);
        assert_eq!(info.serial, "0abc");
        assert!(info.not_after > info.not_before);
        assert!(!info.issuer.is_empty());
        assert!(matches!(parse_leaf("nothing"), Err(CertInfoError::Empty)));
    }
}
