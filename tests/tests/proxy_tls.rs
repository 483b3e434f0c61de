//! TLS milestone: a one-node control plane and a real `switchyard-proxy`, configured with
//! `switchyard apply -f FILE` whose certificates are file paths (so the CLI upload is
//! exercised). Certificates are generated in the test with rcgen; clients are rustls.
//!
//! Covered: SNI exact beats wildcard, unknown names get the default certificate (or fail with
//! `sniStrict`), TLS 1.2-only and 1.3-only options, mutual TLS (RequireAndVerifyClientCert, and
//! no bypass by domain fronting: 421),
//! HTTP→HTTPS entry point redirection, HTTP/2 and gRPC over TLS, a certificate replaced by
//! apply served to new handshakes while an open keep-alive connection keeps being answered, and
//! an https backend verified with a custom `rootCAs` and `serverName`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use switchyard_e2e::backends::{block_on, runtime, GrpcBackend, HttpBackend, GRPC_TEST_SERVICE};
use switchyard_e2e::proxy::{Proxy, ProxySpec, PROXY_SETTLE};
use switchyard_e2e::{cli, wait_until, Cluster};
use tokio_rustls::client::TlsStream;

const STEP: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Certificates

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

/// A CA and leaves signed by it.
struct Ca {
    pem: Pem,
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "switchyard e2e CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: Pem {
                cert: cert.pem(),
                key: key.serialize_pem(),
                der: cert.der().clone(),
            },
            params,
            key,
        }
    }

    fn leaf(&self, names: &[&str]) -> Pem {
        let issuer = rcgen::Issuer::new(self.params.clone(), &self.key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn write_pair(dir: &Path, base: &str, p: &Pem) {
    write(dir, &format!("{base}.pem"), &p.cert);
    write(dir, &format!("{base}.key"), &p.key);
}

/// `switchyard apply -f DIR/NAME` (the file references certificates by relative path); waits
/// until the proxy serves the committed version.
fn apply_file(c: &Cluster, proxy: &Proxy, dir: &Path, name: &str, doc: &str) -> u64 {
    write(dir, name, doc);
    let path = dir.join(name);
    let out = cli(
        &c.endpoints(),
        &["-o", "json", "apply", "-f", path.to_str().unwrap()],
    );
    assert!(out.success(), "apply failed: {out}");
    let v = out.json()["version"].as_u64().unwrap();
    proxy.wait_version(v, PROXY_SETTLE);
    v
}

// ---------------------------------------------------------------------------------------------
// Clients

#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Clone, Default)]
struct Dial {
    alpn: Vec<&'static str>,
    /// `None`: TLS 1.2 and 1.3.
    only: Option<&'static rustls::SupportedProtocolVersion>,
    client_cert: Option<(String, String)>,
}

struct Conn {
    tls: TlsStream<tokio::net::TcpStream>,
    cert: CertificateDer<'static>,
    alpn: Option<Vec<u8>>,
}

/// A TLS connection to `addr` with SNI `sni`, accepting any server certificate (the test
/// looks at which one it got).
async fn dial(addr: &str, sni: &str, d: Dial) -> std::io::Result<Conn> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match d.only {
        Some(v) => vec![v],
        None => vec![&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let b = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(switchyard_tls::AcceptAny::new());
    let mut cfg = match &d.client_cert {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject;
            let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            let ck = CertifiedKey::from_der(certs, key, &provider).unwrap();
            let mut c = b.with_no_client_auth();
            c.client_auth_cert_resolver = Arc::new(ClientCert(Arc::new(ck)));
            c
        }
    };
    cfg.alpn_protocols = d.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio::time::timeout(
        STEP,
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))??;
    // TLS 1.3 client certificates are checked after the client's Finished: a refusal arrives
    // as an alert on the first read (callers send a request to see it).
    let (_, c) = tls.get_ref();
    let cert = c.peer_certificates().unwrap()[0].clone().into_owned();
    let alpn = c.alpn_protocol().map(|p| p.to_vec());
    Ok(Conn { tls, cert, alpn })
}

/// HTTP/1.1 keep-alive sender on a TLS connection.
async fn h1(conn: Conn) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (send, c) = hyper::client::conn::http1::handshake(TokioIo::new(conn.tls))
        .await
        .unwrap();
    tokio::spawn(c);
    send
}

