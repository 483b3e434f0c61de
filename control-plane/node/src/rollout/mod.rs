//! Drives progressive rollouts on the leader: bakes each stage, judges it, and commits the
//! verdict (promote or roll back) through Raft.
//!
//! - [`judge`]: the pure verdict on a stage from the proxies' request counters.
//! - [`run`]: every node runs it; it acts only while the node leads and a rollout is running.
//!   At the start of a stage's bake it takes every proxy's counters (`ListProxies` fan-out), at
//!   the end again, and proposes `Promote` or `RollBack` for that very stage (a step for a stage
//!   that moved on is refused by the state machine, so a deposed leader's late step is
//!   harmless). The rollout itself is in the replicated state; what a leader keeps in memory is
//!   only the counters at the start of the bake, so a new leader starts the current stage's bake
//!   window again when it takes over (a failover lengthens that stage by at most one bake).

pub mod judge;

use std::sync::Arc;
use std::time::Duration;

use switchyard_store::rollout::{RolloutCommand, Status};
use switchyard_store::{Request, Response};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::AdminService;
use crate::shared::Shared;
use judge::{counts, judge, window, Counts, Verdict};

/// How often the driver looks when nothing changes (bakes end on this tick).
const TICK: Duration = Duration::from_millis(200);

/// The bake this leader is timing.
struct Bake {
    /// (target version, stage, stage start): a new value is a new bake.
    key: (u64, usize, u64),
    start: Counts,
    due: Instant,
}

/// Starts the rollout driver of this node (it acts only while the node leads).
pub fn spawn(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(run(shared, stop))
}

async fn gather(shared: &Arc<Shared>) -> Counts {
    let svc = AdminService::new(shared.clone());
    counts(&svc.cluster_proxies(shared.proxies.list()).await.proxies)
}

async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut applied = shared.applied.clone();
    let mut bake: Option<Bake> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = applied.changed() => if r.is_err() { return },
            () = tokio::time::sleep(TICK) => {}
        }
        if *stop.borrow() {
            return;
        }
        let leads = shared.raft.metrics().borrow().current_leader == Some(shared.id);
        let state = applied.borrow().state.clone();
        let running = state
            .active_rollout()
            .filter(|r| r.status == Status::Running && leads);
        let Some(r) = running else {
            bake = None;
            continue;
        };
        let key = (r.target_version, r.stage, r.stage_started_at_ms);
        let Some(b) = bake.as_ref().filter(|b| b.key == key) else {
            // The bake runs from when this leader saw the stage (before asking every node).
            let due = Instant::now() + Duration::from_millis(r.plan.bake_ms);
            let start = gather(&shared).await;
            tracing::info!(
                target_version = r.target_version,
                stage = r.stage + 1,
                bake_ms = r.plan.bake_ms,
                "rollout: stage baking"
            );
            bake = Some(Bake { key, start, due });
            continue;
        };
        if Instant::now() < b.due {
            continue;
        }
        let end = gather(&shared).await;
        let (new, base) = window(&b.start, &end, r.target_version);
        let label = format!(
            "stage {}/{} ({})",
            r.stage + 1,
            r.plan.stages.len(),
            r.plan.stages[r.stage]
        );
        let cmd = match judge(&label, &new, &base, &r.plan) {
            Verdict::Pass(note) => {
                tracing::info!(%note, "rollout: stage passed");
                RolloutCommand::Promote {
                    target: r.target_version,
                    stage: r.stage,
                    note,
                }
            }
            Verdict::Breach(reason) => {
                tracing::warn!(%reason, "rollout: stage breached; rolling back");
                RolloutCommand::RollBack {
                    target: r.target_version,
                    stage: r.stage,
                    reason,
                }
            }
        };
        let req = Request::Rollout {
            cmd,
            at: crate::admin::now_ms(),
        };
        let timeout = shared.opts.write_timeout;
        match tokio::time::timeout(timeout, shared.raft.client_write(req)).await {
            Ok(Ok(resp)) => {
                if let Response::Rejected(r) = resp.data {
                    tracing::warn!(rejection = ?r, "rollout step refused");
                }
                bake = None;
            }
            // Not committed (no longer the leader, no quorum): judged again on the next tick.
            Ok(Err(e)) => tracing::warn!(error = %e, "rollout step not committed"),
            Err(_) => tracing::warn!("rollout step not committed within {timeout:?}"),
        }
    }
}
