//! The configuration model: Traefik v3 dynamic configuration (HTTP routers, services,
//! middlewares, servers transports and the TLS section), with Traefik's camelCase field names.
//!
//! Every struct denies unknown fields; optional fields are `Option`s (or empty collections) that
//! are skipped when serializing, so a parsed document serializes back to a clean equivalent one.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::acme::{CertResolver, ManagedTls};
use crate::error::{quote, ConfigError};

pub use crate::duration::{parse_go_duration, Duration, StrOrInt};

/// The named resources of one kind (`http.routers`, `tls.options`, ...), sorted by name.
///
/// A persistent (structurally shared) B-tree: cloning a config is O(1) whatever its size, and
/// changing one resource of a clone copies O(log n) nodes, not the map. The control plane relies
/// on it so that every write costs in proportion to the change, not to the config: the leader's
/// check of a write, the API's dry run, every node applying the Raft entry (the committed config
/// is shared with readers) and the config stream's history of versions all work on clones of the
/// committed config (ARCHITECTURE.md, "Config propagation"). Two configs derived from one another
/// share every untouched subtree, so comparing or diffing them ([`crate::diff`]) skips those.
/// Serialized as a map in key order, like a `BTreeMap`.
pub type Map<V> = imbl::OrdMap<String, V>;

/// The [`Map`] of `entries` (any order; of equal keys the last wins, as with repeated
/// inserts), built with full B-tree leaves.
///
/// Inserting keys in ascending order (what collecting a sorted source does: a parsed document's
/// mapping, a JSON object) leaves every leaf of `imbl`'s B-tree half full: a full leaf splits
/// into two halves and the left one is never touched again. A proxy keeps its whole config, so
/// that doubles the inline bytes of every router. Here the entries at even positions of the
/// sorted list go in first (ascending: leaves of 8 of 16 slots, each spanning 16 positions), then
/// the odd ones fill exactly the gap in each leaf, so leaves end up full (no split). Same map,
/// same lookups; later inserts into a full leaf split it as usual.
pub fn map_from_entries<V: Clone>(mut entries: Vec<(String, V)>) -> Map<V> {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
    let mut map = Map::new();
    let mut odd = Vec::with_capacity(entries.len() / 2);
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i % 2 == 0 {
            map.insert(k, v);
        } else {
            odd.push((k, v));
        }
    }
    for (k, v) in odd {
        map.insert(k, v);
    }
    map
}

/// Applies `f` to every value of `m` (a [`Map`] has no `values_mut`): whole-map operations only
/// (display, file inlining); each value written is copied out of the shared tree once.
pub(crate) fn for_each_mut<V: Clone>(m: &mut Map<V>, mut f: impl FnMut(&str, &mut V)) {
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        if let Some(v) = m.get_mut(&k) {
            f(&k, v);
        }
    }
}

/// Deserialize a collection, treating an explicit `null` (e.g. `entryPoints:` with no value in
/// YAML) as empty.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Deserialize a string map whose values may be `null` (`X-Remove:` in YAML), read as `""`.
fn null_string_map<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let m: Option<BTreeMap<String, Option<String>>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// Resource kinds addressable by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `http.routers`
    Router,
    /// `http.services`
    Service,
    /// `http.middlewares`
    Middleware,
    /// `tcp.routers`
    TcpRouter,
    /// `tcp.services`
    TcpService,
    /// `tcp.middlewares`
    TcpMiddleware,
    /// `tcp.serversTransports`
    TcpServersTransport,
}

impl Kind {
    /// `"router"`, `"service"`, `"middleware"`, `"tcpRouter"`, `"tcpService"`,
    /// `"tcpMiddleware"` or `"tcpServersTransport"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Router => "router",
            Kind::Service => "service",
            Kind::Middleware => "middleware",
            Kind::TcpRouter => "tcpRouter",
            Kind::TcpService => "tcpService",
            Kind::TcpMiddleware => "tcpMiddleware",
            Kind::TcpServersTransport => "tcpServersTransport",
        }
    }

    /// Accepts singular and plural, case-insensitively, with or without dashes: `router(s)`,
    /// `service(s)`, `middleware(s)`, `tcp-router(s)` (`tcpRouter`), `tcp-service(s)`,
    /// `tcp-middleware(s)`, `tcp-servers-transport(s)`.
    pub fn parse(s: &str) -> Option<Kind> {
        let k: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        match k.as_str() {
            "router" | "routers" => Some(Kind::Router),
            "service" | "services" => Some(Kind::Service),
            "middleware" | "middlewares" => Some(Kind::Middleware),
            "tcprouter" | "tcprouters" => Some(Kind::TcpRouter),
            "tcpservice" | "tcpservices" => Some(Kind::TcpService),
            "tcpmiddleware" | "tcpmiddlewares" => Some(Kind::TcpMiddleware),
            "tcpserverstransport" | "tcpserverstransports" => Some(Kind::TcpServersTransport),
            _ => None,
        }
    }

    /// All kinds.
    pub const ALL: [Kind; 7] = [
        Kind::Router,
        Kind::Service,
        Kind::Middleware,
        Kind::TcpRouter,
        Kind::TcpService,
        Kind::TcpMiddleware,
        Kind::TcpServersTransport,
    ];
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole Traefik v3 dynamic configuration (the subset Switchyard models).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynamicConfig {
    /// `http:` section.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "HttpConfig::is_empty"
    )]
    pub http: HttpConfig,
    /// `tls:` section.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "TlsConfig::is_empty"
    )]
    pub tls: TlsConfig,
    /// `tcp:` section (TCP routers, services, middlewares); boxed, so configs without TCP
    /// (and the Raft commands that carry them) stay small.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "crate::tcp::TcpConfig::is_empty"
    )]
    pub tcp: Box<crate::tcp::TcpConfig>,
    /// `certificatesResolvers:` (Traefik static configuration; cluster configuration here).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub certificates_resolvers: Map<CertResolver>,
    /// TLS material written by the control plane (ACME certificates and challenge answers).
    /// Refused in applied documents; carried to proxies by the config stream.
    #[serde(default, skip_serializing_if = "ManagedTls::is_empty")]
    pub managed: ManagedTls,
}

/// `http:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConfig {
    /// Routers by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub routers: Map<Router>,
    /// Services by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub services: Map<Service>,
    /// Middlewares by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub middlewares: Map<Middleware>,
    /// Servers transports by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub servers_transports: Map<ServersTransport>,
}

impl HttpConfig {
    /// True when no resource is defined.
    pub fn is_empty(&self) -> bool {
        self.routers.is_empty()
            && self.services.is_empty()
            && self.middlewares.is_empty()
            && self.servers_transports.is_empty()
    }
}

