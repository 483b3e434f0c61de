#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use switchyard_config::{DynamicConfig, KeyPair, ManagedCertificate};

use super::*;

struct Pem {
    cert: String,
    key: String,
    der: CertificateDer<'static>,
}

fn self_signed(names: &[&str]) -> Pem {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    Pem {
        cert: ck.cert.pem(),
        key: ck.signing_key.serialize_pem(),
        der: ck.cert.der().clone(),
    }
}

/// A CA and a leaf signed by it.
fn ca_and_leaf(names: &[&str]) -> (Pem, Pem) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(params, &ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
    (
        Pem {
            cert: ca_cert.pem(),
            key: ca_key.serialize_pem(),
            der: ca_cert.der().clone(),
        },
        Pem {
            cert: leaf.pem(),
            key: leaf_key.serialize_pem(),
            der: leaf.der().clone(),
        },
    )
}

fn doc(yaml: &str) -> DynamicConfig {
    switchyard_config::parse_document(yaml).unwrap()
}

fn cert_yaml(p: &Pem) -> String {
    format!(
        "{{certFile: {:?}, keyFile: {:?}}}",
        p.cert.as_str(),
        p.key.as_str()
    )
}

/// Trusts everything (to look at what the server presents).
fn client(alpn: &[&str], versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConfig {
    let mut c =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(crate::AcceptAny::new())
            .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    c
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS12, &rustls::version::TLS13];

/// In-memory handshake: the certificate the server presented and the ALPN, or the error.
fn handshake(
    server: Arc<ServerConfig>,
    client_cfg: ClientConfig,
    sni: &str,
) -> Result<(CertificateDer<'static>, Option<Vec<u8>>), String> {
    let mut c = ClientConnection::new(
        Arc::new(client_cfg),
        ServerName::try_from(sni.to_string()).unwrap(),
    )
    .unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        if let Err(e) = s.process_new_packets() {
            return Err(format!("server: {e}"));
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        if let Err(e) = c.process_new_packets() {
            return Err(format!("client: {e}"));
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            let cert = c.peer_certificates().unwrap()[0].clone().into_owned();
            return Ok((cert, c.alpn_protocol().map(|p| p.to_vec())));
        }
    }
    Err("handshake did not finish".into())
}

fn default_cert() -> (Pem, Arc<CertifiedKey>) {
    let p = self_signed(&["switchyard.default.invalid"]);
    let ck = parse_certified_key(&p.cert, &p.key).unwrap();
    (p, ck)
}

#[test]
fn sni_exact_then_wildcard_then_default() {
    let exact = self_signed(&["a.example.com"]);
    let wild = self_signed(&["*.example.com"]);
    let cfg = doc(&format!(
        "tls:\n  certificates:\n    - {}\n    - {}\n",
        cert_yaml(&wild),
        cert_yaml(&exact)
    ));
    let (dp, dck) = default_cert();
    let t = compile(&cfg, Some(dck)).unwrap();
    let sel = t.select(Some("a.example.com"), false);
    assert_eq!(sel.option, "default");
    let (got, alpn) =
        handshake(sel.config.clone(), client(&["h2"], BOTH), "a.example.com").unwrap();
    assert_eq!(got, exact.der);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (got, _) = handshake(sel.config.clone(), client(&[], BOTH), "B.Example.com").unwrap();
    assert_eq!(got, wild.der);
    // One label only.
    let (got, _) = handshake(sel.config.clone(), client(&[], BOTH), "x.b.example.com").unwrap();
    assert_eq!(got, dp.der);
    let (got, _) = handshake(sel.config, client(&[], BOTH), "other.org").unwrap();
    assert_eq!(got, dp.der);
}

#[test]
fn store_default_certificate_and_sni_strict() {
    let a = self_signed(&["a.example.com"]);
    let store_default = self_signed(&["fallback.example.com"]);
    let cfg = doc(&format!(
        "tls:\n  certificates:\n    - {}\n  stores:\n    default:\n      defaultCertificate: {}\n  options:\n    strict: {{sniStrict: true}}\n",
        cert_yaml(&a),
        cert_yaml(&store_default)
    ));
    let (_, dck) = default_cert();
    let t = compile(&cfg, Some(dck)).unwrap();
    let def = t.option("default").unwrap().clone();
    let (got, _) = handshake(def, client(&[], BOTH), "nope.org").unwrap();
    assert_eq!(got, store_default.der);
    let strict = t.option("strict").unwrap().clone();
    assert!(handshake(strict.clone(), client(&[], BOTH), "nope.org").is_err());
    let (got, _) = handshake(strict, client(&[], BOTH), "a.example.com").unwrap();
    assert_eq!(got, a.der);
}

#[test]
fn option_selected_by_router_host_and_versions_hold() {
    let a = self_signed(&["a.example.com", "*.w.example.com"]);
    let cfg = doc(&format!(
        r#"
http:
  routers:
    r12: {{rule: "Host(`a.example.com`)", service: s, tls: {{options: tls12}}}}
    r13: {{rule: "HostRegexp(`.+`) || Host(`*.w.example.com`)", service: s, tls: {{options: tls13@file}}}}
    plain: {{rule: "Host(`b.example.com`)", service: s}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "http://127.0.0.1:1"}}]}}}}
