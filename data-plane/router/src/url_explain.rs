//! Explaining one request given as a method, a URL and headers, against a whole config: the
//! answer of `switchyard explain` and of a control node's `/api/explain` (the dashboard's explain
//! box), computed once here so both say the same thing.
//!
//! The path is the URL's path exactly as written (not the `url` crate's WHATWG-normalised one),
//! put through the entry point's path hygiene with the proxy's own function
//! ([`switchyard_config::paths::entrypoint_path`]), so `http://h/api/../admin` is routed as
//! `/admin`, as the proxy does, unless `sanitize_path` is false. An `https://` URL is a TLS
//! connection (routers with `tls` only), an `http://` URL a plaintext one.

use std::net::IpAddr;

use serde::Serialize;
use switchyard_config::paths::{entrypoint_path, EncodedCharacters};
use switchyard_config::rules::RequestView;
use switchyard_config::{ConfigErrors, DynamicConfig, Service};

use crate::{compile, ExplainedRoute, RejectedRoute};

/// A request to explain.
#[derive(Debug, Clone)]
pub struct UrlRequest<'a> {
    /// HTTP method (uppercased before matching).
    pub method: &'a str,
    /// Absolute `http://` or `https://` URL; its host is the Host header unless `headers` has one.
    pub url: &'a str,
    /// Header lines; a `Host` header overrides the URL's host.
    pub headers: &'a [(String, String)],
    /// The client address, for `ClientIP` matchers.
    pub client_ip: Option<IpAddr>,
    /// The entry point the request arrives on (`None`: every router is considered).
    pub entrypoint: Option<&'a str>,
    /// The entry point's `sanitizePath`.
    pub sanitize_path: bool,
    /// The entry point's `encodedCharacters`.
    pub encoded: EncodedCharacters,
}

/// Where the winning router's service sends requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceTargets {
    /// `loadBalancer`, `weighted`, `mirroring`, `failover` (`missing` when not in the config).
    pub kind: String,
    /// One line per target, e.g. `http://10.0.0.1:80 (zone a)`.
    pub targets: Vec<String>,
}

/// A request the entry point answers itself with an error, before or after routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// HTTP status (400).
    pub status: u16,
    /// Why.
    pub reason: String,
}

/// What the proxy would do with the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlExplanation {
    /// The path routed on (after the entry point's path hygiene).
    pub path: String,
    /// The path as written in the URL.
    pub raw_path: String,
    /// The router that serves the request (none: 404, or refused before routing).
    pub winner: Option<ExplainedRoute>,
    /// The winner's service and its targets.
    pub service: Option<ServiceTargets>,
    /// Every router tried before the winner, with the predicates that were false.
    pub rejected: Vec<RejectedRoute>,
    /// Set when the entry point answers 400 (malformed escape, denied encoded character).
    pub refused: Option<Refusal>,
}

impl UrlExplanation {
    /// A router serves the request (the proxy forwards it).
    pub fn served(&self) -> bool {
        self.winner.is_some() && self.refused.is_none()
    }
}

/// Why a request could not be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlExplainError {
    /// The URL does not parse or is not `http(s)://`.
    #[error("URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The config does not compile (cannot happen for a committed config).
    #[error("config: {0}")]
    Config(#[from] ConfigErrors),
}

