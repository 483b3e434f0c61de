//! Leader watchdog: starts an election as soon as the leader has been silent for its lease plus
//! a randomized election timeout.
//!
//! openraft 0.9 already does this on its own timer, with one quirk that dominated write
//! unavailability after a leader kill (issue 8): a node that once lost an election to a node
//! with a longer log remembers that ("greater log seen") until its *next* election, and then
//! waits another 2 × max election timeout — even when, this time, it holds the longest log and
//! should win at once. Measured over 20 leader kills, that put p99 write unavailability at ~4 s
//! with 300–600 ms timeouts. Triggering the election ourselves ([`openraft::Raft::trigger`])
//! clears that memory. Everything else stays openraft's: the vote rules (log up to date, leader
//! lease on the voters), the candidate's retries, and the penalty for a node that has just
//! seen a longer log in *this* election.
//!
//! The leader's silence is measured from the last AppendEntries (heartbeat or entries) this node
//! accepted, and an election's progress from the votes it sent and granted and the logs the
//! answers showed ([`ElectionClock`], fed by [`super::PeerService`] and [`super::Network`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use rand::Rng;
use tokio::sync::watch;

use crate::shared::Shared;

/// What the watchdog knows about this node's recent Raft activity (milliseconds since `epoch`).
#[derive(Debug)]
pub struct ElectionClock {
    epoch: Instant,
    /// Last AppendEntries accepted from a leader.
    contact_ms: AtomicU64,
    /// Last vote request this node sent (it campaigned) or granted.
    vote_ms: AtomicU64,
    /// Last time a vote response showed a log longer than ours.
    greater_log_ms: AtomicU64,
}

impl Default for ElectionClock {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            contact_ms: AtomicU64::new(0),
            vote_ms: AtomicU64::new(0),
            greater_log_ms: AtomicU64::new(0),
        }
    }
}

