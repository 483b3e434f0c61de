//! Services over real HTTP: health checks, failover, mirroring, canary weights, sticky
//! cookies, zone failover, and config swaps under load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

use super::*;

/// An echo backend whose `/health` answers 200 or 503 depending on a flag.
fn flagged(id: &'static str, healthy: Arc<AtomicBool>) -> Handler {
    let inner = echo(id);
    Arc::new(move |req: Request<hyper::body::Incoming>| {
        if req.uri().path() == "/health" {
            let ok = healthy.load(Ordering::SeqCst);
            return Box::pin(async move {
                Response::builder()
                    .status(if ok { 200 } else { 503 })
                    .body(full(""))
                    .unwrap()
            });
        }
        inner(req)
    })
}

async fn id_of(c: &TestClient, addr: std::net::SocketAddr, host: &str) -> String {
    let g = get(c, addr, host, "/").await;
    assert_eq!(g.status, 200, "{}", g.body);
    field(&g.body, "id").unwrap_or("?").to_string()
}

async fn ids(
    c: &TestClient,
    addr: std::net::SocketAddr,
    host: &str,
    n: usize,
) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for _ in 0..n {
        *m.entry(id_of(c, addr, host).await).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn active_health_check_removes_and_readds_a_server() {
    let healthy = Arc::new(AtomicBool::new(true));
    let a = Backend::start(flagged("a", healthy.clone())).await;
    let b = Backend::start(echo("b")).await;
    let (p, addr) = start_proxy().await;
    let cfg = format!(
        r#"
http:
  routers: {{r: {{rule: "PathPrefix(`/`)", service: s}}}}
  services:
    s:
      loadBalancer:
        healthCheck: {{path: /health, interval: 50ms, timeout: 1s}}
        servers: [{{url: "{}"}}, {{url: "{}"}}]
"#,
        a.url(),
        b.url()
    );
    apply(&p, &cfg);
    let c = client();
    assert_eq!(ids(&c, addr, "x", 4).await.len(), 2);

    healthy.store(false, Ordering::SeqCst);
    assert!(
        wait_for(Duration::from_secs(5), || async {
            admin(&p, "/metrics")
                .await
                .1
                .contains(&format!("url=\"{}\"}} 0", a.url()))
        })
        .await
    );
    assert_eq!(ids(&c, addr, "x", 10).await.get("b"), Some(&10));
    // A config update that leaves the service unchanged keeps its health state.
    let with_extra = cfg.replace(
        "routers: {",
        "routers: {other: {rule: \"Host(`other.test`)\", service: s}, ",
    );
    apply(&p, &with_extra);
    assert_eq!(ids(&c, addr, "x", 10).await.get("b"), Some(&10));

    healthy.store(true, Ordering::SeqCst);
    assert!(
        wait_for(Duration::from_secs(5), || async {
            id_of(&c, addr, "x").await == "a"
        })
        .await
    );
    assert_eq!(ids(&c, addr, "x", 10).await.len(), 2);
    p.shutdown().await;
}

#[tokio::test]
async fn failover_switches_on_health_and_back() {
    let healthy = Arc::new(AtomicBool::new(true));
    let main = Backend::start(flagged("main", healthy.clone())).await;
    let fb = Backend::start(echo("fallback")).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers: {{r: {{rule: "PathPrefix(`/`)", service: fo}}}}
  services:
    fo: {{failover: {{service: main, fallback: fb}}}}
    main: {{loadBalancer: {{healthCheck: {{path: /health, interval: 50ms}}, servers: [{{url: "{}"}}]}}}}
    fb: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
            main.url(),
            fb.url()
        ),
    );
    let c = client();
    assert_eq!(ids(&c, addr, "x", 5).await.get("main"), Some(&5));
    healthy.store(false, Ordering::SeqCst);
    assert!(
        wait_for(Duration::from_secs(5), || async {
            id_of(&c, addr, "x").await == "fallback"
        })
        .await
    );
    assert_eq!(ids(&c, addr, "x", 5).await.get("fallback"), Some(&5));
    healthy.store(true, Ordering::SeqCst);
    assert!(
        wait_for(Duration::from_secs(5), || async {
            id_of(&c, addr, "x").await == "main"
        })
        .await
    );
    p.shutdown().await;
}

