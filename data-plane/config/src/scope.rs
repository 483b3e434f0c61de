//! Scoped proxy clusters: what a proxy of cluster `C` (`switchyard-proxy --cluster C`) is sent.
//!
//! A router with `clusters: [a, b]` (a Switchyard extension field) is served only by the proxies
//! of clusters `a` and `b`; a router without it by every cluster. A service, middleware or
//! servers transport goes to a cluster when one of the routers that cluster receives uses it
//! (directly, through another service — weighted, mirroring, failover — or through a `chain`);
//! one that no router uses at all goes to every cluster. So the config a cluster receives is
//! closed under references and compiles whenever the whole config does. TLS (certificates,
//! options, stores), certificate resolvers and control-plane-managed TLS (ACME certificates and
//! challenge answers) go to every cluster.
//!
//! TCP routers are scoped the same way (`tcp.routers.*.clusters`), with the TCP services
//! (through `weighted`) and TCP middlewares they use.
//!
//! A config where no router is scoped is sent whole, unchanged.

use std::collections::BTreeSet;

use crate::model::{DynamicConfig, HttpConfig, Middleware};
use crate::tcp::TcpConfig;

/// The cluster of a proxy started without `--cluster`.
pub const DEFAULT_CLUSTER: &str = "default";

/// Longest cluster name.
pub const MAX_CLUSTER_NAME: usize = 63;

/// Why a cluster name is not valid, if it is not: 1 to 63 characters of `A-Z a-z 0-9 . _ -`.
pub fn cluster_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("cluster name must not be empty".into());
    }
    if name.len() > MAX_CLUSTER_NAME {
        return Some(format!(
            "cluster name longer than {MAX_CLUSTER_NAME} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "cluster name {name:?}: character {c:?} not allowed (A-Z a-z 0-9 . _ -)"
        ));
    }
    None
}

/// True when some router is scoped to clusters (otherwise every cluster gets the whole config).
pub fn has_scoped_routers(cfg: &DynamicConfig) -> bool {
    cfg.http.routers.values().any(|r| !r.clusters.is_empty())
        || cfg.tcp.routers.values().any(|r| !r.clusters.is_empty())
}

/// TCP services and middlewares used by `routers`, transitively (weighted services).
fn tcp_used_by<'c>(
    tcp: &'c TcpConfig,
    routers: impl Iterator<Item = &'c str>,
) -> (BTreeSet<&'c str>, BTreeSet<&'c str>) {
    let mut services = BTreeSet::new();
    let mut middlewares = BTreeSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for name in routers {
        let Some(r) = tcp.routers.get(name) else {
            continue;
        };
        todo.push(local(&r.service));
        middlewares.extend(r.middlewares.iter().map(|m| local(m)));
    }
    while let Some(s) = todo.pop() {
        if !services.insert(s) {
            continue;
        }
        if let Some(w) = tcp.services.get(s).and_then(|x| x.weighted.as_ref()) {
            todo.extend(w.services.iter().map(|c| local(&c.name)));
        }
    }
    (services, middlewares)
}

/// The `tcp:` section a cluster receives: its routers, what they use, and what no router uses.
fn tcp_for_cluster(tcp: &TcpConfig, cluster: &str) -> TcpConfig {
    let (all_s, all_m) = tcp_used_by(tcp, tcp.routers.keys().map(String::as_str));
    let (mine_s, mine_m) = tcp_used_by(
        tcp,
        tcp.routers
            .iter()
            .filter(|(_, r)| serves(&r.clusters, cluster))
            .map(|(n, _)| n.as_str()),
    );
    TcpConfig {
        routers: tcp
            .routers
            .iter()
            .filter(|(_, r)| serves(&r.clusters, cluster))
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect(),
        services: tcp
            .services
            .iter()
            .filter(|(n, _)| mine_s.contains(n.as_str()) || !all_s.contains(n.as_str()))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect(),
        middlewares: tcp
            .middlewares
            .iter()
            .filter(|(n, _)| mine_m.contains(n.as_str()) || !all_m.contains(n.as_str()))
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect(),
        servers_transports: {
            // Transports of the kept services, and those no service names (as for HTTP).
            let kept = tcp
                .services
                .keys()
                .map(String::as_str)
                .filter(|n| mine_s.contains(n) || !all_s.contains(n));
            let mine_t = tcp_transports_of(tcp, kept);
            let all_t = tcp_transports_of(tcp, tcp.services.keys().map(String::as_str));
            tcp.servers_transports
                .iter()
                .filter(|(n, _)| mine_t.contains(n.as_str()) || !all_t.contains(n.as_str()))
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect()
        },
    }
}

