//! Whole-config validation: every problem found, sorted and deduplicated. Pure and
//! deterministic (it runs inside the Raft state machine).

use std::collections::{BTreeMap, BTreeSet};

use crate::acme::is_inline_pem;
use crate::duration::{Duration, StrOrInt};
use crate::error::{quote, ConfigError, ConfigErrors};
use crate::model::{DynamicConfig, LoadBalancer, Middleware, Service, Sticky};
use crate::rules;
use crate::syntax::{
    cookie_attribute_problem, header_name_problem, header_value_problem, is_field_ctl,
    is_host_header, is_tls_server_name, is_token, is_url_host_char, path_problem,
};

/// Highest priority a user may set (Traefik reserves the top 1000 values for internal routers).
pub const MAX_USER_PRIORITY: i64 = i64::MAX - 1000;

/// Deepest nesting of middleware references the proxy expands: a router's middleware is
/// level 1, the members of a chain it references level 2, and so on.
pub const MAX_CHAIN_NESTING: usize = 10_000;

pub(crate) const NOT_SUPPORTED: &str = "is not supported by this version of Switchyard";

/// Validate a whole config. Returns ALL problems found, sorted by their rendered text and
/// deduplicated.
pub fn validate(cfg: &DynamicConfig) -> Result<(), ConfigErrors> {
    let mut v = Validator {
        cfg,
        errors: Vec::new(),
    };
    v.run();
    finish(v.errors)
}

/// Errors sorted by their rendered text (what the user reads is ordered) and deduplicated.
pub(crate) fn finish(mut errors: Vec<ConfigError>) -> Result<(), ConfigErrors> {
    errors.sort_by_cached_key(ConfigError::render);
    errors.dedup();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

pub(crate) struct Validator<'c> {
    pub(crate) cfg: &'c DynamicConfig,
    pub(crate) errors: Vec<ConfigError>,
}

pub(crate) enum RefProblem {
    Empty,
    Internal,
    Malformed,
}

/// Resolve a reference `name` or `name@provider` to `name`.
pub(crate) fn resolve_ref(r: &str) -> Result<&str, RefProblem> {
    if r.is_empty() {
        return Err(RefProblem::Empty);
    }
    match r.split_once('@') {
        None => Ok(r),
        Some((_, "internal")) => Err(RefProblem::Internal),
        Some((name, provider))
            if name.is_empty() || provider.is_empty() || provider.contains('@') =>
        {
            Err(RefProblem::Malformed)
        }
        Some((name, _)) => Ok(name),
    }
}

pub(crate) fn check_name(kind: &str, name: &str) -> Option<ConfigError> {
    let msg = if name.is_empty() {
        "name must not be empty"
    } else if name.chars().any(char::is_whitespace) {
        "name must not contain whitespace"
    } else if name.contains('@') {
        "name must not contain \"@\" (the @provider suffix is only used in references)"
    } else if name.chars().any(char::is_control) {
        "name must not contain control characters"
    } else {
        return None;
    };
    Some(ConfigError::resource(kind, name, msg))
}

pub(crate) fn duration_check(
    d: &Duration,
    positive: bool,
    allow_negative: bool,
) -> Result<(), String> {
    let n = d
        .as_nanos()
        .map_err(|e| format!("invalid duration {}: {e}", quote_dur(d)))?;
    if positive && n <= 0 {
        return Err(format!("must be greater than zero, got {}", quote_dur(d)));
    }
    if !allow_negative && n < 0 {
        return Err(format!("must not be negative, got {}", quote_dur(d)));
    }
    Ok(())
}

fn quote_dur(d: &Duration) -> String {
    match &d.0 {
        StrOrInt::Int(i) => i.to_string(),
        StrOrInt::Str(s) => quote(s),
    }
}

impl<'c> Validator<'c> {
    fn push(&mut self, kind: &str, name: &str, field: Option<String>, message: impl Into<String>) {
        let mut e = ConfigError::resource(kind, name, message);
        e.field = field;
        self.errors.push(e);
    }

    fn field(&mut self, kind: &str, name: &str, field: impl Into<String>, msg: impl Into<String>) {
        self.push(kind, name, Some(field.into()), msg);
    }

    /// Check a reference to a resource of `target_kind` that must exist in `names`.
    fn check_ref<T>(
        &mut self,
        kind: &str,
        name: &str,
        field: &str,
        reference: &str,
        target_kind: &str,
        names: &crate::model::Map<T>,
    ) -> Option<String> {
        match resolve_ref(reference) {
            Ok(n) if names.contains_key(n) => Some(n.to_string()),
            Ok(n) => {
                self.field(
                    kind,
                    name,
                    field,
                    format!("{target_kind} {} not found", quote(n)),
                );
                None
            }
            Err(RefProblem::Empty) => {
                self.field(
                    kind,
                    name,
                    field,
                    format!("a {target_kind} name is required"),
                );
                None
            }
            Err(RefProblem::Internal) => {
                self.field(
                    kind,
                    name,
                    field,
                    format!(
                        "{} refers to a Traefik internal {target_kind}, which {NOT_SUPPORTED}",
                        quote(reference)
                    ),
                );
                None
            }
            Err(RefProblem::Malformed) => {
                self.field(
                    kind,
                    name,
                    field,
                    format!(
                        "invalid reference {}, expected \"name\" or \"name@provider\"",
                        quote(reference)
                    ),
                );
                None
            }
        }
    }

    fn run(&mut self) {
        let cfg = self.cfg;
        for (name, r) in &cfg.http.routers {
            self.router(name, r);
        }
        for (name, s) in &cfg.http.services {
            self.service(name, s);
        }
        self.service_cycles();
        for (name, m) in &cfg.http.middlewares {
            self.middleware(name, m);
        }
        self.chain_cycles();
        self.chain_nesting();
        for (name, t) in &cfg.http.servers_transports {
            self.servers_transport(name, t);
        }
        self.tls();
        for (name, r) in &cfg.certificates_resolvers {
            self.resolver(name, r);
        }
        self.errors.extend(crate::tcp::validate(cfg));
    }

