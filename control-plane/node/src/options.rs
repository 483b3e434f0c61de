//! What a control node is started with (the `switchyard server` flags, parsed by the binary).

use std::path::PathBuf;
use std::time::Duration;

use switchyard_store::NodeId;

#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    /// Admin API and config stream (gRPC).
    pub api_addr: String,
    /// Raft between control nodes (gRPC).
    pub peer_addr: String,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http_addr: String,
    /// Address other nodes and clients should use for the API, when `api_addr` binds a wildcard.
    pub advertise_api_addr: Option<String>,
    /// Address other nodes should use for Raft, when `peer_addr` binds a wildcard.
    pub advertise_peer_addr: Option<String>,
    /// Members of a new cluster (id → peer address); ignored when the node has data.
    pub initial_cluster: Vec<(NodeId, String)>,
    /// Admin endpoint of a running cluster to join as a learner; ignored when the node has data.
    pub join: Option<String>,
    pub region: String,
    pub zone: String,
    pub raft: RaftTimings,
    /// A snapshot is taken after this many log entries since the last one.
    pub snapshot_threshold: u64,
    /// Log entries kept behind a snapshot (for followers slightly behind).
    pub snapshot_keep_logs: u64,
    /// A write not committed within this time fails with UNAVAILABLE.
    pub write_timeout: Duration,
    /// At most this many config writes go into one Raft entry under load (1: one entry each).
    pub max_write_batch: usize,
    /// Plaintext gRPC without authentication (development only).
    pub insecure: bool,
    /// Lifetime of the proxy client certificates this node issues.
    pub proxy_cert_ttl: std::time::Duration,
    /// How often the leader rotates the cluster's TLS session-ticket keys (zero: disabled).
    pub tls_ticket_rotation: Duration,
    /// With `join`: the cluster CA certificate (PEM file) to verify the endpoint with.
    pub ca_cert: Option<PathBuf>,
    /// With `join`: an admin token for the `AddNode` call.
    pub token: Option<String>,
    /// OpenTelemetry tracing of admin calls, Raft commits and the config stream (`None`: off).
    pub tracing: Option<switchyard_otel::TracingOptions>,
    /// OTLP metrics export of the `/metrics` series (`None`: off).
    pub otlp_metrics: Option<switchyard_otel::MetricsOptions>,
}

/// Raft timers. The defaults suit a LAN; a WAN cluster wants them several times longer (the election
/// timeout should be well above the round trip between regions, the heartbeat well below it).
#[derive(Debug, Clone, Copy)]
pub struct RaftTimings {
    pub heartbeat: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
}

impl Default for RaftTimings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(300),
            election_max: Duration::from_millis(600),
        }
    }
}

impl NodeOptions {
    pub fn advertised_api(&self) -> &str {
        self.advertise_api_addr.as_deref().unwrap_or(&self.api_addr)
    }

    pub fn advertised_peer(&self) -> &str {
        self.advertise_peer_addr
            .as_deref()
            .unwrap_or(&self.peer_addr)
    }
}

/// Parses `1=127.0.0.1:7001,2=127.0.0.1:7002`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(NodeId, String)>, String> {
    let mut out: Vec<(NodeId, String)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("initial cluster member {part:?}: expected ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("initial cluster member {part:?}: node id must be a number"))?;
        if id == 0 {
            return Err(format!(
                "initial cluster member {part:?}: node id 0 is reserved"
            ));
        }
        let addr = addr.trim();
        if addr.rsplit_once(':').is_none() {
            return Err(format!(
                "initial cluster member {part:?}: expected ID=HOST:PORT"
            ));
        }
        if out.iter().any(|(i, _)| *i == id) {
            return Err(format!("initial cluster: node id {id} appears twice"));
        }
        out.push((id, addr.to_string()));
    }
    if out.is_empty() {
        return Err("initial cluster: no members".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_initial_cluster() {
        let v = parse_initial_cluster("1=127.0.0.1:1, 2=h:2").expect("valid");
        assert_eq!(v, vec![(1, "127.0.0.1:1".into()), (2, "h:2".into())]);
        assert!(parse_initial_cluster("1=a:1,1=b:2").is_err());
        assert!(parse_initial_cluster("x=a:1").is_err());
        assert!(parse_initial_cluster("1").is_err());
        assert!(parse_initial_cluster("").is_err());
        assert!(parse_initial_cluster("0=a:1").is_err());
    }
}
