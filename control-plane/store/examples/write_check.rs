//! Cost of checking one write against a config of N routers (issue 12, "writes validated in
//! time proportional to the change"): the leader's `ClusterState::screen` of a one-router
//! `apply` (what every write pays before it is proposed), `ClusterState::preview` of the same
//! (the API's dry run), every node's `ClusterState::apply` of the screened write (the committed
//! config shared with a reader, as the config stream's history always holds it), and, for
//! comparison, the whole-config `compile_check` every write ran before (and a `--prune` apply
//! still runs).
//!
//! `cargo run --release -p switchyard-store --example write_check -- 1000 10000 100000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_config::{DynamicConfig, Router};
use switchyard_store::state::compile_check;
use switchyard_store::{ClusterState, Request, Response};

fn config(n: usize) -> DynamicConfig {
    let mut cfg = switchyard_config::parse_document(
        "http:\n  services:\n    s:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:9\"\n",
    )
    .expect("valid");
    for i in 0..n {
        cfg.http.routers.insert(
            format!("r{i}"),
            Router {
                rule: format!("Host(`r{i}.example`)").into(),
                service: "s".into(),
                ..Router::default()
            },
        );
    }
    cfg
}

fn write(i: usize) -> Request {
    let doc = switchyard_config::parse_document(&format!(
        "http:\n  routers:\n    r{i}:\n      rule: \"Host(`r{i}.example`) && PathPrefix(`/v{i}`)\"\n      service: s\n"
    ))
    .expect("valid");
    Request::Apply {
        document: doc,
        prune: false,
        validated_at: None,
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    println!(
        "routers   screen (1-router write)   preview   apply (shared)   whole-config compile_check (before)"
    );
    for n in sizes {
        let state = ClusterState {
            config: Arc::new(config(n)),
            config_version: 1,
            ..ClusterState::default()
        };
        let (mut screen, mut preview, mut apply, mut full) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..21 {
            let req = write(i * 37 % n);
            let t = Instant::now();
            let verdict = state.screen(std::slice::from_ref(&req));
            screen.push(t.elapsed());
            assert!(verdict.iter().all(Option::is_none), "{verdict:?}");
            let t = Instant::now();
            let _ = state.preview(&req);
            preview.push(t.elapsed());
            // What every node does with the committed entry: `state` keeps the old config, as a
            // reader (the stream's history) would.
            let stamped = match req.clone() {
                Request::Apply {
                    document, prune, ..
                } => Request::Apply {
                    document,
                    prune,
                    validated_at: Some(state.config_version),
                },
                _ => unreachable!(),
            };
            let mut next = state.clone();
            let t = Instant::now();
            let resp = next.apply(2, &stamped);
            apply.push(t.elapsed());
            assert!(matches!(resp, Response::Applied { .. }), "{resp:?}");
            drop(next);
            if i % 5 == 0 {
                let next = state.config.merged(match &req {
                    Request::Apply { document, .. } => document,
                    _ => unreachable!(),
                });
                let t = Instant::now();
                compile_check(&next).expect("valid");
                full.push(t.elapsed());
            }
        }
        println!(
            "{n:<9} {:>10.2} ms             {:>7.2} ms   {:>7.2} ms        {:>9.1} ms",
            median(screen),
            median(preview),
            median(apply),
            median(full)
        );
    }
}
