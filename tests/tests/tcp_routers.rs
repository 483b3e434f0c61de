//! TCP routers (issue 13, TCP half): a one-node control plane and a real `switchyard-proxy`
//! with two entry points, configured with `switchyard apply -f FILE`. Backends run in the test
//! process; certificates are generated with rcgen; clients are rustls.
//!
//! Covered, through the real binaries:
//! * TLS passthrough to backends that terminate TLS themselves (the client sees the backend's
//!   certificate), routed by SNI between two TCP services;
//! * TLS terminated by the proxy for a TCP service (the client sees the proxy's certificate);
//! * PROXY protocol v2 received by the backend with the client's real address and port;
//! * a plain `HostSNI(`*`)` service on its own entry point, routed before the client sends a
//!   byte (the backend speaks first, as SMTP or MySQL do), with `inFlightConn`;
//! * one entry point carrying HTTP and TCP routers at once (plain HTTP, HTTPS by host, TCP by
//!   SNI), and `switchyard explain tcp`;
//! * bad input refused by `apply`, naming resource and field, and changing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use switchyard_e2e::backends::{block_on, runtime, HttpBackend};
use switchyard_e2e::proxy::{Proxy, ProxySpec, PROXY_SETTLE};
use switchyard_e2e::{cli, get_config, wait_until, Cluster};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

const STEP: Duration = Duration::from_secs(10);

struct Pem {
    cert: String,
    key: String,
    der: CertificateDer<'static>,
}

fn self_signed(name: &str) -> Pem {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    Pem {
        cert: ck.cert.pem(),
        key: ck.signing_key.serialize_pem(),
        der: ck.cert.der().clone(),
    }
}

fn server_config(p: &Pem) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(p.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(p.key.as_bytes()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    )
}

/// Greets with `name\n`, then echoes every byte back.
async fn greet_and_echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, name: &str) {
    if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = s.shutdown().await;
}

/// A backend on loopback; `kind` decides what it speaks.
enum Kind {
    /// Plain: greeting, then echo.
    Plain,
    /// Terminates TLS with its own certificate, then greeting and echo.
    Tls(Arc<rustls::ServerConfig>),
    /// Reads a PROXY protocol v2 header, greets with `name src=IP:PORT`, then echoes.
    ProxyV2,
}

fn backend(name: &'static str, kind: Kind) -> SocketAddr {
    let l = block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = l.local_addr().unwrap();
    let kind = Arc::new(kind);
    runtime().spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let kind = kind.clone();
            tokio::spawn(async move {
                match &*kind {
                    Kind::Plain => greet_and_echo(s, name).await,
                    Kind::Tls(cfg) => {
                        if let Ok(t) = tokio_rustls::TlsAcceptor::from(cfg.clone()).accept(s).await
                        {
                            greet_and_echo(t, name).await;
                        }
                    }
                    Kind::ProxyV2 => {
                        let mut h = [0u8; 16];
                        if s.read_exact(&mut h).await.is_err() {
                            return;
                        }
                        let sig = b"\r\n\r\n\0\r\nQUIT\n";
                        let len = usize::from(u16::from_be_bytes([h[14], h[15]]));
                        let mut body = vec![0u8; len];
                        if &h[..12] != sig
                            || h[12] != 0x21
                            || h[13] != 0x11
                            || s.read_exact(&mut body).await.is_err()
                        {
                            let _ = s.write_all(b"bad proxy header\n").await;
                            return;
                        }
                        let ip = std::net::Ipv4Addr::new(body[0], body[1], body[2], body[3]);
                        let port = u16::from_be_bytes([body[8], body[9]]);
                        greet_and_echo(s, &format!("{name} src={ip}:{port}")).await;
                    }
                }
            });
        }
    });
    addr
}

