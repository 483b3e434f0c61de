//! Write availability across leader kills, for BENCHMARKS.md (`scripts/bench-failover.sh`).
//!
//! `failover_bench [KILLS] [STEADY_SECONDS]` (defaults 20 and 60): starts a 3-node secure
//! cluster with the product's default Raft timers (binaries from `$SWITCHYARD_BIN_DIR`, else
//! `target/debug`), runs a steady writer, counts elections during `STEADY_SECONDS` of load
//! without faults, then kills the leader `KILLS` times (restarting it each time), and prints the
//! write unavailability (p50/p99/max) and the restarted nodes' time to ready.

use std::time::Duration;

use switchyard_e2e::failover::{elections_during, kill_leaders, percentile, Writer};
use switchyard_e2e::{Cluster, DEFAULT_TIMERS};

fn main() {
    let mut args = std::env::args().skip(1);
    let kills: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let steady: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);

    let mut c = Cluster::start_with(3, &[DEFAULT_TIMERS]);
    let creds = c.creds();
    let writer = Writer::start(&c.endpoints(), Some(&creds));
    let (elections, ok, failed) = elections_during(&c, &writer, Duration::from_secs(steady));
    println!(
        "steady load, {steady} s: {elections} elections, {ok} writes ({:.0}/s), {failed} failed",
        ok as f64 / steady as f64
    );
    let outcomes = kill_leaders(&mut c, &writer, kills);
    drop(writer.stop());
    let un: Vec<Duration> = outcomes.iter().map(|o| o.unavailable).collect();
    let ready: Vec<Duration> = outcomes.iter().map(|o| o.ready_after_restart).collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{kills} leader kills: write unavailability p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(percentile(&un, 50.0)),
        ms(percentile(&un, 99.0)),
        ms(percentile(&un, 100.0))
    );
    println!(
        "restarted node ready: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(percentile(&ready, 50.0)),
        ms(percentile(&ready, 99.0)),
        ms(percentile(&ready, 100.0))
    );
}
