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
//! A delta from the config stream goes through [`Runtime::compile_change`] instead: the same
//! result, computed from the previous version in time proportional to the change (changed
//! resources validated with what references them, the route table derived from the previous
//! one, everything the change does not touch shared by `Arc`).
//!
//! A request loads the current `Arc<Runtime>` once (the `ArcSwap` in [`crate::Proxy`]) and
//! keeps it until its response body is finished, so in-flight requests complete on the
//! version they started with while new requests use the new one.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rustls::sign::CertifiedKey;
use switchyard_config::{DynamicConfig, ResourceKind};
use switchyard_router::{Route, RouteTable, SlotMap};

use crate::metrics::{Metrics, RouteStats};
use crate::middlewares::{self, Mw};
use crate::services::{self, Env, Node, Services};
use crate::util::resolve_ref;

/// One router, ready to serve.
pub(crate) struct RouteRt {
    /// The route of the version's table this was compiled for (the very `Arc`: see
    /// [`Runtime::route`]); its name is the router name.
    pub route: Arc<Route>,
    pub service: Arc<Node>,
    pub middlewares: Box<[Arc<Mw>]>,
    /// Whether a middleware modifies responses.
    pub response_phase: bool,
    /// The router's `observability` switches.
    pub obs: RouterObs,
    /// Number of entry points (the length of the stats list).
    eps: u32,
    /// Per entry point (index), created on first use; the list itself too (a route that
    /// serves no request costs no allocation here: 100k routers, few of them busy).
    stats: OnceLock<StatsList>,
}

/// The stats handles of a route, per entry point index.
type StatsList = Box<[OnceLock<Arc<RouteStats>>]>;