/// The TCP servers transports the load balancers among `services` name.
fn tcp_transports_of<'a>(
    tcp: &'a TcpConfig,
    services: impl Iterator<Item = &'a str>,
) -> BTreeSet<&'a str> {
    services
        .filter_map(|s| tcp.services.get(s))
        .filter_map(|s| s.load_balancer.as_ref()?.servers_transport.as_deref())
        .map(local)
        .collect()
}

/// True when a router scoped to `clusters` is served by `cluster`.
pub fn serves(clusters: &[String], cluster: &str) -> bool {
    clusters.is_empty() || clusters.iter().any(|c| c == cluster)
}

/// `name@provider` → `name`.
fn local(r: &str) -> &str {
    r.split_once('@').map_or(r, |(n, _)| n)
}

/// Services, middlewares and servers transports used by `routers`, transitively.
#[derive(Default)]
struct Used<'c> {
    services: BTreeSet<&'c str>,
    middlewares: BTreeSet<&'c str>,
    transports: BTreeSet<&'c str>,
}

fn used_by<'c>(http: &'c HttpConfig, routers: impl Iterator<Item = &'c str>) -> Used<'c> {
    let mut u = Used::default();
    let mut services: Vec<&str> = Vec::new();
    let mut middlewares: Vec<&str> = Vec::new();
    for name in routers {
        let Some(r) = http.routers.get(name) else {
            continue;
        };
        services.push(local(&r.service));
        middlewares.extend(r.middlewares.iter().map(|m| local(m)));
    }
    // Iterative walks (reference cycles are refused by validation, and tolerated here).
    while let Some(s) = services.pop() {
        if !u.services.insert(s) {
            continue;
        }
        if let Some(svc) = http.services.get(s) {
            services.extend(svc.child_refs().into_iter().map(|(_, c)| local(c)));
            if let Some(t) = svc
                .load_balancer
                .as_ref()
                .and_then(|lb| lb.servers_transport.as_deref())
            {
                u.transports.insert(local(t));
            }
        }
    }
    while let Some(m) = middlewares.pop() {
        if !u.middlewares.insert(m) {
            continue;
        }
        if let Some(Middleware::Chain(c)) = http.middlewares.get(m) {
            middlewares.extend(c.middlewares.iter().map(|m| local(m)));
        }
    }
    u
}

