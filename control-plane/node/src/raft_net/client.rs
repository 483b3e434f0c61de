//! openraft's network: each RPC is the JSON of openraft's request in a `RaftRequest`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use switchyard_proto::raft::raft_peer_client::RaftPeerClient;
use switchyard_proto::raft::{RaftReply, RaftRequest};
use switchyard_store::{Node, NodeId, TypeConfig};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use std::sync::Arc;

use super::pool::ChannelPool;
use super::watchdog::ElectionClock;

/// Creates a [`PeerClient`] per target node.
#[derive(Clone)]
pub struct Network {
    pool: ChannelPool,
    clock: Arc<ElectionClock>,
}

impl Network {
    /// `clock` learns of this node's campaigns and of longer logs the answers show.
    pub fn new(pool: ChannelPool, clock: Arc<ElectionClock>) -> Self {
        Self { pool, clock }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        PeerClient {
            target,
            node: node.clone(),
            pool: self.pool.clone(),
            clock: self.clock.clone(),
            append_limit: AppendLimit::default(),
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    node: Node,
    pool: ChannelPool,
    clock: Arc<ElectionClock>,
    append_limit: AppendLimit,
}

/// How many entries one AppendEntries to this peer may carry.
///
/// openraft gives every AppendEntries the heartbeat interval (100 ms by default) to complete and
/// then retries the same range. A leader that does not know how far a follower's log matches (every
/// leader after a whole-cluster restart) probes from the middle of its log with up to 300 entries
/// per request; each entry can be a batch of hundreds of writes. Such a request did not fit in
/// 100 ms on a loaded machine, was retried forever, and the followers, hearing no leader, held
/// elections for minutes (the restart benchmark at 10k writes: 376 s to ready). So requests are cut
/// to at most [`MAX_APPEND_BYTES`] of JSON, and a request that timed out halves this peer's entry
/// limit (openraft is told through [`PayloadTooLarge`]'s hint and resends a shorter range); every
/// request that completes in time doubles it back.
#[derive(Debug)]
struct AppendLimit {
    /// At most this many entries per request.
    entries: u64,
    /// The entry count of the request in flight; still set when the next request starts means
    /// openraft dropped it at its deadline.
    in_flight: Option<u64>,
}

impl Default for AppendLimit {
    fn default() -> Self {
        Self {
            entries: u64::MAX,
            in_flight: None,
        }
    }
}

/// The JSON size above which an AppendEntries with more than one entry is split.
pub const MAX_APPEND_BYTES: usize = 256 * 1024;

impl AppendLimit {
    /// The entry hint to give openraft instead of sending `entries` entries of `bytes` bytes
    /// (`None` for bytes not yet known), or `None` to send them.
    fn refuse(&mut self, entries: u64, bytes: Option<usize>) -> Option<u64> {
        if let Some(timed_out) = self.in_flight.take() {
            if timed_out > 1 {
                self.entries = (timed_out / 2).max(1);
            }
        }
        if entries <= 1 {
            return None;
        }
        if entries > self.entries {
            return Some(self.entries);
        }
        match bytes {
            Some(b) if b > MAX_APPEND_BYTES => {
                Some((entries * MAX_APPEND_BYTES as u64 / b as u64).max(1))
            }
            _ => None,
        }
    }

    fn started(&mut self, entries: u64) {
        self.in_flight = Some(entries);
    }

    fn finished(&mut self) {
        if self.in_flight.take().is_some() {
            self.entries = self.entries.saturating_mul(2);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

type RpcErr<E> = RPCError<NodeId, Node, RaftError<NodeId, E>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        rpc: &'static str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        // Per call: a secure node gets its peer TLS once it knows the cluster CA.
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.send(rpc, data, option).await
    }

    /// Sends `data`, the JSON of an openraft request, as `rpc`.
    async fn send<Resp, E>(
        &self,
        rpc: &'static str,
        data: Vec<u8>,
        option: &RPCOption,
    ) -> Result<Resp, RpcErr<E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self
            .pool
            .get(&self.node.peer_addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&Msg(e))))?;
        let mut request = tonic::Request::new(RaftRequest { data });
        request.set_timeout(option.hard_ttl());
        let mut client = RaftPeerClient::new(channel)
            .max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES);
        let result = match rpc {
            "append" => client.append_entries(request).await,
            "vote" => client.vote(request).await,
            _ => client.install_snapshot(request).await,
        };
        let reply: RaftReply = match result {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let e = Msg(format!(
                    "{rpc} to node {} ({}): {status}",
                    self.target, self.node
                ));
                return Err(match status.code() {
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                        RPCError::Unreachable(Unreachable::new(&e))
                    }
                    _ => RPCError::Network(NetworkError::new(&e)),
                });
            }
        };
        if !reply.error.is_empty() {
            let err: RaftError<NodeId, E> = serde_json::from_slice(&reply.error)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            return Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                err,
            )));
        }
        serde_json::from_slice(&reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        let entries = rpc.entries.len() as u64;
        if let Some(hint) = self.append_limit.refuse(entries, None) {
            return Err(PayloadTooLarge::new_entries_hint(hint).into());
        }
        let data =
            serde_json::to_vec(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if let Some(hint) = self.append_limit.refuse(entries, Some(data.len())) {
            return Err(PayloadTooLarge::new_entries_hint(hint).into());
        }
        self.append_limit.started(entries);
        let r = self.send("append", data, &option).await;
        self.append_limit.finished();
        r
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.clock.voted();
        let r: Result<VoteResponse<NodeId>, _> = self.call("vote", &rpc, &option).await;
        if let Ok(resp) = &r {
            if resp.last_log_id > rpc.last_log_id {
                self.clock.greater_log();
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::{AppendLimit, MAX_APPEND_BYTES};

    #[test]
    fn heartbeats_and_single_entries_always_go() {
        let mut l = AppendLimit::default();
        assert_eq!(l.refuse(0, Some(10 * MAX_APPEND_BYTES)), None);
        assert_eq!(l.refuse(1, Some(10 * MAX_APPEND_BYTES)), None);
    }

    #[test]
    fn a_large_request_is_cut_to_the_byte_budget() {
        let mut l = AppendLimit::default();
        assert_eq!(l.refuse(300, None), None);
        assert_eq!(l.refuse(300, Some(4 * MAX_APPEND_BYTES)), Some(75));
        assert_eq!(l.refuse(75, Some(MAX_APPEND_BYTES)), None);
    }

    #[test]
    fn a_timed_out_request_halves_the_limit_and_successes_restore_it() {
        let mut l = AppendLimit::default();
        assert_eq!(l.refuse(200, Some(1000)), None);
        l.started(200);
        // openraft dropped the request at its deadline: `finished` never ran.
        assert_eq!(l.refuse(200, None), Some(100));
        assert_eq!(l.refuse(100, Some(1000)), None);
        l.started(100);
        l.finished();
        assert_eq!(l.refuse(200, None), None);
        // A dropped single-entry request cannot be cut further and changes nothing.
        l.started(1);
        assert_eq!(l.refuse(150, None), None);
    }
}
