//! Progressive rollout: the replicated record of a config change that reaches the proxies stage
//! by stage, and the pure rules that move it (start, promote, roll back, pause, resume, abort).
//!
//! A rollout starts with [`RolloutCommand::Start`]: the new config becomes `config` at the
//! entry's index (the target version) and the config it replaces is kept, with its version, in
//! [`Rollout::previous`]. While the rollout is active, [`ClusterState::config_for`] gives a
//! proxy the new version when one of the stages reached so far selects it, else the previous one:
//! the config stream holds two versions. Promoting and rolling back are log entries proposed by
//! the leader (after each bake, see the node's `rollout` module), so a new leader resumes from
//! the state. A rollback commits the previous config again as a *new* version (versions only go
//! forward; proxies never move backwards), and every proxy is sent it.
//!
//! [`ClusterState::config_for`]: crate::ClusterState::config_for

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard_config::DynamicConfig;

/// Which proxies a stage reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selector {
    /// `*`: every proxy.
    All,
    /// `zone=NAME`
    Zone(String),
    /// `region=NAME`
    Region(String),
    /// `cluster=NAME` (the proxy's `--cluster`).
    Cluster(String),
}

/// Where a proxy is, as its stream's Hello says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Place<'a> {
    pub region: &'a str,
    pub zone: &'a str,
    pub cluster: &'a str,
}

impl Selector {
    /// `*`, `zone=NAME`, `region=NAME` or `cluster=NAME`.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(Selector::All);
        }
        let Some((key, value)) = s.split_once('=') else {
            return Err(format!(
                "stage {s:?}: expected `*`, `zone=NAME`, `region=NAME` or `cluster=NAME`"
            ));
        };
        let value = value.trim();
        if value.is_empty() || value.contains(char::is_whitespace) {
            return Err(format!(
                "stage {s:?}: the name must be non-empty, without spaces"
            ));
        }
        match key.trim() {
            "zone" => Ok(Selector::Zone(value.to_string())),
            "region" => Ok(Selector::Region(value.to_string())),
            "cluster" => Ok(Selector::Cluster(value.to_string())),
            other => Err(format!(
                "stage {s:?}: unknown key {other:?} (expected zone, region or cluster)"
            )),
        }
    }

    pub fn matches(&self, p: Place<'_>) -> bool {
        match self {
            Selector::All => true,
            Selector::Zone(z) => p.zone == z,
            Selector::Region(r) => p.region == r,
            Selector::Cluster(c) => {
                let cluster = if p.cluster.is_empty() {
                    switchyard_config::scope::DEFAULT_CLUSTER
                } else {
                    p.cluster
                };
                cluster == c
            }
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("*"),
            Selector::Zone(z) => write!(f, "zone={z}"),
            Selector::Region(r) => write!(f, "region={r}"),
            Selector::Cluster(c) => write!(f, "cluster={c}"),
        }
    }
}

/// Parses `zone=a,zone=b,*`: at least one stage, no stage twice, `*` only last.
pub fn parse_stages(s: &str) -> Result<Vec<Selector>, String> {
    let stages = s
        .split(',')
        .map(Selector::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if stages.is_empty() {
        return Err("--rollout: at least one stage".into());
    }
    for (i, st) in stages.iter().enumerate() {
        if *st == Selector::All && i + 1 != stages.len() {
            return Err("stage `*` reaches every proxy: it can only be the last stage".into());
        }
        if stages[..i].contains(st) {
            return Err(format!("stage {st} is listed twice"));
        }
    }
    Ok(stages)
}

/// How a rollout proceeds and what counts as a breach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub stages: Vec<Selector>,
    /// How long each stage runs before it is judged.
    pub bake_ms: u64,
    /// Largest error rate (a fraction, 0.01 = 1%) the new version may show above the baseline's.
    pub max_error_rate: f64,
    /// Largest p99 latency (ms) the new version may show above the baseline's (none: not judged).
    pub max_p99_ms: Option<u64>,
}

impl Plan {
    /// The longest bake accepted.
    pub const MAX_BAKE_MS: u64 = 7 * 24 * 3600 * 1000;