/// A TLS client accepting any certificate (the test looks at which one it got).
async fn tls_dial(
    addr: &str,
    sni: &str,
    alpn: &[u8],
) -> std::io::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    CertificateDer<'static>,
    SocketAddr,
)> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(switchyard_tls::AcceptAny::new())
    .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let local = tcp.local_addr()?;
    let tls = tokio::time::timeout(
        STEP,
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))??;
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    Ok((tls, cert, local))
}

/// Reads the greeting line, sends `ping`, expects `ping` back; returns the greeting.
async fn greeting_and_echo<S: AsyncRead + AsyncWrite + Unpin>(s: S) -> Result<String, String> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    tokio::time::timeout(STEP, r.read_line(&mut line))
        .await
        .map_err(|_| "no greeting".to_string())?
        .map_err(|e| e.to_string())?;
    let s = r.get_mut();
    s.write_all(b"ping\n").await.map_err(|e| e.to_string())?;
    let mut echo = String::new();
    tokio::time::timeout(STEP, r.read_line(&mut echo))
        .await
        .map_err(|_| "no echo".to_string())?
        .map_err(|e| e.to_string())?;
    if echo != "ping\n" {
        return Err(format!("echo {echo:?}"));
    }
    Ok(line.trim_end().to_string())
}

async fn via_tls(
    addr: &str,
    sni: &str,
) -> Result<(String, CertificateDer<'static>, SocketAddr), String> {
    // A protocol neither the proxy's HTTPS nor the backends know: TCP routes must not care.
    let (tls, cert, local) = tls_dial(addr, sni, b"test-proto")
        .await
        .map_err(|e| e.to_string())?;
    Ok((greeting_and_echo(tls).await?, cert, local))
}

async fn via_plain(addr: &str) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    greeting_and_echo(tcp).await
}

