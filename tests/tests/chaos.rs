//! The chaos suite in CI (see `switchyard_e2e::chaos`):
//! * one round of about 90 seconds of faults (leader and follower kills, a majority and a
//!   whole-cluster kill, graceful restarts, isolated leader and follower, a one-way cut) against
//!   a three-node secure cluster, with five clients writing and reading registers through three
//!   different control nodes: the history must be linearizable, lose no acknowledged write, and
//!   the nodes must converge;
//! * the negative control: a stale local read on a cut-off follower must be caught;
//! * the regression test for the stale consistent reads the suite found after whole-cluster
//!   restarts.
//!
//! `SWITCHYARD_CHAOS_SECS` changes the round's duration; `scripts/chaos.sh --minutes N` runs
//! long ones.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_e2e::backends::block_on;
use switchyard_e2e::chaos::history::{History, Op, Outcome};
use switchyard_e2e::chaos::{self, workload, ChaosConfig};
use switchyard_e2e::wait_until;

#[test]
fn chaos_histories_are_linearizable_and_lose_nothing() {
    let cfg = ChaosConfig::from_env(90);
    let reports = chaos::run(&cfg);
    let faults: usize = reports.iter().map(|r| r.faults.len()).sum();
    assert!(faults >= 3, "too few faults to prove anything: {reports:?}");
}

/// The negative control, end to end and deterministic: with a follower cut off by the relays,
/// a write acknowledged by the leader and then a *local* read (`consistent: false`) on that
/// follower make a stale read, and the recorded history must be found not linearizable. A
/// consistent read on the cut-off follower must not answer the stale value. Proves that the
/// relays cut for real and that recording, model and checker catch what they are meant to.
#[test]
fn a_stale_read_from_a_cut_off_follower_is_caught() {
    let (cluster, relays, access) = chaos::relayed_cluster();
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let follower = cluster
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("a follower");
    let api = |id: u64| cluster.node(id).addrs.api.clone();
    let history = History::new();
    let timeout = Duration::from_secs(10);
    let key = "reg-0";
    let write = |value: &str| Op::Write {
        key: key.into(),
        value: value.into(),
    };
    let read = Op::Read { key: key.into() };
    block_on(async {
        let mut on_leader = access.connect(&api(leader), timeout).await.expect("leader");
        let mut on_follower = access
            .connect(&api(follower), timeout)
            .await
            .expect("follower");
        // v1 everywhere: written through the leader, read locally on the follower once applied.
        history.invoke(0, leader, &write("c0-1"));
        let out = workload::write(&mut on_leader, key, "c0-1", timeout).await;
        assert_eq!(out, Outcome::Ok(None));
        history.complete(0, leader, &write("c0-1"), out);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Not recorded: the follower may not have applied v1 yet (a stale read too).
            let out = workload::read(&mut on_follower, key, true, timeout).await;
            if out == Outcome::Ok(Some("c0-1".into())) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "follower never applied v1: {out:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Cut the follower off; v2 commits on the majority.
        relays.isolate(follower, &cluster.ids());
        history.invoke(0, leader, &write("c0-2"));
        let (out, v) = workload::write_versioned(&mut on_leader, key, "c0-2", timeout).await;
        eprintln!("c0-2 written at version {v:?}");
        assert_eq!(
            out,
            Outcome::Ok(None),
            "the majority commits without the follower"
        );
        history.complete(0, leader, &write("c0-2"), out);
        // A consistent read on the cut-off follower cannot answer the stale value…
        let out = workload::read(&mut on_follower, key, false, Duration::from_secs(8)).await;
        assert!(
            !matches!(&out, Outcome::Ok(Some(v)) if v == "c0-1"),
            "a consistent read answered a stale value: {out:?}"
        );
        eprintln!(
            "leader {leader}, follower {follower}, consistent read on the follower: {out:?}; relays: {:?}, cut: {:?}",
            relays.stats(),
            relays.blocked()
        );
        // …a local one does.
        history.invoke(1, follower, &read);
        let (out, v) = workload::read_versioned(&mut on_follower, key, true, timeout).await;
        eprintln!("local read on the follower: {out:?} at version {v:?}");
        assert_eq!(
            out,
            Outcome::Ok(Some("c0-1".into())),
            "the follower is cut off"
        );
        history.complete(1, follower, &read, out);
    });
    let verdict = history.check_linearizable(Duration::from_secs(30));
    let err = verdict.expect_err("the stale read must be found");
    eprintln!("the negative control found, as it must: {err}");
    assert!(err.contains("register reg-0 is not linearizable"), "{err}");
    assert!(err.contains("read reg-0 -> c0-1"), "{err}");
    relays.heal();
}

/// Found by the chaos suite: after the whole cluster is killed (while writes are being
/// acknowledged) and restarted, a consistent read must reflect every write acknowledged before
/// the kill (its config version is at least that of the last acknowledged write).
#[test]
fn consistent_reads_after_a_whole_cluster_restart_see_every_acknowledged_write() {
    let (mut cluster, _relays, access) = chaos::relayed_cluster();
    let ids = cluster.ids();
    let apis: Vec<String> = ids
        .iter()
        .map(|id| cluster.node(*id).addrs.api.clone())
        .collect();
    let timeout = Duration::from_secs(10);
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Writers on every node, all the time.
    let writers: Vec<_> = apis
        .iter()
        .enumerate()
        .map(|(w, api)| {
            let (api, access, acked, stop) =
                (api.clone(), access.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let Ok(mut c) = access.connect(&api, Duration::from_secs(1)).await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        while !stop.load(Ordering::SeqCst) {
                            i += 1;
                            let value = format!("c{w}-{i}");
                            match workload::write_versioned(&mut c, "reg-0", &value, timeout).await
                            {
                                (Outcome::Ok(_), Some(v)) => {
                                    acked.fetch_max(v, Ordering::SeqCst);
                                }
                                _ => break,
                            }
                        }
                    }
                })
            })
        })
        .collect();
    for round in 0..10 {
        // Let writes flow, then kill everything at once.
        let before = acked.load(Ordering::SeqCst);
        wait_until(Duration::from_secs(60), "writes acknowledged", || {
            acked.load(Ordering::SeqCst) >= before + 10
        });
        let leader = cluster.wait_for_leader(Duration::from_secs(60));
        for id in &ids {
            cluster.node_mut(*id).kill();
        }
        // Every acknowledgement was sent before the kill.
        let acked_before_kill = acked.load(Ordering::SeqCst);
        // The old leader first (it comes back as leader of its old term), then the others, with
        // a reader waiting on it.
        for id in std::iter::once(leader).chain(ids.iter().copied().filter(|&i| i != leader)) {
            cluster.node_mut(id).respawn();
        }
        let api = cluster.node(leader).addrs.api.clone();
        let (out, v) = block_on(async {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let r = match access.connect(&api, Duration::from_millis(500)).await {
                    Ok(mut c) => workload::read_versioned(&mut c, "reg-0", false, timeout).await,
                    Err(e) => (Outcome::Fail(e), None),
                };
                if matches!(r.0, Outcome::Ok(_)) || Instant::now() > deadline {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let v = v.unwrap_or(0);
        eprintln!(
            "round {round}: acknowledged {acked_before_kill}, first read after the restart at {v}"
        );
        assert!(
            v >= acked_before_kill,
            "round {round}: a consistent read on the restarted leader answered {out:?} at version {v}, but version {acked_before_kill} was acknowledged before the kill"
        );
        for id in &ids {
            cluster.node_mut(*id).wait_healthy();
        }
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        let _ = w.join();
    }
}
