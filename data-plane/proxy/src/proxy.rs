//! [`Proxy`]: the handle of a running proxy (the seam the config client codes against).
//!
//! `start` binds every entry point and the admin address, and serves 404 (and `/readyz` 503)
//! until the first config is applied. `apply` compiles a version and swaps it in atomically
//! (see [`crate::runtime`]); applies are serialised by a mutex that the request path never
//! touches. `shutdown` turns `/readyz` to 503, keeps accepting for each entry point's
//! `requestAcceptGraceTimeout`, then stops accepting and lets in-flight requests (and WebSocket
//! tunnels) finish up to its `graceTimeOut`, then closes what is left.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use ipnet::IpNet;
use switchyard_config::paths::PathOptions;
use switchyard_config::DynamicConfig;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::errors::ProxyError;
use crate::limits::EntrypointLimits;
use crate::metrics::Metrics;
use crate::runtime::Runtime;
use crate::server::{self, Tracker};
use crate::services::lb::{LoadBalancer, Locality};
use crate::services::{self, Env};
use crate::shared::{Entrypoint, Shared};

/// How to run a proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Identity reported to the control plane and sent as `X-Forwarded-Server`.
    pub proxy_id: String,
    /// The proxy's region (zone-aware balancing).
    pub region: String,
    /// The proxy's zone (zone-aware balancing).
    pub zone: String,
    /// Entry points: `(NAME, HOST:PORT)`.
    pub entrypoints: Vec<(String, String)>,
    /// Trusted networks for `X-Forwarded-*` per entry point name.
    pub trusted_ips: HashMap<String, Vec<IpNet>>,
    /// `HOST:PORT` of `/healthz`, `/readyz`, `/metrics`.
    pub admin_addr: String,
    /// Limits and timeouts of every entry point not in `entrypoint_limits`.
    pub limits: EntrypointLimits,
    /// Limits and timeouts of given entry points (by name).
    pub entrypoint_limits: HashMap<String, EntrypointLimits>,
    /// Entry point redirections to HTTPS (Traefik's
    /// `entryPoints.<from>.http.redirections.entryPoint`).
    pub https_redirects: Vec<HttpsRedirect>,
    /// Request-path options per entry point name (Traefik's `http.sanitizePath` and
    /// `http.encodedCharacters`); entry points not listed get the default (sanitise, allow
    /// every encoded character).
    pub paths: HashMap<String, PathOptions>,
    /// Access logs (off when `None`).
    pub access_log: Option<crate::accesslog::AccessLogOptions>,
    /// OpenTelemetry tracing (off when `None`).
    pub tracing: Option<crate::otel::TracingOptions>,
    /// OTLP metrics export of the `/metrics` series (off when `None`).
    pub otlp_metrics: Option<switchyard_otel::MetricsOptions>,
}

/// Every plaintext request on entry point `from` (except ACME HTTP-01 requests) is redirected
/// to `https://<host>:<port of entry point to>` (the port is left out when it is 443), with
/// Traefik's RedirectScheme codes: permanent 301 for GET and 308 otherwise, temporary 302 for
/// GET and 307 otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsRedirect {
    /// The entry point whose requests are redirected.
    pub from: String,
    /// The entry point whose port the redirect points to.
    pub to: String,
    /// 301/308 (Traefik's default for entry point redirections) rather than 302/307.
    pub permanent: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            proxy_id: String::new(),
            region: String::new(),
            zone: String::new(),
            entrypoints: Vec::new(),
            trusted_ips: HashMap::new(),
            admin_addr: "127.0.0.1:0".to_string(),
            limits: EntrypointLimits::default(),
            entrypoint_limits: HashMap::new(),
            https_redirects: Vec::new(),
            paths: HashMap::new(),
            access_log: None,
            tracing: None,
            otlp_metrics: None,
        }
    }
}

struct Inner {
    id: String,
    region: String,
    zone: String,
    local_addrs: Vec<(String, SocketAddr)>,
    admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    admin_stop: watch::Sender<bool>,
    /// Accept loops, with how long shutdown waits for each (accept grace + grace).
    tasks: Mutex<Vec<(JoinHandle<()>, Duration)>>,
    admin_task: Mutex<Option<JoinHandle<()>>>,
    /// The OTLP metrics push, while the proxy runs.
    _otlp_metrics: Option<switchyard_otel::MetricsExport>,
}