/// GET `path` with Host `host`: (status, x-backend, Location).
async fn get(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let resp = tokio::time::timeout(
        STEP,
        send.send_request(
            http::Request::get(path)
                .header("host", host)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        ),
    )
    .await
    .map_err(|_| "timeout".to_string())?
    .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let backend = resp
        .headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let _ = resp.into_body().collect().await;
    Ok((status, backend))
}

/// One request on a fresh TLS connection: (status, backend).
async fn tls_get(addr: &str, sni: &str, d: Dial, path: &str) -> Result<(u16, String), String> {
    let conn = dial(addr, sni, d).await.map_err(|e| e.to_string())?;
    let mut send = h1(conn).await;
    get(&mut send, sni, path).await
}

/// A plaintext HTTP/1.1 request: (status, Location).
async fn plain(addr: &str, method: &str, host: &str, path: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, c) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(c);
    let resp = send
        .send_request(
            http::Request::builder()
                .method(method)
                .uri(path)
                .header("host", host)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (resp.status().as_u16(), loc)
}

// ---------------------------------------------------------------------------------------------
// A TLS backend

/// An HTTPS backend (HTTP/1.1) presenting `pem`, answering 200 with `x-backend: tls-backend`.
fn tls_backend(pem: &Pem) -> String {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime().spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .header("x-backend", "tls-backend")
                            .body(Full::new(Bytes::from_static(b"ok")))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    format!("https://{addr}")
}

// ---------------------------------------------------------------------------------------------
// The suite

