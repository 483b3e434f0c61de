//! The verdict on a rollout stage: pure arithmetic on the proxies' request counters (no I/O).
//!
//! Proxies report cumulative counters per config version ([`VersionCounters`]). The leader takes
//! them at the start of a stage's bake and at its end; the difference is what each version
//! served during the bake ([`window`]). Versions from the rollout's target up are the *new*
//! side; older ones (the proxies still on the previous version) are the *baseline*. A stage
//! breaches when the new side's error rate is more than `max_error_rate` above the baseline's,
//! or its p99 more than `max_p99` above the baseline's ([`judge`]). With no baseline traffic
//! (every proxy on the new version, or the old ones idle) the baseline counts as 0% and 0 ms:
//! the thresholds are then absolute.

use std::collections::BTreeMap;

use switchyard_proto::admin::{ProxyStatus, VersionCounters};
use switchyard_proto::latency;
use switchyard_store::Plan;

/// Cumulative counters by (proxy, version).
pub type Counts = BTreeMap<(String, u64), VersionCounters>;

/// The counters of every proxy in a `get proxies` answer.
pub fn counts(proxies: &[ProxyStatus]) -> Counts {
    proxies
        .iter()
        .flat_map(|p| {
            p.version_counters
                .iter()
                .map(move |c| ((p.proxy_id.clone(), c.version), c.clone()))
        })
        .collect()
}

/// What one side served during a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub requests: u64,
    pub errors: u64,
    pub latency: Vec<u64>,
    /// Versions seen on this side (for the note).
    pub versions: Vec<u64>,
}

impl Tally {
    fn add(&mut self, version: u64, requests: u64, errors: u64, latency: &[u64]) {
        // Saturating: the counters come from proxies over the network.
        self.requests = self.requests.saturating_add(requests);
        self.errors = self.errors.saturating_add(errors);
        if self.latency.len() < latency.len() {
            self.latency.resize(latency.len(), 0);
        }
        for (a, b) in self.latency.iter_mut().zip(latency) {
            *a = a.saturating_add(*b);
        }
        if requests > 0 && !self.versions.contains(&version) {
            self.versions.push(version);
            self.versions.sort_unstable();
        }
    }

    /// Errors per request (0 with no requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// p99 latency in microseconds (bucket upper bound), if any request.
    pub fn p99_us(&self) -> Option<u64> {
        latency::quantile_us(&self.latency, 0.99)
    }

    fn describe(&self) -> String {
        let versions = self
            .versions
            .iter()
            .map(|v| format!("v{v}"))
            .collect::<Vec<_>>()
            .join(",");
        let p99 = self
            .p99_us()
            .map(|us| format!(", p99 <= {}", ms(us)))
            .unwrap_or_default();
        format!(
            "{} requests, {} errors ({:.2}%){p99}{}",
            self.requests,
            self.errors,
            self.error_rate() * 100.0,
            if versions.is_empty() {
                String::new()
            } else {
                format!(" on {versions}")
            }
        )
    }
}

fn ms(us: u64) -> String {
    if us == u64::MAX {
        "inf".into()
    } else if us < 1000 {
        format!("{:.3} ms", us as f64 / 1000.0)
    } else {
        format!("{} ms", us / 1000)
    }
}

/// What each side served between `start` and `end`: versions `>= new_from` are the new side.
/// A counter missing at the start (a version loaded, or a proxy attached, during the window) or
/// lower than at the start (the proxy restarted) counts from zero.
pub fn window(start: &Counts, end: &Counts, new_from: u64) -> (Tally, Tally) {
    let (mut new, mut base) = (Tally::default(), Tally::default());
    for (key, e) in end {
        let s = start
            .get(key)
            .filter(|s| s.requests <= e.requests && s.errors <= e.errors);
        let (requests, errors, lat) = match s {
            Some(s) => (
                e.requests - s.requests,
                e.errors - s.errors,
                e.latency_buckets
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b.saturating_sub(s.latency_buckets.get(i).copied().unwrap_or(0)))
                    .collect::<Vec<_>>(),
            ),
            None => (e.requests, e.errors, e.latency_buckets.clone()),
        };
        let side = if key.1 >= new_from {
            &mut new
        } else {
            &mut base
        };
        side.add(key.1, requests, errors.min(requests), &lat);
    }
    (new, base)
}

/// The verdict on a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Promote; the note says what was measured.
    Pass(String),
    /// Roll back; the reason names the threshold.
    Breach(String),
}