/// An HTTPS GET over a TLS connection with SNI `host` (status, x-backend).
async fn https_get(addr: &str, host: &str) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Empty};
    let (tls, _, _) = tls_dial(addr, host, b"http/1.1")
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = tokio::time::timeout(
        STEP,
        send.send_request(
            http::Request::get("/")
                .header("host", host)
                .body(Empty::<bytes::Bytes>::new())
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

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn tcp_routers_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert_a = self_signed("a.tcp.test");
    let cert_b = self_signed("b.tcp.test");
    let proxy_cert = self_signed("term.tcp.test");
    let www_cert = self_signed("www.test");
    write(d, "term.pem", &proxy_cert.cert);
    write(d, "term.key", &proxy_cert.key);
    write(d, "www.pem", &www_cert.cert);
    write(d, "www.key", &www_cert.key);
    let pass_a = backend("pass-a", Kind::Tls(server_config(&cert_a)));
    let pass_b = backend("pass-b", Kind::Tls(server_config(&cert_b)));
    let term = backend("term", Kind::Plain);
    let pp = backend("pp", Kind::ProxyV2);
    let echo = backend("echo", Kind::Plain);
    let http = HttpBackend::start("http-backend");

    let c = Cluster::start(1);
    let p = Proxy::start(ProxySpec::new("p1", &c.endpoints()).entrypoints(&["web", "db"]));
    let web = p.entry("web").to_string();
    let db = p.entry("db").to_string();

    let doc = format!(
        r#"
http:
  routers:
    site:
      entryPoints: [web]
      rule: "Host(`www.test`)"
      service: site
      tls: {{}}
    plain-site:
      entryPoints: [web]
      rule: "Host(`plain.test`)"
      service: site
  services:
    site: {{loadBalancer: {{servers: [{{url: "{http}"}}]}}}}
tcp:
  routers:
    a-pass:
      entryPoints: [web]
      rule: "HostSNI(`a.tcp.test`)"
      service: a
      tls: {{passthrough: true}}
    b-pass:
      entryPoints: [web]
      rule: "HostSNI(`b.tcp.test`)"
      service: b
      tls: {{passthrough: true}}
    term:
      entryPoints: [web]
      rule: "HostSNI(`term.tcp.test`)"
      service: term
      tls: {{}}
    pp:
      entryPoints: [web]
      rule: "HostSNI(`pp.tcp.test`) && ClientIP(`127.0.0.0/8`)"
      service: pp
      tls: {{}}
    echo:
      entryPoints: [db]
      rule: "HostSNI(`*`)"
      service: echo
      middlewares: [two]
  services:
    a: {{loadBalancer: {{servers: [{{address: "{pass_a}"}}]}}}}
    b: {{loadBalancer: {{servers: [{{address: "{pass_b}"}}]}}}}
    term: {{loadBalancer: {{servers: [{{address: "{dead}"}}, {{address: "{term}"}}]}}}}
    pp: {{loadBalancer: {{servers: [{{address: "{pp}"}}], proxyProtocol: {{version: 2}}}}}}
    echo-lb: {{loadBalancer: {{servers: [{{address: "{echo}"}}]}}}}
    echo: {{weighted: {{services: [{{name: echo-lb, weight: 1}}]}}}}
  middlewares:
    two: {{inFlightConn: {{amount: 2}}}}
tls:
  certificates:
    - {{certFile: term.pem, keyFile: term.key}}
    - {{certFile: www.pem, keyFile: www.key}}
"#,
        http = http.url(),
        // Nothing listens there: the dial fails, the server is skipped and the next one used.
        dead = switchyard_e2e::free_addr(),
    );
    write(d, "tcp.yaml", &doc);
    let out = cli(
        &c.endpoints(),
        &[
            "-o",
            "json",
            "apply",
            "-f",
            d.join("tcp.yaml").to_str().unwrap(),
        ],
    );
    assert!(out.success(), "apply failed: {out}");
    let v = out.json()["version"].as_u64().unwrap();
    p.wait_version(v, PROXY_SETTLE);

    block_on(async {
        // Passthrough, routed by SNI: each client sees its backend's own certificate.
        let (g, cert, _) = via_tls(&web, "a.tcp.test").await.unwrap();
        assert_eq!(g, "pass-a");
        assert_eq!(cert, cert_a.der);
        let (g, cert, _) = via_tls(&web, "b.tcp.test").await.unwrap();
        assert_eq!(g, "pass-b");
        assert_eq!(cert, cert_b.der);

        // Terminated by the proxy: the proxy's certificate, plaintext to the backend (every
        // time, though the service's first server is down).
        for _ in 0..3 {
            let (g, cert, _) = via_tls(&web, "term.tcp.test").await.unwrap();
            assert_eq!(g, "term");
            assert_eq!(cert, proxy_cert.der);
        }

        // PROXY protocol v2: the backend reads the client's own address and port.
        let (g, _, local) = via_tls(&web, "pp.tcp.test").await.unwrap();
        assert_eq!(g, format!("pp src={}:{}", local.ip(), local.port()));

        // The same entry point still serves HTTPS by host and plain HTTP.
        assert_eq!(
            https_get(&web, "www.test").await.unwrap(),
            (200, "http-backend".to_string())
        );
        let r = switchyard_e2e::client::request(
            &web,
            &switchyard_e2e::client::Req::get("plain.test", "/"),
        )
        .await
        .unwrap();
        assert_eq!(
            (r.status, r.backend().as_deref()),
            (200, Some("http-backend"))
        );
        // An unknown SNI is not a TCP route: HTTPS answers (404: no HTTP router).
        assert_eq!(https_get(&web, "nobody.test").await.unwrap().0, 404);

        // Plain HostSNI(`*`) on its own entry point: routed at once (the backend speaks
        // first), through a weighted service; inFlightConn allows two per client IP.
        let first = tokio::net::TcpStream::connect(&db).await.unwrap();
        let second = tokio::net::TcpStream::connect(&db).await.unwrap();
        let mut r1 = BufReader::new(first);
        let mut r2 = BufReader::new(second);
        for r in [&mut r1, &mut r2] {
            let mut l = String::new();
            tokio::time::timeout(STEP, r.read_line(&mut l))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(l, "echo\n");
        }
        // A third connection from the same IP is closed without reaching the backend.
        let mut third = tokio::net::TcpStream::connect(&db).await.unwrap();
        let mut buf = Vec::new();
        let n = tokio::time::timeout(STEP, third.read_to_end(&mut buf))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "third connection got {buf:?}");
        drop((r1, r2));
    });
    // Once they close, a new one gets through again, and echoes.
    wait_until(STEP, "a connection after the others closed", || {
        block_on(via_plain(&db)).ok().filter(|g| g == "echo")
    });

    // Counted per router and result.
    let m = p.metrics().unwrap();
    let count = |router: &str, result: &str| {
        switchyard_e2e::metric_value(
            &m,
            &format!(
                "switchyard_proxy_tcp_connections_total{{router=\"{router}\",result=\"{result}\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("term", "ok"), 3.0, "{m}");
    assert!(count("echo", "refused") >= 1.0, "{m}");
    assert!(count("a-pass", "ok") >= 1.0, "{m}");

    // explain tcp: which TCP router wins, through the CLI.
    let out = cli(
        &c.endpoints(),
        &[
            "-o",
            "json",
            "explain",
            "tcp",
            "b.tcp.test",
            "--entrypoint",
            "web",
        ],
    );
    assert!(out.success(), "{out}");
    let j = out.json();
    assert_eq!(j["router"], "b-pass");
    assert_eq!(j["service"], "b");
    assert_eq!(j["mode"], "passthrough");
    let out = cli(
        &c.endpoints(),
        &["explain", "tcp", "www.test", "--entrypoint", "web"],
    );
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.stdout.contains("an HTTP router with tls has this host"),
        "{out}"
    );
    let out = cli(
        &c.endpoints(),
        &["explain", "tcp", "x", "--plain", "--entrypoint", "db"],
    );
    assert!(
        out.success() && out.stdout.contains("tcp router   echo"),
        "{out}"
    );

    // The same answer from the admin API (viewer token).
    let url = format!(
        "http://{}/api/switchyard/explain/tcp?sni=a.tcp.test&entrypoint=web",
        c.nodes[0].addrs.http
    );
    let auth = format!("Authorization: Bearer {}", c.creds().token);
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "10", "-H", &auth, &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {url}: {out:?}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["router"], "a-pass", "{j}");
    assert_eq!(j["tried"][0]["name"], "pp", "{j}");

    // Bad input: refused by apply, naming resource and field; nothing changes.
    // (The version may move on its own: a TLS router makes the leader commit ticket keys, which
    // `get config` does not show; the user's config must not change.)
    let before = get_config(&c.endpoints()).unwrap().1;
    assert!(before["tcp"]["routers"]["a-pass"].is_object());
    for (bad, want) in [
        (
            "tcp:\n  routers:\n    r: {rule: \"HostSNI(`x.test`)\", service: a, tls: {passthrough: true, certResolver: le}}\n",
            "tcpRouter \"r\": tls.certResolver: cannot be used with tls.passthrough",
        ),
        (
            "tcp:\n  routers:\n    r: {rule: \"HostSNI(`*`) && PathPrefix(`/x`)\", service: a}\n",
            "tcpRouter \"r\": rule: HTTP matcher \"PathPrefix\" cannot be used in a TCP rule",
        ),
        (
            "tcp:\n  services:\n    s: {loadBalancer: {servers: [{address: \"127.0.0.1:1\"}], proxyProtocol: {version: 3}}}\n",
            "tcpService \"s\": loadBalancer.proxyProtocol.version: must be 1 or 2",
        ),
    ] {
        write(d, "bad.yaml", bad);
        let out = cli(&c.endpoints(), &["apply", "-f", d.join("bad.yaml").to_str().unwrap()]);
        assert!(!out.success(), "accepted: {bad}");
        assert!(out.stderr.contains(want), "want {want:?}\n{out}");
    }
    assert_eq!(get_config(&c.endpoints()).unwrap().1, before);
}

/// A CA and a server certificate it signed for `name` (PEMs: CA, cert, key).
fn ca_signed(name: &str) -> (String, Pem) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "switchyard e2e backend CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (
        ca_cert.pem(),
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().clone(),
        },
    )
}

