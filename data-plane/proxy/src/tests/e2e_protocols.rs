//! Protocols through the proxy: HTTP/2 prior knowledge, WebSocket, large streamed bodies,
//! gRPC-style trailers over h2c, and https backends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::*;

fn catch_all(url: &str) -> String {
    format!(
        "http: {{routers: {{r: {{rule: \"PathPrefix(`/`)\", service: s}}}}, services: {{s: {{loadBalancer: {{servers: [{{url: \"{url}\"}}]}}}}}}}}"
    )
}

#[tokio::test]
async fn http2_prior_knowledge_client() {
    let a = Backend::start(echo("a")).await;
    let (p, addr) = start_proxy().await;
    apply(&p, &catch_all(&a.url()));
    let c = h2_client();
    for _ in 0..3 {
        let req = Request::post(format!("http://{addr}/h2?x=1"))
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap();
        let g = send(&c, req).await;
        assert_eq!(g.status, 200);
        assert_eq!(g.version, http::Version::HTTP_2);
        assert_eq!(field(&g.body, "version"), Some("HTTP/1.1"));
        assert_eq!(field(&g.body, "uri"), Some("/h2?x=1"));
        assert_eq!(field(&g.body, "body"), Some("5"));
        // The HTTP/2 authority becomes the Host of the HTTP/1.1 request.
        assert_eq!(header(&g.body, "host"), [addr.to_string().as_str()]);
    }
    p.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrade_echo() {
    let ws: Handler = Arc::new(|mut req: Request<hyper::body::Incoming>| {
        Box::pin(async move {
            let ok = req
                .headers()
                .get("upgrade")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
            if !ok {
                return Response::builder()
                    .status(400)
                    .body(full("no upgrade"))
                    .unwrap();
            }
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(up) = on.await else { return };
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if io.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            Response::builder()
                .status(101)
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
                .body(full(""))
                .unwrap()
        })
    });
    let b = Backend::start(ws).await;
    let (p, addr) = start_proxy().await;
    apply(&p, &catch_all(&b.url()));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("sec-websocket-accept"), "{head}");
    for i in 0..5 {
        let msg = format!("frame {i} through the tunnel");
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, msg.as_bytes());
    }
    drop(s);
    // The tunnel ends and shutdown does not wait for the drain timeout.
    tokio::time::timeout(Duration::from_secs(5), p.shutdown())
        .await
        .unwrap();
}

const MIB: usize = 1 << 20;
const TOTAL_MIB: usize = 64;

fn chunk(i: usize) -> Bytes {
    let mut v = vec![0u8; MIB];
    for (j, b) in v.iter_mut().enumerate() {
        *b = ((i * 7 + j * 31) % 251) as u8;
    }
    Bytes::from(v)
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_upload_and_download() {
    // Bytes the backend has received so far (proves the proxy streams the upload).
    let received = Arc::new(AtomicUsize::new(0));
    // Bytes the client has received so far (proves the proxy streams the download).
    let downloaded = Arc::new(AtomicUsize::new(0));
    let (r2, d2) = (received.clone(), downloaded.clone());
    let h: Handler = Arc::new(move |req: Request<hyper::body::Incoming>| {
        let received = r2.clone();
        let downloaded = d2.clone();
        Box::pin(async move {
            if req.method() == http::Method::POST {
                let mut body = req.into_body();
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                let mut n = 0usize;
                while let Some(f) = body.frame().await {
                    if let Ok(d) = f.unwrap().into_data() {
                        n += d.len();
                        received.store(n, Ordering::SeqCst);
                        ctx.update(&d);
                    }
                }
                Response::new(full(format!("{n} {}", hex(ctx.finish().as_ref()))))
            } else {
                let (tx, rx) = mpsc::channel(4);
                tokio::spawn(async move {
                    for i in 0..TOTAL_MIB {
                        if i == 8 {
                            // Do not go on before the client got data: a buffering proxy
                            // would deadlock here.
                            let d = downloaded.clone();
                            assert!(
                                wait_for(Duration::from_secs(20), || {
                                    let d = d.clone();
                                    async move { d.load(Ordering::SeqCst) >= MIB }
                                })
                                .await,
                                "download is not streamed"
                            );
                        }
                        if tx.send(Frame::data(chunk(i))).await.is_err() {
                            return;
                        }
                    }
                });
                Response::new(ChanBody(rx).boxed())
            }
        })
    });
    let b = Backend::start(h).await;
    let (p, addr) = start_proxy().await;
    apply(&p, &catch_all(&b.url()));

    // Upload.
    let mut expected = ring::digest::Context::new(&ring::digest::SHA256);
    for i in 0..TOTAL_MIB {
        expected.update(&chunk(i));
    }
    let expected = hex(expected.finish().as_ref());
    let (tx, rx) = mpsc::channel(4);
    let r3 = received.clone();
    let producer = tokio::spawn(async move {
        for i in 0..TOTAL_MIB {
            if i == 8 {
                let r = r3.clone();
                assert!(
                    wait_for(Duration::from_secs(20), || {
                        let r = r.clone();
                        async move { r.load(Ordering::SeqCst) >= MIB }
                    })
                    .await,
                    "upload is not streamed"
                );
            }
            tx.send(Frame::data(chunk(i))).await.unwrap();
        }
    });
    let up_client: hyper_util::client::legacy::Client<_, ChanBody> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("http://{addr}/upload"))
        .header("content-length", (TOTAL_MIB * MIB).to_string())
        .body(ChanBody(rx))
        .unwrap();
    let resp = up_client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    producer.await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("{} {expected}", TOTAL_MIB * MIB)
    );

    // Download.
    let resp = client()
        .request(
            Request::get(format!("http://{addr}/download"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut n = 0usize;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            n += d.len();
            downloaded.store(n, Ordering::SeqCst);
            ctx.update(&d);
        }
    }
    assert_eq!(n, TOTAL_MIB * MIB);
    assert_eq!(hex(ctx.finish().as_ref()), expected);
    p.shutdown().await;
}

