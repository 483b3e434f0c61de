//! The state every service of a control node shares ([`Shared`]): Raft, the applied state, the
//! peer channel pool, metrics, the proxy registry, and the questions asked of them (who leads,
//! am I ready, what is each member's status). Kept apart from [`crate::node`], which wires a node
//! together, so services depend on this module and not on the wiring.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use switchyard_proto::admin::admin_client::AdminClient;
use switchyard_proto::admin::{AddNodeRequest, NodeStatus};
use switchyard_store::{AppliedState, LogStore, Node, NodeId, NodeInfo, Raft};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::errors::ApiError;
use crate::metrics::Metrics;
use crate::options::NodeOptions;
use crate::raft_net::ChannelPool;
use crate::stream::{History, Registry};

/// Everything the services of a node share.
pub struct Shared {
    pub id: NodeId,
    pub opts: NodeOptions,
    pub raft: Raft,
    pub applied: watch::Receiver<AppliedState>,
    pub committed: Arc<AtomicU64>,
    pub log: LogStore,
    pub pool: ChannelPool,
    pub metrics: Metrics,
    /// Where documents are parsed and configs validated: off the runtime threads, bounded.
    pub cpu: crate::offload::CpuPool,
    /// Config writes on this node (the leader) go through Raft in batches.
    pub proposer: crate::proposer::Proposer,
    /// Proxies attached to this node's config stream.
    pub proxies: Registry,
    /// Recent config versions, for deltas to reconnecting proxies.
    pub history: History,
    /// Recent Raft activity, for the leader watchdog (shared with the Raft network).
    pub election_clock: Arc<crate::raft_net::watchdog::ElectionClock>,
    /// Secure mode: the cluster CA and this node's certificate on the peer port, once known.
    pub peer_identity: watch::Sender<Option<Arc<crate::peer_tls::PeerIdentity>>>,
    /// `(term, last log index)` when this node started with its own committed vote: openraft
    /// restores it as leader of that term at once, with the commit index it last persisted,
    /// which may be older than writes it acknowledged before it stopped. Consistent reads in
    /// that term wait until the log it restarted with is applied (see `AdminService::linearize`).
    pub restored_leadership: Option<(u64, u64)>,
    /// How far the leader got, as a follower last asked it (for readiness).
    pub leader_progress: crate::catch_up::LeaderProgress,
    /// The tracer (`--tracing.*`), when tracing is on.
    pub tracer: Option<Arc<switchyard_otel::Tracer>>,
}

/// Where a request that must run on the leader goes.
pub enum Target {
    Local,
    Remote(AdminClient<Channel>),
}

impl Shared {
    pub fn raft_metrics(&self) -> openraft::RaftMetrics<NodeId, Node> {
        self.raft.metrics().borrow().clone()
    }

