//! Cluster-wide rate limits (`rateLimit` and `inFlightReq` with `scope: cluster`): the
//! budget of each (middleware, source) is split among the proxies attached to this node by
//! their demand.
//!
//! Every ~250 ms a proxy reports, per cluster-scope middleware and source, the requests it
//! saw (allowed or refused) since its previous report. The node keeps each proxy's latest
//! demand rate per (middleware, source) and answers the report with that proxy's shares: a
//! max-min fair split of the limit (water-filling: a proxy that wants less than an equal part
//! gets what it wants, the others split the rest equally; what nobody wants is spread
//! equally), divided by the limit. Shares of one (middleware, source) add up to 1 over the
//! proxies that reported it. Sources a proxy has not reported get `1 / proxies in the cluster`.
//!
//! `inFlightReq`: proxies report per source the requests wanted at once, in progress, and
//! what they admit now; the node gives each whole slots (see [`in_flight_share`]), never
//! more than the others leave free.
//!
//! Several control nodes: each node's proxies share `limit × (proxies attached here / proxies
//! in the cluster)` (the count comes from the `ListProxies` fan-out, every 2 s once a
//! cluster-scope report arrived), so the nodes' parts add up to the limit: fair by proxy count
//! across nodes, by demand within a node.
//! The request path never waits for this: proxies apply the shares they last received.
//!
//! Memory: a proxy reports at most 1000 sources per middleware; an entry not refreshed for
//! [`STALE_MS`] is dropped (and the whole proxy's entries when it detaches).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use switchyard_proto::stream::{LimiterReport, LimiterShare, LimiterShares};

/// A demand not refreshed for this long is forgotten.
pub const STALE_MS: u64 = 2_000;

#[derive(Debug, Clone, Copy, Default)]
struct Demand {
    /// Requests per second wanted (`inFlightReq`: requests wanted at once).
    rate: f64,
    at_ms: u64,
    /// `inFlightReq`: the most this proxy may have in progress until its next report: the
    /// largest of what it reported in progress, what it reported admitting and the slots
    /// this node last gave it (an answer may not have reached it yet).
    held: u64,
    /// `inFlightReq`: the slots this node last gave it.
    given: u64,
}

/// (middleware, source) → proxy → demand.
type Table = HashMap<(String, String), HashMap<String, Demand>>;

