//! Raft over gRPC between control nodes (the `--peer-addr` port).
//!
//! - [`client`]: openraft's `RaftNetworkFactory`, sending openraft's messages as JSON in the
//!   `switchyard.raft.v1.RaftPeer` service, over a pooled channel per peer.
//! - [`server`]: that service, handing each message to the local Raft.

pub mod client;
pub mod pool;
pub mod server;

pub use client::Network;
pub use pool::ChannelPool;
pub use server::PeerService;
