//! Issue 3, beyond the must-show list: the proxy's own answers (no router 404, connect failure
//! 502, no healthy server 503, backend timeout 504, malformed request 400), each counted in
//! `switchyard_proxy_errors_total{kind}`; and the headers it adds and removes (X-Forwarded-*,
//! X-Real-Ip honoured from trusted sources only, hop-by-hop removal, X-Request-Id,
//! passHostHeader).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::backends::{HttpBackend, Mode};
use switchyard_e2e::client::{fetch, get, Req};
use switchyard_e2e::{free_addr, metric_value, single_node_stack, wait_until, PROXY_SETTLE};

fn error_count(m: &str, kind: &str) -> f64 {
    metric_value(
        m,
        &format!("switchyard_proxy_errors_total{{kind=\"{kind}\"}}"),
    )
    .or_else(|| {
        m.lines()
            .filter(|l| l.starts_with("switchyard_proxy_errors_total{"))
            .find(|l| l.contains(&format!("kind=\"{kind}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    })
    .unwrap_or(0.0)
}

#[test]
fn proxy_errors_have_their_status_codes_and_are_counted() {
    let hang = HttpBackend::start("hang");
    hang.set_mode(Mode::Hang);
    let sick = HttpBackend::start("sick");
    sick.set_healthy(false);
    let closed = free_addr(); // nothing listens there
    let doc = format!(
        r#"http:
  routers:
    refused: {{rule: "Host(`refused.test`)", service: refused}}
    unhealthy: {{rule: "Host(`unhealthy.test`)", service: unhealthy}}
    slow: {{rule: "Host(`slow.test`)", service: slow}}
  services:
    refused: {{loadBalancer: {{servers: [{{url: "http://{closed}"}}]}}}}
    unhealthy:
      loadBalancer:
        healthCheck: {{path: /health, interval: 200ms, timeout: 500ms}}
        servers: [{{url: "{}"}}]
    slow:
      loadBalancer:
        serversTransport: short
        servers: [{{url: "{}"}}]
  serversTransports:
    short:
      forwardingTimeouts:
        responseHeaderTimeout: 500ms
"#,
        sick.url(),
        hang.url()
    );
    let (_c, proxy) = single_node_stack(&doc, |s| s);
    let addr = proxy.web();

    let r = get(addr, "nobody.test", "/").unwrap();
    assert_eq!(r.status, 404, "no router: {r}");
    let r = get(addr, "refused.test", "/").unwrap();
    assert_eq!(r.status, 502, "connection refused: {r}");
    wait_until(
        PROXY_SETTLE,
        "503 once the health check marks the only server down",
        || {
            let r = get(addr, "unhealthy.test", "/")?;
            if r.status == 503 {
                Ok(())
            } else {
                Err(format!("{r}"))
            }
        },
    );
    let r = get(addr, "slow.test", "/").unwrap();
    assert_eq!(r.status, 504, "response header timeout: {r}");
    assert!(hang.hits() >= 1);

    // A malformed request gets 400, and the proxy lives on.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: nobody.test\r\nthis is not a header\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf);
    assert!(
        head.starts_with("HTTP/1.1 400"),
        "malformed request: {head:?}"
    );
    assert_eq!(proxy.http("/healthz").unwrap().status, 200);

    let m = proxy.metrics().unwrap();
    for kind in [
        "no_route",
        "bad_gateway",
        "no_healthy_server",
        "gateway_timeout",
    ] {
        assert!(
            error_count(&m, kind) >= 1.0,
            "switchyard_proxy_errors_total{{kind={kind:?}}} counted:\n{m}"
        );
    }
}

fn echo_headers(r: &switchyard_e2e::client::Resp) -> Value {
    assert_eq!(r.status, 200, "{r}");
    r.json()["headers"].clone()
}

#[test]
fn forwarded_headers_hop_by_hop_request_id_and_pass_host_header() {
    let b = HttpBackend::start("echo");
    let doc = format!(
        r#"http:
  routers:
    pass: {{rule: "Host(`pass.test`)", service: pass}}
    nopass: {{rule: "Host(`nopass.test`)", service: nopass}}
  services:
    pass: {{loadBalancer: {{servers: [{{url: "{0}"}}]}}}}
    nopass: {{loadBalancer: {{passHostHeader: false, servers: [{{url: "{0}"}}]}}}}
"#,
        b.url()
    );
    let (_c, proxy) = single_node_stack(&doc, |s| {
        s.entrypoints(&["web", "trusted"])
            .args(&["--trusted-ips", "trusted=127.0.0.1/32"])
    });

    // Untrusted entry point: client X-Forwarded-* are replaced, hop-by-hop headers removed,
    // a request id added.
    let req = Req::get("pass.test", "/h")
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Forwarded-Host", "evil.test")
        .header("X-Real-Ip", "203.0.113.7")
        .header("Connection", "X-Hop")
        .header("X-Hop", "1")
        .header("Keep-Alive", "timeout=5")
        .header("X-Kept", "yes");
    let h = echo_headers(&fetch(proxy.entry("web"), &req).unwrap());
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h:#}");
    assert_eq!(h["x-real-ip"], "127.0.0.1", "{h:#}");
    assert_eq!(h["x-forwarded-host"], "pass.test", "{h:#}");
    assert_eq!(h["x-forwarded-proto"], "http", "{h:#}");
    assert!(h.get("x-forwarded-port").is_some(), "{h:#}");
    assert_eq!(
        h["host"], "pass.test",
        "passHostHeader defaults to true: {h:#}"
    );
    assert!(
        h.get("x-hop").is_none(),
        "named in Connection: removed: {h:#}"
    );
    assert!(h.get("keep-alive").is_none(), "hop-by-hop: removed: {h:#}");
    assert_eq!(h["x-kept"], "yes", "{h:#}");
    let id = h["x-request-id"].as_str().unwrap_or("");
    assert!(!id.is_empty(), "an X-Request-Id is added: {h:#}");

    // A client's X-Request-Id is kept.
    let h = echo_headers(
        &fetch(
            proxy.entry("web"),
            &Req::get("pass.test", "/h").header("X-Request-Id", "req-42"),
        )
        .unwrap(),
    );
    assert_eq!(h["x-request-id"], "req-42", "{h:#}");

    // Trusted entry point: the client's X-Forwarded-For is kept and extended.
    let h = echo_headers(
        &fetch(
            proxy.entry("trusted"),
            &Req::get("pass.test", "/h").header("X-Forwarded-For", "203.0.113.7"),
        )
        .unwrap(),
    );
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1", "{h:#}");

    // passHostHeader: false sends the server's own host.
    let h = echo_headers(&get(proxy.web(), "nopass.test", "/h").unwrap());
    assert_eq!(h["host"], b.addr().to_string(), "{h:#}");
    assert_eq!(h["x-forwarded-host"], "nopass.test", "{h:#}");
}
