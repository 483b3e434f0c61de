//! Issue 3, must-show 5: WebSocket echo, gRPC unary and server streaming (tonic's health service
//! over h2c), HTTP/2 clients (h2c prior knowledge, multiplexed), and large streamed uploads and
//! downloads all pass through the proxy intact.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use switchyard_e2e::backends::{
    block_on, pattern_sha256, GrpcBackend, HttpBackend, WsBackend, GRPC_TEST_SERVICE,
};
use switchyard_e2e::client::{download, fetch, upload, H2Client, Req};
use switchyard_e2e::single_node_stack;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const STEP: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP:?}"))
}

#[test]
fn websocket_echo_through_the_proxy() {
    let ws = WsBackend::start();
    let doc = format!(
        r#"http:
  routers:
    ws: {{rule: "Host(`ws.test`) && PathPrefix(`/chat`)", service: ws}}
  services:
    ws: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        ws.url()
    );
    let (_c, proxy) = single_node_stack(&doc, |s| s);
    let addr = proxy.web().to_string();
    block_on(async move {
        let mut req = format!("ws://{addr}/chat?room=7")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("host", http::HeaderValue::from_static("ws.test"));
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut sock, resp) = within(
            "websocket handshake",
            tokio_tungstenite::client_async(req, tcp),
        )
        .await
        .expect("websocket handshake through the proxy");
        assert_eq!(resp.status(), 101, "{resp:?}");
        assert_eq!(
            resp.headers().get("x-backend").map(|v| v.as_bytes()),
            Some(&b"ws"[..]),
            "{resp:?}"
        );

        for i in 0..100 {
            let text = format!("message {i} {}", "x".repeat(i * 10));
            sock.send(Message::text(text.clone())).await.unwrap();
            let back = within("text echo", sock.next()).await.unwrap().unwrap();
            assert_eq!(back, Message::text(text), "text message {i}");
        }
        for i in 0..4u8 {
            let payload: Vec<u8> = (0..(256 * 1024)).map(|j| (j as u8) ^ i).collect();
            sock.send(Message::binary(payload.clone())).await.unwrap();
            let back = within("binary echo", sock.next()).await.unwrap().unwrap();
            assert_eq!(
                back.into_data().as_ref(),
                &payload[..],
                "binary message {i}"
            );
        }
        sock.send(Message::Ping(b"are you there".to_vec().into()))
            .await
            .unwrap();
        match within("pong", sock.next()).await.unwrap().unwrap() {
            Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
            other => panic!("expected a pong, got {other:?}"),
        }
        sock.close(None).await.unwrap();
        match within("close", sock.next()).await {
            None | Some(Ok(Message::Close(_))) | Some(Err(_)) => {}
            Some(Ok(other)) => panic!("unexpected after close: {other:?}"),
        }
    });
    let hs = ws.handshakes();
    assert_eq!(hs.len(), 1, "{hs:?}");
    assert_eq!(hs[0].0, "/chat?room=7", "{hs:?}");
}

#[test]
fn grpc_unary_and_server_streaming_over_h2c_through_the_proxy() {
    let grpc = GrpcBackend::start();
    let doc = format!(
        r#"http:
  routers:
    grpc: {{rule: "PathPrefix(`/grpc.health.v1.Health/`)", service: grpc}}
  services:
    grpc: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        grpc.h2c_url()
    );
    let (_c, proxy) = single_node_stack(&doc, |s| s);
    let endpoint = format!("http://{}", proxy.web());
    let channel = block_on(async {
        tonic::transport::Endpoint::from_shared(endpoint)
            .unwrap()
            .connect_timeout(STEP)
            .connect()
            .await
            .expect("h2c connection to the proxy")
    });
    let mut client = HealthClient::new(channel);

    // Unary: OK responses, and an error status (carried in trailers) intact.
    block_on(async {
        let r = within(
            "Check",
            client.check(HealthCheckRequest {
                service: GRPC_TEST_SERVICE.into(),
            }),
        )
        .await
        .expect("Check through the proxy")
        .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32);
        let err = within(
            "Check unknown",
            client.check(HealthCheckRequest {
                service: "no.such.Service".into(),
            }),
        )
        .await
        .expect_err("unknown service");
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

        // Many concurrent unary calls multiplexed on one connection.
        let calls = (0..50).map(|_| {
            let mut c = client.clone();
            async move {
                c.check(HealthCheckRequest {
                    service: GRPC_TEST_SERVICE.into(),
                })
                .await
                .map(|r| r.into_inner().status)
            }
        });
        let results = within("50 concurrent calls", futures::future::join_all(calls)).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(s) if *s == ServingStatus::Serving as i32)),
            "{results:?}"
        );
    });

    // Server streaming: Watch sees every status change as it happens.
    let mut stream = block_on(async {
        within(
            "Watch",
            client.watch(HealthCheckRequest {
                service: GRPC_TEST_SERVICE.into(),
            }),
        )
        .await
        .expect("Watch through the proxy")
        .into_inner()
    });
    let mut next = |what: &str| -> i32 {
        block_on(within(what, stream.message()))
            .unwrap_or_else(|s| panic!("{what}: {s:?}"))
            .unwrap_or_else(|| panic!("{what}: stream ended"))
            .status
    };
    assert_eq!(next("first watch message"), ServingStatus::Serving as i32);
    grpc.set_serving(false);
    assert_eq!(
        next("watch after NOT_SERVING"),
        ServingStatus::NotServing as i32
    );
    grpc.set_serving(true);
    assert_eq!(next("watch after SERVING"), ServingStatus::Serving as i32);
}

