//! TLS termination, ACME challenge answering (HTTP-01, TLS-ALPN-01, from `managed` entries a
//! user cannot apply) and TLS to backends with a custom root CA.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use switchyard_config::{KeyPair, ManagedCertificate};

use super::*;
use crate::ErrorKind;

pub(crate) struct Pem {
    pub cert: String,
    pub key: String,
    pub der: CertificateDer<'static>,
}

pub(crate) fn self_signed(names: &[&str]) -> Pem {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    Pem {
        cert: ck.cert.pem(),
        key: ck.signing_key.serialize_pem(),
        der: ck.cert.der().clone(),
    }
}

/// A TLS connection to the proxy: the certificate it presented and the negotiated ALPN.
async fn connect(
    addr: SocketAddr,
    sni: &str,
    alpn: &[&str],
) -> std::io::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    CertificateDer<'static>,
    Option<Vec<u8>>,
)> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(switchyard_tls::AcceptAny::new())
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await?;
    let (_, conn) = tls.get_ref();
    let cert = conn.peer_certificates().unwrap()[0].clone().into_owned();
    let alpn = conn.alpn_protocol().map(|p| p.to_vec());
    Ok((tls, cert, alpn))
}

/// GET over HTTP/1.1 on an established TLS connection: (status, body).
async fn tls_get(
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    host: &str,
    path: &str,
) -> (u16, String) {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get(path)
                .header("host", host)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn tls_termination_and_acme_challenges() {
    let backend = Backend::start(echo("b")).await;
    let site = self_signed(&["secure.test"]);
    let challenge = self_signed(&["acme.test"]);
    let issued = self_signed(&["acme.test"]);
    let (p, addr) = start_proxy().await;
    let yaml = format!(
        r#"
http:
  routers:
    secure: {{rule: "Host(`secure.test`) || Host(`acme.test`)", service: s, tls: {{}}}}
    plain: {{rule: "Host(`plain.test`)", service: s}}
    catchall: {{rule: "PathPrefix(`/`)", priority: 1, service: s}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
tls:
  certificates:
    - {{certFile: {:?}, keyFile: {:?}}}
"#,
        backend.url(),
        site.cert,
        site.key
    );
    let mut cfg = switchyard_config::parse_document(&yaml).unwrap();
    cfg.managed
        .http01
        .insert("tok123".into(), "tok123.thumbprint".into());
    cfg.managed.tls_alpn01.insert(
        "acme.test".into(),
        KeyPair {
            cert_pem: challenge.cert.clone(),
            key_pem: challenge.key.clone(),
        },
    );
    cfg.managed.certificates.insert(
        "le/acme.test".into(),
        ManagedCertificate {
            resolver: "le".into(),
            domains: vec!["acme.test".into()],
            pair: KeyPair {
                cert_pem: issued.cert.clone(),
                key_pem: issued.key.clone(),
            },
        },
    );
    p.apply(1, Arc::new(cfg)).unwrap();

    // TLS router over TLS: served with its certificate, X-Forwarded-Proto https.
    let (tls, cert, alpn) = connect(addr, "secure.test", &["http/1.1"]).await.unwrap();
    assert_eq!(cert, site.der);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (status, body) = tls_get(tls, "secure.test", "/x").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&body, "x-forwarded-proto"), ["https"]);
    // The plaintext router is not reachable over TLS (the catch-all has no tls either): 404.
    let (tls, _, _) = connect(addr, "secure.test", &[]).await.unwrap();
    let (status, _) = tls_get(tls, "plain.test", "/x").await;
    assert_eq!(status, 404);
    // The TLS router is not reachable over plaintext: the catch-all answers.
    let c = client();
    let g = get(&c, addr, "secure.test", "/x").await;
    assert_eq!(g.status, 200);
    assert_eq!(header(&g.body, "x-forwarded-proto"), ["http"]);
    // Unknown SNI: the generated default certificate.
    let (_, cert, _) = connect(addr, "unknown.test", &[]).await.unwrap();
    assert_ne!(cert, site.der);

    // HTTP-01: the key authorization, ahead of every router, on plaintext.
    let g = get(
        &c,
        addr,
        "anything.test",
        "/.well-known/acme-challenge/tok123",
    )
    .await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, "tok123.thumbprint");
    // Unknown token while challenges are pending: 404 (the challenge handler owns the path).
    let g = get(
        &c,
        addr,
        "anything.test",
        "/.well-known/acme-challenge/nope",
    )
    .await;
    assert_eq!(g.status, 404);

    // TLS-ALPN-01: the challenge certificate and ALPN acme-tls/1; the connection carries no
    // HTTP. Without acme-tls/1 the same name gets the issued certificate.
    let (_, cert, alpn) = connect(addr, "acme.test", &["acme-tls/1"]).await.unwrap();
    assert_eq!(cert, challenge.der);
    assert_eq!(alpn.as_deref(), Some(&b"acme-tls/1"[..]));
    let (_, cert, _) = connect(addr, "acme.test", &["h2", "http/1.1"])
        .await
        .unwrap();
    assert_eq!(cert, issued.der);

    // A new version replaces the certificate for new handshakes; an open connection keeps
    // its session and keeps being answered.
    let (keep, _, _) = connect(addr, "secure.test", &["http/1.1"]).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(keep))
        .await
        .unwrap();
    tokio::spawn(conn);
    let site2 = self_signed(&["secure.test"]);
    let yaml2 = yaml
        .replace(&format!("{:?}", site.cert), &format!("{:?}", site2.cert))
        .replace(&format!("{:?}", site.key), &format!("{:?}", site2.key));
    p.apply(
        2,
        Arc::new(switchyard_config::parse_document(&yaml2).unwrap()),
    )
    .unwrap();
    let (_, cert, _) = connect(addr, "secure.test", &[]).await.unwrap();
    assert_eq!(cert, site2.der);
    let resp = send
        .send_request(
            Request::get("/again")
                .header("host", "secure.test")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Version 2 has no challenges and no httpChallenge resolver: the path goes to the routers.
    let g = get(
        &c,
        addr,
        "anything.test",
        "/.well-known/acme-challenge/tok123",
    )
    .await;
    assert_eq!(field(&g.body, "id"), Some("b"));

    let (ok, _) = p.metrics().handshakes();
    assert!(ok >= 6, "{ok}");
    p.shutdown().await;
}

