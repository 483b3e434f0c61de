//! Choosing between TCP routers, and between TCP and HTTP, for one entry point, exactly as
//! Traefik's `pkg/server/router/tcp/router.go` does. Pure: the proxy routes with it and
//! `switchyard explain tcp` answers with it.
//!
//! * non-TLS connection: the first plain TCP router (no `tls`) that matches — in practice
//!   `HostSNI(`*`)`, maybe with `ClientIP` — else HTTP;
//! * TLS connection: HTTP when an HTTP router with `tls` has the SNI as host; else the first
//!   matching TLS TCP router that is not the catch-all; else HTTP when an HTTP router with
//!   `tls` has no host constraint; else a matching catch-all TLS TCP router; else HTTP.
//!
//! Within a list: priority (explicit, else the rule's length; `HostSNI(`*`)` alone: -1),
//! highest first, then router name.

use serde::Serialize;

use super::model::TcpRouter;
use super::rule::{compile, ConnView, TcpRule};
use crate::model::DynamicConfig;

/// One TCP router in a [`TcpMux`], with what the caller attached to it.
#[derive(Debug)]
pub struct MuxRoute<T> {
    /// Router name.
    pub name: String,
    /// Effective priority.
    pub priority: i64,
    /// The compiled rule.
    pub rule: TcpRule,
    /// The caller's value (the proxy's compiled route).
    pub value: T,
}

/// The TCP routers of one entry point and what its HTTP routers claim on TLS.
#[derive(Debug)]
pub struct TcpMux<T> {
    tls: Vec<MuxRoute<T>>,
    plain: Vec<MuxRoute<T>>,
    /// Lower-case hosts (maybe `*.`-prefixed) of the HTTP routers with `tls`.
    https_hosts: Vec<String>,
    /// Some HTTP router with `tls` has no host constraint.
    https_any: bool,
}

impl<T> Default for TcpMux<T> {
    fn default() -> Self {
        TcpMux {
            tls: Vec::new(),
            plain: Vec::new(),
            https_hosts: Vec::new(),
            https_any: false,
        }
    }
}

/// Why a connection goes where it goes (`switchyard explain tcp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpExplanation {
    /// Whether the connection is TLS (sent a ClientHello).
    pub tls: bool,
    /// The SNI considered.
    pub sni: Option<String>,
    /// The TCP router that serves the connection; `None`: HTTP serves it.
    pub router: Option<String>,
    /// Its service.
    pub service: Option<String>,
    /// `passthrough`, `terminate` or `plain`.
    pub mode: Option<String>,
    /// Why HTTP serves it, when it does.
    pub http_reason: Option<String>,
    /// The TCP routers considered, in order, with the matchers that failed.
    pub tried: Vec<Tried>,
}

/// One TCP router considered by [`TcpMux::explain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tried {
    /// Router name.
    pub name: String,
    /// Effective priority.
    pub priority: i64,
    /// Whether its rule matches.
    pub matched: bool,
    /// Matchers that failed (when it does not match).
    pub failed: Vec<String>,
}

fn on(eps: &[String], ep: Option<&str>) -> bool {
    match ep {
        None => true,
        Some(ep) => eps.is_empty() || eps.iter().any(|e| e == ep),
    }
}

