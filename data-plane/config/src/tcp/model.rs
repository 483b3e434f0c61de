//! The `tcp:` section of Traefik v3's dynamic configuration: routers, services and middlewares,
//! with Traefik's camelCase names. Every struct denies unknown fields; optional fields are
//! skipped when serializing, so parse → serialize → parse gives an equal value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{null_default, Domain};

/// `tcp:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpConfig {
    /// TCP routers by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub routers: BTreeMap<String, TcpRouter>,
    /// TCP services by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub services: BTreeMap<String, TcpService>,
    /// TCP middlewares by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub middlewares: BTreeMap<String, TcpMiddleware>,
}

impl TcpConfig {
    /// True when no resource is defined.
    pub fn is_empty(&self) -> bool {
        self.routers.is_empty() && self.services.is_empty() && self.middlewares.is_empty()
    }
}

/// A TCP router.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRouter {
    /// The rule (`HostSNI`, `HostSNIRegexp`, `ClientIP`, `ALPN`). Required.
    #[serde(default, deserialize_with = "null_default")]
    pub rule: String,
    /// `v3` or absent; `v2` is rejected by `validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_syntax: Option<String>,
    /// Explicit priority; absent or 0 means the rule's length (`HostSNI(`*`)`: -1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Entry points; empty means all.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entry_points: Vec<String>,
    /// TCP middleware references, in order.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub middlewares: Vec<String>,
    /// TCP service reference. Required.
    #[serde(default, deserialize_with = "null_default")]
    pub service: String,
    /// TLS: terminate (default) or pass through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TcpRouterTls>,
    /// Switchyard extension: the proxy clusters that serve this router; empty means every
    /// cluster (as for HTTP routers, see [`crate::scope`]).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub clusters: Vec<String>,
}

impl TcpRouter {
    /// The priority used for ordering: the explicit priority unless absent or 0, else
    /// [`super::default_priority`] of the rule.
    pub fn effective_priority(&self) -> i64 {
        match self.priority {
            Some(p) if p != 0 => p,
            _ => super::default_priority(&self.rule),
        }
    }
}

/// A TCP router's `tls` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRouterTls {
    /// Forward the TLS bytes untouched (route on the SNI only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passthrough: bool,
    /// TLS options name (termination only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// ACME resolver name (termination only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_resolver: Option<String>,
    /// Domains for the resolver.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub domains: Vec<Domain>,
}

/// A TCP service: exactly one of `loadBalancer` and `weighted` (checked by `validate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpService {
    /// `loadBalancer`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<TcpLoadBalancer>,
    /// `weighted`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted: Option<TcpWeighted>,
}

/// `loadBalancer` TCP service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpLoadBalancer {
    /// Backend servers.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub servers: Vec<TcpServer>,
    /// Send a PROXY protocol header to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Milliseconds to wait, after one side closed its write half, before closing the
    /// connection (Traefik's default 100; negative: wait for the other side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_delay: Option<i64>,
    /// Name of a TCP servers transport (not supported by this version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers_transport: Option<String>,
    /// TCP health check (parsed, not supported by this version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<serde_json::Value>,
}

/// One TCP backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpServer {
    /// `host:port`.
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    /// Connect to the server with TLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// Switchyard extension: the server's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Switchyard extension: the server's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// `proxyProtocol` of a TCP load balancer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    /// 1 or 2 (Traefik's default when absent: 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// `weighted` TCP service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpWeighted {
    /// The weighted TCP services.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub services: Vec<TcpWeightedService>,
}

/// One member of a weighted TCP service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpWeightedService {
    /// TCP service reference.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Weight (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

/// A TCP middleware: exactly one kind (checked by `validate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpMiddleware {
    /// `ipAllowList`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_allow_list: Option<TcpIpAllowList>,
    /// `ipWhiteList` (deprecated name of `ipAllowList`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_white_list: Option<TcpIpAllowList>,
    /// `inFlightConn`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_conn: Option<TcpInFlightConn>,
}

impl TcpMiddleware {
    /// Names of the kinds that are set.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.ip_allow_list.is_some() {
            v.push("ipAllowList");
        }
        if self.ip_white_list.is_some() {
            v.push("ipWhiteList");
        }
        if self.in_flight_conn.is_some() {
            v.push("inFlightConn");
        }
        v
    }
}

/// `ipAllowList` TCP middleware.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpIpAllowList {
    /// Allowed IPs or CIDRs.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub source_range: Vec<String>,
}

/// `inFlightConn` TCP middleware.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpInFlightConn {
    /// Maximum simultaneous connections per client IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
}
