//! The `RaftPeer` service: decodes openraft messages and hands them to the local Raft.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use switchyard_proto::admin::NodeStatus;
use switchyard_proto::raft::raft_peer_server::RaftPeer;
use switchyard_proto::raft::{RaftReply, RaftRequest, StatusRequest};
use tonic::{Request, Response, Status};

use crate::shared::Shared;

pub struct PeerService {
    shared: Arc<Shared>,
}

impl PeerService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftRequest>) -> Result<T, Status> {
    serde_json::from_slice(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("malformed raft message: {e}")))
}

fn encode<T: Serialize, E: Serialize>(r: Result<T, E>) -> Result<Response<RaftReply>, Status> {
    let reply = match r {
        Ok(v) => RaftReply {
            data: serde_json::to_vec(&v).map_err(|e| Status::internal(e.to_string()))?,
            error: Vec::new(),
        },
        Err(e) => RaftReply {
            data: Vec::new(),
            error: serde_json::to_vec(&e).map_err(|e| Status::internal(e.to_string()))?,
        },
    };
    Ok(Response::new(reply))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        self.shared.metrics.append_interval.observe();
        let rpc = decode(req)?;
        let r = self.shared.raft.append_entries(rpc).await;
        // Contact with a current leader (a stale one is answered with our higher vote).
        if matches!(&r, Ok(resp) if !matches!(resp, openraft::raft::AppendEntriesResponse::HigherVote(_)))
        {
            self.shared.election_clock.contact();
        }
        encode(r)
    }

    async fn vote(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = decode(req)?;
        let r = self.shared.raft.vote(rpc).await;
        if matches!(&r, Ok(resp) if resp.vote_granted) {
            self.shared.election_clock.voted();
        }
        encode(r)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let rpc = decode(req)?;
        encode(self.shared.raft.install_snapshot(rpc).await)
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<NodeStatus>, Status> {
        Ok(Response::new(self.shared.self_status()))
    }
}
