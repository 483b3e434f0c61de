//! Traefik's metric names and labels on `/metrics`, so Traefik's Grafana dashboards work
//! unchanged (`pkg/observability/metrics/prometheus.go`):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `traefik_entrypoint_requests_total` | counter | `code`, `method`, `protocol`, `entrypoint` |
//! | `traefik_entrypoint_request_duration_seconds` | histogram | same |
//! | `traefik_entrypoint_requests_bytes_total`, `…_responses_bytes_total` | counter | same |
//! | `traefik_router_requests_total` | counter | `code`, `method`, `protocol`, `router`, `service` |
//! | `traefik_router_request_duration_seconds` | histogram | same |
//! | `traefik_router_requests_bytes_total`, `…_responses_bytes_total` | counter | same |
//! | `traefik_service_requests_total` | counter | `code`, `method`, `protocol`, `service` |
//! | `traefik_service_request_duration_seconds` | histogram | same |
//! | `traefik_service_requests_bytes_total`, `…_responses_bytes_total` | counter | same |
//! | `traefik_service_retries_total` | counter | `service` |
//! | `traefik_service_server_up` | gauge | `service`, `url` |
//! | `traefik_open_connections` | gauge | `entrypoint`, `protocol` (`TCP`) |
//! | `traefik_config_reloads_total` | counter | — |
//! | `traefik_config_last_reload_success` | gauge | — (Unix time of the last applied version) |
//! | `traefik_tls_certs_not_after` | gauge | `cn`, `serial`, `sans` |
//!
//! Histograms use Traefik's default buckets (0.1, 0.3, 1.2, 5 s). `method` is Traefik's
//! (`EXTENSION_METHOD` for non-standard ones), `protocol` one of `http`, `websocket`, `sse`,
//! `grpc-web`, `grpc`; `code` is the HTTP status (also for gRPC). A router with
//! `observability.metrics: false` is counted for its entry point only.
//!
//! The request path adds to plain atomics in the route's stats ([`Cells`], keyed by code,
//! method and protocol; a read lock per route, a write lock only for a new combination); the
//! entry point, router and service series are sums computed at scrape time.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use crate::metrics::RouteRegistry;

const METHODS: [&str; 11] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PRI",
    "EXTENSION_METHOD",
];
const PROTOCOLS: [&str; 5] = ["http", "websocket", "sse", "grpc-web", "grpc"];
/// Traefik's default histogram buckets (seconds).
pub(crate) const BUCKETS: [f64; 4] = [0.1, 0.3, 1.2, 5.0];

/// The request-side labels (and request size) of a request, computed at its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReqLabels {
    method: u8,
    proto: u8,
    /// `Content-Length` of the request (0 without one).
    pub req_bytes: u64,
}

/// Whether a header value contains `needle` (lowercase ASCII), ignoring ASCII case; no
/// lowercased copy is made.
fn value_has(v: &http::HeaderValue, needle: &str) -> bool {
    let n = needle.as_bytes();
    v.to_str().is_ok()
        && v.as_bytes()
            .windows(n.len())
            .any(|w| w.eq_ignore_ascii_case(n))
}

impl ReqLabels {
    /// Traefik's `getMethod` and `getRequestProtocol`.
    ///
    /// One pass over the headers (comparisons of standard names) instead of a hashed lookup
    /// per header the labels look at.
    pub(crate) fn of(parts: &http::request::Parts) -> ReqLabels {
        use http::header::{ACCEPT, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, UPGRADE};
        let method = METHODS
            .iter()
            .position(|m| *m == parts.method.as_str())
            .unwrap_or(METHODS.len() - 1);
        // First values of `Content-Type` and `Content-Length`, any value for the others.
        let (mut ct, mut cl) = (None, None);
        let (mut conn_upgrade, mut websocket, mut event_stream) = (false, false, false);
        for (name, v) in &parts.headers {
            if *name == CONTENT_TYPE {
                ct = ct.or(Some(v));
            } else if *name == CONTENT_LENGTH {
                cl = cl.or(Some(v));
            } else if *name == CONNECTION {
                conn_upgrade = conn_upgrade || value_has(v, "upgrade");
            } else if *name == UPGRADE {
                websocket = websocket || value_has(v, "websocket");
            } else if *name == ACCEPT {
                event_stream = event_stream || value_has(v, "text/event-stream");
            }
        }
        let ct = ct.and_then(|v| v.to_str().ok()).unwrap_or("");
        let proto = if conn_upgrade && websocket {
            1
        } else if event_stream {
            2
        } else if ct.starts_with("application/grpc-web") {
            3
        } else if ct.starts_with("application/grpc") {
            4
        } else {
            0
        };
        let req_bytes = cl.and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
        ReqLabels {
            method: u8::try_from(method).unwrap_or(0),
            proto,
            req_bytes,
        }
    }
}