impl RouteRt {
    /// The stats of this route on entry point `ep`.
    pub(crate) fn stats(
        &self,
        ep: usize,
        ep_name: &Arc<str>,
        metrics: &Metrics,
    ) -> Option<Arc<RouteStats>> {
        if ep >= self.eps as usize {
            return None;
        }
        let cells = self
            .stats
            .get_or_init(|| (0..self.eps).map(|_| OnceLock::new()).collect());
        let cell = cells.get(ep)?;
        Some(
            cell.get_or_init(|| metrics.route_stats(ep_name, &self.route.name, &self.service.name))
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
    /// The compiled routers by their route's slot ([`Route::slot`]: a lookup's [`Route`] →
    /// [`Runtime::route`] by index, no name hashed per request); a version derived from a
    /// delta shares every unchanged chunk with the previous one.
    pub routes: SlotMap<Arc<RouteRt>>,
    /// Whether any rule looks at headers (else the header list is not built per request).
    pub needs_headers: bool,
    /// How many routes look at headers (`needs_headers` is `header_routes > 0`).
    header_routes: usize,
    pub services: Arc<Services>,
    /// Every compiled middleware by name (shared with the next version while no middleware
    /// or service changes).
    mws: Arc<HashMap<String, Arc<Mw>>>,
    /// Certificates, TLS options and ACME answers of this version.
    pub tls: Arc<switchyard_tls::TlsTable>,
    /// TCP routers per entry point ([`crate::tcp`]).
    pub tcp: Arc<crate::tcp::router::TcpTable>,
    /// The proxy's generated default certificate (same for every version).
    pub default_cert: Arc<CertifiedKey>,
    /// HTTP-01 challenges are answered (a resolver uses `httpChallenge`, or one is pending).
    pub http01_enabled: bool,
    /// `rateLimit` and `inFlightReq` middlewares with `scope: cluster`, by name (see `crate::limiter`).
    pub cluster_limiters: Vec<(String, Arc<Mw>)>,
    /// Request counters of this version, for rollouts (set by `Proxy::apply`).
    pub version_stats: Arc<crate::version_stats::VersionStats>,
}

/// Whether a route's rule looks at request headers.
fn reads_headers(r: &Route) -> bool {
    r.rule.reads_headers()
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
            routes: SlotMap::default(),
            needs_headers: false,
            header_routes: 0,
            services: Arc::default(),
            mws: Arc::default(),
            tls: Arc::new(tls),
            tcp: Arc::default(),
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
        let (routes, header_routes) =
            compile_routes(&table, &cfg, &services, &mws, entrypoints, old)?;
        Ok(Runtime {
            http01_enabled: http01_enabled(&cfg, &tls),
            config: cfg,
            table,
            routes,
            needs_headers: header_routes > 0,
            header_routes,
            services: Arc::new(services),
            tls: Arc::new(tls),
            tcp: Arc::new(tcp),
            default_cert: old.default_cert.clone(),
            cluster_limiters: middlewares::cluster_limiters(&mws),
            mws: Arc::new(mws),
            version_stats: Arc::new(crate::version_stats::VersionStats::new(0)),
        })
    }

    /// [`Runtime::compile`] of `cfg`, which is `old.config` with the resources `changed`
    /// created, updated or removed (a delta from the config stream; more names are fine),
    /// doing only the work the change needs and sharing everything else with `old`:
    ///
    /// * validation of the changed resources and of what references them
    ///   ([`switchyard_config::validate_change`], exactly `validate`'s verdict and errors);
    /// * the route table derived from `old`'s ([`RouteTable::apply_changes`]) and the
    ///   compiled routes of the changed routers;
    /// * middlewares and services compiled again only when one of them (or a servers
    ///   transport) changed, then every route's chain is linked again;
    /// * the TLS table and TCP routing compiled again only when a TLS resource, a router with
    ///   a `tls` section or a TCP resource changed.
    ///
    /// The result serves exactly as `compile(cfg)` (see the tests).
    pub(crate) fn compile_change(
        cfg: Arc<DynamicConfig>,
        changed: &[(ResourceKind, String)],
        entrypoints: &[String],
        old: &Runtime,
        env: &Env<'_>,
    ) -> Result<Runtime, String> {
        use ResourceKind as K;
        let keys: Vec<(ResourceKind, &str)> =
            changed.iter().map(|(k, n)| (*k, n.as_str())).collect();
        switchyard_config::validate_change(&old.config, &cfg, &keys).map_err(|e| e.to_string())?;
        let routers: Vec<&str> = keys
            .iter()
            .filter(|(k, _)| *k == K::Router)
            .map(|(_, n)| *n)
            .collect();
        let table = old
            .table
            .apply_changes(&cfg, Some(entrypoints), &routers)
            .map_err(|e| e.to_string())?;
        let tls_router =
            |c: &DynamicConfig, n: &str| c.http.routers.get(n).is_some_and(|r| r.tls.is_some());
        let tls_routers_changed = routers
            .iter()
            .any(|n| tls_router(&old.config, n) || tls_router(&cfg, n));
        let tls_changed = tls_routers_changed || keys.iter().any(|(k, _)| k.touches_tls());
        let tcp_changed = tls_changed
            || keys
                .iter()
                .any(|(k, _)| matches!(k, K::TcpRouter | K::TcpService | K::TcpMiddleware));
        let services_changed = keys
            .iter()
            .any(|(k, _)| matches!(k, K::Service | K::ServersTransport));
        // `errors` middlewares hold their service node: they are compiled again with services.
        let mws_changed = services_changed || keys.iter().any(|(k, _)| *k == K::Middleware);

        let tls = if tls_changed {
            Arc::new(
                switchyard_tls::compile(&cfg, Some(old.default_cert.clone()))
                    .map_err(|e| e.to_string())?,
            )
        } else {
            old.tls.clone()
        };
        let tcp = if tcp_changed {
            Arc::new(crate::tcp::router::TcpTable::compile(
                &cfg,
                entrypoints,
                &tls,
                env.locality,
            )?)
        } else {
            old.tcp.clone()
        };
        let mws = if mws_changed {
            Arc::new(middlewares::compile_all(&cfg.http.middlewares)?)
        } else {
            old.mws.clone()
        };
        let services = if services_changed {
            Arc::new(services::compile(
                &cfg,
                Some((&old.config, &old.services)),
                env,
            )?)
        } else {
            old.services.clone()
        };
        if mws_changed {
            middlewares::errors::link(&mws, &services)?;
        }
        let (routes, header_routes) = if mws_changed || !table.keeps_slots_of(&old.table) {
            // Every route's chain and service node again (no rule is compiled again); also
            // when the table was built whole (its routes are new, their slots renumbered).
            compile_routes(&table, &cfg, &services, &mws, entrypoints, old)?
        } else {
            // The changed routers' slots: those of their old routes cleared first, then those
            // of their new routes set (a changed route may take its old route's slot; every
            // other slot belongs to a route both tables share, whose entry stays). A name
            // listed twice is cleared and set twice: the same result.
            let mut routes = old.routes.clone();
            let mut header_routes = old.header_routes;
            for name in &routers {
                if let Some(r) = old.table.route(name) {
                    header_routes -= usize::from(reads_headers(r));
                    routes.set(r.slot(), None);
                }
            }
            for name in &routers {
                if let Some(r) = table.route(name) {
                    header_routes += usize::from(reads_headers(r));
                    let rt = route_rt(r, &cfg, &services, &mws, entrypoints, old)?;
                    routes.set(r.slot(), Some(Arc::new(rt)));
                }
            }
            (routes, header_routes)
        };
        Ok(Runtime {
            http01_enabled: http01_enabled(&cfg, &tls),
            config: cfg,
            table,
            routes,
            needs_headers: header_routes > 0,
            header_routes,
            services,
            tls,
            tcp,
            default_cert: old.default_cert.clone(),
            cluster_limiters: if mws_changed {
                middlewares::cluster_limiters(&mws)
            } else {
                old.cluster_limiters.clone()
            },
            mws,
            version_stats: Arc::new(crate::version_stats::VersionStats::new(0)),
        })
    }

    /// The compiled route of a route returned by `self.table`'s lookups: found by the
    /// route's slot, and only if it was compiled for that very route (the same `Arc<Route>`,
    /// which it keeps alive, so the address cannot be another route's): a route of another
    /// version, or a slot left stale by a bug, finds nothing (404), never another router's
    /// middlewares and service.
    #[inline]
    pub(crate) fn route(&self, r: &Route) -> Option<&RouteRt> {
        let rt = self.routes.get(r.slot())?;
        std::ptr::eq(Arc::as_ptr(&rt.route), r).then_some(&**rt)
    }

    /// The compiled route of router `name` (not for the request path: hashes the name).
    #[cfg(test)]
    pub(crate) fn route_named(&self, name: &str) -> Option<&RouteRt> {
        self.route(self.table.route(name)?)
    }
}

/// Every route of `table` compiled ([`route_rt`]), in routing order (so the first error is
/// the same whatever the version was derived from), and how many read headers.
fn compile_routes(
    table: &RouteTable,
    cfg: &DynamicConfig,
    services: &Services,
    mws: &HashMap<String, Arc<Mw>>,
    entrypoints: &[String],
    old: &Runtime,
) -> Result<(SlotMap<Arc<RouteRt>>, usize), String> {
    let mut routes = SlotMap::default();
    let mut header_routes = 0;
    for r in table.route_arcs() {
        header_routes += usize::from(reads_headers(r));
        let rt = route_rt(r, cfg, services, mws, entrypoints, old)?;
        routes.set(r.slot(), Some(Arc::new(rt)));
    }
    Ok((routes, header_routes))
}

/// Whether HTTP-01 challenges are answered.
fn http01_enabled(cfg: &DynamicConfig, tls: &switchyard_tls::TlsTable) -> bool {
    tls.has_http01()
        || cfg
            .certificates_resolvers
            .values()
            .any(|r| r.acme.as_ref().is_some_and(|a| a.http_challenge.is_some()))
}

/// The compiled form of route `r`: its service node, flattened middleware chain,
/// observability switches, and the stats handles of the same (router, service) in `old`.
fn route_rt(
    r: &Arc<Route>,
    cfg: &DynamicConfig,
    services: &Services,
    mws: &HashMap<String, Arc<Mw>>,
    entrypoints: &[String],
    old: &Runtime,
) -> Result<RouteRt, String> {
    let service_name = resolve_ref(&r.service);
    let service = services.nodes.get(service_name).cloned().ok_or_else(|| {
        format!(
            "router \"{}\": service \"{service_name}\" not found",
            r.name
        )
    })?;
    let list = middlewares::flatten(&r.middlewares, mws)
        .map_err(|e| format!("router \"{}\": {e}", r.name))?;
    let prev = old.table.route(&r.name).and_then(|o| old.route(o));
    // Keep the stats handles of the same (router, service) from the previous version.
    let stats = OnceLock::new();
    if let Some(old) = prev
        .filter(|o| o.service.name == service.name)
        .and_then(|o| o.stats.get())
    {
        let copy: StatsList = old
            .iter()
            .map(|c| {
                let n = OnceLock::new();
                if let Some(s) = c.get() {
                    let _ = n.set(s.clone());
                }
                n
            })
            .collect();
        let _ = stats.set(copy);
    }
    let obs = RouterObs::of(
        cfg.http
            .routers
            .get(&*r.name)
            .and_then(|x| x.observability.as_deref()),
    );
    Ok(RouteRt {
        obs,
        route: Arc::clone(r),
        response_phase: middlewares::has_response_phase(&list),
        middlewares: list,
        service,
        eps: u32::try_from(entrypoints.len()).unwrap_or(u32::MAX),
        stats,
    })
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
        let (metrics, handle, loc) = env_parts();
        let env = Env {
            locality: &loc,
            metrics: &metrics,
            handle: &handle,
        };
        let eps = vec!["web".to_string()];
        let old = Runtime::empty(&eps, crate::tls::generate_default_cert().unwrap()).unwrap();
        Runtime::compile(Arc::new(cfg), &eps, &old, &env)
    }

