//! Prometheus metrics of the proxy (`/metrics` on the admin address), with the
//! `prometheus-client` crate and the `switchyard_proxy_` prefix.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `switchyard_proxy_requests_total` | counter | `entrypoint`, `router`, `service`, `code` |
//! | `switchyard_proxy_request_duration_seconds` | histogram | `entrypoint`, `router`, `service` |
//! | `switchyard_proxy_errors_total` | counter | `kind` (see [`crate::errors::ErrorKind`]) |
//! | `switchyard_proxy_open_connections` | gauge | `entrypoint` |
//! | `switchyard_proxy_config_version` | gauge | — |
//! | `switchyard_proxy_config_applies_total` | counter | — (incremented by the config client) |
//! | `switchyard_proxy_config_nacks_total` | counter | — (incremented by the config client) |
//! | `switchyard_proxy_config_deltas_total` | counter | — (applies that came as a delta, not a snapshot) |
//! | `switchyard_proxy_control_connected` | gauge | — (1 while a config stream is up; set by the config client) |
//! | `switchyard_proxy_client_cert_renewals_total` | counter | — (client certificates renewed over the config stream) |
//! | `switchyard_proxy_client_cert_expiry_seconds` | gauge | — (Unix time the current client certificate expires; 0: none) |
//! | `switchyard_proxy_backend_server_up` | gauge | `service`, `url` |
//!
//! Requests answered without a router (404) are counted with empty `router` and `service`.
//!
//! ## Hot path
//!
//! Request counters and duration histograms are **not** `prometheus-client` families: a
//! `Family::get_or_create` takes a lock and clones the label set, and its `Histogram` takes a
//! write lock per observation. Instead each (entry point, router) pair gets a `RouteStats` of
//! plain atomics (counters for the common status codes, a lock only for rare codes, and an
//! atomic histogram), created on the route's first request per config version and shared
//! across versions through `RouteRegistry`, which a [`Collector`] encodes at scrape time.
//! Counters therefore never go backwards across config swaps.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::errors::ErrorKind;

/// Labels of per-entry-point gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EntrypointLabels {
    pub entrypoint: String,
}

/// Labels of the entry point limit counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    entrypoint: String,
    limit: &'static str,
}

/// Labels of the backend health gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServerLabels {
    pub service: String,
    pub url: String,
}

/// Labels of `traefik_open_connections`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpenLabels {
    entrypoint: String,
    protocol: &'static str,
}

/// Labels of `traefik_tls_certs_not_after`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CertLabels {
    pub cn: String,
    pub serial: String,
    pub sans: String,
}

/// Labels of the TLS handshake counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    result: &'static str,
}

/// Labels of the TCP connection counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TcpLabels {
    router: String,
    result: &'static str,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
}