/// `GET path` on a control node's HTTP API with the viewer token: (status, JSON body).
fn api_get(c: &Cluster, path: &str) -> (u16, serde_json::Value) {
    let url = format!("http://{}{path}", c.nodes[0].addrs.http);
    let auth = format!("Authorization: Bearer {}", c.creds().token);
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-H",
            &auth,
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// `tcp.serversTransports` (TLS to the backend verified against the transport's `rootCAs`
/// with its `serverName`; PROXY protocol and the rest from the transport), Traefik's
/// `/api/tcp/*` and `/api/overview`, and `switchyard delete` of every TCP kind.
#[test]
fn tcp_servers_transports_api_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, db_cert) = ca_signed("db.internal");
    let (_, other_ca_cert) = ca_signed("db.internal");
    write(d, "ca.pem", &ca);
    let proxy_cert = self_signed("db.tcp.test");
    write(d, "db.pem", &proxy_cert.cert);
    write(d, "db.key", &proxy_cert.key);
    // A TLS backend on 127.0.0.1: its certificate names db.internal only, so the dial works
    // only with the transport's serverName and rootCAs.
    let tls_backend = backend("tls-db", Kind::Tls(server_config(&db_cert)));
    let untrusted = backend("untrusted", Kind::Tls(server_config(&other_ca_cert)));
    let pp = backend("pp", Kind::ProxyV2);

    let c = Cluster::start(1);
    let p = Proxy::start(ProxySpec::new("p1", &c.endpoints()).entrypoints(&["web"]));
    let web = p.entry("web").to_string();
    let doc = format!(
        r#"
tcp:
  routers:
    db:
      rule: "HostSNI(`db.tcp.test`)"
      service: db
      middlewares: [lan]
      tls: {{}}
    bad:
      rule: "HostSNI(`bad.tcp.test`)"
      service: bad
      tls: {{}}
    pp:
      rule: "HostSNI(`pp.tcp.test`)"
      service: pp
      tls: {{}}
  services:
    db: {{loadBalancer: {{servers: [{{address: "{tls_backend}", tls: true}}], serversTransport: secure}}}}
    bad: {{loadBalancer: {{servers: [{{address: "{untrusted}", tls: true}}], serversTransport: secure}}}}
    pp: {{loadBalancer: {{servers: [{{address: "{pp}"}}], serversTransport: pp2}}}}
  middlewares:
    lan: {{ipAllowList: {{sourceRange: ["127.0.0.0/8"]}}}}
  serversTransports:
    secure:
      dialTimeout: 5s
      dialKeepAlive: 30s
      tls: {{serverName: db.internal, rootCAs: [ca.pem]}}
    pp2:
      proxyProtocol: {{version: 2}}
      terminationDelay: 50ms
tls:
  certificates:
    - {{certFile: db.pem, keyFile: db.key}}
"#
    );
    write(d, "tcp.yaml", &doc);
    let file = d.join("tcp.yaml");
    let out = cli(
        &c.endpoints(),
        &["-o", "json", "apply", "-f", file.to_str().unwrap()],
    );
    assert!(out.success(), "apply failed: {out}");
    p.wait_version(out.json()["version"].as_u64().unwrap(), PROXY_SETTLE);

    block_on(async {
        // TLS to the backend, verified with the transport's CA and server name.
        let (g, cert, _) = via_tls(&web, "db.tcp.test").await.unwrap();
        assert_eq!((g.as_str(), &cert), ("tls-db", &proxy_cert.der));
        // A backend whose certificate the transport's CA did not sign: the proxy's dial fails
        // verification, the client gets no greeting.
        assert!(via_tls(&web, "bad.tcp.test").await.is_err());
        // The transport's PROXY protocol header.
        let (g, _, local) = via_tls(&web, "pp.tcp.test").await.unwrap();
        assert_eq!(g, format!("pp src={}:{}", local.ip(), local.port()));
    });
    // Round trip through get config (the CA file was uploaded as PEM).
    let (_, cfg) = get_config(&c.endpoints()).unwrap();
    let secure = &cfg["tcp"]["serversTransports"]["secure"];
    assert_eq!(secure["tls"]["serverName"], "db.internal", "{cfg}");
    assert!(secure["tls"]["rootCAs"][0]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE"));

    // Traefik's API for TCP.
    let (code, routers) = api_get(&c, "/api/tcp/routers");
    assert_eq!(code, 200, "{routers}");
    let names: Vec<&str> = routers
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bad@file", "db@file", "pp@file"]);
    assert_eq!(routers[1]["status"], "enabled", "{routers}");
    assert_eq!(routers[1]["rule"], "HostSNI(`db.tcp.test`)");
    assert_eq!(routers[1]["service"], "db");
    assert_eq!(routers[1]["using"], serde_json::json!(["web"]), "{routers}");
    let (code, one) = api_get(&c, "/api/tcp/routers/pp@file");
    assert_eq!(
        (code, &one["service"]),
        (200, &serde_json::json!("pp")),
        "{one}"
    );
    let (code, _) = api_get(&c, "/api/tcp/routers/nope@file");
    assert_eq!(code, 404);
    let (code, svcs) = api_get(&c, "/api/tcp/services?search=db");
    assert_eq!(code, 200);
    assert_eq!(svcs.as_array().unwrap().len(), 1, "{svcs}");
    assert_eq!(svcs[0]["type"], "loadbalancer");
    assert_eq!(svcs[0]["usedBy"], serde_json::json!(["db@file"]));
    let (code, mw) = api_get(&c, "/api/tcp/middlewares/lan@file");
    assert_eq!(code, 200);
    assert_eq!(mw["type"], "ipallowlist");
    assert_eq!(mw["usedBy"], serde_json::json!(["db@file"]));
    let (_, ov) = api_get(&c, "/api/overview");
    assert_eq!(ov["tcp"]["routers"]["total"], 3, "{ov}");
    assert_eq!(ov["tcp"]["services"]["total"], 3, "{ov}");
    assert_eq!(ov["tcp"]["middlewares"]["total"], 1, "{ov}");
    assert_eq!(ov["http"]["routers"]["total"], 0, "{ov}");
    // The dashboard has a TCP routers page reading that API.
    let dash = std::process::Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "10",
            &format!("http://{}/dashboard/app.js", c.nodes[0].addrs.http),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&dash.stdout).contains("/api/tcp/routers"));

    // Delete: a referenced TCP service or transport is refused, naming what still uses it.
    let del = |args: &[&str]| {
        let mut a = vec!["-o", "json", "delete"];
        a.extend_from_slice(args);
        cli(&c.endpoints(), &a)
    };
    let out = del(&["tcp-service", "db"]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("still referenced"), "{out}");
    let out = del(&["tcp-servers-transport", "secure"]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("tcpServersTransport \"secure\" not found"),
        "{out}"
    );
    let out = del(&["tcp-router", "nope"]);
    assert!(!out.success() && out.stderr.contains("not found"), "{out}");
    // Router, then its middleware, service and transport.
    for args in [
        ["tcp-router", "db"],
        ["tcp-router", "bad"],
        ["tcp-middleware", "lan"],
        ["tcp-service", "db"],
        ["tcp-service", "bad"],
        ["tcp-servers-transport", "secure"],
    ] {
        let out = del(&args);
        assert!(out.success(), "delete {args:?}: {out}");
        assert_eq!(
            out.json()["changes"][0]["action"],
            "delete",
            "{args:?}: {out}"
        );
    }
    let out = cli(&c.endpoints(), &["delete", "tcp-router", "pp"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("tcpRouter/pp deleted"), "{out}");
    let (v, cfg) = get_config(&c.endpoints()).unwrap();
    assert!(cfg["tcp"]["routers"].is_null(), "{cfg}");
    assert!(cfg["tcp"]["serversTransports"]["secure"].is_null(), "{cfg}");
    assert!(cfg["tcp"]["serversTransports"]["pp2"].is_object(), "{cfg}");
    p.wait_version(v, PROXY_SETTLE);
    // The proxy no longer routes db.tcp.test to TCP: HTTPS answers it (no HTTP router: 404).
    block_on(async {
        assert_eq!(https_get(&web, "db.tcp.test").await.unwrap().0, 404);
    });
    let (_, ov) = api_get(&c, "/api/overview");
    assert_eq!(ov["tcp"]["routers"]["total"], 0, "{ov}");
}