    /// `certificatesResolvers.<name>`: only ACME with HTTP-01 or TLS-ALPN-01.
    pub(crate) fn resolver(&mut self, name: &str, r: &crate::acme::CertResolver) {
        const K: &str = "certResolver";
        if let Some(e) = check_name(K, name) {
            self.errors.push(e);
        }
        if r.tailscale.is_some() {
            self.field(
                K,
                name,
                "tailscale",
                format!("the Tailscale resolver {NOT_SUPPORTED}"),
            );
        }
        let Some(a) = &r.acme else {
            if r.tailscale.is_none() {
                self.push(K, name, None, "an `acme` section is required");
            }
            return;
        };
        if let Some(email) = &a.email {
            let ok = match email.split_once('@') {
                Some((user, host)) => {
                    !user.is_empty()
                        && !host.is_empty()
                        && !host.starts_with('.')
                        && !host.ends_with('.')
                        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                        && !host.contains('@')
                }
                None => false,
            };
            if !ok {
                self.field(
                    K,
                    name,
                    "acme.email",
                    format!("invalid e-mail address {}", quote(email)),
                );
            }
        }
        if let Some(ca) = &a.ca_server {
            match url::Url::parse(ca) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {
                    if u.host_str().is_none_or(str::is_empty) {
                        self.field(
                            K,
                            name,
                            "acme.caServer",
                            format!("{} has no host", quote(ca)),
                        );
                    }
                }
                Ok(_) => self.field(
                    K,
                    name,
                    "acme.caServer",
                    format!("{} must be an https:// URL", quote(ca)),
                ),
                Err(e) => self.field(
                    K,
                    name,
                    "acme.caServer",
                    format!("invalid URL {}: {e}", quote(ca)),
                ),
            }
        }
        for (i, pem) in a.ca_certificates.iter().enumerate() {
            if !crate::acme::is_inline_pem(pem) {
                self.field(
                    K,
                    name,
                    format!("acme.caCertificates[{i}]"),
                    "expected PEM text (the CLI uploads the contents of the file)",
                );
            }
        }
        if let Some(kt) = &a.key_type {
            match kt.as_str() {
                "EC256" | "EC384" | "RSA2048" | "RSA4096" | "RSA8192" => {}
                _ => self.field(
                    K,
                    name,
                    "acme.keyType",
                    format!(
                        "unknown key type {}: expected EC256, EC384, RSA2048, RSA4096 or RSA8192",
                        quote(kt)
                    ),
                ),
            }
        }
        if let Some(eab) = &a.eab {
            if eab.kid.trim().is_empty() {
                self.field(K, name, "acme.eab.kid", "must not be empty");
            }
            if eab.hmac_encoded.trim().is_empty() {
                self.field(K, name, "acme.eab.hmacEncoded", "must not be empty");
            }
        }
        if let Some(h) = a.certificates_duration {
            if h <= 0 {
                self.field(
                    K,
                    name,
                    "acme.certificatesDuration",
                    "must be a positive number of hours",
                );
            }
        }
        let durations = [
            ("acme.renewBefore", &a.renew_before, true),
            ("acme.renewCheckInterval", &a.renew_check_interval, true),
            ("acme.clientTimeout", &a.client_timeout, true),
            (
                "acme.clientResponseHeaderTimeout",
                &a.client_response_header_timeout,
                true,
            ),
            ("acme.certificateTimeout", &a.certificate_timeout, true),
            (
                "acme.httpChallenge.delay",
                &a.http_challenge.as_ref().and_then(|c| c.delay.clone()),
                false,
            ),
            (
                "acme.tlsChallenge.delay",
                &a.tls_challenge.as_ref().and_then(|c| c.delay.clone()),
                false,
            ),
        ];
        for (field, value, positive) in durations {
            let Some(v) = value else { continue };
            match crate::duration::parse_go_duration(v) {
                Err(e) => self.field(
                    K,
                    name,
                    field,
                    format!("invalid duration {}: {e}", quote(v)),
                ),
                Ok(ns) if ns < 0 || (positive && ns == 0) => self.field(
                    K,
                    name,
                    field,
                    format!(
                        "{} must be {}",
                        quote(v),
                        if positive {
                            "positive"
                        } else {
                            "zero or positive"
                        }
                    ),
                ),
                Ok(_) => {}
            }
        }
        if let Some(d) = &a.dns_challenge {
            self.dns_challenge(name, d);
        }
        if a.ca_server_name.is_some() {
            self.field(K, name, "acme.caServerName", NOT_SUPPORTED);
        }
        if a.preferred_chain.is_some() {
            self.field(K, name, "acme.preferredChain", NOT_SUPPORTED);
        }
        for (i, e) in a.email_addresses.iter().enumerate() {
            if e.split_once('@')
                .is_none_or(|(u, h)| u.is_empty() || h.is_empty())
            {
                self.field(
                    K,
                    name,
                    format!("acme.emailAddresses[{i}]"),
                    format!("invalid e-mail address {}", quote(e)),
                );
            }
        }
        let set = [
            a.http_challenge.is_some(),
            a.tls_challenge.is_some(),
            a.dns_challenge.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        match set {
            0 => self.push(
                K,
                name,
                None,
                "a challenge is required: acme.httpChallenge, acme.tlsChallenge or acme.dnsChallenge",
            ),
            1 => {}
            _ => self.push(
                K,
                name,
                None,
                "set exactly one of acme.httpChallenge, acme.tlsChallenge and acme.dnsChallenge",
            ),
        }
        if let Some(h) = &a.http_challenge {
            if h.entry_point.trim().is_empty() {
                self.field(
                    K,
                    name,
                    "acme.httpChallenge.entryPoint",
                    "must name an entry point",
                );
            }
        }
    }

