//! `inFlightReq`: at most `amount` requests in progress per source (default: the request
//! host). A [`Slot`] counts one request until it is dropped (the proxy holds it until the
//! response body is finished, as Traefik counts until its handler returns).
//!
//! With `scope: cluster` (a Switchyard extension) `amount` holds for the sum of the proxies:
//! each proxy admits up to `max(1, round(share × amount))` requests per source at once,
//! where `share` is what its control node last gave it for the source (see ARCHITECTURE.md,
//! "Cluster-wide rate limits"), and the table notes the most requests each source wanted at
//! once so the proxy can report its demand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::ratelimit::{compile_source, Source, MAX_REPORTED, MAX_SOURCES};
use super::{FieldError, FieldErrors};
use crate::error::quote;
use crate::model::InFlightReq;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Requests in progress.
    n: i64,
    /// Cluster scope: the most requests wanted at once (in progress plus the one asking,
    /// admitted or not) since the last [`CompiledInFlight::take_demand`].
    peak: i64,
}

#[derive(Debug)]
struct State {
    /// Sources with requests in progress (and, with cluster scope, demand not reported yet).
    counts: HashMap<String, Entry>,
    /// Cluster scope: this proxy's share of `amount` per source.
    shares: HashMap<String, f64>,
    /// Cluster scope: the share of sources not in `shares`.
    default_share: f64,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A compiled `inFlightReq` with its counters (entries at zero are removed once reported,
/// so the table holds only sources with requests in progress or demand to report).
#[derive(Debug)]
pub struct CompiledInFlight {
    /// Most requests in progress per source (cluster-wide with `scope: cluster`).
    pub amount: i64,
    /// Grouping.
    pub source: Source,
    /// `scope: cluster`: `amount` holds for the sum of the proxies, each admitting the part
    /// its control node gives it.
    pub cluster: bool,
    state: Shared,
}

/// `max(1, round(share × amount))`, at most `amount` (0 when `amount` is 0).
fn slots(amount: i64, share: f64) -> i64 {
    if amount <= 0 {
        return 0;
    }
    ((share * amount as f64).round() as i64).clamp(1, amount)
}

/// Cluster scope: what a proxy reports of one source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Demand {
    /// Source key.
    pub key: String,
    /// The most requests wanted at once since the previous report (in progress plus the one
    /// asking, admitted or not).
    pub wanted: u64,
    /// Requests in progress now.
    pub in_flight: u64,
    /// This proxy's limit for the source now.
    pub admitting: u64,
}

/// One request in progress; released on drop.
#[derive(Debug)]
pub struct Slot {
    state: Shared,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        if let Some(e) = st.counts.get_mut(&self.key) {
            e.n -= 1;
            if e.n <= 0 && e.peak == 0 {
                st.counts.remove(&self.key);
            }
        }
    }
}

impl CompiledInFlight {
    /// This proxy's limit for `source`: `amount`, or with cluster scope its part of it (at
    /// least 1 while `amount` is not 0, so a proxy whose part rounds to nothing still serves).
    fn cap(&self, st: &State, source: &str) -> i64 {
        if !self.cluster {
            return self.amount;
        }
        slots(
            self.amount,
            st.shares.get(source).copied().unwrap_or(st.default_share),
        )
    }

    /// A slot for `source`, or `None` when this proxy's limit of its requests are in
    /// progress.
    pub fn acquire(&self, source: &str) -> Option<Slot> {
        let mut st = lock(&self.state);
        let cap = self.cap(&st, source);
        if self.cluster && st.counts.len() >= MAX_SOURCES && !st.counts.contains_key(source) {
            // Bounded memory: forget the demand of sources with nothing in progress.
            st.counts.retain(|_, e| e.n > 0);
        }
        if !st.counts.contains_key(source) {
            st.counts.insert(source.to_string(), Entry::default());
        }
        let e = st.counts.get_mut(source)?;
        if self.cluster {
            e.peak = e.peak.max(e.n + 1);
        }
        if e.n >= cap {
            if e.n == 0 && e.peak == 0 {
                st.counts.remove(source);
            }
            return None;
        }
        e.n += 1;
        Some(Slot {
            state: self.state.clone(),
            key: source.to_string(),
        })
    }

    /// Cluster scope: per source, the most requests wanted at once since the last call,
    /// those in progress now and this proxy's limit now (the [`MAX_REPORTED`] most wanted),
    /// and start again.
    pub fn take_demand(&self) -> Vec<Demand> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let mut out = Vec::new();
        let shares = &st.shares;
        let default_share = st.default_share;
        st.counts.retain(|k, e| {
            let wanted = e.peak.max(e.n);
            if wanted > 0 {
                let share = shares.get(k).copied().unwrap_or(default_share);
                out.push(Demand {
                    key: k.clone(),
                    wanted: wanted as u64,
                    in_flight: e.n.max(0) as u64,
                    admitting: slots(self.amount, share) as u64,
                });
            }
            e.peak = 0;
            e.n > 0
        });
        if out.len() > MAX_REPORTED {
            out.sort_unstable_by_key(|x| std::cmp::Reverse(x.wanted));
            out.truncate(MAX_REPORTED);
        }
        out
    }

    /// Cluster scope: the control node's answer to a report, this proxy's shares (0..1) of
    /// `amount` for the sources it reported. They replace the previous ones: any other
    /// source gets the minimum (one request at a time) until it is reported, so the node,
    /// which counts only what proxies report, never sees less than they admit by more than
    /// one request per proxy. (Before the first answer the proxy counts as with proxy scope.)
    pub fn set_shares(&self, shares: impl IntoIterator<Item = (String, f64)>) {
        let mut st = lock(&self.state);
        st.default_share = 0.0;
        st.shares.clear();
        for (k, v) in shares {
            if v.is_finite() && st.shares.len() < MAX_REPORTED {
                st.shares.insert(k, v.clamp(0.0, 1.0));
            }
        }
    }

    /// Cluster scope: start from the shares of `old`, the same middleware in the previous
    /// config version (counters start again, as with proxy scope), so a config change does
    /// not fall back to proxy-scope counting until the next answer.
    pub fn inherit(&self, old: &CompiledInFlight) {
        if !self.cluster || !old.cluster || std::ptr::eq(self, old) {
            return;
        }
        let (shares, default_share) = {
            let o = lock(&old.state);
            (o.shares.clone(), o.default_share)
        };
        let mut st = lock(&self.state);
        st.shares = shares;
        st.default_share = default_share;
    }

    /// This proxy's limit for `source` now (for diagnostics and tests).
    pub fn limit_for(&self, source: &str) -> i64 {
        self.cap(&lock(&self.state), source)
    }
}

