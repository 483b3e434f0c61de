//! A Switchyard control node.
//!
//! | module | what |
//! |---|---|
//! | [`node`] | start-up: store, Raft, the three listeners, bootstrap/join, self-registration |
//! | [`raft_net`] | Raft RPC over gRPC on the peer port (client and server) |
//! | [`admin`] | the admin gRPC API; leader routing and forwarding |
//! | [`stream`] | the config stream to proxies, and the registry of attached proxies |
//! | [`errors`] | admin errors and their single mapping to gRPC statuses |
//! | [`http`] | `/healthz`, `/readyz`, `/metrics` |
//! | [`metrics`] | the Prometheus registry |
//! | [`options`] | what a node is started with |
//! | [`acme`] | runs the ACME manager (`switchyard-acme`) against this node |

pub mod acme;
pub mod admin;
pub mod catch_up;
pub mod errors;
pub mod http;
pub mod metrics;
pub mod node;
pub mod offload;
pub mod options;
pub mod peer_tls;
pub mod raft_net;
pub mod security;
pub mod stream;

pub use node::{ControlNode, NodeError};
pub use options::{parse_initial_cluster, NodeOptions, RaftTimings};