    /// `acme.dnsChallenge`: a known provider with its settings block, durations, resolvers.
    fn dns_challenge(&mut self, name: &str, d: &crate::acme::DnsChallenge) {
        const K: &str = "certResolver";
        let f = |x: &str| format!("acme.dnsChallenge.{x}");
        let blocks = [
            ("rfc2136", d.rfc2136.is_some()),
            ("httpreq", d.httpreq.is_some()),
            ("exec", d.exec.is_some()),
        ];
        match d.provider.as_str() {
            "rfc2136" | "httpreq" | "exec" => {
                if !blocks.iter().any(|(n, set)| *n == d.provider && *set) {
                    self.field(
                        K,
                        name,
                        f(&d.provider),
                        format!("provider {} needs its settings here", quote(&d.provider)),
                    );
                }
            }
            "" => self.field(K, name, f("provider"), "must name a DNS provider: rfc2136, httpreq or exec"),
            other => self.field(
                K,
                name,
                f("provider"),
                format!(
                    "unknown DNS provider {}: this version of Switchyard implements rfc2136, httpreq and exec (any DNS API can be scripted with exec or httpreq)",
                    quote(other)
                ),
            ),
        }
        for (block, set) in blocks {
            if set && block != d.provider {
                self.field(
                    K,
                    name,
                    f(block),
                    format!("is set but the provider is {}", quote(&d.provider)),
                );
            }
        }
        for (i, r) in d.resolvers.iter().enumerate() {
            if crate::acme::parse_dns_server(r).is_none() {
                self.field(
                    K,
                    name,
                    f(&format!("resolvers[{i}]")),
                    format!("{} is not an IP address with an optional port", quote(r)),
                );
            }
        }
        for (field, v) in [
            (
                "propagation.delayBeforeChecks",
                d.propagation
                    .as_ref()
                    .and_then(|p| p.delay_before_checks.as_ref()),
            ),
            ("delayBeforeCheck", d.delay_before_check.as_ref()),
        ] {
            let Some(v) = v else { continue };
            match crate::duration::parse_go_duration(v) {
                Ok(ns) if ns >= 0 => {}
                Ok(_) => self.field(
                    K,
                    name,
                    f(field),
                    format!("{} must be zero or positive", quote(v)),
                ),
                Err(e) => self.field(
                    K,
                    name,
                    f(field),
                    format!("invalid duration {}: {e}", quote(v)),
                ),
            }
        }
        if let Some(r) = &d.rfc2136 {
            if crate::acme::parse_dns_server(&r.nameserver).is_none() {
                self.field(
                    K,
                    name,
                    f("rfc2136.nameserver"),
                    format!(
                        "{} is not an IP address with an optional port",
                        quote(&r.nameserver)
                    ),
                );
            }
            if let Some(z) = &r.zone {
                if !crate::acme::is_dns_name(z) {
                    self.field(
                        K,
                        name,
                        f("rfc2136.zone"),
                        format!("{} is not a DNS name", quote(z)),
                    );
                }
            }
            match (&r.tsig_key, &r.tsig_secret) {
                (None, None) => {}
                (Some(k), Some(secret)) => {
                    if !crate::acme::is_dns_name(k) {
                        self.field(
                            K,
                            name,
                            f("rfc2136.tsigKey"),
                            format!("{} is not a DNS name", quote(k)),
                        );
                    }
                    use base64::Engine;
                    let ok = secret != crate::REDACTED_KEY
                        && base64::engine::general_purpose::STANDARD
                            .decode(secret.trim())
                            .is_ok_and(|b| !b.is_empty());
                    if !ok {
                        // Never echo the secret.
                        self.field(K, name, f("rfc2136.tsigSecret"), "is not a base64 TSIG key");
                    }
                }
                (Some(_), None) => {
                    self.field(K, name, f("rfc2136.tsigSecret"), "is required with tsigKey")
                }
                (None, Some(_)) => {
                    self.field(K, name, f("rfc2136.tsigKey"), "is required with tsigSecret")
                }
            }
            if let Some(alg) = &r.tsig_algorithm {
                if crate::acme::tsig_algorithm(alg).is_none() {
                    self.field(
                        K,
                        name,
                        f("rfc2136.tsigAlgorithm"),
                        format!("unsupported TSIG algorithm {}: expected hmac-sha256., hmac-sha384. or hmac-sha512.", quote(alg)),
                    );
                }
            }
        }
        if let Some(h) = &d.httpreq {
            match url::Url::parse(&h.endpoint) {
                Ok(u)
                    if (u.scheme() == "https" || u.scheme() == "http")
                        && u.host_str().is_some_and(|h| !h.is_empty()) => {}
                _ => self.field(
                    K,
                    name,
                    f("httpreq.endpoint"),
                    format!("{} is not an http(s):// URL", quote(&h.endpoint)),
                ),
            }
            if h.password.as_deref() == Some(crate::REDACTED_KEY) {
                self.field(
                    K,
                    name,
                    f("httpreq.password"),
                    "is redacted and no stored password matches: give the password",
                );
            }
            if let Some(m) = h.mode.as_deref().filter(|m| !m.is_empty() && *m != "RAW") {
                self.field(
                    K,
                    name,
                    f("httpreq.mode"),
                    format!("unknown mode {}: expected RAW or nothing", quote(m)),
                );
            }
        }
        if let Some(e) = &d.exec {
            if !e.path.starts_with('/') {
                self.field(
                    K,
                    name,
                    f("exec.path"),
                    format!("{} must be an absolute path", quote(&e.path)),
                );
            }
            if let Some(m) = e.mode.as_deref().filter(|m| !m.is_empty() && *m != "RAW") {
                self.field(
                    K,
                    name,
                    f("exec.mode"),
                    format!("unknown mode {}: expected RAW or nothing", quote(m)),
                );
            }
        }
    }

