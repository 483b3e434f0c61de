//! Validation of the `tcp:` section. Pure; every problem names the resource and field.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{TcpLoadBalancer, TcpMiddleware, TcpRouter, TcpServersTransport, TcpService};
use super::rule;
use crate::acme::is_inline_pem;
use crate::error::{quote, ConfigError};
use crate::model::DynamicConfig;
use crate::syntax::is_tls_server_name;
use crate::validate::{
    check_name, duration_check, resolve_ref, RefProblem, MAX_USER_PRIORITY, NOT_SUPPORTED,
};

/// Resource kind labels in errors.
pub const ROUTER: &str = "tcpRouter";
/// See [`ROUTER`].
pub const SERVICE: &str = "tcpService";
/// See [`ROUTER`].
pub const MIDDLEWARE: &str = "tcpMiddleware";
/// See [`ROUTER`].
pub const TRANSPORT: &str = "tcpServersTransport";

struct V<'c> {
    cfg: &'c DynamicConfig,
    errors: Vec<ConfigError>,
}

/// Every problem of `cfg.tcp` (and of its references into `tls`).
pub(crate) fn validate(cfg: &DynamicConfig) -> Vec<ConfigError> {
    let mut v = V {
        cfg,
        errors: Vec::new(),
    };
    for (name, r) in &cfg.tcp.routers {
        v.router(name, r);
    }
    for (name, s) in &cfg.tcp.services {
        v.service(name, s);
    }
    v.cycles();
    for (name, m) in &cfg.tcp.middlewares {
        v.middleware(name, m);
    }
    for (name, t) in &cfg.tcp.servers_transports {
        v.transport(name, t);
    }
    v.errors
}