/// The config the proxies of `cluster` receive (see the module documentation).
pub fn for_cluster(cfg: &DynamicConfig, cluster: &str) -> DynamicConfig {
    if !has_scoped_routers(cfg) {
        return cfg.clone();
    }
    let http = &cfg.http;
    let all = used_by(http, http.routers.keys().map(String::as_str));
    let mine = used_by(
        http,
        http.routers
            .iter()
            .filter(|(_, r)| serves(&r.clusters, cluster))
            .map(|(n, _)| n.as_str()),
    );
    let keep = |name: &str, mine: &BTreeSet<&str>, all: &BTreeSet<&str>| {
        mine.contains(name) || !all.contains(name)
    };
    DynamicConfig {
        http: HttpConfig {
            routers: http
                .routers
                .iter()
                .filter(|(_, r)| serves(&r.clusters, cluster))
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect(),
            services: http
                .services
                .iter()
                .filter(|(n, _)| keep(n, &mine.services, &all.services))
                .map(|(n, s)| (n.clone(), s.clone()))
                .collect(),
            middlewares: http
                .middlewares
                .iter()
                .filter(|(n, _)| keep(n, &mine.middlewares, &all.middlewares))
                .map(|(n, m)| (n.clone(), m.clone()))
                .collect(),
            servers_transports: http
                .servers_transports
                .iter()
                .filter(|(n, _)| keep(n, &mine.transports, &all.transports))
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect(),
        },
        tls: cfg.tls.clone(),
        tcp: Box::new(tcp_for_cluster(&cfg.tcp, cluster)),
        certificates_resolvers: cfg.certificates_resolvers.clone(),
        managed: cfg.managed.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{parse_document, validate};

    const DOC: &str = r#"
http:
  routers:
    eu: {rule: "Host(`eu.example`)", service: eu-svc, middlewares: [eu-chain], clusters: [edge-eu]}
    us: {rule: "Host(`us.example`)", service: us-w@file, clusters: [edge-us]}
    both: {rule: "Host(`both.example`)", service: shared, clusters: [edge-eu, edge-us]}
    all: {rule: "Host(`all.example`)", service: shared}
  services:
    eu-svc: {loadBalancer: {servers: [{url: "http://127.0.0.1:1"}], serversTransport: eu-tr}}
    us-w: {weighted: {services: [{name: us-a, weight: 1}, {name: us-b, weight: 1}]}}
    us-a: {loadBalancer: {servers: [{url: "http://127.0.0.1:2"}]}}
    us-b: {loadBalancer: {servers: [{url: "http://127.0.0.1:3"}]}}
    shared: {loadBalancer: {servers: [{url: "http://127.0.0.1:4"}]}}
    unused: {loadBalancer: {servers: [{url: "http://127.0.0.1:5"}]}}
  middlewares:
    eu-chain: {chain: {middlewares: [eu-hdr]}}
    eu-hdr: {headers: {customResponseHeaders: {X-Eu: "1"}}}
    loose: {headers: {customResponseHeaders: {X-Loose: "1"}}}
  serversTransports:
    eu-tr: {insecureSkipVerify: true}
"#;

    fn names<T: Clone>(m: &crate::model::Map<T>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }

    #[test]
    fn a_cluster_gets_its_routers_what_they_use_and_what_nobody_uses() {
        let cfg = parse_document(DOC).unwrap();
        validate(&cfg).unwrap();
        let eu = for_cluster(&cfg, "edge-eu");
        assert_eq!(names(&eu.http.routers), ["all", "both", "eu"]);
        assert_eq!(names(&eu.http.services), ["eu-svc", "shared", "unused"]);
        assert_eq!(names(&eu.http.middlewares), ["eu-chain", "eu-hdr", "loose"]);
        assert_eq!(names(&eu.http.servers_transports), ["eu-tr"]);
        validate(&eu).unwrap();

        let us = for_cluster(&cfg, "edge-us");
        assert_eq!(names(&us.http.routers), ["all", "both", "us"]);
        assert_eq!(
            names(&us.http.services),
            ["shared", "unused", "us-a", "us-b", "us-w"]
        );
        assert_eq!(names(&us.http.middlewares), ["loose"]);
        assert!(us.http.servers_transports.is_empty());
        validate(&us).unwrap();

        let other = for_cluster(&cfg, DEFAULT_CLUSTER);
        assert_eq!(names(&other.http.routers), ["all"]);
        assert_eq!(names(&other.http.services), ["shared", "unused"]);
        validate(&other).unwrap();
    }

    #[test]
    fn an_unscoped_config_goes_whole_to_every_cluster() {
        let cfg = parse_document(
            "http:\n  routers:\n    a: {rule: \"Host(`a`)\", service: s}\n  services:\n    s: {loadBalancer: {servers: [{url: \"http://127.0.0.1:1\"}]}}\n    t: {loadBalancer: {servers: [{url: \"http://127.0.0.1:2\"}]}}\n",
        )
        .unwrap();
        assert!(!has_scoped_routers(&cfg));
        assert_eq!(for_cluster(&cfg, "x"), cfg);
    }

    #[test]
    fn cluster_names() {
        assert_eq!(cluster_name_problem("edge-eu.1_a"), None);
        assert!(cluster_name_problem("").is_some());
        assert!(cluster_name_problem("a b").is_some());
        assert!(cluster_name_problem(&"a".repeat(64)).is_some());
    }
}
