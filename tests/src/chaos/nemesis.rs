//! The nemesis: faults injected into a running cluster, one at a time, each followed by a
//! check that the cluster recovers (a leader, every node ready) within a deadline.
//!
//! Faults: SIGKILL of the leader, of a follower, of two nodes (no quorum) or of all three (every
//! acknowledged write must survive from disk), a graceful restart, the leader or a follower
//! isolated by the relays, and a one-way cut (the leader can no longer reach the others, they
//! can still reach it). A fault lasts a random time; how long it lasts is the experiment, not a
//! synchronisation, so it is a plain sleep. Isolating the leader waits until the others elected
//! a new one, which also proves that the cut took effect.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;

use super::relays::Relays;
use crate::Cluster;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillLeader,
    KillFollower,
    KillTwo,
    KillAll,
    RestartOne,
    IsolateLeader,
    IsolateFollower,
    LeaderCannotSend,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 8] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::KillTwo,
        Fault::KillAll,
        Fault::RestartOne,
        Fault::IsolateLeader,
        Fault::IsolateFollower,
        Fault::LeaderCannotSend,
    ];
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What happened to one fault.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub fault: Fault,
    /// When it started and ended, on the clock of [`Nemesis::clock`] (nanoseconds; 0 without).
    pub started: u64,
    pub ended: u64,
    /// The nodes it hit.
    pub nodes: Vec<u64>,
    /// How long the fault lasted.
    pub held: Duration,
    /// From the end of the fault until a leader was back and every node ready.
    pub recovered_in: Duration,
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {:?}: held {:.1?}, recovered in {:.1?}",
            self.fault, self.nodes, self.held, self.recovered_in
        )
    }
}

/// How long the cluster may take to recover after a fault (loaded CI machine).
pub const RECOVERY: Duration = Duration::from_secs(60);

/// Injects faults into `cluster` through `relays`.
pub struct Nemesis<'a> {
    pub cluster: &'a mut Cluster,
    pub relays: &'a Relays,
    pub rng: StdRng,
    pub log: Vec<FaultRecord>,
    /// The history whose clock fault times are read on (so a violation can be lined up with
    /// the faults around it).
    pub clock: Option<std::sync::Arc<super::history::History>>,
}

impl<'a> Nemesis<'a> {
    /// A nemesis for `cluster` (whose Raft peers talk through `relays`).
    pub fn new(cluster: &'a mut Cluster, relays: &'a Relays, rng: StdRng) -> Self {
        Nemesis {
            cluster,
            relays,
            rng,
            log: Vec::new(),
            clock: None,
        }
    }

    fn hold(&mut self, min_ms: u64, max_ms: u64) -> Duration {
        let d = Duration::from_millis(self.rng.random_range(min_ms..=max_ms));
        thread::sleep(d);
        d
    }

    fn leader(&self) -> u64 {
        self.cluster.wait_for_leader(RECOVERY)
    }

    fn follower(&mut self, leader: u64) -> u64 {
        let others: Vec<u64> = self
            .cluster
            .ids()
            .into_iter()
            .filter(|&i| i != leader)
            .collect();
        others[self.rng.random_range(0..others.len())]
    }

    fn kill(&mut self, ids: &[u64]) {
        for &id in ids {
            self.cluster.node_mut(id).kill();
        }
    }

    fn start(&mut self, ids: &[u64]) {
        for &id in ids {
            let node = self.cluster.node_mut(id);
            node.respawn();
            let pid = node.pid().expect("a respawned node has a process");
            self.relays.set_pid(pid, id);
        }
        // Not `wait_healthy` (20 s): a restart may take longer on a loaded machine, and the
        // checks here are about safety; liveness is bounded by RECOVERY.
        for &id in ids {
            let node = self.cluster.node_mut(id);
            crate::wait_until(
                RECOVERY,
                &format!("node {id} /healthz after a restart"),
                || {
                    if !node.is_running() {
                        return Err("not running".to_string());
                    }
                    match node.http("/healthz") {
                        Ok(r) if r.status == 200 => Ok(()),
                        Ok(r) => Err(format!("{} {}", r.status, r.body.trim())),
                        Err(e) => Err(e),
                    }
                },
            );
        }
    }