/// A running proxy. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("version", &self.version())
            .field("local_addrs", &self.inner.local_addrs)
            .field("admin_addr", &self.inner.admin_addr)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Bind the entry points and the admin address and start serving (404 until a config is
    /// applied; `/readyz` 503 until then).
    pub async fn start(opts: ProxyOptions) -> Result<Proxy, ProxyError> {
        let handle = Handle::try_current().map_err(|_| ProxyError::NoRuntime)?;
        let mut names: Vec<String> = Vec::new();
        for (name, _) in &opts.entrypoints {
            if name.is_empty() {
                return Err(ProxyError::Options(
                    "entry point name must not be empty".into(),
                ));
            }
            if names.contains(name) {
                return Err(ProxyError::Options(format!(
                    "duplicate entry point \"{name}\""
                )));
            }
            names.push(name.clone());
        }
        for r in &opts.https_redirects {
            for n in [&r.from, &r.to] {
                if !names.contains(n) {
                    return Err(ProxyError::Options(format!(
                        "redirection {}={}: unknown entry point \"{n}\"",
                        r.from, r.to
                    )));
                }
            }
        }
        for ep in opts.entrypoint_limits.keys() {
            if !names.contains(ep) {
                return Err(ProxyError::Options(format!(
                    "limits given for unknown entry point \"{ep}\""
                )));
            }
        }
        for ep in opts.paths.keys() {
            if !names.contains(ep) {
                return Err(ProxyError::Options(format!(
                    "path options given for unknown entry point \"{ep}\""
                )));
            }
        }
        for ep in opts.trusted_ips.keys() {
            if !names.contains(ep) {
                return Err(ProxyError::Options(format!(
                    "trusted IPs given for unknown entry point \"{ep}\""
                )));
            }
        }
        // Bind everything first: a bad address fails `start` before anything runs.
        let mut listeners = Vec::new();
        let mut local_addrs = Vec::new();
        for (name, addr) in &opts.entrypoints {
            let bind_err = |source| ProxyError::Bind {
                name: name.clone(),
                addr: addr.clone(),
                source,
            };
            let listener = tokio::net::TcpListener::bind(addr.as_str())
                .await
                .map_err(bind_err)?;
            let local = listener.local_addr().map_err(bind_err)?;
            local_addrs.push((name.clone(), local));
            listeners.push(listener);
        }
        let admin = tokio::net::TcpListener::bind(opts.admin_addr.as_str())
            .await
            .map_err(|source| ProxyError::AdminBind {
                addr: opts.admin_addr.clone(),
                source,
            })?;
        let admin_addr = admin.local_addr().map_err(|source| ProxyError::AdminBind {
            addr: opts.admin_addr.clone(),
            source,
        })?;

        let metrics = Arc::new(Metrics::new());
        let accesslog = match &opts.access_log {
            Some(a) => Some(crate::accesslog::AccessLog::start(a, &metrics, &handle)?),
            None => None,
        };
        let tracer = match &opts.tracing {
            Some(t) => Some(crate::otel::start(
                t,
                &crate::otel::Identity {
                    proxy_id: &opts.proxy_id,
                    region: &opts.region,
                    zone: &opts.zone,
                },
                &metrics,
                &handle,
            )?),
            None => None,
        };
        let empty: Arc<str> = Arc::from("");
        let entrypoints = local_addrs
            .iter()
            .map(|(name, local)| {
                let https_redirect = opts
                    .https_redirects
                    .iter()
                    .find(|r| r.from == *name)
                    .and_then(|r| {
                        let to = local_addrs.iter().find(|(n, _)| *n == r.to)?.1.port();
                        let suffix = if to == 443 {
                            String::new()
                        } else {
                            format!(":{to}")
                        };
                        Some((suffix, r.permanent))
                    });
                let name: Arc<str> = Arc::from(name.as_str());
                let limits = opts
                    .entrypoint_limits
                    .get(&*name)
                    .unwrap_or(&opts.limits)
                    .clone();
                Entrypoint {
                    limit_hits: metrics.limit_hits(&name),
                    limits,
                    https_redirect,
                    paths: opts.paths.get(&*name).copied().unwrap_or_default(),
                    no_route: metrics.route_stats(&name, &empty, &empty),
                    trusted: opts.trusted_ips.get(&*name).cloned().unwrap_or_default(),
                    port: HeaderValue::from_str(&local.port().to_string()).ok(),
                    name,
                }
            })
            .collect();
        let default_cert = crate::tls::generate_default_cert().map_err(ProxyError::Options)?;
        let runtime = Runtime::empty(&names, default_cert).map_err(ProxyError::Options)?;
        let proxy_id = (!opts.proxy_id.is_empty())
            .then(|| HeaderValue::from_str(&opts.proxy_id).ok())
            .flatten();
        let (stop, stop_rx) = watch::channel(false);
        let (admin_stop, admin_stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            entrypoints,
            entrypoint_names: names,
            current: ArcSwap::from_pointee(runtime),
            metrics,
            proxy_id,
            accesslog,
            tracing: tracer,
            tunnels: Arc::new(Tracker::new()),
            handle: handle.clone(),
            version: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            apply_lock: Mutex::new(()),
            ready_note: Mutex::new(String::new()),
            locality: Locality {
                zone: opts.zone.clone(),
                region: opts.region.clone(),
            },
        });
        let tasks = listeners
            .into_iter()
            .enumerate()
            .map(|(idx, l)| {
                let wait = shared
                    .entrypoints
                    .get(idx)
                    .map_or(Duration::ZERO, |e| e.limits.accept_grace + e.limits.grace);
                let task =
                    handle.spawn(server::accept_loop(l, idx, shared.clone(), stop_rx.clone()));
                (task, wait)
            })
            .collect();
        let admin_task = handle.spawn(crate::admin::serve(admin, shared.clone(), admin_stop_rx));
        tracing::info!(
            entrypoints = ?local_addrs,
            admin = %admin_addr,
            zone = %opts.zone,
            region = %opts.region,
            "switchyard-proxy started"
        );
        let otlp_metrics = match &opts.otlp_metrics {
            Some(m) => Some(crate::otel::start_metrics(
                m,
                &crate::otel::Identity {
                    proxy_id: &opts.proxy_id,
                    region: &opts.region,
                    zone: &opts.zone,
                },
                &shared.metrics,
                &handle,
            )?),
            None => None,
        };
        Ok(Proxy {
            shared,
            inner: Arc::new(Inner {
                id: opts.proxy_id.clone(),
                region: opts.region.clone(),
                zone: opts.zone.clone(),
                local_addrs,
                admin_addr,
                stop,
                admin_stop,
                tasks: Mutex::new(tasks),
                admin_task: Mutex::new(Some(admin_task)),
                _otlp_metrics: otlp_metrics,
            }),
        })
    }

    /// Compile `cfg` as version `version` and swap it in atomically. `Err(message)` is a NACK:
    /// the previous config keeps serving. A version not above the current one is ignored
    /// (`Ok`). Health and balancer state of unchanged services carries over. The config client
    /// counts applies and NACKs itself ([`Metrics::config_applies`], [`Metrics::config_nacks`]).
    pub fn apply(&self, version: u64, cfg: Arc<DynamicConfig>) -> Result<(), String> {
        self.apply_change(version, cfg, None)
    }

    /// [`Proxy::apply`] of a config that is the one of version `base` with the resources
    /// `changed` created, updated or removed (a delta): when `base` is the version being
    /// served, only what the change touches is compiled ([`Runtime::compile_change`], the same
    /// result as a full compile); otherwise (or with `None`) the whole config is compiled.
    pub fn apply_change(
        &self,
        version: u64,
        cfg: Arc<DynamicConfig>,
        change: Option<(u64, &[(switchyard_config::ResourceKind, String)])>,
    ) -> Result<(), String> {
        let _guard = self
            .shared
            .apply_lock
            .lock()
            .map_err(|_| "internal error: apply lock poisoned".to_string())?;
        if version <= self.shared.version() {
            return Ok(());
        }
        if self.shared.draining() {
            return Err("the proxy is shutting down".to_string());
        }
        let old = self.shared.current.load_full();
        let env = Env {
            locality: &self.shared.locality,
            metrics: &self.shared.metrics,
            handle: &self.shared.handle,
        };
        let started = std::time::Instant::now();
        let eps = &self.shared.entrypoint_names;
        let mut rt = match change {
            Some((base, changed)) if base == self.shared.version() => {
                Runtime::compile_change(cfg, changed, eps, &old, &env)?
            }
            _ => Runtime::compile(cfg, eps, &old, &env)?,
        };
        rt.version_stats = Arc::new(crate::version_stats::VersionStats::new(version));
        crate::limiter::inherit(&old, &rt);
        // A version derived from a delta shares what did not change: its services and TLS
        // table are then the previous ones, with nothing to stop or relabel.
        let same_services = Arc::ptr_eq(&old.services, &rt.services);
        let certs = (!Arc::ptr_eq(&old.tls, &rt.tls))
            .then(|| crate::traefik_metrics::certs_not_after(&rt.config));
        // Backend health gauges of servers that are gone.
        let live: std::collections::HashSet<(Arc<str>, Arc<str>)> = if same_services {
            Default::default()
        } else {
            services::server_labels(&rt.services).into_iter().collect()
        };
        let routes = rt.table.len();
        self.shared.current.store(Arc::new(rt));
        self.shared.version.store(version, Ordering::Release);
        self.shared
            .metrics
            .config_version()
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        self.shared.metrics.config_reloaded();
        if let Some(certs) = certs {
            self.shared.metrics.set_certs(certs);
        }
        if !same_services {
            let kept: Vec<Arc<LoadBalancer>> =
                services::balancers(&self.shared.current.load().services);
            for lb in services::balancers(&old.services) {
                if !kept.iter().any(|k| Arc::ptr_eq(k, &lb)) {
                    lb.stop_health();
                }
            }
            for (svc, url) in services::server_labels(&old.services) {
                if !live.contains(&(svc.clone(), url.clone())) {
                    self.shared.metrics.remove_server_up(&svc, &url);
                }
            }
        }
        tracing::info!(
            version,
            routes,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "config applied"
        );
        Ok(())
    }

    /// The proxy id ([`ProxyOptions::proxy_id`]).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The proxy's region.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// The proxy's zone.
    pub fn zone(&self) -> &str {
        &self.inner.zone
    }

    /// The config version being served (0 = none).
    pub fn version(&self) -> u64 {
        self.shared.version()
    }

    /// The config being served (empty before the first apply), e.g. to persist it.
    pub fn config(&self) -> Arc<DynamicConfig> {
        self.shared.current.load().config.clone()
    }

    /// The compiled config being served.
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.shared.current.load_full()
    }

    /// A note shown by `/readyz` (e.g. "serving cached config v12 (no control node
    /// reachable)"); empty to clear.
    pub fn set_ready_note(&self, note: &str) {
        if let Ok(mut n) = self.shared.ready_note.lock() {
            *n = note.to_string();
        }
    }

    /// The tracer, when tracing is on.
    pub(crate) fn tracer(&self) -> Option<&Arc<crate::otel::Tracing>> {
        self.shared.tracing.as_ref()
    }

    /// The proxy's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The bound address of every entry point, in the order given.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.inner.local_addrs.clone()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.inner.admin_addr
    }

    /// Graceful shutdown: `/readyz` answers 503; each entry point keeps accepting for its
    /// `requestAcceptGraceTimeout`, then stops accepting and lets in-flight requests finish up
    /// to its `graceTimeOut`; tunnels get the longest of those; then everything is closed and
    /// health checks stop.
    pub async fn shutdown(self) {
        let start = tokio::time::Instant::now();
        self.shared.draining.store(true, Ordering::Release);
        let _ = self.inner.stop.send(true);
        let tasks: Vec<(JoinHandle<()>, Duration)> = self
            .inner
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        let longest = tasks.iter().map(|(_, d)| *d).max().unwrap_or_default();
        let deadline = start + longest;
        for (mut t, wait) in tasks {
            if tokio::time::timeout_at(start + wait, &mut t).await.is_err() {
                t.abort();
            }
        }
        self.shared.tunnels.wait_idle(deadline).await;
        self.shared.tunnels.stop_all();
        // Drop every balancer: health-check tasks stop.
        let default_cert = self.shared.current.load().default_cert.clone();
        if let Ok(rt) = Runtime::empty(&self.shared.entrypoint_names, default_cert) {
            self.shared.current.store(Arc::new(rt));
        }
        let _ = self.inner.admin_stop.send(true);
        let admin = self.inner.admin_task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut t) = admin {
            if tokio::time::timeout(Duration::from_secs(1), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        tracing::info!("switchyard-proxy stopped");
    }
}