tls:
  certificates: [{}]
  options:
    tls12: {{maxVersion: VersionTLS12, minVersion: VersionTLS10}}
    tls13: {{minVersion: VersionTLS13}}
"#,
        cert_yaml(&a)
    ));
    let t = compile(&cfg, None).unwrap();
    assert_eq!(t.select(Some("A.example.com"), false).option, "tls12");
    assert_eq!(t.select(Some("b.example.com"), false).option, "default");
    assert_eq!(t.select(None, false).option, "default");
    let c12 = t.option("tls12").unwrap().clone();
    let tls13_only: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let tls12_only: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    assert!(handshake(c12.clone(), client(&[], tls13_only), "a.example.com").is_err());
    assert!(handshake(c12, client(&[], tls12_only), "a.example.com").is_ok());
    let c13 = t.option("tls13").unwrap().clone();
    assert!(handshake(c13.clone(), client(&[], tls12_only), "a.example.com").is_err());
    assert!(handshake(c13, client(&[], tls13_only), "a.example.com").is_ok());
}

#[test]
fn conflicting_options_for_a_host_use_default() {
    let cfg = doc(r#"
http:
  routers:
    x: {rule: "Host(`a.com`)", service: s, tls: {options: o1}}
    y: {rule: "Host(`a.com`) && Path(`/y`)", service: s, tls: {options: o2}}
  services:
    s: {loadBalancer: {servers: [{url: "http://127.0.0.1:1"}]}}
tls:
  options: {o1: {}, o2: {}}
"#);
    let t = compile(&cfg, None).unwrap();
    assert_eq!(t.select(Some("a.com"), false).option, "default");
}

#[test]
fn bad_material_is_refused_with_resource_and_field() {
    let a = self_signed(&["a.com"]);
    let b = self_signed(&["b.com"]);
    let cfg = doc(&format!(
        "tls:\n  certificates:\n    - {{certFile: {:?}, keyFile: {:?}}}\n    - {{certFile: \"-----BEGIN CERTIFICATE-----\\ngarbage\\n-----END CERTIFICATE-----\\n\", keyFile: {:?}}}\n",
        a.cert, b.key, b.key
    ));
    let e = compile(&cfg, None).unwrap_err().to_string();
    assert!(
        e.contains("tls.certificates[0].keyFile: the private key does not match the certificate"),
        "{e}"
    );
    assert!(
        e.contains("tls.certificates[1].certFile: invalid certificate PEM"),
        "{e}"
    );
    assert!(!e.contains("PRIVATE KEY"), "{e}");

    let cfg = doc(
        "tls:\n  options:\n    o: {cipherSuites: [TLS_NOPE], clientAuth: {clientAuthType: RequireAndVerifyClientCert}}\n    p: {clientAuth: {clientAuthType: VerifyClientCertIfGiven}}\n    q: {curvePreferences: [CurveP521]}\n",
    );
    let e = compile(&cfg, None).unwrap_err().to_string();
    assert!(
        e.contains(
            "tlsOption \"o\": cipherSuites: unknown or unsupported cipher suite \"TLS_NOPE\""
        ),
        "{e}"
    );
    assert!(
        e.contains("tlsOption \"p\": clientAuth.caFiles: is required"),
        "{e}"
    );
    assert!(
        e.contains("tlsOption \"q\": curvePreferences: unsupported curve \"CurveP521\""),
        "{e}"
    );

    let cfg = doc(
        "http:\n  serversTransports:\n    t: {rootCAs: [\"-----BEGIN CERTIFICATE-----\\nxx\\n-----END CERTIFICATE-----\\n\"]}\n",
    );
    let e = compile(&cfg, None).unwrap_err().to_string();
    assert!(
        e.contains("serversTransport \"t\": rootCAs[0]: invalid certificate PEM"),
        "{e}"
    );
}

#[test]
fn cipher_suites_and_curves_are_accepted_by_go_names() {
    let cfg = doc(
        "tls:\n  options:\n    o: {cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256], curvePreferences: [CurveP256, X25519]}\n",
    );
    compile(&cfg, None).unwrap();
}

#[test]
fn client_auth_require_and_verify() {
    let (ca, client_leaf) = ca_and_leaf(&["client"]);
    let server = self_signed(&["a.com"]);
    let cfg = doc(&format!(
        "tls:\n  certificates: [{}]\n  options:\n    mtls: {{clientAuth: {{caFiles: [{:?}], clientAuthType: RequireAndVerifyClientCert}}}}\n",
        cert_yaml(&server),
        ca.cert
    ));
    let t = compile(&cfg, None).unwrap();
    let s = t.option("mtls").unwrap().clone();
    // Without a certificate: refused.
    assert!(handshake(s.clone(), client(&[], BOTH), "a.com").is_err());
    // With a certificate signed by the CA: accepted (a TLS 1.2 handshake completes in memory).
    let ck = parse_certified_key(&client_leaf.cert, &client_leaf.key).unwrap();
    let mut with_cert = client(&[], &[&rustls::version::TLS12]);
    with_cert.client_auth_cert_resolver = Arc::new(FixedClientCert(ck));
    assert!(handshake(s, with_cert, "a.com").is_ok());
    let _ = RootCertStore::empty();
}

#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);
impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[test]
fn acme_tls_alpn_and_http01() {
    let challenge = self_signed(&["acme.example.com"]);
    let issued = self_signed(&["acme.example.com"]);
    let mut cfg = DynamicConfig::default();
    cfg.managed.tls_alpn01.insert(
        "acme.example.com".into(),
        KeyPair {
            cert_pem: challenge.cert.clone(),
            key_pem: challenge.key.clone(),
        },
    );
    cfg.managed.certificates.insert(
        "le/acme.example.com".into(),
        ManagedCertificate {
            resolver: "le".into(),
            domains: vec!["acme.example.com".into()],
            pair: KeyPair {
                cert_pem: issued.cert.clone(),
                key_pem: issued.key.clone(),
            },
        },
    );
    cfg.managed.http01.insert("tok".into(), "tok.thumb".into());
    let t = compile(&cfg, None).unwrap();
    let sel = t.select(Some("acme.example.com"), true);
    assert!(sel.acme_challenge);
    let (got, alpn) = handshake(
        sel.config,
        client(&["acme-tls/1"], BOTH),
        "acme.example.com",
    )
    .unwrap();
    assert_eq!(got, challenge.der);
    assert_eq!(alpn.as_deref(), Some(ACME_TLS_ALPN));
    // Not offering acme-tls/1: the issued certificate.
    let sel = t.select(Some("acme.example.com"), false);
    assert!(!sel.acme_challenge);
    let (got, _) = handshake(sel.config, client(&["h2"], BOTH), "acme.example.com").unwrap();
    assert_eq!(got, issued.der);
    // Offering acme-tls/1 for a name without a challenge: normal selection.
    assert!(!t.select(Some("other.example.com"), true).acme_challenge);
    assert_eq!(t.http01("tok"), Some("tok.thumb"));
    assert_eq!(t.http01("nope"), None);
}

#[test]
fn backend_client_configs() {
    let (ca, _) = ca_and_leaf(&["backend.internal"]);
    let (_, client_leaf) = ca_and_leaf(&["client"]);
    let t: switchyard_config::ServersTransport = serde_json::from_value(serde_json::json!({
        "rootCAs": [ca.cert],
        "certificates": [{"certFile": client_leaf.cert, "keyFile": client_leaf.key}],
    }))
    .unwrap();
    let c = client_config(&t, false).unwrap();
    assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
    assert!(c.client_auth_cert_resolver.has_certs());
    let t: switchyard_config::ServersTransport =
        serde_json::from_value(serde_json::json!({"insecureSkipVerify": true})).unwrap();
    client_config(&t, true).unwrap();
}

/// RFC 8737: the challenge certificate carries a critical acmeIdentifier extension, which webpki
/// calls unsupported; the challenge table must still accept it.
#[test]
fn acme_challenge_certificate_with_critical_identifier_is_accepted() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["acme.example.com".to_string()]).unwrap();
    p.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&[7u8; 32])];
    let cert = p.self_signed(&key).unwrap();
    let mut cfg = DynamicConfig::default();
    cfg.managed.tls_alpn01.insert(
        "acme.example.com".into(),
        KeyPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    );
    let t = compile(&cfg, None).unwrap();
    assert!(t.select(Some("acme.example.com"), true).acme_challenge);
}

