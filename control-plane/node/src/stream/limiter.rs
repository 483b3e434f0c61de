//! Cluster-wide rate limits (`rateLimit` with `scope: cluster`): the budget of each
//! (middleware, source) is split among the proxies attached to this node by their demand.
//!
//! Every ~250 ms a proxy reports, per cluster-scope middleware and source, the requests it
//! saw (allowed or refused) since its previous report. The node keeps each proxy's latest
//! demand rate per (middleware, source) and answers the report with that proxy's shares: a
//! max-min fair split of the limit (water-filling: a proxy that wants less than an equal part
//! gets what it wants, the others split the rest equally; what nobody wants is spread
//! equally), divided by the limit. Shares of one (middleware, source) add up to 1 over the
//! proxies that reported it. Sources a proxy has not reported get `1 / proxies attached`.
//! The request path never waits for this: proxies apply the shares they last received.
//!
//! Memory: a proxy reports at most 1000 sources per middleware; an entry not refreshed for
//! [`STALE_MS`] is dropped (and the whole proxy's entries when it detaches).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use switchyard_proto::stream::{LimiterReport, LimiterShare, LimiterShares};

/// A demand not refreshed for this long is forgotten.
pub const STALE_MS: u64 = 2_000;

#[derive(Debug, Clone, Copy)]
struct Demand {
    /// Requests per second wanted.
    rate: f64,
    at_ms: u64,
}

/// (middleware, source) → proxy → demand.
type Table = HashMap<(String, String), HashMap<String, Demand>>;

/// The node's view of cluster-scope limiter demand.
#[derive(Debug, Default)]
pub struct Limiter {
    table: Mutex<(Table, u64)>,
}

/// Max-min fair split of `budget` among `demands`: what each gets (same order).
pub fn water_fill(demands: &[f64], budget: f64) -> Vec<f64> {
    let n = demands.len();
    if n == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| demands[a].total_cmp(&demands[b]));
    let mut out = vec![0.0; n];
    let mut remaining = budget.max(0.0);
    for (done, &i) in order.iter().enumerate() {
        let fair = remaining / (n - done) as f64;
        let give = demands[i].max(0.0).min(fair);
        out[i] = give;
        remaining -= give;
    }
    if remaining > 0.0 {
        let extra = remaining / n as f64;
        for v in &mut out {
            *v += extra;
        }
    }
    out
}

impl Limiter {
    /// Record `proxy`'s report at `now_ms` and compute its shares (`attached`: proxies
    /// attached to this node, for the default share).
    pub fn report(
        &self,
        proxy: &str,
        r: &LimiterReport,
        attached: usize,
        now_ms: u64,
    ) -> LimiterShares {
        let mut g = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let (table, last_purge) = &mut *g;
        if now_ms.saturating_sub(*last_purge) >= STALE_MS {
            *last_purge = now_ms;
            table.retain(|_, per| {
                per.retain(|_, d| now_ms.saturating_sub(d.at_ms) < STALE_MS);
                !per.is_empty()
            });
        }
        let secs = f64::from(r.interval_ms.max(1)) / 1000.0;
        let mut shares = Vec::with_capacity(r.demands.len());
        for d in &r.demands {
            let key = (d.middleware.clone(), d.key.clone());
            let per = table.entry(key).or_default();
            per.insert(
                proxy.to_string(),
                Demand {
                    rate: d.requests as f64 / secs,
                    at_ms: now_ms,
                },
            );
            let live: Vec<(&String, &Demand)> = per
                .iter()
                .filter(|(_, x)| now_ms.saturating_sub(x.at_ms) < STALE_MS)
                .collect();
            let limit = d.limit;
            let share = if limit > 0.0 && live.len() > 1 {
                let demands: Vec<f64> = live.iter().map(|(_, x)| x.rate).collect();
                let alloc = water_fill(&demands, limit);
                let me = live.iter().position(|(p, _)| p.as_str() == proxy);
                me.map_or(0.0, |i| alloc[i] / limit)
            } else {
                1.0
            };
            shares.push(LimiterShare {
                middleware: d.middleware.clone(),
                key: d.key.clone(),
                share,
            });
        }
        LimiterShares {
            default_share: 1.0 / attached.max(1) as f64,
            shares,
        }
    }

    /// Forget a proxy (its stream ended).
    pub fn detach(&self, proxy: &str) {
        let mut g = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        g.0.retain(|_, per| {
            per.remove(proxy);
            !per.is_empty()
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use switchyard_proto::stream::LimiterDemand;

    fn report(key: &str, requests: u64) -> LimiterReport {
        LimiterReport {
            interval_ms: 250,
            demands: vec![LimiterDemand {
                middleware: "rl@file".into(),
                key: key.into(),
                requests,
                limit: 100.0,
            }],
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn water_filling() {
        let a = water_fill(&[300.0, 300.0, 300.0], 100.0);
        assert!(a.iter().all(|v| close(*v, 100.0 / 3.0)), "{a:?}");
        // A small demand is served, the rest is split.
        let a = water_fill(&[10.0, 300.0, 300.0], 100.0);
        assert!(
            close(a[0], 10.0) && close(a[1], 45.0) && close(a[2], 45.0),
            "{a:?}"
        );
        // Nobody wants the whole budget: the rest is spread.
        let a = water_fill(&[10.0, 20.0], 100.0);
        assert!(close(a[0], 45.0) && close(a[1], 55.0), "{a:?}");
        assert!(close(a.iter().sum::<f64>(), 100.0));
        assert!(water_fill(&[], 1.0).is_empty());
    }

    #[test]
    fn shares_follow_demand_and_expire() {
        let l = Limiter::default();
        // Alone: the whole limit.
        let s = l.report("p1", &report("a", 75), 3, 1_000);
        assert!(close(s.shares[0].share, 1.0));
        assert!(close(s.default_share, 1.0 / 3.0));
        let s = l.report("p2", &report("a", 75), 3, 1_100);
        assert!(close(s.shares[0].share, 0.5));
        let s = l.report("p3", &report("a", 75), 3, 1_200);
        assert!(close(s.shares[0].share, 1.0 / 3.0));
        // p3 wants little (4/s): it gets that, the others split the rest.
        let s = l.report("p3", &report("a", 1), 3, 1_300);
        assert!(close(s.shares[0].share, 0.04), "{s:?}");
        let s = l.report("p1", &report("a", 75), 3, 1_300);
        assert!(close(s.shares[0].share, 0.48), "{s:?}");
        // p2 and p3 stop reporting: p1 gets everything once their demand is stale.
        let s = l.report("p1", &report("a", 75), 3, 1_300 + STALE_MS);
        assert!(close(s.shares[0].share, 1.0), "{s:?}");
        l.detach("p1");
        assert!(l
            .table
            .lock()
            .unwrap()
            .0
            .values()
            .all(|p| !p.contains_key("p1")));
    }
}
