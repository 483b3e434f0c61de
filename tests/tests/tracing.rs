//! Issue 10, must-shows 1 and 3 (proxy side): OpenTelemetry traces through the real binaries.
//! With an OTLP receiver in the test (gRPC, and HTTP/protobuf): a request yields a server span
//! with the router and service and a `ReverseProxy` client span; the `traceparent` reaching the
//! backend carries the same trace id; the client's trace id is kept; resource attributes name
//! the proxy; a router with `observability.tracing: false` yields no span and passes the
//! client's `traceparent` through. A black-holed collector fails no request and the
//! dropped-span counter rises.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::{fetch, get, Req};
use switchyard_e2e::otlp::{OtlpReceiver, RecvSpan};
use switchyard_e2e::{apply_to, wait_until, Cluster, Proxy, ProxySpec, PROXY_SETTLE};

const WAIT: Duration = Duration::from_secs(30);
const CLIENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";
const QUIET_TRACE: &str = "11111111111111111111111111111111";

fn doc(backend: &HttpBackend) -> String {
    format!(
        r#"http:
  routers:
    traced: {{rule: "Host(`traced.test`)", service: app}}
    quiet:
      rule: "Host(`quiet.test`)"
      service: app
      observability: {{tracing: false}}
  services:
    app: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        backend.url()
    )
}

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

/// The server span of trace `trace`, once it and its client span arrived.
fn wait_trace(rx: &OtlpReceiver, trace: &str) -> (RecvSpan, RecvSpan) {
    wait_until(
        WAIT,
        &format!("server and client spans of trace {trace}"),
        || {
            let spans: Vec<RecvSpan> = rx
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace)
                .collect();
            let server = spans.iter().find(|s| s.kind == 2)?.clone();
            let client = spans.iter().find(|s| s.kind == 3)?.clone();
            Some((server, client))
        },
    )
}

