//! # switchyard-tls
//!
//! Compiles the TLS part of a [`DynamicConfig`] into a [`TlsTable`]: plain data and rustls
//! objects, built once per config version. The crate is **pure** (no files, no clock, no
//! randomness, no network): the control plane runs [`compile`] in its write-path check so the
//! API refuses what a proxy would refuse (garbage PEM, a key that does not match its
//! certificate, an unknown cipher suite), and the proxy swaps the table in with the rest of the
//! compiled config.
//!
//! ## Certificates and SNI
//!
//! Certificates come from `tls.certificates` (`certFile`/`keyFile` hold inline PEM: the CLI
//! uploads file contents) followed by `managed.certificates` (issued by the control plane's
//! ACME manager). Each certificate serves the DNS names of its subject alternative names (plus,
//! for managed ones, the domains they were ordered for). When several user certificates cover
//! the same name the **last** one wins: `switchyard apply` appends a certificate that differs
//! from the stored ones, so re-applying a renewed certificate replaces the old one for its
//! names (`apply --prune` also drops the old entry). User certificates win over managed ones.
//! A ClientHello is answered with:
//!
//! 1. the certificate for the exact SNI name (case-insensitive);
//! 2. else the one-label wildcard (`*.example.com` for `a.example.com`, not `a.b.example.com`);
//! 3. else, unless the TLS option has `sniStrict: true`, the `default` store's
//!    `defaultCertificate`, else the caller's default certificate (the proxy generates a
//!    self-signed one once at start; the control plane passes `None`).
//!
//! With `sniStrict` an unknown or missing SNI fails the handshake.
//!
//! ## OCSP stapling
//!
//! `managed.ocsp` holds OCSP responses the control plane's leader fetched, by the SHA-256
//! fingerprint of the leaf they answer for ([`fingerprint`]). A certificate whose leaf has one
//! is served with it stapled (`status_request`) until the response's `nextUpdate`, read from
//! the clock at handshake time (this crate's only clock read): past it the certificate is
//! served without a staple, never with a stale one, and never fails the handshake for it.
//!
//! ## TLS options
//!
//! One rustls `ServerConfig` per `tls.options` entry plus `default` (Traefik's defaults when not
//! defined: TLS 1.2 minimum, ALPN `h2`, `http/1.1`, `acme-tls/1`). rustls implements TLS 1.2 and
//! 1.3 only: a `minVersion` of `VersionTLS10`/`VersionTLS11` is **clamped** to TLS 1.2 (such
//! a config still serves every client rustls can talk to), while a `maxVersion` below TLS 1.2
//! is rejected by validation (nothing could be served). `cipherSuites` selects TLS 1.2 suites by
//! their IANA/Go names; TLS 1.3 suites are always enabled (as in Go). `curvePreferences` accepts
//! `X25519`, `CurveP256`, `CurveP384`. `clientAuth` implements Traefik's five modes; as in
//! Traefik, `caFiles` without a `clientAuthType` means `RequireAndVerifyClientCert`.
//! `disableSessionTickets` turns TLS 1.3 tickets off.
//!
//! ## Session resumption across proxies
//!
//! When the config holds `managed.ticketKeys` (the control plane's leader generates and rotates
//! them), every option's `ServerConfig` issues stateless tickets encrypted with the newest key
//! and accepts tickets of every key held, so a client resumes on any proxy of the cluster
//! (`tickets.rs`). Without keys, rustls' per-process session cache is used.
//!
//! Which option serves a handshake: the option of the TLS routers whose `Host` rule matches the
//! SNI (exact, then one-label wildcard); `default` when none match, or when routers of the same
//! host disagree (Traefik logs that conflict and uses `default` too).
//!
//! ## ACME challenges
//!
//! TLS-ALPN-01 (RFC 8737): a ClientHello offering `acme-tls/1` whose SNI is in
//! `managed.tlsAlpn01` gets that challenge certificate and ALPN `acme-tls/1`
//! ([`TlsTable::select`] returns a dedicated `ServerConfig`). HTTP-01: [`TlsTable::http01`]
//! maps a token to its key authorization.
//!
//! ## Backends
//!
//! [`client_config`] builds the rustls `ClientConfig` of a servers transport: Mozilla's roots
//! (`webpki-roots`, compiled in) or the transport's `rootCAs` (inline PEM), an accept-anything
//! verifier for `insecureSkipVerify` that still checks handshake signatures, and the client
//! certificate of `certificates` (one per transport).

