//! Replicated ACME state: accounts, orders in flight and the status of every managed certificate.
//!
//! Pure: the ACME manager (`control-plane/acme`, leader only) decides and talks to the CA; it
//! records every step here through Raft so that a new leader can finish or restart an order, and
//! so that `switchyard get certs` answers the same on every node. Certificates and challenge
//! answers the proxies need live in `DynamicConfig::managed`, which [`AcmeCommand`]s update in the
//! same log entry.

use serde::{Deserialize, Serialize};
use switchyard_config::DynamicConfig;

/// ACME state kept in the replicated store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AcmeState {}

/// A command of the ACME manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AcmeCommand {}

impl AcmeState {
    /// Applies `cmd`; may change `config.managed`. Returns true when `config` changed (the
    /// config version then moves to this entry's index and the proxies get it).
    pub fn apply(&mut self, cmd: &AcmeCommand, now_unix: u64, config: &mut DynamicConfig) -> bool {
        let _ = (now_unix, config);
        match *cmd {}
    }
}