    pub(crate) fn router(&mut self, name: &str, r: &crate::model::Router) {
        const K: &str = "router";
        let cfg = self.cfg;
        if let Some(e) = check_name(K, name) {
            self.errors.push(e);
        }
        for (i, c) in r.clusters.iter().enumerate() {
            if let Some(p) = crate::scope::cluster_name_problem(c) {
                self.field(K, name, format!("clusters[{i}]"), p);
            }
        }
        match r.rule_syntax.as_deref() {
            None | Some("v3") => {
                if r.rule.trim().is_empty() {
                    self.field(K, name, "rule", "a rule is required");
                } else if let Err(e) = rules::compile(&r.rule) {
                    self.field(K, name, "rule", e.to_string());
                }
            }
            Some("v2") => self.field(
                K,
                name,
                "ruleSyntax",
                "v2 rule syntax is not supported; rewrite the rule in v3 syntax",
            ),
            Some(other) => self.field(
                K,
                name,
                "ruleSyntax",
                format!("unknown rule syntax {}, expected \"v3\"", quote(other)),
            ),
        }
        if let Some(p) = r.priority {
            if p > MAX_USER_PRIORITY {
                self.field(
                    K,
                    name,
                    "priority",
                    format!("must be at most {MAX_USER_PRIORITY} (higher values are reserved)"),
                );
            }
        }
        for (i, ep) in r.entry_points.iter().enumerate() {
            if ep.trim().is_empty() {
                self.field(K, name, format!("entryPoints[{i}]"), "must not be empty");
            }
        }
        for (i, m) in r.middlewares.iter().enumerate() {
            self.check_ref(
                K,
                name,
                &format!("middlewares[{i}]"),
                m,
                "middleware",
                &cfg.http.middlewares,
            );
        }
        if r.service.is_empty() {
            self.field(K, name, "service", "a service is required");
        } else {
            self.check_ref(
                K,
                name,
                "service",
                &r.service,
                "service",
                &cfg.http.services,
            );
        }
        if let Some(t) = &r.tls {
            if let Some(o) = t.options.as_deref().filter(|o| !o.is_empty()) {
                let base = o.split_once('@').map_or(o, |(n, _)| n);
                if base != "default" && !cfg.tls.options.contains_key(base) {
                    self.field(
                        K,
                        name,
                        "tls.options",
                        format!("TLS option {} not found", quote(o)),
                    );
                }
            }
            if let Some(res) = t.cert_resolver.as_deref().filter(|o| !o.is_empty()) {
                if !cfg.certificates_resolvers.contains_key(res) {
                    self.field(
                        K,
                        name,
                        "tls.certResolver",
                        format!("certificate resolver {} not found", quote(res)),
                    );
                }
            }
        }
        if let Some(o) = &r.observability {
            if let Some(tv) = &o.trace_verbosity {
                if tv != "minimal" && tv != "detailed" {
                    self.field(
                        K,
                        name,
                        "observability.traceVerbosity",
                        format!(
                            "invalid value {}, expected \"minimal\" or \"detailed\"",
                            quote(tv)
                        ),
                    );
                }
            }
        }
    }

    fn sticky(&mut self, name: &str, prefix: &str, s: &Sticky) {
        if let Some(c) = &s.cookie {
            if let Some(ss) = &c.same_site {
                if !ss.is_empty() && !["none", "lax", "strict"].contains(&ss.as_str()) {
                    self.field(
                        "service",
                        name,
                        format!("{prefix}.sticky.cookie.sameSite"),
                        format!(
                            "invalid value {}, expected \"none\", \"lax\" or \"strict\"",
                            quote(ss)
                        ),
                    );
                }
            }
            if let Some(n) = &c.name {
                if !n.is_empty() && !is_token(n) {
                    self.field(
                        "service",
                        name,
                        format!("{prefix}.sticky.cookie.name"),
                        format!("invalid cookie name {}", quote(n)),
                    );
                }
            }
            for (f, v) in [("path", &c.path), ("domain", &c.domain)] {
                if let Some(problem) = v.as_deref().and_then(cookie_attribute_problem) {
                    self.field(
                        "service",
                        name,
                        format!("{prefix}.sticky.cookie.{f}"),
                        format!("{problem}, got {}", quote(v.as_deref().unwrap_or_default())),
                    );
                }
            }
        }
    }

    pub(crate) fn service(&mut self, name: &str, s: &Service) {
        const K: &str = "service";
        let cfg = self.cfg;
        if let Some(e) = check_name(K, name) {
            self.errors.push(e);
        }
        if s.kinds().len() != 1 {
            self.push(
                K,
                name,
                None,
                "exactly one of loadBalancer, weighted, mirroring, failover must be set",
            );
        }
        if let Some(lb) = &s.load_balancer {
            self.load_balancer(name, lb);
        }
        if let Some(w) = &s.weighted {
            if w.services.is_empty() {
                self.field(
                    K,
                    name,
                    "weighted.services",
                    "at least one service is required",
                );
            }
            if let Some(st) = &w.sticky {
                self.sticky(name, "weighted", st);
            }
        }
        if let Some(m) = &s.mirroring {
            for (i, mirror) in m.mirrors.iter().enumerate() {
                if mirror.percent > 100 {
                    self.field(
                        K,
                        name,
                        format!("mirroring.mirrors[{i}].percent"),
                        format!("must be between 0 and 100, got {}", mirror.percent),
                    );
                }
            }
            if let Some(mbs) = m.max_body_size {
                if mbs < -1 {
                    self.field(
                        K,
                        name,
                        "mirroring.maxBodySize",
                        format!("must be -1 (unlimited) or at least 0, got {mbs}"),
                    );
                }
            }
        }
        for (field, reference) in s.child_refs() {
            self.check_ref(K, name, &field, reference, "service", &cfg.http.services);
        }
    }

