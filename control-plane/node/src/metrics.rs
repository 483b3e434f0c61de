//! Prometheus metrics of a control node, served on `/metrics` of the HTTP port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Time between consecutive AppendEntries RPCs (heartbeats included) a follower receives: the
/// heartbeat interval when all is well; more is a heartbeat delay (a leader whose runtime is
/// stalled shows here, on its followers) or time without a leader.
pub struct AppendInterval {
    pub seconds: Histogram,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl AppendInterval {
    fn new() -> Self {
        AppendInterval {
            seconds: Histogram::new([0.025, 0.05, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0]),
            last: std::sync::Mutex::new(None),
        }
    }

    /// An AppendEntries RPC arrived now.
    pub fn observe(&self) {
        let now = std::time::Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = last.replace(now) {
            self.seconds.observe(now.duration_since(at).as_secs_f64());
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub code: String,
}

pub struct Metrics {
    registry: Registry,
    pub term: Gauge,
    pub leader_id: Gauge,
    pub is_leader: Gauge,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub last_log_index: Gauge,
    pub config_version: Gauge,
    pub disk_bytes: Gauge,
    /// Proxies attached to this node's config stream.
    pub proxies: Gauge,
    /// Seconds the state machine took per applied batch.
    pub apply_seconds: Histogram,
    /// Seconds from a write reaching the leader to it being committed and applied.
    pub write_seconds: Histogram,
    pub requests: Family<RequestLabels, Counter>,
    /// Followers: time between AppendEntries from the leader.
    pub append_interval: AppendInterval,
    /// The ACME manager's metrics.
    pub acme: switchyard_acme::AcmeMetrics,
    /// Span export (`--tracing.*`): dropped, exported and failed spans.
    pub tracing: switchyard_otel::Counters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let term = Gauge::default();
        let leader_id = Gauge::default();
        let is_leader = Gauge::default();
        let commit_index = Gauge::default();
        let applied_index = Gauge::default();
        let last_log_index = Gauge::default();
        let config_version = Gauge::default();
        let disk_bytes = Gauge::default();
        let proxies = Gauge::default();
        let apply_seconds = Histogram::new(exponential_buckets(0.00001, 2.5, 14));
        let write_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("raft_term", "Current Raft term", term.clone());
        registry.register(
            "raft_leader_id",
            "Node id of the known leader (0: none)",
            leader_id.clone(),
        );
        registry.register(
            "raft_is_leader",
            "1 when this node is the leader",
            is_leader.clone(),
        );
        registry.register(
            "raft_commit_index",
            "Highest Raft log index known committed",
            commit_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Highest Raft log index applied to the state machine",
            applied_index.clone(),
        );
        registry.register(
            "raft_last_log_index",
            "Highest Raft log index in the local log",
            last_log_index.clone(),
        );
        registry.register(
            "config_version",
            "Config version of the applied state",
            config_version.clone(),
        );
        registry.register(
            "store_disk_bytes",
            "Bytes on disk of the node's store",
            disk_bytes.clone(),
        );
        registry.register(
            "attached_proxies",
            "Proxies attached to this node's config stream",
            proxies.clone(),
        );
        registry.register(
            "raft_apply_duration_seconds",
            "State machine time per applied batch of log entries",
            apply_seconds.clone(),
        );
        registry.register(
            "write_duration_seconds",
            "Time from a write reaching the leader to its commit and apply",
            write_seconds.clone(),
        );
        registry.register(
            "api_requests",
            "Admin API requests by method and gRPC code",
            requests.clone(),
        );
        let append_interval = AppendInterval::new();
        registry.register(
            "raft_append_interval_seconds",
            "Followers: time between consecutive AppendEntries (heartbeats included) from the leader",
            append_interval.seconds.clone(),
        );
        let acme = switchyard_acme::AcmeMetrics::default();
        acme.register(&mut registry);
        let tracing = switchyard_otel::Counters::default();
        registry.register(
            "tracing_dropped_spans",
            "Spans dropped because the export queue was full (collector slow or down)",
            tracing.dropped.clone(),
        );
        registry.register(
            "tracing_exported_spans",
            "Spans sent to the OTLP collector",
            tracing.exported.clone(),
        );
        registry.register(
            "tracing_failed_spans",
            "Spans lost in failed or timed-out OTLP exports",
            tracing.failed.clone(),
        );
        Self {
            tracing,
            registry,
            acme,
            term,
            leader_id,
            is_leader,
            commit_index,
            applied_index,
            last_log_index,
            config_version,
            disk_bytes,
            proxies,
            apply_seconds,
            write_seconds,
            requests,
            append_interval,
        }
    }

    pub fn count_request(&self, method: &str, code: tonic::Code) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                code: format!("{code:?}"),
            })
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