/// `tls:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// `tls.certificates`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub certificates: Vec<Certificate>,
    /// `tls.options` by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub options: Map<TlsOptions>,
    /// `tls.stores` by name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub stores: Map<TlsStore>,
}

impl TlsConfig {
    /// True when nothing is defined.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty() && self.options.is_empty() && self.stores.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Routers

/// An HTTP router.
///
/// Memory: a proxy keeps its whole config (for incremental compiles), so every byte of this
/// struct's inline size is paid per router, about twice (the [`Map`] B-tree's leaves are
/// about half full when filled in key order). The rarely used parts are therefore boxed
/// (`tls`, `observability`: 8 bytes when absent instead of 72 and 32) and the lists that are
/// never grown are boxed slices; serde sees through `Box`, so the document shape is unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Router {
    /// The rule (v3 syntax). Required (checked by `validate`).
    #[serde(default, deserialize_with = "null_default")]
    pub rule: Box<str>,
    /// `v3` or absent; `v2` is rejected by `validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_syntax: Option<Box<str>>,
    /// Explicit priority; absent or 0 means `len(rule)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Entry points; empty means all.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "<[String]>::is_empty"
    )]
    pub entry_points: Box<[String]>,
    /// Middleware references, in order.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "<[String]>::is_empty"
    )]
    pub middlewares: Box<[String]>,
    /// Service reference. Required (checked by `validate`).
    #[serde(default, deserialize_with = "null_default")]
    pub service: Box<str>,
    /// TLS settings (not supported yet; rejected by `validate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Box<RouterTls>>,
    /// Per-router observability switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<Box<RouterObservability>>,
    /// Switchyard extension: the proxy clusters (`switchyard-proxy --cluster`) that serve this
    /// router; empty means every cluster. See [`crate::scope`].
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "<[String]>::is_empty"
    )]
    pub clusters: Box<[String]>,
}

impl Router {
    /// The priority used for ordering: the explicit priority unless absent or 0, else
    /// [`crate::rules::default_priority`] of the rule.
    pub fn effective_priority(&self) -> i64 {
        match self.priority {
            Some(p) if p != 0 => p,
            _ => crate::rules::default_priority(&self.rule),
        }
    }
}

/// Router `tls` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterTls {
    /// ACME resolver name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_resolver: Option<String>,
    /// TLS options name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// Domains for the resolver.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub domains: Vec<Domain>,
}

/// A certificate domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Domain {
    /// Main domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<String>,
    /// Subject alternative names.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sans: Vec<String>,
}

/// Router `observability` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterObservability {
    /// Access logs on/off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logs: Option<bool>,
    /// Metrics on/off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<bool>,
    /// Tracing on/off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<bool>,
    /// `minimal` or `detailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_verbosity: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Services

/// An HTTP service: exactly one of the four kinds must be set (checked by `validate`).
/// Serialized as Traefik writes it: `{loadBalancer: {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// `loadBalancer`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// `weighted`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted: Option<Weighted>,
    /// `mirroring`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirroring: Option<Mirroring>,
    /// `failover`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Failover>,
}

impl Service {
    /// Names of the kinds that are set, in Traefik's order.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.load_balancer.is_some() {
            v.push("loadBalancer");
        }
        if self.weighted.is_some() {
            v.push("weighted");
        }
        if self.mirroring.is_some() {
            v.push("mirroring");
        }
        if self.failover.is_some() {
            v.push("failover");
        }
        v
    }

    /// Child service references (as written, possibly with `@provider`) with their field paths.
    pub fn child_refs(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        if let Some(w) = &self.weighted {
            for (i, s) in w.services.iter().enumerate() {
                out.push((format!("weighted.services[{i}].name"), s.name.as_str()));
            }
        }
        if let Some(m) = &self.mirroring {
            out.push(("mirroring.service".to_string(), m.service.as_str()));
            for (i, s) in m.mirrors.iter().enumerate() {
                out.push((format!("mirroring.mirrors[{i}].name"), s.name.as_str()));
            }
        }
        if let Some(f) = &self.failover {
            out.push(("failover.service".to_string(), f.service.as_str()));
            out.push(("failover.fallback".to_string(), f.fallback.as_str()));
        }
        out
    }
}

/// `loadBalancer` service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    /// Backend servers.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub servers: Vec<Server>,
    /// `wrr` (default) or `p2c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Sticky sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Active health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<ServerHealthCheck>,
    /// Passive health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_health_check: Option<PassiveHealthCheck>,
    /// Forward the client's Host header (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_host_header: Option<bool>,
    /// Name of a serversTransport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers_transport: Option<String>,
    /// Response forwarding options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_forwarding: Option<ResponseForwarding>,
}

/// One backend server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    /// `http://host:port`, `https://…` or `h2c://…`.
    #[serde(default, deserialize_with = "null_default")]
    pub url: String,
    /// Weight (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Keep the URL path of `url` as a prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_path: Option<bool>,
    /// Switchyard extension: the server's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Switchyard extension: the server's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// `sticky` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sticky {
    /// Cookie settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<StickyCookie>,
}

/// `sticky.cookie` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StickyCookie {
    /// Cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Secure flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    /// HttpOnly flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// `none`, `lax` or `strict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    /// Max-Age in seconds (0 = session cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Cookie domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// Active health check of a load balancer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerHealthCheck {
    /// Scheme override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// `http` (only supported mode) or `grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Path to probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Method (default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Expected status (default: any 2xx/3xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Port override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Interval (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Interval while unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_interval: Option<Duration>,
    /// Timeout (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Host header for the probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Follow redirects (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// Extra probe headers.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub headers: BTreeMap<String, String>,
}

/// Passive health check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PassiveHealthCheck {
    /// Failure window (also the ejection time), default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_window: Option<Duration>,
    /// Failures within the window before ejection (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_attempts: Option<i64>,
}

/// `responseForwarding` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseForwarding {
    /// Flush interval (default 100ms; negative = flush every write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval: Option<Duration>,
}

/// The (empty) health check of a compound service: its presence propagates child health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceHealthCheck {}

/// `weighted` service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Weighted {
    /// Child services with weights.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub services: Vec<WeightedService>,
    /// Sticky sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Health propagation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<ServiceHealthCheck>,
}

/// A weighted child service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedService {
    /// Service reference.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Weight (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// `mirroring` service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mirroring {
    /// Main service reference.
    #[serde(default, deserialize_with = "null_default")]
    pub service: String,
    /// Mirror the body too (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_body: Option<bool>,
    /// Max mirrored body size (-1 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_size: Option<i64>,
    /// Mirrors.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mirrors: Vec<Mirror>,
    /// Health propagation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<ServiceHealthCheck>,
}

