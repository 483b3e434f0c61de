//! The config stream (`switchyard.stream.v1.ConfigStream`) that every control node — leader,
//! follower or learner — serves to proxies from its own applied state.
//!
//! - [`history`]: the last few config versions, kept so a reconnecting proxy gets a delta.
//! - [`registry`]: the proxies attached to this node (what `get proxies` shows).
//! - [`limiter`]: cluster-wide rate limits: proxies' demand in, their shares out.
//! - [`service`]: one task per proxy stream: snapshot or delta first, then every new version as it
//!   is applied, one message in flight at a time, each built from the version the proxy last
//!   ACKed (a NACKed version is never a base). A proxy that is slow to answer gets the newest
//!   version next (pushes coalesce); an idle stream waits on the applied-state watch and the
//!   proxy's answers, never on a timer.

pub mod history;
pub mod limiter;
pub mod registry;
pub mod service;

pub use history::History;
pub use registry::Registry;
pub use service::StreamService;
