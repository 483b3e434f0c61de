//! Request counters per config version, for progressive rollouts: how many requests each
//! version served, how many answered 5xx (the backend's or the proxy's own, such as 502 on a
//! connect failure), and a latency histogram to the response headers. The control plane's
//! leader compares the version a rollout brings in with the previous one from these.
//!
//! - Request path: [`VersionStats::record`] is three relaxed atomic adds on counters owned by
//!   the request's `Runtime` (built once per version); no lock, no allocation.
//! - [`run`]: every [`REPORT_INTERVAL`], while the counters move, the cumulative counters of the
//!   versions served lately go to the control node over the config stream (`VersionReport`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchyard_proto::admin::VersionCounters;
use switchyard_proto::latency;
use switchyard_proto::stream::proxy_message::Msg;
use switchyard_proto::stream::{ProxyMessage, VersionReport};
use tokio::sync::mpsc;

use crate::proxy::Proxy;

/// How often counters are reported (when they changed).
pub const REPORT_INTERVAL: Duration = Duration::from_millis(500);

/// How many versions are reported: the current one and the ones before it that still finish
/// requests (a request completes on the version it started with).
const KEEP: usize = 3;

/// The counters of one config version.
pub(crate) struct VersionStats {
    version: u64,
    requests: AtomicU64,
    errors: AtomicU64,
    latency: [AtomicU64; latency::BUCKETS],
}

impl VersionStats {
    pub(crate) fn new(version: u64) -> Self {
        Self {
            version,
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts one response: its status and the time from the request's start to its headers.
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency[latency::bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> VersionCounters {
        VersionCounters {
            version: self.version,
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency_buckets: self
                .latency
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// The versions a proxy served lately, newest first (at most [`KEEP`]).
#[derive(Default)]
struct Recent(Vec<Arc<VersionStats>>);

impl Recent {
    fn see(&mut self, current: &Arc<VersionStats>) {
        if self.0.first().is_some_and(|s| Arc::ptr_eq(s, current)) {
            return;
        }
        self.0.retain(|s| s.version != current.version);
        self.0.insert(0, current.clone());
        self.0.truncate(KEEP);
    }

    fn report(&self) -> VersionReport {
        VersionReport {
            versions: self.0.iter().map(|s| s.snapshot()).collect(),
        }
    }
}

/// Reports the counters over the stream `tx` until it closes (aborted with the stream).
pub(crate) async fn run(proxy: Proxy, tx: mpsc::Sender<ProxyMessage>) {
    let mut tick = tokio::time::interval(REPORT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recent = Recent::default();
    let mut last: Option<VersionReport> = None;
    loop {
        tick.tick().await;
        recent.see(&proxy.runtime().version_stats);
        let report = recent.report();
        if last.as_ref() == Some(&report) {
            continue;
        }
        last = Some(report.clone());
        let msg = ProxyMessage {
            msg: Some(Msg::VersionReport(report)),
        };
        // A full channel drops this report; the counters are cumulative, the next one says all.
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(msg) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_errors_and_latency() {
        let s = VersionStats::new(7);
        s.record(200, Duration::from_micros(100));
        s.record(502, Duration::from_millis(3));
        s.record(404, Duration::from_micros(100));
        let c = s.snapshot();
        assert_eq!((c.version, c.requests, c.errors), (7, 3, 1));
        assert_eq!(c.latency_buckets.len(), latency::BUCKETS);
        assert_eq!(c.latency_buckets[latency::bucket(100)], 2);
        assert_eq!(c.latency_buckets.iter().sum::<u64>(), 3);
    }

    #[test]
    fn recent_keeps_the_newest_versions_first() {
        let mut r = Recent::default();
        let v: Vec<Arc<VersionStats>> = (1..=5).map(|i| Arc::new(VersionStats::new(i))).collect();
        for s in &v {
            r.see(s);
            r.see(s);
        }
        let got: Vec<u64> = r.report().versions.iter().map(|c| c.version).collect();
        assert_eq!(got, vec![5, 4, 3]);
    }
}
