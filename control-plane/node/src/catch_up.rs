//! How far this node is behind its leader, for `/readyz`.
//!
//! A follower only learns a commit index from the leader up to the entries it already holds, so
//! "applied everything known committed" is true of a follower that is still 10,000 entries
//! behind. [`run`] asks the leader for its applied index (the peer port's `Status`) every
//! [`PERIOD`]; the follower is caught up once it has applied what the leader had applied one
//! poll earlier (a healthy follower is never a whole period behind, so readiness does not flap
//! under a steady write load, while a lagging or restarting one is not ready until it caught up).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::shared::Shared;

/// How often a follower asks its leader how far it got.
pub const PERIOD: Duration = Duration::from_millis(250);

/// What this node knows of its leader's progress.
#[derive(Debug, Default)]
pub struct LeaderProgress {
    /// The leader (node id + 1; 0: none known) the figures below are from.
    leader: AtomicU64,
    /// The index this node must have applied to be caught up, + 1 (0: not known yet).
    target: AtomicU64,
    /// The leader's applied index at the last poll.
    last: AtomicU64,
}

impl LeaderProgress {
    /// Records that `leader` had applied `index`. Returns the new target.
    pub fn observe(&self, leader: u64, index: u64) -> u64 {
        let tag = leader + 1;
        let previous = if self.leader.swap(tag, Ordering::AcqRel) == tag {
            Some(self.last.load(Ordering::Acquire))
        } else {
            None
        };
        self.last.store(index, Ordering::Release);
        // The first figure from a leader is the target itself; afterwards the figure one poll old.
        let target = previous.unwrap_or(index).min(index);
        self.target.store(target + 1, Ordering::Release);
        target
    }

    /// Forgets the leader (none known, or it changed before it could be asked).
    pub fn clear(&self) {
        self.leader.store(0, Ordering::Release);
        self.target.store(0, Ordering::Release);
    }

    /// Why a follower of `leader` that applied `applied` is not caught up, if it is not.
    pub fn lag(&self, leader: u64, applied: u64) -> Option<String> {
        if self.leader.load(Ordering::Acquire) != leader + 1 {
            return Some(format!(
                "catching up: leader {leader}'s progress not known yet"
            ));
        }
        match self.target.load(Ordering::Acquire) {
            0 => Some(format!(
                "catching up: leader {leader}'s progress not known yet"
            )),
            t if applied < t - 1 => Some(format!(
                "catching up: applied {applied} of the leader's {}",
                t - 1
            )),
            _ => None,
        }
    }
}

/// Polls the leader's progress while this node follows one.
pub async fn run(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if *stop.borrow() {
            return;
        }
        let m = shared.raft_metrics();
        let leader = match m.current_leader {
            Some(l) if l != shared.id => l,
            _ => {
                shared.leader_progress.clear();
                continue;
            }
        };
        let Some(peer) = m
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.peer_addr.clone())
        else {
            shared.leader_progress.clear();
            continue;
        };
        match shared.probe(&peer).await {
            Ok(st) if st.leader => {
                shared.leader_progress.observe(leader, st.applied_index);
            }
            // It no longer leads (an election is under way), or it cannot be reached: keep the
            // last target; Raft's own view of the leader decides readiness meanwhile.
            Ok(_) => {}
            Err(e) => tracing::debug!(leader, error = %e, "asking the leader for its progress"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_once_applied_what_the_leader_had_one_poll_earlier() {
        let p = LeaderProgress::default();
        assert!(p.lag(1, 100).is_some(), "unknown before the first poll");
        assert_eq!(p.observe(1, 500), 500);
        assert_eq!(
            p.lag(1, 100).as_deref(),
            Some("catching up: applied 100 of the leader's 500")
        );
        assert_eq!(p.lag(1, 500), None);
        // The leader moves on: the target is the figure one poll old.
        assert_eq!(p.observe(1, 900), 500);
        assert_eq!(p.lag(1, 600), None);
        assert_eq!(p.observe(1, 950), 900);
        assert!(p.lag(1, 600).is_some());
        // Another leader: unknown until it is asked.
        assert!(p.lag(2, 10_000).is_some());
        assert_eq!(p.observe(2, 40), 40);
        assert_eq!(p.lag(2, 40), None);
        p.clear();
        assert!(p.lag(2, 40).is_some());
    }
}
