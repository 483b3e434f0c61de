//! A Switchyard control node.
//!
//! | module | what |
//! |---|---|
//! | [`node`] | start-up: store, Raft, the three listeners, bootstrap/join, self-registration |
//! | [`raft_net`] | Raft RPC over gRPC on the peer port (client and server) |
//! | [`admin`] | the admin gRPC API; leader routing and forwarding |
//! | [`proposer`] | config writes batched into Raft entries under load |
//! | [`stream`] | the config stream to proxies, and the registry of attached proxies |
//! | [`errors`] | admin errors and their single mapping to gRPC statuses |
//! | [`http`] | `/healthz`, `/readyz`, `/metrics`; mounts [`api`] and [`dashboard`] |
//! | [`api`] | Traefik's read API (`/api/...`) and Switchyard's additions, for the dashboard |
//! | [`dashboard`] | the web UI at `/dashboard/` (assets embedded in the binary) |
//! | [`metrics`] | the Prometheus registry |
//! | [`options`] | what a node is started with |
//! | [`acme`] | runs the ACME manager (`switchyard-acme`) against this node |
//! | [`rollout`] | drives progressive rollouts on the leader: bake, judge, promote or roll back |
//! | [`trace`] | OpenTelemetry spans of admin calls, Raft commits and the config stream |

pub mod acme;
pub mod admin;
pub mod api;
pub mod catch_up;
pub mod dashboard;
pub mod errors;
pub mod http;
pub mod metrics;
pub mod node;
pub mod offload;
pub mod options;
pub mod peer_tls;
pub mod proposer;
pub mod raft_net;
pub mod rollout;
pub mod security;
pub mod shared;
pub mod stream;
pub mod trace;

pub use node::{ControlNode, NodeError};
pub use options::{parse_initial_cluster, NodeOptions, RaftTimings};
