//! Issue 11, the multi-region lab (must-show 1; `scripts/lab.sh` runs it with a longer idle
//! watch for must-show 2): three voter regions (eu, us, ap) and a learner region (sa) on
//! loopback, every Raft link through a userspace delay relay with realistic round trips (eu↔us
//! 80 ms, us↔ap 120 ms, eu↔ap 160 ms, sa↔eu 110 ms, sa↔us 150 ms, sa↔ap 200 ms),
//! `--raft-profile wan`, one proxy per region attached to its region's node.
//!
//! - The idle cluster is watched for `SWITCHYARD_LAB_HOLD_SECS` (10): no election may happen
//!   with the WAN profile (the relays' own lateness is printed beside the count).
//! - A write through every region (the learner's too: followers and the learner forward to the
//!   leader) commits, with the CLI as a user runs it; commit latency per region is then measured
//!   with one admin gRPC connection per region (p50/p99 of 10 writes, no process start in it).
//! - apply→ACK per region: the time from a write's start until that region's proxy serves the
//!   new version (p50/p99 of 10 writes), and `apply --wait` reaches the proxies of all 4 regions.
//! - The leader's whole region (its node and its proxy) dies: another voter region commits a
//!   write (time printed), the surviving regions' proxies keep serving requests, and the learner
//!   region's proxy keeps following the learner.
//!
//! `SWITCHYARD_LAB_PROFILE=lan` starts the three voters over the same links with the LAN timers
//! and only counts their elections over the hold (measurement for BENCHMARKS.md; those timers
//! are not meant for these links and may never give a ready cluster).
//! Regions share one loopback interface: only Raft traffic between control nodes is delayed
//! (proxies and clients talk to their own region's node). Linux only (the relays identify nodes
//! through /proc).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use switchyard_e2e::backends::{block_on, HttpBackend};
use switchyard_e2e::chaos::relays::Relays;
use switchyard_e2e::chaos::workload::{Access, Client};
use switchyard_e2e::proxy::{applied_version, apply_wait, wait_attached_to, Proxy, ProxySpec};
use switchyard_e2e::{
    cli_stdin, wait_until, Cluster, ControlNode, NodeAddrs, DEFAULT_TIMERS, FORM_TIMEOUT,
};
use switchyard_proto::admin::ApplyRequest;

const REGIONS: [&str; 4] = ["eu", "us", "ap", "sa"];
const RTT_MS: [((u64, u64), u64); 6] = [
    ((1, 2), 80),
    ((2, 3), 120),
    ((1, 3), 160),
    ((4, 1), 110),
    ((4, 2), 150),
    ((4, 3), 200),
];
/// Samples per region for the latency figures.
const SAMPLES: usize = 10;

/// The base config: router `lab` (Host `lab.test`) to a live backend.
fn base_doc(backend: &str) -> String {
    serde_json::json!({"http": {
        "routers": {"lab": {"rule": "Host(`lab.test`)", "service": "lab"}},
        "services": {"lab": {"loadBalancer": {"servers": [{"url": backend}]}}},
    }})
    .to_string()
}

/// Write number `i`: one more router to the same service.
fn write_doc(i: usize) -> String {
    serde_json::json!({"http": {"routers": {format!("lab-{i}"): {
        "rule": format!("Host(`lab.test`) && PathPrefix(`/{i}`)"),
        "service": "lab",
    }}}})
    .to_string()
}

/// The `q` quantile (nearest rank) of `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn p50_p99(v: &[Duration]) -> String {
    format!("p50 {} p99 {}", ms(quantile(v, 0.5)), ms(quantile(v, 0.99)))
}

/// Commits `doc` through `client`: the committed config version.
fn commit(client: &mut Client, doc: String, timeout: Duration) -> Result<u64, String> {
    block_on(async {
        let mut req = tonic::Request::new(ApplyRequest {
            document: doc,
            prune: false,
            dry_run: false,
            rollout: None,
        });
        req.set_timeout(timeout);
        match tokio::time::timeout(timeout, client.apply(req)).await {
            Err(_) => Err(format!("no answer within {timeout:?}")),
            Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
            Ok(Ok(r)) => Ok(r.into_inner().version),
        }
    })
}