impl<T> TcpMux<T> {
    /// The mux of entry point `ep` (`None`: every router, as if on all entry points). `make`
    /// builds the caller's value of each router attached (after its rule compiled).
    pub fn build(
        cfg: &DynamicConfig,
        ep: Option<&str>,
        mut make: impl FnMut(&str, &TcpRouter) -> Result<T, String>,
    ) -> Result<TcpMux<T>, String> {
        let mut m = TcpMux::default();
        for (name, r) in &cfg.tcp.routers {
            if !on(&r.entry_points, ep) {
                continue;
            }
            let rule = compile(&r.rule).map_err(|e| format!("tcpRouter {name:?}: rule: {e}"))?;
            let route = MuxRoute {
                name: name.clone(),
                priority: r.effective_priority(),
                rule,
                value: make(name, r)?,
            };
            if r.tls.is_some() {
                m.tls.push(route);
            } else {
                m.plain.push(route);
            }
        }
        for list in [&mut m.tls, &mut m.plain] {
            list.sort_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then_with(|| a.name.cmp(&b.name))
            });
        }
        if m.tls.is_empty() && m.plain.is_empty() {
            return Ok(m);
        }
        for r in cfg.http.routers.values() {
            if r.tls.is_none() || !on(&r.entry_points, ep) {
                continue;
            }
            match crate::rules::compile(&r.rule)
                .ok()
                .and_then(|c| c.host_constraint())
            {
                Some(hosts) => m
                    .https_hosts
                    .extend(hosts.into_iter().map(|h| h.to_ascii_lowercase())),
                None => m.https_any = true,
            }
        }
        Ok(m)
    }

    /// No TCP router on this entry point.
    pub fn is_empty(&self) -> bool {
        self.tls.is_empty() && self.plain.is_empty()
    }

    /// Traefik's shortcut: only plain TCP routers and nothing that needs a ClientHello, so a
    /// connection is routed before the client sends anything (server-first protocols).
    pub fn plain_only(&self) -> bool {
        !self.plain.is_empty()
            && self.tls.is_empty()
            && self.https_hosts.is_empty()
            && !self.https_any
    }

    fn https_host(&self, sni: Option<&str>) -> bool {
        let Some(sni) = sni else { return false };
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        self.https_hosts.iter().any(|h| match h.strip_prefix("*.") {
            Some(parent) => sni.split_once('.').is_some_and(|(_, rest)| rest == parent),
            None => *h == sni,
        })
    }

    fn first(&self, c: &ConnView<'_>, catch_all: bool) -> Option<&MuxRoute<T>> {
        self.tls
            .iter()
            .find(|r| r.rule.is_catch_all() == catch_all && r.rule.matches(c))
    }

    /// The TCP router that serves a connection (`tls`: it sent a ClientHello), or `None` for
    /// HTTP, with the reason.
    fn choose(&self, tls: bool, c: &ConnView<'_>) -> Result<&MuxRoute<T>, &'static str> {
        if !tls {
            return self
                .plain
                .iter()
                .find(|r| r.rule.matches(c))
                .ok_or("no plain TCP router matches: HTTP serves the connection");
        }
        if self.https_host(c.sni) {
            return Err("an HTTP router with tls has this host: HTTPS serves it");
        }
        if let Some(r) = self.first(c, false) {
            return Ok(r);
        }
        if self.https_any {
            return Err(
                "an HTTP router with tls and no host takes TLS connections before TCP catch-alls",
            );
        }
        self.first(c, true)
            .ok_or("no TLS TCP router matches: HTTPS serves the connection")
    }

    /// The TCP router that serves a connection, or `None` for HTTP.
    pub fn decide(&self, tls: bool, c: &ConnView<'_>) -> Option<&MuxRoute<T>> {
        self.choose(tls, c).ok()
    }

    /// [`TcpMux::decide`] with the reasons.
    pub fn explain(&self, tls: bool, c: &ConnView<'_>) -> TcpExplanation {
        let list = if tls { &self.tls } else { &self.plain };
        let tried = list
            .iter()
            .map(|r| {
                let (matched, failed) = r.rule.explain(c);
                Tried {
                    name: r.name.clone(),
                    priority: r.priority,
                    matched,
                    failed,
                }
            })
            .collect();
        let mut x = TcpExplanation {
            tls,
            sni: c.sni.map(str::to_string),
            router: None,
            service: None,
            mode: None,
            http_reason: None,
            tried,
        };
        match self.choose(tls, c) {
            Ok(r) => x.router = Some(r.name.clone()),
            Err(why) => x.http_reason = Some(why.to_string()),
        }
        x
    }
}

/// A connection to explain (`switchyard explain tcp SNI`).
#[derive(Debug, Clone)]
pub struct TcpRequest<'a> {
    /// The entry point (`None`: every router, as if on all entry points).
    pub entrypoint: Option<&'a str>,
    /// TLS (a ClientHello) or plain TCP.
    pub tls: bool,
    /// The SNI of the ClientHello.
    pub sni: Option<&'a str>,
    /// The client address.
    pub client_ip: std::net::IpAddr,
    /// ALPN protocols offered.
    pub alpn: &'a [String],
}