#[tokio::test]
async fn mirroring_copies_requests_without_delaying_them() {
    let main = Backend::start(echo("main")).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, String)>();
    let recorder: Handler = Arc::new(move |req: Request<hyper::body::Incoming>| {
        let tx = tx.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let _ = tx.send((path, String::from_utf8_lossy(&body).into_owned()));
            Response::new(full("mirror response is discarded"))
        })
    });
    let m1 = Backend::start(recorder).await;
    let half = Backend::start(echo("half")).await;
    // A mirror that never answers: the main response must not wait for it.
    let stuck: Handler = Arc::new(|_req| {
        Box::pin(async {
            std::future::pending::<()>().await;
            Response::new(full(""))
        })
    });
    let stuck = Backend::start(stuck).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers: {{r: {{rule: "PathPrefix(`/`)", service: m}}}}
  services:
    m:
      mirroring:
        service: main
        mirrors: [{{name: m1, percent: 100}}, {{name: half, percent: 50}}, {{name: stuck, percent: 100}}]
    main: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
    m1: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
    half: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
    stuck: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
            main.url(),
            m1.url(),
            half.url(),
            stuck.url()
        ),
    );
    let c = client();
    for i in 0..20 {
        let req = Request::post(format!("http://{addr}/item/{i}"))
            .header("host", "m.test")
            .body(Full::new(Bytes::from(format!("payload-{i}"))))
            .unwrap();
        let g = tokio::time::timeout(Duration::from_secs(5), send(&c, req))
            .await
            .expect("main response delayed by a mirror");
        assert_eq!(g.status, 200);
        assert_eq!(field(&g.body, "id"), Some("main"));
        assert_eq!(
            field(&g.body, "body"),
            Some(format!("{}", format!("payload-{i}").len()).as_str())
        );
    }
    let mut got = Vec::new();
    while got.len() < 20 {
        let item = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("mirror copies")
            .unwrap();
        got.push(item);
    }
    got.sort();
    let mut want: Vec<(String, String)> = (0..20)
        .map(|i| (format!("/item/{i}"), format!("payload-{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(wait_for(Duration::from_secs(5), || async { half.hits() == 10 }).await);
    assert_eq!(main.hits(), 20);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_canary_ratio_over_2000_requests() {
    let stable = Backend::start(echo("stable")).await;
    let canary = Backend::start(echo("canary")).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers: {{r: {{rule: "PathPrefix(`/`)", service: w}}}}
  services:
    w: {{weighted: {{services: [{{name: stable, weight: 9}}, {{name: canary, weight: 1}}]}}}}
    stable: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
    canary: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
            stable.url(),
            canary.url()
        ),
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            let c = client();
            ids(&c, addr, "x", 500).await
        }));
    }
    let mut total: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    let canary_n = total.get("canary").copied().unwrap_or(0);
    let stable_n = total.get("stable").copied().unwrap_or(0);
    assert_eq!(canary_n + stable_n, 2000);
    // 10% ± 3 points.
    assert!((140..=260).contains(&canary_n), "{total:?}");
    p.shutdown().await;
}

#[tokio::test]
async fn sticky_cookie_pins_a_client() {
    let a = Backend::start(echo("a")).await;
    let b = Backend::start(echo("b")).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers: {{r: {{rule: "PathPrefix(`/`)", service: s}}}}
  services:
    s: {{loadBalancer: {{sticky: {{cookie: {{name: sid, httpOnly: true}}}}, servers: [{{url: "{}"}}, {{url: "{}"}}]}}}}
"#,
            a.url(),
            b.url()
        ),
    );
    let c = client();
    let g = get(&c, addr, "x", "/").await;
    let first = field(&g.body, "id").unwrap().to_string();
    let set = g.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.starts_with("sid=") && set.ends_with("; Path=/; HttpOnly"),
        "{set}"
    );
    let pair = set.split(';').next().unwrap().to_string();
    for _ in 0..10 {
        let req = Request::get(format!("http://{addr}/"))
            .header("host", "x")
            .header("cookie", pair.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let g = send(&c, req).await;
        assert_eq!(field(&g.body, "id"), Some(first.as_str()));
        assert!(g.headers.get("set-cookie").is_none());
    }
    p.shutdown().await;
}

