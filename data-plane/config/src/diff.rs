//! Resource-level differences between two configs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::acme::ManagedTls;
use crate::model::{Certificate, DynamicConfig, HttpConfig, Map, TlsConfig};
use crate::tcp::TcpConfig;
use imbl::ordmap::DiffItem;

/// Every kind of resource a config holds, named as the admin API and the config stream name them
/// (`"router"`, `"serversTransport"`, …; serialized the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceKind {
    /// `http.routers`
    Router,
    /// `http.services`
    Service,
    /// `http.middlewares`
    Middleware,
    /// `http.serversTransports`
    ServersTransport,
    /// `tls.options`
    TlsOption,
    /// `tls.stores`
    TlsStore,
    /// `tls.certificates`, by `certFile`
    TlsCertificate,
    /// `certificatesResolvers`
    CertResolver,
    /// Certificates issued by ACME (managed by the control plane).
    ManagedCertificate,
    /// Pending ACME HTTP-01 challenges.
    AcmeHttp01,
    /// Pending ACME TLS-ALPN-01 challenges.
    AcmeTlsAlpn01,
    /// The cluster's TLS session-ticket keys (one resource, named `cluster`).
    TlsTicketKeys,
    /// A stapled OCSP response, by the leaf certificate's SHA-256 fingerprint.
    OcspStaple,
    /// `tcp.routers`
    TcpRouter,
    /// `tcp.services`
    TcpService,
    /// `tcp.middlewares`
    TcpMiddleware,
    /// `tcp.serversTransports`
    TcpServersTransport,
}

impl ResourceKind {
    /// Whether a change of this kind can change what `switchyard_tls::compile` builds:
    /// everything but HTTP and TCP routing resources and certificate resolvers (a router
    /// matters only when it has a `tls` section, which callers check themselves). The control
    /// plane's write check and the proxy's incremental compile both ask this.
    pub fn touches_tls(self) -> bool {
        use ResourceKind as K;
        !matches!(
            self,
            K::Router
                | K::Service
                | K::Middleware
                | K::TcpRouter
                | K::TcpService
                | K::TcpMiddleware
                | K::CertResolver
        )
    }

    /// Every kind.
    pub const ALL: [ResourceKind; 17] = [
        ResourceKind::Router,
        ResourceKind::Service,
        ResourceKind::Middleware,
        ResourceKind::ServersTransport,
        ResourceKind::TlsOption,
        ResourceKind::TlsStore,
        ResourceKind::TlsCertificate,
        ResourceKind::CertResolver,
        ResourceKind::ManagedCertificate,
        ResourceKind::AcmeHttp01,
        ResourceKind::AcmeTlsAlpn01,
        ResourceKind::TlsTicketKeys,
        ResourceKind::OcspStaple,
        ResourceKind::TcpRouter,
        ResourceKind::TcpService,
        ResourceKind::TcpMiddleware,
        ResourceKind::TcpServersTransport,
    ];

    /// The name: `"router"`, `"serversTransport"`, `"acmeTlsAlpn01"`, …
    pub fn as_str(&self) -> &'static str {
        match self {
            ResourceKind::Router => "router",
            ResourceKind::Service => "service",
            ResourceKind::Middleware => "middleware",
            ResourceKind::ServersTransport => "serversTransport",
            ResourceKind::TlsOption => "tlsOption",
            ResourceKind::TlsStore => "tlsStore",
            ResourceKind::TlsCertificate => "tlsCertificate",
            ResourceKind::CertResolver => "certResolver",
            ResourceKind::ManagedCertificate => "managedCertificate",
            ResourceKind::AcmeHttp01 => "acmeHttp01",
            ResourceKind::AcmeTlsAlpn01 => "acmeTlsAlpn01",
            ResourceKind::TlsTicketKeys => "tlsTicketKeys",
            ResourceKind::OcspStaple => "ocspStaple",
            ResourceKind::TcpRouter => "tcpRouter",
            ResourceKind::TcpService => "tcpService",
            ResourceKind::TcpMiddleware => "tcpMiddleware",
            ResourceKind::TcpServersTransport => "tcpServersTransport",
        }
    }

    /// The kind named exactly `s` (see [`as_str`](Self::as_str)).
    pub fn parse(s: &str) -> Option<ResourceKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of the one [`ResourceKind::TlsTicketKeys`] resource.
pub const TICKET_KEYS_NAME: &str = "cluster";

/// One resource-level change between two configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The kind of resource.
    pub kind: ResourceKind,
    /// Resource name (for certificates: the `certFile`).
    pub name: String,
    /// What happened.
    pub action: ChangeAction,
}

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    /// Added.
    Create,
    /// Changed.
    Update,
    /// Removed.
    Delete,
}

impl ChangeAction {
    /// `"create"`, `"update"` or `"delete"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Delete => "delete",
        }
    }
}

fn diff_maps<T: PartialEq>(
    kind: ResourceKind,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    out: &mut Vec<Change>,
) {
    for (name, o) in old {
        match new.get(name) {
            None => out.push(Change {
                kind,
                name: name.clone(),
                action: ChangeAction::Delete,
            }),
            Some(n) if n != o => out.push(Change {
                kind,
                name: name.clone(),
                action: ChangeAction::Update,
            }),
            Some(_) => {}
        }
    }
    for name in new.keys() {
        if !old.contains_key(name) {
            out.push(Change {
                kind,
                name: name.clone(),
                action: ChangeAction::Create,
            });
        }
    }
}

