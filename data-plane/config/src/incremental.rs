//! Validation of a change in time proportional to the change: [`validate_change`] checks only
//! the resources a change can make invalid, given that the config before it was valid, and
//! answers exactly what [`validate`](crate::validate) answers for the config after it (same
//! verdict, same errors, same order; property-tested against the full validation).
//!
//! Why a subset suffices: every check of [`validate`](crate::validate) reads one resource plus
//! the things it names, so the errors of the next config are the errors of
//!
//! * the changed resources themselves (the whole per-resource check);
//! * the resources that *reference* a removed one (a reference only checks that its target
//!   exists, so creating or updating a target can only fix references, never break them), with
//!   one exception: a load balancer reads the `serverName` of its servers transport, so the
//!   services using a changed transport are checked again;
//! * the whole-config checks whose inputs changed: service cycles (when a service's references
//!   changed), chain cycles and nesting depth (when a chain's references changed), the `tls`
//!   section (when a TLS option, store or certificate changed) and the `tcp` section (when a TCP
//!   resource, a TLS option or a certificate resolver changed).
//!
//! Finding the referencing resources of a removal scans the routers (and services and
//! middlewares); removals of referenced kinds are rare next to updates, and an update or
//! creation costs only its own checks.

use std::collections::BTreeSet;

use crate::diff::ResourceKind;
use crate::error::ConfigErrors;
use crate::model::{DynamicConfig, Middleware, Service};
use crate::validate::{finish, resolve_ref, Validator};

/// Names `refs` resolves to that are in `set`.
fn names_any<'a>(refs: impl IntoIterator<Item = &'a str>, set: &BTreeSet<&str>) -> bool {
    !set.is_empty()
        && refs
            .into_iter()
            .any(|r| resolve_ref(r).is_ok_and(|n| set.contains(n)))
}

fn service_children(s: Option<&Service>) -> Option<Vec<&str>> {
    s.map(|s| s.child_refs().into_iter().map(|(_, r)| r).collect())
}

fn chain_children(m: Option<&Middleware>) -> Option<&[String]> {
    match m {
        Some(Middleware::Chain(c)) => Some(&c.middlewares),
        _ => None,
    }
}