    /// Checks the numbers (the stages are checked by [`parse_stages`]).
    pub fn check(&self) -> Result<(), String> {
        if self.stages.is_empty() {
            return Err("rollout: at least one stage".into());
        }
        if self.bake_ms == 0 {
            return Err("rollout: --bake must be more than 0".into());
        }
        if self.bake_ms > Self::MAX_BAKE_MS {
            return Err("rollout: --bake must be at most 168h (7 days)".into());
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err("rollout: --max-error-rate must be between 0% and 100%".into());
        }
        Ok(())
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Running,
    Paused,
    /// Every stage passed; every proxy serves the target version.
    Completed,
    /// A stage breached a threshold; every proxy was sent the previous config again.
    RolledBack,
    /// `switchyard rollout abort`: as a rollback, asked for.
    Aborted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Completed => "completed",
            Status::RolledBack => "rolled-back",
            Status::Aborted => "aborted",
        }
    }
}

/// The rollout in the replicated state (the latest one stays after it ends, for `status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub plan: Plan,
    /// Config version the rollout brought in (the index of its start entry).
    pub target_version: u64,
    /// The version proxies in later stages stay on.
    pub previous_version: u64,
    /// The config they stay on; dropped when the rollout ends.
    pub previous: Option<Arc<DynamicConfig>>,
    /// The last stage reached (index into `plan.stages`).
    pub stage: usize,
    pub started_at_ms: u64,
    /// When the current stage started (or was resumed), by the proposer's clock.
    pub stage_started_at_ms: u64,
    pub status: Status,
    /// Why it ended (or was paused).
    pub reason: String,
    pub ended_at_ms: u64,
    /// The version that brought the previous config back (rolled back or aborted).
    pub rollback_version: u64,
    /// One line per judged stage.
    pub notes: Vec<String>,
}

impl Rollout {
    /// Running or paused: the stream holds two versions and config writes are refused.
    pub fn is_active(&self) -> bool {
        matches!(self.status, Status::Running | Status::Paused)
    }

    /// Whether a stage reached so far selects the proxy at `p`.
    pub fn reaches(&self, p: Place<'_>) -> bool {
        self.plan.stages[..=self.stage.min(self.plan.stages.len().saturating_sub(1))]
            .iter()
            .any(|s| s.matches(p))
    }

    /// The error a config write gets while this rollout is active.
    pub fn busy(&self) -> String {
        format!(
            "a rollout of config version {} is {} (stage {}/{}: {}); config writes are refused until it ends: wait for it, or `switchyard rollout abort`",
            self.target_version,
            self.status.as_str(),
            self.stage + 1,
            self.plan.stages.len(),
            self.plan.stages.get(self.stage).map(|s| s.to_string()).unwrap_or_default()
        )
    }
}