    /// What a request sees of a runtime: the route, its service, its middleware chain.
    fn served(rt: &Runtime, host: &str, path: &str, header: bool) -> Option<String> {
        let headers = [("x-a", "1")];
        let req = switchyard_config::rules::RequestView {
            method: "GET",
            host,
            path,
            query: None,
            headers: if header { &headers } else { &[] },
            client_ip: None,
        };
        let r = rt.table.lookup("web", &req)?;
        let c = rt.route(r).expect("compiled route");
        Some(format!(
            "{} -> {} via {} middlewares (response phase {})",
            r.name,
            c.service.name,
            c.middlewares.len(),
            c.response_phase
        ))
    }

    /// Every route of the table finds the route compiled for it (by slot), and no slot holds
    /// anything else.
    fn every_route_finds_its_own(rt: &Runtime) {
        for r in rt.table.routes() {
            let c = rt
                .route(r)
                .unwrap_or_else(|| panic!("{} has no compiled route", r.name));
            assert!(std::ptr::eq(&*c.route, r));
        }
        assert_eq!(rt.routes.len(), rt.table.len());
    }

    fn env_parts() -> (Metrics, Handle, Locality) {
        (Metrics::new(), Handle::current(), Locality::default())
    }

    /// A route of another version (the same router, a route compiled again) finds nothing in
    /// this version's slots, even at the same slot: never another version's chain.
    #[tokio::test]
    async fn a_route_of_another_version_finds_nothing() {
        let y = |rule: &str| {
            format!("http:\n  routers:\n    r: {{rule: \"{rule}\", service: s}}\n  services:\n    s: {{loadBalancer: {{servers: [{{url: \"http://127.0.0.1:1\"}}]}}}}\n")
        };
        let a = compile_doc(&y("PathPrefix(`/`)")).unwrap();
        let b = compile_doc(&y("PathPrefix(`/b`)")).unwrap();
        let (ra, rb) = (a.table.route("r").unwrap(), b.table.route("r").unwrap());
        assert_eq!(ra.slot(), rb.slot());
        assert!(a.route(ra).is_some() && b.route(rb).is_some());
        assert!(a.route(rb).is_none() && b.route(ra).is_none());
    }