/// The proxy's metrics. Obtained with [`crate::Proxy::metrics`].
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Traefik's names (no prefix; see [`crate::traefik_metrics`]).
    traefik: Mutex<Registry>,
    traefik_open: Family<OpenLabels, Gauge>,
    reloads: Counter,
    last_reload: Gauge,
    certs_not_after: Family<CertLabels, Gauge>,
    config_version: Gauge,
    /// `switchyard_proxy_config_applies_total` (incremented by the config client; also
    /// reachable as [`Metrics::config_applies`]).
    pub config_applies: Counter,
    /// `switchyard_proxy_config_nacks_total` (incremented by the config client).
    pub config_nacks: Counter,
    /// `switchyard_proxy_config_deltas_total`: of the applies, those whose config came as a
    /// delta (incremented by the config client).
    pub config_deltas: Counter,
    /// `switchyard_proxy_control_connected` (set by the config client).
    pub control_connected: Gauge,
    /// `switchyard_proxy_client_cert_renewals_total` (set by the config client).
    pub cert_renewals: Counter,
    /// `switchyard_proxy_client_cert_expiry_seconds` (set by the config client).
    pub cert_expiry: Gauge,
    open_connections: Family<EntrypointLabels, Gauge>,
    limit_hits: Family<LimitLabels, Counter>,
    server_up: Family<ServerLabels, Gauge>,
    errors: [Counter; ErrorKind::ALL.len()],
    routes: Arc<RouteRegistry>,
    /// TLS handshakes: `[ok, failed]`.
    handshakes: [Counter; 2],
    /// TCP router connections by router and result.
    tcp_connections: Family<TcpLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchyard_proxy");
        let config_version = Gauge::default();
        let config_applies = Counter::default();
        let config_nacks = Counter::default();
        let config_deltas = Counter::default();
        let control_connected = Gauge::default();
        let cert_renewals = Counter::default();
        let cert_expiry = Gauge::default();
        let open_connections = Family::<EntrypointLabels, Gauge>::default();
        let server_up = Family::<ServerLabels, Gauge>::default();
        let limit_hits = Family::<LimitLabels, Counter>::default();
        let error_family = Family::<ErrorLabels, Counter>::default();
        let errors = ErrorKind::ALL.map(|k| {
            error_family
                .get_or_create(&ErrorLabels { kind: k.label() })
                .clone()
        });
        let routes = Arc::new(RouteRegistry::default());
        let handshake_family = Family::<HandshakeLabels, Counter>::default();
        let handshakes = ["ok", "failed"].map(|result| {
            handshake_family
                .get_or_create(&HandshakeLabels { result })
                .clone()
        });
        registry.register(
            "tls_handshakes",
            "TLS handshakes on the entry points, by result (ok, failed)",
            handshake_family,
        );
        let tcp_connections = Family::<TcpLabels, Counter>::default();
        registry.register(
            "tcp_connections",
            "Connections served by TCP routers, by router and result (ok: a backend was \
             connected, refused: by a middleware, no_backend: no server reachable, tls_failed: \
             the terminating handshake failed)",
            tcp_connections.clone(),
        );
        registry.register(
            "config_version",
            "Config version currently served (0: none)",
            config_version.clone(),
        );
        registry.register(
            "config_applies",
            "Config versions compiled and swapped in",
            config_applies.clone(),
        );
        registry.register(
            "config_nacks",
            "Config versions rejected (NACKed)",
            config_nacks.clone(),
        );
        registry.register(
            "config_deltas",
            "Config versions applied from a delta (the other applies came as snapshots)",
            config_deltas.clone(),
        );
        registry.register(
            "control_connected",
            "1 while a config stream to a control node is established",
            control_connected.clone(),
        );
        registry.register(
            "client_cert_renewals",
            "Client certificates renewed over the config stream",
            cert_renewals.clone(),
        );
        registry.register(
            "client_cert_expiry_seconds",
            "Unix time the current control-plane client certificate expires (0: none)",
            cert_expiry.clone(),
        );
        registry.register(
            "open_connections",
            "Open client connections per entry point",
            open_connections.clone(),
        );
        registry.register(
            "entrypoint_limit_hits",
            "Entry point limits hit, by entry point and limit (read_timeout, write_timeout, \
             idle_timeout, header_bytes, headers, connections, h2_resets)",
            limit_hits.clone(),
        );
        registry.register(
            "backend_server_up",
            "Backend server health (1 up, 0 down) per service and server URL",
            server_up.clone(),
        );
        registry.register(
            "errors",
            "Requests answered by the proxy itself, by reason",
            error_family,
        );
        registry.register_collector(Box::new(routes.clone()));
        let mut traefik = Registry::default();
        let traefik_open = Family::<OpenLabels, Gauge>::default();
        let reloads = Counter::default();
        let last_reload = Gauge::default();
        let certs_not_after = Family::<CertLabels, Gauge>::default();
        traefik.register("traefik_config_reloads", "Config reloads", reloads.clone());
        traefik.register(
            "traefik_config_last_reload_success",
            "Last config reload success",
            last_reload.clone(),
        );
        traefik.register(
            "traefik_open_connections",
            "How many open connections exist, by entryPoint and protocol",
            traefik_open.clone(),
        );
        traefik.register(
            "traefik_tls_certs_not_after",
            "Certificate expiration timestamp",
            certs_not_after.clone(),
        );
        traefik.register(
            "traefik_service_server_up",
            "service server is up, described by gauge value of 0 or 1.",
            server_up.clone(),
        );
        traefik.register_collector(Box::new(crate::traefik_metrics::TraefikCollector(
            routes.clone(),
        )));
        Metrics {
            registry: Mutex::new(registry),
            traefik: Mutex::new(traefik),
            traefik_open,
            reloads,
            last_reload,
            certs_not_after,
            config_version,
            config_applies,
            config_nacks,
            config_deltas,
            control_connected,
            cert_renewals,
            cert_expiry,
            open_connections,
            limit_hits,
            server_up,
            errors,
            routes,
            handshakes,
            tcp_connections,
        }
    }

    /// The counter of connections given to TCP router `router` with `result` (see the metric's
    /// help), kept by the route and incremented without a label lookup per connection.
    pub(crate) fn tcp_counter(&self, router: &str, result: &'static str) -> Counter {
        self.tcp_connections
            .get_or_create(&TcpLabels {
                router: router.to_string(),
                result,
            })
            .clone()
    }

    /// Count a TLS handshake on an entry point.
    pub(crate) fn count_handshake(&self, ok: bool) {
        self.handshakes[usize::from(!ok)].inc();
    }

    /// TLS handshakes counted so far: `(ok, failed)`.
    pub fn handshakes(&self) -> (u64, u64) {
        (self.handshakes[0].get(), self.handshakes[1].get())
    }

    /// `switchyard_proxy_config_applies_total` (the config client increments it).
    pub fn config_applies(&self) -> &Counter {
        &self.config_applies
    }

    /// `switchyard_proxy_config_nacks_total` (the config client increments it).
    pub fn config_nacks(&self) -> &Counter {
        &self.config_nacks
    }

    /// `switchyard_proxy_control_connected` (the config client sets it).
    pub fn control_connected(&self) -> &Gauge {
        &self.control_connected
    }

    /// `switchyard_proxy_config_version` (set by [`crate::Proxy::apply`]).
    pub fn config_version(&self) -> &Gauge {
        &self.config_version
    }

    /// Register an additional metric (e.g. from the config client). The name gets the
    /// `switchyard_proxy_` prefix.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        if let Ok(mut r) = self.registry.lock() {
            r.register(name, help, metric);
        }
    }

    /// The OpenMetrics text exposition: Switchyard's series, then Traefik's.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, &r);
        }
        if let Ok(r) = self.traefik.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        }
        out
    }

    /// A config version was applied (`traefik_config_reloads_total`,
    /// `traefik_config_last_reload_success`).
    pub(crate) fn config_reloaded(&self) {
        self.reloads.inc();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_reload.set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    /// Replace `traefik_tls_certs_not_after` with these certificates (Unix times).
    pub(crate) fn set_certs(&self, certs: Vec<(CertLabels, i64)>) {
        self.certs_not_after.clear();
        for (l, t) in certs {
            self.certs_not_after.get_or_create(&l).set(t);
        }
    }

    /// `traefik_open_connections{entrypoint, protocol="TCP"}`.
    pub(crate) fn traefik_open_connections(&self, entrypoint: &str) -> Gauge {
        self.traefik_open
            .get_or_create(&OpenLabels {
                entrypoint: entrypoint.to_string(),
                protocol: "TCP",
            })
            .clone()
    }

    /// Count a request the proxy answered itself.
    pub(crate) fn count_error(&self, kind: ErrorKind) {
        self.errors[kind.index()].inc();
    }

    /// Value of an error counter (tests, diagnostics).
    pub fn error_count(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()].get()
    }

    pub(crate) fn open_connections(&self, entrypoint: &str) -> Gauge {
        self.open_connections
            .get_or_create(&EntrypointLabels {
                entrypoint: entrypoint.to_string(),
            })
            .clone()
    }

    /// The limit counters of an entry point, indexed by [`crate::limits::LimitKind::index`]
    /// (created, so every series exists from the start).
    pub(crate) fn limit_hits(
        &self,
        entrypoint: &str,
    ) -> [Counter; crate::limits::LimitKind::ALL.len()] {
        crate::limits::LimitKind::ALL.map(|k| {
            self.limit_hits
                .get_or_create(&LimitLabels {
                    entrypoint: entrypoint.to_string(),
                    limit: k.label(),
                })
                .clone()
        })
    }

    pub(crate) fn server_up(&self, service: &str, url: &str) -> Gauge {
        self.server_up
            .get_or_create(&ServerLabels {
                service: service.to_string(),
                url: url.to_string(),
            })
            .clone()
    }

    pub(crate) fn remove_server_up(&self, service: &str, url: &str) {
        self.server_up.remove(&ServerLabels {
            service: service.to_string(),
            url: url.to_string(),
        });
    }

    /// The shared stats of (entry point, router, service); created on first use.
    pub(crate) fn route_stats(
        &self,
        entrypoint: &Arc<str>,
        router: &Arc<str>,
        service: &Arc<str>,
    ) -> Arc<RouteStats> {
        self.routes.get(entrypoint, router, service)
    }

    /// Sum of `requests_total` over every label set with this code (tests, diagnostics).
    pub fn requests_with_code(&self, code: u16) -> u64 {
        self.routes.total_for_code(code)
    }
}

