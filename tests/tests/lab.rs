//! Issue 11, the multi-region lab (must-show 1, shortened; ignored in CI until the relay stall in
//! BENCHMARKS.md is explained, run by `scripts/lab.sh`): three voter regions (eu, us, ap)
//! and a learner region (sa) on loopback, every Raft link through a userspace delay relay with
//! realistic round trips (eu↔us 80 ms, us↔ap 120 ms, eu↔ap 160 ms, sa↔eu 110 ms, sa↔us 150 ms,
//! sa↔ap 200 ms), `--raft-profile wan`, one proxy per region attached to its region's node.
//! A write through any region (the learner's too) commits; `apply --wait` reaches the proxies
//! of all four regions; losing the leader's region leaves the others writing and serving, and
//! the learner region's proxy keeps following the learner. Prints commit latency per region
//! (CLI wall time, p50 and max of 5 writes), apply→every-proxy-ACK (p50 and max of 5) and the
//! time from region loss to the first write committed elsewhere (BENCHMARKS.md). Before that the
//! idle cluster is watched for `SWITCHYARD_LAB_HOLD_SECS` (15): no election may happen with the
//! WAN profile. `SWITCHYARD_LAB_PROFILE=lan` only counts the elections of the LAN timers over the
//! same links and stops (measurement only; `scripts/lab.sh --hold-secs 300` is the 5-minute WAN
//! watch).
//!
//! Regions share one loopback interface: only Raft traffic between control nodes is delayed
//! (proxies and clients talk to their own region's node). Linux only (the relays identify nodes
//! through /proc).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use switchyard_e2e::chaos::relays::Relays;
use switchyard_e2e::proxy::{applied_version, apply_wait, wait_attached_to, Proxy, ProxySpec};
use switchyard_e2e::{
    cli_stdin, wait_until, Cluster, ControlNode, NodeAddrs, DEFAULT_TIMERS, FORM_TIMEOUT,
};

const REGIONS: [&str; 4] = ["eu", "us", "ap", "sa"];
const RTT_MS: [((u64, u64), u64); 6] = [
    ((1, 2), 80),
    ((2, 3), 120),
    ((1, 3), 160),
    ((4, 1), 110),
    ((4, 2), 150),
    ((4, 3), 200),
];

fn route(i: usize) -> String {
    format!(
        "http:\n  routers:\n    lab:\n      rule: \"Host(`lab.test`) && PathPrefix(`/{i}`)\"\n      service: lab\n  services:\n    lab:\n      loadBalancer:\n        servers: [{{url: \"http://127.0.0.1:9\"}}]\n"
    )
}

fn p50_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[test]
#[ignore = "the multi-region lab (scripts/lab.sh): over 5 idle minutes its delay relays stalled every link of a node after ~30 s (under investigation), so it is not part of CI yet"]
fn three_regions_and_a_learner_region_over_delayed_links() {
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
            .unwrap_or(15),
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
    // through the hold. The WAN profile must have none; the LAN one is only counted (its
    // timeouts are within a few round trips), and the lab stops there.
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
                "[{:?}] max term {term}: {}",
                t.elapsed(),
                relays.report()
            );
            reported = Instant::now();
        }
        end_term = end_term.max(term);
    }
    println!(
        "--raft-profile {profile}: {} elections in {:?} of idle cluster over the delayed links",
        end_term - start_term,
        hold
    );
    if profile != "wan" {
        return;
    }
    assert_eq!(
        end_term, start_term,
        "spurious elections with the WAN profile"
    );

    // One proxy per region, attached to its region's node.
    let proxies: Vec<Proxy> = (0..4)
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

    // Writes through every region (followers and the learner forward to the leader).
    let leader = c.wait_for_leader(FORM_TIMEOUT);
    println!("leader: node {leader} ({})", REGIONS[leader as usize - 1]);
    let mut seq = 0;
    for (i, ep) in eps.iter().enumerate() {
        let mut times = Vec::new();
        for _ in 0..5 {
            seq += 1;
            let t = Instant::now();
            let out = cli_stdin(ep, &["apply", "-f", "-"], &route(seq));
            assert!(
                out.success(),
                "write through {}: {}",
                REGIONS[i],
                out.stderr
            );
            times.push(t.elapsed());
        }
        let (p50, max) = p50_max(times);
        println!(
            "commit through {} (node {}): p50 {} max {} (CLI wall time)",
            REGIONS[i],
            i + 1,
            ms(p50),
            ms(max)
        );
    }

    // apply --wait: every proxy in the four regions ACKs.
    let mut times = Vec::new();
    let mut version = 0;
    for _ in 0..5 {
        seq += 1;
        let t = Instant::now();
        let out = apply_wait(&eps[leader as usize - 1], &route(seq), "60s", None);
        assert!(out.success(), "apply --wait: {}", out.stderr);
        assert!(
            out.stdout.contains("4 proxies at config version"),
            "{}",
            out.stdout
        );
        times.push(t.elapsed());
        version = applied_version(&out).unwrap();
    }
    let (p50, max) = p50_max(times);
    println!(
        "apply --wait to 4 regions' proxies: p50 {} max {}",
        ms(p50),
        ms(max)
    );
    for p in &proxies {
        p.wait_version(version, Duration::from_secs(10));
    }

    // Lose the leader's region: its node dies. Another voter region commits a write.
    let lost = leader as usize - 1;
    let t = Instant::now();
    c.node_mut(leader).kill();
    let survivor = (0..3).find(|i| *i != lost).unwrap();
    seq += 1;
    let doc = route(seq);
    let v = wait_until(
        Duration::from_secs(60),
        "a write committed after the region loss",
        || {
            let out = cli_stdin(&eps[survivor], &["apply", "-f", "-"], &doc);
            if out.success() {
                Ok(applied_version(&out).unwrap_or(0))
            } else {
                Err(out.stderr)
            }
        },
    );
    println!(
        "region {} lost: first write committed through {} after {}",
        REGIONS[lost],
        REGIONS[survivor],
        ms(t.elapsed())
    );
    // Every proxy gets it: the other regions' from their own node, the learner region's from
    // the learner, and the lost region's from a node of another region it failed over to.
    for p in &proxies {
        p.wait_version(v, Duration::from_secs(60));
    }
    let sa = switchyard_e2e::proxy::proxy_status(&eps[survivor], "edge-sa").unwrap();
    assert_eq!(
        sa["node"], 4,
        "the learner region's proxy follows the learner: {sa}"
    );
    drop(relays);
}