/// One mirror.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mirror {
    /// Service reference.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Percentage of requests mirrored (0..=100).
    #[serde(default)]
    pub percent: u32,
}

/// `failover` service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failover {
    /// Main service reference.
    #[serde(default, deserialize_with = "null_default")]
    pub service: String,
    /// Fallback service reference.
    #[serde(default, deserialize_with = "null_default")]
    pub fallback: String,
    /// Health propagation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<ServiceHealthCheck>,
}

// ---------------------------------------------------------------------------------------------
// Middlewares

/// Every Traefik v3 OSS middleware kind, as written in files.
pub const MIDDLEWARE_KINDS: &[&str] = &[
    "addPrefix",
    "basicAuth",
    "buffering",
    "chain",
    "circuitBreaker",
    "compress",
    "contentType",
    "digestAuth",
    "encodedCharacters",
    "errors",
    "forwardAuth",
    "grpcWeb",
    "headers",
    "ipAllowList",
    "ipWhiteList",
    "inFlightReq",
    "passTLSClientCert",
    "plugin",
    "rateLimit",
    "redirectRegex",
    "redirectScheme",
    "replacePath",
    "replacePathRegex",
    "retry",
    "stripPrefix",
    "stripPrefixRegex",
];

/// The middleware kinds this version of Switchyard implements.
pub const SUPPORTED_MIDDLEWARE_KINDS: &[&str] = &[
    "buffering",
    "contentType",
    "encodedCharacters",
    "grpcWeb",
    "passTLSClientCert",
    "errors",
    "forwardAuth",
    "addPrefix",
    "basicAuth",
    "chain",
    "circuitBreaker",
    "compress",
    "digestAuth",
    "headers",
    "inFlightReq",
    "ipAllowList",
    "ipWhiteList",
    "rateLimit",
    "redirectRegex",
    "redirectScheme",
    "replacePath",
    "replacePathRegex",
    "retry",
    "stripPrefix",
    "stripPrefixRegex",
];

/// A middleware: a map with exactly one key, the kind. Supported kinds are typed; the others
/// keep their raw value so they parse and round-trip, and `validate` rejects them.
///
/// Serialization always writes a single-entry map (`{"stripPrefix": {...}}`), in YAML too (no
/// YAML tags).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum Middleware {
    /// `addPrefix`
    #[serde(rename = "addPrefix")]
    AddPrefix(AddPrefix),
    /// `stripPrefix`
    #[serde(rename = "stripPrefix")]
    StripPrefix(StripPrefix),
    /// `stripPrefixRegex`
    #[serde(rename = "stripPrefixRegex")]
    StripPrefixRegex(StripPrefixRegex),
    /// `replacePath`
    #[serde(rename = "replacePath")]
    ReplacePath(ReplacePath),
    /// `replacePathRegex`
    #[serde(rename = "replacePathRegex")]
    ReplacePathRegex(ReplacePathRegex),
    /// `headers`
    #[serde(rename = "headers")]
    Headers(Box<Headers>),
    /// `redirectScheme`
    #[serde(rename = "redirectScheme")]
    RedirectScheme(RedirectScheme),
    /// `redirectRegex`
    #[serde(rename = "redirectRegex")]
    RedirectRegex(RedirectRegex),
    /// `chain`
    #[serde(rename = "chain")]
    Chain(Chain),
    /// `basicAuth`
    #[serde(rename = "basicAuth")]
    BasicAuth(BasicAuth),
    /// `buffering`
    #[serde(rename = "buffering")]
    Buffering(Buffering),
    /// `circuitBreaker` (not supported yet)
    #[serde(rename = "circuitBreaker")]
    CircuitBreaker(CircuitBreaker),
    /// `compress`
    #[serde(rename = "compress")]
    Compress(Compress),
    /// `contentType`
    #[serde(rename = "contentType")]
    ContentType(ContentType),
    /// `digestAuth` (not supported yet)
    #[serde(rename = "digestAuth")]
    DigestAuth(DigestAuth),
    /// `encodedCharacters`
    #[serde(rename = "encodedCharacters")]
    EncodedCharacters(EncodedCharactersMw),
    /// `errors`
    #[serde(rename = "errors")]
    Errors(Box<Errors>),
    /// `forwardAuth`
    #[serde(rename = "forwardAuth")]
    ForwardAuth(Box<ForwardAuth>),
    /// `grpcWeb`
    #[serde(rename = "grpcWeb")]
    GrpcWeb(GrpcWeb),
    /// `ipAllowList`
    #[serde(rename = "ipAllowList")]
    IpAllowList(IpAllowList),
    /// `ipWhiteList` (deprecated alias of `ipAllowList`, without `rejectStatusCode`)
    #[serde(rename = "ipWhiteList")]
    IpWhiteList(IpWhiteList),
    /// `inFlightReq`
    #[serde(rename = "inFlightReq")]
    InFlightReq(InFlightReq),
    /// `passTLSClientCert`
    #[serde(rename = "passTLSClientCert")]
    PassTlsClientCert(Box<PassTlsClientCert>),
    /// `plugin` (not supported)
    #[serde(rename = "plugin")]
    Plugin(serde_json::Value),
    /// `rateLimit`
    #[serde(rename = "rateLimit")]
    RateLimit(RateLimit),
    /// `retry`
    #[serde(rename = "retry")]
    Retry(Retry),
}

impl Serialize for Middleware {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        let k = self.kind_name();
        match self {
            Middleware::AddPrefix(v) => m.serialize_entry(k, v)?,
            Middleware::StripPrefix(v) => m.serialize_entry(k, v)?,
            Middleware::StripPrefixRegex(v) => m.serialize_entry(k, v)?,
            Middleware::ReplacePath(v) => m.serialize_entry(k, v)?,
            Middleware::ReplacePathRegex(v) => m.serialize_entry(k, v)?,
            Middleware::Headers(v) => m.serialize_entry(k, v)?,
            Middleware::RedirectScheme(v) => m.serialize_entry(k, v)?,
            Middleware::RedirectRegex(v) => m.serialize_entry(k, v)?,
            Middleware::Chain(v) => m.serialize_entry(k, v)?,
            Middleware::IpAllowList(v) => m.serialize_entry(k, v)?,
            Middleware::IpWhiteList(v) => m.serialize_entry(k, v)?,
            Middleware::BasicAuth(v) => m.serialize_entry(k, v)?,
            Middleware::Compress(v) => m.serialize_entry(k, v)?,
            Middleware::RateLimit(v) => m.serialize_entry(k, v)?,
            Middleware::InFlightReq(v) => m.serialize_entry(k, v)?,
            Middleware::Retry(v) => m.serialize_entry(k, v)?,
            Middleware::ForwardAuth(v) => m.serialize_entry(k, v)?,
            Middleware::Errors(v) => m.serialize_entry(k, v)?,
            Middleware::CircuitBreaker(v) => m.serialize_entry(k, v)?,
            Middleware::DigestAuth(v) => m.serialize_entry(k, v)?,
            Middleware::Buffering(v) => m.serialize_entry(k, v)?,
            Middleware::ContentType(v) => m.serialize_entry(k, v)?,
            Middleware::EncodedCharacters(v) => m.serialize_entry(k, v)?,
            Middleware::GrpcWeb(v) => m.serialize_entry(k, v)?,
            Middleware::PassTlsClientCert(v) => m.serialize_entry(k, v)?,
            Middleware::Plugin(v) => m.serialize_entry(k, v)?,
        }
        m.end()
    }
}

