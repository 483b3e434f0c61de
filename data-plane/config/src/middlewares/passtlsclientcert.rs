//! `passTLSClientCert`: which parts of the client's certificates (from the TLS connection,
//! so the entry point's TLS options need `clientAuth`) are passed to the service, as
//! Traefik's `passtlsclientcert` does: the PEM bodies in `X-Forwarded-Tls-Client-Cert`, and
//! selected fields in `X-Forwarded-Tls-Client-Cert-Info`. The headers are built by the proxy.

use super::{CompiledMiddleware, FieldError, FieldErrors};
use crate::model::{PassTlsClientCert, TlsClientCertDn};

/// Distinguished-name fields to pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnFields {
    /// `C`
    pub country: bool,
    /// `ST`
    pub province: bool,
    /// `L`
    pub locality: bool,
    /// `O`
    pub organization: bool,
    /// `OU` (subject only)
    pub organizational_unit: bool,
    /// `CN`
    pub common_name: bool,
    /// `SN`
    pub serial_number: bool,
    /// `DC`
    pub domain_component: bool,
}

/// `info`: what goes into `X-Forwarded-Tls-Client-Cert-Info`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InfoFields {
    /// `NA`
    pub not_after: bool,
    /// `NB`
    pub not_before: bool,
    /// `SAN`
    pub sans: bool,
    /// `SerialNumber`
    pub serial_number: bool,
    /// `Subject` (when set, even with no field chosen)
    pub subject: Option<DnFields>,
    /// `Issuer`
    pub issuer: Option<DnFields>,
}

/// A compiled `passTLSClientCert`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompiledPassTls {
    /// Pass the PEM.
    pub pem: bool,
    /// Pass the info header.
    pub info: Option<InfoFields>,
}

fn dn(d: &TlsClientCertDn) -> DnFields {
    let on = |b: Option<bool>| b.unwrap_or(false);
    DnFields {
        country: on(d.country),
        province: on(d.province),
        locality: on(d.locality),
        organization: on(d.organization),
        organizational_unit: on(d.organizational_unit),
        common_name: on(d.common_name),
        serial_number: on(d.serial_number),
        domain_component: on(d.domain_component),
    }
}

/// Compile.
pub fn compile(p: &PassTlsClientCert) -> Result<CompiledMiddleware, FieldErrors> {
    let on = |b: Option<bool>| b.unwrap_or(false);
    if let Some(i) = &p.info {
        if i.issuer
            .as_ref()
            .is_some_and(|d| d.organizational_unit.is_some())
        {
            return Err(vec![FieldError::new(
                "passTLSClientCert.info.issuer.organizationalUnit",
                "unknown field (Traefik passes no issuer organizational unit)",
            )]);
        }
    }
    Ok(CompiledMiddleware::PassTlsClientCert(Box::new(
        CompiledPassTls {
            pem: on(p.pem),
            info: p.info.as_ref().map(|i| InfoFields {
                not_after: on(i.not_after),
                not_before: on(i.not_before),
                sans: on(i.sans),
                serial_number: on(i.serial_number),
                subject: i.subject.as_ref().map(dn),
                issuer: i.issuer.as_ref().map(dn),
            }),
        },
    )))
}