#[tokio::test]
async fn zone_aware_failover_and_back() {
    let healthy = Arc::new(AtomicBool::new(true));
    let local = Backend::start(flagged("local", healthy.clone())).await;
    let remote = Backend::start(echo("remote")).await;
    let opts = ProxyOptions {
        zone: "a1".into(),
        region: "a".into(),
        ..ProxyOptions::default()
    };
    let (p, addr) = start_proxy_with(opts).await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers: {{r: {{rule: "PathPrefix(`/`)", service: s}}}}
  services:
    s:
      loadBalancer:
        healthCheck: {{path: /health, interval: 50ms}}
        servers:
          - {{url: "{}", zone: b1, region: b}}
          - {{url: "{}", zone: a1, region: a}}
"#,
            remote.url(),
            local.url()
        ),
    );
    let c = client();
    assert_eq!(ids(&c, addr, "x", 10).await.get("local"), Some(&10));
    healthy.store(false, Ordering::SeqCst);
    assert!(
        wait_for(Duration::from_secs(5), || async {
            id_of(&c, addr, "x").await == "remote"
        })
        .await
    );
    assert_eq!(ids(&c, addr, "x", 10).await.get("remote"), Some(&10));
    healthy.store(true, Ordering::SeqCst);
    assert!(
        wait_for(Duration::from_secs(5), || async {
            id_of(&c, addr, "x").await == "local"
        })
        .await
    );
    assert_eq!(ids(&c, addr, "x", 10).await.get("local"), Some(&10));
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_swaps_under_load_fail_no_request() {
    let a = Backend::start(echo("a")).await;
    let b = Backend::start(echo("b")).await;
    let (p, addr) = start_proxy().await;
    let cfg = |n: usize| {
        let servers = if n % 2 == 1 {
            format!("[{{url: \"{}\"}}, {{url: \"{}\"}}]", a.url(), b.url())
        } else {
            format!("[{{url: \"{}\"}}]", a.url())
        };
        let extra: String = (0..n % 7)
            .map(|i| format!("    extra{i}: {{rule: \"Host(`e{i}.test`)\", service: s}}\n"))
            .collect();
        format!(
            r#"
http:
  routers:
    r: {{rule: "PathPrefix(`/`)", service: s, middlewares: [h]}}
{extra}
  middlewares:
    h: {{headers: {{customRequestHeaders: {{X-Version: "v{n}"}}}}}}
  services:
    s: {{loadBalancer: {{servers: {servers}}}}}
"#
        )
    };
    apply(&p, &cfg(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut loops = Vec::new();
    for _ in 0..3 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        loops.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::SeqCst) {
                let req = Request::get(format!("http://{addr}/load"))
                    .header("host", "load.test")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                match c.request(req).await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.into_body().collect().await;
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => {
                        eprintln!("status {}", r.status());
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        eprintln!("error {e:?}");
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for n in 1..=100 {
        apply(&p, &cfg(n));
        // Let some requests through between applies.
        let target = ok.load(Ordering::SeqCst) + 2;
        assert!(
            wait_for(Duration::from_secs(5), || {
                let ok = ok.clone();
                async move { ok.load(Ordering::SeqCst) >= target }
            })
            .await
        );
    }
    stop.store(true, Ordering::SeqCst);
    for l in loops {
        l.await.unwrap();
    }
    assert_eq!(p.version(), 101);
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(ok.load(Ordering::SeqCst) >= 200);
    let g = get(&client(), addr, "x", "/").await;
    assert_eq!(header(&g.body, "x-version"), ["v100"]);
    p.shutdown().await;
}

#[tokio::test]
async fn dead_server_is_ejected_on_connect_failure() {
    let a = Backend::start(echo("a")).await;
    let b = Backend::start(echo("b")).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers: {{r: {{rule: "PathPrefix(`/`)", service: s}}}}
  services:
    s: {{loadBalancer: {{servers: [{{url: "{}"}}, {{url: "{}"}}]}}}}
"#,
            a.url(),
            b.url()
        ),
    );
    let c = client();
    assert_eq!(ids(&c, addr, "x", 4).await.len(), 2);
    a.stop();
    // Without any health check: at most one request sees the dead server (502), then it is
    // ejected and everything goes to b.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&c, addr, "x", "/").await.status.as_u16());
    }
    let bad = statuses.iter().filter(|&&s| s != 200).count();
    assert!(bad <= 1, "{statuses:?}");
    assert_eq!(ids(&c, addr, "x", 10).await.get("b"), Some(&10));
    p.shutdown().await;
}

#[tokio::test]
async fn health_check_options_are_sent() {
    // The probe goes to another port with its own method, Host, headers and expected status.
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let probe: Handler = Arc::new(move |req: Request<hyper::body::Incoming>| {
        let seen = format!(
            "{} {} host={} probe={}",
            req.method(),
            req.uri(),
            req.headers()
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            req.headers()
                .get("x-probe")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        let _ = tx.send(seen);
        Box::pin(async { Response::builder().status(204).body(full("")).unwrap() })
    });
    let probe = Backend::start(probe).await;
    let app = Backend::start(echo("app")).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            r#"
http:
  routers: {{r: {{rule: "PathPrefix(`/`)", service: s}}}}
  services:
    s:
      loadBalancer:
        healthCheck:
          path: /ready?full=1
          port: {}
          method: head
          hostname: health.local
          headers: {{X-Probe: "yes"}}
          status: 204
          interval: 50ms
        servers: [{{url: "{}"}}]
"#,
            probe.addr.port(),
            app.url()
        ),
    );
    let seen = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, "HEAD /ready?full=1 host=health.local probe=yes");
    // 204 is the expected status: the server stays up.
    let c = client();
    for _ in 0..3 {
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    }
    assert_eq!(ids(&c, addr, "x", 3).await.get("app"), Some(&3));
    p.shutdown().await;
}
