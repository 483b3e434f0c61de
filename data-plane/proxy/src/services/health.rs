//! Active HTTP health checks (Traefik's `healthCheck` on a `loadBalancer`).
//!
//! One task per server, started when the balancer state is created and aborted when it is
//! dropped; since the state is reused by the next config version while the service is
//! unchanged, checks (and their up/down status) survive config updates. Each task checks at
//! once, then every `interval` (default 30s) while up and every `unhealthyInterval` (default:
//! `interval`) while down. A check is `method` (default GET) on `path` with the `scheme` and
//! `port` overrides, `hostname` as Host and extra `headers`, within `timeout` (default 5s);
//! healthy means the exact `status` if set, else 2xx–3xx. Redirects are followed (up to 10,
//! on the same server) unless `followRedirects: false`. The task holds only a weak reference
//! to the balancer while sleeping.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, HOST, LOCATION};
use http::{Method, Request, Uri};
use http_body_util::BodyExt;
use switchyard_config::ServerHealthCheck;
use tokio::runtime::Handle;

use super::lb::LoadBalancer;
use crate::body::UpBody;
use crate::upstream::{Client, Scheme, ServerUrl, Transport};

/// A compiled health check.
#[derive(Debug, Clone)]
pub(crate) struct HealthCheck {
    path: String,
    scheme: Option<Scheme>,
    port: Option<u16>,
    method: Method,
    hostname: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
    interval: Duration,
    unhealthy_interval: Duration,
    timeout: Duration,
    status: Option<u16>,
    follow_redirects: bool,
}

impl HealthCheck {
    /// Compile `loadBalancer.healthCheck`.
    pub(crate) fn new(def: &ServerHealthCheck) -> Result<HealthCheck, String> {
        let d = |v: &Option<switchyard_config::Duration>, default: Duration, f: &str| {
            v.as_ref().map_or(Ok(default), |d| {
                d.to_std().map_err(|e| format!("healthCheck.{f}: {e}"))
            })
        };
        let interval = d(&def.interval, Duration::from_secs(30), "interval")?;
        let scheme = match def.scheme.as_deref() {
            None | Some("") => None,
            Some("http") => Some(Scheme::Http),
            Some("https") => Some(Scheme::Https),
            Some("h2c") => Some(Scheme::H2c),
            Some(s) => return Err(format!("healthCheck.scheme: unknown scheme \"{s}\"")),
        };
        let method = match def.method.as_deref() {
            None | Some("") => Method::GET,
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("healthCheck.method: invalid method \"{m}\""))?,
        };
        let hostname = match def.hostname.as_deref() {
            None | Some("") => None,
            Some(h) => Some(
                HeaderValue::from_str(h)
                    .map_err(|_| format!("healthCheck.hostname: invalid value \"{h}\""))?,
            ),
        };
        let headers = def
            .headers
            .iter()
            .map(|(k, v)| {
                let n = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("healthCheck.headers: invalid header name \"{k}\""))?;
                let v = HeaderValue::from_str(v)
                    .map_err(|_| format!("healthCheck.headers: invalid value for \"{k}\""))?;
                Ok((n, v))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(HealthCheck {
            path: def.path.clone().unwrap_or_default(),
            scheme,
            port: def
                .port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0),
            method,
            hostname,
            headers,
            interval,
            unhealthy_interval: d(&def.unhealthy_interval, interval, "unhealthyInterval")?,
            timeout: d(&def.timeout, Duration::from_secs(5), "timeout")?,
            status: def.status,
            follow_redirects: def.follow_redirects.unwrap_or(true),
        })
    }

    /// Whether `status` is healthy.
    pub(crate) fn status_ok(&self, status: u16) -> bool {
        match self.status {
            Some(s) => s == status,
            None => (200..400).contains(&status),
        }
    }
}

/// Start one checking task per server of `lb` (its handles are kept by the balancer).
pub(crate) fn start(
    lb: &Arc<LoadBalancer>,
    hc: &HealthCheck,
    transport: &Transport,
    handle: &Handle,
) -> Result<(), String> {
    let mut tasks = Vec::with_capacity(lb.servers.len());
    for (idx, server) in lb.servers.iter().enumerate() {
        let mut target = server.parsed.clone();
        let overridden = hc.scheme.is_some_and(|s| s != target.scheme)
            || hc.port.is_some_and(|p| p != target.port);
        if let Some(s) = hc.scheme {
            target.scheme = s;
        }
        if let Some(p) = hc.port {
            target.port = p;
            let host = if target.host.contains(':') {
                format!("[{}]", target.host)
            } else {
                target.host.clone()
            };
            target.authority = format!("{host}:{p}");
        }
        let client = if overridden {
            transport.client(&target)?
        } else {
            server.client.clone()
        };
        let weak = Arc::downgrade(lb);
        let hc = hc.clone();
        let url = server.url.clone();
        let task = handle.spawn(async move {
            loop {
                let ok = check(&client, &target, &hc).await;
                if let Err(e) = &ok {
                    tracing::debug!(server = %url, error = %e, "health check failed");
                }
                let up = ok.is_ok();
                match weak.upgrade() {
                    Some(lb) => {
                        lb.set_active(idx, up);
                    }
                    None => return,
                }
                let wait = if up {
                    hc.interval
                } else {
                    hc.unhealthy_interval
                };
                tokio::time::sleep(wait).await;
                if weak.strong_count() == 0 {
                    return;
                }
            }
        });
        tasks.push(task.abort_handle());
    }
    lb.add_health_tasks(tasks);
    Ok(())
}