impl Middleware {
    /// The raw options of a kind this version does not implement (`None` for supported kinds).
    pub fn unsupported_options(&self) -> Option<&serde_json::Value> {
        match self {
            Middleware::Plugin(v) => Some(v),
            _ => None,
        }
    }

    /// The kind as written in files, e.g. `"stripPrefix"`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Middleware::AddPrefix(_) => "addPrefix",
            Middleware::StripPrefix(_) => "stripPrefix",
            Middleware::StripPrefixRegex(_) => "stripPrefixRegex",
            Middleware::ReplacePath(_) => "replacePath",
            Middleware::ReplacePathRegex(_) => "replacePathRegex",
            Middleware::Headers(_) => "headers",
            Middleware::RedirectScheme(_) => "redirectScheme",
            Middleware::RedirectRegex(_) => "redirectRegex",
            Middleware::Chain(_) => "chain",
            Middleware::BasicAuth(_) => "basicAuth",
            Middleware::Buffering(_) => "buffering",
            Middleware::CircuitBreaker(_) => "circuitBreaker",
            Middleware::Compress(_) => "compress",
            Middleware::ContentType(_) => "contentType",
            Middleware::DigestAuth(_) => "digestAuth",
            Middleware::EncodedCharacters(_) => "encodedCharacters",
            Middleware::Errors(_) => "errors",
            Middleware::ForwardAuth(_) => "forwardAuth",
            Middleware::GrpcWeb(_) => "grpcWeb",
            Middleware::IpAllowList(_) => "ipAllowList",
            Middleware::IpWhiteList(_) => "ipWhiteList",
            Middleware::InFlightReq(_) => "inFlightReq",
            Middleware::PassTlsClientCert(_) => "passTLSClientCert",
            Middleware::Plugin(_) => "plugin",
            Middleware::RateLimit(_) => "rateLimit",
            Middleware::Retry(_) => "retry",
        }
    }

    /// This middleware as shown (`get config`, `get middleware`, the Traefik API): secrets
    /// replaced by [`REDACTED_KEY`] — `forwardAuth.tls.key` when inline, and the HA1 hash
    /// (password-equivalent) of each `digestAuth` user and its uploaded `usersFile`. Restored
    /// by [`Middleware::restore_redacted`]. (`basicAuth` hashes are one-way and shown, as in
    /// Traefik's API.)
    pub fn redacted(&self) -> Middleware {
        let mut m = self.clone();
        match &mut m {
            Middleware::ForwardAuth(f) => {
                if let Some(t) = f.tls.as_mut() {
                    if crate::acme::is_inline_pem(&t.key) {
                        t.key = REDACTED_KEY.to_string();
                    }
                }
            }
            Middleware::DigestAuth(d) => {
                for u in &mut d.users {
                    if let Some((head, _)) = u.rsplit_once(':') {
                        if head.contains(':') {
                            *u = format!("{head}:{REDACTED_KEY}");
                        }
                    }
                }
                // Uploaded content (a path is shown as it is).
                if d.users_file.contains('\n') {
                    d.users_file = REDACTED_KEY.to_string();
                }
            }
            _ => {}
        }
        m
    }

    /// `self` (as applied) with the secrets [`Middleware::redacted`] hid taken back from `cur`
    /// (the stored middleware of the same name): the forwardAuth key for the same `tls.cert`,
    /// each digest user's HA1 for the same `user:realm`, the users file.
    pub fn restore_redacted(&mut self, cur: &Middleware) {
        match (self, cur) {
            (Middleware::ForwardAuth(f), Middleware::ForwardAuth(c)) => {
                if let (Some(t), Some(ct)) = (f.tls.as_mut(), c.tls.as_ref()) {
                    if t.key == REDACTED_KEY && t.cert == ct.cert && ct.key != REDACTED_KEY {
                        t.key = ct.key.clone();
                    }
                }
            }
            (Middleware::DigestAuth(d), Middleware::DigestAuth(c)) => {
                for u in &mut d.users {
                    if let Some(head) = u.strip_suffix(REDACTED_KEY) {
                        if let Some(orig) = c.users.iter().find(|o| {
                            o.strip_prefix(head)
                                .is_some_and(|ha1| !ha1.contains(':') && ha1 != REDACTED_KEY)
                        }) {
                            *u = orig.clone();
                        }
                    }
                }
                if d.users_file == REDACTED_KEY && c.users_file != REDACTED_KEY {
                    d.users_file = c.users_file.clone();
                }
            }
            _ => {}
        }
    }

    /// True for the kinds Switchyard implements.
    pub fn is_supported(&self) -> bool {
        SUPPORTED_MIDDLEWARE_KINDS.contains(&self.kind_name())
    }
}

/// `addPrefix`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddPrefix {
    /// Prefix to add; must start with `/`.
    #[serde(default, deserialize_with = "null_default")]
    pub prefix: String,
}

/// `stripPrefix`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StripPrefix {
    /// Prefixes to strip.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub prefixes: Vec<String>,
    /// Deprecated in Traefik; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_slash: Option<bool>,
}

/// `stripPrefixRegex`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StripPrefixRegex {
    /// Regexps matching the prefix to strip.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub regex: Vec<String>,
}

/// `replacePath`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacePath {
    /// The new path.
    #[serde(default, deserialize_with = "null_default")]
    pub path: String,
}

/// `replacePathRegex`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacePathRegex {
    /// Regexp on the path.
    #[serde(default, deserialize_with = "null_default")]
    pub regex: String,
    /// Replacement (`$1`, `${name}`).
    #[serde(default, deserialize_with = "null_default")]
    pub replacement: String,
}