#[test]
fn http2_clients_with_prior_knowledge_multiplex_through_the_proxy() {
    let h1 = HttpBackend::start("h1-backend");
    let h2 = HttpBackend::start("h2c-backend");
    let doc = format!(
        r#"http:
  routers:
    to-h1: {{rule: "Host(`h2.test`)", service: h1}}
    to-h2c: {{rule: "Host(`h2c.test`)", service: h2c}}
  services:
    h1: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
    h2c: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        h1.url(),
        h2.h2c_url()
    );
    let (_c, proxy) = single_node_stack(&doc, |s| s);
    let addr = proxy.web().to_string();
    block_on(async move {
        let client = H2Client::connect(&addr).await.unwrap();
        for (host, backend, backend_version) in [
            ("h2.test", "h1-backend", "HTTP/1.1"),
            ("h2c.test", "h2c-backend", "HTTP/2.0"),
        ] {
            let calls = (0..64).map(|i| {
                let c = client.clone();
                async move { (i, c.send(&Req::get(host, &format!("/r/{i}?q={i}"))).await) }
            });
            for (i, r) in within("64 concurrent requests", futures::future::join_all(calls)).await {
                let r = r.unwrap_or_else(|e| panic!("{host} request {i}: {e}"));
                assert_eq!(r.status, 200, "{host} {i}: {r}");
                assert_eq!(r.version, http::Version::HTTP_2, "{r}");
                let echo = r.json();
                assert_eq!(echo["name"], backend, "{r}");
                assert_eq!(echo["pathAndQuery"], format!("/r/{i}?q={i}"), "{r}");
                assert_eq!(echo["version"], backend_version, "{r}");
            }
            // A request body over HTTP/2.
            let body: Vec<u8> = (0..(1 << 20)).map(|j| (j % 251) as u8).collect();
            let r = within(
                "POST over h2",
                client.send(&Req::get(host, "/post").method("POST").body(body.clone())),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 200, "{r}");
            assert_eq!(r.json()["bodyLen"], body.len(), "{r}");
        }
    });
    // And HTTP/1.1 clients reach the h2c backend too.
    let r = fetch(proxy.web(), &Req::get("h2c.test", "/from-h1")).unwrap();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["version"], "HTTP/2.0", "{r}");
}

#[test]
fn large_streamed_upload_and_download_pass_intact() {
    const BIG: u64 = 256 << 20;
    const H2_SIZE: u64 = 32 << 20;
    let backend = HttpBackend::start("big");
    let doc = format!(
        r#"http:
  routers:
    big: {{rule: "Host(`big.test`)", service: big}}
  services:
    big: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        backend.url()
    );
    let (_c, proxy) = single_node_stack(&doc, |s| s);
    let rss_before = proxy.peak_rss_kib();
    let addr = proxy.web().to_string();
    let want_big = pattern_sha256(BIG);
    let want_h2 = pattern_sha256(H2_SIZE);

    for (size, h2, want) in [(BIG, false, &want_big), (H2_SIZE, true, &want_h2)] {
        let up = block_on(upload(&addr, "big.test", "/upload", size, h2))
            .unwrap_or_else(|e| panic!("upload of {size} bytes (h2: {h2}): {e}"));
        assert_eq!(up.status, 200, "{up:?}");
        let echo: serde_json::Value = serde_json::from_slice(&up.small_body).unwrap();
        assert_eq!(echo["bodyLen"], size, "upload (h2: {h2}): {echo}");
        assert_eq!(
            echo["bodySha256"],
            want.as_str(),
            "upload (h2: {h2}): {echo}"
        );
        assert_eq!(echo["bodyError"], serde_json::Value::Null, "{echo}");
        eprintln!("upload {} MiB (h2: {h2}) in {:.1?}", size >> 20, up.elapsed);

        let down = block_on(download(
            &addr,
            "big.test",
            &format!("/download/{size}"),
            h2,
        ))
        .unwrap_or_else(|e| panic!("download of {size} bytes (h2: {h2}): {e}"));
        assert_eq!(down.status, 200, "{down:?}");
        assert_eq!(down.received, size, "download (h2: {h2})");
        assert_eq!(&down.received_sha256, want, "download (h2: {h2})");
        eprintln!(
            "download {} MiB (h2: {h2}) in {:.1?}",
            size >> 20,
            down.elapsed
        );
    }

    // Streaming, not buffering: the proxy's peak RSS grew by far less than one body.
    if let (Some(before), Some(after)) = (rss_before, proxy.peak_rss_kib()) {
        eprintln!("proxy peak RSS: {before} KiB before, {after} KiB after");
        assert!(
            after.saturating_sub(before) < 96 * 1024,
            "proxy peak RSS grew from {before} KiB to {after} KiB while moving {} MiB bodies: \
             bodies are buffered, not streamed",
            BIG >> 20
        );
    }
}