    /// Deltas that end in a table built whole (a large change; slots used up by churn): the
    /// compiled routes are made again for the new routes, and every route finds its own.
    #[tokio::test]
    async fn a_rebuilt_table_gets_its_routes_compiled_again() {
        use switchyard_config::delta::{self, DeltaChange};
        let (metrics, handle, loc) = env_parts();
        let env = Env {
            locality: &loc,
            metrics: &metrics,
            handle: &handle,
        };
        let eps = vec!["web".to_string()];
        let empty = Runtime::empty(&eps, crate::tls::generate_default_cert().unwrap()).unwrap();
        let svc = DeltaChange::from_wire(
            "service",
            "s".to_string(),
            r#"{"loadBalancer":{"servers":[{"url":"http://127.0.0.1:1"}]}}"#,
        )
        .unwrap();
        let router = |n: &str| {
            DeltaChange::from_wire(
                "router",
                n.to_string(),
                &format!(r#"{{"rule":"Host(`{n}.com`)","service":"s"}}"#),
            )
            .unwrap()
        };
        let step = |held: &Runtime, changes: Vec<DeltaChange>| -> (Runtime, bool) {
            let cfg = Arc::new(delta::apply(&held.config, &changes));
            let keys: Vec<(ResourceKind, String)> =
                changes.iter().map(|c| (c.kind, c.name.clone())).collect();
            let inc = Runtime::compile_change(cfg, &keys, &eps, held, &env).unwrap();
            every_route_finds_its_own(&inc);
            let kept = inc.table.keeps_slots_of(&held.table);
            (inc, kept)
        };
        let mut first = vec![svc];
        first.extend((0..100).map(|i| router(&format!("r{i}"))));
        let (mut held, _) = step(&empty, first);
        // 70 routers at once: the table is built whole.
        let (next, kept) = step(&held, (0..70).map(|i| router(&format!("q{i}"))).collect());
        assert!(!kept);
        held = next;
        // One router created and removed again and again: slots run out, once.
        let mut rebuilds = 0;
        for i in 0..2600 {
            let change = if i % 2 == 0 {
                router("n")
            } else {
                DeltaChange::from_wire("router", "n".to_string(), "").unwrap()
            };
            let (next, kept) = step(&held, vec![change]);
            rebuilds += usize::from(!kept);
            let r = next.table.lookup("web", &request("n.com"));
            assert_eq!(r.is_some(), i % 2 == 0);
            let r = next.table.lookup("web", &request("r7.com")).unwrap();
            assert_eq!(&*next.route(r).unwrap().route.name, "r7");
            held = next;
        }
        assert_eq!(rebuilds, 1);
    }

    fn request(host: &str) -> switchyard_config::rules::RequestView<'_> {
        switchyard_config::rules::RequestView {
            method: "GET",
            host,
            path: "/",
            query: None,
            headers: &[],
            client_ip: None,
        }
    }

