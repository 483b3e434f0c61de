//! Routing, forwarded headers, middlewares, errors, admin and shutdown over real HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::ErrorKind;

async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn routing_balancing_headers_and_errors() {
    let a = Backend::start(echo("a")).await;
    let b = Backend::start(echo("b")).await;
    let (p, addr) = start_proxy().await;
    let c = client();

    // Before any config: 404 and not ready.
    assert_eq!(get(&c, addr, "www.test", "/").await.status, 404);
    let (st, body) = admin(&p, "/readyz").await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(admin(&p, "/healthz").await.0, 200);

    apply(
        &p,
        &format!(
            r#"
http:
  routers:
    api: {{rule: "Host(`api.test`) && PathPrefix(`/v1`)", service: pool, middlewares: [strip]}}
    www: {{rule: "Host(`www.test`)", service: pool@file}}
  middlewares:
    strip: {{stripPrefix: {{prefixes: [/v1]}}}}
  services:
    pool: {{loadBalancer: {{servers: [{{url: "{}"}}, {{url: "{}"}}]}}}}
"#,
            a.url(),
            b.url()
        ),
    );
    let (st, body) = admin(&p, "/readyz").await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "ready: config v1\n"));
    p.set_ready_note("serving cached config v1");
    assert!(admin(&p, "/readyz")
        .await
        .1
        .contains("serving cached config v1"));

    // Round robin.
    let mut ids = Vec::new();
    for _ in 0..4 {
        let g = get(&c, addr, "www.test", "/x").await;
        assert_eq!(g.status, 200);
        ids.push(field(&g.body, "id").unwrap().to_string());
    }
    assert_eq!(ids, ["a", "b", "a", "b"]);

    // Forwarded headers from an untrusted client are replaced; Host passes through.
    let req = Request::get(format!("http://{addr}/hdr?q=1"))
        .header("host", "WWW.test:80")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let g = send(&c, req).await;
    assert_eq!(g.status, 200, "{}", g.body);
    let t = &g.body;
    assert_eq!(field(t, "uri"), Some("/hdr?q=1"));
    assert_eq!(header(t, "host"), ["WWW.test:80"]);
    assert_eq!(header(t, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header(t, "x-forwarded-proto"), ["http"]);
    assert_eq!(header(t, "x-forwarded-host"), ["WWW.test:80"]);
    assert_eq!(header(t, "x-forwarded-port"), ["80"]);
    assert_eq!(header(t, "x-forwarded-server"), ["test-proxy"]);
    assert_eq!(header(t, "x-real-ip"), ["127.0.0.1"]);
    assert!(header(t, "x-hop").is_empty());
    assert_eq!(header(t, "x-request-id")[0].len(), 32);

    // Router middleware.
    let g = get(&c, addr, "api.test", "/v1/users").await;
    assert_eq!(field(&g.body, "uri"), Some("/users"));
    assert_eq!(header(&g.body, "x-forwarded-prefix"), ["/v1"]);

    // Errors.
    let g = get(&c, addr, "nope.test", "/").await;
    assert_eq!(
        (g.status.as_u16(), g.body.as_str()),
        (404, "404 page not found\n")
    );
    let r = raw(
        addr,
        "GET /a%zz HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    // Metrics.
    let m = admin(&p, "/metrics").await.1;
    assert!(
        m.contains(r#"switchyard_proxy_requests_total{entrypoint="web",router="www",service="pool",code="200"} 5"#),
        "{m}"
    );
    assert!(
        m.contains(r#"switchyard_proxy_errors_total{kind="no_route"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"switchyard_proxy_errors_total{kind="bad_request"} 1"#),
        "{m}"
    );
    assert!(m.contains("switchyard_proxy_config_version 1"), "{m}");
    assert!(
        m.contains(r#"switchyard_proxy_open_connections{entrypoint="web"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"switchyard_proxy_backend_server_up{service="pool""#),
        "{m}"
    );
    assert!(
        m.contains("switchyard_proxy_request_duration_seconds_bucket"),
        "{m}"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn trusted_forwarded_headers_and_pass_host_header() {
    let a = Backend::start(echo("a")).await;
    let mut opts = ProxyOptions::default();
    opts.trusted_ips
        .insert("web".into(), vec!["127.0.0.0/8".parse().unwrap()]);
    opts.entrypoints = vec![("web".into(), "127.0.0.1:0".into())];
    let (p, addr) = start_proxy_with(opts).await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers:
    r: {{rule: "PathPrefix(`/`)", service: s}}
    nopass: {{rule: "Host(`nopass.test`)", service: np}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "{0}"}}]}}}}
    np: {{loadBalancer: {{passHostHeader: false, servers: [{{url: "{0}"}}]}}}}
"#,
            a.url()
        ),
    );
    let c = client();
    let req = Request::get(format!("http://{addr}/"))
        .header("host", "x.test")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "6.6.6.6")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let g = send(&c, req).await;
    assert_eq!(header(&g.body, "x-forwarded-for"), ["6.6.6.6, 127.0.0.1"]);
    assert_eq!(header(&g.body, "x-forwarded-proto"), ["https"]);
    assert_eq!(header(&g.body, "x-forwarded-port"), ["443"]);
    assert_eq!(header(&g.body, "x-real-ip"), ["6.6.6.6"]);
    let g = get(&c, addr, "nopass.test", "/").await;
    assert_eq!(header(&g.body, "host"), [a.addr.to_string().as_str()]);
    p.shutdown().await;
}