    /// Waits until a node other than `old` leads (the others noticed the fault).
    fn wait_new_leader(&self, old: u64) -> u64 {
        crate::wait_until(RECOVERY, &format!("a leader other than {old}"), || {
            let views = self.cluster.leader_views();
            views
                .iter()
                .filter(|v| v.id != old && v.error.is_none() && v.is_leader)
                .map(|v| v.id)
                .next()
                .ok_or_else(|| format!("{views:?}"))
        })
    }

    /// Injects `fault`, ends it, and waits for the cluster to recover.
    pub fn run(&mut self, fault: Fault) -> FaultRecord {
        let now = |n: &Self| n.clock.as_ref().map(|h| h.clock()).unwrap_or(0);
        let leader = self.leader();
        let started = now(self);
        let ids = self.cluster.ids();
        let (nodes, held) = match fault {
            Fault::KillLeader => {
                self.kill(&[leader]);
                let held = self.hold(500, 3000);
                self.start(&[leader]);
                (vec![leader], held)
            }
            Fault::KillFollower => {
                let f = self.follower(leader);
                self.kill(&[f]);
                let held = self.hold(500, 3000);
                self.start(&[f]);
                (vec![f], held)
            }
            Fault::KillTwo => {
                let f = self.follower(leader);
                let pair = if self.rng.random_bool(0.5) {
                    vec![leader, f]
                } else {
                    ids.iter().copied().filter(|&i| i != leader).collect()
                };
                self.kill(&pair);
                let held = self.hold(500, 2000);
                self.start(&pair);
                (pair, held)
            }
            Fault::KillAll => {
                self.kill(&ids);
                let held = self.hold(200, 1000);
                self.start(&ids);
                (ids.clone(), held)
            }
            Fault::RestartOne => {
                let id = ids[self.rng.random_range(0..ids.len())];
                let started = Instant::now();
                self.cluster.node_mut(id).stop();
                self.start(&[id]);
                (vec![id], started.elapsed())
            }
            Fault::IsolateLeader => {
                let started = Instant::now();
                self.relays.isolate(leader, &ids);
                self.wait_new_leader(leader);
                self.hold(200, 2000);
                self.relays.heal();
                (vec![leader], started.elapsed())
            }
            Fault::IsolateFollower => {
                let f = self.follower(leader);
                self.relays.isolate(f, &ids);
                let held = self.hold(1000, 5000);
                self.relays.heal();
                (vec![f], held)
            }
            Fault::LeaderCannotSend => {
                let started = Instant::now();
                for &other in ids.iter().filter(|&&i| i != leader) {
                    self.relays.cut(leader, other);
                }
                self.wait_new_leader(leader);
                self.hold(200, 2000);
                self.relays.heal();
                (vec![leader], started.elapsed())
            }
        };
        let ended = now(self);
        let recovering = Instant::now();
        self.cluster.wait_for_leader(RECOVERY);
        self.cluster.wait_ready(RECOVERY);
        let record = FaultRecord {
            fault,
            started,
            ended,
            nodes,
            held,
            recovered_in: recovering.elapsed(),
        };
        self.log.push(record.clone());
        record
    }

    /// Runs random faults until `until`, with a quiet period after each.
    pub fn run_until(&mut self, until: Instant, faults: &[Fault], quiet: (u64, u64)) {
        while Instant::now() < until {
            let fault = faults[self.rng.random_range(0..faults.len())];
            let record = self.run(fault);
            eprintln!("chaos: {record}");
            self.hold(quiet.0, quiet.1);
        }
    }

    /// Heals every link and starts every node that is not running.
    pub fn heal_all(&mut self) {
        self.relays.heal();
        let down: Vec<u64> = self
            .cluster
            .nodes
            .iter()
            .filter(|n| !n.has_process())
            .map(|n| n.id)
            .collect();
        self.start(&down);
        self.cluster.wait_for_leader(RECOVERY);
        self.cluster.wait_ready(RECOVERY);
    }
}