    fn load_balancer(&mut self, name: &str, lb: &LoadBalancer) {
        const K: &str = "service";
        let cfg = self.cfg;
        if lb.servers.is_empty() {
            self.field(
                K,
                name,
                "loadBalancer.servers",
                "at least one server is required",
            );
        }
        // The TLS server name of https connections is the transport's serverName, else the
        // server's host.
        let server_name_set = lb
            .servers_transport
            .as_deref()
            .and_then(|st| resolve_ref(st).ok())
            .and_then(|st| cfg.http.servers_transports.get(st))
            .is_some_and(|t| t.server_name.as_deref().is_some_and(|n| !n.is_empty()));
        // Hosts of the valid server URLs that are not https (see the health check scheme).
        let mut plain_hosts: Vec<(usize, String)> = Vec::new();
        for (i, srv) in lb.servers.iter().enumerate() {
            let f = format!("loadBalancer.servers[{i}].url");
            if srv.url.is_empty() {
                self.field(K, name, f, "a URL is required");
                continue;
            }
            let problem = match url::Url::parse(&srv.url) {
                Err(e) => Some(e.to_string()),
                Ok(u) => {
                    let problem = server_url_problem(&srv.url, &u, server_name_set);
                    if problem.is_none() && u.scheme() != "https" {
                        plain_hosts.push((i, u.host_str().unwrap_or_default().to_string()));
                    }
                    problem
                }
            };
            if let Some(p) = problem {
                self.field(K, name, f, format!("invalid URL {}: {p}", quote(&srv.url)));
            }
        }
        if let Some(st) = &lb.strategy {
            match st.as_str() {
                "wrr" | "p2c" => {}
                "hrw" | "leasttime" => self.field(
                    K,
                    name,
                    "loadBalancer.strategy",
                    format!("strategy {} {NOT_SUPPORTED}", quote(st)),
                ),
                _ => self.field(
                    K,
                    name,
                    "loadBalancer.strategy",
                    format!(
                        "unknown strategy {}, expected \"wrr\" or \"p2c\"",
                        quote(st)
                    ),
                ),
            }
        }
        if let Some(st) = &lb.sticky {
            self.sticky(name, "loadBalancer", st);
        }
        if let Some(hc) = &lb.health_check {
            let p = "loadBalancer.healthCheck";
            for (f, d) in [
                ("interval", &hc.interval),
                ("unhealthyInterval", &hc.unhealthy_interval),
                ("timeout", &hc.timeout),
            ] {
                if let Some(d) = d {
                    if let Err(e) = duration_check(d, true, false) {
                        self.field(K, name, format!("{p}.{f}"), e);
                    }
                }
            }
            if let Some(st) = hc.status {
                if !(100..=599).contains(&st) {
                    self.field(
                        K,
                        name,
                        format!("{p}.status"),
                        format!("must be between 100 and 599, got {st}"),
                    );
                }
            }
            match hc.mode.as_deref() {
                None | Some("") | Some("http") => {}
                Some("grpc") => self.field(
                    K,
                    name,
                    format!("{p}.mode"),
                    format!("health check mode \"grpc\" {NOT_SUPPORTED}"),
                ),
                Some(other) => self.field(
                    K,
                    name,
                    format!("{p}.mode"),
                    format!(
                        "unknown health check mode {}, expected \"http\"",
                        quote(other)
                    ),
                ),
            }
            if let Some(sc) = &hc.scheme {
                if !sc.is_empty() && !matches!(sc.as_str(), "http" | "https" | "h2c") {
                    self.field(
                        K,
                        name,
                        format!("{p}.scheme"),
                        format!("unknown scheme {}, expected http, https or h2c", quote(sc)),
                    );
                }
                if sc == "https" && !server_name_set {
                    // The probe of a non-https server is made over TLS to its host.
                    for (i, host) in &plain_hosts {
                        if !is_tls_server_name(host) {
                            self.field(
                                K,
                                name,
                                format!("{p}.scheme"),
                                format!(
                                    "\"https\" needs a valid TLS server name, but the host {} of servers[{i}] is not one; set serverName on the servers transport",
                                    quote(host)
                                ),
                            );
                        }
                    }
                }
            }
            if let Some(h) = &hc.hostname {
                if !h.is_empty() && !is_host_header(h) {
                    self.field(
                        K,
                        name,
                        format!("{p}.hostname"),
                        format!(
                            "invalid hostname {}, expected a DNS name or an IP address, with an optional port",
                            quote(h)
                        ),
                    );
                }
            }
            if let Some(port) = hc.port {
                if !(0..=65535).contains(&port) {
                    self.field(
                        K,
                        name,
                        format!("{p}.port"),
                        format!("must be between 1 and 65535, got {port}"),
                    );
                }
            }
            if let Some(m) = &hc.method {
                if !m.is_empty() && !is_token(m) {
                    self.field(
                        K,
                        name,
                        format!("{p}.method"),
                        format!("invalid method {}", quote(m)),
                    );
                }
            }
            if let Some(path) = &hc.path {
                if !path.is_empty() && !path.starts_with('/') {
                    self.field(
                        K,
                        name,
                        format!("{p}.path"),
                        format!("must start with \"/\", got {}", quote(path)),
                    );
                } else if let Some(problem) = path_problem(path, true) {
                    self.field(
                        K,
                        name,
                        format!("{p}.path"),
                        format!("{problem}, got {}", quote(path)),
                    );
                }
            }
            for (hn, hv) in &hc.headers {
                for problem in [header_name_problem(hn), header_value_problem(hn, hv)]
                    .into_iter()
                    .flatten()
                {
                    self.field(K, name, format!("{p}.headers"), problem);
                }
            }
        }
        if let Some(ph) = &lb.passive_health_check {
            if let Some(d) = &ph.failure_window {
                if let Err(e) = duration_check(d, true, false) {
                    self.field(K, name, "loadBalancer.passiveHealthCheck.failureWindow", e);
                }
            }
            if let Some(n) = ph.max_failed_attempts {
                if n < 1 {
                    self.field(
                        K,
                        name,
                        "loadBalancer.passiveHealthCheck.maxFailedAttempts",
                        format!("must be at least 1, got {n}"),
                    );
                }
            }
        }
        if let Some(rf) = &lb.response_forwarding {
            if let Some(d) = &rf.flush_interval {
                if let Err(e) = duration_check(d, false, true) {
                    self.field(K, name, "loadBalancer.responseForwarding.flushInterval", e);
                }
            }
        }
        if let Some(st) = &lb.servers_transport {
            if st != "default@internal" {
                self.check_ref(
                    K,
                    name,
                    "loadBalancer.serversTransport",
                    st,
                    "serversTransport",
                    &cfg.http.servers_transports,
                );
            }
        }
    }

    /// Report each service reference cycle once, on its smallest member.
    pub(crate) fn service_cycles(&mut self) {
        let services = &self.cfg.http.services;
        let graph: BTreeMap<&str, Vec<&str>> = services
            .iter()
            .map(|(n, s)| {
                let children = s
                    .child_refs()
                    .into_iter()
                    .filter_map(|(_, r)| resolve_ref(r).ok())
                    .filter_map(|r| services.get_key_value(r).map(|(k, _)| k.as_str()))
                    .collect();
                (n.as_str(), children)
            })
            .collect();
        for cycle in find_cycles(&graph) {
            let first = cycle.first().copied().unwrap_or_default();
            // The field of the first member that references the next one.
            let next = cycle.get(1).copied();
            let field = services.get(first).and_then(|s| {
                s.child_refs()
                    .into_iter()
                    .find(|(_, r)| resolve_ref(r).ok() == next)
                    .map(|(f, _)| f)
            });
            self.push(
                "service",
                first,
                field,
                format!("services form a cycle {}", cycle.join(" -> ")),
            );
        }
    }