#[tokio::test]
async fn unknown_http01_token_is_404_with_an_http_challenge_resolver() {
    let backend = Backend::start(echo("b")).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
certificatesResolvers:
  le: {{acme: {{email: a@b.test, httpChallenge: {{entryPoint: web}}}}}}
http:
  routers:
    catchall: {{rule: "PathPrefix(`/`)", service: s}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
            backend.url()
        ),
    );
    let c = client();
    let g = get(&c, addr, "a.test", "/.well-known/acme-challenge/nope").await;
    assert_eq!(g.status, 404);
    let g = get(&c, addr, "a.test", "/other").await;
    assert_eq!(g.status, 200);
    p.shutdown().await;
}

#[tokio::test]
async fn h2_over_tls_and_failed_handshakes_are_counted() {
    let backend = Backend::start(echo("b")).await;
    let site = self_signed(&["secure.test"]);
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers:
    secure: {{rule: "Host(`secure.test`)", service: s, tls: {{options: strict}}}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
tls:
  certificates: [{{certFile: {:?}, keyFile: {:?}}}]
  options:
    strict: {{sniStrict: true}}
    default: {{sniStrict: true}}
"#,
            backend.url(),
            site.cert,
            site.key
        ),
    );
    let (tls, _, alpn) = connect(addr, "secure.test", &["h2", "http/1.1"])
        .await
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get("https://secure.test/h2")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    // sniStrict: an unknown name fails the handshake.
    assert!(connect(addr, "unknown.test", &[]).await.is_err());
    assert!(
        wait_for(Duration::from_secs(5), || async {
            p.metrics().handshakes().1 >= 1
        })
        .await
    );
    p.shutdown().await;
}

