//! The `loadBalancer` service: servers, zone-aware selection, weighted round robin, p2c,
//! sticky cookies, and passive health.
//!
//! ## Zone-aware levels (Switchyard extension)
//!
//! Each server gets a level relative to the proxy's own `--zone`/`--region`: 0 = same zone,
//! 1 = same region, 2 = anywhere (servers without labels, other regions). A request goes to
//! the lowest level that has an available server and only moves down a level when the level
//! above has none; as soon as a server of a better level is available again, traffic moves
//! back. Within a level, the strategy applies.
//!
//! ## Strategies
//!
//! * `wrr` (default): a smooth weighted round-robin schedule (nginx's algorithm, equivalent
//!   in distribution to Traefik's EDF) is computed once per level at compile time, and an
//!   atomic cursor walks it, so a pick is lock-free and O(1) while servers are healthy; an
//!   unavailable server's turn passes to the next entry. Weights are reduced by their GCD and,
//!   if they still sum above 4096, scaled down (each at least 1). Servers with weight 0 get no
//!   traffic (Traefik ignores them).
//! * `p2c`: two random available servers of the level, the one with fewer in-flight requests
//!   wins (weights are not used, as in Traefik). In-flight counts cover the whole exchange,
//!   including the streamed response body.
//!
//! ## Availability
//!
//! A server is available when its active health check says up (servers start up) and it is not
//! passively ejected. Passive ejection:
//!
//! * with `passiveHealthCheck` (Traefik v3.6): failures of the proxy to get a response from
//!   the server (connect errors, timeouts, broken connections; not 5xx answers) are counted in
//!   a `failureWindow` (default 10s); `maxFailedAttempts` (default 1) of them eject the server
//!   for `failureWindow`;
//! * without it (our default): a connection failure (refused, unreachable, dial timeout)
//!   ejects the server for 5 s, so traffic stops hitting a dead server before the active check
//!   notices; this implicit ejection never takes the last servers out: if every server is
//!   ejected, ejections are ignored.
//!
//! The health, cursors, in-flight counters and pools live here and are reused by the next
//! config version when the service definition (and its servers transport) is unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};
use http::uri::Authority;
use prometheus_client::metrics::gauge::Gauge;
use switchyard_config::LoadBalancer as LbConfig;
use tokio::task::AbortHandle;

use super::sticky::Sticky;
use crate::metrics::Metrics;
use crate::upstream::{Client, ServerUrl, Transport};
use crate::util::{now_ms, rand_below};

/// Longest WRR schedule per level.
const MAX_SCHEDULE: u64 = 4096;
/// Implicit passive ejection time (no `passiveHealthCheck`).
const IMPLICIT_EJECTION: Duration = Duration::from_secs(5);

/// The proxy's own location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Locality {
    pub zone: String,
    pub region: String,
}

/// The level of a server for a proxy at `me` (0 zone, 1 region, 2 anywhere).
pub(crate) fn level(zone: Option<&str>, region: Option<&str>, me: &Locality) -> u8 {
    let zone = zone.filter(|z| !z.is_empty());
    let region = region.filter(|r| !r.is_empty());
    let region_ok = region.is_none() || me.region.is_empty() || region == Some(me.region.as_str());
    if !me.zone.is_empty() && zone == Some(me.zone.as_str()) && region_ok {
        0
    } else if !me.region.is_empty() && region == Some(me.region.as_str()) {
        1
    } else {
        2
    }
}

