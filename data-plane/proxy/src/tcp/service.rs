//! TCP services: `loadBalancer` (round robin over the servers of the nearest zone level that
//! are not ejected, as the HTTP balancer's zone awareness: zone, then region, then anywhere)
//! and `weighted` (smooth weighted round robin over child services).
//!
//! Health is passive: a server whose dial fails is ejected for [`EJECTION`] and the next one
//! is tried (each server at most once per connection). Active TCP health checks are not
//! implemented (validation refuses `healthCheck`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use switchyard_config::tcp::TcpService;

use crate::services::lb::{level, Locality};
use crate::util::now_ms;

/// How long a server whose dial failed is skipped.
pub(crate) const EJECTION: Duration = Duration::from_secs(5);

/// One TCP backend.
pub(crate) struct TcpServer {
    pub address: Arc<str>,
    /// `address` when it is an IP literal (no resolution per connection).
    pub addr: Option<SocketAddr>,
    /// Connect with TLS (`tls: true`); the server name is the address's host.
    pub tls: bool,
    level: u8,
    ejected_until: AtomicU64,
}

impl TcpServer {
    fn available(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) <= now
    }

    /// Skip this server for [`EJECTION`].
    pub(crate) fn eject(&self) {
        let until = now_ms() + u64::try_from(EJECTION.as_millis()).unwrap_or(u64::MAX);
        self.ejected_until.store(until, Ordering::Relaxed);
    }
}

/// How a load balancer dials its servers: its TCP servers transport (or Traefik's
/// `default@internal` one), compiled once per config version.
pub(crate) struct Dialer {
    /// Dial timeout; `None`: no limit (`dialTimeout: 0`).
    pub timeout: Option<Duration>,
    /// TCP keep-alive period; `None`: off (negative `dialKeepAlive`).
    pub keep_alive: Option<Duration>,
    /// PROXY protocol version to send (1 or 2), if any.
    pub proxy_protocol: Option<u8>,
    /// `terminationDelay`; `None`: wait for both directions.
    pub termination_delay: Option<Duration>,
    /// TLS client config for `tls: true` servers (no ALPN).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The transport's `tls.serverName` (else the server address's host).
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// Traefik's `default@internal` TCP transport: 30 s dial timeout, 15 s keep-alive.
pub(crate) const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
const DEFAULT_TERMINATION_DELAY: Duration = Duration::from_millis(100);

/// A `loadBalancer` TCP service.
pub(crate) struct TcpBalancer {
    pub servers: Box<[Arc<TcpServer>]>,
    next: AtomicUsize,
    /// How servers are dialled (shared by the balancers naming the same transport).
    pub dialer: Arc<Dialer>,
}

impl TcpBalancer {
    /// The server to try first and the rotation start it was picked at (the first of
    /// [`candidates`](Self::candidates) from that start), without allocating.
    pub(crate) fn first(&self) -> Option<(usize, &Arc<TcpServer>)> {
        let n = self.servers.len();
        if n == 0 {
            return None;
        }
        let now = now_ms();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(bool, u8, &Arc<TcpServer>)> = None;
        for i in 0..n {
            let s = &self.servers[(start + i) % n];
            let k = (!s.available(now), s.level);
            if best.is_none_or(|(u, l, _)| k < (u, l)) {
                best = Some((k.0, k.1, s));
            }
        }
        best.map(|(_, _, s)| (start, s))
    }

    /// Servers to try, in order: round robin among the available servers of the best level,
    /// then the others (ejected ones last).
    #[cfg(test)]
    pub(crate) fn candidates(&self) -> Vec<Arc<TcpServer>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        self.candidates_from(start)
    }

    /// [`candidates`](Self::candidates) for rotation start `start`.
    pub(crate) fn candidates_from(&self, start: usize) -> Vec<Arc<TcpServer>> {
        let now = now_ms();
        let n = self.servers.len();
        if n == 0 {
            return Vec::new();
        }
        let mut order: Vec<Arc<TcpServer>> = (0..n)
            .map(|i| self.servers[(start + i) % n].clone())
            .collect();
        // Stable: keeps the rotation within each (availability, level) group.
        order.sort_by_key(|s| (!s.available(now), s.level));
        order
    }
}

