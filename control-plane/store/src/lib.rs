//! Raft storage for Switchyard control nodes.
//!
//! - [`types`]: the openraft type configuration: commands ([`Request`]), results ([`Response`]) and the
//!   node record kept in Raft membership.
//! - [`state`]: [`ClusterState`], the pure replicated state (the Traefik config, its version and the
//!   node directory) and the deterministic function that applies a command to it. No I/O.
//! - [`log_store`]: the Raft log, vote and commit index in sled, flushed before Raft is told an entry
//!   is durable.
//! - [`state_machine`]: the state machine around [`ClusterState`]. It lives in memory; snapshots are
//!   persisted in sled. On restart the latest snapshot is loaded and openraft re-applies the committed
//!   log after it (the commit index is persisted), so nothing acknowledged is lost and the log can be
//!   compacted behind each snapshot.
//!
//! One sled database per node (`DATA_DIR/raft`) holds three trees: `log`, `meta` and `snapshot`.
//! [`open`] opens it and returns both halves.

// openraft's trait methods return its `StorageError` (over 200 bytes); our helpers return the same
// type so `?` works, and boxing it would only add a conversion at every call.
#![allow(clippy::result_large_err)]

pub mod acme;
pub mod error;
pub mod log_store;
pub mod rollout;
pub mod security;
pub mod state;
pub mod state_machine;
pub mod types;

use std::path::Path;

pub use acme::{AcmeCommand, AcmeState};
pub use error::StoreError;
pub use log_store::LogStore;
pub use rollout::{Place, Plan, Rollout, RolloutCommand, Selector};
pub use security::{ClusterCa, Role, SecurityCommand, SecurityState, TokenRecord};
pub use state::{ClusterState, RecentWrites};
pub use state_machine::{AppliedState, StateMachineStore};
pub use types::*;

/// Opens (or creates) the store under `dir` and returns the log store and the state machine.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let db = sled::Config::new()
        .path(dir)
        // Bounded page cache: the working set is the log tail and one snapshot.
        .cache_capacity(64 * 1024 * 1024)
        .open()?;
    from_db(db)
}

/// Builds both halves over an already-open sled database.
pub fn from_db(db: sled::Db) -> Result<(LogStore, StateMachineStore), StoreError> {
    let log = LogStore::new(&db)?;
    let sm = StateMachineStore::new(&db)?;
    Ok((log, sm))
}
