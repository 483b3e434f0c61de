//! The rollout side of the admin API: `apply --rollout` plans, `rollout status`, and the
//! pause/resume/abort steps (committed on the leader like every write).

use switchyard_proto::admin::{ControlRolloutRequest, RolloutPlan, RolloutStatus};
use switchyard_store::rollout::{parse_stages, RolloutCommand};
use switchyard_store::{ClusterState, Plan, Request as Cmd, Response as CmdResponse};

use super::AdminService;
use crate::errors::ApiError;

/// Milliseconds since the Unix epoch (the proposer's clock, stamped on rollout steps).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The store's plan for the API's, or why it is refused.
pub(super) fn plan_of(p: &RolloutPlan) -> Result<Plan, ApiError> {
    let plan = Plan {
        stages: parse_stages(&p.stages).map_err(|e| ApiError::Invalid(format!("rollout: {e}")))?,
        bake_ms: p.bake_ms,
        max_error_rate: p.max_error_rate,
        max_p99_ms: (p.max_p99_ms > 0).then_some(p.max_p99_ms),
    };
    plan.check().map_err(ApiError::Invalid)?;
    Ok(plan)
}

/// The command that starts a rollout of `document`.
pub(super) fn start(document: switchyard_config::DynamicConfig, prune: bool, plan: Plan) -> Cmd {
    Cmd::Rollout {
        cmd: RolloutCommand::Start {
            document: Box::new(document),
            prune,
            plan,
        },
        at: now_ms(),
    }
}

/// What `rollout status` shows, from a node's applied state.
pub fn status_of(st: &ClusterState) -> RolloutStatus {
    let Some(r) = &st.rollout else {
        return RolloutStatus::default();
    };
    RolloutStatus {
        exists: true,
        status: r.status.as_str().to_string(),
        target_version: r.target_version,
        previous_version: r.previous_version,
        stages: r.plan.stages.iter().map(|s| s.to_string()).collect(),
        stage: u32::try_from(r.stage).unwrap_or(u32::MAX),
        bake_ms: r.plan.bake_ms,
        max_error_rate: r.plan.max_error_rate,
        max_p99_ms: r.plan.max_p99_ms.unwrap_or(0),
        started_at_unix_ms: r.started_at_ms,
        stage_started_at_unix_ms: r.stage_started_at_ms,
        ended_at_unix_ms: r.ended_at_ms,
        reason: r.reason.clone(),
        rollback_version: r.rollback_version,
        notes: r.notes.clone(),
    }
}

impl AdminService {
    /// Pause, resume or abort the rollout in progress; on the leader.
    pub(super) async fn control_rollout_local(
        &self,
        r: ControlRolloutRequest,
    ) -> Result<RolloutStatus, ApiError> {
        let state = self.shared.applied.borrow().state.clone();
        let Some(target) = state.active_rollout().map(|r| r.target_version) else {
            return Err(ApiError::FailedPrecondition(
                "no rollout is in progress".into(),
            ));
        };
        let cmd = match r.action.as_str() {
            "pause" => RolloutCommand::Pause { target },
            "resume" => RolloutCommand::Resume { target },
            "abort" => RolloutCommand::Abort { target },
            other => {
                return Err(ApiError::Invalid(format!(
                    "unknown rollout action {other:?}: expected pause, resume or abort"
                )))
            }
        };
        match self.commit(Cmd::Rollout { cmd, at: now_ms() }).await? {
            CmdResponse::Rejected(rej) => Err(rej.into()),
            _ => Ok(status_of(&self.shared.applied.borrow().state)),
        }
    }
}