/// Another profile (`SWITCHYARD_LAB_PROFILE=lan`, measurement only): the three voters over the
/// same links, started without waiting for a ready cluster (the LAN timers may never give one),
/// idle for `hold`; prints the elections (terms) and how often a leader was known.
fn count_elections(
    relays: &Relays,
    addrs: Vec<NodeAddrs>,
    relay_addrs: &[String],
    common: &[&str],
    per_node: &[Vec<String>],
    hold: Duration,
) {
    let initial = (1..=3)
        .map(|i| format!("{i}={}", relay_addrs[i - 1]))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<ControlNode> = addrs[..3]
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut args: Vec<String> = common.iter().map(|s| s.to_string()).collect();
            args.extend(["--initial-cluster".to_string(), initial.clone()]);
            args.extend(per_node[i].iter().cloned());
            ControlNode::spawn(i as u64 + 1, a.clone(), &args)
        })
        .collect();
    for n in &mut nodes {
        n.wait_healthy();
        relays.set_pid(n.pid().unwrap(), n.id);
    }
    let views = |nodes: &[ControlNode]| -> Vec<(u64, bool)> {
        nodes
            .iter()
            .filter_map(|n| {
                let m = n.metrics().ok()?;
                let get = |k: &str| switchyard_e2e::metric_value(&m, k);
                Some((
                    get("switchyard_raft_term")? as u64,
                    get("switchyard_raft_is_leader")? >= 1.0,
                ))
            })
            .collect()
    };
    let t = Instant::now();
    let (mut first, mut last, mut samples, mut led) = (None, 0, 0, 0);
    while t.elapsed() < hold {
        std::thread::sleep(Duration::from_millis(500)); // sampling period, not a synchronisation
        let v = views(&nodes);
        let term = v.iter().map(|(t, _)| *t).max().unwrap_or(0);
        first.get_or_insert(term);
        last = last.max(term);
        samples += 1;
        if v.iter().any(|(t, l)| *l && *t == term) {
            led += 1;
        }
    }
    println!(
        "--raft-profile {}: {} elections (terms {}..{last}) in {hold:?} over the delayed links; \
         a leader of the latest term in {led} of {samples} samples; {}",
        common[1],
        last - first.unwrap_or(0),
        first.unwrap_or(0),
        relays.report()
    );
}

