//! Replicated ACME state: accounts, orders in flight and the status of every managed certificate.
//!
//! Pure: the ACME manager (`control-plane/acme`, leader only) decides and talks to the CA; it
//! records every step here through Raft so that a new leader can finish or restart an order, and
//! so that `switchyard get certs` answers the same on every node. Certificates and challenge
//! answers the proxies need live in `DynamicConfig::managed`, which [`AcmeCommand`]s update in the
//! same log entry.
//!
//! "Exactly once": [`AcmeCommand::OrderStarted`] is refused (changes nothing) while an order for
//! the same certificate is in flight, so two leaders can never both record an order for it; the
//! manager only talks to the CA about an order after its own `OrderStarted` committed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_config::{DynamicConfig, KeyPair, ManagedCertificate};

/// ACME state kept in the replicated store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AcmeState {
    /// Account per resolver name.
    #[serde(default)]
    pub accounts: BTreeMap<String, AcmeAccount>,
    /// Orders in flight, by certificate name (`<resolver>/<main domain>`).
    #[serde(default)]
    pub orders: BTreeMap<String, OrderRecord>,
    /// Status of every ACME-managed certificate, by certificate name.
    #[serde(default)]
    pub certificates: BTreeMap<String, CertRecord>,
    /// Orders started so far, per certificate name (monotonic; observability and tests).
    #[serde(default)]
    pub orders_started: BTreeMap<String, u64>,
}

/// An ACME account of one resolver.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAccount {
    /// Directory URL the account lives on (a different `caServer` means a new account).
    pub ca_server: String,
    /// Contact e-mail it was registered with.
    #[serde(default)]
    pub email: String,
    /// instant-acme `AccountCredentials` (id, key, directory), JSON. Committed before the account
    /// is used for any order.
    pub credentials_json: String,
}

impl std::fmt::Debug for AcmeAccount {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeAccount")
            .field("ca_server", &self.ca_server)
            .field("email", &self.email)
            .finish()
    }
}

/// An order in flight.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub resolver: String,
    pub domains: Vec<String>,
    /// Order URL at the CA; `None` until the CA created it.
    #[serde(default)]
    pub url: Option<String>,
    /// When the order was started (proposer's clock, Unix seconds).
    pub started: u64,
    /// 1 for the first attempt of this certificate since its last success.
    pub attempt: u32,
    /// The certificate's private key, PEM, persisted before the CSR is sent so that a leader
    /// finishing the order after a failover can pair it with the issued certificate.
    #[serde(default)]
    pub key_pem: Option<String>,
    /// HTTP-01 answers published for this order (token → key authorization).
    #[serde(default)]
    pub http01: BTreeMap<String, String>,
    /// TLS-ALPN-01 challenge certificates published for this order, by domain.
    #[serde(default)]
    pub tls_alpn01: Vec<String>,
}

impl std::fmt::Debug for OrderRecord {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderRecord")
            .field("resolver", &self.resolver)
            .field("domains", &self.domains)
            .field("url", &self.url)
            .field("started", &self.started)
            .field("attempt", &self.attempt)
            .field("key", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What is known about a certificate (never its key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    pub resolver: String,
    pub domains: Vec<String>,
    /// Of the installed certificate (0 when none yet).
    #[serde(default)]
    pub not_before: i64,
    #[serde(default)]
    pub not_after: i64,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub serial: String,
    /// When the installed certificate was issued (proposer's clock).
    #[serde(default)]
    pub issued_at: u64,
    /// Consecutive failures since the last success.
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub last_error: String,
    /// Do not start a new order before this time (backoff, rate limit).
    #[serde(default)]
    pub next_attempt: u64,
    /// Certificates installed so far for this name.
    #[serde(default)]
    pub issued_count: u64,
}

/// Facts about an issued certificate, parsed by the manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedInfo {
    pub not_before: i64,
    pub not_after: i64,
    pub issuer: String,
    pub serial: String,
}

/// A command of the ACME manager.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub enum AcmeCommand {
    /// The CA registered the account of a resolver (replaces any previous one).
    AccountRegistered {
        resolver: String,
        ca_server: String,
        email: String,
        credentials_json: String,
    },
    /// An order for certificate `name` begins. Ignored while one is in flight for `name`.
    OrderStarted {
        name: String,
        resolver: String,
        domains: Vec<String>,
    },
    /// The CA created the order (or a restarted one replaced it).
    OrderCreated { name: String, url: String },
    /// Challenge answers to publish to every proxy.
    Challenges {
        name: String,
        http01: BTreeMap<String, String>,
        tls_alpn01: BTreeMap<String, KeyPair>,
    },
    /// The private key the CSR is made with.
    OrderKey { name: String, key_pem: String },
    /// The certificate was issued: install it (replacing the old one in the same entry), clear the
    /// order and its challenges.
    Issued {
        name: String,
        cert_pem: String,
        info: IssuedInfo,
    },
    /// The order failed: clear it and its challenges, record the error and the next attempt.
    Failed {
        name: String,
        error: String,
        next_attempt: u64,
    },
    /// The certificate is no longer wanted (no router asks for it): drop it.
    Remove { name: String },
    /// The session-ticket keys every proxy uses, newest first (a rotation by the leader).
    TicketKeys {
        keys: Vec<switchyard_config::TicketKey>,
    },
    /// OCSP responses fetched by the leader, by leaf fingerprint: `Some` installs (replacing the
    /// previous response), `None` drops the staple of a certificate no longer stored.
    Ocsp {
        staples: BTreeMap<String, Option<switchyard_config::OcspStaple>>,
    },
}