/// `redirectScheme`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectScheme {
    /// Target scheme (required).
    #[serde(default, deserialize_with = "null_default")]
    pub scheme: String,
    /// Target port (string or integer, as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<StrOrInt>,
    /// 301/308 instead of 302/307.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent: Option<bool>,
}

/// `redirectRegex`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectRegex {
    /// Regexp on the full request URL.
    #[serde(default, deserialize_with = "null_default")]
    pub regex: String,
    /// Replacement URL.
    #[serde(default, deserialize_with = "null_default")]
    pub replacement: String,
    /// 301/308 instead of 302/307.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent: Option<bool>,
}

/// `chain`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Chain {
    /// Middleware references, in order.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub middlewares: Vec<String>,
}

/// `headers`: every Traefik v3 option (custom headers, CORS, security headers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Headers {
    /// Request headers to set (an empty value removes the header).
    #[serde(
        default,
        deserialize_with = "null_string_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub custom_request_headers: BTreeMap<String, String>,
    /// Response headers to set (an empty value removes the header).
    #[serde(
        default,
        deserialize_with = "null_string_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub custom_response_headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_allow_credentials: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_allow_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_allow_methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_allow_origin_list: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_allow_origin_list_regex: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_expose_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_max_age: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_vary_header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_proxy_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_proxy_headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_include_subdomains: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_preload: Option<bool>,
    #[serde(
        default,
        rename = "forceSTSHeader",
        skip_serializing_if = "Option::is_none"
    )]
    pub force_sts_header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_deny: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_frame_options_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type_nosniff: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_xss_filter: Option<bool>,
    #[serde(
        default,
        rename = "customBrowserXSSValue",
        skip_serializing_if = "Option::is_none"
    )]
    pub custom_browser_xss_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_security_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_security_policy_report_only: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_development: Option<bool>,
}

/// `basicAuth`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    /// `name:hash` entries (htpasswd: bcrypt, `{SHA}`, `$apr1$`/`$1$`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub users: Vec<String>,
    /// An htpasswd file: `apply` uploads its content (inline content always ends with a
    /// newline); users in `users` override the file's.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub users_file: String,
    /// Realm of the challenge (default `traefik`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub realm: String,
    /// Remove `Authorization` before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_header: Option<bool>,
    /// Header that carries the authenticated user to the backend.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub header_field: String,
}

/// `errors`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Errors {
    /// Statuses caught: `500`, `500-599`, `404,418` …
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub status: Vec<String>,
    /// Status (range) → the status answered instead.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub status_rewrites: BTreeMap<String, i64>,
    /// The service serving the error page.
    #[serde(default, deserialize_with = "null_default")]
    pub service: String,
    /// Path and query of the error page (`{status}`, `{originalStatus}`, `{url}`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub query: String,
    /// Request headers sent to the error page service (unset: all; empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_request_headers: Option<Vec<String>>,
}

/// `forwardAuth`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardAuth {
    /// The authentication server's URL (`http` or `https`).
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    /// TLS to the authentication server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ForwardAuthTls>,
    /// Trust (forward) the client's `X-Forwarded-*` headers; unset: Traefik's legacy
    /// behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_forward_header: Option<bool>,
    /// Headers copied from the auth response to the forwarded request.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub auth_response_headers: Vec<String>,
    /// Regexp of the auth response headers copied to the forwarded request.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub auth_response_headers_regex: String,
    /// Request headers sent to the authentication server (empty: all).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub auth_request_headers: Vec<String>,
    /// Largest auth response body read (unset or -1: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_body_size: Option<i64>,
    /// Cookies of the auth response added to the client's response.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub add_auth_cookies_to_response: Vec<String>,
    /// Auth response header naming the user (access log).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub header_field: String,
    /// Send the request body to the authentication server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_body: Option<bool>,
    /// Largest request body forwarded (unset or -1: no limit); a larger one is a 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_size: Option<i64>,
    /// Pass the auth server's `Location` as is (not resolved against its address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_location_header: Option<bool>,
    /// Ask the authentication server with the request's method (default `GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_request_method: Option<bool>,
    /// Redirect (302) here when the authentication server answers 401.
    #[serde(
        rename = "authSigninURL",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub auth_signin_url: String,
}

/// `forwardAuth.tls`: CA, client certificate and key are PEM (file paths are uploaded by
/// `apply`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardAuthTls {
    /// CA certificates (PEM) that sign the server's certificate (default: web roots).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub ca: String,
    /// Client certificate (PEM).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub cert: String,
    /// Client key (PEM).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub key: String,
    /// Do not verify the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Deprecated in Traefik (ignored, accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_optional: Option<bool>,
}

/// `compress`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Compress {
    /// Media types never compressed (`application/grpc` always is).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub excluded_content_types: Vec<String>,
    /// Only these media types are compressed (exclusive with `excludedContentTypes`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub included_content_types: Vec<String>,
    /// Smaller bodies are sent as they are (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_response_body_bytes: Option<i64>,
    /// Encodings in order of preference (default `gzip`, `br`, `zstd`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub encodings: Vec<String>,
    /// Encoding used without `Accept-Encoding` or for `*`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub default_encoding: String,
}

/// `rateLimit`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per `period` on average (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<i64>,
    /// Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Duration>,
    /// Requests allowed at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<i64>,
    /// What requests are grouped by (default: the client address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_criterion: Option<SourceCriterion>,
    /// Redis-backed limiting (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<serde_json::Value>,
    /// Switchyard extension: `proxy` (default, Traefik's behaviour: each proxy limits on its
    /// own) or `cluster` (the limit holds for the sum of all proxies).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub scope: String,
}

/// `retry`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// First backoff interval (exponential, ×1.5 with ±50% jitter; 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_interval: Option<Duration>,
    /// Total time for all attempts (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Request body buffered for retries on status (accepted; bodies are never replayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<i64>,
    /// Retry on these response statuses (not supported yet).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub status: Vec<String>,
    /// Do not retry network errors (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_retry_on_network_error: Option<bool>,
    /// Retry POST, PATCH, LOCK too (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_non_idempotent_method: Option<bool>,
}

/// `circuitBreaker`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreaker {
    /// When to trip: Traefik's expression (`NetworkErrorRatio() > 0.5`, …).
    #[serde(default, deserialize_with = "null_default")]
    pub expression: String,
    /// How often the expression is evaluated (default 100ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_period: Option<Duration>,
    /// How long a tripped breaker answers the fallback (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_duration: Option<Duration>,
    /// How long traffic ramps back up after that (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_duration: Option<Duration>,
    /// Status of the fallback answer (default 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<i64>,
}