mod certs;
mod client;
mod server;
#[cfg(test)]
mod tests;
mod tickets;

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use switchyard_config::{ConfigError, ConfigErrors, DynamicConfig};

pub use certs::{fingerprint, parse_certified_key, parse_certs, PemError};
pub use client::{client_config, AcceptAny};

/// The ALPN protocol of TLS-ALPN-01 challenges.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The name of the TLS option used when a router names none.
pub const DEFAULT_OPTION: &str = "default";

/// The compiled TLS configuration of one config version.
pub struct TlsTable {
    /// Index 0 is `default`.
    options: Vec<Arc<ServerConfig>>,
    option_names: Vec<String>,
    /// Lower-case host → option index, from the `Host` rules of TLS routers.
    host_option: HashMap<Box<str>, usize>,
    /// Wildcard suffix (`example.com` for `*.example.com`) → option index.
    wildcard_option: HashMap<Box<str>, usize>,
    /// TLS-ALPN-01 answers, when any challenge is pending.
    acme: Option<Arc<ServerConfig>>,
    acme_domains: HashMap<Box<str>, ()>,
    http01: HashMap<Box<str>, Box<str>>,
}

impl std::fmt::Debug for TlsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTable")
            .field("options", &self.option_names)
            .field("hosts", &self.host_option.len())
            .field("acme_domains", &self.acme_domains.len())
            .field("http01", &self.http01.len())
            .finish_non_exhaustive()
    }
}

/// What [`TlsTable::select`] chose for a ClientHello.
#[derive(Clone)]
pub struct Selected {
    /// The server config to finish the handshake with.
    pub config: Arc<ServerConfig>,
    /// The TLS option name (`acme-tls/1` for a challenge answer).
    pub option: String,
    /// True for a TLS-ALPN-01 challenge answer (the connection carries no HTTP).
    pub acme_challenge: bool,
}

impl TlsTable {
    /// The server config for a ClientHello (see the crate documentation).
    pub fn select_hello(&self, hello: &ClientHello<'_>) -> Selected {
        let offers_acme = hello
            .alpn()
            .is_some_and(|mut it| it.any(|p| p == ACME_TLS_ALPN));
        self.select(hello.server_name(), offers_acme)
    }

    /// The server config for SNI `sni` (`offers_acme`: the client offered `acme-tls/1`).
    pub fn select(&self, sni: Option<&str>, offers_acme: bool) -> Selected {
        let sni_lower = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase());
        if offers_acme {
            if let (Some(acme), Some(name)) = (&self.acme, &sni_lower) {
                if self.acme_domains.contains_key(name.as_str()) {
                    return Selected {
                        config: acme.clone(),
                        option: "acme-tls/1".to_string(),
                        acme_challenge: true,
                    };
                }
            }
        }
        let idx = sni_lower.as_deref().map_or(0, |n| self.option_index(n));
        Selected {
            config: self.options[idx].clone(),
            option: self.option_names[idx].clone(),
            acme_challenge: false,
        }
    }

    /// The option index for a lower-case host name (0 = `default`).
    fn option_index(&self, name: &str) -> usize {
        self.host_option
            .get(name)
            .copied()
            .or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard_option.get(parent).copied()
            })
            .unwrap_or(0)
    }

    /// The name of the TLS option that serves host `name` (any case, no port): the option of
    /// the TLS routers of that host, else `default`. The proxy compares it for the SNI and the
    /// request's host (Traefik's domain-fronting check, 421 when they differ).
    pub fn option_for(&self, name: &str) -> &str {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        &self.option_names[self.option_index(&lower)]
    }

    /// The server config of TLS option `name` (`None` when not defined).
    pub fn option(&self, name: &str) -> Option<&Arc<ServerConfig>> {
        let i = self.option_names.iter().position(|n| n == name)?;
        self.options.get(i)
    }

    /// The key authorization of a pending HTTP-01 challenge.
    pub fn http01(&self, token: &str) -> Option<&str> {
        self.http01.get(token).map(|s| &**s)
    }

    /// Whether any HTTP-01 challenge is pending.
    pub fn has_http01(&self) -> bool {
        !self.http01.is_empty()
    }
}

/// Strip a `@provider` suffix from a reference.
fn base_name(r: &str) -> &str {
    r.split_once('@').map_or(r, |(n, _)| n)
}