#[test]
fn tls_termination_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let web_backend = HttpBackend::start("plain-backend");
    let ca = Ca::new();
    let exact = self_signed(&["a.example.test"]);
    let wildcard = self_signed(&["*.example.test"]);
    let fallback = self_signed(&["fallback.test"]);
    let client_ok = ca.leaf(&["client.test"]);
    let client_rogue = Ca::new().leaf(&["client.test"]);
    let backend_cert = ca.leaf(&["backend.internal"]);
    let https_backend = tls_backend(&backend_cert);
    let grpc = GrpcBackend::start();
    write_pair(d, "exact", &exact);
    write_pair(d, "wildcard", &wildcard);
    write_pair(d, "fallback", &fallback);
    write(d, "ca.pem", &ca.pem.cert);

    let c = Cluster::start(1);
    let proxy = Proxy::start(
        ProxySpec::new("p1", &c.endpoints())
            .entrypoints(&["web", "websecure"])
            .args(&["--redirect-to-https", "web=websecure"]),
    );
    let doc = |strict: bool| {
        format!(
            r#"
http:
  routers:
    exact: {{rule: "Host(`a.example.test`)", service: web, tls: {{}}}}
    wild: {{rule: "HostRegexp(`^[a-z]+\\.example\\.test$`)", service: web, tls: {{}}}}
    v12: {{rule: "Host(`v12.example.test`)", service: web, tls: {{options: tls12}}}}
    v13: {{rule: "Host(`v13.example.test`)", service: web, tls: {{options: tls13}}}}
    mtls: {{rule: "Host(`mtls.example.test`)", service: web, tls: {{options: mtls}}}}
    grpc: {{rule: "Host(`grpc.example.test`) && PathPrefix(`/grpc.health.v1.Health/`)", service: grpc, tls: {{}}}}
    upstream: {{rule: "Host(`up.example.test`)", priority: 1000, service: upstream, tls: {{}}}}
  services:
    web: {{loadBalancer: {{servers: [{{url: "{web}"}}]}}}}
    grpc: {{loadBalancer: {{servers: [{{url: "{grpc}"}}]}}}}
    upstream: {{loadBalancer: {{serversTransport: internal, servers: [{{url: "{https_backend}"}}]}}}}
  serversTransports:
    internal: {{rootCAs: [ca.pem], serverName: backend.internal}}
tls:
  certificates:
    - {{certFile: exact.pem, keyFile: exact.key}}
    - {{certFile: wildcard.pem, keyFile: wildcard.key}}
  stores:
    default: {{defaultCertificate: {{certFile: fallback.pem, keyFile: fallback.key}}}}
  options:
    default: {{sniStrict: {strict}}}
    tls12: {{maxVersion: VersionTLS12}}
    tls13: {{minVersion: VersionTLS13}}
    mtls: {{clientAuth: {{caFiles: [ca.pem], clientAuthType: RequireAndVerifyClientCert}}}}
"#,
            web = web_backend.url(),
            grpc = grpc.h2c_url(),
        )
    };
    apply_file(&c, &proxy, d, "tls.yaml", &doc(false));
    proxy.wait_ready(PROXY_SETTLE);
    let secure = proxy.entry("websecure").to_string();
    let web = proxy.entry("web").to_string();
    let tls12 = Dial {
        only: Some(&rustls::version::TLS12),
        ..Dial::default()
    };
    let tls13 = Dial {
        only: Some(&rustls::version::TLS13),
        ..Dial::default()
    };

    block_on(async {
        // SNI: exact beats wildcard; the wildcard covers one label; unknown → default store.
        let conn = dial(&secure, "a.example.test", Dial::default())
            .await
            .unwrap();
        assert_eq!(conn.cert, exact.der);
        let conn = dial(&secure, "b.example.test", Dial::default())
            .await
            .unwrap();
        assert_eq!(conn.cert, wildcard.der);
        let mut send = h1(conn).await;
        assert_eq!(
            get(&mut send, "b.example.test", "/x").await.unwrap(),
            (200, "plain-backend".into())
        );
        let conn = dial(&secure, "x.y.example.test", Dial::default())
            .await
            .unwrap();
        assert_eq!(conn.cert, fallback.der);
        let conn = dial(&secure, "unknown.test", Dial::default())
            .await
            .unwrap();
        assert_eq!(conn.cert, fallback.der);

        // TLS 1.2-only and 1.3-only options.
        assert_eq!(
            tls_get(&secure, "v12.example.test", tls12.clone(), "/")
                .await
                .unwrap()
                .0,
            200
        );
        assert!(dial(&secure, "v12.example.test", tls13.clone())
            .await
            .is_err());
        assert_eq!(
            tls_get(&secure, "v13.example.test", tls13.clone(), "/")
                .await
                .unwrap()
                .0,
            200
        );
        assert!(dial(&secure, "v13.example.test", tls12.clone())
            .await
            .is_err());

        // Mutual TLS: no certificate, or one from another CA, is refused; the CA's is served.
        assert!(tls_get(&secure, "mtls.example.test", Dial::default(), "/")
            .await
            .is_err());
        let rogue = Dial {
            client_cert: Some((client_rogue.cert.clone(), client_rogue.key.clone())),
            ..Dial::default()
        };
        assert!(tls_get(&secure, "mtls.example.test", rogue, "/")
            .await
            .is_err());
        let good = Dial {
            client_cert: Some((client_ok.cert.clone(), client_ok.key.clone())),
            ..Dial::default()
        };
        assert_eq!(
            tls_get(&secure, "mtls.example.test", good, "/")
                .await
                .unwrap(),
            (200, "plain-backend".into())
        );

        // Domain fronting: the SNI of a name without client auth cannot reach the mTLS router.
        let conn = dial(&secure, "a.example.test", Dial::default())
            .await
            .unwrap();
        let mut send = h1(conn).await;
        assert_eq!(
            get(&mut send, "mtls.example.test", "/").await.unwrap().0,
            421
        );

        // HTTP → HTTPS redirection on `web` (301 for GET, 308 otherwise).
        let port = secure.rsplit(':').next().unwrap();
        assert_eq!(
            plain(&web, "GET", "a.example.test", "/p?q=1").await,
            (301, format!("https://a.example.test:{port}/p?q=1"))
        );
        assert_eq!(plain(&web, "POST", "a.example.test", "/p").await.0, 308);

        // HTTP/2 over TLS (ALPN h2).
        let conn = dial(
            &secure,
            "a.example.test",
            Dial {
                alpn: vec!["h2", "http/1.1"],
                ..Dial::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(conn.alpn.as_deref(), Some(&b"h2"[..]));
        let (mut h2, hc) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(conn.tls))
                .await
                .unwrap();
        tokio::spawn(hc);
        let resp = h2
            .send_request(
                http::Request::get("https://a.example.test/h2")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);

        // gRPC over TLS: grpc.health.v1.Health/Check to an h2c backend.
        let conn = dial(
            &secure,
            "grpc.example.test",
            Dial {
                alpn: vec!["h2"],
                ..Dial::default()
            },
        )
        .await
        .unwrap();
        let (mut h2, hc) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(conn.tls))
                .await
                .unwrap();
        tokio::spawn(hc);
        let msg = prost::Message::encode_to_vec(&tonic_health::pb::HealthCheckRequest {
            service: GRPC_TEST_SERVICE.into(),
        });
        let mut frame = vec![0u8];
        frame.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&msg);
        let resp = h2
            .send_request(
                http::Request::post("https://grpc.example.test/grpc.health.v1.Health/Check")
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(Full::new(Bytes::from(frame)))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap();
        let trailers = body.trailers().cloned().expect("grpc trailers");
        assert_eq!(trailers["grpc-status"], "0");
        let bytes = body.to_bytes();
        let reply: tonic_health::pb::HealthCheckResponse =
            prost::Message::decode(&bytes[5..]).unwrap();
        assert_eq!(
            reply.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );

        // An https backend verified with the transport's rootCAs and serverName.
        assert_eq!(
            tls_get(&secure, "up.example.test", Dial::default(), "/")
                .await
                .unwrap(),
            (200, "tls-backend".into())
        );
    });

    // Replace the exact certificate (and make the default option strict) with apply: new
    // handshakes get the new certificate, an open keep-alive connection keeps being answered.
    let mut keep = block_on(async {
        let conn = dial(&secure, "a.example.test", Dial::default())
            .await
            .unwrap();
        let mut send = h1(conn).await;
        assert_eq!(get(&mut send, "a.example.test", "/1").await.unwrap().0, 200);
        send
    });
    let exact2 = self_signed(&["a.example.test"]);
    write_pair(d, "exact", &exact2);
    apply_file(&c, &proxy, d, "tls.yaml", &doc(true));
    wait_until(STEP, "the new certificate is served", || {
        block_on(dial(&secure, "a.example.test", Dial::default()))
            .is_ok_and(|conn| conn.cert == exact2.der)
    });
    block_on(async {
        assert_eq!(get(&mut keep, "a.example.test", "/2").await.unwrap().0, 200);
        // sniStrict on the default option: unknown names fail the handshake now.
        assert!(dial(&secure, "unknown.test", Dial::default())
            .await
            .is_err());
        assert!(dial(&secure, "b.example.test", Dial::default())
            .await
            .is_ok());
    });
    let ok = proxy
        .metric("switchyard_proxy_tls_handshakes_total{result=\"ok\"}")
        .unwrap();
    assert!(ok >= 10.0, "{ok}");
}