/// Judges a stage (`label`, e.g. "stage 1/3 (zone=a)") on what the new version and the
/// baseline served during its bake.
pub fn judge(label: &str, new: &Tally, base: &Tally, plan: &Plan) -> Verdict {
    let measured = format!(
        "new version: {}; baseline: {}",
        new.describe(),
        if base.requests == 0 {
            "none (absolute thresholds)".to_string()
        } else {
            base.describe()
        }
    );
    if new.requests == 0 {
        return Verdict::Pass(format!(
            "{label}: promoted with no requests to judge ({measured})"
        ));
    }
    let allowed = base.error_rate() + plan.max_error_rate;
    if new.error_rate() > allowed + 1e-12 {
        return Verdict::Breach(format!(
            "{label}: error rate {:.2}% on the new version is above the allowed {:.2}% (baseline {:.2}% + max {:.2}%); {measured}",
            new.error_rate() * 100.0,
            allowed * 100.0,
            base.error_rate() * 100.0,
            plan.max_error_rate * 100.0,
        ));
    }
    if let (Some(max_ms), Some(p99)) = (plan.max_p99_ms, new.p99_us()) {
        let base_p99 = base.p99_us().unwrap_or(0);
        let allowed_us = base_p99.saturating_add(max_ms.saturating_mul(1000));
        if p99 > allowed_us {
            return Verdict::Breach(format!(
                "{label}: p99 latency {} on the new version is above the allowed {} (baseline {} + max {max_ms} ms); {measured}",
                ms(p99),
                ms(allowed_us),
                ms(base_p99),
            ));
        }
    }
    Verdict::Pass(format!("{label}: promoted ({measured})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_store::rollout::parse_stages;

    fn c(version: u64, requests: u64, errors: u64, latency_us: u64) -> VersionCounters {
        let mut b = vec![0; latency::BUCKETS];
        b[latency::bucket(latency_us)] = requests;
        VersionCounters {
            version,
            requests,
            errors,
            latency_buckets: b,
        }
    }

    fn counts_of(list: &[(&str, VersionCounters)]) -> Counts {
        list.iter()
            .map(|(p, c)| ((p.to_string(), c.version), c.clone()))
            .collect()
    }

    fn plan(max_p99_ms: Option<u64>) -> Plan {
        Plan {
            stages: parse_stages("zone=a,*").expect("stages"),
            bake_ms: 1000,
            max_error_rate: 0.01,
            max_p99_ms,
        }
    }

    #[test]
    fn the_window_is_the_difference_and_sides_split_at_the_target() {
        let start = counts_of(&[("a", c(5, 100, 1, 100)), ("b", c(5, 50, 0, 100))]);
        let end = counts_of(&[
            ("a", c(5, 110, 1, 100)),
            ("a", c(7, 40, 4, 100)),
            ("b", c(5, 20, 0, 100)), // restarted: counts from zero
        ]);
        let (new, base) = window(&start, &end, 7);
        assert_eq!((new.requests, new.errors), (40, 4));
        assert_eq!((base.requests, base.errors), (30, 0));
        assert_eq!(base.latency.iter().sum::<u64>(), 30);
        assert_eq!(new.versions, vec![7]);
    }

    #[test]
    fn error_rate_is_judged_against_the_baseline() {
        let p = plan(None);
        let t = |requests, errors| {
            let mut t = Tally::default();
            t.add(7, requests, errors, &[requests]);
            t
        };
        // 100% errors vs a clean baseline: breach, and the reason says so.
        match judge("stage 1/2 (zone=a)", &t(50, 50), &t(100, 0), &p) {
            Verdict::Breach(r) => {
                assert!(
                    r.starts_with("stage 1/2 (zone=a): error rate 100.00%"),
                    "{r}"
                );
                assert!(r.contains("baseline 0.00%"), "{r}");
            }
            v => panic!("{v:?}"),
        }
        // 5% errors when the old version also fails 5%: not the change's fault.
        assert!(matches!(
            judge("s", &t(100, 5), &t(100, 5), &p),
            Verdict::Pass(_)
        ));
        // No baseline: the threshold is absolute.
        assert!(matches!(
            judge("s", &t(100, 5), &t(0, 0), &p),
            Verdict::Breach(_)
        ));
        assert!(matches!(
            judge("s", &t(100, 1), &t(0, 0), &p),
            Verdict::Pass(_)
        ));
        // No traffic on the new version: nothing to judge.
        assert!(matches!(
            judge("s", &t(0, 0), &t(10, 0), &p),
            Verdict::Pass(_)
        ));
    }

    #[test]
    fn hostile_counters_saturate_instead_of_overflowing() {
        let end = counts_of(&[
            ("a", c(7, u64::MAX, u64::MAX, 100)),
            ("b", c(7, u64::MAX, 1, 100)),
            ("c", c(3, u64::MAX, 0, 100)),
        ]);
        let (new, base) = window(&Counts::new(), &end, 7);
        assert_eq!(new.requests, u64::MAX);
        assert!(new.p99_us().is_some() && base.p99_us().is_some());
        let v = judge("s", &new, &base, &plan(Some(1)));
        assert!(matches!(v, Verdict::Breach(_)), "{v:?}");
    }

    #[test]
    fn p99_is_judged_against_the_baseline_plus_the_allowance() {
        let p = plan(Some(50));
        let t = |us| {
            let (mut new, _) = window(&Counts::new(), &counts_of(&[("a", c(7, 100, 0, us))]), 0);
            new.versions.clear();
            new
        };
        // 200 ms vs 1 ms + 50 ms: breach.
        match judge("s", &t(200_000), &t(1_000), &p) {
            Verdict::Breach(r) => assert!(r.contains("p99 latency"), "{r}"),
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            judge("s", &t(20_000), &t(1_000), &p),
            Verdict::Pass(_)
        ));
        // Without --max-p99 latency is not judged.
        assert!(matches!(
            judge("s", &t(200_000), &t(1_000), &plan(None)),
            Verdict::Pass(_)
        ));
    }
}
