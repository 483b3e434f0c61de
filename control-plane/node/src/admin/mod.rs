//! The admin gRPC service (`switchyard.admin.v1.Admin`), served on the API port and, for requests
//! forwarded by followers, on the peer port.
//!
//! - [`route`]: runs leader-only work locally on the leader, or forwards the request to it; retries
//!   across leader changes until the write timeout, then answers UNAVAILABLE.
//! - [`service`]: the RPC handlers.
//! - [`rollout`]: `apply --rollout` plans, `rollout status|pause|resume|abort`.

mod rollout;
mod route;
mod service;
mod tokens;

pub use rollout::{now_ms, status_of as rollout_status};
pub use tokens::issue_for_proxy;

pub use service::AdminService;