#[test]
fn three_voter_regions_and_a_learner_region_over_delayed_links() {
    let wall = Instant::now();
    let addrs: Vec<NodeAddrs> = (0..4).map(|_| NodeAddrs::allocate()).collect();
    let targets: Vec<(u64, String)> = (1..=4)
        .map(|i| (i, addrs[i as usize - 1].peer.clone()))
        .collect();
    let relays = Relays::start(&targets);
    for ((a, b), rtt) in RTT_MS {
        relays.set_rtt(a, b, Duration::from_millis(rtt));
    }
    let relay_addrs: Vec<String> = (1..=4).map(|i| relays.addr(i)).collect();
    let profile = std::env::var("SWITCHYARD_LAB_PROFILE").unwrap_or_else(|_| "wan".into());
    let hold = Duration::from_secs(
        std::env::var("SWITCHYARD_LAB_HOLD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    let common = ["--raft-profile", profile.as_str(), DEFAULT_TIMERS];
    let per_node: Vec<Vec<String>> = (0..3)
        .map(|i| {
            vec![
                "--region".into(),
                REGIONS[i].into(),
                "--zone".into(),
                format!("{}-1", REGIONS[i]),
                "--advertise-peer-addr".into(),
                relay_addrs[i].clone(),
            ]
        })
        .collect();
    if profile != "wan" {
        return count_elections(&relays, addrs, &relay_addrs, &common, &per_node, hold);
    }
    let mut c = Cluster::start_each_on(addrs[..3].to_vec(), &relay_addrs[..3], &common, &per_node);
    // The relays find which node opened a connection among these pids first (a scan of every
    // process otherwise, slow on a busy machine).
    for n in &c.nodes {
        relays.set_pid(n.pid().unwrap(), n.id);
    }
    let creds = c.creds();
    let mut learner_args: Vec<String> = common.iter().map(|s| s.to_string()).collect();
    learner_args.extend([
        "--join".into(),
        c.node(1).endpoint(),
        "--ca-cert".into(),
        creds.ca.display().to_string(),
        "--token".into(),
        creds.token.clone(),
        "--advertise-peer-addr".into(),
        relay_addrs[3].clone(),
        "--region".into(),
        "sa".into(),
        "--zone".into(),
        "sa-1".into(),
    ]);
    let learner = ControlNode::spawn(4, addrs[3].clone(), &learner_args);
    relays.set_pid(learner.pid().unwrap(), 4);
    c.add(learner);
    c.node_mut(4).wait_healthy();
    let eps: Vec<String> = (1..=4).map(|i| c.node(i).endpoint()).collect();
    wait_until(FORM_TIMEOUT * 2, "node 4 a caught-up learner", || {
        let st = switchyard_e2e::try_cluster_status_json(&eps[0]).map_err(|e| e.to_string())?;
        let n4 = switchyard_e2e::status_node(&st, 4)
            .ok_or("node 4 not listed")?
            .clone();
        let n1 = switchyard_e2e::status_node(&st, 1)
            .ok_or("node 1 not listed")?
            .clone();
        if n4["role"] == "learner" && n4["appliedIndex"] == n1["appliedIndex"] {
            Ok(())
        } else {
            Err(format!("{n4}"))
        }
    });

    // Spurious elections over the delayed links: the highest term seen by any node, polled
    // through the hold. The WAN profile must have none.
    let max_term = |c: &Cluster| c.leader_views().iter().map(|v| v.term).max().unwrap_or(0);
    c.wait_for_leader(FORM_TIMEOUT);
    let start_term = max_term(&c);
    let t = Instant::now();
    let mut end_term = start_term;
    let mut reported = Instant::now();
    while t.elapsed() < hold {
        std::thread::sleep(Duration::from_millis(500)); // sampling period, not a synchronisation
        let term = max_term(&c);
        if term > end_term || reported.elapsed() > Duration::from_secs(10) {
            println!(
                "[{:.0?}] max term {term} (from {start_term}): {}",
                t.elapsed(),
                relays.report()
            );
            reported = Instant::now();
        }
        end_term = end_term.max(term);
    }
    println!(
        "--raft-profile {profile}: {} elections in {:?} of idle cluster over the delayed links; {}",
        end_term - start_term,
        hold,
        relays.report()
    );
    assert_eq!(
        end_term,
        start_term,
        "spurious elections with the WAN profile: {}",
        relays.report()
    );

    // A live backend behind router `lab`, and one proxy per region attached to its region's node.
    let backend = HttpBackend::start("lab");
    let out = cli_stdin(&eps[0], &["apply", "-f", "-"], &base_doc(&backend.url()));
    assert!(out.success(), "{out}");
    let mut proxies: Vec<Proxy> = (0..4)
        .map(|i| {
            Proxy::start(
                ProxySpec::new(&format!("edge-{}", REGIONS[i]), &eps[i])
                    .zone(REGIONS[i], &format!("{}-1", REGIONS[i])),
            )
        })
        .collect();
    for (i, p) in proxies.iter().enumerate() {
        wait_attached_to(&eps[i], &p.id, i as u64 + 1, FORM_TIMEOUT);
    }

    // A write through every region commits, with the CLI as a user runs it.
    let leader = c.wait_for_leader(FORM_TIMEOUT);
    println!("leader: node {leader} ({})", REGIONS[leader as usize - 1]);
    let mut seq = 0;
    for (i, ep) in eps.iter().enumerate() {
        seq += 1;
        let out = cli_stdin(ep, &["apply", "-f", "-"], &write_doc(seq));
        assert!(out.success(), "write through {}: {out}", REGIONS[i]);
        assert!(applied_version(&out).is_some(), "{out}");
    }

    // Commit latency per region: one admin connection per region, SAMPLES writes each.
    let access = Access {
        ca_pem: std::fs::read_to_string(&creds.ca).unwrap(),
        token: creds.token.clone(),
    };
    let mut clients: Vec<Client> = eps
        .iter()
        .map(|ep| {
            let api = ep.trim_start_matches("https://");
            block_on(access.connect(api, Duration::from_secs(10))).unwrap()
        })
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let mut times = Vec::new();
        for _ in 0..SAMPLES {
            seq += 1;
            let t = Instant::now();
            commit(client, write_doc(seq), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("write through {}: {e}", REGIONS[i]));
            times.push(t.elapsed());
        }
        println!(
            "commit through {} (node {}): {} of {SAMPLES}",
            REGIONS[i],
            i + 1,
            p50_p99(&times)
        );
    }

    // apply→ACK per region: from a write's start (through the leader's region) until each
    // region's proxy serves it.
    let mut acks: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    let lead = leader as usize - 1;
    for _ in 0..SAMPLES {
        seq += 1;
        let t = Instant::now();
        let v = commit(&mut clients[lead], write_doc(seq), Duration::from_secs(10)).unwrap();
        let seen: Vec<Duration> = std::thread::scope(|s| {
            let handles: Vec<_> = proxies
                .iter()
                .map(|p| {
                    s.spawn(move || {
                        p.wait_version(v, Duration::from_secs(30));
                        t.elapsed()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, d) in seen.into_iter().enumerate() {
            acks[i].push(d);
        }
    }
    for (i, times) in acks.iter().enumerate() {
        println!(
            "apply→ACK in {} (proxy attached to node {}): {} of {SAMPLES}",
            REGIONS[i],
            i + 1,
            p50_p99(times)
        );
    }
    let all: Vec<Duration> = acks.iter().flatten().copied().collect();
    println!("apply→ACK, all 4 regions: {}", p50_p99(&all));
    // `apply --wait` as a user runs it: every proxy of the four regions ACKs.
    seq += 1;
    let out = apply_wait(&eps[lead], &write_doc(seq), "60s", None);
    assert!(out.success(), "apply --wait: {out}");
    assert!(out.stdout.contains("4 proxies at config version"), "{out}");

    // Lose the leader's whole region: its node and its proxy. Another voter region commits.
    let t = Instant::now();
    c.node_mut(leader).kill();
    proxies[lead].kill();
    let survivor = (0..3).find(|i| *i != lead).unwrap();
    seq += 1;
    let doc = write_doc(seq);
    let v = wait_until(
        Duration::from_secs(60),
        "a write committed after the region loss",
        || commit(&mut clients[survivor], doc.clone(), Duration::from_secs(5)),
    );
    println!(
        "region {} lost: first write committed through {} after {}",
        REGIONS[lead],
        REGIONS[survivor],
        ms(t.elapsed())
    );
    // The surviving regions keep serving, the learner region's proxy from the learner.
    for (i, p) in proxies.iter().enumerate().filter(|(i, _)| *i != lead) {
        p.wait_version(v, Duration::from_secs(30));
        let r = switchyard_e2e::client::get(p.web(), "lab.test", &format!("/{seq}")).unwrap();
        assert_eq!(
            r.status, 200,
            "proxy of {} after the region loss",
            REGIONS[i]
        );
    }
    let sa = switchyard_e2e::proxy::proxy_status(&eps[survivor], "edge-sa").unwrap();
    assert_eq!(
        sa["node"], 4,
        "the learner region's proxy follows the learner: {sa}"
    );
    println!("lab wall time {:.1?}; {}", wall.elapsed(), relays.report());
    drop(relays);
}