/// Resolve `path` (absolute path, possibly with a query, or relative) against the server.
fn probe_uri(target: &ServerUrl, path: &str) -> Result<Uri, String> {
    let scheme = if target.scheme == Scheme::Https {
        "https"
    } else {
        "http"
    };
    let p = if path.is_empty() {
        if target.path.is_empty() {
            "/".to_string()
        } else {
            target.path.clone()
        }
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", target.path, path)
    };
    // Characters not allowed in a URI are escaped, as Go's url.URL.String() does.
    let p = match p.split_once('?') {
        Some((path, q)) => format!("{}?{q}", crate::middlewares::escape_path(path)),
        None => crate::middlewares::escape_path(&p).into_owned(),
    };
    format!("{scheme}://{}{p}", target.authority)
        .parse::<Uri>()
        .map_err(|e| format!("invalid health check URL: {e}"))
}

/// One check, with redirects.
async fn check(client: &Client, target: &ServerUrl, hc: &HealthCheck) -> Result<(), String> {
    let run = async {
        let mut uri = probe_uri(target, &hc.path)?;
        for _ in 0..10 {
            let mut req = Request::builder()
                .method(hc.method.clone())
                .uri(uri.clone())
                .version(if target.scheme == Scheme::H2c {
                    http::Version::HTTP_2
                } else {
                    http::Version::HTTP_11
                })
                .body(UpBody::empty())
                .map_err(|e| e.to_string())?;
            let host = match &hc.hostname {
                Some(h) => h.clone(),
                None => HeaderValue::from_str(&target.authority).map_err(|e| e.to_string())?,
            };
            req.headers_mut().insert(HOST, host);
            for (k, v) in &hc.headers {
                req.headers_mut().insert(k.clone(), v.clone());
            }
            let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
            let status = resp.status();
            let location = resp.headers().get(LOCATION).cloned();
            // Drain the body so the connection goes back to the pool.
            let _ = resp.into_body().collect().await;
            if hc.follow_redirects && status.is_redirection() {
                if let Some(loc) = location.and_then(|l| l.to_str().ok().map(str::to_string)) {
                    let next: Uri = loc.parse().map_err(|_| "invalid redirect".to_string())?;
                    let pq = next
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_string();
                    uri = probe_uri(target, &pq)?;
                    continue;
                }
            }
            return if hc.status_ok(status.as_u16()) {
                Ok(())
            } else {
                Err(format!("received status {}", status.as_u16()))
            };
        }
        Err("too many redirects".to_string())
    };
    match tokio::time::timeout(hc.timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {:?}", hc.timeout)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn compile_and_status() {
        let def: ServerHealthCheck = serde_json::from_str(
            r#"{"path": "/health", "interval": "1s", "method": "head", "headers": {"X-A": "b"}, "port": 8081}"#,
        )
        .unwrap();
        let hc = HealthCheck::new(&def).unwrap();
        assert_eq!(hc.interval, Duration::from_secs(1));
        assert_eq!(hc.unhealthy_interval, Duration::from_secs(1));
        assert_eq!(hc.timeout, Duration::from_secs(5));
        assert_eq!(hc.method, Method::HEAD);
        assert_eq!(hc.port, Some(8081));
        assert!(hc.status_ok(200) && hc.status_ok(302) && !hc.status_ok(404) && !hc.status_ok(500));
        let def: ServerHealthCheck = serde_json::from_str(r#"{"status": 204}"#).unwrap();
        let hc = HealthCheck::new(&def).unwrap();
        assert!(hc.status_ok(204) && !hc.status_ok(200));
        assert_eq!(hc.interval, Duration::from_secs(30));
    }

    #[test]
    fn probe_uris() {
        let t = ServerUrl::parse("http://10.0.0.1:81/base").unwrap();
        assert_eq!(probe_uri(&t, "/h?x=1").unwrap(), "http://10.0.0.1:81/h?x=1");
        assert_eq!(probe_uri(&t, "h").unwrap(), "http://10.0.0.1:81/base/h");
        assert_eq!(probe_uri(&t, "").unwrap(), "http://10.0.0.1:81/base");
        assert_eq!(probe_uri(&t, "/a b").unwrap(), "http://10.0.0.1:81/a%20b");
    }
}