#[tokio::test]
async fn entry_point_redirection_to_https() {
    let backend = Backend::start(echo("b")).await;
    let opts = ProxyOptions {
        entrypoints: vec![
            ("web".into(), "127.0.0.1:0".into()),
            ("websecure".into(), "127.0.0.1:0".into()),
        ],
        https_redirects: vec![crate::HttpsRedirect {
            from: "web".into(),
            to: "websecure".into(),
            permanent: true,
        }],
        ..ProxyOptions::default()
    };
    let (p, web) = start_proxy_with(opts).await;
    let secure = p.local_addrs()[1].1;
    let mut cfg = switchyard_config::parse_document(&format!(
        r#"
http:
  routers:
    any: {{rule: "PathPrefix(`/`)", service: s}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        backend.url()
    ))
    .unwrap();
    cfg.managed.http01.insert("tok".into(), "tok.key".into());
    p.apply(1, Arc::new(cfg)).unwrap();
    let c = client();
    let g = get(&c, web, "a.test:80", "/p?q=1").await;
    assert_eq!(g.status, 301);
    assert_eq!(
        g.headers["location"],
        format!("https://a.test:{}/p?q=1", secure.port()).as_str()
    );
    let req = Request::post(format!("http://{web}/x"))
        .header("host", "a.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&c, req).await.status, 308);
    // ACME HTTP-01 is not redirected.
    let g = get(&c, web, "a.test", "/.well-known/acme-challenge/tok").await;
    assert_eq!((g.status.as_u16(), g.body.as_str()), (200, "tok.key"));
    // The target entry point serves plaintext as usual.
    let g = get(&c, secure, "a.test", "/p").await;
    assert_eq!(g.status, 200);
    p.shutdown().await;
}

#[tokio::test]
async fn domain_fronting_across_tls_options_is_misdirected() {
    let backend = Backend::start(echo("b")).await;
    let cert = self_signed(&["open.test", "locked.test"]);
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers:
    open: {{rule: "Host(`open.test`)", service: s, tls: {{}}}}
    locked: {{rule: "Host(`locked.test`)", service: s, tls: {{options: locked}}}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
tls:
  certificates: [{{certFile: {:?}, keyFile: {:?}}}]
  options:
    locked: {{clientAuth: {{clientAuthType: RequireAnyClientCert}}}}
"#,
            backend.url(),
            cert.cert,
            cert.key
        ),
    );
    // SNI of the open option, Host of the locked one: 421, the backend is not reached.
    let (tls, _, _) = connect(addr, "open.test", &[]).await.unwrap();
    let (status, _) = tls_get(tls, "locked.test", "/").await;
    assert_eq!(status, 421);
    assert_eq!(backend.hits(), 0);
    // Same option (default) under another name: routed normally (404: no router).
    let (tls, _, _) = connect(addr, "open.test", &[]).await.unwrap();
    let (status, _) = tls_get(tls, "OPEN.test:443", "/").await;
    assert_eq!(status, 200);
    let (tls, _, _) = connect(addr, "open.test", &[]).await.unwrap();
    let (status, _) = tls_get(tls, "elsewhere.test", "/").await;
    assert_eq!(status, 404);
    assert_eq!(p.metrics().error_count(ErrorKind::Misdirected), 1);
    p.shutdown().await;
}

#[tokio::test]
async fn config_file_certificate_paths_are_read_relative_to_the_file() {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-proxy-config-file-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    let cert = self_signed(&["file.test"]);
    std::fs::write(dir.join("certs/f.pem"), &cert.cert).unwrap();
    std::fs::write(dir.join("certs/f.key"), &cert.key).unwrap();
    std::fs::write(
        dir.join("cfg.yaml"),
        "tls:\n  certificates: [{certFile: certs/f.pem, keyFile: certs/f.key}]\n",
    )
    .unwrap();
    let cfg = crate::load_config_file(&dir.join("cfg.yaml")).unwrap();
    assert_eq!(cfg.tls.certificates[0].cert_file, cert.cert);
    assert_eq!(cfg.tls.certificates[0].key_file, cert.key);
    std::fs::write(
        dir.join("bad.yaml"),
        "tls:\n  certificates: [{certFile: certs/f.pem, keyFile: certs/missing.key}]\n",
    )
    .unwrap();
    let e = crate::load_config_file(&dir.join("bad.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tls.certificates[0].keyFile: cannot read \"certs/missing.key\""),
        "{e}"
    );
    assert!(!e.contains("PRIVATE KEY"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