impl std::fmt::Debug for AcmeCommand {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcmeCommand::AccountRegistered { resolver, .. } => {
                write!(f, "AccountRegistered({resolver})")
            }
            AcmeCommand::OrderStarted { name, domains, .. } => {
                write!(f, "OrderStarted({name}, {domains:?})")
            }
            AcmeCommand::OrderCreated { name, url } => write!(f, "OrderCreated({name}, {url})"),
            AcmeCommand::Challenges { name, .. } => write!(f, "Challenges({name})"),
            AcmeCommand::OrderKey { name, .. } => write!(f, "OrderKey({name})"),
            AcmeCommand::Issued { name, info, .. } => write!(f, "Issued({name}, {info:?})"),
            AcmeCommand::Failed { name, error, .. } => write!(f, "Failed({name}, {error})"),
            AcmeCommand::Remove { name } => write!(f, "Remove({name})"),
            AcmeCommand::TicketKeys { keys } => {
                let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
                write!(f, "TicketKeys({names:?})")
            }
            AcmeCommand::Ocsp { staples } => {
                let names: Vec<&str> = staples.keys().map(String::as_str).collect();
                write!(f, "Ocsp({names:?})")
            }
        }
    }
}

impl AcmeState {
    /// Applies `cmd`; may change `config.managed`. Returns true when `config` changed (the
    /// config version then moves to this entry's index and the proxies get it).
    pub fn apply(&mut self, cmd: &AcmeCommand, now_unix: u64, config: &mut DynamicConfig) -> bool {
        match cmd {
            AcmeCommand::AccountRegistered {
                resolver,
                ca_server,
                email,
                credentials_json,
            } => {
                self.accounts.insert(
                    resolver.clone(),
                    AcmeAccount {
                        ca_server: ca_server.clone(),
                        email: email.clone(),
                        credentials_json: credentials_json.clone(),
                    },
                );
                false
            }
            AcmeCommand::OrderStarted {
                name,
                resolver,
                domains,
            } => {
                if self.orders.contains_key(name) {
                    return false;
                }
                let attempt = self
                    .certificates
                    .get(name)
                    .map(|c| c.failures.saturating_add(1))
                    .unwrap_or(1);
                self.orders.insert(
                    name.clone(),
                    OrderRecord {
                        resolver: resolver.clone(),
                        domains: domains.clone(),
                        started: now_unix,
                        attempt,
                        ..Default::default()
                    },
                );
                *self.orders_started.entry(name.clone()).or_default() += 1;
                let c = self.certificates.entry(name.clone()).or_default();
                c.resolver = resolver.clone();
                if c.domains.is_empty() {
                    c.domains = domains.clone();
                }
                false
            }
            AcmeCommand::OrderCreated { name, url } => {
                if let Some(o) = self.orders.get_mut(name) {
                    o.url = Some(url.clone());
                    // A restarted order starts without a key: the new CSR gets a new one.
                    o.key_pem = None;
                }
                false
            }
            AcmeCommand::Challenges {
                name,
                http01,
                tls_alpn01,
            } => {
                let Some(o) = self.orders.get_mut(name) else {
                    return false;
                };
                for (token, ka) in http01 {
                    o.http01.insert(token.clone(), ka.clone());
                    config.managed.http01.insert(token.clone(), ka.clone());
                }
                for (domain, pair) in tls_alpn01 {
                    if !o.tls_alpn01.contains(domain) {
                        o.tls_alpn01.push(domain.clone());
                    }
                    config
                        .managed
                        .tls_alpn01
                        .insert(domain.clone(), pair.clone());
                }
                !http01.is_empty() || !tls_alpn01.is_empty()
            }
            AcmeCommand::OrderKey { name, key_pem } => {
                if let Some(o) = self.orders.get_mut(name) {
                    o.key_pem = Some(key_pem.clone());
                }
                false
            }
            AcmeCommand::Issued {
                name,
                cert_pem,
                info,
            } => {
                let Some(order) = self.orders.remove(name) else {
                    return false;
                };
                let Some(key_pem) = order.key_pem.clone() else {
                    // Cannot happen with a correct manager; keep the order so it is retried.
                    self.orders.insert(name.clone(), order);
                    return false;
                };
                clear_challenges(&order, config);
                config.managed.certificates.insert(
                    name.clone(),
                    ManagedCertificate {
                        resolver: order.resolver.clone(),
                        domains: order.domains.clone(),
                        pair: KeyPair {
                            cert_pem: cert_pem.clone(),
                            key_pem,
                        },
                    },
                );
                let c = self.certificates.entry(name.clone()).or_default();
                c.resolver = order.resolver;
                c.domains = order.domains;
                c.not_before = info.not_before;
                c.not_after = info.not_after;
                c.issuer = info.issuer.clone();
                c.serial = info.serial.clone();
                c.issued_at = now_unix;
                c.failures = 0;
                c.last_error.clear();
                c.next_attempt = 0;
                c.issued_count += 1;
                true
            }
            AcmeCommand::Failed {
                name,
                error,
                next_attempt,
            } => {
                let mut changed = false;
                if let Some(order) = self.orders.remove(name) {
                    changed = clear_challenges(&order, config);
                    let c = self.certificates.entry(name.clone()).or_default();
                    if c.resolver.is_empty() {
                        c.resolver = order.resolver;
                        c.domains = order.domains;
                    }
                }
                let c = self.certificates.entry(name.clone()).or_default();
                c.failures = c.failures.saturating_add(1);
                c.last_error = error.clone();
                c.next_attempt = *next_attempt;
                changed
            }
            AcmeCommand::Remove { name } => {
                let mut changed = false;
                if let Some(order) = self.orders.remove(name) {
                    changed |= clear_challenges(&order, config);
                }
                self.certificates.remove(name);
                changed |= config.managed.certificates.remove(name).is_some();
                changed
            }
            AcmeCommand::TicketKeys { keys } => {
                if config.managed.ticket_keys == *keys {
                    return false;
                }
                config.managed.ticket_keys = keys.clone();
                true
            }
            AcmeCommand::Ocsp { staples } => {
                let mut changed = false;
                for (fp, staple) in staples {
                    changed |= match staple {
                        Some(s) => {
                            config.managed.ocsp.insert(fp.clone(), s.clone()).as_ref() != Some(s)
                        }
                        None => config.managed.ocsp.remove(fp).is_some(),
                    };
                }
                changed
            }
        }
    }
}