    /// Middleware name → the (existing) middlewares its chain references.
    fn chain_graph(&self) -> BTreeMap<&'c str, Vec<&'c str>> {
        let mws = &self.cfg.http.middlewares;
        mws.iter()
            .map(|(n, m)| {
                let children = match m {
                    Middleware::Chain(c) => c
                        .middlewares
                        .iter()
                        .filter_map(|r| resolve_ref(r).ok())
                        .filter_map(|r| mws.get_key_value(r).map(|(k, _)| k.as_str()))
                        .collect(),
                    _ => Vec::new(),
                };
                (n.as_str(), children)
            })
            .collect()
    }

    pub(crate) fn chain_cycles(&mut self) {
        let graph = self.chain_graph();
        for cycle in find_cycles(&graph) {
            let first = cycle.first().copied().unwrap_or_default();
            // The entry of the first member's chain that references the next one.
            let next = cycle.get(1).copied();
            let field = match self.cfg.http.middlewares.get(first) {
                Some(Middleware::Chain(c)) => c
                    .middlewares
                    .iter()
                    .position(|r| resolve_ref(r).ok() == next)
                    .map(|i| format!("chain.middlewares[{i}]")),
                _ => None,
            };
            self.push(
                "middleware",
                first,
                field,
                format!("chains form a cycle {}", cycle.join(" -> ")),
            );
        }
    }

    /// The proxy expands chains into each router's middleware list and refuses references
    /// nested more than [`MAX_CHAIN_NESTING`] levels deep. Reported on the outermost chains
    /// (those no chain references) that reach deeper.
    pub(crate) fn chain_nesting(&mut self) {
        let graph = self.chain_graph();
        let nesting = nesting_depths(&graph);
        let referenced: BTreeSet<&str> = graph.values().flatten().copied().collect();
        for (name, depth) in nesting {
            if depth > MAX_CHAIN_NESTING && !referenced.contains(name) {
                self.field(
                    "middleware",
                    name,
                    "chain.middlewares",
                    format!(
                        "middleware references are nested {depth} levels deep, at most {MAX_CHAIN_NESTING} are allowed"
                    ),
                );
            }
        }
    }

    fn regex_field(&mut self, name: &str, field: String, re: &str) {
        if re.is_empty() {
            self.field("middleware", name, field, "a regexp is required");
        } else if let Err(e) = rules::compile_regex(re) {
            self.field(
                "middleware",
                name,
                field,
                format!("invalid regexp {}: {e}", quote(re)),
            );
        }
    }

    fn path_field(&mut self, name: &str, field: String, p: &str) {
        if p.is_empty() {
            self.field("middleware", name, field, "a path is required");
        } else if !p.starts_with('/') {
            self.field(
                "middleware",
                name,
                field,
                format!("must start with \"/\", got {}", quote(p)),
            );
        } else if let Some(problem) = path_problem(p, false) {
            self.field(
                "middleware",
                name,
                field,
                format!("{problem}, got {}", quote(p)),
            );
        }
    }

    pub(crate) fn middleware(&mut self, name: &str, m: &Middleware) {
        const K: &str = "middleware";
        if let Some(e) = check_name(K, name) {
            self.errors.push(e);
        }
        let before = self.errors.len();
        self.middleware_options(name, m);
        // The proxy's own compilation: whatever it would refuse is refused here, naming
        // the field.
        if self.errors.len() == before {
            if let Err(errs) = crate::middlewares::compile(m) {
                for e in errs {
                    self.field(K, name, e.field, e.message);
                }
            }
        }
    }

    /// Option checks with messages more precise than compilation's.
    fn middleware_options(&mut self, name: &str, m: &Middleware) {
        const K: &str = "middleware";
        let cfg = self.cfg;
        match m {
            Middleware::AddPrefix(a) => self.path_field(name, "addPrefix.prefix".into(), &a.prefix),
            Middleware::StripPrefix(s) => {
                for (i, p) in s.prefixes.iter().enumerate() {
                    self.path_field(name, format!("stripPrefix.prefixes[{i}]"), p);
                }
            }
            Middleware::StripPrefixRegex(s) => {
                for (i, r) in s.regex.iter().enumerate() {
                    self.regex_field(name, format!("stripPrefixRegex.regex[{i}]"), r);
                }
            }
            Middleware::ReplacePath(r) => self.path_field(name, "replacePath.path".into(), &r.path),
            Middleware::ReplacePathRegex(r) => {
                self.regex_field(name, "replacePathRegex.regex".into(), &r.regex)
            }
            Middleware::RedirectRegex(r) => {
                self.regex_field(name, "redirectRegex.regex".into(), &r.regex);
                if r.replacement.is_empty() {
                    self.field(
                        K,
                        name,
                        "redirectRegex.replacement",
                        "a replacement is required",
                    );
                } else if r.replacement.chars().any(is_field_ctl) {
                    // The result is sent as the Location header.
                    self.field(
                        K,
                        name,
                        "redirectRegex.replacement",
                        format!(
                            "must not contain control characters other than horizontal tab, got {}",
                            quote(&r.replacement)
                        ),
                    );
                }
            }
            Middleware::RedirectScheme(r) => {
                if r.scheme.trim().is_empty() {
                    self.field(K, name, "redirectScheme.scheme", "a scheme is required");
                } else if !r
                    .scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                {
                    self.field(
                        K,
                        name,
                        "redirectScheme.scheme",
                        format!("invalid scheme {}", quote(&r.scheme)),
                    );
                }
                if let Some(port) = &r.port {
                    let ok = match port {
                        StrOrInt::Int(p) => (1..=65535).contains(p),
                        StrOrInt::Str(s) => s.is_empty() || s.parse::<u16>().is_ok_and(|p| p > 0),
                    };
                    if !ok {
                        self.field(
                            K,
                            name,
                            "redirectScheme.port",
                            format!(
                                "invalid port {}, expected 1-65535",
                                quote(&port.to_string())
                            ),
                        );
                    }
                }
            }
            Middleware::Headers(h) => {
                for (field, map) in [
                    ("headers.customRequestHeaders", &h.custom_request_headers),
                    ("headers.customResponseHeaders", &h.custom_response_headers),
                ] {
                    for (hn, hv) in map {
                        for problem in [header_name_problem(hn), header_value_problem(hn, hv)]
                            .into_iter()
                            .flatten()
                        {
                            self.field(K, name, field, problem);
                        }
                    }
                }
            }
            Middleware::Chain(c) => {
                for (i, r) in c.middlewares.iter().enumerate() {
                    self.check_ref(
                        K,
                        name,
                        &format!("chain.middlewares[{i}]"),
                        r,
                        "middleware",
                        &cfg.http.middlewares,
                    );
                }
            }
            Middleware::Errors(e) if !e.service.trim().is_empty() => {
                self.check_ref(
                    K,
                    name,
                    "errors.service",
                    &e.service,
                    "service",
                    &cfg.http.services,
                );
            }
            // Checked by their compilation.
            m if m.is_supported() => {}
            other => {
                self.push(
                    K,
                    name,
                    None,
                    format!(
                        "{} middlewares are not supported by this version of Switchyard",
                        other.kind_name()
                    ),
                );
            }
        }
    }

