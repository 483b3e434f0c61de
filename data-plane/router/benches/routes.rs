//! Route lookup benchmark: 10, 1k, 10k and 100k host routers
//! (``Host(`svc{i}.example.com`) && PathPrefix(`/api`)``) plus four catch-all path routers.
//!
//! Before the criterion runs, prints for each size the compile time, the bytes the table keeps
//! per route (measured with a counting global allocator) and the heap allocations per lookup.
//!
//! `cargo bench -p switchyard-router --bench routes` (add `-- --quick` for a short run).

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use switchyard_config::rules::RequestView;
use switchyard_config::{DynamicConfig, Router};
use switchyard_router::{compile, RouteTable};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];
const REQUESTS: usize = 1024;

fn router(rule: String, service: String, priority: Option<i64>) -> Router {
    Router {
        rule: rule.into(),
        priority,
        service: service.into(),
        ..Router::default()
    }
}

fn config(n: usize) -> DynamicConfig {
    let mut cfg = DynamicConfig::default();
    let routers = &mut cfg.http.routers;
    for i in 0..n {
        routers.insert(
            format!("svc{i}"),
            router(
                format!("Host(`svc{i}.example.com`) && PathPrefix(`/api`)"),
                format!("svc{i}@file"),
                None,
            ),
        );
    }
    for (name, rule, prio) in [
        ("health", "Path(`/health`)", None),
        ("static", "PathPrefix(`/static`)", None),
        ("metrics", "Path(`/metrics`) && Method(`GET`)", None),
        ("fallback", "PathPrefix(`/`)", Some(-1)),
    ] {
        routers.insert(
            name.to_string(),
            router(rule.to_string(), format!("{name}@file"), prio),
        );
    }
    cfg
}

fn entrypoints() -> Vec<String> {
    vec!["web".to_string(), "websecure".to_string()]
}

/// Request hosts spread evenly over the table.
fn hosts(n: usize) -> Vec<String> {
    (0..REQUESTS)
        .map(|k| format!("svc{}.example.com", k * n / REQUESTS))
        .collect()
}

fn req(host: &str) -> RequestView<'_> {
    RequestView {
        method: "GET",
        host,
        path: "/api/users",
        query: None,
        headers: &[],
        client_ip: None,
    }
}

fn live_bytes(s: &stats_alloc::Stats) -> isize {
    s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated
}

fn report_compile() {
    println!(
        "routes    compile      bytes/route  (rule only)  allocs/lookup(hit)  allocs/lookup(miss)"
    );
    for n in SIZES {
        let cfg = config(n);
        let eps = entrypoints();
        let region = Region::new(GLOBAL);
        let start = Instant::now();
        let table = compile(&cfg, Some(&eps)).expect("compiles");
        let elapsed = start.elapsed();
        let bytes = live_bytes(&region.change());
        let per_route = bytes as f64 / table.len() as f64;
        // The share of that taken by switchyard_config's CompiledRule alone.
        let region = Region::new(GLOBAL);
        let rules: Vec<_> = cfg
            .http
            .routers
            .values()
            .map(|r| switchyard_config::rules::compile(&r.rule).expect("compiles"))
            .collect();
        let rule_bytes = live_bytes(&region.change()) as f64 / rules.len() as f64;
        drop(rules);

        let hosts = hosts(n);
        let region = Region::new(GLOBAL);
        for h in &hosts {
            assert!(black_box(table.lookup("web", &req(h))).is_some());
        }
        let hit = region.change().allocations as f64 / hosts.len() as f64;
        let region = Region::new(GLOBAL);
        for _ in 0..REQUESTS {
            black_box(table.lookup("web", &req("unknown.example.org")));
        }
        let miss = region.change().allocations as f64 / REQUESTS as f64;
        println!(
            "{:<9} {:>9.1?}  {:>11.0}  {:>11.0}  {:>18.2}  {:>19.2}",
            n + 4,
            elapsed,
            per_route,
            rule_bytes,
            hit,
            miss
        );
        drop(table);
    }
}

fn bench_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for n in SIZES {
        let table: RouteTable = compile(&config(n), Some(&entrypoints())).expect("compiles");
        let hosts = hosts(n);
        let reqs: Vec<RequestView> = hosts.iter().map(|h| req(h)).collect();
        group.bench_with_input(BenchmarkId::new("host_hit", n), &reqs, |b, reqs| {
            let mut j = 0usize;
            b.iter(|| {
                j = (j + 1) % REQUESTS;
                black_box(table.lookup("web", black_box(&reqs[j])))
            })
        });
        let miss = RequestView {
            path: "/static/app.js",
            ..req("unknown.example.org")
        };
        group.bench_with_input(BenchmarkId::new("catch_all", n), &miss, |b, miss| {
            b.iter(|| black_box(table.lookup("web", black_box(miss))))
        });
    }
    group.finish();
}

fn main() {
    // `cargo test --benches` runs the binary without `--bench`: run the lookups once, quickly.
    let benching = std::env::args().any(|a| a == "--bench");
    if benching {
        report_compile();
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    bench_lookup(&mut c);
    c.final_summary();
}