#[test]
fn the_last_certificate_for_a_name_wins() {
    let old = self_signed(&["a.example.com"]);
    let new = self_signed(&["a.example.com"]);
    let cfg = doc(&format!(
        "tls:\n  certificates:\n    - {}\n    - {}\n",
        cert_yaml(&old),
        cert_yaml(&new)
    ));
    let t = compile(&cfg, None).unwrap();
    let sel = t.select(Some("a.example.com"), false);
    let (got, _) = handshake(sel.config, client(&[], BOTH), "a.example.com").unwrap();
    assert_eq!(got, new.der);
}

/// A self-signed certificate with an RSA key (ring cannot generate one; the `rsa` crate does).
fn self_signed_rsa(names: &[&str]) -> Pem {
    use rsa::pkcs8::EncodePrivateKey;
    let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let der = rsa.to_pkcs8_der().unwrap();
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let cert =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .self_signed(&key)
            .unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// Accepts any certificate but offers only the given signature schemes in the ClientHello.
#[derive(Debug)]
struct OnlySchemes(Vec<rustls::SignatureScheme>);

impl rustls::client::danger::ServerCertVerifier for OnlySchemes {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.clone()
    }
}

fn client_schemes(schemes: &[rustls::SignatureScheme]) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(BOTH)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(OnlySchemes(schemes.to_vec())))
        .with_no_client_auth()
}