    pub(crate) fn servers_transport(&mut self, name: &str, t: &crate::model::ServersTransport) {
        const K: &str = "serversTransport";
        if let Some(e) = check_name(K, name) {
            self.errors.push(e);
        }
        for (i, ca) in t.root_cas.iter().enumerate() {
            self.pem_field(K, name, format!("rootCAs[{i}]"), ca);
        }
        for (i, c) in t.certificates.iter().enumerate() {
            self.pem_field(K, name, format!("certificates[{i}].certFile"), &c.cert_file);
            self.pem_field(K, name, format!("certificates[{i}].keyFile"), &c.key_file);
        }
        if let Some(sn) = t.server_name.as_deref() {
            if !sn.is_empty() && !is_tls_server_name(sn) {
                self.field(
                    K,
                    name,
                    "serverName",
                    format!(
                        "invalid server name {}, expected a DNS name or an IP address",
                        quote(sn)
                    ),
                );
            }
        }
        if t.peer_cert_uri.as_deref().is_some_and(|s| !s.is_empty()) {
            self.field(
                K,
                name,
                "peerCertURI",
                format!("peerCertURI {NOT_SUPPORTED}"),
            );
        }
        if let Some(ft) = &t.forwarding_timeouts {
            for (f, d) in [
                ("dialTimeout", &ft.dial_timeout),
                ("responseHeaderTimeout", &ft.response_header_timeout),
                ("idleConnTimeout", &ft.idle_conn_timeout),
                ("readIdleTimeout", &ft.read_idle_timeout),
                ("pingTimeout", &ft.ping_timeout),
            ] {
                if let Some(d) = d {
                    if let Err(e) = duration_check(d, false, false) {
                        self.field(K, name, format!("forwardingTimeouts.{f}"), e);
                    }
                }
            }
        }
    }

