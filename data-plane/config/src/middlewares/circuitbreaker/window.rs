//! The circuit breaker's metrics window, as oxy's `memmetrics.RTMetrics`: request, network
//! error (502, 504) and per-status counts over the last 10 seconds (ten one-second buckets),
//! and latencies over the last minute (six ten-second histograms). Latencies are kept in
//! microseconds with three significant digits (0.1%; oxy's HDR histogram keeps two), so a
//! quantile reads at most 0.1% high. Pure: the caller passes the time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::expr::Metrics;

const COUNTER_BUCKETS: u64 = 10;
const HIST_BUCKETS: u64 = 6;
const HIST_PERIOD_SECS: u64 = 10;
/// Longest latency recorded (one hour, as oxy).
const HIST_MAX_US: u64 = 3_600_000_000;

#[derive(Debug, Clone, Default)]
struct Counts {
    /// The second this bucket counts (since the window's origin).
    sec: u64,
    total: u64,
    net_errors: u64,
    codes: BTreeMap<u16, u64>,
}

#[derive(Debug, Clone, Default)]
struct Hist {
    /// The period this histogram covers.
    period: u64,
    /// Bucket (lowest value with three significant digits) → count.
    buckets: BTreeMap<u64, u64>,
}

/// A rolling window of response metrics.
#[derive(Debug, Clone)]
pub struct Window {
    origin: Instant,
    counts: Vec<Counts>,
    hists: Vec<Hist>,
}

/// The bucket of a latency: its value with the digits after the third significant one
/// zeroed.
fn bucket_of(us: u64) -> u64 {
    let mut scale = 1;
    while us / scale >= 1000 {
        scale *= 10;
    }
    us / scale * scale
}

/// The highest value of `bucket`'s range (HDR's "highest equivalent value").
fn bucket_high(bucket: u64) -> u64 {
    let mut scale = 1;
    while bucket / scale >= 1000 {
        scale *= 10;
    }
    bucket + scale - 1
}

impl Window {
    /// An empty window starting at `now`.
    pub fn new(now: Instant) -> Window {
        Window {
            origin: now,
            counts: vec![Counts::default(); COUNTER_BUCKETS as usize],
            hists: vec![Hist::default(); HIST_BUCKETS as usize],
        }
    }

    fn sec(&self, now: Instant) -> u64 {
        // +1 so that bucket 0 (second 0) is distinguishable from a fresh bucket.
        now.saturating_duration_since(self.origin).as_secs() + 1
    }

    /// Record one response.
    pub fn record(&mut self, status: u16, latency: Duration, now: Instant) {
        let sec = self.sec(now);
        let c = &mut self.counts[(sec % COUNTER_BUCKETS) as usize];
        if c.sec != sec {
            *c = Counts {
                sec,
                ..Counts::default()
            };
        }
        c.total += 1;
        if status == 502 || status == 504 {
            c.net_errors += 1;
        }
        *c.codes.entry(status).or_insert(0) += 1;
        let period = sec / HIST_PERIOD_SECS + 1;
        let h = &mut self.hists[(period % HIST_BUCKETS) as usize];
        if h.period != period {
            *h = Hist {
                period,
                ..Hist::default()
            };
        }
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, HIST_MAX_US);
        *h.buckets.entry(bucket_of(us)).or_insert(0) += 1;
    }

    /// Forget everything (the breaker trips).
    pub fn reset(&mut self, now: Instant) {
        *self = Window::new(now);
    }

    /// The metrics as of `now`.
    pub fn at(&self, now: Instant) -> View<'_> {
        View { w: self, now }
    }

    fn live_counts(&self, now: Instant) -> impl Iterator<Item = &Counts> {
        let sec = self.sec(now);
        self.counts
            .iter()
            .filter(move |c| c.sec != 0 && c.sec <= sec && sec - c.sec < COUNTER_BUCKETS)
    }
}

/// A window read at one instant.
pub struct View<'a> {
    w: &'a Window,
    now: Instant,
}