impl ElectionClock {
    /// Milliseconds since `epoch`, plus one (0 stands for "never").
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// A leader's AppendEntries was accepted.
    pub fn contact(&self) {
        self.contact_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// This node campaigned (sent a vote request) or granted a vote.
    pub fn voted(&self) {
        self.vote_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// A vote response showed a longer log than this node's.
    pub fn greater_log(&self) {
        self.greater_log_ms
            .fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// The clock as the watchdog judges it.
    pub fn view(&self) -> ClockView {
        let now = self.now_ms();
        let (contact, vote, greater) = (
            self.contact_ms.load(Ordering::Relaxed),
            self.vote_ms.load(Ordering::Relaxed),
            self.greater_log_ms.load(Ordering::Relaxed),
        );
        ClockView {
            since_contact: Duration::from_millis(now.saturating_sub(contact)),
            since_activity: Duration::from_millis(now.saturating_sub(contact.max(vote))),
            greater_log_this_election: greater > 0 && greater >= vote,
        }
    }
}

/// [`ElectionClock`] at one instant.
#[derive(Debug, Clone, Copy)]
pub struct ClockView {
    /// Since the last AppendEntries from a leader.
    pub since_contact: Duration,
    /// Since the last AppendEntries, vote request sent or vote granted.
    pub since_activity: Duration,
    /// A vote response of this node's latest campaign showed a longer log.
    pub greater_log_this_election: bool,
}

/// The Raft state the watchdog judges.
#[derive(Debug, Clone, Copy)]
pub struct RaftView {
    pub state: ServerState,
    /// This node's vote is committed (it follows an established leader).
    pub vote_committed: bool,
    /// A leader other than this node is known.
    pub other_leader: bool,
    pub is_voter: bool,
    pub voters: usize,
}

/// Whether to start an election now (the same schedule as openraft's own timer, without its
/// stale "longer log seen" memory):
/// - a voter following an established leader that has been silent for `lease + timeout`, and that
///   has not campaigned itself for `timeout`;
/// - a voter in an election without a winner (candidate, or its vote not committed) that has
///   not campaigned, voted or heard a leader for `timeout`, unless its latest campaign showed a
///   longer log than its own (then openraft's longer back-off is right: that node should win).
pub fn should_elect(r: RaftView, c: ClockView, lease: Duration, timeout: Duration) -> bool {
    if !r.is_voter || r.voters < 2 || r.state == ServerState::Leader {
        return false;
    }
    if r.state == ServerState::Follower && r.vote_committed && r.other_leader {
        // Once per timeout at most: until Raft has processed a campaign its metrics still show
        // the old leader, and campaigning again at every check (every half heartbeat) would
        // bump the term faster than a WAN round trip answers the vote requests (each new term
        // discards the answers of the last), and queue a flushed vote per term behind a busy
        // disk (the lab's election storms).
        return c.since_contact > lease + timeout && c.since_activity > timeout;
    }
    if !r.vote_committed && matches!(r.state, ServerState::Candidate | ServerState::Follower) {
        return c.since_activity > timeout && !c.greater_log_this_election;
    }
    false
}

/// Runs until `stop`: checks every heartbeat interval.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let t = shared.opts.raft;
    let draw = || {
        let (min, max) = (
            t.election_min.as_millis() as u64,
            t.election_max.as_millis() as u64,
        );
        Duration::from_millis(rand::rng().random_range(min..max.max(min + 1)))
    };
    let mut timeout = draw();
    // Silence is counted from now, not from the process start: the replay of the log before
    // Raft starts is no silence of the leader, and a restarted node must hear from it first.
    shared.election_clock.contact();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(t.heartbeat / 2) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let m = shared.raft_metrics();
        let membership = m.membership_config.membership();
        let r = RaftView {
            state: m.state,
            vote_committed: m.vote.is_committed(),
            other_leader: m.current_leader.is_some_and(|l| l != shared.id),
            is_voter: membership.voter_ids().any(|v| v == shared.id),
            voters: membership.voter_ids().count(),
        };
        let c = shared.election_clock.view();
        if should_elect(r, c, t.election_max, timeout) {
            tracing::info!(
                leader = ?m.current_leader,
                term = m.current_term,
                silent_ms = c.since_contact.as_millis() as u64,
                "starting an election (leader silent, or an election without a winner)"
            );
            // Counts as activity: the next check waits a full timeout.
            shared.election_clock.voted();
            if let Err(e) = shared.raft.trigger().elect().await {
                tracing::warn!(error = %e, "could not start an election");
            }
            timeout = draw();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn raft(state: ServerState, committed: bool, other_leader: bool) -> RaftView {
        RaftView {
            state,
            vote_committed: committed,
            other_leader,
            is_voter: true,
            voters: 3,
        }
    }

    fn clock(contact: u64, activity: u64, greater: bool) -> ClockView {
        ClockView {
            since_contact: ms(contact),
            since_activity: ms(activity),
            greater_log_this_election: greater,
        }
    }

    const LEASE: Duration = Duration::from_millis(600);
    const T: Duration = Duration::from_millis(300);

    #[test]
    fn a_follower_elects_once_the_leader_is_silent_for_lease_plus_timeout() {
        let f = raft(ServerState::Follower, true, true);
        assert!(should_elect(f, clock(901, 901, false), LEASE, T));
        assert!(!should_elect(f, clock(899, 899, false), LEASE, T));
        // A longer log seen in an older election does not matter while following.
        assert!(should_elect(f, clock(901, 901, true), LEASE, T));
    }

    #[test]
    fn a_follower_campaigns_again_only_a_timeout_after_its_last_campaign() {
        // The leader has been silent for long; this node campaigned 150 ms ago (one check
        // earlier) and Raft's metrics do not show it yet.
        let f = raft(ServerState::Follower, true, true);
        assert!(!should_elect(f, clock(5000, 150, false), LEASE, T));
        assert!(!should_elect(f, clock(5000, 299, false), LEASE, T));
        assert!(should_elect(f, clock(5000, 301, false), LEASE, T));
    }

    #[test]
    fn an_election_without_a_winner_is_retried_unless_a_longer_log_was_seen() {
        let c = raft(ServerState::Candidate, false, false);
        assert!(should_elect(c, clock(2000, 301, false), LEASE, T));
        assert!(!should_elect(c, clock(2000, 299, false), LEASE, T));
        assert!(!should_elect(c, clock(2000, 5000, true), LEASE, T));
        // Rejected, then following an uncommitted vote of another candidate.
        let f = raft(ServerState::Follower, false, false);
        assert!(should_elect(f, clock(2000, 301, false), LEASE, T));
    }

    #[test]
    fn leaders_learners_and_single_voters_never_elect() {
        let mut r = raft(ServerState::Leader, true, false);
        assert!(!should_elect(r, clock(9000, 9000, false), LEASE, T));
        r = raft(ServerState::Learner, true, true);
        r.is_voter = false;
        assert!(!should_elect(r, clock(9000, 9000, false), LEASE, T));
        r = raft(ServerState::Follower, true, true);
        r.voters = 1;
        assert!(!should_elect(r, clock(9000, 9000, false), LEASE, T));
    }

    #[test]
    fn the_clock_tracks_this_election_only() {
        let c = ElectionClock::default();
        assert!(!c.view().greater_log_this_election);
        c.voted();
        c.greater_log();
        c.contact();
        let v = c.view();
        assert!(v.since_contact < ms(1000));
        assert!(v.since_activity < ms(1000));
        assert!(v.greater_log_this_election);
    }
}