    pub(crate) fn tls(&mut self) {
        let tls = &self.cfg.tls;
        for (i, c) in tls.certificates.iter().enumerate() {
            for (f, v) in [("certFile", &c.cert_file), ("keyFile", &c.key_file)] {
                if !is_inline_pem(v) {
                    self.errors.push(ConfigError::at(
                        format!("tls.certificates[{i}].{f}"),
                        format!("{f} must hold PEM; `switchyard apply` uploads file contents"),
                    ));
                }
            }
            for (j, st) in c.stores.iter().enumerate() {
                if st != "default" {
                    self.errors.push(ConfigError::at(
                        format!("tls.certificates[{i}].stores[{j}]"),
                        format!(
                            "unknown TLS store {}: only the \"default\" store is used (as in Traefik v3)",
                            quote(st)
                        ),
                    ));
                }
            }
        }
        const VERSIONS: [&str; 4] = [
            "VersionTLS10",
            "VersionTLS11",
            "VersionTLS12",
            "VersionTLS13",
        ];
        const AUTH: [&str; 5] = [
            "NoClientCert",
            "RequestClientCert",
            "RequireAnyClientCert",
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ];
        let list = |xs: &[&str]| {
            xs.iter()
                .map(|x| format!("\"{x}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (name, o) in &tls.options {
            const K: &str = "tlsOption";
            if let Some(e) = check_name(K, name) {
                self.errors.push(e);
            }
            let mut idx = BTreeMap::new();
            for (f, v) in [
                ("minVersion", &o.min_version),
                ("maxVersion", &o.max_version),
            ] {
                if let Some(v) = v {
                    match VERSIONS.iter().position(|x| x == v) {
                        Some(i) => {
                            idx.insert(f, i);
                        }
                        None => self.field(
                            K,
                            name,
                            f,
                            format!(
                                "unknown TLS version {}, expected one of {}",
                                quote(v),
                                list(&VERSIONS)
                            ),
                        ),
                    }
                }
            }
            if let (Some(min), Some(max)) = (idx.get("minVersion"), idx.get("maxVersion")) {
                if min > max {
                    self.field(K, name, "minVersion", "must not be greater than maxVersion");
                }
            }
            // rustls implements TLS 1.2 and 1.3: a lower minVersion is clamped to 1.2 (see
            // switchyard-tls), a lower maxVersion could serve nobody.
            if idx.get("maxVersion").is_some_and(|&m| m < 2) {
                self.field(
                    K,
                    name,
                    "maxVersion",
                    "TLS 1.0 and 1.1 are not supported (Switchyard serves TLS 1.2 and 1.3)",
                );
            }
            if let Some(ca) = &o.client_auth {
                for (i, f) in ca.ca_files.iter().enumerate() {
                    self.pem_field(K, name, format!("clientAuth.caFiles[{i}]"), f);
                }
                if let Some(t) = &ca.client_auth_type {
                    if !t.is_empty() && !AUTH.contains(&t.as_str()) {
                        self.field(
                            K,
                            name,
                            "clientAuth.clientAuthType",
                            format!(
                                "unknown client auth type {}, expected one of {}",
                                quote(t),
                                list(&AUTH)
                            ),
                        );
                    }
                }
            }
        }
        for (name, st) in &tls.stores {
            const K: &str = "tlsStore";
            if let Some(e) = check_name(K, name) {
                self.errors.push(e);
            }
            if name != "default" {
                self.push(
                    K,
                    name,
                    None,
                    "only the \"default\" store is used (as in Traefik v3)",
                );
            }
            if let Some(dc) = &st.default_certificate {
                self.pem_field(K, name, "defaultCertificate.certFile".into(), &dc.cert_file);
                self.pem_field(K, name, "defaultCertificate.keyFile".into(), &dc.key_file);
            }
            if st.default_generated_cert.is_some() {
                self.field(
                    K,
                    name,
                    "defaultGeneratedCert",
                    format!("defaultGeneratedCert {NOT_SUPPORTED}"),
                );
            }
        }
    }

    /// A certificate/key/CA field must hold inline PEM (the CLI uploads file contents).
    fn pem_field(&mut self, kind: &str, name: &str, field: String, v: &str) {
        if !is_inline_pem(v) {
            let short = field.rsplit('.').next().unwrap_or(&field).to_string();
            let short = short.split('[').next().unwrap_or(&short).to_string();
            self.field(
                kind,
                name,
                field,
                format!("{short} must hold PEM; `switchyard apply` uploads file contents"),
            );
        }
    }
}

/// What is wrong with a server URL that parsed (the text after `invalid URL "...": `), if
/// anything. Besides the URL parser's checks, the proxy needs the authority as written to be a
/// valid HTTP authority, the host to be a name it can dial (the parser accepts almost anything,
/// e.g. `%20`, as the host of a non-special scheme like h2c), and, for https without a
/// `serverName` on the servers transport, the host to be a valid TLS server name.
fn server_url_problem(raw: &str, u: &url::Url, server_name_set: bool) -> Option<String> {
    if !matches!(u.scheme(), "http" | "https" | "h2c") {
        return Some(format!(
            "unsupported scheme {}, expected http, https or h2c",
            quote(u.scheme())
        ));
    }
    let host = match u.host() {
        Some(h) if u.host_str().is_some_and(|s| !s.is_empty()) => h,
        _ => return Some("missing host".to_string()),
    };
    // The URL parser silently drops tabs and newlines and trims spaces, and reads "\" as "/"
    // in http(s) URLs, so the text as written would not match what it parsed.
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain whitespace or control characters".to_string());
    }
    if raw.contains('\\') {
        return Some("must not contain backslashes".to_string());
    }
    match raw.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case(u.scheme()) && !rest.starts_with('/') => {}
        _ => return Some(format!("expected {}://host[:port][/path]", u.scheme())),
    }
    if let url::Host::Domain(d) = &host {
        if !d.chars().all(is_url_host_char) {
            return Some(format!(
                "invalid host {}, expected a DNS name, an IPv4 address or a bracketed IPv6 address",
                quote(d)
            ));
        }
        if u.scheme() == "https" && !server_name_set && !is_tls_server_name(d) {
            return Some(format!(
                "host {} is not a valid TLS server name; use a DNS name or an IP address, or set serverName on the servers transport",
                quote(d)
            ));
        }
    }
    if u.port() == Some(0) {
        return Some("port must be between 1 and 65535".to_string());
    }
    None
}

/// For each node, the number of levels of the longest reference path starting at it (1 for a
/// node without children). Iterative; an edge back to a node being visited (a cycle, reported
/// separately) is ignored.
fn nesting_depths<'a>(graph: &BTreeMap<&'a str, Vec<&'a str>>) -> BTreeMap<&'a str, usize> {
    let mut depth: BTreeMap<&'a str, usize> = BTreeMap::new();
    let mut on_path: BTreeSet<&'a str> = BTreeSet::new();
    for &start in graph.keys() {
        if depth.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(&'a str, usize)> = vec![(start, 0)];
        on_path.insert(start);
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            let children = graph.get(node).map(Vec::as_slice).unwrap_or_default();
            if let Some(&child) = children.get(top.1) {
                top.1 += 1;
                if !depth.contains_key(child) && on_path.insert(child) {
                    stack.push((child, 0));
                }
            } else {
                let d = 1 + children
                    .iter()
                    .filter_map(|c| depth.get(c))
                    .max()
                    .copied()
                    .unwrap_or(0);
                depth.insert(node, d);
                on_path.remove(node);
                stack.pop();
            }
        }
    }
    depth
}

/// Find reference cycles deterministically: DFS from each node in sorted order; each cycle is
/// rotated to start at its smallest member and reported once, e.g. `["a", "b", "a"]`.
fn find_cycles<'a>(graph: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Grey,
        Black,
    }
    let mut color: BTreeMap<&str, Color> = graph.keys().map(|k| (*k, Color::White)).collect();
    let mut found: BTreeSet<Vec<&'a str>> = BTreeSet::new();
    for &start in graph.keys() {
        if color.get(start) != Some(&Color::White) {
            continue;
        }
        // Iterative DFS: stack of (node, next child index).
        let mut stack: Vec<(&'a str, usize)> = vec![(start, 0)];
        color.insert(start, Color::Grey);
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            let children = graph.get(node).map(Vec::as_slice).unwrap_or_default();
            if let Some(&child) = children.get(top.1) {
                top.1 += 1;
                match color.get(child).copied().unwrap_or(Color::Black) {
                    Color::White => {
                        color.insert(child, Color::Grey);
                        stack.push((child, 0));
                    }
                    Color::Grey => {
                        let pos = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[pos..].iter().map(|(n, _)| *n).collect();
                        let min_pos = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, n)| **n)
                            .map(|(i, _)| i)
                            .unwrap_or(0);
                        cycle.rotate_left(min_pos);
                        if let Some(first) = cycle.first().copied() {
                            cycle.push(first);
                        }
                        found.insert(cycle);
                    }
                    Color::Black => {}
                }
            } else {
                color.insert(node, Color::Black);
                stack.pop();
            }
        }
    }
    found.into_iter().collect()
}
