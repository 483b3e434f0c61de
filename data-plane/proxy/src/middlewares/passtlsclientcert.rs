//! `passTLSClientCert`: the client's certificates (as it sent them on the TLS connection,
//! leaf first) go to the service as Traefik's `passtlsclientcert` passes them:
//!
//! * `pem`: `X-Forwarded-Tls-Client-Cert` is each certificate's base64 DER (its PEM body
//!   without armour or line breaks), joined with `,`;
//! * `info`: `X-Forwarded-Tls-Client-Cert-Info` is, per certificate (joined with `,`), the
//!   chosen fields joined with `;`: `Subject="…"`, `Issuer="…"` (`DC=`, `C=`, `ST=`, `L=`,
//!   `O=`, `OU=` (subject), `SN=`, `CN=` in that order, multi-valued attributes each, joined
//!   with `,`), `SerialNumber="…"` (decimal), `NB="…"`/`NA="…"` (Unix seconds), `SAN="…"`
//!   (DNS names, e-mail addresses, IP addresses, URIs); the whole value is URL
//!   query-escaped (Go's `url.QueryEscape`).
//!
//! Without a client certificate neither header is set, and client-sent copies are kept, as in
//! Traefik.

use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use switchyard_config::middlewares::passtlsclientcert::{CompiledPassTls, DnFields, InfoFields};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_DOMAIN_COMPONENT, OID_X509_SERIALNUMBER};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::MwRequest;

static CERT: HeaderName = HeaderName::from_static("x-forwarded-tls-client-cert");
static INFO: HeaderName = HeaderName::from_static("x-forwarded-tls-client-cert-info");

/// Request phase.
pub(crate) fn on_request(p: &CompiledPassTls, req: &mut MwRequest<'_>) {
    let certs = req.client_certs;
    if certs.is_empty() {
        return;
    }
    if p.pem {
        let v = pem_value(certs.iter().map(|c| c.as_ref()));
        if let Ok(v) = HeaderValue::from_str(&v) {
            req.parts.headers.insert(CERT.clone(), v);
        }
    }
    if let Some(info) = &p.info {
        let v = query_escape(&info_value(info, certs.iter().map(|c| c.as_ref())));
        if let Ok(v) = HeaderValue::from_str(&v) {
            req.parts.headers.insert(INFO.clone(), v);
        }
    }
}

/// `X-Forwarded-Tls-Client-Cert` for these DER certificates.
pub(crate) fn pem_value<'a>(ders: impl Iterator<Item = &'a [u8]>) -> String {
    ders.map(|d| base64::engine::general_purpose::STANDARD.encode(d))
        .collect::<Vec<_>>()
        .join(",")
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `X-Forwarded-Tls-Client-Cert-Info` before escaping.
pub(crate) fn info_value<'a>(info: &InfoFields, ders: impl Iterator<Item = &'a [u8]>) -> String {
    ders.map(|d| match X509Certificate::from_der(d) {
        Ok((_, c)) => cert_info(info, &c),
        Err(_) => String::new(),
    })
    .collect::<Vec<_>>()
    .join(",")
}

fn cert_info(info: &InfoFields, c: &X509Certificate<'_>) -> String {
    let mut values = Vec::new();
    if let Some(f) = &info.subject {
        let s = dn(f, c.subject(), true);
        if !s.is_empty() {
            values.push(format!("Subject=\"{}\"", s.trim_end_matches(',')));
        }
    }
    if let Some(f) = &info.issuer {
        let s = dn(f, c.issuer(), false);
        if !s.is_empty() {
            values.push(format!("Issuer=\"{}\"", s.trim_end_matches(',')));
        }
    }
    if info.serial_number {
        values.push(format!("SerialNumber=\"{}\"", c.serial));
    }
    if info.not_before {
        values.push(format!(
            "NB=\"{}\"",
            c.validity().not_before.timestamp() as u64
        ));
    }
    if info.not_after {
        values.push(format!(
            "NA=\"{}\"",
            c.validity().not_after.timestamp() as u64
        ));
    }
    if info.sans {
        let sans = sans(c);
        if !sans.is_empty() {
            values.push(format!("SAN=\"{}\"", sans.join(",")));
        }
    }
    values.join(";")
}

/// Go's `pkix.Name` fields as Traefik writes them (each `X=value,`).
fn dn(f: &DnFields, name: &X509Name<'_>, subject: bool) -> String {
    let mut out = String::new();
    let mut part = |prefix: &str, v: &str| {
        if !v.is_empty() {
            out.push_str(prefix);
            out.push('=');
            out.push_str(v);
            out.push(',');
        }
    };
    let strs = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect::<Vec<_>>()
    };
    if f.domain_component {
        for v in strs(&mut name.iter_by_oid(&OID_DOMAIN_COMPONENT)) {
            part("DC", &v);
        }
    }
    if f.country {
        for v in strs(&mut name.iter_country()) {
            part("C", &v);
        }
    }
    if f.province {
        for v in strs(&mut name.iter_state_or_province()) {
            part("ST", &v);
        }
    }
    if f.locality {
        for v in strs(&mut name.iter_locality()) {
            part("L", &v);
        }
    }
    if f.organization {
        for v in strs(&mut name.iter_organization()) {
            part("O", &v);
        }
    }
    if subject && f.organizational_unit {
        for v in strs(&mut name.iter_organizational_unit()) {
            part("OU", &v);
        }
    }
    // Single-valued in Go's pkix.Name: the last one wins.
    if f.serial_number {
        if let Some(v) = strs(&mut name.iter_by_oid(&OID_X509_SERIALNUMBER)).pop() {
            part("SN", &v);
        }
    }
    if f.common_name {
        if let Some(v) = strs(&mut name.iter_common_name()).pop() {
            part("CN", &v);
        }
    }
    out
}

/// Go's order: DNS names, e-mail addresses, IP addresses, URIs.
fn sans(c: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = c.subject_alternative_name() else {
        return Vec::new();
    };
    let names = &ext.value.general_names;
    let mut out = Vec::new();
    for n in names {
        if let GeneralName::DNSName(s) = n {
            out.push(s.to_string());
        }
    }
    for n in names {
        if let GeneralName::RFC822Name(s) = n {
            out.push(s.to_string());
        }
    }
    for n in names {
        if let GeneralName::IPAddress(b) = n {
            match b.len() {
                4 => out.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                16 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(b);
                    let ip = std::net::Ipv6Addr::from(a);
                    out.push(match ip.to_ipv4_mapped() {
                        Some(v4) => v4.to_string(),
                        None => ip.to_string(),
                    });
                }
                _ => {}
            }
        }
    }
    for n in names {
        if let GeneralName::URI(s) = n {
            out.push(s.to_string());
        }
    }
    out
}

#[cfg(test)]
#[path = "passtlsclientcert_tests.rs"]
mod tests;