/// [`diff_maps`] of two [`Map`]s, skipping the subtrees they share: two versions of a config
/// derived from one another share all but the changed paths, so this costs O(changes · log n),
/// not O(n).
fn diff_shared<T: PartialEq + Clone>(
    kind: ResourceKind,
    old: &Map<T>,
    new: &Map<T>,
    out: &mut Vec<Change>,
) {
    for d in old.diff(new) {
        let (name, action) = match d {
            DiffItem::Add(name, _) => (name, ChangeAction::Create),
            DiffItem::Update { new: (name, _), .. } => (name, ChangeAction::Update),
            DiffItem::Remove(name, _) => (name, ChangeAction::Delete),
        };
        out.push(Change {
            kind,
            name: name.clone(),
            action,
        });
    }
}

/// Certificates keyed by `certFile` (first occurrence wins).
fn certs_by_file(certs: &[Certificate]) -> BTreeMap<String, &Certificate> {
    let mut m = BTreeMap::new();
    for c in certs {
        m.entry(c.cert_file.clone()).or_insert(c);
    }
    m
}

/// Changes from `old` to `new`, sorted by (kind, name). Unchanged resources are not listed.
pub fn diff(old: &DynamicConfig, new: &DynamicConfig) -> Vec<Change> {
    // Every part of the config is compared below: a field added to the model fails to compile
    // here until it is (the config stream's deltas rely on it, see [`crate::delta`]).
    let DynamicConfig {
        http:
            HttpConfig {
                routers: _,
                services: _,
                middlewares: _,
                servers_transports: _,
            },
        tls:
            TlsConfig {
                certificates: _,
                options: _,
                stores: _,
            },
        tcp,
        certificates_resolvers: _,
        managed:
            ManagedTls {
                certificates: _,
                http01: _,
                tls_alpn01: _,
                ticket_keys: _,
                ocsp: _,
            },
    } = new;
    let TcpConfig {
        routers: _,
        services: _,
        middlewares: _,
        servers_transports: _,
    } = &**tcp;
    let mut out = Vec::new();
    diff_shared(
        ResourceKind::Router,
        &old.http.routers,
        &new.http.routers,
        &mut out,
    );
    diff_shared(
        ResourceKind::Service,
        &old.http.services,
        &new.http.services,
        &mut out,
    );
    diff_shared(
        ResourceKind::Middleware,
        &old.http.middlewares,
        &new.http.middlewares,
        &mut out,
    );
    diff_shared(
        ResourceKind::ServersTransport,
        &old.http.servers_transports,
        &new.http.servers_transports,
        &mut out,
    );
    diff_shared(
        ResourceKind::TlsOption,
        &old.tls.options,
        &new.tls.options,
        &mut out,
    );
    diff_shared(
        ResourceKind::TlsStore,
        &old.tls.stores,
        &new.tls.stores,
        &mut out,
    );
    diff_maps(
        ResourceKind::TlsCertificate,
        &certs_by_file(&old.tls.certificates),
        &certs_by_file(&new.tls.certificates),
        &mut out,
    );
    diff_shared(
        ResourceKind::CertResolver,
        &old.certificates_resolvers,
        &new.certificates_resolvers,
        &mut out,
    );
    diff_maps(
        ResourceKind::ManagedCertificate,
        &old.managed.certificates,
        &new.managed.certificates,
        &mut out,
    );
    diff_maps(
        ResourceKind::AcmeHttp01,
        &old.managed.http01,
        &new.managed.http01,
        &mut out,
    );
    diff_maps(
        ResourceKind::AcmeTlsAlpn01,
        &old.managed.tls_alpn01,
        &new.managed.tls_alpn01,
        &mut out,
    );
    diff_maps(
        ResourceKind::OcspStaple,
        &old.managed.ocsp,
        &new.managed.ocsp,
        &mut out,
    );
    diff_shared(
        ResourceKind::TcpRouter,
        &old.tcp.routers,
        &new.tcp.routers,
        &mut out,
    );
    diff_shared(
        ResourceKind::TcpService,
        &old.tcp.services,
        &new.tcp.services,
        &mut out,
    );
    diff_shared(
        ResourceKind::TcpMiddleware,
        &old.tcp.middlewares,
        &new.tcp.middlewares,
        &mut out,
    );
    diff_shared(
        ResourceKind::TcpServersTransport,
        &old.tcp.servers_transports,
        &new.tcp.servers_transports,
        &mut out,
    );
    if old.managed.ticket_keys != new.managed.ticket_keys {
        out.push(Change {
            kind: ResourceKind::TlsTicketKeys,
            name: TICKET_KEYS_NAME.to_string(),
            action: match (
                old.managed.ticket_keys.is_empty(),
                new.managed.ticket_keys.is_empty(),
            ) {
                (true, _) => ChangeAction::Create,
                (_, true) => ChangeAction::Delete,
                _ => ChangeAction::Update,
            },
        });
    }
    // By kind name, then resource name (the order the admin API has always listed).
    out.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
    out
}
