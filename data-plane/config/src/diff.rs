//! Resource-level differences between two configs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Certificate, DynamicConfig};

/// One resource-level change between two configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `"router"`, `"service"`, `"middleware"`, `"serversTransport"`, `"tlsOption"`,
    /// `"tlsStore"`, `"tlsCertificate"`, `"certResolver"`, or one of the managed kinds
    /// `"managedCertificate"`, `"acmeHttp01"`, `"acmeTlsAlpn01"`, `"tlsTicketKeys"`.
    pub kind: String,
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
    kind: &str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    out: &mut Vec<Change>,
) {
    for (name, o) in old {
        match new.get(name) {
            None => out.push(Change {
                kind: kind.to_string(),
                name: name.clone(),
                action: ChangeAction::Delete,
            }),
            Some(n) if n != o => out.push(Change {
                kind: kind.to_string(),
                name: name.clone(),
                action: ChangeAction::Update,
            }),
            Some(_) => {}
        }
    }
    for name in new.keys() {
        if !old.contains_key(name) {
            out.push(Change {
                kind: kind.to_string(),
                name: name.clone(),
                action: ChangeAction::Create,
            });
        }
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
    let mut out = Vec::new();
    diff_maps("router", &old.http.routers, &new.http.routers, &mut out);
    diff_maps("service", &old.http.services, &new.http.services, &mut out);
    diff_maps(
        "middleware",
        &old.http.middlewares,
        &new.http.middlewares,
        &mut out,
    );
    diff_maps(
        "serversTransport",
        &old.http.servers_transports,
        &new.http.servers_transports,
        &mut out,
    );
    diff_maps("tlsOption", &old.tls.options, &new.tls.options, &mut out);
    diff_maps("tlsStore", &old.tls.stores, &new.tls.stores, &mut out);
    diff_maps(
        "tlsCertificate",
        &certs_by_file(&old.tls.certificates),
        &certs_by_file(&new.tls.certificates),
        &mut out,
    );
    diff_maps(
        "certResolver",
        &old.certificates_resolvers,
        &new.certificates_resolvers,
        &mut out,
    );
    diff_maps(
        "managedCertificate",
        &old.managed.certificates,
        &new.managed.certificates,
        &mut out,
    );
    diff_maps(
        "acmeHttp01",
        &old.managed.http01,
        &new.managed.http01,
        &mut out,
    );
    diff_maps(
        "acmeTlsAlpn01",
        &old.managed.tls_alpn01,
        &new.managed.tls_alpn01,
        &mut out,
    );
    if old.managed.ticket_keys != new.managed.ticket_keys {
        out.push(Change {
            kind: "tlsTicketKeys".to_string(),
            name: "cluster".to_string(),
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
    out.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    out
}
