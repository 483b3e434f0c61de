//! The config stream's delta: what changed from one config version to the next, resource by
//! resource. Encoded on the control node ([`encode`]), carried as `(kind, name, json)` triples,
//! decoded ([`DeltaChange::from_wire`]) and applied ([`apply`]) on the proxy. Pure: no I/O.
//!
//! Every part of a [`DynamicConfig`] travels as a delta: HTTP resources, servers transports, TLS
//! options, stores and certificates, certificate resolvers and the ACME material the control plane
//! manages. [`encode`] answers `None` (send a snapshot) only when a delta cannot reproduce the
//! next config exactly: TLS certificates are a list, keyed here by `certFile`, so a reordered list
//! or two entries with the same file need the whole config.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::acme::{CertResolver, KeyPair, ManagedCertificate, OcspStaple, TicketKey};
use crate::diff::{diff, ChangeAction, ResourceKind};
use crate::model::{
    Certificate, DynamicConfig, Map, Middleware, Router, ServersTransport, Service, TlsOptions,
    TlsStore,
};
use crate::tcp::{TcpMiddleware, TcpRouter, TcpServersTransport, TcpService};

/// One resource as a delta carries it, typed by kind.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // One variant per [`ResourceKind`], holding that kind's model type.
pub enum Resource {
    Router(Router),
    Service(Service),
    Middleware(Middleware),
    ServersTransport(ServersTransport),
    TlsOption(TlsOptions),
    TlsStore(TlsStore),
    TlsCertificate(Certificate),
    CertResolver(CertResolver),
    ManagedCertificate(ManagedCertificate),
    /// The key authorization answered for the token (the change's name).
    AcmeHttp01(String),
    /// The challenge certificate for the domain (the change's name).
    AcmeTlsAlpn01(KeyPair),
    /// The session-ticket keys, newest first.
    TlsTicketKeys(Vec<TicketKey>),
    /// The OCSP response stapled for the certificate (fingerprint = the change's name).
    OcspStaple(OcspStaple),
    TcpRouter(TcpRouter),
    TcpService(TcpService),
    TcpMiddleware(TcpMiddleware),
    TcpServersTransport(TcpServersTransport),
}

/// One changed resource: its new value, or `None` when it was removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaChange {
    /// What kind of resource changed.
    pub kind: ResourceKind,
    /// The resource's name (for TLS certificates: the `certFile`).
    pub name: String,
    /// The new value; `None`: removed.
    pub resource: Option<Resource>,
}