/// `digestAuth`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DigestAuth {
    /// `name:realm:HA1` entries (htdigest format).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub users: Vec<String>,
    /// An htdigest file: `apply` uploads its content (as `basicAuth.usersFile`); users in
    /// `users` override the file's.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub users_file: String,
    /// Realm of the challenge (default `traefik`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub realm: String,
    /// Remove `Authorization` before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_header: Option<bool>,
    /// Header that carries the authenticated user to the backend.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub header_field: String,
}

/// `contentType`: re-enables Content-Type sniffing for responses without one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContentType {
    /// Deprecated in Traefik: `false` makes the middleware a no-op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_detect: Option<bool>,
}

/// `buffering`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Buffering {
    /// Largest request body (413 above; 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<i64>,
    /// Request body held in memory (Traefik spills the rest to disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_request_body_bytes: Option<i64>,
    /// Largest response body (500 above; 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_body_bytes: Option<i64>,
    /// Response body held in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_response_body_bytes: Option<i64>,
    /// When to send the buffered request again (`IsNetworkError() && Attempts() < 2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_expression: Option<String>,
}

/// `grpcWeb`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcWeb {
    /// Origins allowed for CORS (`*`: any).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allow_origins: Vec<String>,
}

/// `encodedCharacters` (Traefik v3.7): every option defaults to `false` (denied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncodedCharactersMw {
    /// `%2F`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_encoded_slash: Option<bool>,
    /// `%5C`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_encoded_back_slash: Option<bool>,
    /// `%00`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_encoded_null_character: Option<bool>,
    /// `%3B`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_encoded_semicolon: Option<bool>,
    /// `%25`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_encoded_percent: Option<bool>,
    /// `%3F`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_encoded_question_mark: Option<bool>,
    /// `%23`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_encoded_hash: Option<bool>,
}

/// `passTLSClientCert`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PassTlsClientCert {
    /// Pass the certificates (PEM without its armour) in `X-Forwarded-Tls-Client-Cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<bool>,
    /// Pass selected fields in `X-Forwarded-Tls-Client-Cert-Info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<TlsClientCertInfo>,
}

/// `passTLSClientCert.info`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsClientCertInfo {
    /// `NA="<unix seconds>"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<bool>,
    /// `NB="<unix seconds>"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<bool>,
    /// `SAN="dns,…,email,…,ip,…,uri,…"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sans: Option<bool>,
    /// `SerialNumber="<decimal>"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<bool>,
    /// `Subject="…"` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<TlsClientCertDn>,
    /// `Issuer="…"` fields (`organizationalUnit` is not one of them in Traefik).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<TlsClientCertDn>,
}

/// Distinguished-name fields of `passTLSClientCert.info.subject` / `.issuer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsClientCertDn {
    /// `C=`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<bool>,
    /// `ST=`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province: Option<bool>,
    /// `L=`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<bool>,
    /// `O=`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<bool>,
    /// `OU=` (subject only)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizational_unit: Option<bool>,
    /// `CN=`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<bool>,
    /// `SN=`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<bool>,
    /// `DC=`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_component: Option<bool>,
}

/// `inFlightReq`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InFlightReq {
    /// Requests in progress allowed per source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// What requests are grouped by (default: the request host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_criterion: Option<SourceCriterion>,
    /// Switchyard extension: `proxy` (default, Traefik's behaviour: each proxy counts on its
    /// own) or `cluster` (`amount` holds for the sum of all proxies).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub scope: String,
}

/// `sourceCriterion`: at most one of the three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceCriterion {
    /// The client address, chosen as by `ipAllowList`.
    #[serde(
        default,
        rename = "ipStrategy",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_strategy: Option<IpStrategy>,
    /// The value of this request header.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub request_header_name: String,
    /// The request host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_host: Option<bool>,
}

/// `ipAllowList`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpAllowList {
    /// Allowed addresses and CIDR ranges (required).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub source_range: Vec<String>,
    /// How the client address is chosen (default: the connection's peer).
    #[serde(
        default,
        rename = "ipStrategy",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_strategy: Option<IpStrategy>,
    /// Status of refusals (default 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_status_code: Option<i64>,
}

/// `ipWhiteList` (deprecated): `ipAllowList` without `rejectStatusCode`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpWhiteList {
    /// Allowed addresses and CIDR ranges (required).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub source_range: Vec<String>,
    /// How the client address is chosen.
    #[serde(
        default,
        rename = "ipStrategy",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_strategy: Option<IpStrategy>,
}

/// `ipStrategy`: `depth` (from the right of `X-Forwarded-For`) wins over `excludedIPs` (the
/// first `X-Forwarded-For` address from the right not in the list); neither: the peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpStrategy {
    /// Position in `X-Forwarded-For`, from the right (1 = last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<i64>,
    /// Addresses and ranges skipped in `X-Forwarded-For`.
    #[serde(
        default,
        rename = "excludedIPs",
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub excluded_ips: Vec<String>,
    /// IPv6 clients are grouped by this prefix length (1–128).
    #[serde(
        default,
        rename = "ipv6Subnet",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_subnet: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Servers transports and TLS

/// An HTTP servers transport.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServersTransport {
    /// SNI / verification name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Skip backend certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Root CA files (not supported yet).
    #[serde(
        default,
        rename = "rootCAs",
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub root_cas: Vec<String>,
    /// Client certificates (not supported yet).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub certificates: Vec<Certificate>,
    /// Idle connections kept per host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_conns_per_host: Option<i64>,
    /// Disable HTTP/2 to backends.
    #[serde(
        default,
        rename = "disableHTTP2",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_http2: Option<bool>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_timeouts: Option<ForwardingTimeouts>,
    /// Expected peer certificate URI SAN (not supported yet).
    #[serde(
        default,
        rename = "peerCertURI",
        skip_serializing_if = "Option::is_none"
    )]
    pub peer_cert_uri: Option<String>,
}

/// `forwardingTimeouts`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardingTimeouts {
    /// Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_timeout: Option<Duration>,
    /// Default 0 (none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_timeout: Option<Duration>,
    /// Default 90s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_conn_timeout: Option<Duration>,
    /// HTTP/2 ping interval; default 0 (off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_idle_timeout: Option<Duration>,
    /// Default 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_timeout: Option<Duration>,
}

/// What `get config` shows in place of a private key (inline PEM) or another secret.
pub const REDACTED_KEY: &str = "<redacted>";