fn strip_provider(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// Where a service sends requests, one line per target.
pub fn service_targets(cfg: &DynamicConfig, name: &str) -> ServiceTargets {
    let (kind, targets) = targets(cfg, name);
    ServiceTargets {
        kind: kind.to_string(),
        targets,
    }
}

fn targets(cfg: &DynamicConfig, name: &str) -> (&'static str, Vec<String>) {
    let Some(svc): Option<&Service> = cfg.http.services.get(strip_provider(name)) else {
        return ("missing", Vec::new());
    };
    if let Some(lb) = &svc.load_balancer {
        let servers = lb
            .servers
            .iter()
            .map(|s| {
                let mut line = s.url.clone();
                let mut tags = Vec::new();
                if let Some(w) = s.weight {
                    tags.push(format!("weight {w}"));
                }
                if let Some(z) = &s.zone {
                    tags.push(format!("zone {z}"));
                }
                if let Some(r) = &s.region {
                    tags.push(format!("region {r}"));
                }
                if !tags.is_empty() {
                    line.push_str(&format!(" ({})", tags.join(", ")));
                }
                line
            })
            .collect();
        return ("loadBalancer", servers);
    }
    if let Some(w) = &svc.weighted {
        let t = w
            .services
            .iter()
            .map(|s| format!("service {} (weight {})", s.name, s.weight.unwrap_or(1)))
            .collect();
        return ("weighted", t);
    }
    if let Some(m) = &svc.mirroring {
        let mut t = vec![format!("service {} (main)", m.service)];
        t.extend(
            m.mirrors
                .iter()
                .map(|x| format!("service {} (mirror {}%)", x.name, x.percent)),
        );
        return ("mirroring", t);
    }
    if let Some(f) = &svc.failover {
        return (
            "failover",
            vec![
                format!("service {} (main)", f.service),
                format!("service {} (fallback)", f.fallback),
            ],
        );
    }
    ("unknown", Vec::new())
}

/// The path and query of an absolute URL exactly as written (`url::Url` would resolve dot
/// segments and re-encode the path before the proxy's own rules could): the path runs from the
/// end of the authority to `?` or `#` (`/` when empty), the query from `?` to `#`.
pub fn raw_path_and_query(url: &str) -> (String, Option<String>) {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let target = after_scheme
        .find(['/', '?', '#'])
        .map_or("", |i| &after_scheme[i..]);
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    (path.to_string(), query)
}

/// Explains `req` against `cfg` exactly as a proxy would route it.
pub fn explain_url(
    cfg: &DynamicConfig,
    req: &UrlRequest<'_>,
) -> Result<UrlExplanation, UrlExplainError> {
    let url_err = |reason: String| UrlExplainError::Url {
        url: req.url.to_string(),
        reason,
    };
    let url = url::Url::parse(req.url).map_err(|e| url_err(e.to_string()))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        s => return Err(url_err(format!("scheme {s:?}: expected http or https"))),
    };
    let (raw_path, query) = raw_path_and_query(req.url);
    // The proxy's stage 2: a malformed escape is a 400 before any router is looked at.
    let path = match entrypoint_path(&raw_path, req.sanitize_path) {
        Ok(p) => p.into_owned(),
        Err(e) => {
            return Ok(UrlExplanation {
                path: raw_path.clone(),
                raw_path,
                winner: None,
                service: None,
                rejected: Vec::new(),
                refused: Some(Refusal {
                    status: 400,
                    reason: e.to_string(),
                }),
            })
        }
    };
    let mut host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => String::new(),
    };
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(req.headers.len());
    for (k, v) in req.headers {
        if k.eq_ignore_ascii_case("host") {
            host = v.clone();
        } else {
            headers.push((k.as_str(), v.as_str()));
        }
    }
    let method = req.method.to_ascii_uppercase();
    let view = RequestView {
        method: &method,
        host: &host,
        path: &path,
        query: query.as_deref(),
        headers: &headers,
        client_ip: req.client_ip,
    };
    let eps: Vec<String> = req.entrypoint.iter().map(|e| e.to_string()).collect();
    let table = compile(cfg, req.entrypoint.map(|_| eps.as_slice()))?;
    let ex = table.explain_conn(req.entrypoint.unwrap_or(""), Some(tls), &view);
    // The proxy's stage 4: the entry point's encodedCharacters, once a router matched.
    let refused = match &ex.winner {
        Some(_) => req.encoded.check(&path).err().map(|e| Refusal {
            status: 400,
            reason: e.to_string(),
        }),
        None => None,
    };
    let service = ex.winner.as_ref().map(|w| service_targets(cfg, &w.service));
    Ok(UrlExplanation {
        path,
        raw_path,
        winner: ex.winner,
        service,
        rejected: ex.rejected,
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_path_is_taken_as_written() {
        let cases = [
            ("http://h/api/../admin", "/api/../admin", None),
            ("http://h:8080/a/%2e%2e/b?x=1#f", "/a/%2e%2e/b", Some("x=1")),
            ("http://h", "/", None),
            ("http://h?q", "/", Some("q")),
            ("https://h#frag", "/", None),
            ("http://h//x/./y", "//x/./y", None),
        ];
        for (url, path, query) in cases {
            let (p, q) = raw_path_and_query(url);
            assert_eq!(p, path, "{url}");
            assert_eq!(q.as_deref(), query, "{url}");
        }
    }

    fn cfg() -> DynamicConfig {
        let v = serde_json::json!({"http": {
            "routers": {
                "api": {"rule": "Host(`a.example`) && PathPrefix(`/api`)", "service": "api"},
                "web": {"rule": "Host(`a.example`)", "service": "web@file"},
                "secure": {"rule": "Host(`a.example`)", "service": "web", "tls": {}, "priority": 100}
            },
            "services": {
                "api": {"loadBalancer": {"servers": [{"url": "http://10.0.0.1:80", "zone": "a"}]}},
                "web": {"weighted": {"services": [{"name": "api", "weight": 3}]}}
            }
        }});
        switchyard_config::from_value(v).expect("valid config")
    }

    fn req<'a>(method: &'a str, url: &'a str, headers: &'a [(String, String)]) -> UrlRequest<'a> {
        UrlRequest {
            method,
            url,
            headers,
            client_ip: None,
            entrypoint: None,
            sanitize_path: true,
            encoded: EncodedCharacters::default(),
        }
    }

    #[test]
    fn winner_service_and_losers() {
        let cfg = cfg();
        let ex = explain_url(&cfg, &req("get", "http://a.example/api/../web/x", &[])).expect("ok");
        assert_eq!(ex.path, "/web/x");
        assert_eq!(ex.raw_path, "/api/../web/x");
        let w = ex.winner.as_ref().expect("winner");
        assert_eq!(w.name, "web");
        assert_eq!(
            ex.service,
            Some(ServiceTargets {
                kind: "weighted".into(),
                targets: vec!["service api (weight 3)".into()]
            })
        );
        // `secure` (tls, priority 100) and `api` were tried first.
        let losers: Vec<&str> = ex.rejected.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(losers, ["secure", "api"]);
        assert_eq!(ex.rejected[0].failed, ["tls"]);
        assert!(ex.served());

        let ex = explain_url(&cfg, &req("GET", "http://a.example/api/v1", &[])).expect("ok");
        assert_eq!(ex.winner.as_ref().map(|w| w.name.as_str()), Some("api"));
        assert_eq!(
            ex.service.map(|s| s.targets),
            Some(vec!["http://10.0.0.1:80 (zone a)".to_string()])
        );
    }

    #[test]
    fn host_header_overrides_and_404() {
        let cfg = cfg();
        let h = vec![("Host".to_string(), "other.example".to_string())];
        let ex = explain_url(&cfg, &req("GET", "http://a.example/", &h)).expect("ok");
        assert!(ex.winner.is_none());
        assert!(!ex.served());
        assert_eq!(ex.rejected.len(), 3);
    }

    #[test]
    fn malformed_escape_and_bad_url() {
        let cfg = cfg();
        let ex = explain_url(&cfg, &req("GET", "http://a.example/%zz", &[])).expect("ok");
        assert_eq!(ex.refused.map(|r| r.status), Some(400));
        assert!(matches!(
            explain_url(&cfg, &req("GET", "ftp://a.example/", &[])),
            Err(UrlExplainError::Url { .. })
        ));
        assert!(explain_url(&cfg, &req("GET", "not a url", &[])).is_err());
    }
}