#[tokio::test]
async fn redirects_and_response_headers() {
    let a = Backend::start(echo("a")).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers:
    r: {{rule: "Host(`r.test`)", service: s, middlewares: [hdr, https]}}
    plain: {{rule: "Host(`p.test`)", service: s, middlewares: [hdr]}}
  middlewares:
    https: {{redirectScheme: {{scheme: https, permanent: true}}}}
    hdr: {{headers: {{customResponseHeaders: {{X-Frame: deny, X-Backend: ""}}, customRequestHeaders: {{X-Added: "1"}}}}}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
            a.url()
        ),
    );
    let c = client();
    let g = get(&c, addr, "r.test:8080", "/a?b=c").await;
    assert_eq!(g.status, 301);
    assert_eq!(g.headers["location"], "https://r.test/a?b=c");
    assert_eq!(g.headers["x-frame"], "deny");
    assert_eq!(g.body, "Moved Permanently");
    let g = get(&c, addr, "p.test", "/").await;
    assert_eq!(g.status, 200);
    assert_eq!(g.headers["x-frame"], "deny");
    assert!(g.headers.get("x-backend").is_none());
    assert_eq!(header(&g.body, "x-added"), ["1"]);
    p.shutdown().await;
}

#[tokio::test]
async fn bad_gateway_gateway_timeout_and_no_server() {
    // A port with nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let slow: Handler = Arc::new(|_req| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::new(full("late"))
        })
    });
    let slow = Backend::start(slow).await;
    let sick: Handler = Arc::new(|_req| {
        Box::pin(async { Response::builder().status(500).body(full("sick")).unwrap() })
    });
    let sick = Backend::start(sick).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers:
    refused: {{rule: "Host(`refused.test`)", service: refused}}
    slow: {{rule: "Host(`slow.test`)", service: slow}}
    down: {{rule: "Host(`down.test`)", service: down}}
  services:
    refused: {{loadBalancer: {{servers: [{{url: "http://{closed}"}}]}}}}
    slow: {{loadBalancer: {{serversTransport: quick, servers: [{{url: "{}"}}]}}}}
    down: {{loadBalancer: {{healthCheck: {{path: /health, interval: 50ms, timeout: 1s}}, servers: [{{url: "{}"}}]}}}}
  serversTransports:
    quick: {{forwardingTimeouts: {{responseHeaderTimeout: 200ms}}}}
