//! Raft over gRPC between control nodes (the `--peer-addr` port).
//!
//! - [`client`]: openraft's `RaftNetworkFactory`, sending openraft's messages as JSON in the
//!   `switchyard.raft.v1.RaftPeer` service, over a pooled channel per peer.
//! - [`server`]: that service, handing each message to the local Raft.
//! - [`watchdog`]: starts an election as soon as the leader has been silent for its lease plus an
//!   election timeout (works around openraft 0.9 delaying an up-to-date node's election).

pub mod client;
pub mod pool;
pub mod server;
pub mod watchdog;

pub use client::Network;
pub use pool::ChannelPool;
pub use server::PeerService;