/// Which TCP router of `cfg` serves the connection `req`, with the service and mode, or why
/// HTTP does.
pub fn explain_conn(cfg: &DynamicConfig, req: &TcpRequest<'_>) -> Result<TcpExplanation, String> {
    let mux = TcpMux::build(cfg, req.entrypoint, |_, r| {
        let mode = match &r.tls {
            None => "plain",
            Some(t) if t.passthrough => "passthrough",
            Some(_) => "terminate",
        };
        Ok((r.service.clone(), mode))
    })?;
    let c = ConnView {
        sni: req.sni,
        client_ip: req.client_ip,
        alpn: req.alpn,
    };
    let mut x = mux.explain(req.tls, &c);
    if let Some(r) = mux.decide(req.tls, &c) {
        x.service = Some(r.value.0.clone());
        x.mode = Some(r.value.1.to_string());
    }
    Ok(x)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn mux(yaml: &str) -> TcpMux<()> {
        let cfg = crate::parse_document(yaml).unwrap();
        crate::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
        TcpMux::build(&cfg, Some("web"), |_, _| Ok(())).unwrap()
    }

    fn who(t: &TcpMux<()>, tls: bool, sni: Option<&str>) -> String {
        let c = ConnView {
            sni,
            client_ip: "10.0.0.1".parse().unwrap(),
            alpn: &[],
        };
        t.decide(tls, &c).map_or("http".into(), |r| r.name.clone())
    }

    const DOC: &str = r#"
http:
  routers:
    site: {rule: "Host(`www.example`)", service: h, tls: {}}
    plain-site: {rule: "Host(`plain.example`)", service: h}
  services:
    h: {loadBalancer: {servers: [{url: "http://127.0.0.1:1"}]}}
tcp:
  routers:
    db: {rule: "HostSNI(`db.example`)", service: s, tls: {passthrough: true}}
    wild: {rule: "HostSNI(`*.example`)", service: s, tls: {}}
    any-tls: {rule: "HostSNI(`*`)", service: s, tls: {passthrough: true}}
    echo: {rule: "HostSNI(`*`)", service: s}
    elsewhere: {rule: "HostSNI(`*`)", service: s, entryPoints: [other], priority: 1000}
  services:
    s: {loadBalancer: {servers: [{address: "127.0.0.1:2"}]}}
"#;

    #[test]
    fn tls_connections_follow_traefiks_order() {
        let t = mux(DOC);
        // An HTTP router's host wins over a matching TCP router.
        assert_eq!(who(&t, true, Some("www.example")), "http");
        // Longest rule first among TCP routers.
        assert_eq!(who(&t, true, Some("db.example")), "db");
        assert_eq!(who(&t, true, Some("mq.example")), "wild");
        // The catch-all last.
        assert_eq!(who(&t, true, Some("other.test")), "any-tls");
        assert_eq!(who(&t, true, None), "any-tls");
        // Non-TLS: the plain catch-all wins over HTTP (as Traefik).
        assert_eq!(who(&t, false, None), "echo");
        assert!(!t.plain_only());
        let x = t.explain(
            true,
            &ConnView {
                sni: Some("mq.example"),
                client_ip: "10.0.0.1".parse().unwrap(),
                alpn: &[],
            },
        );
        assert_eq!(x.router.as_deref(), Some("wild"));
        assert_eq!(x.tried[0].name, "db");
        assert_eq!(x.tried[0].failed, ["HostSNI(`db.example`)"]);
    }

    #[test]
    fn http_without_host_beats_the_tcp_catch_all_only() {
        let t = mux(r#"
http:
  routers:
    api: {rule: "PathPrefix(`/`)", service: h, tls: {}}
  services:
    h: {loadBalancer: {servers: [{url: "http://127.0.0.1:1"}]}}
tcp:
  routers:
    db: {rule: "HostSNI(`db.example`)", service: s, tls: {passthrough: true}}
    any: {rule: "HostSNI(`*`)", service: s, tls: {passthrough: true}}
  services:
    s: {loadBalancer: {servers: [{address: "127.0.0.1:2"}]}}
"#);
        assert_eq!(who(&t, true, Some("db.example")), "db");
        assert_eq!(who(&t, true, Some("x.example")), "http");
        assert_eq!(who(&t, false, None), "http");
    }

    #[test]
    fn only_plain_tcp_routes_without_waiting() {
        let t = mux("tcp:\n  routers:\n    e: {rule: \"HostSNI(`*`)\", service: s}\n  services:\n    s: {loadBalancer: {servers: [{address: \"127.0.0.1:2\"}]}}\n");
        assert!(t.plain_only());
    }
}
