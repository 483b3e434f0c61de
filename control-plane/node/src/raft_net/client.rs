//! openraft's network: each RPC is the JSON of openraft's request in a `RaftRequest`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use switchyard_proto::raft::raft_peer_client::RaftPeerClient;
use switchyard_proto::raft::{RaftReply, RaftRequest};
use switchyard_store::{Node, NodeId, TypeConfig};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
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
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    node: Node,
    pool: ChannelPool,
    clock: Arc<ElectionClock>,
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
        let channel = self
            .pool
            .get(&self.node.peer_addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&Msg(e))))?;
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
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
        self.call("append", &rpc, &option).await
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
