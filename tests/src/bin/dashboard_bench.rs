//! Dashboard page weight and time to first render, for BENCHMARKS.md
//! (`scripts/bench-dashboard.sh`).
//!
//! `dashboard_bench [ROUTERS] [RUNS]` (default 10000 and 5): starts a 1-node insecure cluster and a
//! proxy (binaries from `$SWITCHYARD_BIN_DIR`, else `target/debug`), applies ROUTERS routers, then
//! times the API answers the dashboard's routers page needs and loads that page RUNS times in
//! headless chromium (fresh profile), reporting the bytes transferred and the time from navigation
//! start to the first page of routers in the table.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_e2e::browser::Browser;
use switchyard_e2e::proxy::{Proxy, ProxySpec};
use switchyard_e2e::{apply_yaml, http_get, wait_until, Cluster, INSECURE};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_get(addr: &str, path: &str, runs: usize) -> (f64, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = http_get(addr, path).expect("GET");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        size = r.body.len();
    }
    (median(times), size)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let routers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let c = Cluster::start_with(1, &[INSECURE]);
    let ep = c.endpoints();
    let _proxy = Proxy::start(ProxySpec::new("bench-proxy", &ep));
    let mut r = serde_json::Map::new();
    for i in 0..routers {
        r.insert(
            format!("r{i:05}"),
            json!({"rule": format!("Host(`h{i}.example`) && PathPrefix(`/api/{i}`)"), "service": "s",
                   "middlewares": ["m"]}),
        );
    }
    let doc = json!({"http": {"routers": r,
        "services": {"s": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}},
        "middlewares": {"m": {"headers": {"customResponseHeaders": {"X-A": "1"}}}}}});
    let t = Instant::now();
    apply_yaml(&ep, &doc.to_string()).expect("apply");
    println!(
        "{routers} routers applied in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let http = c.nodes[0].addrs.http.clone();

    println!("\nAPI answers (median of {runs}):");
    for path in [
        "/api/switchyard/status",
        "/api/http/routers?per_page=50&page=1",
        "/api/http/routers?per_page=50&page=1&search=h9999.",
        "/api/overview",
        "/api/http/routers",
        "/api/rawdata",
    ] {
        let (ms, bytes) = time_get(&http, path, runs);
        println!(
            "  {path:<55} {ms:>8.1} ms {:>10.1} KB",
            bytes as f64 / 1024.0
        );
    }

    let mut first = Vec::new();
    let mut fcp = Vec::new();
    let mut weight = Value::Null;
    for _ in 0..runs {
        let b = Browser::launch().expect("chromium");
        b.navigate(&format!("http://{http}/dashboard/#/routers"))
            .expect("navigate");
        let ms = wait_until(Duration::from_secs(120), "first page of routers", || {
            match b.eval(
                "document.querySelectorAll('#routers tbody tr').length === 50 ? performance.now() : null",
            ) {
                Ok(Value::Number(n)) => Ok(n.as_f64().unwrap_or(0.0)),
                other => Err(format!("{other:?}")),
            }
        });
        first.push(ms);
        let paint = b
            .eval(
                "(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0",
            )
            .expect("paint");
        fcp.push(paint.as_f64().unwrap_or(0.0));
        weight = b
            .eval(
                "(() => { const n = performance.getEntriesByType('navigation')[0]; \
                 const r = performance.getEntriesByType('resource'); \
                 const sum = (f) => r.filter(f).reduce((a, e) => a + e.encodedBodySize, 0); \
                 return { html: n.encodedBodySize, \
                          assets: sum(e => e.initiatorType === 'script' || e.initiatorType === 'link'), \
                          api: sum(e => e.initiatorType === 'fetch'), \
                          transferred: n.transferSize + r.reduce((a, e) => a + e.transferSize, 0), \
                          requests: 1 + r.length }; })()",
            )
            .expect("weight");
        let problems = b.problems();
        assert!(problems.is_empty(), "console errors: {problems:?}");
    }
    let kb = |k: &str| weight[k].as_f64().unwrap_or(0.0) / 1024.0;
    println!(
        "\nDashboard routers page, {routers} routers, fresh browser profile (median of {runs}):"
    );
    println!(
        "  page weight: HTML {:.1} KB + JS/CSS {:.1} KB + API data {:.1} KB = {:.1} KB transferred in {} requests",
        kb("html"),
        kb("assets"),
        kb("api"),
        kb("transferred"),
        weight["requests"]
    );
    println!(
        "  first contentful paint {:.0} ms; first 50 routers in the table {:.0} ms after navigation start",
        median(fcp),
        median(first)
    );
}