    /// For random sequences of deltas (routers, services, middlewares, transports), the
    /// runtime derived change after change by `compile_change` serves exactly as one compiled
    /// from scratch, and refuses exactly the same changes with the same message.
    #[tokio::test]
    async fn a_runtime_derived_from_deltas_serves_as_a_full_compile() {
        use switchyard_config::delta::{self, DeltaChange};
        let metrics = Metrics::new();
        let handle = Handle::current();
        let loc = Locality::default();
        let env = Env {
            locality: &loc,
            metrics: &metrics,
            handle: &handle,
        };
        let eps = vec!["web".to_string()];
        let empty = Runtime::empty(&eps, crate::tls::generate_default_cert().unwrap()).unwrap();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let names = ["a", "b", "c", "d"];
        let mut held =
            Runtime::compile(Arc::new(DynamicConfig::default()), &eps, &empty, &env).unwrap();
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..400 {
            let mut changes = Vec::new();
            for _ in 0..1 + next(3) {
                let n = names[next(4) as usize];
                let x = names[next(4) as usize];
                let (kind, json) = match next(4) {
                    0 => (
                        "router",
                        match next(6) {
                            0 => String::new(),
                            1 => format!(r#"{{"rule":"Host(`{n}.com`)","service":"{x}"}}"#),
                            2 => format!(
                                r#"{{"rule":"PathPrefix(`/{n}`)","service":"{x}","middlewares":["{x}"]}}"#
                            ),
                            3 => format!(
                                r#"{{"rule":"Host(`{n}.com`) && Header(`X-A`, `1`)","service":"{x}","priority":{}}}"#,
                                next(3)
                            ),
                            4 => format!(r#"{{"rule":"Host(`{x}.com`)","service":"{x}@file"}}"#),
                            _ => format!(r#"{{"rule":"Host(`","service":"{x}"}}"#),
                        },
                    ),
                    1 => (
                        "service",
                        match next(4) {
                            0 => String::new(),
                            1 => r#"{"loadBalancer":{"servers":[{"url":"http://127.0.0.1:1"}]}}"#
                                .to_string(),
                            2 => format!(
                                r#"{{"loadBalancer":{{"servers":[{{"url":"http://127.0.0.1:2"}}],"serversTransport":"{x}"}}}}"#
                            ),
                            _ => format!(r#"{{"weighted":{{"services":[{{"name":"{x}"}}]}}}}"#),
                        },
                    ),
                    2 => (
                        "middleware",
                        match next(5) {
                            0 => String::new(),
                            1 => r#"{"addPrefix":{"prefix":"/p"}}"#.to_string(),
                            2 => format!(r#"{{"chain":{{"middlewares":["{x}"]}}}}"#),
                            3 => format!(
                                r#"{{"errors":{{"status":["500"],"service":"{x}","query":"/e"}}}}"#
                            ),
                            _ => r#"{"headers":{"customResponseHeaders":{"X-B":"1"}}}"#.to_string(),
                        },
                    ),
                    _ => (
                        "serversTransport",
                        match next(2) {
                            0 => String::new(),
                            _ => r#"{"serverName":"x.internal"}"#.to_string(),
                        },
                    ),
                };
                changes.push(DeltaChange::from_wire(kind, n.to_string(), &json).unwrap());
            }
            let cfg = Arc::new(delta::apply(&held.config, &changes));
            let keys: Vec<(ResourceKind, String)> =
                changes.iter().map(|c| (c.kind, c.name.clone())).collect();
            let inc = Runtime::compile_change(cfg.clone(), &keys, &eps, &held, &env);
            let full = Runtime::compile(cfg.clone(), &eps, &held, &env);
            match (inc, full) {
                (Ok(inc), Ok(full)) => {
                    accepted += 1;
                    assert_eq!(inc.needs_headers, full.needs_headers);
                    assert_eq!(inc.routes.len(), full.routes.len());
                    every_route_finds_its_own(&inc);
                    let mut a: Vec<&String> = inc.services.nodes.keys().collect();
                    let mut b: Vec<&String> = full.services.nodes.keys().collect();
                    a.sort();
                    b.sort();
                    assert_eq!(a, b);
                    for host in ["a.com", "b.com", "c.com", "d.com", "x.org"] {
                        for path in ["/", "/a", "/b/x", "/d"] {
                            for header in [false, true] {
                                assert_eq!(
                                    served(&inc, host, path, header),
                                    served(&full, host, path, header),
                                    "{host}{path} after {changes:?}"
                                );
                            }
                        }
                    }
                    held = inc;
                }
                (Err(a), Err(b)) => {
                    refused += 1;
                    assert_eq!(a, b, "after {changes:?}");
                }
                (a, b) => panic!(
                    "incremental {:?} vs full {:?} after {changes:?}",
                    a.err(),
                    b.err()
                ),
            }
        }
        assert!(
            accepted > 50 && refused > 50,
            "{accepted} accepted, {refused} refused"
        );
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
        assert_eq!(rt.route_named("r").unwrap().middlewares.len(), 1);
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
        assert_eq!(rt.route_named("r").unwrap().middlewares.len(), 1);
        let root = &rt.services.nodes["f0"];
        assert!(root.reach.is_none());
        assert!(root.healthy());
    }
}
