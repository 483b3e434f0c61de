//! One module per subcommand.

pub mod apply;
pub mod bench;
pub mod bench_propagate;
pub mod certs;
pub mod cluster;
pub mod delete;
pub mod dev;
pub mod dev_backend;
pub mod explain;
pub mod explain_tcp;
pub mod get;
pub mod proxies;
pub mod rollout;
pub mod server;
pub mod token;
