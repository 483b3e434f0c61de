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

/// A `loadBalancer` TCP service.
pub(crate) struct TcpBalancer {
    pub servers: Box<[Arc<TcpServer>]>,
    next: AtomicUsize,
    /// PROXY protocol version to send (1 or 2), if any.
    pub proxy_protocol: Option<u8>,
    /// `terminationDelay`; `None`: wait for both directions.
    pub termination_delay: Option<Duration>,
}

impl TcpBalancer {
    /// Servers to try, in order: round robin among the available servers of the best level,
    /// then the others (ejected ones last).
    pub(crate) fn candidates(&self) -> Vec<Arc<TcpServer>> {
        let now = now_ms();
        let n = self.servers.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
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

/// Compile every TCP service of `cfg` (references resolved; validation has refused cycles).
pub(crate) fn compile_all(
    services: &std::collections::BTreeMap<String, TcpService>,
    me: &Locality,
) -> Result<std::collections::HashMap<String, Arc<TcpSvc>>, String> {
    let mut out: std::collections::HashMap<String, Arc<TcpSvc>> = Default::default();
    // Load balancers first, then weighted services until all resolve.
    for (name, s) in services {
        if let Some(lb) = &s.load_balancer {
            let servers = lb
                .servers
                .iter()
                .map(|x| {
                    Arc::new(TcpServer {
                        address: Arc::from(x.address.as_str()),
                        tls: x.tls,
                        level: level(x.zone.as_deref(), x.region.as_deref(), me),
                        ejected_until: AtomicU64::new(0),
                    })
                })
                .collect();
            let pp = lb
                .proxy_protocol
                .as_ref()
                .map(|p| if p.version == Some(1) { 1 } else { 2 });
            let delay = match lb.termination_delay {
                None => Some(Duration::from_millis(100)),
                Some(d) if d < 0 => None,
                Some(d) => Some(Duration::from_millis(u64::try_from(d).unwrap_or(0))),
            };
            out.insert(
                name.clone(),
                Arc::new(TcpSvc::Lb(TcpBalancer {
                    servers,
                    next: AtomicUsize::new(0),
                    proxy_protocol: pp,
                    termination_delay: delay,
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
            &cfg.tcp.services,
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
    }
}
