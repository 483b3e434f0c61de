//! `switchyard rollout status|pause|resume|abort`, and the `apply --rollout` plan.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use serde_json::json;
use switchyard_proto::admin::{
    ControlRolloutRequest, GetRolloutRequest, ListProxiesRequest, RolloutPlan, RolloutStatus,
};
use switchyard_store::rollout::{parse_stages, Place, Selector};

use crate::args::{Format, Global, RolloutArgs, RolloutCommand};
use crate::client::{connect, status_error};
use crate::output::print_data;

/// `1%`, `0.5%` (percent) or `0.01` (a fraction) as a fraction in 0..=1.
pub fn rate(flag: &str, v: &str) -> Result<f64> {
    let t = v.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(p) => (p.trim(), 100.0),
        None => (t, 1.0),
    };
    let x: f64 = num
        .parse()
        .map_err(|_| anyhow!("--{flag}: expected a percentage such as 1% or 0.5%, got {v:?}"))?;
    let x = x / scale;
    if !(0.0..=1.0).contains(&x) || x.is_nan() {
        return Err(anyhow!("--{flag}: must be between 0% and 100%, got {v:?}"));
    }
    Ok(x)
}

/// The plan `apply --rollout STAGES [--bake] [--max-error-rate] [--max-p99]` sends (the stages
/// are checked by the control plane, which names the bad one).
pub fn plan(
    stages: &str,
    bake: Option<&str>,
    max_error_rate: Option<&str>,
    max_p99: Option<&str>,
) -> Result<RolloutPlan> {
    let bake = super::server::duration("bake", bake.unwrap_or("60s"))?;
    let max_error_rate = rate("max-error-rate", max_error_rate.unwrap_or("1%"))?;
    let max_p99_ms = match max_p99 {
        Some(d) => u64::try_from(super::server::duration("max-p99", d)?.as_millis())
            .unwrap_or(u64::MAX)
            .max(1),
        None => 0,
    };
    Ok(RolloutPlan {
        stages: stages.to_string(),
        bake_ms: u64::try_from(bake.as_millis()).unwrap_or(u64::MAX).max(1),
        max_error_rate,
        max_p99_ms,
    })
}

/// After `apply --rollout`: a warning (stderr) for each stage that selects none of the proxies
/// attached now (a typo in a zone name would otherwise be promoted with nothing to judge).
pub async fn warn_unmatched(client: &mut crate::client::Client, stages: &str) {
    let Ok(stages) = parse_stages(stages) else {
        return;
    };
    let Ok(list) = client
        .list_proxies(ListProxiesRequest { local_only: false })
        .await
    else {
        return;
    };
    let proxies = list.into_inner().proxies;
    for s in stages.iter().filter(|s| **s != Selector::All) {
        let any = proxies.iter().any(|p| {
            s.matches(Place {
                region: &p.region,
                zone: &p.zone,
                cluster: &p.cluster,
            })
        });
        if !any {
            eprintln!(
                "warning: stage {s} selects none of the {} attached proxies (it will be promoted with nothing to judge)",
                proxies.len()
            );
        }
    }
}

fn ago(ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    format!("{:.1}s ago", now.saturating_sub(ms) as f64 / 1000.0)
}

/// The human form of a rollout status.
pub fn describe(s: &RolloutStatus) -> String {
    if !s.exists {
        return "no rollout has run".to_string();
    }
    let stage = s.stage as usize;
    let mut out = format!(
        "rollout of config version {} (previous {}): {}\n",
        s.target_version, s.previous_version, s.status
    );
    let stages = s
        .stages
        .iter()
        .enumerate()
        .map(|(i, st)| {
            if i == stage && matches!(s.status.as_str(), "running" | "paused") {
                format!("[{st}]")
            } else {
                st.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" -> ");
    out.push_str(&format!(
        "stages: {stages} (stage {}/{})\n",
        stage + 1,
        s.stages.len()
    ));
    out.push_str(&format!(
        "bake {:.1}s, max error rate {:.2}% above the baseline, max p99 {}\n",
        s.bake_ms as f64 / 1000.0,
        s.max_error_rate * 100.0,
        if s.max_p99_ms == 0 {
            "not judged".to_string()
        } else {
            format!("{} ms above the baseline", s.max_p99_ms)
        }
    ));
    out.push_str(&format!(
        "started {}, stage started {}\n",
        ago(s.started_at_unix_ms),
        ago(s.stage_started_at_unix_ms)
    ));
    if s.ended_at_unix_ms > 0 {
        out.push_str(&format!("ended {}\n", ago(s.ended_at_unix_ms)));
    }
    if s.rollback_version > 0 {
        out.push_str(&format!(
            "previous config back as version {}\n",
            s.rollback_version
        ));
    }
    if !s.reason.is_empty() {
        out.push_str(&format!("reason: {}\n", s.reason));
    }
    for n in &s.notes {
        out.push_str(&format!("  {n}\n"));
    }
    out
}

pub async fn run(g: &Global, a: RolloutArgs) -> Result<ExitCode> {
    let mut client = connect(&g.endpoints).await?;
    let status = match a.command {
        RolloutCommand::Status => client.get_rollout(GetRolloutRequest {}).await,
        RolloutCommand::Pause => control(&mut client, "pause").await,
        RolloutCommand::Resume => control(&mut client, "resume").await,
        RolloutCommand::Abort => control(&mut client, "abort").await,
    }
    .map_err(status_error)?
    .into_inner();
    match g.output {
        Format::Table => print!("{}", describe(&status)),
        f => print_data(
            f,
            &json!({
                "exists": status.exists,
                "status": status.status,
                "targetVersion": status.target_version,
                "previousVersion": status.previous_version,
                "stages": status.stages,
                "stage": status.stage,
                "bakeMs": status.bake_ms,
                "maxErrorRate": status.max_error_rate,
                "maxP99Ms": status.max_p99_ms,
                "startedAtUnixMs": status.started_at_unix_ms,
                "stageStartedAtUnixMs": status.stage_started_at_unix_ms,
                "endedAtUnixMs": status.ended_at_unix_ms,
                "reason": status.reason,
                "rollbackVersion": status.rollback_version,
                "notes": status.notes,
            }),
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn control(
    client: &mut crate::client::Client,
    action: &str,
) -> Result<tonic::Response<RolloutStatus>, tonic::Status> {
    client
        .control_rollout(ControlRolloutRequest {
            action: action.to_string(),
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_plans() {
        assert_eq!(rate("x", "1%").expect("valid"), 0.01);
        assert_eq!(rate("x", "0.5%").expect("valid"), 0.005);
        assert_eq!(rate("x", "0.02").expect("valid"), 0.02);
        assert!(rate("x", "150%").is_err());
        assert!(rate("x", "lots").is_err());
        let p = plan("zone=a,*", Some("3s"), None, Some("250ms")).expect("valid");
        assert_eq!(
            (p.bake_ms, p.max_error_rate, p.max_p99_ms),
            (3000, 0.01, 250)
        );
        let p = plan("zone=a", None, Some("5%"), None).expect("valid");
        assert_eq!(
            (p.bake_ms, p.max_error_rate, p.max_p99_ms),
            (60_000, 0.05, 0)
        );
        assert!(plan("zone=a", Some("soon"), None, None).is_err());
    }
}
