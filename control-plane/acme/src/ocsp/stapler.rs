//! The leader's OCSP schedule: fetches a response for every stored certificate that names a
//! responder, commits verified ones (`AcmeCommand::Ocsp`), refreshes them halfway through their
//! validity, retries failures with backoff, and drops staples of certificates no longer stored
//! or past their `nextUpdate`. A failed fetch never touches the stored response: proxies keep
//! stapling it until its `nextUpdate`.
//!
//! The retry state (failures, next attempt) lives in the leader's memory: a new leader fetches
//! what is due according to the stored staples (at once for certificates without one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine;
use switchyard_config::{DynamicConfig, OcspStaple};
use switchyard_store::AcmeCommand;
use tokio::task::JoinHandle;

use super::{backoff, refresh_at, target, Target};
use crate::metrics::OcspLabels;
use crate::{AcmeMetrics, Cluster};

/// The PEM chains of every stored certificate: `tls.certificates` (inline PEM), the default
/// store's `defaultCertificate`, and the ACME-issued ones.
pub fn chains(cfg: &DynamicConfig) -> Vec<&str> {
    let inline = switchyard_config::acme::is_inline_pem;
    let mut out: Vec<&str> = cfg
        .tls
        .certificates
        .iter()
        .map(|c| c.cert_file.as_str())
        .filter(|c| inline(c))
        .collect();
    for s in cfg.tls.stores.values() {
        if let Some(d) = &s.default_certificate {
            if inline(&d.cert_file) {
                out.push(&d.cert_file);
            }
        }
    }
    out.extend(
        cfg.managed
            .certificates
            .values()
            .map(|m| m.pair.cert_pem.as_str()),
    );
    out
}

/// Fetches running at once (a leader taking over thousands of certificates does not open
/// thousands of connections).
const MAX_IN_FLIGHT: usize = 16;

type Fetch = JoinHandle<Result<(OcspStaple, i64), String>>;

/// The schedule of one leader term.
#[derive(Default)]
pub struct Stapler {
    /// Parsed chains (by PEM), so certificates are parsed once, not every tick.
    targets: HashMap<String, Option<Arc<Target>>>,
    /// Consecutive failures by fingerprint.
    failures: HashMap<String, u32>,
    /// Unix seconds before which a fingerprint is not fetched again.
    next_try: HashMap<String, i64>,
    in_flight: HashMap<String, Fetch>,
}

impl Stapler {
    /// Forgets everything (leadership lost).
    pub fn reset(&mut self) {
        for (_, t) in self.in_flight.drain() {
            t.abort();
        }
        self.failures.clear();
        self.next_try.clear();
    }

    /// One pass at `now` (Unix seconds): collects finished fetches, commits them and the
    /// removals in one command, starts the fetches that are due.
    pub async fn tick<C: Cluster>(
        &mut self,
        cfg: &DynamicConfig,
        cluster: &Arc<C>,
        metrics: &AcmeMetrics,
        now: i64,
    ) {
        let mut wanted: BTreeMap<String, Arc<Target>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for pem in chains(cfg) {
            seen.insert(pem);
            if !self.targets.contains_key(pem) {
                let t = target(pem).map(|t| t.map(Arc::new)).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "OCSP: certificate not stapled");
                    None
                });
                self.targets.insert(pem.to_string(), t);
            }
            if let Some(Some(t)) = self.targets.get(pem) {
                wanted.insert(t.fingerprint.clone(), t.clone());
            }
        }
        self.targets.retain(|pem, _| seen.contains(pem.as_str()));

        let mut staples: BTreeMap<String, Option<OcspStaple>> = BTreeMap::new();
        // Finished fetches.
        let done: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, t)| t.is_finished())
            .map(|(fp, _)| fp.clone())
            .collect();
        for fp in done {
            let Some(task) = self.in_flight.remove(&fp) else {
                continue;
            };
            let result = task
                .await
                .unwrap_or_else(|e| Err(format!("fetch task: {e}")));
            let label = |r: &str| OcspLabels { result: r.into() };
            match result {
                Ok((staple, refresh)) => {
                    metrics.ocsp_fetches.get_or_create(&label("stapled")).inc();
                    tracing::info!(cert = %fp, status = %staple.status,
                        next_update = staple.next_update, refresh_at = refresh, "OCSP: response fetched");
                    self.failures.remove(&fp);
                    self.next_try.insert(fp.clone(), refresh);
                    if wanted.contains_key(&fp) && cfg.managed.ocsp.get(&fp) != Some(&staple) {
                        staples.insert(fp, Some(staple));
                    }
                }
                Err(e) => {
                    metrics.ocsp_fetches.get_or_create(&label("failed")).inc();
                    let n = self.failures.entry(fp.clone()).or_default();
                    *n = n.saturating_add(1);
                    let wait = backoff(*n);
                    tracing::warn!(cert = %fp, error = %e, failures = *n, retry_in_s = wait.as_secs(),
                        "OCSP: fetch failed; the stored response (if any) stays stapled until its nextUpdate");
                    self.next_try.insert(fp, now + wait.as_secs() as i64);
                }
            }
        }
        // Staples of certificates gone, or expired.
        for (fp, s) in &cfg.managed.ocsp {
            if !wanted.contains_key(fp) || s.next_update <= now {
                staples.entry(fp.clone()).or_insert(None);
            }
        }
        self.next_try.retain(|fp, _| wanted.contains_key(fp));
        self.failures.retain(|fp, _| wanted.contains_key(fp));
        for (fp, t) in self.in_flight.iter() {
            if !wanted.contains_key(fp) {
                t.abort();
            }
        }
        self.in_flight.retain(|fp, _| wanted.contains_key(fp));
        if !staples.is_empty() {
            let n = staples.len();
            if let Err(e) = cluster.propose(AcmeCommand::Ocsp { staples }).await {
                tracing::warn!(error = %e, staples = n, "OCSP: staples not committed; fetching again");
                // Fetch again soon rather than wait for the refresh time of an uncommitted one.
                for fp in wanted.keys() {
                    if !cfg.managed.ocsp.contains_key(fp) {
                        self.next_try.remove(fp);
                    }
                }
            }
        }
        // Start what is due, at most MAX_IN_FLIGHT at once.
        for (fp, t) in wanted {
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                break;
            }
            if self.in_flight.contains_key(&fp) {
                continue;
            }
            let due_at = self.next_try.get(&fp).copied().unwrap_or_else(|| {
                cfg.managed
                    .ocsp
                    .get(&fp)
                    .filter(|s| s.next_update > now)
                    .map_or(0, |s| {
                        refresh_at(s.this_update, s.next_update, s.this_update)
                    })
            });
            if now < due_at {
                continue;
            }
            self.in_flight.insert(fp, tokio::spawn(fetch_and_verify(t)));
        }
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Fetches and verifies one response: the staple and when to refresh it.
async fn fetch_and_verify(t: Arc<Target>) -> Result<(OcspStaple, i64), String> {
    let der = super::fetch::fetch(&t.responder, &t.request).await?;
    let now = now_unix();
    let v = super::verify(&der, &t, now).map_err(|e| format!("{}: {e}", t.responder))?;
    let staple = OcspStaple {
        response: base64::engine::general_purpose::STANDARD.encode(&der),
        status: v.status.to_string(),
        this_update: v.this_update,
        next_update: v.next_update,
        responder: t.responder.clone(),
    };
    Ok((staple, refresh_at(v.this_update, v.next_update, now)))
}