/// Counters of one (code, method, protocol).
#[derive(Debug, Default)]
struct Cell {
    count: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    req_bytes: AtomicU64,
    resp_bytes: AtomicU64,
}

/// A snapshot of [`Cell`]s, summable.
#[derive(Debug, Default, Clone)]
struct Snap {
    count: u64,
    buckets: [u64; BUCKETS.len() + 1],
    sum_nanos: u64,
    req_bytes: u64,
    resp_bytes: u64,
}

impl Snap {
    fn add(&mut self, c: &Cell) {
        self.count += c.count.load(Ordering::Relaxed);
        for (a, b) in self.buckets.iter_mut().zip(&c.buckets) {
            *a += b.load(Ordering::Relaxed);
        }
        self.sum_nanos += c.sum_nanos.load(Ordering::Relaxed);
        self.req_bytes += c.req_bytes.load(Ordering::Relaxed);
        self.resp_bytes += c.resp_bytes.load(Ordering::Relaxed);
    }

    fn merge(&mut self, o: &Snap) {
        self.count += o.count;
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.sum_nanos += o.sum_nanos;
        self.req_bytes += o.req_bytes;
        self.resp_bytes += o.resp_bytes;
    }
}

/// The Traefik-labelled counters of one route's stats.
#[derive(Debug, Default)]
pub(crate) struct Cells {
    cells: RwLock<Vec<(u32, Box<Cell>)>>,
    retries: AtomicU64,
}

fn key(code: u16, l: ReqLabels) -> u32 {
    (u32::from(code) << 16) | (u32::from(l.method) << 8) | u32::from(l.proto)
}