/// Compile `inFlightReq`.
pub(crate) fn compile(r: &InFlightReq) -> Result<CompiledInFlight, FieldErrors> {
    let mut errs = FieldErrors::new();
    let amount = r.amount.unwrap_or(0);
    if amount < 0 {
        errs.push(FieldError::new(
            "inFlightReq.amount",
            format!("must be 0 or more, got {amount}"),
        ));
    }
    let cluster = match r.scope.as_str() {
        "" | "proxy" => false,
        "cluster" => true,
        other => {
            errs.push(FieldError::new(
                "inFlightReq.scope",
                format!("must be proxy or cluster, got {}", quote(other)),
            ));
            false
        }
    };
    let source = compile_source(
        "inFlightReq",
        r.source_criterion.as_ref(),
        Source::Host,
        &mut errs,
    );
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledInFlight {
        amount,
        source,
        cluster,
        state: Arc::new(Mutex::new(State {
            counts: HashMap::new(),
            shares: HashMap::new(),
            // Until the control node says otherwise, a proxy counts as with proxy scope.
            default_share: 1.0,
        })),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn inflight(amount: i64, scope: &str) -> CompiledInFlight {
        compile(&InFlightReq {
            amount: Some(amount),
            scope: scope.into(),
            ..InFlightReq::default()
        })
        .unwrap()
    }

    #[test]
    fn slots_count_and_release() {
        let c = inflight(2, "");
        assert!(!c.cluster);
        let a = c.acquire("h").unwrap();
        let b = c.acquire("h").unwrap();
        assert!(c.acquire("h").is_none());
        assert!(c.acquire("other").is_some());
        drop(a);
        let _c = c.acquire("h").unwrap();
        drop(b);
        drop(_c);
        assert!(lock(&c.state).counts.is_empty());
        assert!(c.take_demand().is_empty());
    }

    fn d(key: &str, wanted: u64, in_flight: u64, admitting: u64) -> Demand {
        Demand {
            key: key.into(),
            wanted,
            in_flight,
            admitting,
        }
    }

    #[test]
    fn cluster_shares_and_demand() {
        let c = inflight(6, "cluster");
        assert!(c.cluster);
        // Before any answer: the whole amount (as with proxy scope).
        let held: Vec<Slot> = (0..10).filter_map(|_| c.acquire("h")).collect();
        assert_eq!(held.len(), 6);
        // Wanted: 7 at once (6 in progress and one refused); 6 in progress.
        assert_eq!(c.take_demand(), vec![d("h", 7, 6, 6)]);
        drop(held);
        // Reported once more with nothing in progress, then forgotten.
        assert_eq!(c.take_demand(), vec![]);
        assert!(lock(&c.state).counts.is_empty());
        // A third of 6: two at once; a source not in the answer gets one at a time.
        c.set_shares([("h".to_string(), 1.0 / 3.0)]);
        assert_eq!(c.limit_for("h"), 2);
        let held: Vec<Slot> = (0..5).filter_map(|_| c.acquire("h")).collect();
        assert_eq!(held.len(), 2);
        assert_eq!(c.limit_for("new"), 1);
        let one = c.acquire("new").unwrap();
        assert!(c.acquire("new").is_none());
        let mut got = c.take_demand();
        got.sort();
        assert_eq!(got, vec![d("h", 3, 2, 2), d("new", 2, 1, 1)]);
        // Still in progress: reported as wanted even without new requests.
        assert_eq!(c.take_demand().len(), 2);
        // The next version of the middleware starts from these shares.
        let next = inflight(6, "cluster");
        next.inherit(&c);
        assert_eq!((next.limit_for("h"), next.limit_for("new")), (2, 1));
        // The next answer replaces the shares: "h" is not in it, so it gets the minimum.
        c.set_shares([("new".to_string(), 0.5)]);
        assert_eq!((c.limit_for("h"), c.limit_for("new")), (1, 3));
        drop(one);
        drop(held);
        assert_eq!(c.take_demand(), vec![]);
        // Shares are clamped; a share of 0 still admits one; amount 0 admits nothing.
        c.set_shares([("x".to_string(), 7.0), ("y".to_string(), 0.0)]);
        assert_eq!((c.limit_for("x"), c.limit_for("y")), (6, 1));
        assert!(inflight(0, "cluster").acquire("h").is_none());
        assert!(inflight(0, "proxy").acquire("h").is_none());
    }

    #[test]
    fn bad_options() {
        let e = compile(&InFlightReq {
            amount: Some(-1),
            scope: "global".into(),
            ..InFlightReq::default()
        })
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["inFlightReq.amount", "inFlightReq.scope"]);
        assert!(e.iter().any(|e| e.message.contains("\"global\"")), "{e:?}");
    }
}