/// A compiled TCP service.
pub(crate) enum TcpSvc {
    Lb(TcpBalancer),
    Weighted {
        children: Box<[(Arc<TcpSvc>, i64)]>,
        /// Smooth WRR state: current weights.
        current: Mutex<Vec<i64>>,
    },
}

impl TcpSvc {
    /// The load balancer that serves the next connection (weighted services pick a child).
    pub(crate) fn pick(self: &Arc<Self>) -> Option<Arc<TcpSvc>> {
        let mut node = self.clone();
        // Depth is bounded by validation (no cycles) and by the number of services.
        for _ in 0..64 {
            let next = match &*node {
                TcpSvc::Lb(_) => return Some(node),
                TcpSvc::Weighted { children, current } => {
                    let mut cur = current.lock().unwrap_or_else(PoisonError::into_inner);
                    let total: i64 = children.iter().map(|(_, w)| *w).sum();
                    if total <= 0 {
                        return None;
                    }
                    let mut best = 0;
                    for (i, (_, w)) in children.iter().enumerate() {
                        cur[i] += w;
                        if cur[i] > cur[best] {
                            best = i;
                        }
                    }
                    cur[best] -= total;
                    children[best].0.clone()
                }
            };
            node = next;
        }
        None
    }
}

/// A `Duration` of the config as signed milliseconds-precision std duration (`None` when
/// negative); validation has refused unparsable values.
fn signed(d: &switchyard_config::Duration) -> Option<Duration> {
    let n = d.as_nanos().unwrap_or(0);
    u64::try_from(n).ok().map(Duration::from_nanos)
}

/// The TLS client config of a transport (`None`: Mozilla's roots, no client certificate).
fn client_tls(
    t: Option<&switchyard_config::tcp::TcpTransportTls>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let http = t.map(|t| t.as_http()).unwrap_or_default();
    let base = switchyard_tls::client_config(&http, false)?;
    let mut c = (*base).clone();
    c.alpn_protocols.clear();
    Ok(Arc::new(c))
}

/// The default transport's TLS client config (Mozilla's roots), built once per process.
fn default_tls() -> Option<Arc<rustls::ClientConfig>> {
    static CFG: std::sync::OnceLock<Option<Arc<rustls::ClientConfig>>> = std::sync::OnceLock::new();
    CFG.get_or_init(|| client_tls(None).ok()).clone()
}

/// Compile a TCP servers transport (`None`: the default one).
fn compile_dialer(
    name: &str,
    t: Option<&switchyard_config::tcp::TcpServersTransport>,
) -> Result<Dialer, String> {
    let Some(t) = t else {
        return Ok(Dialer {
            timeout: Some(DEFAULT_DIAL_TIMEOUT),
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
            proxy_protocol: None,
            termination_delay: Some(DEFAULT_TERMINATION_DELAY),
            tls: default_tls(),
            server_name: None,
        });
    };
    let tls = t.tls.as_ref();
    let server_name = tls
        .and_then(|t| t.server_name.as_deref())
        .filter(|s| !s.is_empty())
        .map(|s| {
            rustls::pki_types::ServerName::try_from(s.to_string())
                .map_err(|e| format!("tcpServersTransport {name:?}: tls.serverName: {e}"))
        })
        .transpose()?;
    Ok(Dialer {
        timeout: match t.dial_timeout.as_ref().map(signed) {
            None => Some(DEFAULT_DIAL_TIMEOUT),
            Some(Some(d)) if d.is_zero() => None,
            Some(d) => d,
        },
        keep_alive: match t.dial_keep_alive.as_ref().map(signed) {
            None => Some(DEFAULT_KEEP_ALIVE),
            Some(Some(d)) if d.is_zero() => Some(DEFAULT_KEEP_ALIVE),
            Some(d) => d,
        },
        proxy_protocol: t
            .proxy_protocol
            .as_ref()
            .map(|p| if p.version == Some(1) { 1 } else { 2 }),
        termination_delay: t
            .termination_delay
            .as_ref()
            .map_or(Some(DEFAULT_TERMINATION_DELAY), signed),
        tls: Some(client_tls(tls).map_err(|e| format!("tcpServersTransport {name:?}: tls.{e}"))?),
        server_name,
    })
}