#[test]
fn the_api_refuses_what_the_proxy_would() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = self_signed(&["a.test"]);
    let b = self_signed(&["b.test"]);
    write(d, "a.pem", &a.cert);
    write(d, "b.key", &b.key);
    let c = Cluster::start(1);
    let e = c.endpoints();
    // A key that does not belong to the certificate.
    write(
        d,
        "bad.yaml",
        "tls:\n  certificates: [{certFile: a.pem, keyFile: b.key}]\n",
    );
    let out = cli(&e, &["apply", "-f", d.join("bad.yaml").to_str().unwrap()]);
    assert!(!out.success());
    let text = out.to_string();
    assert!(
        text.contains(
            "tls.certificates[0].keyFile: the private key does not match the certificate"
        ),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    // A file that cannot be read names the field.
    write(
        d,
        "missing.yaml",
        "tls:\n  certificates: [{certFile: a.pem, keyFile: nope.key}]\n",
    );
    let out = cli(
        &e,
        &["apply", "-f", d.join("missing.yaml").to_str().unwrap()],
    );
    assert!(!out.success());
    assert!(
        out.to_string()
            .contains("tls.certificates[0].keyFile: cannot read \"nope.key\""),
        "{out}"
    );
    // A path sent through the API (stdin from another directory) is refused with the hint.
    let out = switchyard_e2e::cli_stdin(
        &e,
        &["apply", "-f", "-"],
        "tls:\n  certificates: [{certFile: /nonexistent/a.pem, keyFile: /nonexistent/a.key}]\n",
    );
    assert!(!out.success());
    assert!(out.to_string().contains("cannot read"), "{out}");
}