impl Cells {
    /// Record one finished request.
    pub(crate) fn record(
        &self,
        code: u16,
        d: Duration,
        l: ReqLabels,
        resp_bytes: u64,
        retries: u32,
    ) {
        let k = key(code, l);
        let add = |c: &Cell| {
            c.count.fetch_add(1, Ordering::Relaxed);
            let secs = d.as_secs_f64();
            let i = BUCKETS
                .iter()
                .position(|&b| secs <= b)
                .unwrap_or(BUCKETS.len());
            c.buckets[i].fetch_add(1, Ordering::Relaxed);
            c.sum_nanos.fetch_add(
                u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            c.req_bytes.fetch_add(l.req_bytes, Ordering::Relaxed);
            c.resp_bytes.fetch_add(resp_bytes, Ordering::Relaxed);
        };
        if retries > 0 {
            self.retries
                .fetch_add(u64::from(retries), Ordering::Relaxed);
        }
        if let Ok(cells) = self.cells.read() {
            if let Some((_, c)) = cells.iter().find(|(x, _)| *x == k) {
                add(c);
                return;
            }
        }
        if let Ok(mut cells) = self.cells.write() {
            match cells.iter().find(|(x, _)| *x == k) {
                Some((_, c)) => add(c),
                None => {
                    let c = Box::<Cell>::default();
                    add(&c);
                    cells.push((k, c));
                }
            }
        }
    }

    fn snapshot(&self) -> Vec<(u32, Snap)> {
        match self.cells.read() {
            Ok(cells) => cells
                .iter()
                .map(|(k, c)| {
                    let mut s = Snap::default();
                    s.add(c);
                    (*k, s)
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Labels of a key: (code, method, protocol).
fn labels_of(k: u32) -> (String, &'static str, &'static str) {
    let code = (k >> 16).to_string();
    let m = METHODS
        .get(((k >> 8) & 0xff) as usize)
        .copied()
        .unwrap_or("EXTENSION_METHOD");
    let p = PROTOCOLS
        .get((k & 0xff) as usize)
        .copied()
        .unwrap_or("http");
    (code, m, p)
}

/// Encodes the `traefik_entrypoint_*`, `traefik_router_*` and `traefik_service_*` request
/// series from the route stats.
#[derive(Debug)]
pub(crate) struct TraefikCollector(pub Arc<RouteRegistry>);

type Series = BTreeMap<(Vec<(&'static str, String)>, u32), Snap>;

fn encode_level(
    encoder: &mut DescriptorEncoder,
    level: &str,
    what: &str,
    series: &Series,
) -> Result<(), fmt::Error> {
    let full = |(base, k): &(Vec<(&'static str, String)>, u32)| {
        let (code, m, p) = labels_of(*k);
        let mut l: Vec<(&'static str, String)> = vec![
            ("code", code),
            ("method", m.to_string()),
            ("protocol", p.to_string()),
        ];
        l.extend(base.iter().cloned());
        l
    };
    {
        let (name, help) = (
            format!("traefik_{level}_requests"),
            format!("How many HTTP requests processed on {what}, partitioned by status code, protocol, and method."),
        );
        let mut me = encoder.encode_descriptor(&name, &help, None, MetricType::Counter)?;
        for (k, s) in series {
            let labels = full(k);
            ConstCounter::new(s.count).encode(me.encode_family(&labels)?)?;
        }
    }
    {
        let (name, help) = (
            format!("traefik_{level}_request_duration_seconds"),
            format!("How long it took to process the request on {what}, partitioned by status code, protocol, and method."),
        );
        let mut me = encoder.encode_descriptor(&name, &help, None, MetricType::Histogram)?;
        for (k, s) in series {
            let labels = full(k);
            let buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX))
                .zip(s.buckets.iter().copied())
                .collect();
            let mut fam = me.encode_family(&labels)?;
            fam.encode_histogram::<NoLabelSet>(s.sum_nanos as f64 / 1e9, s.count, &buckets, None)?;
        }
    }
    for (name, help, get) in [
        (
            "requests_bytes",
            "The total size of requests in bytes handled by",
            (|s: &Snap| s.req_bytes) as fn(&Snap) -> u64,
        ),
        (
            "responses_bytes",
            "The total size of responses in bytes handled by",
            |s: &Snap| s.resp_bytes,
        ),
    ] {
        let (name, help) = (
            format!("traefik_{level}_{name}"),
            format!("{help} {what}, partitioned by status code, protocol, and method."),
        );
        let mut me = encoder.encode_descriptor(&name, &help, None, MetricType::Counter)?;
        for (k, s) in series {
            let labels = full(k);
            ConstCounter::new(get(s)).encode(me.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for TraefikCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.0.sorted();
        let mut eps = Series::new();
        let mut routers = Series::new();
        let mut services = Series::new();
        let mut retries: BTreeMap<String, u64> = BTreeMap::new();
        for st in &stats {
            let (ep, router, service) = st.labels();
            let detailed = !router.is_empty() && !service.is_empty();
            if detailed {
                *retries.entry(service.to_string()).or_default() +=
                    st.traefik.retries.load(Ordering::Relaxed);
            }
            for (k, s) in st.traefik.snapshot() {
                eps.entry((vec![("entrypoint", ep.to_string())], k))
                    .or_default()
                    .merge(&s);
                if detailed {
                    routers
                        .entry((
                            vec![
                                ("router", router.to_string()),
                                ("service", service.to_string()),
                            ],
                            k,
                        ))
                        .or_default()
                        .merge(&s);
                    services
                        .entry((vec![("service", service.to_string())], k))
                        .or_default()
                        .merge(&s);
                }
            }
        }
        encode_level(&mut encoder, "entrypoint", "an entrypoint", &eps)?;
        encode_level(&mut encoder, "router", "a router", &routers)?;
        encode_level(&mut encoder, "service", "a service", &services)?;
        let mut me = encoder.encode_descriptor(
            "traefik_service_retries",
            "How many request retries happened on a service.",
            None,
            MetricType::Counter,
        )?;
        for (service, n) in &retries {
            let labels = [("service", service.as_str())];
            ConstCounter::new(*n).encode(me.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// `traefik_tls_certs_not_after` of a config version: every certificate of `tls.certificates`
/// and every ACME certificate, by subject CN, serial (decimal) and SANs (`,`-joined), valued
/// with its Unix `notAfter`. Certificates that do not parse are skipped (the TLS compiler
/// reports them).
pub(crate) fn certs_not_after(
    cfg: &switchyard_config::DynamicConfig,
) -> Vec<(crate::metrics::CertLabels, i64)> {
    let pems = cfg
        .tls
        .certificates
        .iter()
        .map(|c| c.cert_file.as_str())
        .chain(
            cfg.managed
                .certificates
                .values()
                .map(|m| m.pair.cert_pem.as_str()),
        );
    let mut out = Vec::new();
    for pem in pems {
        let Ok((_, leaf)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
            continue;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&leaf.contents) else {
            continue;
        };
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("")
            .to_string();
        let sans = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        out.push((
            crate::metrics::CertLabels {
                cn,
                serial: cert.serial.to_string(),
                sans,
            },
            cert.validity().not_after.timestamp(),
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    /// Traefik's `TestGetMethod` and `getRequestProtocol` cases.
    #[test]
    fn methods_and_protocols() {
        let l = ReqLabels::of(&parts("GET", &[]));
        assert_eq!(labels_of(key(200, l)), ("200".into(), "GET", "http"));
        let l = ReqLabels::of(&parts("FOO", &[]));
        assert_eq!(labels_of(key(404, l)).1, "EXTENSION_METHOD");
        let l = ReqLabels::of(&parts(
            "GET",
            &[
                ("Connection", "keep-alive, Upgrade"),
                ("Upgrade", "WebSocket"),
            ],
        ));
        assert_eq!(labels_of(key(101, l)).2, "websocket");
        let l = ReqLabels::of(&parts("GET", &[("Accept", "text/event-stream")]));
        assert_eq!(labels_of(key(200, l)).2, "sse");
        let l = ReqLabels::of(&parts(
            "POST",
            &[("Content-Type", "application/grpc+proto")],
        ));
        assert_eq!(labels_of(key(200, l)).2, "grpc");
        let l = ReqLabels::of(&parts(
            "POST",
            &[("Content-Type", "application/grpc-web-text")],
        ));
        assert_eq!(labels_of(key(200, l)).2, "grpc-web");
        let l = ReqLabels::of(&parts("POST", &[("Content-Length", "12")]));
        assert_eq!(l.req_bytes, 12);
    }

    #[test]
    fn cells_count_by_key_and_bucket() {
        let c = Cells::default();
        let l = ReqLabels::of(&parts("GET", &[]));
        c.record(200, Duration::from_millis(50), l, 10, 0);
        c.record(200, Duration::from_millis(500), l, 5, 2);
        c.record(503, Duration::from_secs(9), l, 0, 0);
        let snap = c.snapshot();
        assert_eq!(snap.len(), 2);
        let ok = &snap.iter().find(|(k, _)| k >> 16 == 200).unwrap().1;
        assert_eq!(ok.count, 2);
        assert_eq!(ok.buckets, [1, 0, 1, 0, 0]);
        assert_eq!(ok.resp_bytes, 15);
        let bad = &snap.iter().find(|(k, _)| k >> 16 == 503).unwrap().1;
        assert_eq!(bad.buckets, [0, 0, 0, 0, 1]);
        assert_eq!(c.retries.load(Ordering::Relaxed), 2);
    }
}
