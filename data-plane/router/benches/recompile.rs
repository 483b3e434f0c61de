//! Recompiling the route table after a change to one router, at 1k / 10k / 100k host routers:
//! from scratch (`compile`), from the previous version's table (`compile_from`, which shares
//! every unchanged compiled rule but rebuilds the order and the index) and by applying the
//! change to the previous table (`RouteTable::apply_changes`: what the proxy does per delta).
//!
//! `cargo bench -p switchyard-router --bench recompile` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use switchyard_config::{DynamicConfig, Router};
use switchyard_router::{compile, compile_from};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn config(n: usize) -> DynamicConfig {
    let mut cfg = DynamicConfig::default();
    for i in 0..n {
        cfg.http.routers.insert(
            format!("svc{i}"),
            Router {
                rule: format!("Host(`svc{i}.example.com`) && PathPrefix(`/api`)").into(),
                service: format!("svc{i}@file").into(),
                ..Router::default()
            },
        );
    }
    cfg
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let eps = vec!["web".to_string(), "websecure".to_string()];
    let mut g = c.benchmark_group("one_router_changed");
    for n in SIZES {
        let before = config(n);
        let prev = compile(&before, Some(&eps)).expect("compiles");
        let mut after = before.clone();
        if let Some(r) = after.http.routers.get_mut("svc0") {
            r.rule = "Host(`svc0.example.com`) && PathPrefix(`/v2`)".into();
        }
        g.bench_with_input(BenchmarkId::new("full", n), &after, |b, cfg| {
            b.iter(|| black_box(compile(cfg, Some(&eps)).expect("compiles")))
        });
        g.bench_with_input(BenchmarkId::new("from_previous", n), &after, |b, cfg| {
            b.iter(|| black_box(compile_from(cfg, Some(&eps), Some(&prev)).expect("compiles")))
        });
        g.bench_with_input(BenchmarkId::new("apply_changes", n), &after, |b, cfg| {
            b.iter(|| {
                black_box(
                    prev.apply_changes(cfg, Some(&eps), &["svc0"])
                        .expect("compiles"),
                )
            })
        });
    }
    g.finish();
    c.final_summary();
}