impl V<'_> {
    fn err(&mut self, kind: &str, name: &str, field: &str, msg: impl Into<String>) {
        self.errors.push(ConfigError::field(kind, name, field, msg));
    }

    fn reference<T>(
        &mut self,
        kind: &str,
        name: &str,
        field: &str,
        reference: &str,
        target: &str,
        names: &crate::model::Map<T>,
    ) {
        let msg = match resolve_ref(reference) {
            Ok(n) if names.contains_key(n) => return,
            Ok(n) => format!("{target} {} not found", quote(n)),
            Err(RefProblem::Empty) => format!("a {target} name is required"),
            Err(RefProblem::Internal) => format!(
                "{} refers to a Traefik internal {target}, which {NOT_SUPPORTED}",
                quote(reference)
            ),
            Err(RefProblem::Malformed) => format!(
                "invalid reference {}, expected \"name\" or \"name@provider\"",
                quote(reference)
            ),
        };
        self.err(kind, name, field, msg);
    }

    fn router(&mut self, name: &str, r: &TcpRouter) {
        if let Some(e) = check_name(ROUTER, name) {
            self.errors.push(e);
        }
        let compiled = if r.rule.trim().is_empty() {
            self.err(ROUTER, name, "rule", "a rule is required");
            None
        } else {
            match rule::compile(&r.rule) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.err(ROUTER, name, "rule", e.to_string());
                    None
                }
            }
        };
        match r.rule_syntax.as_deref() {
            None | Some("v3") | Some("") => {}
            Some(other) => self.err(
                ROUTER,
                name,
                "ruleSyntax",
                format!("{} {NOT_SUPPORTED} (only \"v3\")", quote(other)),
            ),
        }
        if let Some(p) = r.priority {
            if p > MAX_USER_PRIORITY {
                self.err(
                    ROUTER,
                    name,
                    "priority",
                    format!("must be at most {MAX_USER_PRIORITY}, got {p}"),
                );
            }
        }
        let services = &self.cfg.tcp.services;
        self.reference(ROUTER, name, "service", &r.service, "tcpService", services);
        let mws = &self.cfg.tcp.middlewares;
        for (i, m) in r.middlewares.iter().enumerate() {
            self.reference(
                ROUTER,
                name,
                &format!("middlewares[{i}]"),
                m,
                "tcpMiddleware",
                mws,
            );
        }
        for (i, ep) in r.entry_points.iter().enumerate() {
            if ep.trim().is_empty() {
                self.err(
                    ROUTER,
                    name,
                    &format!("entryPoints[{i}]"),
                    "entry point name must not be empty",
                );
            }
        }
        match &r.tls {
            None => {
                if let Some(h) = compiled
                    .as_ref()
                    .and_then(|c| c.host_sni().iter().find(|h| *h != "*"))
                {
                    self.err(
                        ROUTER,
                        name,
                        "rule",
                        format!(
                            "HostSNI({}) needs TLS (the SNI is only known on TLS connections): set tls (passthrough or termination), or use HostSNI(`*`) for plain TCP",
                            quote(h)
                        ),
                    );
                }
            }
            Some(t) => {
                if t.passthrough && t.cert_resolver.is_some() {
                    self.err(
                        ROUTER,
                        name,
                        "tls.certResolver",
                        "cannot be used with tls.passthrough: a passthrough router does not terminate TLS, the backend serves its own certificate",
                    );
                } else if let Some(res) = t.cert_resolver.as_deref().filter(|r| !r.is_empty()) {
                    let base = res.split_once('@').map_or(res, |(n, _)| n);
                    if !self.cfg.certificates_resolvers.contains_key(base) {
                        self.err(
                            ROUTER,
                            name,
                            "tls.certResolver",
                            format!("certificate resolver {} not found", quote(base)),
                        );
                    }
                }
                if t.passthrough && !t.domains.is_empty() {
                    self.err(
                        ROUTER,
                        name,
                        "tls.domains",
                        "cannot be used with tls.passthrough (no certificate is served)",
                    );
                }
                if let Some(o) = t.options.as_deref().filter(|o| !o.is_empty()) {
                    let base = o.split_once('@').map_or(o, |(n, _)| n);
                    if t.passthrough {
                        self.err(
                            ROUTER,
                            name,
                            "tls.options",
                            "cannot be used with tls.passthrough (the proxy does not terminate TLS)",
                        );
                    } else if base != "default" && !self.cfg.tls.options.contains_key(base) {
                        self.err(
                            ROUTER,
                            name,
                            "tls.options",
                            format!("TLS option {} not found", quote(base)),
                        );
                    }
                }
            }
        }
    }

    fn service(&mut self, name: &str, s: &TcpService) {
        if let Some(e) = check_name(SERVICE, name) {
            self.errors.push(e);
        }
        match (&s.load_balancer, &s.weighted) {
            (Some(lb), None) => self.load_balancer(name, lb),
            (None, Some(w)) => {
                if w.services.is_empty() {
                    self.err(
                        SERVICE,
                        name,
                        "weighted.services",
                        "at least one service is required",
                    );
                }
                let services = &self.cfg.tcp.services;
                for (i, ws) in w.services.iter().enumerate() {
                    self.reference(
                        SERVICE,
                        name,
                        &format!("weighted.services[{i}].name"),
                        &ws.name,
                        "tcpService",
                        services,
                    );
                    if let Some(wt) = ws.weight {
                        if wt < 0 {
                            self.err(
                                SERVICE,
                                name,
                                &format!("weighted.services[{i}].weight"),
                                format!("must be 0 or more, got {wt}"),
                            );
                        }
                    }
                }
            }
            (None, None) => self.errors.push(ConfigError::resource(
                SERVICE,
                name,
                "exactly one of \"loadBalancer\" or \"weighted\" must be set",
            )),
            (Some(_), Some(_)) => self.errors.push(ConfigError::resource(
                SERVICE,
                name,
                "exactly one of \"loadBalancer\" or \"weighted\" must be set, found both",
            )),
        }
    }

    fn load_balancer(&mut self, name: &str, lb: &TcpLoadBalancer) {
        for (i, s) in lb.servers.iter().enumerate() {
            let field = format!("loadBalancer.servers[{i}].address");
            if let Some(msg) = address_problem(&s.address) {
                self.err(SERVICE, name, &field, msg);
            }
        }
        if let Some(pp) = &lb.proxy_protocol {
            match pp.version {
                None | Some(1) | Some(2) => {}
                Some(v) => self.err(
                    SERVICE,
                    name,
                    "loadBalancer.proxyProtocol.version",
                    format!("must be 1 or 2, got {v}"),
                ),
            }
        }
        if let Some(st) = lb.servers_transport.as_deref().filter(|s| !s.is_empty()) {
            let transports = &self.cfg.tcp.servers_transports;
            self.reference(
                SERVICE,
                name,
                "loadBalancer.serversTransport",
                st,
                TRANSPORT,
                transports,
            );
        }
        if lb.health_check.is_some() {
            self.err(
                SERVICE,
                name,
                "loadBalancer.healthCheck",
                format!("active TCP health checks {NOT_SUPPORTED}"),
            );
        }
    }

    /// Weighted services that reference themselves, directly or not.
    fn cycles(&mut self) {
        let graph: BTreeMap<&str, Vec<&str>> = self
            .cfg
            .tcp
            .services
            .iter()
            .map(|(n, s)| {
                let kids = s
                    .weighted
                    .iter()
                    .flat_map(|w| w.services.iter())
                    .filter_map(|c| resolve_ref(&c.name).ok())
                    .collect();
                (n.as_str(), kids)
            })
            .collect();
        let mut reported = BTreeSet::new();
        for start in graph.keys() {
            // Iterative DFS from `start`: does it reach itself?
            let mut stack: Vec<&str> = graph.get(start).cloned().unwrap_or_default();
            let mut seen = BTreeSet::new();
            while let Some(n) = stack.pop() {
                if n == *start {
                    if reported.insert(*start) {
                        self.errors.push(ConfigError::field(
                            SERVICE,
                            start,
                            "weighted.services",
                            "the weighted service references itself (directly or through other services)",
                        ));
                    }
                    break;
                }
                if seen.insert(n) {
                    if let Some(k) = graph.get(n) {
                        stack.extend(k.iter().copied());
                    }
                }
            }
        }
    }

    fn middleware(&mut self, name: &str, m: &TcpMiddleware) {
        if let Some(e) = check_name(MIDDLEWARE, name) {
            self.errors.push(e);
        }
        let kinds = m.kinds();
        if kinds.len() != 1 {
            self.errors.push(ConfigError::resource(
                MIDDLEWARE,
                name,
                format!(
                    "exactly one middleware kind must be set (\"ipAllowList\" or \"inFlightConn\"), found {}",
                    kinds.len()
                ),
            ));
            return;
        }
        let allow = m
            .ip_allow_list
            .as_ref()
            .map(|a| ("ipAllowList", a))
            .or(m.ip_white_list.as_ref().map(|a| ("ipWhiteList", a)));
        if let Some((kind, a)) = allow {
            if a.source_range.is_empty() {
                self.err(
                    MIDDLEWARE,
                    name,
                    &format!("{kind}.sourceRange"),
                    "at least one IP address or CIDR range is required",
                );
            }
            let mut errs = Vec::new();
            crate::middlewares::ip::Checker::parse(
                &format!("{kind}.sourceRange"),
                &a.source_range,
                &mut errs,
            );
            for e in errs {
                self.err(MIDDLEWARE, name, &e.field, e.message);
            }
        }
        if let Some(f) = &m.in_flight_conn {
            match f.amount {
                Some(a) if a > 0 => {}
                Some(a) => self.err(
                    MIDDLEWARE,
                    name,
                    "inFlightConn.amount",
                    format!("must be greater than zero, got {a}"),
                ),
                None => self.err(MIDDLEWARE, name, "inFlightConn.amount", "is required"),
            }
        }
    }
}