#[test]
fn spans_are_exported_over_grpc_and_http_with_w3c_context_kept_and_router_switch() {
    let backend = HttpBackend::start("app");
    backend.record(true);
    let grpc = OtlpReceiver::grpc();
    let httpc = OtlpReceiver::http();
    let c = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.json");
    let pg = Proxy::start(
        ProxySpec::new("tp1", &c.endpoints())
            .zone("eu", "eu-a")
            .args(&[
                "--tracing.otlp.grpc.endpoint",
                &grpc.url(),
                "--tracing.resourceAttributes",
                "deployment.environment=e2e",
                "--accesslog.filepath",
                log.to_str().unwrap(),
                "--accesslog.format",
                "json",
            ]),
    );
    let ph = Proxy::start(ProxySpec::new("tp2", &c.endpoints()).args(&[
        "--tracing.otlp.http.endpoint",
        &format!("{}/v1/traces", httpc.url()),
        "--tracing.serviceName",
        "edge",
    ]));
    let v = apply_to(&c.endpoints(), &pg, &doc(&backend));
    ph.wait_version(v, PROXY_SETTLE);

    // 1. The client's trace is continued: same trace id, the server span's parent is the
    // client's span, the backend sees the client span's context.
    let r = fetch(
        pg.web(),
        &Req::get("traced.test", "/continued")
            .header("traceparent", &traceparent(CLIENT_TRACE, CLIENT_SPAN))
            .header("tracestate", "vendor=abc"),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let seen = backend.seen();
    let at_backend = seen
        .iter()
        .find(|s| s.path_and_query == "/continued")
        .unwrap();
    let tp = at_backend.header("traceparent").unwrap().to_string();
    assert!(tp.starts_with(&format!("00-{CLIENT_TRACE}-")), "{tp}");
    assert!(tp.ends_with("-01"), "{tp}");
    assert!(
        !tp.contains(CLIENT_SPAN),
        "the proxy's span is the parent: {tp}"
    );
    assert_eq!(at_backend.header("tracestate"), Some("vendor=abc"));

    let (server, client) = wait_trace(&grpc, CLIENT_TRACE);
    assert_eq!(server.parent_span_id, CLIENT_SPAN, "{server:?}");
    assert_eq!(server.name, "GET");
    for (k, want) in [
        ("entry_point", "web"),
        ("traefik.router.name", "traced"),
        ("traefik.service.name", "app"),
        ("http.request.method", "GET"),
        ("url.path", "/continued"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(server.attr(k), Some(want), "{k} in {server:?}");
    }
    assert_eq!(
        server.attr("traefik.service.server.url"),
        Some(backend.url().as_str())
    );
    assert_eq!(client.name, "ReverseProxy");
    assert_eq!(client.parent_span_id, server.span_id, "{client:?}");
    assert_eq!(client.attr("url.full"), Some(backend.url().as_str()));
    assert_eq!(client.attr("http.response.status_code"), Some("200"));
    assert_eq!(tp, traceparent(CLIENT_TRACE, &client.span_id));
    for (k, want) in [
        ("service.name", "switchyard-proxy"),
        ("switchyard.proxy.id", "tp1"),
        ("cloud.region", "eu"),
        ("cloud.availability_zone", "eu-a"),
        ("deployment.environment", "e2e"),
    ] {
        assert_eq!(
            server.resource.get(k).map(String::as_str),
            Some(want),
            "{k} in {:?}",
            server.resource
        );
    }

    // The access log line carries the trace.
    let line = wait_until(WAIT, "the access log line of /continued", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("/continued"))
            .map(str::to_string)
    });
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["TraceId"], CLIENT_TRACE);
    assert_eq!(line["SpanId"], server.span_id.as_str());

    // 2. A router with tracing off: no span, the client's traceparent passes through as is.
    let quiet_tp = traceparent(QUIET_TRACE, CLIENT_SPAN);
    let r = fetch(
        pg.web(),
        &Req::get("quiet.test", "/quiet").header("traceparent", &quiet_tp),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let seen = backend.seen();
    let q = seen.iter().find(|s| s.path_and_query == "/quiet").unwrap();
    assert_eq!(q.header("traceparent"), Some(quiet_tp.as_str()));
    // Spans are exported in order: once a later request's spans are in, the quiet one's
    // would be too.
    let marker = "22222222222222222222222222222222";
    let r = fetch(
        pg.web(),
        &Req::get("traced.test", "/marker")
            .header("traceparent", &traceparent(marker, CLIENT_SPAN)),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    wait_trace(&grpc, marker);
    assert!(
        !grpc
            .spans()
            .iter()
            .any(|s| s.trace_id == QUIET_TRACE || s.attr("url.path") == Some("/quiet")),
        "a router with tracing off made a span"
    );

    // 3. A request without a trace starts one; a 404 has a server span without router.
    assert_eq!(get(pg.web(), "traced.test", "/fresh").unwrap().status, 200);
    let seen = backend.seen();
    let fresh = seen.iter().find(|s| s.path_and_query == "/fresh").unwrap();
    let fresh_trace = fresh
        .header("traceparent")
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .to_string();
    let (server, _) = wait_trace(&grpc, &fresh_trace);
    assert_eq!(server.parent_span_id, "", "a root span: {server:?}");
    assert_eq!(get(pg.web(), "nowhere.test", "/nf").unwrap().status, 404);
    wait_until(WAIT, "the server span of the 404", || {
        grpc.spans().into_iter().find(|s| {
            s.attr("url.path") == Some("/nf") && s.attr("http.response.status_code") == Some("404")
        })
    });

    // 4. OTLP over HTTP/protobuf, with its service name.
    let r = fetch(
        ph.web(),
        &Req::get("traced.test", "/over-http").header(
            "traceparent",
            &traceparent("33333333333333333333333333333333", CLIENT_SPAN),
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let (server, _) = wait_trace(&httpc, "33333333333333333333333333333333");
    assert_eq!(
        server.resource.get("service.name").map(String::as_str),
        Some("edge")
    );
    assert_eq!(server.attr("traefik.router.name"), Some("traced"));

    let m = pg.metrics().unwrap();
    assert!(
        m.contains("switchyard_proxy_tracing_dropped_spans_total 0"),
        "{m}"
    );
}

/// Must-show 3 (functional half; the latency comparison is a benchmark, see BENCHMARKS.md):
/// with a collector that accepts connections and never answers, requests keep succeeding
/// promptly and the dropped-span counter rises once the small queue is full.
#[test]
fn a_black_holed_collector_fails_no_request_and_drops_are_counted() {
    let backend = HttpBackend::start("app");
    let hole = OtlpReceiver::black_hole();
    let c = Cluster::start(1);
    let p = Proxy::start(ProxySpec::new("bh", &c.endpoints()).args(&[
        "--tracing.otlp.grpc.endpoint",
        &hole.url(),
        "--tracing.queueSize",
        "8",
        "--tracing.exportTimeout",
        "60s",
    ]));
    apply_to(&c.endpoints(), &p, &doc(&backend));
    let started = std::time::Instant::now();
    for i in 0..200 {
        let r = get(p.web(), "traced.test", &format!("/r{i}")).unwrap();
        assert_eq!(r.status, 200);
    }
    // 200 requests, each waiting on nothing but the backend: far below the 60 s an export
    // may hang (generous for a loaded machine).
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "requests slowed down: {:?}",
        started.elapsed()
    );
    // 400 spans (server + client per request): at most 8 queued and one batch (at most the
    // queue's 8) hanging in the export; every other one is dropped.
    let dropped = wait_until(WAIT, "every span beyond the queue dropped", || {
        let d = p
            .metric("switchyard_proxy_tracing_dropped_spans_total")
            .ok()?;
        (d >= 384.0).then_some(d)
    });
    assert!(dropped <= 400.0, "{dropped}");
}

/// forwardAuth's `AuthRequest` client span (Traefik's name) hangs from the server span, and its
/// context reaches the authentication server; the upstream call's `ReverseProxy` span follows.
#[test]
fn forward_auth_calls_get_a_client_span_in_the_request_trace() {
    let backend = HttpBackend::start("app");
    let auth = HttpBackend::start("auth");
    auth.record(true);
    let rx = OtlpReceiver::grpc();
    let c = Cluster::start(1);
    let p = Proxy::start(
        ProxySpec::new("fa", &c.endpoints()).args(&["--tracing.otlp.grpc.endpoint", &rx.url()]),
    );
    let doc = format!(
        r#"http:
  routers:
    guarded: {{rule: "Host(`guarded.test`)", service: app, middlewares: [check]}}
  middlewares:
    check: {{forwardAuth: {{address: "{}/verify"}}}}
  services:
    app: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        auth.url(),
        backend.url()
    );
    apply_to(&c.endpoints(), &p, &doc);
    let trace = "44444444444444444444444444444444";
    let r = fetch(
        p.web(),
        &Req::get("guarded.test", "/in").header("traceparent", &traceparent(trace, CLIENT_SPAN)),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let seen = auth.seen();
    let at_auth = seen.iter().find(|s| s.path_and_query == "/verify").unwrap();
    let tp = at_auth.header("traceparent").unwrap().to_string();
    let spans = wait_until(
        WAIT,
        "the server, AuthRequest and ReverseProxy spans",
        || {
            let spans: Vec<RecvSpan> = rx
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace)
                .collect();
            (spans.len() >= 3).then_some(spans)
        },
    );
    let server = spans.iter().find(|s| s.kind == 2).unwrap();
    let auth_span = spans.iter().find(|s| s.name == "AuthRequest").unwrap();
    assert_eq!(auth_span.kind, 3, "{auth_span:?}");
    assert_eq!(auth_span.parent_span_id, server.span_id);
    assert_eq!(auth_span.attr("http.response.status_code"), Some("200"));
    assert_eq!(
        auth_span.attr("url.full"),
        Some(format!("{}/verify", auth.url()).as_str())
    );
    assert_eq!(tp, traceparent(trace, &auth_span.span_id));
    let up = spans.iter().find(|s| s.name == "ReverseProxy").unwrap();
    assert_eq!(up.parent_span_id, server.span_id);
}

/// OTLP metrics: the proxy pushes its `/metrics` series (Traefik's names included) to the
/// collector; the request counter arrives with its labels and the count of requests made.
#[test]
fn metrics_are_pushed_over_otlp_with_the_request_counter() {
    let backend = HttpBackend::start("app");
    let rx = OtlpReceiver::grpc();
    let c = Cluster::start(1);
    let p = Proxy::start(ProxySpec::new("mx", &c.endpoints()).args(&[
        "--metrics.otlp.grpc.endpoint",
        &rx.url(),
        "--metrics.otlp.pushInterval",
        "200ms",
    ]));
    apply_to(&c.endpoints(), &p, &doc(&backend));
    for i in 0..3 {
        assert_eq!(
            get(p.web(), "traced.test", &format!("/m{i}"))
                .unwrap()
                .status,
            200
        );
    }
    let point = wait_until(
        WAIT,
        "traefik_router_requests with 3 requests pushed",
        || {
            let points = rx.metric_points();
            points
                .iter()
                .rev()
                .find(|m| {
                    m.name == "traefik_router_requests"
                        && m.attributes.get("router").map(String::as_str) == Some("traced")
                        && m.value == 3.0
                })
                .cloned()
                .ok_or_else(|| {
                    let seen: Vec<_> = points
                        .iter()
                        .filter(|m| m.name == "traefik_router_requests")
                        .collect();
                    format!("{} points; traefik_router_requests: {seen:?}", points.len())
                })
        },
    );
    assert_eq!(point.kind, "sum");
    assert_eq!(
        point.attributes.get("code").map(String::as_str),
        Some("200")
    );
    assert_eq!(
        point.attributes.get("service").map(String::as_str),
        Some("app")
    );
    assert_eq!(
        point
            .resource
            .get("switchyard.proxy.id")
            .map(String::as_str),
        Some("mx")
    );
    // Switchyard's own series and the gauges come along.
    let names: std::collections::BTreeSet<String> =
        rx.metric_points().into_iter().map(|m| m.name).collect();
    for want in [
        "switchyard_proxy_requests",
        "traefik_entrypoint_requests",
        "switchyard_proxy_config_version",
    ] {
        assert!(names.contains(want), "{want} not in {names:?}");
    }
}