/// Compile every TCP service of `cfg` (references resolved; validation has refused cycles).
pub(crate) fn compile_all(
    tcp: &switchyard_config::tcp::TcpConfig,
    me: &Locality,
) -> Result<std::collections::HashMap<String, Arc<TcpSvc>>, String> {
    let services = &tcp.services;
    let mut out: std::collections::HashMap<String, Arc<TcpSvc>> = Default::default();
    // One dialer per transport, shared; the default one built only if used.
    let mut dialers: std::collections::HashMap<&str, Arc<Dialer>> = Default::default();
    // Load balancers first, then weighted services until all resolve.
    for (name, s) in services {
        if let Some(lb) = &s.load_balancer {
            let servers = lb
                .servers
                .iter()
                .map(|x| {
                    Arc::new(TcpServer {
                        address: Arc::from(x.address.as_str()),
                        addr: x.address.parse().ok(),
                        tls: x.tls,
                        level: level(x.zone.as_deref(), x.region.as_deref(), me),
                        ejected_until: AtomicU64::new(0),
                    })
                })
                .collect();
            let dialer = match lb.servers_transport.as_deref().filter(|t| !t.is_empty()) {
                Some(t) => {
                    let t = crate::util::resolve_ref(t);
                    match dialers.get(t) {
                        Some(d) => d.clone(),
                        None => {
                            let (k, st) = tcp.servers_transports.get_key_value(t).ok_or_else(
                                || format!("tcpService {name:?}: loadBalancer.serversTransport: tcpServersTransport {t:?} not found"),
                            )?;
                            let d = Arc::new(compile_dialer(k, Some(st))?);
                            dialers.insert(k.as_str(), d.clone());
                            d
                        }
                    }
                }
                // No transport: the default one with the balancer's own (deprecated)
                // `proxyProtocol` and `terminationDelay`, as Traefik does.
                None => {
                    let pp =
                        lb.proxy_protocol
                            .as_ref()
                            .map(|p| if p.version == Some(1) { 1 } else { 2 });
                    let delay = match lb.termination_delay {
                        None => Some(DEFAULT_TERMINATION_DELAY),
                        Some(d) if d < 0 => None,
                        Some(d) => Some(Duration::from_millis(u64::try_from(d).unwrap_or(0))),
                    };
                    let base = match dialers.get("") {
                        Some(d) => d.clone(),
                        None => {
                            let d = Arc::new(compile_dialer("default", None)?);
                            dialers.insert("", d.clone());
                            d
                        }
                    };
                    if pp.is_none() && delay == base.termination_delay {
                        base
                    } else {
                        Arc::new(Dialer {
                            timeout: base.timeout,
                            keep_alive: base.keep_alive,
                            proxy_protocol: pp,
                            termination_delay: delay,
                            tls: base.tls.clone(),
                            server_name: None,
                        })
                    }
                }
            };
            out.insert(
                name.clone(),
                Arc::new(TcpSvc::Lb(TcpBalancer {
                    servers,
                    next: AtomicUsize::new(0),
                    dialer,
                })),
            );
        }
    }
    let mut pending: Vec<(&String, &TcpService)> = services
        .iter()
        .filter(|(_, s)| s.weighted.is_some())
        .collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|(name, s)| {
            let Some(w) = &s.weighted else { return false };
            let kids: Option<Vec<(Arc<TcpSvc>, i64)>> = w
                .services
                .iter()
                .map(|c| {
                    let n = crate::util::resolve_ref(&c.name);
                    out.get(n).map(|svc| (svc.clone(), c.weight.unwrap_or(1)))
                })
                .collect();
            match kids {
                Some(children) => {
                    let current = Mutex::new(vec![0; children.len()]);
                    out.insert(
                        (*name).clone(),
                        Arc::new(TcpSvc::Weighted {
                            children: children.into_boxed_slice(),
                            current,
                        }),
                    );
                    false
                }
                None => true,
            }
        });
        if pending.len() == before {
            return Err(format!(
                "tcpService {:?}: unresolvable weighted service references",
                pending[0].0
            ));
        }
    }
    Ok(out)
}