#[tokio::test]
async fn grpc_style_h2c_with_trailers() {
    let h: Handler = Arc::new(|req: Request<hyper::body::Incoming>| {
        Box::pin(async move {
            assert_eq!(req.version(), http::Version::HTTP_2);
            let te = req
                .headers()
                .get("te")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let ct = req
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let path = req.uri().path().to_string();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                let _ = tx.send(Frame::data(body)).await;
                let mut t = http::HeaderMap::new();
                t.insert("grpc-status", "0".parse().unwrap());
                t.insert("grpc-message", "ok".parse().unwrap());
                t.insert("x-te", te.unwrap_or_default().parse().unwrap());
                t.insert("x-path", path.parse().unwrap());
                let _ = tx.send(Frame::trailers(t)).await;
            });
            Response::builder()
                .header("content-type", ct.unwrap_or_default())
                .body(ChanBody(rx).boxed())
                .unwrap()
        })
    });
    let b = Backend::start(h).await;
    let (p, addr) = start_proxy().await;
    apply(&p, &catch_all(&format!("h2c://{}", b.addr)));
    let c = h2_client();
    for _ in 0..3 {
        let req = Request::post(format!("http://{addr}/pkg.Echo/Say"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))
            .unwrap();
        let resp = c.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "ok");
        assert_eq!(trailers["x-te"], "trailers");
        assert_eq!(trailers["x-path"], "/pkg.Echo/Say");
        assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x05hello");
    }
    p.shutdown().await;
}

/// A TLS backend (self-signed for `localhost`), ALPN h2 + http/1.1.
/// Also returns its certificate (PEM).
async fn tls_backend_pem(
    handler: Handler,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = ck.cert.pem();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let f = handler(req);
                    async move { Ok::<_, std::convert::Infallible>(f.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, task, pem)
}

#[tokio::test]
async fn https_backends() {
    let (baddr, task, ca) = tls_backend_pem(echo("tls")).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers:
    insecure: {{rule: "Host(`insecure.test`)", service: insecure}}
    verified: {{rule: "Host(`verified.test`)", service: verified}}
    h1only: {{rule: "Host(`h1.test`)", service: h1only}}
    ca: {{rule: "Host(`ca.test`)", service: ca}}
    wrongname: {{rule: "Host(`wrong.test`)", service: wrongname}}
  services:
    ca: {{loadBalancer: {{serversTransport: ca, servers: [{{url: "https://{baddr}"}}]}}}}
    wrongname: {{loadBalancer: {{serversTransport: wrongname, servers: [{{url: "https://{baddr}"}}]}}}}
    insecure: {{loadBalancer: {{serversTransport: skip, servers: [{{url: "https://{baddr}"}}]}}}}
    verified: {{loadBalancer: {{servers: [{{url: "https://{baddr}"}}]}}}}
    h1only: {{loadBalancer: {{serversTransport: skiph1, servers: [{{url: "https://{baddr}"}}]}}}}
  serversTransports:
    skip: {{insecureSkipVerify: true, serverName: localhost}}
    skiph1: {{insecureSkipVerify: true, disableHTTP2: true}}
    ca: {{rootCAs: [{ca:?}], serverName: localhost}}
    wrongname: {{rootCAs: [{ca:?}], serverName: other.test}}
"#
        ),
    );
    let c = client();
    let g = get(&c, addr, "insecure.test", "/tls").await;
    assert_eq!(g.status, 200, "{}", g.body);
    // ALPN picked HTTP/2; the client's host is the :authority.
    assert_eq!(field(&g.body, "version"), Some("HTTP/2.0"));
    assert_eq!(field(&g.body, "uri"), Some("https://insecure.test/tls"));
    let g = get(&c, addr, "h1.test", "/tls").await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(field(&g.body, "version"), Some("HTTP/1.1"));
    assert_eq!(header(&g.body, "host"), ["h1.test"]);
    // A self-signed certificate does not verify against the public roots.
    let g = get(&c, addr, "verified.test", "/tls").await;
    assert_eq!(g.status, 502);
    // Trusted through the transport's rootCAs, verified against serverName.
    let g = get(&c, addr, "ca.test", "/tls").await;
    assert_eq!(g.status, 200, "{}", g.body);
    let g = get(&c, addr, "wrong.test", "/tls").await;
    assert_eq!(g.status, 502);
    task.abort();
    p.shutdown().await;
}