impl V<'_> {
    fn transport(&mut self, name: &str, t: &TcpServersTransport) {
        if let Some(e) = check_name(TRANSPORT, name) {
            self.errors.push(e);
        }
        for (field, d, allow_negative) in [
            ("dialTimeout", &t.dial_timeout, false),
            ("dialKeepAlive", &t.dial_keep_alive, true),
            ("terminationDelay", &t.termination_delay, true),
        ] {
            if let Some(d) = d {
                if let Err(e) = duration_check(d, false, allow_negative) {
                    self.err(TRANSPORT, name, field, e);
                }
            }
        }
        if let Some(pp) = &t.proxy_protocol {
            match pp.version {
                None | Some(1) | Some(2) => {}
                Some(v) => self.err(
                    TRANSPORT,
                    name,
                    "proxyProtocol.version",
                    format!("must be 1 or 2, got {v}"),
                ),
            }
        }
        let Some(tls) = &t.tls else { return };
        if tls.spiffe.is_some() {
            self.err(
                TRANSPORT,
                name,
                "tls.spiffe",
                format!("SPIFFE {NOT_SUPPORTED}"),
            );
        }
        if tls.peer_cert_uri.as_deref().is_some_and(|s| !s.is_empty()) {
            self.err(
                TRANSPORT,
                name,
                "tls.peerCertURI",
                format!("peerCertURI {NOT_SUPPORTED}"),
            );
        }
        if let Some(sn) = tls.server_name.as_deref().filter(|s| !s.is_empty()) {
            if !is_tls_server_name(sn) {
                self.err(
                    TRANSPORT,
                    name,
                    "tls.serverName",
                    format!(
                        "invalid server name {}, expected a DNS name or an IP address",
                        quote(sn)
                    ),
                );
            }
        }
        let pem = "must hold PEM; `switchyard apply` uploads file contents";
        for (i, ca) in tls.root_cas.iter().enumerate() {
            if !is_inline_pem(ca) {
                self.err(
                    TRANSPORT,
                    name,
                    &format!("tls.rootCAs[{i}]"),
                    format!("rootCAs {pem}"),
                );
            }
        }
        for (i, c) in tls.certificates.iter().enumerate() {
            for (f, v) in [("certFile", &c.cert_file), ("keyFile", &c.key_file)] {
                if !is_inline_pem(v) {
                    self.err(
                        TRANSPORT,
                        name,
                        &format!("tls.certificates[{i}].{f}"),
                        format!("{f} {pem}"),
                    );
                }
            }
        }
    }
}

/// What is wrong with a TCP server address (`host:port`), if anything.
pub fn address_problem(a: &str) -> Option<String> {
    if a.is_empty() {
        return Some("an address (host:port) is required".to_string());
    }
    let Some((host, port)) = a.rsplit_once(':') else {
        return Some(format!("{} has no port, expected host:port", quote(a)));
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return Some(format!("{} has an invalid host", quote(a)));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => None,
        _ => Some(format!("{} has an invalid port", quote(a))),
    }
}
