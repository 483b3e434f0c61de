//! The compiled, immutable form of one config version: what a request needs, built once per
//! version.
//!
//! [`Runtime::compile`] runs exactly the control plane's checks
//! (`switchyard_config::validate`, then `switchyard_router::compile` with the proxy's entry
//! points), then compiles middlewares (regexps, header values, chains flattened per router)
//! and services ([`crate::services`], reusing the state of unchanged services from the
//! previous version), and the TLS table (`switchyard_tls::compile`: certificates, TLS options,
//! ACME challenge answers), so certificates and options change with the config version:
//! new handshakes see the new table, open connections keep their session. Any failure is the
//! NACK message; nothing is swapped.
//!
//! A request loads the current `Arc<Runtime>` once (the `ArcSwap` in [`crate::Proxy`]) and
//! keeps it until its response body is finished, so in-flight requests complete on the
//! version they started with while new requests use the new one.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rustls::sign::CertifiedKey;
use switchyard_config::rules::MatcherKind;
use switchyard_config::DynamicConfig;
use switchyard_router::{Route, RouteTable};

use crate::metrics::{Metrics, RouteStats};
use crate::middlewares::{self, Mw};
use crate::services::{self, Env, Node, Services};
use crate::util::resolve_ref;

/// One router, ready to serve.
pub(crate) struct RouteRt {
    pub name: Arc<str>,
    pub service: Arc<Node>,
    pub middlewares: Box<[Arc<Mw>]>,
    /// Whether a middleware modifies responses.
    pub response_phase: bool,
    /// The router's `observability` switches.
    pub obs: RouterObs,
    /// Per entry point (index), created on first use.
    stats: Box<[OnceLock<Arc<RouteStats>>]>,
}

impl RouteRt {
    /// The stats of this route on entry point `ep`.
    pub(crate) fn stats(
        &self,
        ep: usize,
        ep_name: &Arc<str>,
        metrics: &Metrics,
    ) -> Option<Arc<RouteStats>> {
        let cell = self.stats.get(ep)?;
        Some(
            cell.get_or_init(|| metrics.route_stats(ep_name, &self.name, &self.service.name))
                .clone(),
        )
    }
}

/// A router's `observability` section (Traefik v3: each defaults to on; off switches the
/// access log line, the spans or the `traefik_router_*`/`traefik_service_*` series of its
/// requests off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouterObs {
    pub access_logs: bool,
    pub tracing: bool,
    pub metrics: bool,
}

impl RouterObs {
    fn of(o: Option<&switchyard_config::RouterObservability>) -> RouterObs {
        RouterObs {
            access_logs: o.and_then(|o| o.access_logs).unwrap_or(true),
            tracing: o.and_then(|o| o.tracing).unwrap_or(true),
            metrics: o.and_then(|o| o.metrics).unwrap_or(true),
        }
    }
}

/// A compiled config version.
pub(crate) struct Runtime {
    pub config: Arc<DynamicConfig>,
    pub table: RouteTable,
    /// Parallel to `table.routes()`.
    pub routes: Box<[RouteRt]>,
    /// Whether any rule looks at headers (else the header list is not built per request).
    pub needs_headers: bool,
    pub services: Services,
    /// Certificates, TLS options and ACME answers of this version.
    pub tls: switchyard_tls::TlsTable,
    /// TCP routers per entry point ([`crate::tcp`]).
    pub tcp: crate::tcp::router::TcpTable,
    /// The proxy's generated default certificate (same for every version).
    pub default_cert: Arc<CertifiedKey>,
    /// HTTP-01 challenges are answered (a resolver uses `httpChallenge`, or one is pending).
    pub http01_enabled: bool,
    /// `rateLimit` middlewares with `scope: cluster`, by name (see `control::limiter`).
    pub cluster_limiters: Vec<(String, Arc<Mw>)>,
    /// Request counters of this version, for rollouts (set by `Proxy::apply`).
    pub version_stats: Arc<crate::version_stats::VersionStats>,
}

impl Runtime {
    /// The runtime before any config (every request gets 404).
    pub(crate) fn empty(
        entrypoints: &[String],
        default_cert: Arc<CertifiedKey>,
    ) -> Result<Runtime, String> {
        let cfg = DynamicConfig::default();
        let table =
            switchyard_router::compile(&cfg, Some(entrypoints)).map_err(|e| e.to_string())?;
        let tls =
            switchyard_tls::compile(&cfg, Some(default_cert.clone())).map_err(|e| e.to_string())?;
        Ok(Runtime {
            config: Arc::new(cfg),
            table,
            routes: Box::new([]),
            needs_headers: false,
            services: Services::default(),
            tls,
            tcp: crate::tcp::router::TcpTable::default(),
            default_cert,
            http01_enabled: false,
            cluster_limiters: Vec::new(),
            version_stats: Arc::new(crate::version_stats::VersionStats::new(0)),
        })
    }

