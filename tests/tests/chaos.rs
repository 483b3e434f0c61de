//! The chaos suite in CI: one round of about 90 seconds of faults (leader and follower kills,
//! a majority and a whole-cluster kill, graceful restarts, isolated leader and follower, a
//! one-way cut) against a three-node secure cluster, with five clients writing and reading
//! registers through three different control nodes. The round's history must be linearizable,
//! lose no acknowledged write, and the nodes must converge (see `switchyard_e2e::chaos`).
//!
//! `SWITCHYARD_CHAOS_SECS` changes the duration; `scripts/chaos.sh --minutes N` runs long ones.

use switchyard_e2e::chaos::{self, ChaosConfig};

#[test]
fn chaos_histories_are_linearizable_and_lose_nothing() {
    let cfg = ChaosConfig::from_env(90);
    let reports = chaos::run(&cfg);
    let faults: usize = reports.iter().map(|r| r.faults.len()).sum();
    assert!(faults >= 3, "too few faults to prove anything: {reports:?}");
}
