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
    /// The key, as Traefik's `keyType` names it: `EC256`, `EC384`, `RSA2048`, `RSA4096`, …
    /// (`Ed25519`, or empty when unknown).
    pub key_type: String,
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
        key_type: key_type(&cert),
    })
}

fn key_type(cert: &X509Certificate<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(k)) => format!("RSA{}", k.key_size()),
        Ok(PublicKey::EC(p)) => format!("EC{}", p.key_size()),
        _ if cert.public_key().algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            "Ed25519".to_string()
        }
        _ => String::new(),
    }
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
        assert_eq!(info.key_type, "EC256");
        assert!(matches!(parse_leaf("nothing"), Err(CertInfoError::Empty)));
    }
}

/// One row of `switchyard get certs`. Never holds key material.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CertRow {
    /// `tls.certificates[i]`, `tls.stores.<store>.defaultCertificate`, or `<resolver>/<main>`.
    pub name: String,
    /// The names the certificate covers (its SANs; for an ACME certificate without one yet,
    /// the names ordered).
    pub names: Vec<String>,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    pub serial: String,
    /// `uploaded` or `acme:<resolver>`.
    pub source: String,
    /// `valid`, `expired`, `pending` (first order in flight), `renewing` (order in flight while
    /// the old certificate serves), `error` (the last order failed), `invalid` (unparsable).
    pub status: String,
    pub last_error: String,
    /// Unix seconds before which no new order starts (backoff or rate limit); 0 when none.
    pub next_attempt: u64,
    pub failures: u32,
    /// Status in the stored OCSP staple (`good`, `revoked`, `unknown`); empty when none.
    pub ocsp_status: String,
    /// The staple's `nextUpdate` (Unix seconds; 0 when none).
    pub ocsp_next_update: i64,
}

/// The SHA-256 fingerprint of the leaf of a PEM chain (how `managed.ocsp` names it).
fn leaf_fingerprint(pem: &str) -> Option<String> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    Some(crate::ocsp::fingerprint(&der))
}

/// Fills the OCSP columns of `row` from the staple of the chain `pem`, if any.
fn with_ocsp(mut row: CertRow, pem: &str, cfg: &switchyard_config::DynamicConfig) -> CertRow {
    if let Some(s) = leaf_fingerprint(pem).and_then(|fp| cfg.managed.ocsp.get(&fp)) {
        row.ocsp_status = s.status.clone();
        row.ocsp_next_update = s.next_update;
    }
    row
}

fn uploaded_row(name: String, cert: &str, now: i64) -> CertRow {
    let mut row = CertRow {
        name,
        source: "uploaded".into(),
        ..Default::default()
    };
    if !switchyard_config::acme::is_inline_pem(cert) {
        row.status = "invalid".into();
        row.last_error = "certFile is a path, not uploaded PEM".into();
        return row;
    }
    match parse_leaf(cert) {
        Ok(i) => {
            row.status = if i.not_after < now {
                "expired"
            } else {
                "valid"
            }
            .into();
            row.names = i.names;
            row.issuer = i.issuer;
            row.not_before = i.not_before;
            row.not_after = i.not_after;
            row.serial = i.serial;
        }
        Err(e) => {
            row.status = "invalid".into();
            row.last_error = e.to_string();
        }
    }
    row
}