/// Status codes with a dedicated lock-free counter.
const COMMON_CODES: [u16; 26] = [
    200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413,
    422, 429, 499, 500, 502, 503, 504,
];

fn common_index(code: u16) -> Option<usize> {
    COMMON_CODES.iter().position(|&c| c == code)
}

/// Upper bounds (seconds) of the duration histogram (+Inf is implicit).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of plain atomics (no lock per observation).
#[derive(Debug, Default)]
pub(crate) struct AtomicHistogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    pub(crate) fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let secs = d.as_secs_f64();
        let idx = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[idx].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets = BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        (
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            self.count.load(Ordering::Relaxed),
            buckets,
        )
    }
}

/// Request counters and durations of one (entry point, router, service).
#[derive(Debug)]
pub(crate) struct RouteStats {
    entrypoint: Arc<str>,
    router: Arc<str>,
    service: Arc<str>,
    codes: [AtomicU64; COMMON_CODES.len()],
    other: Mutex<Vec<(u16, u64)>>,
    durations: AtomicHistogram,
    /// The Traefik-labelled series.
    pub(crate) traefik: crate::traefik_metrics::Cells,
}

impl RouteStats {
    fn new(entrypoint: Arc<str>, router: Arc<str>, service: Arc<str>) -> RouteStats {
        RouteStats {
            entrypoint,
            router,
            service,
            codes: Default::default(),
            other: Mutex::new(Vec::new()),
            durations: AtomicHistogram::default(),
            traefik: crate::traefik_metrics::Cells::default(),
        }
    }