/// A step of a rollout, committed through Raft. Every step but `Start` names the rollout it is
/// for (`target`: its target version), so a step proposed by a leader that was then deposed, or
/// sent twice, cannot move another rollout or the same one twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RolloutCommand {
    /// Apply `document` (as `Request::Apply`) through `plan`.
    Start {
        document: Box<DynamicConfig>,
        prune: bool,
        plan: Plan,
    },
    /// Stage `stage` passed its bake: the next stage starts, or the rollout completes.
    Promote {
        target: u64,
        stage: usize,
        note: String,
    },
    /// Stage `stage` breached: every proxy goes back to the previous config.
    RollBack {
        target: u64,
        stage: usize,
        reason: String,
    },
    Pause {
        target: u64,
    },
    Resume {
        target: u64,
    },
    Abort {
        target: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_and_refuse_bad_input() {
        let s = parse_stages("zone=a, region=eu,cluster=edge,*").expect("valid");
        assert_eq!(
            s,
            vec![
                Selector::Zone("a".into()),
                Selector::Region("eu".into()),
                Selector::Cluster("edge".into()),
                Selector::All
            ]
        );
        assert_eq!(
            s.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(","),
            "zone=a,region=eu,cluster=edge,*"
        );
        for bad in [
            "",
            "zone=",
            "zone",
            "host=a",
            "*,zone=a",
            "zone=a,zone=a",
            "zone=a b",
        ] {
            assert!(parse_stages(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_stages("host=a").expect_err("refused");
        assert!(e.contains("unknown key \"host\""), "{e}");
        let plan = |bake_ms, max_error_rate| Plan {
            stages: vec![Selector::All],
            bake_ms,
            max_error_rate,
            max_p99_ms: None,
        };
        assert!(plan(1000, 0.01).check().is_ok());
        for bad in [
            plan(0, 0.01),
            plan(Plan::MAX_BAKE_MS + 1, 0.01),
            plan(1000, 1.5),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn selectors_match_zone_region_and_cluster() {
        let p = Place {
            region: "eu",
            zone: "eu-a",
            cluster: "",
        };
        assert!(Selector::Zone("eu-a".into()).matches(p));
        assert!(!Selector::Zone("eu-b".into()).matches(p));
        assert!(Selector::Region("eu".into()).matches(p));
        assert!(Selector::Cluster("default".into()).matches(p));
        assert!(!Selector::Cluster("edge".into()).matches(p));
        assert!(Selector::All.matches(p));
    }

    mod state {
        use super::super::*;
        use crate::{ClusterState, Rejection, Request, Response};
        use switchyard_config::parse_document;

        fn doc(backend: &str) -> DynamicConfig {
            parse_document(&format!(
                "http:\n  routers:\n    web: {{ rule: \"Host(`a`)\", service: web }}\n  services:\n    web: {{ loadBalancer: {{ servers: [ {{ url: \"http://{backend}\" }} ] }} }}\n"
            ))
            .expect("valid")
        }

        fn plan() -> Plan {
            Plan {
                stages: parse_stages("zone=a,zone=b,*").expect("stages"),
                bake_ms: 1000,
                max_error_rate: 0.01,
                max_p99_ms: None,
            }
        }

        fn place(zone: &str) -> Place<'_> {
            Place {
                region: "r",
                zone,
                cluster: "",
            }
        }

        fn rollout(cmd: RolloutCommand, at: u64) -> Request {
            Request::Rollout { cmd, at }
        }

        /// A state at version 2 (backend 127.0.0.1:1) with a rollout to 127.0.0.1:2 started at 3.
        fn started() -> ClusterState {
            let mut st = ClusterState::default();
            st.apply(
                2,
                &Request::Apply {
                    document: doc("127.0.0.1:1"),
                    prune: false,
                    validated_at: None,
                },
            );
            let start = rollout(
                RolloutCommand::Start {
                    document: Box::new(doc("127.0.0.1:2")),
                    prune: false,
                    plan: plan(),
                },
                100,
            );
            assert!(matches!(st.preview(&start), Response::Applied { .. }));
            let r = st.apply(3, &start);
            assert!(matches!(r, Response::Applied { version: 3, .. }), "{r:?}");
            st
        }

        fn backend(cfg: &DynamicConfig) -> String {
            serde_json::to_string(&cfg.http.services["web"]).expect("json")
        }

        #[test]
        fn stages_get_the_new_version_in_order_and_the_rest_the_previous_one() {
            let mut st = started();
            let version = |st: &ClusterState, z| st.config_for(place(z)).0;
            assert_eq!(
                [version(&st, "a"), version(&st, "b"), version(&st, "c")],
                [3, 2, 2]
            );
            assert!(backend(st.config_for(place("b")).1).contains("127.0.0.1:1"));
            assert!(backend(st.config_for(place("a")).1).contains("127.0.0.1:2"));
            let promote = |stage| {
                rollout(
                    RolloutCommand::Promote {
                        target: 3,
                        stage,
                        note: format!("stage {stage} ok"),
                    },
                    200,
                )
            };
            // A step for another stage, or sent twice, changes nothing.
            assert!(matches!(
                st.apply(4, &promote(1)),
                Response::Rejected(Rejection::Conflict(_))
            ));
            assert_eq!(st.apply(5, &promote(0)), Response::Done);
            assert!(matches!(st.apply(6, &promote(0)), Response::Rejected(_)));
            assert_eq!(
                [version(&st, "a"), version(&st, "b"), version(&st, "c")],
                [3, 3, 2]
            );
            assert_eq!(st.apply(7, &promote(1)), Response::Done);
            assert_eq!(version(&st, "c"), 3);
            assert_eq!(st.apply(8, &promote(2)), Response::Done);
            let r = st.rollout.as_ref().expect("rollout");
            assert_eq!(r.status, Status::Completed);
            assert!(r.previous.is_none());
            assert_eq!(r.notes.len(), 3);
            assert_eq!(st.config_version, 3, "promoting is no config change");
        }

        #[test]
        fn config_writes_are_refused_while_a_rollout_is_active() {
            let mut st = started();
            let write = Request::Apply {
                document: doc("127.0.0.1:9"),
                prune: false,
                validated_at: None,
            };
            match st.preview(&write) {
                Response::Rejected(Rejection::Conflict(m)) => {
                    assert!(m.contains("rollout abort"), "{m}")
                }
                other => panic!("unexpected {other:?}"),
            }
            assert!(matches!(
                st.apply(4, &write),
                Response::Rejected(Rejection::Conflict(_))
            ));
            assert!(st.screen(std::slice::from_ref(&write))[0].is_some());
            let again = rollout(
                RolloutCommand::Start {
                    document: Box::new(doc("127.0.0.1:9")),
                    prune: false,
                    plan: plan(),
                },
                1,
            );
            assert!(matches!(
                st.apply(5, &again),
                Response::Rejected(Rejection::Conflict(_))
            ));
            assert_eq!(st.config_version, 3);
        }

        #[test]
        fn a_rollback_brings_the_previous_config_back_as_a_new_version() {
            let mut st = started();
            let before = backend(
                &st.rollout
                    .as_ref()
                    .and_then(|r| r.previous.clone())
                    .expect("previous"),
            );
            let r = st.apply(
                9,
                &rollout(
                    RolloutCommand::RollBack {
                        target: 3,
                        stage: 0,
                        reason: "error rate 100%".into(),
                    },
                    300,
                ),
            );
            assert_eq!(r, Response::Done);
            assert_eq!(st.config_version, 9);
            assert_eq!(backend(&st.config), before);
            for z in ["a", "b", "c"] {
                assert_eq!(st.config_for(place(z)).0, 9);
            }
            let r = st.rollout.as_ref().expect("rollout");
            assert_eq!((r.status, r.rollback_version), (Status::RolledBack, 9));
            assert_eq!(r.reason, "error rate 100%");
            // Writes are accepted again.
            let write = Request::Apply {
                document: doc("127.0.0.1:7"),
                prune: false,
                validated_at: None,
            };
            assert!(matches!(
                st.apply(10, &write),
                Response::Applied { version: 10, .. }
            ));
        }

        #[test]
        fn pause_resume_and_abort() {
            let mut st = started();
            let step = |cmd| rollout(cmd, 500);
            assert!(matches!(
                st.apply(4, &step(RolloutCommand::Resume { target: 3 })),
                Response::Rejected(_)
            ));
            assert_eq!(
                st.apply(5, &step(RolloutCommand::Pause { target: 3 })),
                Response::Done
            );
            assert_eq!(st.active_rollout().map(|r| r.status), Some(Status::Paused));
            assert!(
                matches!(
                    st.apply(
                        6,
                        &step(RolloutCommand::Promote {
                            target: 3,
                            stage: 0,
                            note: String::new()
                        })
                    ),
                    Response::Rejected(_)
                ),
                "a paused rollout is not promoted"
            );
            assert_eq!(
                st.apply(7, &step(RolloutCommand::Resume { target: 3 })),
                Response::Done
            );
            assert_eq!(
                st.active_rollout().map(|r| r.stage_started_at_ms),
                Some(500)
            );
            assert_eq!(
                st.apply(8, &step(RolloutCommand::Abort { target: 3 })),
                Response::Done
            );
            let r = st.rollout.as_ref().expect("rollout");
            assert_eq!(r.status, Status::Aborted);
            assert_eq!(st.config_version, 8);
            assert!(backend(&st.config).contains("127.0.0.1:1"));
        }

        #[test]
        fn the_rollout_survives_a_snapshot_round_trip() {
            let st = started();
            let json = serde_json::to_vec(&st).expect("encode");
            let back: ClusterState = serde_json::from_slice(&json).expect("decode");
            assert_eq!(back, st);
        }

        #[test]
        fn a_start_that_does_not_compile_or_changes_nothing_starts_nothing() {
            let mut st = ClusterState::default();
            st.apply(
                2,
                &Request::Apply {
                    document: doc("127.0.0.1:1"),
                    prune: false,
                    validated_at: None,
                },
            );
            let same = rollout(
                RolloutCommand::Start {
                    document: Box::new(doc("127.0.0.1:1")),
                    prune: false,
                    plan: plan(),
                },
                1,
            );
            assert!(matches!(
                st.apply(3, &same),
                Response::Applied { version: 2, .. }
            ));
            assert!(st.rollout.is_none());
            let bad = rollout(
                RolloutCommand::Start {
                    document: Box::new(
                        parse_document(
                            "http:\n  routers:\n    x: { rule: \"Host(`b`)\", service: missing }\n",
                        )
                        .expect("parses"),
                    ),
                    prune: false,
                    plan: plan(),
                },
                1,
            );
            assert!(matches!(
                st.preview(&bad),
                Response::Rejected(Rejection::Invalid(_))
            ));
            assert!(matches!(
                st.apply(4, &bad),
                Response::Rejected(Rejection::Invalid(_))
            ));
            assert!(st.rollout.is_none());
        }
    }
}