/// Why a delta received from a control node cannot be applied.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DeltaError {
    /// A kind this proxy does not know.
    #[error("unknown resource kind {0:?}")]
    UnknownKind(String),
    /// The resource's JSON is not a valid resource of its kind.
    #[error("{kind} {name:?}: {message}")]
    Malformed {
        /// The kind, as named on the wire.
        kind: &'static str,
        /// The resource name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// The maps of a config a delta reads and writes: the resource maps ([`Map`]) and the managed
/// TLS material (`BTreeMap`).
trait NamedMap<T> {
    fn named(&self, name: &str) -> Option<&T>;
    fn put(&mut self, name: &str, v: Option<T>);
}

/// Both map types have the same `get`/`insert`/`remove` by name.
macro_rules! named_map {
    ($($map:ty),*) => {$(
        impl<T: Clone> NamedMap<T> for $map {
            fn named(&self, name: &str) -> Option<&T> {
                self.get(name)
            }
            fn put(&mut self, name: &str, v: Option<T>) {
                match v {
                    Some(v) => {
                        self.insert(name.to_string(), v);
                    }
                    None => {
                        self.remove(name);
                    }
                }
            }
        }
    )*};
}
named_map!(BTreeMap<String, T>, Map<T>);

fn value<T: Clone>(map: &impl NamedMap<T>, name: &str) -> Option<T> {
    map.named(name).cloned()
}

/// The resource `kind`/`name` of `cfg`, if it has one.
fn get(cfg: &DynamicConfig, kind: ResourceKind, name: &str) -> Option<Resource> {
    use ResourceKind as K;
    Some(match kind {
        K::Router => Resource::Router(value(&cfg.http.routers, name)?),
        K::Service => Resource::Service(value(&cfg.http.services, name)?),
        K::Middleware => Resource::Middleware(value(&cfg.http.middlewares, name)?),
        K::ServersTransport => {
            Resource::ServersTransport(value(&cfg.http.servers_transports, name)?)
        }
        K::TlsOption => Resource::TlsOption(value(&cfg.tls.options, name)?),
        K::TlsStore => Resource::TlsStore(value(&cfg.tls.stores, name)?),
        K::TlsCertificate => Resource::TlsCertificate(
            cfg.tls
                .certificates
                .iter()
                .find(|c| c.cert_file == name)?
                .clone(),
        ),
        K::CertResolver => Resource::CertResolver(value(&cfg.certificates_resolvers, name)?),
        K::ManagedCertificate => {
            Resource::ManagedCertificate(value(&cfg.managed.certificates, name)?)
        }
        K::AcmeHttp01 => Resource::AcmeHttp01(value(&cfg.managed.http01, name)?),
        K::AcmeTlsAlpn01 => Resource::AcmeTlsAlpn01(value(&cfg.managed.tls_alpn01, name)?),
        K::TlsTicketKeys => {
            if cfg.managed.ticket_keys.is_empty() {
                return None;
            }
            Resource::TlsTicketKeys(cfg.managed.ticket_keys.clone())
        }
        K::OcspStaple => Resource::OcspStaple(value(&cfg.managed.ocsp, name)?),
        K::TcpRouter => Resource::TcpRouter(value(&cfg.tcp.routers, name)?),
        K::TcpService => Resource::TcpService(value(&cfg.tcp.services, name)?),
        K::TcpMiddleware => Resource::TcpMiddleware(value(&cfg.tcp.middlewares, name)?),
        K::TcpServersTransport => {
            Resource::TcpServersTransport(value(&cfg.tcp.servers_transports, name)?)
        }
    })
}

/// The changes that bring `base` to `next`, or `None` when only a snapshot says it exactly (see
/// the module documentation). Costs a [`diff`] of the two configs plus a copy of each changed
/// resource.
pub fn encode(base: &DynamicConfig, next: &DynamicConfig) -> Option<Vec<DeltaChange>> {
    let mut out = Vec::new();
    let mut certificates = false;
    for c in diff(base, next) {
        let resource = match c.action {
            ChangeAction::Delete => None,
            ChangeAction::Create | ChangeAction::Update => Some(get(next, c.kind, &c.name)?),
        };
        certificates |= c.kind == ResourceKind::TlsCertificate;
        out.push(DeltaChange {
            kind: c.kind,
            name: c.name,
            resource,
        });
    }
    if certificates || base.tls.certificates != next.tls.certificates {
        let mut check = base.tls.certificates.clone();
        for c in out
            .iter()
            .filter(|c| c.kind == ResourceKind::TlsCertificate)
        {
            apply_certificate(&mut check, &c.name, c.resource.as_ref());
        }
        if check != next.tls.certificates {
            return None;
        }
    }
    Some(out)
}

/// A certificate change on the list: an update replaces the first entry with that file (and
/// drops later ones), a new file goes last, a removal drops every entry with that file.
fn apply_certificate(list: &mut Vec<Certificate>, file: &str, new: Option<&Resource>) {
    let first = list.iter().position(|c| c.cert_file == file);
    let mut i = 0;
    list.retain(|c| {
        let keep = c.cert_file != file || Some(i) == first;
        i += 1;
        keep
    });
    match (new, first) {
        (Some(Resource::TlsCertificate(c)), Some(at)) => list[at] = c.clone(),
        (Some(Resource::TlsCertificate(c)), None) => list.push(c.clone()),
        _ => {
            if let Some(at) = first {
                list.remove(at);
            }
        }
    }
}

/// Applies `changes` to `cfg` in place. Removing what is not there is not an error (the outcome
/// is the same).
pub fn apply_in_place(cfg: &mut DynamicConfig, changes: &[DeltaChange]) {
    use ResourceKind as K;
    for c in changes {
        let name = c.name.as_str();
        let r = c.resource.clone();
        // The value of a change of one kind (a resource of another kind, which
        // `DeltaChange::from_wire` never builds, counts as a removal).
        macro_rules! set {
            ($map:expr, $variant:ident) => {
                NamedMap::put(
                    $map,
                    name,
                    match r {
                        Some(Resource::$variant(x)) => Some(x),
                        _ => None,
                    },
                )
            };
        }
        match c.kind {
            K::TlsCertificate => apply_certificate(&mut cfg.tls.certificates, name, r.as_ref()),
            K::Router => set!(&mut cfg.http.routers, Router),
            K::Service => set!(&mut cfg.http.services, Service),
            K::Middleware => set!(&mut cfg.http.middlewares, Middleware),
            K::ServersTransport => set!(&mut cfg.http.servers_transports, ServersTransport),
            K::TlsOption => set!(&mut cfg.tls.options, TlsOption),
            K::TlsStore => set!(&mut cfg.tls.stores, TlsStore),
            K::CertResolver => set!(&mut cfg.certificates_resolvers, CertResolver),
            K::ManagedCertificate => set!(&mut cfg.managed.certificates, ManagedCertificate),
            K::AcmeHttp01 => set!(&mut cfg.managed.http01, AcmeHttp01),
            K::AcmeTlsAlpn01 => set!(&mut cfg.managed.tls_alpn01, AcmeTlsAlpn01),
            K::OcspStaple => set!(&mut cfg.managed.ocsp, OcspStaple),
            K::TcpRouter => set!(&mut cfg.tcp.routers, TcpRouter),
            K::TcpService => set!(&mut cfg.tcp.services, TcpService),
            K::TcpMiddleware => set!(&mut cfg.tcp.middlewares, TcpMiddleware),
            K::TcpServersTransport => {
                set!(&mut cfg.tcp.servers_transports, TcpServersTransport)
            }
            K::TlsTicketKeys => {
                cfg.managed.ticket_keys = match r {
                    Some(Resource::TlsTicketKeys(k)) => k,
                    _ => Vec::new(),
                }
            }
        }
    }
}

/// `base` with `changes` applied. The model's maps are persistent (`imbl`), so the copy of
/// `base` is O(1) and each change copies O(log n): a delta costs the size of the changes, not of
/// the config.
pub fn apply(base: &DynamicConfig, changes: &[DeltaChange]) -> DynamicConfig {
    let mut next = base.clone();
    apply_in_place(&mut next, changes);
    next
}

fn to_json<T: Serialize>(v: &T) -> String {
    // The model's types serialize infallibly (string keys, no non-finite floats).
    serde_json::to_string(v).unwrap_or_default()
}

fn from_json<T: DeserializeOwned>(
    kind: ResourceKind,
    name: &str,
    json: &str,
) -> Result<T, DeltaError> {
    serde_json::from_str(json).map_err(|e| DeltaError::Malformed {
        kind: kind.as_str(),
        name: name.to_string(),
        message: e.to_string(),
    })
}

impl DeltaChange {
    /// The resource as JSON (camelCase, as in a file); empty for a removal.
    pub fn json(&self) -> String {
        match &self.resource {
            None => String::new(),
            Some(Resource::Router(x)) => to_json(x),
            Some(Resource::Service(x)) => to_json(x),
            Some(Resource::Middleware(x)) => to_json(x),
            Some(Resource::ServersTransport(x)) => to_json(x),
            Some(Resource::TlsOption(x)) => to_json(x),
            Some(Resource::TlsStore(x)) => to_json(x),
            Some(Resource::TlsCertificate(x)) => to_json(x),
            Some(Resource::CertResolver(x)) => to_json(x),
            Some(Resource::ManagedCertificate(x)) => to_json(x),
            Some(Resource::AcmeHttp01(x)) => to_json(x),
            Some(Resource::AcmeTlsAlpn01(x)) => to_json(x),
            Some(Resource::TlsTicketKeys(x)) => to_json(x),
            Some(Resource::OcspStaple(x)) => to_json(x),
            Some(Resource::TcpRouter(x)) => to_json(x),
            Some(Resource::TcpService(x)) => to_json(x),
            Some(Resource::TcpMiddleware(x)) => to_json(x),
            Some(Resource::TcpServersTransport(x)) => to_json(x),
        }
    }

    /// Decodes a change as the config stream carries it (`json` empty: removed).
    pub fn from_wire(kind: &str, name: String, json: &str) -> Result<DeltaChange, DeltaError> {
        use ResourceKind as K;
        let k = ResourceKind::parse(kind).ok_or_else(|| DeltaError::UnknownKind(kind.into()))?;
        let resource = if json.is_empty() {
            None
        } else {
            let n = name.as_str();
            Some(match k {
                K::Router => Resource::Router(from_json(k, n, json)?),
                K::Service => Resource::Service(from_json(k, n, json)?),
                K::Middleware => Resource::Middleware(from_json(k, n, json)?),
                K::ServersTransport => Resource::ServersTransport(from_json(k, n, json)?),
                K::TlsOption => Resource::TlsOption(from_json(k, n, json)?),
                K::TlsStore => Resource::TlsStore(from_json(k, n, json)?),
                K::TlsCertificate => Resource::TlsCertificate(from_json(k, n, json)?),
                K::CertResolver => Resource::CertResolver(from_json(k, n, json)?),
                K::ManagedCertificate => Resource::ManagedCertificate(from_json(k, n, json)?),
                K::AcmeHttp01 => Resource::AcmeHttp01(from_json(k, n, json)?),
                K::AcmeTlsAlpn01 => Resource::AcmeTlsAlpn01(from_json(k, n, json)?),
                K::TlsTicketKeys => Resource::TlsTicketKeys(from_json(k, n, json)?),
                K::OcspStaple => Resource::OcspStaple(from_json(k, n, json)?),
                K::TcpRouter => Resource::TcpRouter(from_json(k, n, json)?),
                K::TcpService => Resource::TcpService(from_json(k, n, json)?),
                K::TcpMiddleware => Resource::TcpMiddleware(from_json(k, n, json)?),
                K::TcpServersTransport => Resource::TcpServersTransport(from_json(k, n, json)?),
            })
        };
        Ok(DeltaChange {
            kind: k,
            name,
            resource,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::model::{StoreCertificate, TlsStore};

    const NAMES: [&str; 3] = ["a", "b", "c"];

    /// A config drawn from a small universe: for each kind and name, absent or one of 3 values;
    /// certificates in name order.
    fn config(picks: &[u8]) -> DynamicConfig {
        let mut cfg = DynamicConfig::default();
        let mut pick = picks.iter().copied().cycle();
        let mut next = || pick.next().unwrap_or(0) % 4;
        for name in NAMES {
            let n = name.to_string();
            if let v @ 1..=3 = next() {
                cfg.http.routers.insert(
                    n.clone(),
                    Router {
                        rule: format!("Host(`{name}{v}.example`)").into(),
                        service: "s".into(),
                        ..Router::default()
                    },
                );
            }
            if let v @ 1..=3 = next() {
                let s = json!({"loadBalancer": {"servers": [{"url": format!("http://127.0.0.1:{v}")}]}});
                cfg.http
                    .services
                    .insert(n.clone(), serde_json::from_value(s).unwrap());
            }
            if let v @ 1..=3 = next() {
                let m = json!({"addPrefix": {"prefix": format!("/p{v}")}});
                cfg.http
                    .middlewares
                    .insert(n.clone(), serde_json::from_value(m).unwrap());
            }
            if let v @ 1..=3 = next() {
                let t = json!({"serverName": format!("s{v}.internal")});
                cfg.http
                    .servers_transports
                    .insert(n.clone(), serde_json::from_value(t).unwrap());
            }
            if let v @ 1..=3 = next() {
                let o = TlsOptions {
                    min_version: Some(format!("VersionTLS1{v}")),
                    ..TlsOptions::default()
                };
                cfg.tls.options.insert(n.clone(), o);
            }
            if let v @ 1..=3 = next() {
                let s = TlsStore {
                    default_certificate: Some(StoreCertificate {
                        cert_file: format!("/{name}{v}.pem"),
                        key_file: "/k.pem".into(),
                    }),
                    ..TlsStore::default()
                };
                cfg.tls.stores.insert(n.clone(), s);
            }
            if let v @ 1..=3 = next() {
                cfg.tls.certificates.push(Certificate {
                    cert_file: format!("/{name}.pem"),
                    key_file: format!("/{name}-{v}.key"),
                    stores: vec![],
                });
            }
            if let v @ 1..=3 = next() {
                let r = CertResolver {
                    tailscale: Some(json!({ "v": v })),
                    ..CertResolver::default()
                };
                cfg.certificates_resolvers.insert(n.clone(), r);
            }
            if let v @ 1..=3 = next() {
                let c = ManagedCertificate {
                    resolver: "le".into(),
                    domains: vec![format!("{name}{v}.example")],
                    ..ManagedCertificate::default()
                };
                cfg.managed.certificates.insert(n.clone(), c);
            }
            if let v @ 1..=3 = next() {
                cfg.managed.http01.insert(n.clone(), format!("key-{v}"));
            }
            if let v @ 1..=3 = next() {
                let p = KeyPair {
                    cert_pem: format!("cert {v}"),
                    key_pem: "key".into(),
                };
                cfg.managed.tls_alpn01.insert(n.clone(), p);
            }
            if let v @ 1..=3 = next() {
                let o = OcspStaple {
                    response: format!("MII{v}"),
                    status: "good".into(),
                    this_update: 1,
                    next_update: i64::from(v) * 100,
                    responder: String::new(),
                };
                cfg.managed.ocsp.insert(n.clone(), o);
                let r = json!({"rule": "HostSNI(`*`)", "service": format!("s{v}")});
                cfg.tcp
                    .routers
                    .insert(n.clone(), serde_json::from_value(r).unwrap());
            }
            if let v @ 1..=3 = next() {
                let s =
                    json!({"loadBalancer": {"servers": [{"address": format!("127.0.0.1:{v}")}]}});
                cfg.tcp
                    .services
                    .insert(n.clone(), serde_json::from_value(s).unwrap());
            }
            if let v @ 1..=3 = next() {
                let m = json!({"inFlightConn": {"amount": v}});
                cfg.tcp
                    .middlewares
                    .insert(n.clone(), serde_json::from_value(m).unwrap());
            }
            if let v @ 1..=3 = next() {
                let t =
                    json!({"dialTimeout": format!("{v}s"), "tls": {"serverName": "b.internal"}});
                cfg.tcp
                    .servers_transports
                    .insert(n.clone(), serde_json::from_value(t).unwrap());
            }
        }
        if let v @ 1..=3 = next() {
            cfg.managed.ticket_keys = (0..v)
                .map(|i| TicketKey {
                    name: format!("{i:032x}"),
                    key: format!("k{v}"),
                    created_unix: u64::from(i),
                    lifetime_secs: 60,
                })
                .collect();
        }
        cfg
    }

    /// What the proxy gets: each change through its wire form.
    fn over_the_wire(changes: &[DeltaChange]) -> Vec<DeltaChange> {
        changes
            .iter()
            .map(|c| DeltaChange::from_wire(c.kind.as_str(), c.name.clone(), &c.json()).unwrap())
            .collect()
    }

    proptest! {
        /// A delta, through its wire form, brings the base exactly to the next config; and it
        /// exists whenever the certificate list keeps its order.
        #[test]
        fn a_delta_reproduces_the_next_config(
            base in proptest::collection::vec(any::<u8>(), 45),
            next in proptest::collection::vec(any::<u8>(), 45),
        ) {
            let (base, next) = (config(&base), config(&next));
            let files = |c: &DynamicConfig| -> Vec<String> {
                c.tls.certificates.iter().map(|c| c.cert_file.clone()).collect()
            };
            let (b, n) = (files(&base), files(&next));
            // New certificate files go last: only a new one placed before a kept one needs a
            // snapshot.
            let first_new = n.iter().position(|f| !b.contains(f));
            let last_kept = n.iter().rposition(|f| b.contains(f));
            let needs_snapshot = matches!((first_new, last_kept), (Some(x), Some(y)) if x < y);
            match encode(&base, &next) {
                Some(changes) => {
                    prop_assert!(!needs_snapshot);
                    prop_assert_eq!(apply(&base, &over_the_wire(&changes)), next);
                }
                None => prop_assert!(needs_snapshot),
            }
        }
    }

    #[test]
    fn every_kind_round_trips_through_the_wire() {
        let full = config(&[1, 2, 3]);
        let changes = encode(&DynamicConfig::default(), &full).expect("a delta");
        let kinds: std::collections::BTreeSet<&str> =
            changes.iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds.len(), ResourceKind::ALL.len(), "{kinds:?}");
        assert_eq!(over_the_wire(&changes), changes);
        assert_eq!(apply(&DynamicConfig::default(), &changes), full);
        // And back to nothing: removals only.
        let gone = encode(&full, &DynamicConfig::default()).expect("a delta");
        assert!(gone
            .iter()
            .all(|c| c.resource.is_none() && c.json().is_empty()));
        assert_eq!(
            apply(&full, &over_the_wire(&gone)),
            DynamicConfig::default()
        );
    }

    #[test]
    fn a_changed_certificate_is_a_one_resource_delta() {
        let base = config(&[1]);
        let mut next = base.clone();
        next.tls.certificates[0].key_file = "/rotated.key".into();
        let changes = encode(&base, &next).expect("a delta");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].kind, ResourceKind::TlsCertificate);
        assert_eq!(changes[0].name, "/a.pem");
        assert_eq!(apply(&base, &over_the_wire(&changes)), next);
    }

    #[test]
    fn a_reordered_certificate_list_needs_a_snapshot() {
        let mut base = DynamicConfig::default();
        let cert = |f: &str| Certificate {
            cert_file: f.into(),
            key_file: "/k".into(),
            stores: vec![],
        };
        base.tls.certificates = vec![cert("/b.pem")];
        let mut next = base.clone();
        next.tls.certificates.insert(0, cert("/a.pem"));
        assert_eq!(encode(&base, &next), None);
        next.tls.certificates = vec![cert("/b.pem"), cert("/a.pem")];
        assert!(encode(&base, &next).is_some());
    }

    #[test]
    fn bad_wire_changes_are_errors_not_panics() {
        assert_eq!(
            DeltaChange::from_wire("gateway", "x".into(), "{}"),
            Err(DeltaError::UnknownKind("gateway".into()))
        );
        assert!(matches!(
            DeltaChange::from_wire("router", "x".into(), "{\"nope\": 1}"),
            Err(DeltaError::Malformed { kind: "router", .. })
        ));
        assert!(DeltaChange::from_wire("router", "x".into(), "[").is_err());
    }
}