/// A certificate/key file pair.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    /// Certificate file (or inline PEM).
    #[serde(default, deserialize_with = "null_default")]
    pub cert_file: String,
    /// Key file (or inline PEM).
    #[serde(default, deserialize_with = "null_default")]
    pub key_file: String,
    /// Stores the certificate goes to.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub stores: Vec<String>,
}

/// `tls.options.<name>`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsOptions {
    /// `VersionTLS10` … `VersionTLS13`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// `VersionTLS10` … `VersionTLS13`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
    /// Cipher suites.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cipher_suites: Vec<String>,
    /// Curve preferences.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub curve_preferences: Vec<String>,
    /// Client authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
    /// Reject unknown SNI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_strict: Option<bool>,
    /// ALPN protocols.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub alpn_protocols: Vec<String>,
    /// Deprecated in Traefik; accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer_server_cipher_suites: Option<bool>,
    /// Disable TLS session tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_session_tickets: Option<bool>,
}

/// `clientAuth`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientAuth {
    /// CA files.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ca_files: Vec<String>,
    /// `NoClientCert`, `RequestClientCert`, `RequireAnyClientCert`,
    /// `VerifyClientCertIfGiven` or `RequireAndVerifyClientCert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth_type: Option<String>,
}

/// `tls.stores.<name>`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsStore {
    /// Default certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_certificate: Option<StoreCertificate>,
    /// Default certificate generated by a resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_generated_cert: Option<GeneratedCert>,
}

/// `defaultCertificate`
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreCertificate {
    /// Certificate file.
    #[serde(default, deserialize_with = "null_default")]
    pub cert_file: String,
    /// Key file.
    #[serde(default, deserialize_with = "null_default")]
    pub key_file: String,
}

/// `defaultGeneratedCert`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratedCert {
    /// Resolver name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
}

// ---------------------------------------------------------------------------------------------
// Operations on the whole config

impl DynamicConfig {
    /// Upsert: every router/service/middleware/serversTransport/tls option/tls store named in
    /// `doc` replaces (or adds) the resource of that name; `tls.certificates` in `doc` are added
    /// unless an identical one exists.
    pub fn merged(&self, doc: &DynamicConfig) -> DynamicConfig {
        let restored = self.restore_redacted(doc);
        let doc = &restored;
        let mut out = self.clone();
        for (k, v) in &doc.http.routers {
            out.http.routers.insert(k.clone(), v.clone());
        }
        for (k, v) in &doc.http.services {
            out.http.services.insert(k.clone(), v.clone());
        }
        for (k, v) in &doc.http.middlewares {
            out.http.middlewares.insert(k.clone(), v.clone());
        }
        for (k, v) in &doc.http.servers_transports {
            out.http.servers_transports.insert(k.clone(), v.clone());
        }
        for (k, v) in &doc.tls.options {
            out.tls.options.insert(k.clone(), v.clone());
        }
        for (k, v) in &doc.tcp.routers {
            out.tcp.routers.insert(k.clone(), v.clone());
        }
        for (k, v) in &doc.tcp.services {
            out.tcp.services.insert(k.clone(), v.clone());
        }
        for (k, v) in &doc.tcp.middlewares {
            out.tcp.middlewares.insert(k.clone(), v.clone());
        }
        for (k, v) in &doc.tcp.servers_transports {
            out.tcp.servers_transports.insert(k.clone(), v.clone());
        }
        for (k, v) in &doc.tls.stores {
            out.tls.stores.insert(k.clone(), v.clone());
        }
        for c in &doc.tls.certificates {
            if !out.tls.certificates.contains(c) {
                out.tls.certificates.push(c.clone());
            }
        }
        for (k, v) in &doc.certificates_resolvers {
            out.certificates_resolvers.insert(k.clone(), v.clone());
        }
        out
    }

    /// `doc` as the whole user configuration (an apply with prune), keeping the managed TLS
    /// material of `self`, which documents never carry.
    pub fn replaced_by(&self, doc: &DynamicConfig) -> DynamicConfig {
        let mut out = self.restore_redacted(doc);
        out.managed = self.managed.clone();
        out
    }

    /// `doc` with every [`REDACTED_KEY`] (as printed by [`DynamicConfig::for_display`]) replaced
    /// by the secret `self` holds for the same certificate (same `certFile`) or resolver, so
    /// `get config -o yaml | switchyard apply -f -` keeps the keys. A redacted value with no
    /// counterpart stays and is refused by validation.
    pub fn restore_redacted(&self, doc: &DynamicConfig) -> DynamicConfig {
        let mut out = doc.clone();
        let find = |list: &[Certificate], cert: &str| {
            list.iter()
                .find(|c| c.cert_file == cert && c.key_file != REDACTED_KEY)
                .map(|c| c.key_file.clone())
        };
        for c in &mut out.tls.certificates {
            if c.key_file == REDACTED_KEY {
                if let Some(k) = find(&self.tls.certificates, &c.cert_file) {
                    c.key_file = k;
                }
            }
        }
        for_each_mut(&mut out.http.servers_transports, |name, t| {
            let Some(cur) = self.http.servers_transports.get(name) else {
                return;
            };
            for c in &mut t.certificates {
                if c.key_file == REDACTED_KEY {
                    if let Some(k) = find(&cur.certificates, &c.cert_file) {
                        c.key_file = k;
                    }
                }
            }
        });
        for_each_mut(&mut out.tcp.servers_transports, |name, t| {
            let cur = self
                .tcp
                .servers_transports
                .get(name)
                .and_then(|t| t.tls.as_ref());
            if let (Some(tls), Some(cur)) = (t.tls.as_mut(), cur) {
                for c in &mut tls.certificates {
                    if c.key_file == REDACTED_KEY {
                        if let Some(k) = find(&cur.certificates, &c.cert_file) {
                            c.key_file = k;
                        }
                    }
                }
            }
        });
        for_each_mut(&mut out.tls.stores, |name, st| {
            let cur = self
                .tls
                .stores
                .get(name)
                .and_then(|s| s.default_certificate.as_ref());
            if let (Some(c), Some(cur)) = (&mut st.default_certificate, cur) {
                if c.key_file == REDACTED_KEY && c.cert_file == cur.cert_file {
                    c.key_file = cur.key_file.clone();
                }
            }
        });
        for_each_mut(&mut out.http.middlewares, |name, m| {
            if let Some(cur) = self.http.middlewares.get(name) {
                m.restore_redacted(cur);
            }
        });
        for_each_mut(&mut out.certificates_resolvers, |name, r| {
            let cur_acme = self
                .certificates_resolvers
                .get(name)
                .and_then(|r| r.acme.as_ref());
            let cur = cur_acme.and_then(|a| a.eab.as_ref());
            if let (Some(eab), Some(cur)) = (r.acme.as_mut().and_then(|a| a.eab.as_mut()), cur) {
                if eab.hmac_encoded == REDACTED_KEY && eab.kid == cur.kid {
                    eab.hmac_encoded = cur.hmac_encoded.clone();
                }
            }
            // DNS provider secrets: restored for the same key name / endpoint and user.
            let cur_dns = cur_acme.and_then(|a| a.dns_challenge.as_ref());
            let new_dns = r.acme.as_mut().and_then(|a| a.dns_challenge.as_mut());
            if let (Some(d), Some(cur)) = (new_dns, cur_dns) {
                if let (Some(r), Some(c)) = (&mut d.rfc2136, &cur.rfc2136) {
                    if r.tsig_secret.as_deref() == Some(REDACTED_KEY) && r.tsig_key == c.tsig_key {
                        r.tsig_secret = c.tsig_secret.clone();
                    }
                }
                if let (Some(h), Some(c)) = (&mut d.httpreq, &cur.httpreq) {
                    if h.password.as_deref() == Some(REDACTED_KEY)
                        && h.endpoint == c.endpoint
                        && h.username == c.username
                    {
                        h.password = c.password.clone();
                    }
                }
            }
        });
        out
    }