/// One backend server.
pub(crate) struct Server {
    /// The URL as configured (metric label, sticky name).
    pub url: Arc<str>,
    pub parsed: ServerUrl,
    /// `parsed.authority`, pre-parsed for request URIs.
    pub authority: Authority,
    /// `authority` as a string (access log `ServiceAddr`, span `server.address`).
    pub authority_str: Arc<str>,
    /// `parsed.authority` as a Host header (`passHostHeader: false`).
    pub host_header: HeaderValue,
    pub preserve_path: bool,
    pub client: Client,
    pub level: u8,
    weight: u32,
    active_up: AtomicBool,
    /// `now_ms()` until which the server is ejected (0: not ejected).
    ejected_until: AtomicU64,
    /// (window start, failures in window).
    failures: Mutex<(u64, u32)>,
    inflight: AtomicUsize,
    up_gauge: Gauge,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url)
            .field("level", &self.level)
            .field("up", &self.active_up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Server {
    fn ejected(&self, now: &mut u64) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if *now == 0 {
            *now = now_ms();
        }
        *now < until
    }

    fn available(&self, now: &mut u64, honour_ejection: bool) -> bool {
        self.active_up.load(Ordering::Relaxed) && !(honour_ejection && self.ejected(now))
    }

    /// Requests in flight to this server.
    pub(crate) fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Count a request in flight until the guard is dropped.
    pub(crate) fn start_request(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(self.clone())
    }
}