    /// Compile `cfg` as version `version` (see the module documentation).
    pub(crate) fn compile(
        cfg: Arc<DynamicConfig>,
        entrypoints: &[String],
        old: &Runtime,
        env: &Env<'_>,
    ) -> Result<Runtime, String> {
        switchyard_config::validate(&cfg).map_err(|e| e.to_string())?;
        // Unchanged routers keep their compiled rules from the previous version.
        let table = switchyard_router::compile_from(&cfg, Some(entrypoints), Some(&old.table))
            .map_err(|e| e.to_string())?;
        let tls = switchyard_tls::compile(&cfg, Some(old.default_cert.clone()))
            .map_err(|e| e.to_string())?;
        let tcp = crate::tcp::router::TcpTable::compile(&cfg, entrypoints, &tls, env.locality)?;
        let mws = middlewares::compile_all(&cfg.http.middlewares)?;
        let services = services::compile(&cfg, Some((&old.config, &old.services)), env)?;
        middlewares::errors::link(&mws, &services)?;
        let old_routes: HashMap<&str, &RouteRt> =
            old.routes.iter().map(|r| (&*r.name, r)).collect();
        let mut routes = Vec::with_capacity(table.len());
        let mut needs_headers = false;
        for r in table.routes() {
            let service_name = resolve_ref(&r.service);
            let service = services.nodes.get(service_name).cloned().ok_or_else(|| {
                format!(
                    "router \"{}\": service \"{service_name}\" not found",
                    r.name
                )
            })?;
            let list = middlewares::flatten(&r.middlewares, &mws)
                .map_err(|e| format!("router \"{}\": {e}", r.name))?;
            needs_headers |= r
                .rule
                .expr()
                .matchers()
                .iter()
                .any(|m| matches!(m.kind, MatcherKind::Header | MatcherKind::HeaderRegexp));
            // Keep the stats handles of the same (router, service) from the previous version.
            let stats: Box<[OnceLock<Arc<RouteStats>>]> = match old_routes.get(r.name.as_str()) {
                Some(o) if o.service.name == service.name => o
                    .stats
                    .iter()
                    .map(|c| {
                        let n = OnceLock::new();
                        if let Some(s) = c.get() {
                            let _ = n.set(s.clone());
                        }
                        n
                    })
                    .collect(),
                _ => entrypoints.iter().map(|_| OnceLock::new()).collect(),
            };
            let name = match old_routes.get(r.name.as_str()) {
                Some(o) => o.name.clone(),
                None => Arc::from(r.name.as_str()),
            };
            let obs = RouterObs::of(
                cfg.http
                    .routers
                    .get(&r.name)
                    .and_then(|x| x.observability.as_ref()),
            );
            routes.push(RouteRt {
                obs,
                name,
                response_phase: middlewares::has_response_phase(&list),
                middlewares: list,
                service,
                stats,
            });
        }
        let http01_enabled = tls.has_http01()
            || cfg
                .certificates_resolvers
                .values()
                .any(|r| r.acme.as_ref().is_some_and(|a| a.http_challenge.is_some()));
        Ok(Runtime {
            config: cfg,
            table,
            routes: routes.into_boxed_slice(),
            needs_headers,
            services,
            http01_enabled,
            tls,
            tcp,
            default_cert: old.default_cert.clone(),
            cluster_limiters: middlewares::cluster_limiters(&mws),
            version_stats: Arc::new(crate::version_stats::VersionStats::new(0)),
        })
    }

