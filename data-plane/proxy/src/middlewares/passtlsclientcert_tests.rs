//! Traefik's `pass_tls_client_cert_test.go` cases, on its own certificates.
#![allow(clippy::unwrap_used)]

use super::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

const MINIMAL_CHEESE: &str = include_str!("testdata/minimal_cheese.pem");
const COMPLETE_CHEESE: &str = include_str!("testdata/complete_cheese.pem");
const MINIMAL: &str = include_str!("testdata/minimal.pem");

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

fn all_dn() -> DnFields {
    DnFields {
        country: true,
        province: true,
        locality: true,
        organization: true,
        organizational_unit: true,
        common_name: true,
        serial_number: true,
        domain_component: true,
    }
}

fn all_info() -> InfoFields {
    InfoFields {
        not_after: true,
        not_before: true,
        sans: true,
        serial_number: true,
        subject: Some(all_dn()),
        issuer: Some(DnFields {
            organizational_unit: false,
            ..all_dn()
        }),
    }
}

const MINIMAL_CHEESE_ALL: &str = concat!(
    r#"Subject="C=FR,ST=Some-State,O=Cheese";"#,
    r#"Issuer="DC=org,DC=cheese,C=FR,C=US,ST=Signing State,ST=Signing State 2,L=TOULOUSE,L=LYON,O=Cheese,O=Cheese 2,CN=Simple Signing CA 2";"#,
    r#"SerialNumber="481535886039632329873080491016862977516759989652";"#,
    r#"NB="1544094636";"#,
    r#"NA="1632568236""#
);

const COMPLETE_ALL: &str = concat!(
    r#"Subject="DC=org,DC=cheese,C=FR,C=US,ST=Cheese org state,ST=Cheese com state,L=TOULOUSE,L=LYON,O=Cheese,O=Cheese 2,OU=Simple Signing Section,OU=Simple Signing Section 2,CN=*.cheese.com";"#,
    r#"Issuer="DC=org,DC=cheese,C=FR,C=US,ST=Signing State,ST=Signing State 2,L=TOULOUSE,L=LYON,O=Cheese,O=Cheese 2,CN=Simple Signing CA 2";"#,
    r#"SerialNumber="1";"#,
    r#"NB="1544094616";"#,
    r#"NA="1607166616";"#,
    r#"SAN="*.cheese.org,*.cheese.net,*.cheese.com,test@cheese.org,test@cheese.net,10.0.1.0,10.0.1.2""#
);

#[test]
fn cert_info_as_traefik() {
    let mc = der(MINIMAL_CHEESE);
    let cc = der(COMPLETE_CHEESE);
    // TLS with simple certificate, with all info
    assert_eq!(
        info_value(&all_info(), [&mc[..]].into_iter()),
        MINIMAL_CHEESE_ALL
    );
    // TLS with simple certificate, with some info (and requesting non-existent info)
    for ou in [false, true] {
        let some = InfoFields {
            not_after: true,
            sans: true,
            subject: Some(DnFields {
                organization: true,
                organizational_unit: ou,
                ..DnFields::default()
            }),
            issuer: Some(DnFields {
                country: true,
                ..DnFields::default()
            }),
            ..InfoFields::default()
        };
        assert_eq!(
            info_value(&some, [&mc[..]].into_iter()),
            r#"Subject="O=Cheese";Issuer="C=FR,C=US";NA="1632568236""#
        );
    }
    // TLS with complete certificate, with all info
    assert_eq!(info_value(&all_info(), [&cc[..]].into_iter()), COMPLETE_ALL);
    // TLS with 2 certificates, with all info
    assert_eq!(
        info_value(&all_info(), [&mc[..], &cc[..]].into_iter()),
        format!("{MINIMAL_CHEESE_ALL},{COMPLETE_ALL}")
    );
    // Empty subject info: nothing.
    let empty = InfoFields {
        subject: Some(DnFields::default()),
        ..InfoFields::default()
    };
    assert_eq!(info_value(&empty, [&mc[..]].into_iter()), "");
}

#[test]
fn pem_as_traefik() {
    // Test_sanitize and TestPassTLSClientCert_PEM: the PEM body without armour or breaks.
    let clean = |pem: &str| -> String {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    let m = der(MINIMAL);
    let mc = der(MINIMAL_CHEESE);
    assert_eq!(pem_value([&m[..]].into_iter()), clean(MINIMAL));
    assert_eq!(
        pem_value([&m[..], &mc[..]].into_iter()),
        format!("{},{}", clean(MINIMAL), clean(MINIMAL_CHEESE))
    );
    assert!(clean(MINIMAL)
        .starts_with("MIIDGTCCAgECCQCqLd75YLi2kDANBgkqhkiG9w0BAQsFADBYMQswCQYDVQQGEwJG"));
}

#[test]
fn query_escape_as_go() {
    assert_eq!(
        query_escape(r#"Subject="C=FR,O=a b";NA="1""#),
        "Subject%3D%22C%3DFR%2CO%3Da+b%22%3BNA%3D%221%22"
    );
    assert_eq!(query_escape("a-b_c.d~e*"), "a-b_c.d~e%2A");
}
