//! # switchyard-proxy
//!
//! The data plane of Switchyard: a reverse proxy that serves the Traefik v3 dynamic
//! configuration pushed by the control plane (or, for development, read from a file), with
//! Traefik's routing, middleware and service semantics.
//!
//! ```text
//!  client ─► entry point (server) ─► forwarded headers ─► route (host index) ─► middlewares
//!                                                                     │
//!        ◄── response (streamed, metrics on completion) ◄── backend ◄─┴─ service graph ─► server
//! ```
//!
//! | module | role |
//! |---|---|
//! | [`proxy`](Proxy) | the [`Proxy`] handle: start, `apply` (compile + atomic swap), shutdown |
//! | `runtime` | one compiled config version (route table, routes, services, middlewares) |
//! | `server` | entry point accept loops, the request pipeline, forwarding, tunnels |
//! | `services` | load balancing (WRR, p2c, sticky, zones), health checks, weighted, mirroring, failover |
//! | `upstream` | servers transports, per-server pooled clients, TLS (rustls/ring) |
//! | `middlewares` | the supported middlewares, compiled per version |
//! | `forwarded` | `X-Forwarded-*`, hop-by-hop headers, `X-Request-Id` |
//! | [`errors`] | [`ProxyError`] and the request error → status mapping |
//! | [`limits`] | entry point timeouts (read, write, idle, grace) and limits (headers, connections, streams) |
//! | [`metrics`] | Prometheus metrics (and Traefik's names: `traefik_metrics`) |
//! | [`accesslog`] | access logs (Traefik's fields and formats), written off the request path |
//! | [`otel`] | OpenTelemetry tracing, OTLP export through a bounded queue |
//! | `admin` | `/healthz`, `/readyz`, `/metrics` |
//! | [`control`] | the config stream client: attach, apply, ACK/NACK, fail over between control nodes |
//! | [`cache`] | `--cache-dir`: the last applied version, served when no control node answers |
//!
//! ## Principles
//!
//! * **The request path never waits on the control plane** and takes no global lock: the
//!   current config is an `Arc<Runtime>` behind an `ArcSwap`, loaded once per request; an
//!   in-flight request finishes on the version it started with.
//! * **Everything that can be built per version is**: rules, the host index, regexps, header
//!   names/values, middleware chains, WRR schedules, sticky cookie attributes, TLS configs.
//! * **Exactly the control plane's compiler**: `apply` runs `switchyard_config::validate` and
//!   `switchyard_router::compile` before compiling services and middlewares; anything the
//!   control plane accepts compiles here.
//! * **State survives updates**: health, balancer cursors, in-flight counters, ejections and
//!   connection pools of an unchanged service carry over to the next version.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accesslog;
mod admin;
mod body;
pub mod cache;
pub mod control;
pub mod control_tls;
pub mod errors;
mod forwarded;
mod gate;
mod limiter;
pub mod limits;
pub mod metrics;
mod middlewares;
pub mod otel;
mod proxy;
mod runtime;
mod server;
mod services;
mod shared;
mod tcp;
mod tls;
mod traefik_metrics;
mod upstream;
mod util;
mod version_stats;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use errors::{ErrorKind, ProxyError};
pub use limits::{EntrypointLimits, LimitKind};
pub use metrics::Metrics;
pub use proxy::{HttpsRedirect, Proxy, ProxyOptions};
pub use switchyard_config::DynamicConfig;

/// Where [`run`] gets its config from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// Nothing: serve 404 until something calls [`Proxy::apply`].
    None,
    /// A Traefik v3 dynamic config file (YAML or JSON), applied once at start as version 1.
    File(PathBuf),
    /// The control plane's config stream.
    Control(control::ControlOptions),
}

/// Read and parse a dynamic config file; certificate, key and CA file paths in it are read
/// (relative to its directory) and inlined.
pub fn load_config_file(path: &Path) -> Result<DynamicConfig, ProxyError> {
    let text = std::fs::read_to_string(path).map_err(|e| ProxyError::ConfigFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut cfg = switchyard_config::parse_document(&text).map_err(|e| ProxyError::ConfigFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    // Certificate, key and CA paths, relative to the file's directory, as `switchyard apply`.
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    switchyard_config::inline_files(&mut cfg, |p| {
        std::fs::read_to_string(base.join(p)).map_err(|e| e.to_string())
    })
    .map_err(|e| ProxyError::ConfigFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(cfg)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Start a proxy, load `source`, serve until SIGTERM/Ctrl-C, then shut down gracefully.
pub async fn run(opts: ProxyOptions, source: ConfigSource) -> Result<(), ProxyError> {
    let proxy = Proxy::start(opts).await?;
    if let ConfigSource::File(path) = &source {
        let cfg = load_config_file(path)?;
        if let Err(e) = proxy.apply(1, Arc::new(cfg)) {
            proxy.metrics().config_nacks().inc();
            proxy.clone().shutdown().await;
            return Err(ProxyError::Config(e));
        }
        proxy.metrics().config_applies().inc();
    }
    let control = match source {
        ConfigSource::Control(c) => {
            let (p, region, zone) = (
                proxy.clone(),
                proxy.region().to_string(),
                proxy.zone().to_string(),
            );
            Some(tokio::spawn(control::run(p, c, region, zone)))
        }
        _ => None,
    };
    shutdown_signal().await;
    if let Some(c) = control {
        c.abort();
    }
    tracing::info!("shutting down: draining in-flight requests");
    proxy.shutdown().await;
    Ok(())
}
