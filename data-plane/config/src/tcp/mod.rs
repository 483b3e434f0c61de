//! Traefik v3 TCP routing: the `tcp:` section ([`TcpConfig`]: routers, `loadBalancer` and
//! `weighted` services, `ipAllowList` and `inFlightConn` middlewares), its rule language
//! ([`rule`]: `HostSNI`, `HostSNIRegexp`, `ClientIP`, `ALPN`) and its validation. Pure.
//!
//! Semantics kept from Traefik: a TCP router with `HostSNI` naming a host needs `tls` (the SNI
//! exists only on TLS connections); `HostSNI(`*`)` without `tls` is the catch-all for plain
//! TCP; `tls.passthrough` routes on the SNI and forwards the TLS bytes untouched, so a
//! `certResolver` (or `options`) with it is refused; priority defaults to the rule's length,
//! `HostSNI(`*`)` alone to -1.

mod model;
mod mux;
pub mod rule;
mod validate;

pub use model::*;
pub use mux::{explain_conn, MuxRoute, TcpExplanation, TcpMux, TcpRequest, Tried};
pub use rule::{compile, default_priority, ConnView, TcpMatcherKind, TcpRule};
pub(crate) use validate::validate;
pub use validate::{address_problem, MIDDLEWARE, ROUTER, SERVICE, TRANSPORT};

#[cfg(test)]
mod tests;