/// The node's view of cluster-scope limiter demand.
#[derive(Debug, Default)]
pub struct Limiter {
    table: Mutex<(Table, u64)>,
    /// Proxies attached here and cluster-wide (0: not known yet).
    counts: Mutex<(usize, usize)>,
    counting: AtomicBool,
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

/// Integer parts of a split of `budget` (largest remainders first, ties in order), adding up
/// to `budget` when `parts` do.
fn integer_parts(parts: &[f64], budget: u64) -> Vec<u64> {
    let mut out: Vec<u64> = parts.iter().map(|p| p.max(0.0).floor() as u64).collect();
    let mut left = budget.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (parts[a] - parts[a].floor(), parts[b] - parts[b].floor());
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

/// `inFlightReq` with `scope: cluster`: record `proxy`'s report `d` of one source and give
/// it its slots, as a share of the amount. The target is a max-min fair split (water-filling
/// by the requests each proxy wanted at once) of this node's part of the amount, in whole
/// requests; the proxy gets at most what the other proxies do not hold (see [`Demand::held`]),
/// so a proxy grows only into slots another has given back and the sum of what the proxies
/// may admit stays within the amount (each proxy admits one request at a time even with 0).
fn in_flight_share(
    per: &mut HashMap<String, Demand>,
    proxy: &str,
    d: &switchyard_proto::stream::LimiterDemand,
    fraction: f64,
    now_ms: u64,
) -> f64 {
    let amount = d.limit.max(0.0).floor();
    if amount < 1.0 {
        return 0.0;
    }
    let budget = (amount * fraction + 1e-9).floor() as u64;
    let given = per.get(proxy).map_or(0, |x| x.given);
    per.insert(
        proxy.to_string(),
        Demand {
            rate: d.requests as f64,
            at_ms: now_ms,
            held: d.in_flight.max(d.admitting).max(given),
            given,
        },
    );
    // Live proxies in a fixed order (ties of the integer split go the same way every time).
    let mut live: Vec<(&String, &Demand)> = per
        .iter()
        .filter(|(_, x)| now_ms.saturating_sub(x.at_ms) < STALE_MS)
        .collect();
    live.sort_by(|a, b| a.0.cmp(b.0));
    let wants: Vec<f64> = live.iter().map(|(_, x)| x.rate).collect();
    let target = integer_parts(&water_fill(&wants, budget as f64), budget);
    let me = live.iter().position(|(p, _)| p.as_str() == proxy);
    let others: u64 = live
        .iter()
        .filter(|(p, _)| p.as_str() != proxy)
        .map(|(_, x)| x.held)
        .sum();
    let slots = me.map_or(0, |i| target[i].min(budget.saturating_sub(others)));
    if let Some(x) = per.get_mut(proxy) {
        x.given = slots;
        x.held = x.held.max(slots);
    }
    slots as f64 / amount
}

impl Limiter {
    /// True the first time it is called: the caller starts counting the cluster's proxies
    /// (only nodes whose proxies use a cluster-scope limit ask their peers).
    pub fn start_counting(&self) -> bool {
        !self.counting.swap(true, Ordering::Relaxed)
    }

    /// The proxies attached to this node and to the whole cluster (`ListProxies` fan-out).
    pub fn set_counts(&self, local: usize, cluster: usize) {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner) = (local, cluster);
    }

    /// This node's part of every limit: its proxies over the cluster's (1 until known).
    fn node_fraction(&self, attached: usize) -> (f64, usize) {
        let (local, cluster) = *self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let cluster = cluster.max(attached).max(1);
        if local == 0 {
            return (1.0, cluster);
        }
        ((attached.max(1) as f64 / cluster as f64).min(1.0), cluster)
    }

    /// Record `proxy`'s report at `now_ms` and compute its shares (`attached`: proxies
    /// attached to this node, for the default share).
    pub fn report(
        &self,
        proxy: &str,
        r: &LimiterReport,
        attached: usize,
        now_ms: u64,
    ) -> LimiterShares {
        let (fraction, cluster) = self.node_fraction(attached);
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
            if d.in_flight_limit {
                let share = in_flight_share(per, proxy, d, fraction, now_ms);
                shares.push(LimiterShare {
                    middleware: d.middleware.clone(),
                    key: d.key.clone(),
                    share,
                });
                continue;
            }
            per.insert(
                proxy.to_string(),
                Demand {
                    rate: d.requests as f64 / secs,
                    at_ms: now_ms,
                    ..Demand::default()
                },
            );
            let live: Vec<(&String, &Demand)> = per
                .iter()
                .filter(|(_, x)| now_ms.saturating_sub(x.at_ms) < STALE_MS)
                .collect();
            let limit = d.limit;
            let share = if limit > 0.0 && live.len() > 1 {
                let demands: Vec<f64> = live.iter().map(|(_, x)| x.rate).collect();
                let alloc = water_fill(&demands, limit * fraction);
                let me = live.iter().position(|(p, _)| p.as_str() == proxy);
                me.map_or(0.0, |i| alloc[i] / limit)
            } else {
                fraction
            };
            shares.push(LimiterShare {
                middleware: d.middleware.clone(),
                key: d.key.clone(),
                share,
            });
        }
        LimiterShares {
            default_share: 1.0 / cluster as f64,
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
                ..LimiterDemand::default()
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
    fn integer_split() {
        assert_eq!(integer_parts(&[2.0, 2.0, 2.0], 6), [2, 2, 2]);
        assert_eq!(integer_parts(&[1.0, 2.5, 2.5], 6), [1, 3, 2]);
        assert_eq!(integer_parts(&[0.4, 0.3, 0.3], 1), [1, 0, 0]);
        assert_eq!(integer_parts(&[], 3), Vec::<u64>::new());
    }

    /// Three proxies sharing `inFlightReq` `amount: 6`, each report answered at once. A proxy
    /// has `want[i]` clients; it has in progress what its limit lets through (requests over a
    /// lowered limit finish by its next report), wants one more than it may admit when
    /// refused, and admits `max(1, round(share × 6))`.
    #[test]
    fn in_flight_slots_converge_within_the_bound() {
        let l = Limiter::default();
        let names = ["p1", "p2", "p3"];
        // After the first (empty) answer: one at a time each.
        let mut cap = [1u64; 3];
        let mut in_flight = [0u64; 3];
        let mut run = |want: [u64; 3], rounds: usize, cap: &mut [u64; 3], t0: u64| {
            for round in 0..rounds {
                for i in 0..3 {
                    // Requests over a lowered limit have finished since the last report.
                    in_flight[i] = want[i].min(cap[i]);
                    if want[i] == 0 {
                        // Nothing to report: the answer has no share for the source.
                        cap[i] = 1;
                        continue;
                    }
                    let wanted = if want[i] > cap[i] {
                        cap[i] + 1
                    } else {
                        want[i]
                    };
                    let r = LimiterReport {
                        interval_ms: 250,
                        demands: vec![LimiterDemand {
                            middleware: "if@file".into(),
                            key: "h".into(),
                            requests: wanted,
                            limit: 6.0,
                            in_flight_limit: true,
                            in_flight: in_flight[i],
                            admitting: cap[i],
                        }],
                    };
                    let now = t0 + (round * 3 + i) as u64 * 80;
                    let s = l.report(names[i], &r, 3, now);
                    cap[i] = ((s.shares[0].share * 6.0).round() as u64).max(1);
                    // What the proxies may have in progress at once: within 6 + one each.
                    let possible: u64 = (0..3).map(|j| cap[j].max(in_flight[j])).sum();
                    assert!(possible <= 9, "round {round}: {cap:?} {in_flight:?}");
                }
            }
        };
        run([4, 4, 4], 8, &mut cap, 0);
        assert_eq!(cap, [2, 2, 2]);
        // p1 needs only one: the others split the rest.
        run([1, 4, 4], 8, &mut cap, 8 * 3 * 80);
        assert_eq!(cap, [1, 3, 2]);
        // p2 and p3 stop: p1 gets the whole amount once their demand is stale.
        run([6, 0, 0], 2, &mut cap, 16 * 3 * 80);
        let s = l.report(
            "p1",
            &LimiterReport {
                interval_ms: 250,
                demands: vec![LimiterDemand {
                    middleware: "if@file".into(),
                    key: "h".into(),
                    requests: 6,
                    limit: 6.0,
                    in_flight_limit: true,
                    in_flight: 6,
                    admitting: 6,
                }],
            },
            3,
            40_000,
        );
        assert!(close(s.shares[0].share, 1.0), "{s:?}");
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
        // Two more proxies on another control node: this node's proxies split 3/5 of it.
        l.set_counts(3, 5);
        let s = l.report("p1", &report("a", 75), 3, 5_000);
        assert!(close(s.shares[0].share, 0.6), "{s:?}");
        assert!(close(s.default_share, 0.2), "{s:?}");
        l.report("p2", &report("a", 75), 3, 5_000);
        let s = l.report("p1", &report("a", 75), 3, 5_000);
        assert!(close(s.shares[0].share, 0.3), "{s:?}");
        assert!(l.start_counting());
        assert!(!l.start_counting());
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