/// Decrements a server's in-flight count when dropped.
pub(crate) struct InflightGuard(Arc<Server>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One zone level: its servers and WRR schedule.
#[derive(Debug, Default)]
struct Level {
    /// Indexes of the servers of this level with a positive weight.
    members: Box<[u32]>,
    /// WRR schedule over `members`.
    schedule: Box<[u32]>,
    cursor: AtomicUsize,
    /// Members whose active health check is down.
    down: AtomicUsize,
}

/// Passive health settings.
#[derive(Debug, Clone, Copy)]
struct Passive {
    window_ms: u64,
    max_failed: u32,
    implicit: bool,
}

/// What a pick returns.
pub(crate) struct Picked {
    pub server: Arc<Server>,
    /// A sticky `Set-Cookie` to add to the response.
    pub set_cookie: Option<HeaderValue>,
}

/// A compiled `loadBalancer` service with its state.
pub(crate) struct LoadBalancer {
    pub name: Arc<str>,
    pub servers: Box<[Arc<Server>]>,
    levels: [Level; 3],
    p2c: bool,
    sticky: Option<Sticky>,
    pub pass_host_header: bool,
    pub response_header_timeout: Option<Duration>,
    passive: Passive,
    /// Latest `ejected_until` of any server (fast path of `has_available`).
    ejections_until: AtomicU64,
    health: Mutex<Vec<AbortHandle>>,
}

impl std::fmt::Debug for LoadBalancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadBalancer")
            .field("name", &self.name)
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        if let Ok(h) = self.health.lock() {
            for t in h.iter() {
                t.abort();
            }
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A smooth weighted round-robin schedule over `(id, weight)` (weights > 0).
pub(crate) fn schedule(items: &[(u32, u32)]) -> Vec<u32> {
    if items.is_empty() {
        return Vec::new();
    }
    let first = items[0].1;
    if items.iter().all(|&(_, w)| w == first) {
        return items.iter().map(|&(id, _)| id).collect();
    }
    let g = items.iter().fold(0u64, |g, &(_, w)| gcd(g, u64::from(w)));
    let mut weights: Vec<u64> = items
        .iter()
        .map(|&(_, w)| u64::from(w) / g.max(1))
        .collect();
    let total: u64 = weights.iter().sum();
    if total > MAX_SCHEDULE {
        for w in &mut weights {
            *w = ((*w * MAX_SCHEDULE) / total).max(1);
        }
    }
    let total: u64 = weights.iter().sum();
    let weights: Vec<i64> = weights
        .iter()
        .map(|&w| i64::try_from(w).unwrap_or(i64::MAX))
        .collect();
    let total_i = i64::try_from(total).unwrap_or(i64::MAX);
    let mut current = vec![0i64; items.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for i in 0..items.len() {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total_i;
        out.push(items[best].0);
    }
    out
}

impl LoadBalancer {
    /// Compile a load balancer (servers, clients, schedules); health checks are started
    /// separately by [`super::health::start`].
    pub(crate) fn new(
        name: &str,
        def: &LbConfig,
        transport: &Transport,
        me: &Locality,
        metrics: &Metrics,
    ) -> Result<LoadBalancer, String> {
        let mut servers = Vec::with_capacity(def.servers.len());
        for (i, s) in def.servers.iter().enumerate() {
            let parsed = ServerUrl::parse(&s.url)
                .map_err(|e| format!("loadBalancer.servers[{i}].url: {e}"))?;
            let client = transport
                .client(&parsed)
                .map_err(|e| format!("loadBalancer.servers[{i}]: {e}"))?;
            let authority = Authority::try_from(parsed.authority.as_str())
                .map_err(|e| format!("loadBalancer.servers[{i}].url: invalid host: {e}"))?;
            let host_header = HeaderValue::from_str(&parsed.authority)
                .map_err(|e| format!("loadBalancer.servers[{i}].url: invalid host: {e}"))?;
            let up_gauge = metrics.server_up(name, &s.url);
            up_gauge.set(1);
            servers.push(Arc::new(Server {
                url: Arc::from(s.url.as_str()),
                parsed,
                authority_str: Arc::from(authority.as_str()),
                authority,
                host_header,
                preserve_path: s.preserve_path.unwrap_or(false),
                client,
                level: level(s.zone.as_deref(), s.region.as_deref(), me),
                weight: s.weight.unwrap_or(1),
                active_up: AtomicBool::new(true),
                ejected_until: AtomicU64::new(0),
                failures: Mutex::new((0, 0)),
                inflight: AtomicUsize::new(0),
                up_gauge,
            }));
        }
        let mut levels: [Level; 3] = Default::default();
        for (l, level) in levels.iter_mut().enumerate() {
            let members: Vec<(u32, u32)> = servers
                .iter()
                .enumerate()
                .filter(|(_, s)| usize::from(s.level) == l && s.weight > 0)
                .map(|(i, s)| (i as u32, s.weight))
                .collect();
            level.schedule = schedule(&members).into_boxed_slice();
            level.members = members.iter().map(|&(i, _)| i).collect();
        }
        let sticky = def
            .sticky
            .as_ref()
            .and_then(|s| s.cookie.as_ref())
            .map(|c| {
                let targets: Vec<(u32, &str)> = servers
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.weight > 0)
                    .map(|(i, s)| (i as u32, &*s.url))
                    .collect();
                Sticky::new(c, name, &targets)
            });
        let passive = match &def.passive_health_check {
            Some(p) => Passive {
                window_ms: match &p.failure_window {
                    Some(d) => d
                        .to_std()
                        .map_err(|e| format!("loadBalancer.passiveHealthCheck.failureWindow: {e}"))?
                        .as_millis()
                        .try_into()
                        .unwrap_or(u64::MAX),
                    None => 10_000,
                },
                max_failed: p
                    .max_failed_attempts
                    .map_or(1, |n| u32::try_from(n.max(1)).unwrap_or(u32::MAX)),
                implicit: false,
            },
            None => Passive {
                window_ms: IMPLICIT_EJECTION.as_millis() as u64,
                max_failed: 1,
                implicit: true,
            },
        };
        Ok(LoadBalancer {
            name: Arc::from(name),
            servers: servers.into_boxed_slice(),
            levels,
            p2c: def.strategy.as_deref() == Some("p2c"),
            sticky,
            pass_host_header: def.pass_host_header.unwrap_or(true),
            response_header_timeout: transport.response_header_timeout,
            passive,
            ejections_until: AtomicU64::new(0),
            health: Mutex::new(Vec::new()),
        })
    }

    /// Stop the health checks (the balancer was replaced by a new definition).
    pub(crate) fn stop_health(&self) {
        if let Ok(h) = self.health.lock() {
            for t in h.iter() {
                t.abort();
            }
        }
    }

    pub(crate) fn add_health_tasks(&self, tasks: Vec<AbortHandle>) {
        if let Ok(mut h) = self.health.lock() {
            h.extend(tasks);
        }
    }

    /// Whether a request would find a server (used for failover and weighted health).
    pub(crate) fn has_available(&self) -> bool {
        let mut now = 0;
        let honour = !self.passive.implicit && self.ejections_active(&mut now);
        if !honour {
            return self
                .levels
                .iter()
                .any(|l| l.down.load(Ordering::Relaxed) < l.members.len());
        }
        self.levels.iter().any(|l| {
            l.members
                .iter()
                .any(|&i| self.servers[i as usize].available(&mut now, true))
        })
    }

    fn ejections_active(&self, now: &mut u64) -> bool {
        let until = self.ejections_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if *now == 0 {
            *now = now_ms();
        }
        *now < until
    }

    /// Choose a server for a request (sticky cookie, then levels, then the strategy).
    pub(crate) fn pick(&self, headers: &HeaderMap) -> Option<Picked> {
        let mut now = 0;
        let honour = self.ejections_active(&mut now);
        if let Some(sticky) = &self.sticky {
            if let Some((id, rewrite)) = sticky.pinned(headers) {
                if let Some(s) = self.servers.get(id as usize) {
                    if s.available(&mut now, honour) {
                        return Some(Picked {
                            server: s.clone(),
                            set_cookie: if rewrite { sticky.set_cookie(id) } else { None },
                        });
                    }
                }
            }
        }
        let idx = self.pick_index(&mut now, honour, true).or_else(|| {
            // Implicit ejection never takes the last servers out.
            (honour && self.passive.implicit)
                .then(|| self.pick_index(&mut now, false, false))
                .flatten()
        })?;
        Some(Picked {
            server: self.servers[idx as usize].clone(),
            set_cookie: self.sticky.as_ref().and_then(|s| s.set_cookie(idx)),
        })
    }

    fn pick_index(&self, now: &mut u64, honour: bool, advance: bool) -> Option<u32> {
        for l in &self.levels {
            let n = l.members.len();
            if n == 0 || l.down.load(Ordering::Relaxed) >= n {
                continue;
            }
            let found = if self.p2c {
                self.pick_p2c(l, now, honour)
            } else {
                self.pick_wrr(l, now, honour, advance)
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn pick_wrr(&self, l: &Level, now: &mut u64, honour: bool, advance: bool) -> Option<u32> {
        let n = l.schedule.len();
        // The relaxed second pass (implicit ejections ignored) does not advance the cursor
        // again, so the schedule is not skipped twice.
        let start = if advance {
            l.cursor.fetch_add(1, Ordering::Relaxed)
        } else {
            l.cursor.load(Ordering::Relaxed).wrapping_sub(1)
        };
        (0..n)
            .map(|k| l.schedule[(start.wrapping_add(k)) % n])
            .find(|&i| self.servers[i as usize].available(now, honour))
    }

    fn pick_p2c(&self, l: &Level, now: &mut u64, honour: bool) -> Option<u32> {
        let n = l.members.len();
        let avail = |i: u32, now: &mut u64| self.servers[i as usize].available(now, honour);
        if n == 1 {
            let i = l.members[0];
            return avail(i, now).then_some(i);
        }
        let a = rand_below(n);
        let mut b = rand_below(n - 1);
        if b >= a {
            b += 1;
        }
        let (a, b) = (l.members[a], l.members[b]);
        match (avail(a, now), avail(b, now)) {
            (true, true) => {
                let (ia, ib) = (
                    self.servers[a as usize].inflight(),
                    self.servers[b as usize].inflight(),
                );
                Some(if ib < ia { b } else { a })
            }
            (true, false) => Some(a),
            (false, true) => Some(b),
            (false, false) => {
                let start = rand_below(n);
                (0..n)
                    .map(|k| l.members[(start + k) % n])
                    .find(|&i| avail(i, now))
            }
        }
    }

    /// Record the active health check result of server `idx`; returns true on a change.
    pub(crate) fn set_active(&self, idx: usize, up: bool) -> bool {
        let Some(s) = self.servers.get(idx) else {
            return false;
        };
        if s.active_up.swap(up, Ordering::Relaxed) == up {
            return false;
        }
        s.up_gauge.set(i64::from(up));
        if s.weight > 0 {
            let l = &self.levels[usize::from(s.level)];
            if up {
                l.down.fetch_sub(1, Ordering::Relaxed);
            } else {
                l.down.fetch_add(1, Ordering::Relaxed);
            }
        }
        tracing::warn!(
            service = %self.name,
            server = %s.url,
            status = if up { "UP" } else { "DOWN" },
            "health check status changed"
        );
        true
    }

    /// Record a failure to get a response from `server`; `connect` when the connection could
    /// not be established.
    pub(crate) fn report_failure(&self, server: &Server, connect: bool) {
        if self.passive.implicit && !connect {
            return;
        }
        let now = now_ms();
        let Ok(mut f) = server.failures.lock() else {
            return;
        };
        if now.saturating_sub(f.0) > self.passive.window_ms {
            *f = (now, 0);
        }
        f.1 += 1;
        if f.1 >= self.passive.max_failed {
            *f = (now, 0);
            let until = now.saturating_add(self.passive.window_ms);
            server.ejected_until.store(until, Ordering::Relaxed);
            self.ejections_until.fetch_max(until, Ordering::Relaxed);
            tracing::warn!(
                service = %self.name,
                server = %server.url,
                seconds = self.passive.window_ms / 1000,
                "server ejected after failed requests"
            );
        }
    }
}

/// Index of each server by URL (tests, diagnostics).
#[allow(dead_code)]
pub(crate) fn by_url(lb: &LoadBalancer) -> HashMap<&str, usize> {
    lb.servers
        .iter()
        .enumerate()
        .map(|(i, s)| (&*s.url, i))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn lb(yaml: &str, me: &Locality) -> LoadBalancer {
        let def: LbConfig = serde_norway::from_str(yaml).unwrap();
        let t = Transport::new(None).unwrap();
        LoadBalancer::new("svc", &def, &t, me, &Metrics::new()).unwrap()
    }

    fn counts(lb: &LoadBalancer, n: usize) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        let h = HeaderMap::new();
        for _ in 0..n {
            let p = lb.pick(&h).unwrap();
            *m.entry(p.server.url.to_string()).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn smooth_schedule() {
        assert_eq!(schedule(&[(0, 5), (1, 1), (2, 1)]), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(schedule(&[(7, 2), (9, 2)]), [7, 9]);
        assert_eq!(schedule(&[(0, 2), (1, 4)]), [1, 0, 1]);
        let big = schedule(&[(0, 1_000_000), (1, 1)]);
        assert!(big.len() as u64 <= MAX_SCHEDULE + 1);
        assert_eq!(big.iter().filter(|&&i| i == 1).count(), 1);
        assert!(schedule(&[]).is_empty());
    }

    #[tokio::test]
    async fn wrr_weights() {
        let lb = lb(
            "servers: [{url: 'http://a', weight: 3}, {url: 'http://b', weight: 1}, {url: 'http://c', weight: 0}]",
            &Locality::default(),
        );
        let c = counts(&lb, 400);
        assert_eq!(c.get("http://a"), Some(&300));
        assert_eq!(c.get("http://b"), Some(&100));
        assert_eq!(c.get("http://c"), None);
        // An unhealthy server gets nothing; the others share its turns.
        assert!(lb.set_active(0, false));
        assert!(!lb.set_active(0, false));
        let c = counts(&lb, 100);
        assert_eq!(c.get("http://b"), Some(&100));
        lb.set_active(1, false);
        assert!(lb.pick(&HeaderMap::new()).is_none());
        assert!(!lb.has_available());
        lb.set_active(0, true);
        assert!(lb.has_available());
    }

    #[tokio::test]
    async fn p2c_prefers_fewer_inflight() {
        let lb = lb(
            "strategy: p2c\nservers: [{url: 'http://a'}, {url: 'http://b'}]",
            &Locality::default(),
        );
        // Hold many requests on a: every pick of two distinct servers chooses b.
        let _guards: Vec<_> = (0..10).map(|_| lb.servers[0].start_request()).collect();
        let c = counts(&lb, 200);
        assert_eq!(c.get("http://b"), Some(&200));
        drop(_guards);
        assert_eq!(lb.servers[0].inflight(), 0);
        let c = counts(&lb, 1000);
        // Ties go to the first pick, which is random: both get traffic.
        assert!(c["http://a"] > 300 && c["http://b"] > 300, "{c:?}");
        lb.set_active(1, false);
        let c = counts(&lb, 50);
        assert_eq!(c.get("http://a"), Some(&50));
    }

    #[tokio::test]
    async fn zone_levels() {
        let me = Locality {
            zone: "a1".into(),
            region: "a".into(),
        };
        assert_eq!(level(Some("a1"), Some("a"), &me), 0);
        assert_eq!(level(Some("a1"), None, &me), 0);
        assert_eq!(level(Some("a1"), Some("b"), &me), 2);
        assert_eq!(level(Some("a2"), Some("a"), &me), 1);
        assert_eq!(level(None, Some("a"), &me), 1);
        assert_eq!(level(Some("b1"), Some("b"), &me), 2);
        assert_eq!(level(None, None, &me), 2);
        assert_eq!(level(Some("a1"), Some("a"), &Locality::default()), 2);

        let lb = lb(
            "servers: [{url: 'http://z', zone: a1, region: a}, {url: 'http://z2', zone: a1, region: a}, {url: 'http://r', zone: a2, region: a}, {url: 'http://x', zone: b1, region: b}, {url: 'http://any'}]",
            &me,
        );
        let c = counts(&lb, 100);
        assert_eq!(
            (c.get("http://z"), c.get("http://z2")),
            (Some(&50), Some(&50))
        );
        // One zone server down: the other zone server takes everything.
        lb.set_active(0, false);
        assert_eq!(counts(&lb, 10).get("http://z2"), Some(&10));
        // Whole zone down: region.
        lb.set_active(1, false);
        assert_eq!(counts(&lb, 10).get("http://r"), Some(&10));
        // Region down: anywhere (other region and unlabelled).
        lb.set_active(2, false);
        let c = counts(&lb, 10);
        assert_eq!(
            (c.get("http://x"), c.get("http://any")),
            (Some(&5), Some(&5))
        );
        // Zone back: straight back up.
        lb.set_active(1, true);
        assert_eq!(counts(&lb, 10).get("http://z2"), Some(&10));
    }

    #[tokio::test]
    async fn sticky_pins_and_repins() {
        let lb = lb(
            "sticky: {cookie: {name: sid}}\nservers: [{url: 'http://a'}, {url: 'http://b'}]",
            &Locality::default(),
        );
        let first = lb.pick(&HeaderMap::new()).unwrap();
        let cookie = first.set_cookie.clone().unwrap();
        let pair = cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        for _ in 0..20 {
            let p = lb.pick(&h).unwrap();
            assert_eq!(p.server.url, first.server.url);
            assert!(p.set_cookie.is_none());
        }
        // The pinned server goes down: re-balanced and re-pinned to the other one.
        let idx = by_url(&lb)[&*first.server.url];
        lb.set_active(idx, false);
        let p = lb.pick(&h).unwrap();
        assert_ne!(p.server.url, first.server.url);
        assert!(p.set_cookie.is_some());
    }

    #[tokio::test]
    async fn passive_ejection() {
        let lb_ = lb(
            "passiveHealthCheck: {failureWindow: 10s, maxFailedAttempts: 2}\nservers: [{url: 'http://a'}, {url: 'http://b'}]",
            &Locality::default(),
        );
        let a = lb_.servers[0].clone();
        lb_.report_failure(&a, false);
        assert_eq!(counts(&lb_, 10).get("http://a"), Some(&5));
        lb_.report_failure(&a, false);
        assert_eq!(counts(&lb_, 10).get("http://b"), Some(&10));
        let b = lb_.servers[1].clone();
        lb_.report_failure(&b, true);
        lb_.report_failure(&b, true);
        // Explicit passive health: all ejected means no server.
        assert!(lb_.pick(&HeaderMap::new()).is_none());
        assert!(!lb_.has_available());

        // Implicit: connect failures eject, other failures do not, and never everything.
        let lb_ = lb(
            "servers: [{url: 'http://a'}, {url: 'http://b'}]",
            &Locality::default(),
        );
        let a = lb_.servers[0].clone();
        lb_.report_failure(&a, false);
        assert_eq!(counts(&lb_, 10).get("http://a"), Some(&5));
        lb_.report_failure(&a, true);
        assert_eq!(counts(&lb_, 10).get("http://b"), Some(&10));
        let b = lb_.servers[1].clone();
        lb_.report_failure(&b, true);
        assert_eq!(counts(&lb_, 10).len(), 2);
        assert!(lb_.has_available());
    }
}
