//! The chaos suite in CI: one round of about 90 seconds of faults (leader and follower kills,
//! a majority and a whole-cluster kill, graceful restarts, isolated leader and follower, a
//! one-way cut) against a three-node secure cluster, with five clients writing and reading
//! registers through three different control nodes. The round's history must be linearizable,
//! lose no acknowledged write, and the nodes must converge (see `switchyard_e2e::chaos`).
//!
//! `SWITCHYARD_CHAOS_SECS` changes the duration; `scripts/chaos.sh --minutes N` runs long ones.

use std::time::Duration;

use switchyard_e2e::chaos::nemesis::Fault;
use switchyard_e2e::chaos::{self, ChaosConfig};

#[test]
fn chaos_histories_are_linearizable_and_lose_nothing() {
    let cfg = ChaosConfig::from_env(90);
    let reports = chaos::run(&cfg);
    let faults: usize = reports.iter().map(|r| r.faults.len()).sum();
    assert!(faults >= 3, "too few faults to prove anything: {reports:?}");
}

/// The negative control: the same round with local (`consistent: false`) reads, while
/// followers are cut off, must be found not linearizable. Proves that the recording, the
/// model and the checker catch a real stale read end to end.
#[test]
fn stale_reads_from_a_cut_off_follower_are_caught() {
    let mut cfg = ChaosConfig::from_env(20);
    cfg.duration = Duration::from_secs(20);
    cfg.faults = vec![Fault::IsolateFollower];
    cfg.stale_reads = true;
    let verdict = chaos::run_round(&cfg, cfg.seed, cfg.duration);
    match verdict {
        Err(v) => {
            eprintln!("the negative control found, as it must: {v}");
            assert!(
                v.contains("is not linearizable"),
                "unexpected violation: {v}"
            );
        }
        Ok(report) => panic!("stale reads went unnoticed: {report}"),
    }
}
