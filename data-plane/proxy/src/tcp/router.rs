//! The TCP routing table of one config version: per entry point, a
//! [`switchyard_config::tcp::TcpMux`] (the pure choice between TCP routers and HTTP, shared
//! with `switchyard explain tcp`) whose routes carry what serving needs: mode (plain,
//! passthrough, or terminate with the router's TLS option), service and middlewares.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::counter::Counter;
use rustls::ServerConfig;
use switchyard_config::tcp::{ConnView, TcpMux};
use switchyard_config::DynamicConfig;

use super::middleware::TcpMw;
use super::service::{compile_all, TcpSvc};
use crate::metrics::Metrics;
use crate::services::lb::Locality;
use crate::util::resolve_ref;

/// How a TCP router handles the connection.
pub(crate) enum Mode {
    /// Plain TCP (no `tls`).
    Plain,
    /// `tls.passthrough`: the TLS bytes go to the backend untouched.
    Passthrough,
    /// TLS terminated by the proxy with this config (the TLS option's, without ALPN: a TCP
    /// client's protocols are the backend's business).
    Terminate(Arc<ServerConfig>),
}

/// What happened to a connection given to a TCP router (the `result` label of
/// `switchyard_proxy_tcp_connections_total`).
#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    Ok = 0,
    Refused = 1,
    TlsFailed = 2,
    NoBackend = 3,
}

const OUTCOMES: [&str; 4] = ["ok", "refused", "tls_failed", "no_backend"];

/// One TCP router, ready to serve.
pub(crate) struct TcpRoute {
    pub name: Arc<str>,
    pub mode: Mode,
    pub service: Arc<TcpSvc>,
    pub middlewares: Box<[Arc<TcpMw>]>,
    /// This router's connection counters, looked up once (on first use).
    counters: OnceLock<[Counter; 4]>,
}

impl TcpRoute {
    /// Count a connection of this router.
    pub(crate) fn count(&self, metrics: &Metrics, o: Outcome) {
        let c = self
            .counters
            .get_or_init(|| OUTCOMES.map(|r| metrics.tcp_counter(&self.name, r)));
        c[o as usize].inc();
    }
}

/// The TCP routing of a config version, by entry point index.
#[derive(Default)]
pub(crate) struct TcpTable {
    eps: Vec<TcpMux<Arc<TcpRoute>>>,
}

impl TcpTable {
    /// The mux of entry point `ep`.
    pub(crate) fn ep(&self, ep: usize) -> Option<&TcpMux<Arc<TcpRoute>>> {
        self.eps.get(ep)
    }

    /// The TCP route for a connection on `ep`, or `None` for HTTP.
    pub(crate) fn decide(&self, ep: usize, tls: bool, c: &ConnView<'_>) -> Option<Arc<TcpRoute>> {
        self.eps.get(ep)?.decide(tls, c).map(|r| r.value.clone())
    }

