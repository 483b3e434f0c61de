//! The ACME manager: orders, renews and stores certificates for the whole cluster.
//!
//! It runs on every control node and acts only while the node is the Raft leader. Every step is
//! recorded through Raft ([`switchyard_store::AcmeCommand`]) before the next one depends on it:
//! the account credentials before the account is used, the order (`OrderStarted`) before the CA
//! is asked for it, its URL once the CA created it, the challenge answers (which the config stream
//! carries to every proxy) before the CA is told to validate, the certificate key before the CSR
//! is sent. A new leader therefore resumes any order in the store by its URL (or restarts it when
//! the CA no longer has it), and `OrderStarted` is refused while an order is in flight, so a
//! certificate is ordered once for the whole cluster.
//!
//! OCSP stapling ([`ocsp`]) runs in the same leader loop: responses for every stored certificate
//! that names a responder, committed as `AcmeCommand::Ocsp` and refreshed halfway through their
//! validity.
//!
//! Pure parts: [`plan`] (what is wanted, when it is due, backoff) and [`certinfo`] (what
//! `get certs` shows). The node provides the [`Cluster`] it runs against.

pub mod certinfo;
pub mod client;
pub mod dns01;
mod manager;
pub mod metrics;
pub mod ocsp;
pub mod plan;
pub mod tickets;

use std::sync::Arc;

use futures::future::BoxFuture;
use switchyard_store::{AcmeCommand, ClusterState};

pub use manager::Manager;
pub use metrics::AcmeMetrics;

/// What the manager needs from the control node it runs in.
pub trait Cluster: Send + Sync + 'static {
    /// The latest applied state of this node.
    fn state(&self) -> Arc<ClusterState>;
    /// Whether this node is the Raft leader now.
    fn is_leader(&self) -> bool;
    /// Confirms leadership with a quorum and waits until the local state machine applied
    /// everything committed before (called once per term before acting).
    fn linearize(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Commits `cmd` through Raft on this node (which must be the leader) and returns once it is
    /// applied locally.
    fn propose(&self, cmd: AcmeCommand) -> BoxFuture<'_, Result<(), String>>;
    /// Whether every proxy attached to the cluster acknowledged config `version` (or newer).
    fn proxies_have(&self, version: u64) -> BoxFuture<'_, Result<bool, String>>;
}
