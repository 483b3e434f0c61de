//! Runs the ACME manager against this node: its applied state, its Raft leadership, the write
//! path (commands go through `raft.client_write` like admin writes) and the cluster-wide proxy
//! list (`ListProxies` fan-out) to know when every proxy holds the challenge answers.

use std::sync::Arc;

use futures::future::BoxFuture;
use switchyard_acme::{Cluster, Manager};
use switchyard_store::{AcmeCommand, ClusterState, Request};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::AdminService;
use crate::shared::Shared;

struct NodeCluster(Arc<Shared>);

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Cluster for NodeCluster {
    fn state(&self) -> Arc<ClusterState> {
        self.0.applied.borrow().state.clone()
    }

    fn is_leader(&self) -> bool {
        self.0.raft.metrics().borrow().current_leader == Some(self.0.id)
    }

    fn linearize(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let timeout = self.0.opts.write_timeout;
            match tokio::time::timeout(timeout, self.0.raft.ensure_linearizable()).await {
                Err(_) => Err("no quorum".to_string()),
                Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
            }
        })
    }

    fn propose(&self, cmd: AcmeCommand) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let timeout = self.0.opts.write_timeout;
            let req = Request::Acme {
                cmd,
                at: now_unix(),
            };
            let resp = tokio::time::timeout(timeout, self.0.raft.client_write(req))
                .await
                .map_err(|_| format!("not committed within {timeout:?}"))?
                .map_err(|e| e.to_string())?;
            let index = resp.log_id.index;
            let mut rx = self.0.applied.clone();
            tokio::time::timeout(timeout, rx.wait_for(|s| s.applied_index() >= index))
                .await
                .map_err(|_| "not applied locally in time".to_string())?
                .map_err(|_| "node is shutting down".to_string())?;
            Ok(())
        })
    }

    fn proxies_have(&self, version: u64) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            let svc = AdminService::new(self.0.clone());
            let list = svc.cluster_proxies(self.0.proxies.list()).await;
            Ok(list.proxies.iter().all(|p| p.applied_version >= version))
        })
    }
}

/// Starts the ACME manager of this node (it acts only while the node leads).
pub fn spawn(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let metrics = shared.metrics.acme.clone();
    let manager = Manager::new(Arc::new(NodeCluster(shared)), metrics);
    tokio::spawn(manager.run(stop))
}