    /// (entry point, router, service); router and service are empty without a router.
    pub(crate) fn labels(&self) -> (&str, &str, &str) {
        (&self.entrypoint, &self.router, &self.service)
    }

    /// Record one finished request: Switchyard's series and Traefik's.
    pub(crate) fn record_all(
        &self,
        code: u16,
        d: Duration,
        l: crate::traefik_metrics::ReqLabels,
        resp_bytes: u64,
        retries: u32,
    ) {
        self.record(code, d);
        self.traefik.record(code, d, l, resp_bytes, retries);
    }

    /// Record one finished request.
    pub(crate) fn record(&self, code: u16, d: Duration) {
        match common_index(code) {
            Some(i) => {
                self.codes[i].fetch_add(1, Ordering::Relaxed);
            }
            None => {
                if let Ok(mut other) = self.other.lock() {
                    match other.iter_mut().find(|(c, _)| *c == code) {
                        Some((_, n)) => *n += 1,
                        None => other.push((code, 1)),
                    }
                }
            }
        }
        self.durations.observe(d);
    }

    fn by_code(&self) -> Vec<(u16, u64)> {
        let mut v: Vec<(u16, u64)> = COMMON_CODES
            .iter()
            .zip(&self.codes)
            .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        if let Ok(other) = self.other.lock() {
            v.extend(other.iter().copied());
        }
        v.sort_unstable();
        v
    }
}

type RouteKey = (Arc<str>, Arc<str>, Arc<str>);