    /// The user-facing configuration: without the managed section, and with every inline private
    /// key replaced by [`REDACTED_KEY`]. This is what `get config` shows.
    pub fn for_display(&self) -> DynamicConfig {
        let mut out = self.clone();
        out.managed = ManagedTls::default();
        for_each_mut(&mut out.http.middlewares, |_, m| *m = m.redacted());
        for c in &mut out.tls.certificates {
            if crate::acme::is_inline_pem(&c.key_file) {
                c.key_file = REDACTED_KEY.to_string();
            }
        }
        for_each_mut(&mut out.http.servers_transports, |_, st| {
            for c in &mut st.certificates {
                if crate::acme::is_inline_pem(&c.key_file) {
                    c.key_file = REDACTED_KEY.to_string();
                }
            }
        });
        for_each_mut(&mut out.tcp.servers_transports, |_, t| *t = t.redacted());
        for_each_mut(&mut out.tls.stores, |_, store| {
            if let Some(c) = &mut store.default_certificate {
                if crate::acme::is_inline_pem(&c.key_file) {
                    c.key_file = REDACTED_KEY.to_string();
                }
            }
        });
        for_each_mut(&mut out.certificates_resolvers, |_, r| {
            if let Some(eab) = r.acme.as_mut().and_then(|a| a.eab.as_mut()) {
                if !eab.hmac_encoded.is_empty() {
                    eab.hmac_encoded = REDACTED_KEY.to_string();
                }
            }
            if let Some(d) = r.acme.as_mut().and_then(|a| a.dns_challenge.as_mut()) {
                if let Some(s) = d.rfc2136.as_mut().and_then(|r| r.tsig_secret.as_mut()) {
                    *s = REDACTED_KEY.to_string();
                }
                if let Some(p) = d.httpreq.as_mut().and_then(|h| h.password.as_mut()) {
                    *p = REDACTED_KEY.to_string();
                }
            }
        });
        out
    }

    /// Remove one resource; `Err` with message `router "x" not found` when absent.
    pub fn remove(&mut self, kind: Kind, name: &str) -> Result<(), ConfigError> {
        let removed = match kind {
            Kind::Router => self.http.routers.remove(name).is_some(),
            Kind::Service => self.http.services.remove(name).is_some(),
            Kind::Middleware => self.http.middlewares.remove(name).is_some(),
            Kind::TcpRouter => self.tcp.routers.remove(name).is_some(),
            Kind::TcpService => self.tcp.services.remove(name).is_some(),
            Kind::TcpMiddleware => self.tcp.middlewares.remove(name).is_some(),
            Kind::TcpServersTransport => self.tcp.servers_transports.remove(name).is_some(),
        };
        if removed {
            Ok(())
        } else {
            Err(ConfigError::new(format!(
                "{} {} not found",
                kind.as_str(),
                quote(name)
            )))
        }
    }

    /// A resource as a JSON value (camelCase, exactly as it would appear in a file).
    pub fn resource_json(&self, kind: Kind, name: &str) -> Option<serde_json::Value> {
        match kind {
            Kind::Router => self
                .http
                .routers
                .get(name)
                .and_then(|r| serde_json::to_value(r).ok()),
            Kind::Service => self
                .http
                .services
                .get(name)
                .and_then(|r| serde_json::to_value(r).ok()),
            Kind::Middleware => self
                .http
                .middlewares
                .get(name)
                .and_then(|r| serde_json::to_value(r.redacted()).ok()),
            Kind::TcpRouter => json_of(self.tcp.routers.get(name)),
            Kind::TcpService => json_of(self.tcp.services.get(name)),
            Kind::TcpMiddleware => json_of(self.tcp.middlewares.get(name)),
            Kind::TcpServersTransport => json_of(
                self.tcp
                    .servers_transports
                    .get(name)
                    .map(|t| t.redacted())
                    .as_ref(),
            ),
        }
    }

    /// All names of a kind, sorted.
    pub fn names(&self, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Router => self.http.routers.keys().cloned().collect(),
            Kind::Service => self.http.services.keys().cloned().collect(),
            Kind::Middleware => self.http.middlewares.keys().cloned().collect(),
            Kind::TcpRouter => self.tcp.routers.keys().cloned().collect(),
            Kind::TcpService => self.tcp.services.keys().cloned().collect(),
            Kind::TcpMiddleware => self.tcp.middlewares.keys().cloned().collect(),
            Kind::TcpServersTransport => self.tcp.servers_transports.keys().cloned().collect(),
        }
    }

    /// True when nothing at all is defined.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty()
            && self.tls.is_empty()
            && self.tcp.is_empty()
            && self.certificates_resolvers.is_empty()
            && self.managed.is_empty()
    }

    /// Serialize as pretty JSON (the canonical document form).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Serialize as YAML.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }
}

/// `Debug` of a `keyFile`: the path, or a placeholder for inline PEM (never key material).
fn key_for_debug(key_file: &str) -> &str {
    if crate::acme::is_inline_pem(key_file) {
        REDACTED_KEY
    } else {
        key_file
    }
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &key_for_debug(&self.key_file))
            .field("stores", &self.stores)
            .finish()
    }
}

impl std::fmt::Debug for StoreCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCertificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &key_for_debug(&self.key_file))
            .finish()
    }
}

fn json_of<T: Serialize>(v: Option<&T>) -> Option<serde_json::Value> {
    v.and_then(|v| serde_json::to_value(v).ok())
}
