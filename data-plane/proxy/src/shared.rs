//! The state every connection of a proxy shares ([`Shared`]: entry points, the current
//! runtime, metrics, the access log and tracer) and what each entry point knows
//! ([`Entrypoint`]). Kept apart from [`crate::proxy`], which starts and stops a proxy, so the
//! server, TLS and admin modules depend on this module and not on the wiring.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;
use ipnet::IpNet;
use switchyard_config::paths::PathOptions;
use tokio::runtime::Handle;

use crate::limits::{EntrypointLimits, LimitKind};
use crate::metrics::{Metrics, RouteStats};
use crate::runtime::Runtime;
use crate::server::Tracker;
use crate::services::lb::Locality;

/// An entry point as the request path sees it.
pub(crate) struct Entrypoint {
    pub name: Arc<str>,
    pub trusted: Vec<IpNet>,
    /// The bound port (the usual `X-Forwarded-Port`, pre-built).
    pub port: Option<HeaderValue>,
    /// Stats of requests without a router (404).
    pub no_route: Arc<RouteStats>,
    /// Redirect plaintext requests to HTTPS: (`:port` suffix of the target, or empty for 443;
    /// permanent).
    pub https_redirect: Option<(String, bool)>,
    /// Timeouts and limits.
    pub limits: EntrypointLimits,
    /// `switchyard_proxy_entrypoint_limit_hits_total` by [`LimitKind::index`].
    pub limit_hits: [prometheus_client::metrics::counter::Counter; LimitKind::ALL.len()],
    /// `sanitizePath` and `encodedCharacters`.
    pub paths: PathOptions,
}

impl Entrypoint {
    /// Count a limit hit.
    pub(crate) fn hit(&self, kind: LimitKind) {
        self.limit_hits[kind.index()].inc();
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub entrypoints: Vec<Entrypoint>,
    pub entrypoint_names: Vec<String>,
    pub current: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
    pub proxy_id: Option<HeaderValue>,
    /// The access log, when on.
    pub accesslog: Option<Arc<crate::accesslog::AccessLog>>,
    /// The tracer, when tracing is on.
    pub tracing: Option<Arc<crate::otel::Tracing>>,
    pub tunnels: Arc<Tracker>,
    pub handle: Handle,
    pub(crate) version: AtomicU64,
    pub(crate) draining: AtomicBool,
    pub(crate) apply_lock: Mutex<()>,
    pub(crate) ready_note: Mutex<String>,
    pub(crate) locality: Locality,
}

impl Shared {
    /// The current config version (0: none).
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Whether a graceful shutdown is in progress.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The note shown by `/readyz`.
    pub(crate) fn ready_note(&self) -> String {
        self.ready_note
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }
}