"#,
            slow.url(),
            sick.url()
        ),
    );
    let c = client();
    let g = get(&c, addr, "refused.test", "/").await;
    assert_eq!((g.status.as_u16(), g.body.as_str()), (502, "Bad Gateway\n"));
    let g = get(&c, addr, "slow.test", "/").await;
    assert_eq!(
        (g.status.as_u16(), g.body.as_str()),
        (504, "Gateway Timeout\n")
    );
    assert!(
        wait_for(Duration::from_secs(5), || async {
            get(&c, addr, "down.test", "/").await.status == 503
        })
        .await
    );
    let g = get(&c, addr, "down.test", "/").await;
    assert_eq!(g.body, "no available server\n");
    let m = p.metrics();
    assert!(m.error_count(ErrorKind::BadGateway) >= 1);
    assert_eq!(m.error_count(ErrorKind::GatewayTimeout), 1);
    assert!(m.error_count(ErrorKind::NoHealthyServer) >= 2);
    let text = admin(&p, "/metrics").await.1;
    assert!(
        text.contains(r#"switchyard_proxy_backend_server_up{service="down","#),
        "{text}"
    );
    assert!(
        text.contains(&format!("url=\"{}\"}} 0", sick.url())),
        "{text}"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let slow: Handler = Arc::new(|_req| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Response::new(full("done"))
        })
    });
    let slow = Backend::start(slow).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            "http: {{routers: {{r: {{rule: \"PathPrefix(`/`)\", service: s}}}}, services: {{s: {{loadBalancer: {{servers: [{{url: \"{}\"}}]}}}}}}}}",
            slow.url()
        ),
    );
    let c = client();
    let inflight = tokio::spawn({
        let c = c.clone();
        async move { get(&c, addr, "a", "/").await }
    });
    // Wait until the backend has the request, then shut down.
    assert!(wait_for(Duration::from_secs(5), || async { slow.hits() == 1 }).await);
    let admin_addr = p.admin_addr();
    let sd = tokio::spawn(p.clone().shutdown());
    // While draining, /readyz tells load balancers to go away.
    assert!(
        wait_for(Duration::from_secs(5), || async {
            let g = get(&client(), admin_addr, "admin", "/readyz").await;
            g.status == 503 && g.body.contains("shutting down")
        })
        .await
    );
    sd.await.unwrap();
    let g = inflight.await.unwrap();
    assert_eq!((g.status.as_u16(), g.body.as_str()), (200, "done"));
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn nack_keeps_old_config_and_versions_only_move_forward() {
    let a = Backend::start(echo("a")).await;
    let (p, addr) = start_proxy().await;
    let good = format!(
        "http: {{routers: {{r: {{rule: \"PathPrefix(`/`)\", service: s}}}}, services: {{s: {{loadBalancer: {{servers: [{{url: \"{}\"}}]}}}}}}}}",
        a.url()
    );
    let cfg = Arc::new(switchyard_config::parse_document(&good).unwrap());
    p.apply(5, cfg.clone()).unwrap();
    let bad = switchyard_config::parse_document(
        "http: {routers: {r: {rule: \"Hots(`x`)\", service: s}}, services: {s: {loadBalancer: {servers: [{url: \"http://127.0.0.1:1\"}]}}}}",
    )
    .unwrap();
    let err = p.apply(6, Arc::new(bad)).unwrap_err();
    assert!(
        err.contains("router \"r\": rule: unknown matcher \"Hots\""),
        "{err}"
    );
    assert_eq!(p.version(), 5);
    assert_eq!(*p.config(), *cfg);
    // Older or equal versions are ignored.
    p.apply(3, Arc::new(switchyard_config::DynamicConfig::default()))
        .unwrap();
    assert_eq!(p.version(), 5);
    let c = client();
    assert_eq!(get(&c, addr, "x", "/").await.status, 200);
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for _ in 0..3 {
        *counts
            .entry(get(&c, addr, "x", "/").await.status.as_u16())
            .or_default() += 1;
    }
    assert_eq!(counts.get(&200), Some(&3));
    p.shutdown().await;
}

#[tokio::test]
async fn routers_attach_by_entry_points() {
    let a = Backend::start(echo("a")).await;
    let opts = ProxyOptions {
        entrypoints: vec![
            ("web".into(), "127.0.0.1:0".into()),
            ("internal".into(), "127.0.0.1:0".into()),
        ],
        ..ProxyOptions::default()
    };
    let (p, web) = start_proxy_with(opts).await;
    let internal = p.local_addrs()[1].1;
    apply(
        &p,
        &format!(
            r#"
http:
  routers:
    everywhere: {{rule: "Path(`/all`)", service: s}}
    inside: {{rule: "Path(`/inside`)", entryPoints: [internal], service: s}}
    elsewhere: {{rule: "Path(`/other`)", entryPoints: [nowhere], service: s}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
            a.url()
        ),
    );
    let c = client();
    assert_eq!(get(&c, web, "x", "/all").await.status, 200);
    assert_eq!(get(&c, internal, "x", "/all").await.status, 200);
    assert_eq!(get(&c, web, "x", "/inside").await.status, 404);
    assert_eq!(get(&c, internal, "x", "/inside").await.status, 200);
    assert_eq!(get(&c, web, "x", "/other").await.status, 404);
    assert_eq!(get(&c, internal, "x", "/other").await.status, 404);
    let r = raw(
        web,
        "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 501"), "{r}");
    p.shutdown().await;
}