/// Compile the TLS part of `cfg` (see the crate documentation). `default_cert` is served to
/// handshakes no certificate matches when the `default` store has no `defaultCertificate`.
///
/// Errors name the resource and field, e.g.
/// `tls.certificates[0].keyFile: the private key does not match the certificate`.
pub fn compile(
    cfg: &DynamicConfig,
    default_cert: Option<Arc<CertifiedKey>>,
) -> Result<TlsTable, ConfigErrors> {
    let mut errors: Vec<ConfigError> = Vec::new();
    let store = certs::build_store(cfg, default_cert, &mut errors);
    let store = Arc::new(store);

    // Options: `default` first, then the others by name.
    let mut option_names = vec![DEFAULT_OPTION.to_string()];
    option_names.extend(
        cfg.tls
            .options
            .keys()
            .filter(|n| n.as_str() != DEFAULT_OPTION)
            .cloned(),
    );
    let ticketer = match tickets::ticketer(&cfg.managed.ticket_keys) {
        Ok(t) => t,
        Err((i, msg)) => {
            errors.push(ConfigError::at(format!("managed.ticketKeys[{i}]"), msg));
            None
        }
    };
    let empty = switchyard_config::TlsOptions::default();
    let mut options = Vec::with_capacity(option_names.len());
    for name in &option_names {
        let o = cfg.tls.options.get(name).unwrap_or(&empty);
        match server::server_config(o, store.clone(), ticketer.clone()) {
            Ok(c) => options.push(c),
            Err((field, msg)) => {
                errors.push(ConfigError::field("tlsOption", name, field, msg));
            }
        }
    }

    // Host → option from the TLS routers.
    let mut by_host: HashMap<String, Option<usize>> = HashMap::new();
    for (rname, r) in &cfg.http.routers {
        let Some(t) = &r.tls else { continue };
        let idx = match t
            .options
            .as_deref()
            .map(base_name)
            .filter(|s| !s.is_empty())
        {
            None => 0,
            Some(o) => match option_names.iter().position(|n| n == o) {
                Some(i) => i,
                None => {
                    errors.push(ConfigError::field(
                        "router",
                        rname,
                        "tls.options",
                        format!("TLS option {} not found", switchyard_config::quote(o)),
                    ));
                    continue;
                }
            },
        };
        let Ok(rule) = switchyard_config::rules::compile(&r.rule) else {
            continue;
        };
        for h in rule.host_constraint().unwrap_or_default() {
            let h = h.to_ascii_lowercase();
            let e = by_host.entry(h).or_insert(Some(idx));
            if *e != Some(idx) {
                *e = None; // conflicting options: `default`
            }
        }
    }
    let mut host_option = HashMap::new();
    let mut wildcard_option = HashMap::new();
    for (h, idx) in by_host {
        let idx = idx.unwrap_or(0);
        match h.strip_prefix("*.") {
            Some(s) => wildcard_option.insert(Box::from(s), idx),
            None => host_option.insert(Box::from(h.as_str()), idx),
        };
    }

    // Backend transports: compiled here so the control plane refuses what the proxy would.
    for (name, t) in &cfg.http.servers_transports {
        if let Err((field, msg)) = client::check(t) {
            errors.push(ConfigError::field("serversTransport", name, field, msg));
        }
    }
    for (name, t) in &cfg.tcp.servers_transports {
        if let Some(tls) = &t.tls {
            if let Err((field, msg)) = client::check(&tls.as_http()) {
                let k = switchyard_config::tcp::TRANSPORT;
                errors.push(ConfigError::field(k, name, format!("tls.{field}"), msg));
            }
        }
    }

    // ACME.
    let mut acme_keys = HashMap::new();
    for (domain, pair) in &cfg.managed.tls_alpn01 {
        match certs::parse_challenge_key(&pair.cert_pem, &pair.key_pem) {
            Ok(k) => {
                acme_keys.insert(domain.to_ascii_lowercase().into_boxed_str(), k);
            }
            Err(e) => errors.push(ConfigError::at(
                format!("managed.tlsAlpn01[{}]", switchyard_config::quote(domain)),
                e.to_string(),
            )),
        }
    }
    let acme_domains = acme_keys.keys().map(|k| (k.clone(), ())).collect();
    let acme = if acme_keys.is_empty() {
        None
    } else {
        match server::acme_config(acme_keys) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(ConfigError::at("managed.tlsAlpn01", e));
                None
            }
        }
    };
    let http01 = cfg
        .managed
        .http01
        .iter()
        .map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str())))
        .collect();

    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        return Err(ConfigErrors(errors));
    }
    Ok(TlsTable {
        options,
        option_names,
        host_option,
        wildcard_option,
        acme,
        acme_domains,
        http01,
    })
}