#[test]
fn rsa_and_ecdsa_for_one_name_chosen_by_the_client_signature_schemes() {
    use rustls::SignatureScheme as S;
    let ec = self_signed(&["both.example.com", "*.w.example.com"]);
    let rsa = self_signed_rsa(&["both.example.com", "*.w.example.com", "rsa.example.com"]);
    // Listed RSA first: the order of the list does not decide, the client does.
    let cfg = doc(&format!(
        "tls:\n  certificates:\n    - {}\n    - {}\n",
        cert_yaml(&rsa),
        cert_yaml(&ec)
    ));
    let t = compile(&cfg, None).unwrap();
    let srv = t.select(Some("both.example.com"), false).config;
    let rsa_only = [S::RSA_PSS_SHA256, S::RSA_PKCS1_SHA256];
    for name in ["both.example.com", "x.w.example.com"] {
        // A client offering ECDSA gets the ECDSA certificate (preferred).
        let (got, _) = handshake(srv.clone(), client(&[], BOTH), name).unwrap();
        assert_eq!(got, ec.der, "{name}");
        // A client offering only RSA schemes gets the RSA one.
        let (got, _) = handshake(srv.clone(), client_schemes(&rsa_only), name).unwrap();
        assert_eq!(got, rsa.der, "{name}");
        let ecdsa_only = [S::ECDSA_NISTP256_SHA256];
        let (got, _) = handshake(srv.clone(), client_schemes(&ecdsa_only), name).unwrap();
        assert_eq!(got, ec.der, "{name}");
    }
    // An RSA-only name serves RSA to everyone.
    let (got, _) = handshake(srv.clone(), client(&[], BOTH), "rsa.example.com").unwrap();
    assert_eq!(got, rsa.der);
    // Two certificates of one key type for a name: the last listed still wins.
    let ec2 = self_signed(&["both.example.com"]);
    let cfg = doc(&format!(
        "tls:\n  certificates:\n    - {}\n    - {}\n    - {}\n",
        cert_yaml(&ec),
        cert_yaml(&rsa),
        cert_yaml(&ec2)
    ));
    let t = compile(&cfg, None).unwrap();
    let srv = t.select(Some("both.example.com"), false).config;
    let (got, _) = handshake(srv.clone(), client(&[], BOTH), "both.example.com").unwrap();
    assert_eq!(got, ec2.der);
    let (got, _) = handshake(srv, client_schemes(&rsa_only), "both.example.com").unwrap();
    assert_eq!(got, rsa.der);
}

