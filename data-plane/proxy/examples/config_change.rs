//! Proxy compile time of a one-router config change at 1k / 10k / 100k routers (see
//! BENCHMARKS.md, "Config propagation").
//!
//! ```text
//! cargo run --release -p switchyard-proxy --example config_change [CHANGES=200] [SIZES=1000,10000,100000]
//! ```
//!
//! For each size, a real [`Proxy`] (one entry point on loopback) gets a config of N host
//! routers (`Host(`rI.example.com`)`, one service), then CHANGES versions that each change the
//! rule of one router, as the config stream sends them: the delta applied to the held config
//! (`delta::apply`, as the proxy's config client does: an O(1) copy of the persistent model plus
//! the change) and `Proxy::apply_change` (compile from the
//! previous version, swap). Each
//! step is timed, and so is `Proxy::apply` of the same version compiled from scratch (what
//! every version cost before deltas were compiled incrementally), interleaved.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_config::delta::{self, DeltaChange, Resource};
use switchyard_config::{DynamicConfig, ResourceKind, Router};
use switchyard_proxy::{Proxy, ProxyOptions};

fn config(n: usize) -> DynamicConfig {
    let mut cfg: DynamicConfig = serde_json::from_value(serde_json::json!({
        "http": {"services": {"s": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}}}
    }))
    .expect("config");
    for i in 0..n {
        cfg.http.routers.insert(
            format!("r{i}"),
            Router {
                rule: format!("Host(`r{i}.example.com`)").into(),
                service: "s".into(),
                ..Router::default()
            },
        );
    }
    cfg
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn summary(name: &str, mut v: Vec<Duration>) -> String {
    format!(
        "{name} p50 {:.3} / p99 {:.3} / max {:.3} ms",
        pct(&mut v, 0.5),
        pct(&mut v, 0.99),
        pct(&mut v, 1.0)
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let changes: usize = args.get(1).map_or(200, |a| a.parse().expect("CHANGES"));
    let sizes: Vec<usize> = args
        .get(2)
        .map_or("1000,10000,100000", String::as_str)
        .split(',')
        .map(|s| s.parse().expect("SIZES"))
        .collect();
    println!("size      step                                     figures (ms)");
    for n in sizes {
        let proxy = Proxy::start(ProxyOptions {
            entrypoints: vec![("web".into(), "127.0.0.1:0".into())],
            ..ProxyOptions::default()
        })
        .await
        .expect("proxy");
        let mut held = Arc::new(config(n));
        let t = Instant::now();
        proxy.apply(1, held.clone()).expect("first version");
        let first = t.elapsed();
        let mut version = 1;
        let (mut deltas, mut incremental, mut full) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..changes {
            let name = format!("r{}", (i * 7919) % n);
            let mut r = held.http.routers[&name].clone();
            r.rule = format!("Host(`r{i}.changed.example.com`)").into();
            let change = DeltaChange {
                kind: ResourceKind::Router,
                name: name.clone(),
                resource: Some(Resource::Router(r)),
            };
            let t = Instant::now();
            let next = Arc::new(delta::apply(&held, &[change]));
            deltas.push(t.elapsed());
            let keys = [(ResourceKind::Router, name)];
            let t = Instant::now();
            proxy
                .apply_change(version + 1, next.clone(), Some((version, &keys)))
                .expect("incremental");
            incremental.push(t.elapsed());
            version += 1;
            // Every 10th version also compiled from scratch (the same config again).
            if i % 10 == 0 {
                let t = Instant::now();
                proxy.apply(version + 1, next.clone()).expect("full");
                full.push(t.elapsed());
                version += 1;
            }
            held = next;
        }
        println!(
            "{n:<9} first version (full compile)             {:.1} ms",
            first.as_secs_f64() * 1000.0
        );
        println!(
            "{n:<9} {}",
            summary("delta applied to held config    ", deltas)
        );
        println!(
            "{n:<9} {}",
            summary("apply_change (incremental)     ", incremental)
        );
        println!(
            "{n:<9} {}",
            summary("apply (full compile)           ", full)
        );
        proxy.shutdown().await;
    }
}