    /// The admin client for a peer address (forwarding uses the peer port, which also serves Admin).
    pub fn admin_client(&self, peer_addr: &str) -> Result<AdminClient<Channel>, ApiError> {
        let ch = self
            .pool
            .get(peer_addr)
            .map_err(|e| ApiError::Unavailable(format!("peer {peer_addr}: {e}")))?;
        Ok(AdminClient::new(ch)
            .max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES))
    }

    /// Waits (until `deadline`) for a known leader and says where to send leader-only work.
    pub async fn leader_target(&self, deadline: Instant) -> Result<Target, ApiError> {
        let mut rx = self.raft.metrics();
        loop {
            let found = {
                let m = rx.borrow_and_update();
                match m.current_leader {
                    Some(l) if l == self.id => Some(Ok(Target::Local)),
                    Some(l) => m
                        .membership_config
                        .membership()
                        .get_node(&l)
                        .map(|n| self.admin_client(&n.peer_addr).map(Target::Remote)),
                    None => None,
                }
            };
            if let Some(t) = found {
                return t;
            }
            match tokio::time::timeout_at(deadline.into(), rx.changed()).await {
                Err(_) => return Err(ApiError::NoLeader(self.opts.write_timeout)),
                Ok(Err(_)) => return Err(ApiError::Unavailable("node is shutting down".into())),
                Ok(Ok(())) => {}
            }
        }
    }

    pub(crate) fn role_of(
        &self,
        m: &openraft::RaftMetrics<NodeId, Node>,
        id: NodeId,
    ) -> &'static str {
        let membership = m.membership_config.membership();
        if membership.voter_ids().any(|v| v == id) {
            "voter"
        } else if membership.learner_ids().any(|v| v == id) {
            "learner"
        } else {
            "none"
        }
    }

    /// This node's own status, as `cluster status` shows it.
    pub fn self_status(&self) -> NodeStatus {
        let m = self.raft_metrics();
        let applied = self.applied.borrow().clone();
        NodeStatus {
            id: self.id,
            api_addr: self.opts.advertised_api().to_string(),
            peer_addr: self.opts.advertised_peer().to_string(),
            http_addr: self.opts.http_addr.clone(),
            region: self.opts.region.clone(),
            zone: self.opts.zone.clone(),
            role: self.role_of(&m, self.id).to_string(),
            leader: m.current_leader == Some(self.id),
            term: m.current_term,
            applied_index: applied.applied_index(),
            config_version: applied.state.config_version,
            reachable: true,
            error: String::new(),
            state: state_name(m.state).to_string(),
        }
    }

    /// Status of every member (and directory entry), probing the others over the peer port.
    pub async fn cluster_nodes(&self) -> Vec<NodeStatus> {
        let m = self.raft_metrics();
        let directory = self.applied.borrow().state.nodes.clone();
        let mut members: BTreeMap<NodeId, String> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.peer_addr.clone()))
            .collect();
        for (id, info) in &directory {
            members.entry(*id).or_insert_with(|| info.peer_addr.clone());
        }
        let probes = members.into_iter().map(|(id, peer)| {
            let role = self.role_of(&m, id);
            let info = directory.get(&id).cloned().unwrap_or_default();
            async move {
                if id == self.id {
                    return self.self_status();
                }
                let mut st = match self.probe(&peer).await {
                    Ok(st) => st,
                    Err(e) => NodeStatus {
                        id,
                        api_addr: info.api_addr.clone(),
                        peer_addr: peer.clone(),
                        http_addr: info.http_addr.clone(),
                        region: info.region.clone(),
                        zone: info.zone.clone(),
                        reachable: false,
                        error: e,
                        state: "Unknown".into(),
                        ..Default::default()
                    },
                };
                // Membership as the answering node sees it is the reference.
                st.role = role.to_string();
                st.leader = m.current_leader == Some(id);
                st
            }
        });
        futures::future::join_all(probes).await
    }

    pub(crate) async fn probe(&self, peer: &str) -> Result<NodeStatus, String> {
        let ch = self.pool.get(peer).map_err(|e| e.to_string())?;
        let mut client = switchyard_proto::raft::raft_peer_client::RaftPeerClient::new(ch);
        let mut req = tonic::Request::new(switchyard_proto::raft::StatusRequest {});
        req.set_timeout(Duration::from_millis(1000));
        match tokio::time::timeout(Duration::from_millis(1500), client.status(req)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(s.message().to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// `/readyz`: a member of a cluster with a known leader, with everything committed applied.
    pub fn readiness(&self) -> Result<(), String> {
        let m = self.raft_metrics();
        if self.role_of(&m, self.id) == "none" {
            return Err("not a member of a cluster yet".into());
        }
        if m.current_leader.is_none() {
            return Err("no known leader".into());
        }
        if m.current_leader == Some(self.id) {
            // A leader restarted with a stale term believes it leads until it hears otherwise:
            // only a leader a quorum acknowledged recently is ready.
            let fresh = self.opts.raft.election_max.as_millis() as u64;
            match m.millis_since_quorum_ack {
                Some(ms) if ms <= fresh => {}
                _ => return Err("leader without a recent quorum acknowledgement".into()),
            }
        }
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        let committed = self.committed.load(Ordering::Relaxed);
        if applied < committed {
            return Err(format!("catching up: applied {applied} of {committed}"));
        }
        match m.current_leader {
            Some(l) if l != self.id => match self.leader_progress.lag(l, applied) {
                Some(why) => Err(why),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Sets the gauges that are read from Raft's state (called before each scrape).
    pub fn refresh_gauges(&self) {
        let m = self.raft_metrics();
        let g = &self.metrics;
        g.term.set(m.current_term as i64);
        g.leader_id.set(m.current_leader.unwrap_or(0) as i64);
        g.is_leader
            .set(i64::from(m.current_leader == Some(self.id)));
        g.commit_index
            .set(self.committed.load(Ordering::Relaxed) as i64);
        g.applied_index
            .set(m.last_applied.map(|l| l.index).unwrap_or(0) as i64);
        g.last_log_index.set(m.last_log_index.unwrap_or(0) as i64);
        g.config_version
            .set(self.applied.borrow().state.config_version as i64);
        g.disk_bytes.set(self.log.size_on_disk() as i64);
        g.proxies.set(self.proxies.len() as i64);
        g.acme.refresh(&self.applied.borrow().state);
    }

    /// The names in this node's certificates (hosts of its API and peer addresses).
    pub fn cert_names(&self) -> Vec<String> {
        [
            self.opts.advertised_api(),
            self.opts.advertised_peer(),
            &self.opts.api_addr,
            &self.opts.peer_addr,
        ]
        .iter()
        .map(|a| host_of(a))
        .filter(|h| !h.is_empty() && h != "0.0.0.0" && h != "::")
        .collect()
    }

    pub(crate) fn my_info(&self) -> NodeInfo {
        NodeInfo {
            api_addr: self.opts.advertised_api().to_string(),
            peer_addr: self.opts.advertised_peer().to_string(),
            http_addr: self.opts.http_addr.clone(),
            region: self.opts.region.clone(),
            zone: self.opts.zone.clone(),
        }
    }

    pub(crate) fn add_request(&self) -> AddNodeRequest {
        let i = self.my_info();
        AddNodeRequest {
            node_id: self.id,
            api_addr: i.api_addr,
            peer_addr: i.peer_addr,
            http_addr: i.http_addr,
            region: i.region,
            zone: i.zone,
        }
    }
}

pub fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

pub(crate) fn host_of(addr: &str) -> String {
    let host = match addr.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => addr,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}