/// Accepts every certificate and records the stapled OCSP response it came with.
#[derive(Debug)]
struct CaptureOcsp(std::sync::Mutex<Option<Vec<u8>>>);

impl rustls::client::danger::ServerCertVerifier for CaptureOcsp {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(ocsp_response.to_vec());
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        crate::AcceptAny::new().verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        crate::AcceptAny::new().verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        crate::AcceptAny::new().supported_verify_schemes()
    }
}

/// The OCSP response stapled in a handshake for `sni` (empty: none).
fn stapled(
    t: &TlsTable,
    sni: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Vec<u8> {
    let capture = Arc::new(CaptureOcsp(std::sync::Mutex::new(None)));
    let c = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    handshake(t.select(Some(sni), false).config, c, sni).unwrap();
    let got = capture.0.lock().unwrap().clone();
    got.expect("the certificate was verified")
}

#[test]
fn ocsp_staples_until_next_update() {
    use base64::Engine;
    let p = self_signed(&["a.example.com"]);
    let other = self_signed(&["b.example.com"]);
    let mut cfg = doc(&format!(
        "tls:\n  certificates:\n    - {}\n    - {}\n",
        cert_yaml(&p),
        cert_yaml(&other)
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let staple = |next_update: i64| switchyard_config::OcspStaple {
        response: base64::engine::general_purpose::STANDARD.encode(b"OCSP-DER"),
        status: "good".into(),
        this_update: now - 10,
        next_update,
        responder: String::new(),
    };
    cfg.managed
        .ocsp
        .insert(fingerprint(&p.der), staple(now + 3600));
    let t = compile(&cfg, None).unwrap();
    for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
        assert_eq!(stapled(&t, "a.example.com", &[v]), b"OCSP-DER", "{v:?}");
        // Another certificate: no staple.
        assert!(stapled(&t, "b.example.com", &[v]).is_empty());
    }
    // Past nextUpdate: served without it, the handshake still succeeds.
    cfg.managed
        .ocsp
        .insert(fingerprint(&p.der), staple(now - 1));
    let t = compile(&cfg, None).unwrap();
    assert!(stapled(&t, "a.example.com", BOTH).is_empty());
    // A response that is not base64 is refused by name.
    let mut bad = staple(now + 60);
    bad.response = "%%%".into();
    cfg.managed.ocsp.insert(fingerprint(&p.der), bad);
    let err = compile(&cfg, None).unwrap_err().to_string();
    assert!(
        err.contains("managed.ocsp[") && err.contains("response"),
        "{err}"
    );
}