/// A TLS-terminating TCP router with `tls.certResolver` gets its certificate from pebble by
/// TLS-ALPN-01 on the TCP router's own entry point (the challenge connection, ALPN
/// `acme-tls/1`, is answered before TCP routing), and a client verifying against pebble's root
/// reaches the TCP backend with SNI `db.test`.
#[test]
fn tcp_router_cert_resolver_issues_and_serves() {
    use switchyard_e2e::acme::{cert, port_free_on, Pebble, PebbleOpts};
    let tls_port = port_free_on(&["127.0.0.1"]);
    let pebble = Pebble::start(PebbleOpts {
        always_valid: false,
        http_port: switchyard_e2e::free_port(),
        tls_port,
        default_ipv4: "127.0.0.1".into(),
    });
    let db = backend("db", Kind::Plain);
    let c = Cluster::start(1);
    let p = Proxy::start(
        ProxySpec::new("p1", &c.endpoints())
            .entrypoints(&[])
            .entrypoint_at("websecure", &format!("127.0.0.1:{tls_port}")),
    );
    let doc = serde_json::json!({
        "certificatesResolvers": {"pebble": {"acme": {
            "email": "ops@example.test",
            "caServer": pebble.directory,
            "caCertificates": [pebble.api_ca_pem()],
            "keyType": "EC256",
            "tlsChallenge": {},
        }}},
        "tcp": {
            "routers": {"db": {
                "rule": "HostSNI(`db.test`)",
                "entryPoints": ["websecure"],
                "service": "db",
                "tls": {"certResolver": "pebble"},
            }},
            "services": {"db": {"loadBalancer": {"servers": [{"address": db.to_string()}]}}},
        },
    })
    .to_string();
    let v = switchyard_e2e::apply_yaml(&c.endpoints(), &doc).unwrap();
    p.wait_version(v, PROXY_SETTLE);
    let eps = c.endpoints();
    let row = wait_until(Duration::from_secs(60), "pebble/db.test valid", || {
        let r = cert(&eps, "pebble/db.test")?;
        if r["status"] == "valid" {
            Ok(r)
        } else {
            Err(format!("{r}"))
        }
    });
    assert_eq!(pebble.issued(), 1, "{row}");
    let roots = pebble.roots_pem();
    let addr = format!("127.0.0.1:{tls_port}");
    let greeting = wait_until(
        Duration::from_secs(30),
        "the TCP router serving the issued certificate",
        || {
            block_on(async {
                use rustls::pki_types::pem::PemObject;
                let mut store = rustls::RootCertStore::empty();
                for der in CertificateDer::pem_slice_iter(roots.as_bytes()) {
                    store
                        .add(der.map_err(|e| e.to_string())?)
                        .map_err(|e| e.to_string())?;
                }
                let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(store)
                .with_no_client_auth();
                let tcp = tokio::net::TcpStream::connect(&addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let tls = tokio::time::timeout(
                    STEP,
                    tokio_rustls::TlsConnector::from(Arc::new(cfg))
                        .connect(ServerName::try_from("db.test").unwrap(), tcp),
                )
                .await
                .map_err(|_| "handshake timed out".to_string())?
                .map_err(|e| e.to_string())?;
                greeting_and_echo(tls).await
            })
        },
    );
    assert_eq!(greeting, "db");
}