/// [`validate`](crate::validate)`(next)`, computed from the change: `base` is the config before
/// it, which MUST be valid (`validate(base)` is `Ok`: the proxy's running config, the control
/// plane's committed one), and `changed` names every resource that differs between `base` and
/// `next` (more names are fine: they are checked again). See the module documentation.
pub fn validate_change(
    base: &DynamicConfig,
    next: &DynamicConfig,
    changed: &[(ResourceKind, &str)],
) -> Result<(), ConfigErrors> {
    use ResourceKind as K;
    let mut routers: BTreeSet<&str> = BTreeSet::new();
    let mut services: BTreeSet<&str> = BTreeSet::new();
    let mut middlewares: BTreeSet<&str> = BTreeSet::new();
    let mut transports: BTreeSet<&str> = BTreeSet::new();
    let mut resolvers: BTreeSet<&str> = BTreeSet::new();
    // Removed resources that others may reference.
    let mut gone_services: BTreeSet<&str> = BTreeSet::new();
    let mut gone_middlewares: BTreeSet<&str> = BTreeSet::new();
    let mut gone_options: BTreeSet<&str> = BTreeSet::new();
    let mut gone_resolvers: BTreeSet<&str> = BTreeSet::new();
    let (mut service_graph, mut chain_graph, mut tls, mut tcp) = (false, false, false, false);
    for &(kind, name) in changed {
        match kind {
            K::Router => {
                routers.insert(name);
            }
            K::Service => {
                let new = next.http.services.get(name);
                services.insert(name);
                if new.is_none() {
                    gone_services.insert(name);
                }
                // A new cycle goes through a service whose references changed.
                service_graph |= new.is_some()
                    && service_children(new) != service_children(base.http.services.get(name));
            }
            K::Middleware => {
                let new = next.http.middlewares.get(name);
                middlewares.insert(name);
                if new.is_none() {
                    gone_middlewares.insert(name);
                }
                // Cycles and depth change only through a chain's references.
                chain_graph |= chain_children(new).is_some()
                    && chain_children(new) != chain_children(base.http.middlewares.get(name));
            }
            K::ServersTransport => {
                transports.insert(name);
            }
            K::TlsOption => {
                if !next.tls.options.contains_key(name) {
                    gone_options.insert(name);
                }
                tls = true;
                tcp = true;
            }
            K::TlsStore | K::TlsCertificate => tls = true,
            K::CertResolver => {
                // TCP routers name resolvers too (the tcp section is checked as a whole).
                tcp = true;
                resolvers.insert(name);
                if !next.certificates_resolvers.contains_key(name) {
                    gone_resolvers.insert(name);
                }
            }
            K::TcpRouter | K::TcpService | K::TcpMiddleware | K::TcpServersTransport => tcp = true,
            // Managed by the control plane, not part of `validate`.
            K::ManagedCertificate
            | K::AcmeHttp01
            | K::AcmeTlsAlpn01
            | K::TlsTicketKeys
            | K::OcspStaple => {}
        }
    }
    // Whoever references what was removed.
    if !(gone_services.is_empty()
        && gone_middlewares.is_empty()
        && gone_options.is_empty()
        && gone_resolvers.is_empty())
    {
        for (name, r) in &next.http.routers {
            let tls_refs = r.tls.as_ref().is_some_and(|t| {
                t.options
                    .as_deref()
                    .is_some_and(|o| gone_options.contains(o.split_once('@').map_or(o, |(n, _)| n)))
                    || t.cert_resolver
                        .as_deref()
                        .is_some_and(|c| gone_resolvers.contains(c))
            });
            if tls_refs
                || names_any([&*r.service], &gone_services)
                || names_any(r.middlewares.iter().map(String::as_str), &gone_middlewares)
            {
                routers.insert(name);
            }
        }
    }
    if !gone_services.is_empty() || !transports.is_empty() {
        for (name, s) in &next.http.services {
            let uses_transport = s
                .load_balancer
                .as_ref()
                .and_then(|lb| lb.servers_transport.as_deref())
                .is_some_and(|t| names_any([t], &transports));
            if uses_transport
                || names_any(s.child_refs().into_iter().map(|(_, r)| r), &gone_services)
            {
                services.insert(name);
            }
        }
    }
    if !gone_services.is_empty() || !gone_middlewares.is_empty() {
        for (name, m) in &next.http.middlewares {
            let refs = match m {
                Middleware::Chain(c) => {
                    names_any(c.middlewares.iter().map(String::as_str), &gone_middlewares)
                }
                Middleware::Errors(e) => names_any([e.service.as_str()], &gone_services),
                _ => false,
            };
            if refs {
                middlewares.insert(name);
            }
        }
    }

    let mut v = Validator {
        cfg: next,
        errors: Vec::new(),
    };
    for name in routers {
        if let Some((n, r)) = next.http.routers.get_key_value(name) {
            v.router(n, r);
        }
    }
    for name in services {
        if let Some((n, s)) = next.http.services.get_key_value(name) {
            v.service(n, s);
        }
    }
    if service_graph {
        v.service_cycles();
    }
    for name in middlewares {
        if let Some((n, m)) = next.http.middlewares.get_key_value(name) {
            v.middleware(n, m);
        }
    }
    if chain_graph {
        v.chain_cycles();
        v.chain_nesting();
    }
    for name in transports {
        if let Some((n, t)) = next.http.servers_transports.get_key_value(name) {
            v.servers_transport(n, t);
        }
    }
    if tls {
        v.tls();
    }
    for name in resolvers {
        if let Some((n, r)) = next.certificates_resolvers.get_key_value(name) {
            v.resolver(n, r);
        }
    }
    let mut errors = v.errors;
    if tcp {
        errors.extend(crate::tcp::validate(next));
    }
    finish(errors)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::diff::diff;
    use crate::validate::validate;

    const NAMES: [&str; 3] = ["a", "b", "c"];

    /// One mutation: resource kind (index into the generator below), name, variant (0 removes),
    /// and the names its references pick.
    type Mutation = (u8, u8, u8, [u8; 2]);

    fn set<T: serde::de::DeserializeOwned + Clone>(
        map: &mut crate::model::Map<T>,
        name: &str,
        v: Option<Value>,
    ) {
        match v {
            Some(v) => {
                map.insert(name.to_string(), serde_json::from_value(v).unwrap());
            }
            None => {
                map.remove(name);
            }
        }
    }

    fn mutate(cfg: &mut DynamicConfig, (kind, name, variant, refs): Mutation) {
        let n = NAMES[name as usize % 3];
        let [x, y] = refs.map(|r| NAMES[r as usize % 3]);
        let variant = variant % 6;
        match kind % 10 {
            0 => set(
                &mut cfg.http.routers,
                n,
                match variant {
                    0 => None,
                    1 => Some(json!({"rule": format!("Host(`{n}.com`)"), "service": x})),
                    2 => Some(
                        json!({"rule": format!("PathPrefix(`/{n}`)"), "service": x, "middlewares": [y]}),
                    ),
                    3 => Some(
                        json!({"rule": format!("Host(`{n}.com`)"), "service": format!("{x}@file"), "tls": {"options": y}}),
                    ),
                    4 => Some(json!({"rule": "Host(`", "service": x})),
                    _ => Some(
                        json!({"rule": "Host(`x.com`)", "service": x, "tls": {"certResolver": y}}),
                    ),
                },
            ),
            1 => set(
                &mut cfg.http.services,
                n,
                match variant {
                    0 => None,
                    1 => {
                        Some(json!({"loadBalancer": {"servers": [{"url": "http://127.0.0.1:1"}]}}))
                    }
                    2 => Some(
                        json!({"loadBalancer": {"servers": [{"url": "https://10.0.0.1"}], "serversTransport": x}}),
                    ),
                    3 => Some(json!({"weighted": {"services": [{"name": x}, {"name": y}]}})),
                    4 => Some(json!({"failover": {"service": x, "fallback": y}})),
                    _ => Some(json!({"loadBalancer": {"servers": []}})),
                },
            ),
            2 => set(
                &mut cfg.http.middlewares,
                n,
                match variant {
                    0 => None,
                    1 => Some(json!({"addPrefix": {"prefix": "/p"}})),
                    2 => Some(json!({"chain": {"middlewares": [x]}})),
                    3 => Some(
                        json!({"errors": {"status": ["500-599"], "service": x, "query": "/e"}}),
                    ),
                    4 => Some(json!({"chain": {"middlewares": [x, format!("{y}@file")]}})),
                    _ => Some(json!({"addPrefix": {"prefix": "nope"}})),
                },
            ),
            3 => set(
                &mut cfg.http.servers_transports,
                n,
                match variant % 4 {
                    0 => None,
                    1 => Some(json!({"serverName": "x.internal"})),
                    2 => Some(json!({})),
                    _ => Some(json!({"insecureSkipVerify": true})),
                },
            ),
            4 => set(
                &mut cfg.tls.options,
                n,
                match variant % 3 {
                    0 => None,
                    1 => Some(json!({"minVersion": "VersionTLS12"})),
                    _ => Some(json!({"minVersion": "bogus"})),
                },
            ),
            5 => set(
                &mut cfg.certificates_resolvers,
                n,
                match variant % 3 {
                    0 => None,
                    1 => Some(json!({"acme": {"httpChallenge": {"entryPoint": "web"}}})),
                    _ => Some(json!({"acme": {}})),
                },
            ),
            6 => set(
                &mut cfg.tcp.routers,
                n,
                match variant % 4 {
                    0 => None,
                    1 => Some(json!({"rule": "HostSNI(`*`)", "service": x})),
                    2 => Some(
                        json!({"rule": "HostSNI(`a.com`)", "service": x, "tls": {"options": y}}),
                    ),
                    _ => Some(
                        json!({"rule": "HostSNI(`b.com`)", "service": x, "tls": {"certResolver": y}}),
                    ),
                },
            ),
            7 => set(
                &mut cfg.tcp.services,
                n,
                match variant % 3 {
                    0 => None,
                    1 => Some(json!({"loadBalancer": {"servers": [{"address": "127.0.0.1:1"}]}})),
                    _ => Some(
                        json!({"loadBalancer": {"servers": [{"address": "127.0.0.1:1"}], "serversTransport": x}}),
                    ),
                },
            ),
            8 => set(
                &mut cfg.tcp.servers_transports,
                n,
                match variant % 3 {
                    0 => None,
                    1 => Some(json!({"dialTimeout": "1s"})),
                    _ => Some(json!({"dialTimeout": "-1s"})),
                },
            ),
            _ => set(
                &mut cfg.tls.stores,
                n,
                match variant % 2 {
                    0 => None,
                    _ => Some(json!({})),
                },
            ),
        }
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<[u8; 2]>())
    }

    /// Removing what a router's `tls` section names is refused on the router, as a whole
    /// validation refuses it.
    #[test]
    fn removing_a_tls_option_or_resolver_checks_its_routers() {
        let mut base = DynamicConfig::default();
        for m in [(1, 0, 1, [0, 0]), (4, 0, 1, [0, 0]), (5, 1, 1, [0, 0])] {
            mutate(&mut base, m);
        }
        mutate(&mut base, (0, 0, 3, [0, 0])); // router a: tls.options a
        mutate(&mut base, (0, 1, 5, [0, 1])); // router b: tls.certResolver b
        assert_eq!(validate(&base), Ok(()));
        for (kind, m) in [
            (ResourceKind::TlsOption, (4, 0, 0, [0, 0])),
            (ResourceKind::CertResolver, (5, 1, 0, [0, 0])),
        ] {
            let mut next = base.clone();
            mutate(&mut next, m);
            let name = if kind == ResourceKind::TlsOption {
                "a"
            } else {
                "b"
            };
            let full = validate(&next);
            assert!(full.is_err(), "{kind:?}");
            assert_eq!(validate_change(&base, &next, &[(kind, name)]), full);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        /// Along random sequences of deltas (each a few resource changes), validating the
        /// change against the last valid config accepts and refuses exactly as validating the
        /// whole next config, with the same errors in the same order.
        #[test]
        fn a_change_validates_as_the_whole_config(
            deltas in proptest::collection::vec(proptest::collection::vec(mutation(), 1..4), 1..40),
            extra in any::<bool>(),
        ) {
            let mut base = DynamicConfig::default();
            let mut accepted = 0;
            for delta in deltas {
                let mut next = base.clone();
                for m in delta {
                    mutate(&mut next, m);
                }
                let changes = diff(&base, &next);
                let mut changed: Vec<(ResourceKind, &str)> =
                    changes.iter().map(|c| (c.kind, c.name.as_str())).collect();
                if extra {
                    // Names of unchanged resources may be passed too.
                    changed.push((ResourceKind::Router, "a"));
                    changed.push((ResourceKind::Middleware, "zz"));
                }
                let full = validate(&next);
                prop_assert_eq!(validate_change(&base, &next, &changed), full.clone());
                if full.is_ok() {
                    base = next;
                    accepted += 1;
                }
            }
            let _ = accepted;
        }
    }
}
