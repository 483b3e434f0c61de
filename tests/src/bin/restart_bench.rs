//! Time to ready after a restart, for BENCHMARKS.md (`scripts/bench-restart.sh`).
//!
//! `restart_bench ENTRIES [CLIENTS] [ROUTERS]` (default 10000 and 8): starts a 3-node secure
//! cluster (binaries from `$SWITCHYARD_BIN_DIR`, else `target/debug`), commits ENTRIES writes
//! that each add one router, then restarts a follower and then every node, timing each to
//! `/readyz` = 200.
//!
//! With ROUTERS, the config is first grown to ROUTERS routers in documents of 1,000 routers,
//! and then the ENTRIES writes each *rewrite* one of CLIENTS routers (a config that stays at
//! ROUTERS routers while the log grows by one entry per write; with CLIENTS = 1 every write is
//! its own entry): a long log over a large config, as a busy cluster has.

use std::time::{Duration, Instant};

use switchyard_e2e::failover::{grow, write_all};
use switchyard_e2e::{wait_until, Cluster, ControlNode, DEFAULT_TIMERS};

fn ready_after(n: &ControlNode, since: Instant) -> Duration {
    wait_until(
        Duration::from_secs(600),
        &format!("node {} ready", n.id),
        || match n.readyz() {
            Ok(200) => Ok(since.elapsed()),
            other => Err(format!("{other:?}")),
        },
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let entries: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let routers: Option<usize> = args.next().and_then(|a| a.parse().ok());
    let mut c = Cluster::start_with(3, &[DEFAULT_TIMERS]);
    let creds = c.creds();
    let leader = c.wait_for_leader(Duration::from_secs(30));
    let started = Instant::now();
    let endpoint = c.node(leader).endpoint();
    let what = match routers {
        None => {
            grow(&endpoint, Some(&creds), entries, clients);
            "one new router each".to_string()
        }
        Some(routers) => {
            const PER_DOC: usize = 1000;
            let docs = routers.div_ceil(PER_DOC);
            write_all(&endpoint, Some(&creds), docs, 2, move |d| {
                let mut doc = String::from("http:\n  services:\n    grow:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:9\"\n  routers:\n");
                for i in d * PER_DOC..((d + 1) * PER_DOC).min(routers) {
                    doc.push_str(&format!(
                        "    grow-{i}:\n      rule: \"Host(`g{i}.test`)\"\n      service: grow\n"
                    ));
                }
                doc
            });
            println!(
                "{routers} routers in {docs} writes, {:.1} s",
                started.elapsed().as_secs_f64()
            );
            write_all(&endpoint, Some(&creds), entries, clients, move |i| {
                format!(
                    "http:\n  routers:\n    churn-{}:\n      rule: \"Host(`c{i}.test`)\"\n      service: grow\n",
                    i % clients
                )
            });
            format!("each rewriting one of {clients} routers, over {routers} routers")
        }
    };
    let log_index = c
        .node(leader)
        .metric("switchyard_raft_last_log_index")
        .map_or_else(|e| e, |v| format!("{v}"));
    println!(
        "{entries} writes ({what}) committed in {:.1} s: {log_index} log entries \
         (concurrent writes share an entry)",
        started.elapsed().as_secs_f64()
    );
    let follower = c
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    c.node_mut(follower).kill();
    let t = Instant::now();
    c.node_mut(follower).respawn();
    let d = ready_after(c.node(follower), t);
    println!(
        "follower restarted: ready after {:.0} ms",
        d.as_secs_f64() * 1000.0
    );
    for id in c.ids() {
        c.node_mut(id).kill();
    }
    let t = Instant::now();
    for id in c.ids() {
        c.node_mut(id).respawn();
    }
    let mut worst = Duration::ZERO;
    for id in c.ids() {
        worst = worst.max(ready_after(c.node(id), t));
    }
    println!(
        "whole cluster restarted: every node ready after {:.0} ms",
        worst.as_secs_f64() * 1000.0
    );
}