    /// The compiled route of a route returned by `table.lookup`.
    pub(crate) fn route(&self, r: &Route) -> Option<&RouteRt> {
        let all = self.table.routes();
        // `lookup` returns an element of `routes()`: its index follows from the addresses.
        let size = std::mem::size_of::<Route>().max(1);
        let base = all.as_ptr() as usize;
        let addr = r as *const Route as usize;
        let idx = addr.wrapping_sub(base) / size;
        if all.get(idx).is_some_and(|x| std::ptr::eq(x, r)) {
            return self.routes.get(idx);
        }
        // Not an element of this table (cannot happen): fall back to the name.
        all.iter()
            .position(|x| x.name == r.name)
            .and_then(|i| self.routes.get(i))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::services::lb::Locality;
    use tokio::runtime::Handle;

    fn compile_doc(yaml: &str) -> Result<Runtime, String> {
        let cfg = switchyard_config::parse_document(yaml).unwrap();
        switchyard_config::validate(&cfg).unwrap_or_else(|e| panic!("validate: {e}"));
        let metrics = Metrics::new();
        let handle = Handle::current();
        let loc = Locality::default();
        let env = Env {
            locality: &loc,
            metrics: &metrics,
            handle: &handle,
        };
        let eps = vec!["web".to_string()];
        let old = Runtime::empty(&eps, crate::tls::generate_default_cert().unwrap()).unwrap();
        Runtime::compile(Arc::new(cfg), &eps, &old, &env)
    }

    /// Valid but unusual inputs that the control plane accepts must compile here too.
    #[tokio::test]
    async fn whatever_validate_accepts_compiles() {
        compile_doc(
            r#"
http:
  routers:
    r1: {rule: "Host(`a.com`) && Header(`X-A`, `b`)", service: s1@file, middlewares: [c1@file]}
    r2: {rule: "HostRegexp(`^.+$`)", priority: -5, entryPoints: [other], service: w}
  middlewares:
    c1: {chain: {middlewares: [h, add@file, c2]}}
    c2: {chain: {middlewares: [rs]}}
    h: {headers: {customRequestHeaders: {X-Unicode: "héllo", X-Tab: "a\tb", Host: ""}, customResponseHeaders: {X-Empty: ""}}}
    add: {addPrefix: {prefix: "/with%20space;p=1"}}
    rs: {redirectScheme: {scheme: https, port: ""}}
  services:
    s1:
      loadBalancer:
        servers:
          - {url: "http://bücher.example:8080/base", preservePath: true, weight: 0}
          - {url: "h2c://my_host:50051"}
          - {url: "h2c://My~Host.local:50052"}
          - {url: "https://[::1]", zone: z, region: r}
          - {url: "https://10.0.0.2:8443/p"}
          - {url: "http://user:pw@10.0.0.1"}
        sticky: {cookie: {sameSite: none, maxAge: -1, path: "/a b", domain: .example.com}}
        healthCheck: {path: "/h?x=1&y=é", scheme: h2c, port: 9, interval: 1h, hostname: "health.local:8080", headers: {X-B: "c\td"}}
        passiveHealthCheck: {}
        serversTransport: t
    s2: {loadBalancer: {servers: [{url: "http://a"}], serversTransport: default@internal, strategy: p2c}}
    w: {weighted: {services: [{name: s1, weight: 0}, {name: s2}], sticky: {cookie: {}}, healthCheck: {}}}
    m: {mirroring: {service: w, mirrorBody: false, maxBodySize: 0, mirrors: [{name: s2, percent: 0}]}}
    f: {failover: {service: m, fallback: s2}}
  serversTransports:
    t: {serverName: backend.internal, insecureSkipVerify: true, disableHTTP2: true, maxIdleConnsPerHost: 0, forwardingTimeouts: {dialTimeout: 0, responseHeaderTimeout: 1, idleConnTimeout: 1s, readIdleTimeout: 1s, pingTimeout: 1s}}
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `switchyard_config::MAX_CHAIN_NESTING` is exactly the depth the proxy expands: a router
    /// whose middleware references are nested that deep compiles.
    #[tokio::test]
    async fn chains_nested_to_the_validated_limit_compile() {
        let n = switchyard_config::MAX_CHAIN_NESTING - 1;
        let mut y = String::from("http:\n  routers:\n    r: {rule: \"PathPrefix(`/`)\", service: s, middlewares: [c0]}\n  services:\n    s: {loadBalancer: {servers: [{url: \"http://127.0.0.1:1\"}]}}\n  middlewares:\n");
        for i in 0..n {
            y.push_str(&format!(
                "    c{i}: {{chain: {{middlewares: [c{}]}}}}\n",
                i + 1
            ));
        }
        y.push_str(&format!("    c{n}: {{addPrefix: {{prefix: /p}}}}\n"));
        let rt = compile_doc(&y).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rt.routes[0].middlewares.len(), 1);
    }

    /// Deep graphs compile without recursion (and health works on them).
    #[tokio::test]
    async fn deep_chains_and_service_graphs_compile() {
        let n = 3000;
        let mut y = String::from("http:\n  routers:\n    r: {rule: \"PathPrefix(`/`)\", service: f0, middlewares: [c0]}\n  middlewares:\n");
        for i in 0..n {
            y.push_str(&format!(
                "    c{i}: {{chain: {{middlewares: [c{}]}}}}\n",
                i + 1
            ));
        }
        y.push_str(&format!(
            "    c{n}: {{addPrefix: {{prefix: /p}}}}\n  services:\n"
        ));
        for i in 0..n {
            y.push_str(&format!(
                "    f{i}: {{failover: {{service: f{}, fallback: lb{i}}}}}\n    lb{i}: {{loadBalancer: {{servers: [{{url: \"http://127.0.0.1:1\"}}]}}}}\n",
                i + 1
            ));
        }
        y.push_str(&format!(
            "    f{n}: {{loadBalancer: {{servers: [{{url: \"http://127.0.0.1:2\"}}]}}}}\n"
        ));
        let rt = compile_doc(&y).unwrap();
        assert_eq!(rt.routes[0].middlewares.len(), 1);
        let root = &rt.services.nodes["f0"];
        assert!(root.reach.is_none());
        assert!(root.healthy());
    }
}
