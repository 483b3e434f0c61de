//! The `tcp:` section of Traefik v3's dynamic configuration: routers, services and middlewares,
//! with Traefik's camelCase names. Every struct denies unknown fields; optional fields are
//! skipped when serializing, so parse → serialize → parse gives an equal value.

use crate::model::Map;

use serde::{Deserialize, Serialize};

use crate::model::{null_default, Certificate, Domain};
use crate::Duration;

/// `tcp:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpConfig {
    /// TCP routers by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub routers: Map<TcpRouter>,
    /// TCP services by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub services: Map<TcpService>,
    /// TCP middlewares by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub middlewares: Map<TcpMiddleware>,
    /// TCP servers transports by name (how the proxy dials TCP backends).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub servers_transports: Map<TcpServersTransport>,
}

impl TcpConfig {
    /// True when no resource is defined.
    pub fn is_empty(&self) -> bool {
        self.routers.is_empty()
            && self.services.is_empty()
            && self.middlewares.is_empty()
            && self.servers_transports.is_empty()
    }
}

/// A TCP servers transport (Traefik v3 `tcp.serversTransports`): how the proxy dials the
/// servers of the `loadBalancer`s that name it. When a load balancer names a transport, the
/// transport's `terminationDelay` and `proxyProtocol` replace the load balancer's (deprecated)
/// ones, as in Traefik.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpServersTransport {
    /// Dial timeout (Traefik's default 30s; 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_timeout: Option<Duration>,
    /// TCP keep-alive period of backend connections (default 15s; negative: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_keep_alive: Option<Duration>,
    /// Delay before closing after one side closed its write half (default 100ms; negative:
    /// wait for the other side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_delay: Option<Duration>,
    /// Send a PROXY protocol header to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// TLS towards servers with `tls: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TcpTransportTls>,
}

impl TcpServersTransport {
    /// A copy with inline private keys replaced by [`crate::REDACTED_KEY`] (`get config`).
    pub fn redacted(&self) -> TcpServersTransport {
        let mut t = self.clone();
        for c in t.tls.iter_mut().flat_map(|t| t.certificates.iter_mut()) {
            if crate::acme::is_inline_pem(&c.key_file) {
                c.key_file = crate::REDACTED_KEY.to_string();
            }
        }
        t
    }
}

/// `tls` of a TCP servers transport.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpTransportTls {
    /// SNI and verification name (default: the server address's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Skip backend certificate verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// CA certificates (files, resolved on apply, or inline PEM) replacing the public roots.
    #[serde(
        default,
        rename = "rootCAs",
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub root_cas: Vec<String>,
    /// Client certificate for mTLS (at most one).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub certificates: Vec<Certificate>,
    /// Expected URI SAN of the backend certificate (refused: not supported).
    #[serde(
        default,
        rename = "peerCertURI",
        skip_serializing_if = "Option::is_none"
    )]
    pub peer_cert_uri: Option<String>,
    /// SPIFFE (refused: not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe: Option<serde_json::Value>,
}

impl TcpTransportTls {
    /// The HTTP servers transport with the same TLS settings: the TLS client config is built
    /// (and checked) by the same code as for HTTP backends.
    pub fn as_http(&self) -> crate::model::ServersTransport {
        crate::model::ServersTransport {
            server_name: self.server_name.clone(),
            insecure_skip_verify: Some(self.insecure_skip_verify),
            root_cas: self.root_cas.clone(),
            certificates: self.certificates.clone(),
            ..Default::default()
        }
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
    /// Name of a TCP servers transport (`tcp.serversTransports`).
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