/// Every certificate the cluster serves or is ordering, uploaded first (in config order), then
/// ACME-managed by name. `now`: Unix seconds.
pub fn list(st: &switchyard_store::ClusterState, now: i64) -> Vec<CertRow> {
    let cfg = &st.config;
    let mut out = Vec::new();
    for (i, c) in cfg.tls.certificates.iter().enumerate() {
        let row = uploaded_row(format!("tls.certificates[{i}]"), &c.cert_file, now);
        out.push(with_ocsp(row, &c.cert_file, cfg));
    }
    for (store, s) in &cfg.tls.stores {
        if let Some(d) = &s.default_certificate {
            let row = uploaded_row(
                format!("tls.stores.{store}.defaultCertificate"),
                &d.cert_file,
                now,
            );
            out.push(with_ocsp(row, &d.cert_file, cfg));
        }
    }
    let mut names: Vec<&String> = st.acme.certificates.keys().collect();
    for n in cfg.managed.certificates.keys() {
        if !st.acme.certificates.contains_key(n) {
            names.push(n);
        }
    }
    names.sort();
    names.dedup();
    for name in names {
        let rec = st.acme.certificates.get(name).cloned().unwrap_or_default();
        let installed = cfg.managed.certificates.get(name);
        let info = installed.and_then(|m| parse_leaf(&m.pair.cert_pem).ok());
        let resolver = installed
            .map(|m| m.resolver.clone())
            .unwrap_or_else(|| rec.resolver.clone());
        let in_flight = st.acme.orders.contains_key(name);
        let mut row = CertRow {
            name: name.clone(),
            source: format!("acme:{resolver}"),
            last_error: rec.last_error.clone(),
            next_attempt: rec.next_attempt,
            failures: rec.failures,
            ..Default::default()
        };
        match &info {
            Some(i) => {
                row.names = i.names.clone();
                row.issuer = i.issuer.clone();
                row.not_before = i.not_before;
                row.not_after = i.not_after;
                row.serial = i.serial.clone();
            }
            None => {
                row.names = installed
                    .map(|m| m.domains.clone())
                    .unwrap_or_else(|| rec.domains.clone());
            }
        }
        row.status = match (info.is_some(), in_flight) {
            (true, true) => "renewing",
            (false, true) => "pending",
            _ if rec.failures > 0 => "error",
            (true, false) if row.not_after < now => "expired",
            (true, false) => "valid",
            (false, false) => "error",
        }
        .into();
        match installed {
            Some(m) => out.push(with_ocsp(row, &m.pair.cert_pem, cfg)),
            None => out.push(row),
        }
    }
    out
}

#[cfg(test)]
mod list_tests {
    use super::*;
    use switchyard_store::acme::{AcmeCommand, IssuedInfo};
    use switchyard_store::ClusterState;

    #[test]
    fn uploaded_and_acme_rows_without_keys() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["u.test".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let mut st = ClusterState::default();
        let mut cfg = switchyard_config::DynamicConfig::default();
        cfg.tls.certificates.push(switchyard_config::Certificate {
            cert_file: cert.pem(),
            key_file: key.serialize_pem(),
            stores: vec![],
        });
        let mut acme = st.acme.clone();
        for cmd in [
            AcmeCommand::OrderStarted {
                name: "le/a.test".into(),
                resolver: "le".into(),
                domains: vec!["a.test".into()],
            },
            AcmeCommand::OrderKey {
                name: "le/a.test".into(),
                key_pem: key.serialize_pem(),
            },
            AcmeCommand::Issued {
                name: "le/a.test".into(),
                cert_pem: cert.pem(),
                info: IssuedInfo::default(),
            },
            AcmeCommand::OrderStarted {
                name: "le/b.test".into(),
                resolver: "le".into(),
                domains: vec!["b.test".into()],
            },
        ] {
            acme.apply(&cmd, 1, &mut cfg);
        }
        st.acme = acme;
        st.config = std::sync::Arc::new(cfg);
        let rows = list(&st, 0);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].source, "uploaded");
        assert_eq!(rows[0].status, "valid");
        assert_eq!(rows[0].names, vec!["u.test"]);
        assert_eq!(rows[1].name, "le/a.test");
        assert_eq!(rows[1].source, "acme:le");
        assert_eq!(rows[1].status, "valid");
        assert_eq!(rows[2].status, "pending");
        assert_eq!(rows[2].names, vec!["b.test"]);
        let text = serde_json::to_string(&rows).expect("json");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }
}