/// Resolve `host:port` (DNS names through the system resolver).
pub(crate) async fn resolve(address: &str) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{address}: no address")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn svcs(yaml: &str) -> std::collections::HashMap<String, Arc<TcpSvc>> {
        let cfg = switchyard_config::parse_document(yaml).unwrap();
        compile_all(
            &cfg.tcp,
            &Locality {
                zone: "a".into(),
                region: "r".into(),
            },
        )
        .unwrap()
    }

    fn addr_of(s: &Arc<TcpSvc>) -> String {
        match &**s {
            TcpSvc::Lb(lb) => lb.servers[0].address.to_string(),
            TcpSvc::Weighted { .. } => "weighted".into(),
        }
    }

    #[test]
    fn weighted_is_smooth_and_proportional() {
        let s = svcs("tcp:\n  services:\n    a: {loadBalancer: {servers: [{address: \"a:1\"}]}}\n    b: {loadBalancer: {servers: [{address: \"b:1\"}]}}\n    w: {weighted: {services: [{name: a, weight: 3}, {name: b, weight: 1}]}}\n");
        let w = &s["w"];
        let picks: Vec<String> = (0..8).map(|_| addr_of(&w.pick().unwrap())).collect();
        assert_eq!(picks.iter().filter(|p| *p == "a:1").count(), 6);
        assert_eq!(picks.iter().filter(|p| *p == "b:1").count(), 2);
    }

    #[test]
    fn transport_overrides_the_balancers_deprecated_options() {
        let s = svcs("tcp:\n  services:\n    old: {loadBalancer: {servers: [{address: \"a:1\"}], proxyProtocol: {version: 1}, terminationDelay: -1}}\n    new: {loadBalancer: {servers: [{address: \"a:1\"}], proxyProtocol: {version: 1}, serversTransport: t}}\n    plain: {loadBalancer: {servers: [{address: \"a:1\"}]}}\n  serversTransports:\n    t: {dialTimeout: 0, dialKeepAlive: -1s, terminationDelay: 250ms, tls: {serverName: b.internal}}\n");
        let d = |n: &str| match &*s[n] {
            TcpSvc::Lb(lb) => lb.dialer.clone(),
            TcpSvc::Weighted { .. } => panic!(),
        };
        let old = d("old");
        assert_eq!(old.proxy_protocol, Some(1));
        assert_eq!(old.termination_delay, None);
        assert_eq!(old.timeout, Some(DEFAULT_DIAL_TIMEOUT));
        let new = d("new");
        assert_eq!(
            new.proxy_protocol, None,
            "the transport's (unset) proxyProtocol wins"
        );
        assert_eq!(new.termination_delay, Some(Duration::from_millis(250)));
        assert_eq!(new.timeout, None);
        assert_eq!(new.keep_alive, None);
        assert!(new.server_name.is_some());
        assert!(Arc::ptr_eq(&d("plain"), &d("plain")));
    }

    #[test]
    fn balancer_prefers_its_zone_and_skips_ejected_servers() {
        let s = svcs("tcp:\n  services:\n    s: {loadBalancer: {servers: [{address: \"far:1\"}, {address: \"near1:1\", zone: a}, {address: \"near2:1\", zone: a}]}}\n");
        let TcpSvc::Lb(lb) = &*s["s"] else { panic!() };
        let firsts: Vec<String> = (0..4)
            .map(|_| lb.candidates()[0].address.to_string())
            .collect();
        assert!(firsts.iter().all(|f| f.starts_with("near")), "{firsts:?}");
        assert!(firsts.contains(&"near1:1".to_string()) && firsts.contains(&"near2:1".to_string()));
        for srv in lb.servers.iter().filter(|s| s.address.starts_with("near")) {
            srv.eject();
        }
        assert_eq!(&*lb.candidates()[0].address, "far:1");
        assert_eq!(lb.candidates().len(), 3);
        assert_eq!(&*lb.first().unwrap().1.address, "far:1");
    }

    /// `first` picks what `candidates` would put first, for every rotation start.
    #[test]
    fn first_is_the_first_candidate() {
        let s = svcs("tcp:\n  services:\n    s: {loadBalancer: {servers: [{address: \"127.0.0.1:1\"}, {address: \"n1:1\", zone: a}, {address: \"n2:1\", zone: a}, {address: \"r:1\", region: r}]}}\n");
        let TcpSvc::Lb(lb) = &*s["s"] else { panic!() };
        assert_eq!(lb.servers[0].addr, Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(lb.servers[1].addr, None);
        for round in 0..8 {
            if round == 4 {
                lb.servers[1].eject();
            }
            let (start, f) = lb.first().unwrap();
            let c = lb.candidates_from(start);
            assert!(Arc::ptr_eq(f, &c[0]), "round {round}");
        }
    }
}
