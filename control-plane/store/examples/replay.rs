//! Replay cost of the state machine (issue 8, restart time): applies N committed entries, each
//! adding one router to a growing config, in openraft's start-up chunks of 64, as a restarting
//! node does inside `Raft::new` (the node's watch receiver subscribed; the config stream's
//! history starts following only after the replay).
//!
//! `cargo run --release -p switchyard-store --example replay -- 10000 100000`

use std::time::Instant;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use switchyard_store::{Entry, Request};

fn doc(i: usize) -> switchyard_config::DynamicConfig {
    switchyard_config::parse_document(&format!(
        "http:\n  routers:\n    r{i}:\n      rule: \"Host(`r{i}.example`)\"\n      service: s\n  services:\n    s:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:9\"\n"
    ))
    .expect("valid")
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000]
    } else {
        sizes
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for n in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_log, mut sm) = switchyard_store::open(dir.path()).expect("open");
        let rx = sm.subscribe();
        // The entries a leader commits: each validated against the version before it.
        let mut entries = Vec::with_capacity(n);
        let mut version = 0u64;
        for i in 0..n {
            let index = i as u64 + 1;
            entries.push(Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(Request::Apply {
                    document: doc(i),
                    prune: false,
                    validated_at: Some(version),
                }),
            });
            version = index;
        }
        let started = Instant::now();
        rt.block_on(async {
            let mut it = entries.into_iter().peekable();
            while it.peek().is_some() {
                let chunk: Vec<Entry> = it.by_ref().take(64).collect();
                sm.apply(chunk).await.expect("apply");
            }
        });
        let took = started.elapsed();
        let st = rx.borrow();
        assert_eq!(st.state.config.http.routers.len(), n);
        assert_eq!(st.state.config_version, n as u64);
        println!(
            "replayed {n} one-router entries ({n} routers) in {:.0} ms",
            took.as_secs_f64() * 1000.0
        );
    }
}