    /// Compile the `tcp:` section of `cfg` for the proxy's entry points.
    pub(crate) fn compile(
        cfg: &DynamicConfig,
        entrypoints: &[String],
        tls: &switchyard_tls::TlsTable,
        me: &Locality,
    ) -> Result<TcpTable, String> {
        if cfg.tcp.routers.is_empty() {
            return Ok(TcpTable::default());
        }
        let services = compile_all(&cfg.tcp, me)?;
        let mut mws: HashMap<&str, Arc<TcpMw>> = HashMap::new();
        for (name, m) in &cfg.tcp.middlewares {
            mws.insert(name, Arc::new(TcpMw::compile(name, m)?));
        }
        let mut term: BTreeMap<String, Arc<ServerConfig>> = BTreeMap::new();
        // Each router compiled once, shared by the entry points it is on.
        let mut routes: HashMap<String, Arc<TcpRoute>> = HashMap::new();
        for (name, r) in &cfg.tcp.routers {
            let service_name = resolve_ref(&r.service);
            let service = services.get(service_name).cloned().ok_or_else(|| {
                format!("tcpRouter {name:?}: tcpService {service_name:?} not found")
            })?;
            let middlewares = r
                .middlewares
                .iter()
                .map(|m| {
                    let n = resolve_ref(m);
                    mws.get(n)
                        .cloned()
                        .ok_or_else(|| format!("tcpRouter {name:?}: tcpMiddleware {n:?} not found"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mode = match &r.tls {
                None => Mode::Plain,
                Some(t) if t.passthrough => Mode::Passthrough,
                Some(t) => {
                    let opt = t
                        .options
                        .as_deref()
                        .filter(|o| !o.is_empty())
                        .map_or("default", resolve_ref)
                        .to_string();
                    let c = match term.get(&opt) {
                        Some(c) => c.clone(),
                        None => {
                            let base = tls.option(&opt).ok_or_else(|| {
                                format!(
                                    "tcpRouter {name:?}: tls.options: TLS option {opt:?} not found"
                                )
                            })?;
                            let mut c = (**base).clone();
                            c.alpn_protocols.clear();
                            let c = Arc::new(c);
                            term.insert(opt, c.clone());
                            c
                        }
                    };
                    Mode::Terminate(c)
                }
            };
            routes.insert(
                name.clone(),
                Arc::new(TcpRoute {
                    name: Arc::from(name.as_str()),
                    mode,
                    service,
                    middlewares: middlewares.into_boxed_slice(),
                    counters: OnceLock::new(),
                }),
            );
        }
        let eps = entrypoints
            .iter()
            .map(|ep| {
                TcpMux::build(cfg, Some(ep), |name, _| {
                    routes
                        .get(name)
                        .cloned()
                        .ok_or_else(|| format!("tcpRouter {name:?} not compiled"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TcpTable { eps })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn routes_per_entry_point() {
        let doc = r#"
http:
  routers:
    site: {entryPoints: [web], rule: "Host(`www.test`)", service: site, tls: {}}
  services:
    site: {loadBalancer: {servers: [{url: "http://127.0.0.1:1"}]}}
tcp:
  routers:
    a-pass: {entryPoints: [web], rule: "HostSNI(`a.tcp.test`)", service: a, tls: {passthrough: true}}
    term: {entryPoints: [web], rule: "HostSNI(`term.tcp.test`)", service: a, tls: {}}
    echo: {entryPoints: [db], rule: "HostSNI(`*`)", service: w}
  services:
    a: {loadBalancer: {servers: [{address: "127.0.0.1:1"}]}}
    w: {weighted: {services: [{name: a}]}}
"#;
        let cfg = switchyard_config::parse_document(doc).unwrap();
        switchyard_config::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let tls = switchyard_tls::compile(&cfg, Some(crate::tls::generate_default_cert().unwrap()))
            .unwrap();
        let eps = ["web".to_string(), "db".to_string()];
        let t = TcpTable::compile(&cfg, &eps, &tls, &Locality::default()).unwrap();
        let c = |sni| ConnView {
            sni,
            client_ip: "127.0.0.1".parse().unwrap(),
            alpn: &[],
        };
        let name = |r: Option<Arc<TcpRoute>>| r.map(|r| r.name.to_string());
        assert_eq!(
            name(t.decide(0, true, &c(Some("a.tcp.test")))).as_deref(),
            Some("a-pass")
        );
        assert_eq!(
            name(t.decide(0, true, &c(Some("term.tcp.test")))).as_deref(),
            Some("term")
        );
        assert_eq!(name(t.decide(0, true, &c(Some("www.test")))), None);
        assert_eq!(name(t.decide(0, false, &c(None))), None);
        assert_eq!(name(t.decide(1, false, &c(None))).as_deref(), Some("echo"));
        assert!(t.ep(1).unwrap().plain_only());
    }
}