/// Every [`RouteStats`] ever used, for scraping (entries are kept: counters are monotonic).
#[derive(Debug, Default)]
pub(crate) struct RouteRegistry {
    map: Mutex<HashMap<RouteKey, Arc<RouteStats>>>,
}

impl RouteRegistry {
    fn get(&self, ep: &Arc<str>, router: &Arc<str>, service: &Arc<str>) -> Arc<RouteStats> {
        let key = (ep.clone(), router.clone(), service.clone());
        match self.map.lock() {
            Ok(mut m) => m
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(RouteStats::new(ep.clone(), router.clone(), service.clone()))
                })
                .clone(),
            // A poisoned lock only loses the metric, never the request.
            Err(_) => Arc::new(RouteStats::new(ep.clone(), router.clone(), service.clone())),
        }
    }

    pub(crate) fn sorted(&self) -> Vec<Arc<RouteStats>> {
        let mut v: Vec<Arc<RouteStats>> = match self.map.lock() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        v.sort_by(|a, b| {
            (&a.entrypoint, &a.router, &a.service).cmp(&(&b.entrypoint, &b.router, &b.service))
        });
        v
    }

    fn total_for_code(&self, code: u16) -> u64 {
        self.sorted()
            .iter()
            .flat_map(|s| s.by_code())
            .filter(|(c, _)| *c == code)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Collector for RouteRegistry {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.sorted();
        {
            let mut me = encoder.encode_descriptor(
                "requests",
                "Requests by entry point, router, service and status code",
                None,
                MetricType::Counter,
            )?;
            for s in &stats {
                for (code, n) in s.by_code() {
                    let code = code.to_string();
                    let labels = [
                        ("entrypoint", &*s.entrypoint),
                        ("router", &*s.router),
                        ("service", &*s.service),
                        ("code", code.as_str()),
                    ];
                    let fam = me.encode_family(&labels)?;
                    prometheus_client::metrics::counter::ConstCounter::new(n).encode(fam)?;
                }
            }
        }
        {
            let mut me = encoder.encode_descriptor(
                "request_duration_seconds",
                "Request durations (until the response body is sent) by entry point, router and service",
                None,
                MetricType::Histogram,
            )?;
            for s in &stats {
                let labels = [
                    ("entrypoint", &*s.entrypoint),
                    ("router", &*s.router),
                    ("service", &*s.service),
                ];
                let (sum, count, buckets) = s.durations.snapshot();
                let mut fam = me.encode_family(&labels)?;
                fam.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn route_stats_are_shared_and_encoded() {
        let m = Metrics::new();
        let (ep, r, s): (Arc<str>, Arc<str>, Arc<str>) = ("web".into(), "api".into(), "svc".into());
        let a = m.route_stats(&ep, &r, &s);
        let b = m.route_stats(&ep, &r, &s);
        assert!(Arc::ptr_eq(&a, &b));
        a.record(200, Duration::from_millis(3));
        a.record(200, Duration::from_millis(30));
        a.record(418, Duration::from_millis(1));
        m.count_error(ErrorKind::NoRoute);
        m.config_applies().inc();
        let text = m.encode();
        assert!(text.contains(
            "switchyard_proxy_requests_total{entrypoint=\"web\",router=\"api\",service=\"svc\",code=\"200\"} 2"
        ), "{text}");
        assert!(text.contains("code=\"418\"} 1"), "{text}");
        assert!(text.contains(
            "switchyard_proxy_request_duration_seconds_count{entrypoint=\"web\",router=\"api\",service=\"svc\"} 3"
        ), "{text}");
        assert!(text.contains("switchyard_proxy_errors_total{kind=\"no_route\"} 1"));
        assert!(text.contains("switchyard_proxy_config_applies_total 1"));
        assert_eq!(m.requests_with_code(200), 2);
        assert_eq!(m.error_count(ErrorKind::NoRoute), 1);
    }

    #[test]
    fn histogram_buckets() {
        let h = AtomicHistogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(100));
        let (sum, count, b) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 100.0071).abs() < 1e-6);
        assert_eq!(b[0].1, 1);
        assert_eq!(b[4].1, 1); // <= 0.01
        assert_eq!(b.last().map(|x| x.1), Some(1));
    }
}