fn clear_challenges(order: &OrderRecord, config: &mut DynamicConfig) -> bool {
    let mut changed = false;
    for token in order.http01.keys() {
        changed |= config.managed.http01.remove(token).is_some();
    }
    for domain in &order.tls_alpn01 {
        changed |= config.managed.tls_alpn01.remove(domain).is_some();
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(name: &str) -> AcmeCommand {
        AcmeCommand::OrderStarted {
            name: name.into(),
            resolver: "le".into(),
            domains: vec!["a.test".into(), "b.test".into()],
        }
    }

    #[test]
    fn a_second_order_is_refused_while_one_is_in_flight() {
        let mut st = AcmeState::default();
        let mut cfg = DynamicConfig::default();
        st.apply(&started("le/a.test"), 10, &mut cfg);
        st.apply(
            &AcmeCommand::OrderCreated {
                name: "le/a.test".into(),
                url: "https://ca/o/1".into(),
            },
            11,
            &mut cfg,
        );
        st.apply(&started("le/a.test"), 12, &mut cfg);
        assert_eq!(st.orders_started["le/a.test"], 1);
        assert_eq!(
            st.orders["le/a.test"].url.as_deref(),
            Some("https://ca/o/1")
        );
        assert_eq!(st.orders["le/a.test"].started, 10);
    }

    #[test]
    fn issue_installs_and_clears_challenges_failure_backs_off() {
        let mut st = AcmeState::default();
        let mut cfg = DynamicConfig::default();
        let name = "le/a.test".to_string();
        st.apply(&started(&name), 10, &mut cfg);
        let changed = st.apply(
            &AcmeCommand::Challenges {
                name: name.clone(),
                http01: [("tok".to_string(), "tok.ka".to_string())].into(),
                tls_alpn01: [("a.test".to_string(), KeyPair::default())].into(),
            },
            11,
            &mut cfg,
        );
        assert!(changed);
        assert_eq!(cfg.managed.http01["tok"], "tok.ka");
        assert!(cfg.managed.tls_alpn01.contains_key("a.test"));
        // Failure clears the answers and records the error.
        assert!(st.apply(
            &AcmeCommand::Failed {
                name: name.clone(),
                error: "boom".into(),
                next_attempt: 100,
            },
            12,
            &mut cfg,
        ));
        assert!(cfg.managed.http01.is_empty() && cfg.managed.tls_alpn01.is_empty());
        assert_eq!(st.certificates[&name].failures, 1);
        assert_eq!(st.certificates[&name].next_attempt, 100);
        assert!(st.orders.is_empty());
        // Second attempt succeeds.
        st.apply(&started(&name), 200, &mut cfg);
        assert_eq!(st.orders[&name].attempt, 2);
        st.apply(
            &AcmeCommand::OrderKey {
                name: name.clone(),
                key_pem: "KEY".into(),
            },
            201,
            &mut cfg,
        );
        let info = IssuedInfo {
            not_before: 1,
            not_after: 2,
            issuer: "Pebble".into(),
            serial: "01".into(),
        };
        assert!(st.apply(
            &AcmeCommand::Issued {
                name: name.clone(),
                cert_pem: "CERT".into(),
                info,
            },
            202,
            &mut cfg,
        ));
        let m = &cfg.managed.certificates[&name];
        assert_eq!(m.pair.key_pem, "KEY");
        assert_eq!(m.pair.cert_pem, "CERT");
        let c = &st.certificates[&name];
        assert_eq!(
            (c.failures, c.issued_count, c.last_error.as_str()),
            (0, 1, "")
        );
        assert!(st.orders.is_empty());
        // Debug output never shows key material.
        let dbg = format!("{:?} {:?}", st, cfg.managed);
        assert!(!dbg.contains("KEY"), "{dbg}");
    }

    #[test]
    fn ocsp_staples_install_replace_and_drop() {
        let mut st = AcmeState::default();
        let mut cfg = DynamicConfig::default();
        let staple = |n: i64| switchyard_config::OcspStaple {
            response: "MII".into(),
            status: "good".into(),
            this_update: 1,
            next_update: n,
            responder: String::new(),
        };
        let cmd = |v: Option<switchyard_config::OcspStaple>| AcmeCommand::Ocsp {
            staples: [("ab".to_string(), v)].into(),
        };
        assert!(st.apply(&cmd(Some(staple(10))), 1, &mut cfg));
        assert!(
            !st.apply(&cmd(Some(staple(10))), 2, &mut cfg),
            "same response"
        );
        assert!(st.apply(&cmd(Some(staple(20))), 3, &mut cfg));
        assert_eq!(cfg.managed.ocsp["ab"].next_update, 20);
        assert!(st.apply(&cmd(None), 4, &mut cfg));
        assert!(cfg.managed.ocsp.is_empty());
        assert!(!st.apply(&cmd(None), 5, &mut cfg));
    }

    #[test]
    fn issued_without_key_keeps_the_order() {
        let mut st = AcmeState::default();
        let mut cfg = DynamicConfig::default();
        st.apply(&started("n"), 1, &mut cfg);
        let changed = st.apply(
            &AcmeCommand::Issued {
                name: "n".into(),
                cert_pem: "C".into(),
                info: IssuedInfo::default(),
            },
            2,
            &mut cfg,
        );
        assert!(!changed);
        assert!(st.orders.contains_key("n"));
    }
}