impl Metrics for View<'_> {
    fn network_error_ratio(&self) -> f64 {
        let (mut total, mut net) = (0u64, 0u64);
        for c in self.w.live_counts(self.now) {
            total += c.total;
            net += c.net_errors;
        }
        if total == 0 {
            0.0
        } else {
            net as f64 / total as f64
        }
    }

    fn response_code_ratio(&self, from: i64, to: i64, by_from: i64, by_to: i64) -> f64 {
        let (mut a, mut b) = (0u64, 0u64);
        for c in self.w.live_counts(self.now) {
            for (&code, &n) in &c.codes {
                let code = i64::from(code);
                if code >= from && code < to {
                    a += n;
                }
                if code >= by_from && code < by_to {
                    b += n;
                }
            }
        }
        if b == 0 {
            0.0
        } else {
            a as f64 / b as f64
        }
    }

    fn latency_at_quantile_us(&self, q: f64) -> u64 {
        let period = self.w.sec(self.now) / HIST_PERIOD_SECS + 1;
        let mut merged: BTreeMap<u64, u64> = BTreeMap::new();
        for h in &self.w.hists {
            if h.period != 0 && h.period <= period && period - h.period < HIST_BUCKETS {
                for (&b, &n) in &h.buckets {
                    *merged.entry(b).or_insert(0) += n;
                }
            }
        }
        let total: u64 = merged.values().sum();
        if total == 0 {
            return 0;
        }
        // HDR's ValueAtQuantile: the count at the quantile, rounded, at least one.
        let q = q.clamp(0.0, 100.0);
        let target = ((q / 100.0 * total as f64) + 0.5) as u64;
        let target = target.max(1);
        let mut seen = 0;
        for (&b, &n) in &merged {
            seen += n;
            if seen >= target {
                return bucket_high(b);
            }
        }
        merged.keys().next_back().map_or(0, |&b| bucket_high(b))
    }

    fn total(&self) -> u64 {
        self.w.live_counts(self.now).map(|c| c.total).sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_three_digits() {
        assert_eq!(bucket_of(7), 7);
        assert_eq!(bucket_of(999), 999);
        assert_eq!(bucket_of(51_234), 51_200);
        assert_eq!(bucket_high(51_200), 51_299);
        assert_eq!(bucket_high(7), 7);
    }

    // oxy memmetrics/roundtrip_test.go: TestDefaults, TestAppend-like counts.
    #[test]
    fn counts_and_ratios() {
        let t0 = Instant::now();
        let mut w = Window::new(t0);
        w.record(200, Duration::from_millis(10), t0);
        w.record(502, Duration::from_millis(10), t0);
        w.record(504, Duration::from_millis(10), t0);
        w.record(500, Duration::from_millis(10), t0);
        let v = w.at(t0);
        assert_eq!(v.total(), 4);
        assert!((v.network_error_ratio() - 0.5).abs() < 1e-9);
        assert!((v.response_code_ratio(500, 600, 0, 600) - 0.75).abs() < 1e-9);
        assert_eq!(v.response_code_ratio(500, 600, 300, 400), 0.0);
    }

    #[test]
    fn counts_roll_over_ten_seconds() {
        let t0 = Instant::now();
        let mut w = Window::new(t0);
        w.record(502, Duration::from_millis(1), t0);
        w.record(200, Duration::from_millis(1), t0 + Duration::from_secs(5));
        assert!((w.at(t0 + Duration::from_secs(9)).network_error_ratio() - 0.5).abs() < 1e-9);
        // Second 0 has left the window at second 10.
        let v = w.at(t0 + Duration::from_secs(10));
        assert_eq!(v.total(), 1);
        assert_eq!(v.network_error_ratio(), 0.0);
        // A bucket reused ten seconds later starts from zero.
        w.record(200, Duration::from_millis(1), t0 + Duration::from_secs(10));
        assert_eq!(w.at(t0 + Duration::from_secs(10)).total(), 2);
        assert_eq!(w.at(t0 + Duration::from_secs(30)).total(), 0);
    }

    #[test]
    fn latency_quantiles() {
        let t0 = Instant::now();
        let mut w = Window::new(t0);
        assert_eq!(w.at(t0).latency_at_quantile_us(50.0), 0);
        for ms in 1..=100u64 {
            w.record(200, Duration::from_millis(ms), t0);
        }
        let v = w.at(t0);
        assert_eq!(v.latency_at_quantile_us(50.0) / 1000, 50);
        assert_eq!(v.latency_at_quantile_us(99.0) / 1000, 99);
        assert_eq!(v.latency_at_quantile_us(100.0) / 1000, 100);
        assert_eq!(v.latency_at_quantile_us(0.0) / 1000, 1);
        // Latencies stay a minute, then leave.
        assert_eq!(
            w.at(t0 + Duration::from_secs(55))
                .latency_at_quantile_us(50.0)
                / 1000,
            50
        );
        assert_eq!(
            w.at(t0 + Duration::from_secs(61))
                .latency_at_quantile_us(50.0),
            0
        );
        w.reset(t0);
        assert_eq!(w.at(t0).total(), 0);
    }
}
