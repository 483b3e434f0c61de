//! `rateLimit`: a token bucket per source (Traefik's `x/time/rate`
//! limiter: `average / period` tokens per second, `burst` at most), keyed by the
//! `sourceCriterion` (client address by `ipStrategy`, a request header, or the host).
//!
//! The table is pure: the caller passes the time. A bucket that has refilled to `burst` is
//! the same as a fresh one, so when the table is full such buckets are dropped: memory stays
//! bounded by the number of sources active within `burst / rate` seconds, at most
//! [`MAX_SOURCES`] (beyond that, the oldest-refilled half is dropped, which can only let a
//! source through sooner).
//!
//! With `scope: cluster` (a Switchyard extension) each bucket fills at `share × rate` (burst
//! `share × burst`, at least 1), where `share` is what the proxy's control node last gave
//! it for the source (see ARCHITECTURE.md, "Cluster-wide rate limits"); the table counts
//! the requests each source wanted so the proxy can report its demand.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::HeaderName;

use super::ip::Strategy;
use super::{FieldError, FieldErrors};
use crate::error::quote;
use crate::model::{RateLimit, SourceCriterion};

/// Most sources tracked per middleware.
pub const MAX_SOURCES: usize = 65_536;

/// What requests are grouped by.
#[derive(Debug, Clone)]
pub enum Source {
    /// The client address (an IP strategy).
    Ip(Strategy),
    /// A request header's value.
    Header(HeaderName),
    /// The request host.
    Host,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Requests seen (allowed or not) since the last [`CompiledRateLimit::take_demand`].
    wanted: u64,
}

/// Most sources reported (and given a share) per cluster-scope middleware.
pub const MAX_REPORTED: usize = 1000;

#[derive(Debug)]
struct Table {
    buckets: HashMap<String, Bucket>,
    /// Cluster scope: this proxy's share of the limit per source.
    shares: HashMap<String, f64>,
    /// Cluster scope: the share of sources not in `shares`.
    default_share: f64,
}

/// A compiled `rateLimit` with its buckets.
#[derive(Debug)]
pub struct CompiledRateLimit {
    /// Tokens per second (`None`: no limit, `average` 0).
    pub rate: Option<f64>,
    /// Bucket size.
    pub burst: f64,
    /// Longest wait Traefik would sleep for instead of refusing.
    pub max_delay: Duration,
    /// Grouping.
    pub source: Source,
    /// `scope: cluster`: the limit holds for the sum of the proxies, each using the share
    /// its control node gives it.
    pub cluster: bool,
    table: Mutex<Table>,
}

impl CompiledRateLimit {
    /// Take a token for `source` at `now`. `Ok(())`: allowed (Traefik would delay it by up to
    /// `max_delay`; the token is taken from the future all the same, so the long-run rate
    /// holds). `Err(delay)`: refused, a token is available in `delay`.
    pub fn reserve(&self, source: &str, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let mut table = self.lock();
        // Cluster scope: this proxy's part of the limit, with the delay Traefik allows at
        // that rate (so the part is used whole even when requests arrive unevenly).
        let (rate, burst, max_delay) = if self.cluster {
            let share = table
                .shares
                .get(source)
                .copied()
                .unwrap_or(table.default_share);
            let local = rate * share;
            (local, (self.burst * share).max(1.0), max_delay_for(local))
        } else {
            (rate, self.burst, self.max_delay)
        };
        if rate <= 0.0 {
            return Err(Duration::from_secs(1));
        }
        let map = &mut table.buckets;
        if let Some(b) = map.get_mut(source) {
            return take(b, now, rate, burst, max_delay);
        }
        if map.len() >= MAX_SOURCES {
            let full_after = Duration::from_secs_f64(burst / rate);
            map.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
            if map.len() >= MAX_SOURCES {
                let mut ats: Vec<Instant> = map.values().map(|b| b.at).collect();
                ats.sort_unstable();
                let cut = ats[ats.len() / 2];
                map.retain(|_, b| b.at > cut);
            }
        }
        let b = map.entry(source.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
            wanted: 0,
        });
        take(b, now, rate, burst, max_delay)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Cluster scope: the requests seen per source since the last call (the busiest
    /// [`MAX_REPORTED`]), and start counting again.
    pub fn take_demand(&self) -> Vec<(String, u64)> {
        let mut table = self.lock();
        let mut out: Vec<(String, u64)> = table
            .buckets
            .iter_mut()
            .filter(|(_, b)| b.wanted > 0)
            .map(|(k, b)| (k.clone(), std::mem::take(&mut b.wanted)))
            .collect();
        if out.len() > MAX_REPORTED {
            out.sort_unstable_by_key(|x| std::cmp::Reverse(x.1));
            out.truncate(MAX_REPORTED);
        }
        out
    }

    /// Cluster scope: this proxy's shares (0..1) of the limit, per source, and for the
    /// others. Sources not listed keep the share they had until the default applies to them
    /// (they are dropped when the table is full or when listed anew).
    pub fn set_shares(&self, default_share: f64, shares: impl IntoIterator<Item = (String, f64)>) {
        let mut table = self.lock();
        if default_share.is_finite() {
            table.default_share = default_share.clamp(0.0, 1.0);
        }
        for (k, v) in shares {
            if !v.is_finite() {
                continue;
            }
            if table.shares.len() >= MAX_SOURCES && !table.shares.contains_key(&k) {
                table.shares.clear();
            }
            table.shares.insert(k, v.clamp(0.0, 1.0));
        }
    }

    /// Cluster scope: start from the shares of `old`, the same middleware in the previous
    /// config version (the buckets start again, as with proxy scope), so a config change
    /// does not fall back to the whole limit until the next answer.
    pub fn inherit(&self, old: &CompiledRateLimit) {
        if !self.cluster || !old.cluster || std::ptr::eq(self, old) {
            return;
        }
        let (shares, default_share) = {
            let o = old.lock();
            (o.shares.clone(), o.default_share)
        };
        let mut t = self.lock();
        t.shares = shares;
        t.default_share = default_share;
    }

    /// Cluster scope: the share of a source (for diagnostics and tests).
    pub fn share(&self, source: &str) -> f64 {
        let t = self.lock();
        t.shares.get(source).copied().unwrap_or(t.default_share)
    }
}

/// Take a token from `b` at `now` (see [`CompiledRateLimit::reserve`]).
fn take(
    b: &mut Bucket,
    now: Instant,
    rate: f64,
    burst: f64,
    max_delay: Duration,
) -> Result<(), Duration> {
    b.wanted += 1;
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    let tokens = (b.tokens + elapsed * rate).min(burst) - 1.0;
    let delay = if tokens >= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(-tokens / rate)
    };
    if delay > max_delay {
        return Err(delay);
    }
    b.tokens = tokens;
    b.at = now.max(b.at);
    Ok(())
}

/// Traefik's longest delay for a rate (requests per second).
fn max_delay_for(rate: f64) -> Duration {
    if rate < 1.0 {
        Duration::from_millis(500)
    } else {
        // Go: time.Second / (time.Duration(rtl) * 2), integer division.
        Duration::from_nanos(1_000_000_000 / ((rate as u64).max(1) * 2))
    }
}

/// Compile a `sourceCriterion` (`kind` is the middleware kind; `default` applies when none
/// is set).
pub(crate) fn compile_source(
    kind: &str,
    sc: Option<&SourceCriterion>,
    default: Source,
    errs: &mut FieldErrors,
) -> Source {
    let Some(sc) = sc else {
        return default;
    };
    let set = usize::from(sc.ip_strategy.is_some())
        + usize::from(!sc.request_header_name.is_empty())
        + usize::from(sc.request_host.unwrap_or(false));
    if set > 1 {
        errs.push(FieldError::new(
            format!("{kind}.sourceCriterion"),
            "ipStrategy, requestHeaderName and requestHost are mutually exclusive",
        ));
    }
    if sc.ip_strategy.is_some() {
        Source::Ip(Strategy::compile(
            &format!("{kind}.sourceCriterion.ipStrategy"),
            sc.ip_strategy.as_ref(),
            errs,
        ))
    } else if !sc.request_header_name.is_empty() {
        match HeaderName::from_bytes(sc.request_header_name.as_bytes()) {
            Ok(n) => Source::Header(n),
            Err(_) => {
                errs.push(FieldError::new(
                    format!("{kind}.sourceCriterion.requestHeaderName"),
                    format!("invalid header name {}", quote(&sc.request_header_name)),
                ));
                default
            }
        }
    } else if sc.request_host.unwrap_or(false) {
        Source::Host
    } else {
        default
    }
}

/// Compile `rateLimit`.
pub(crate) fn compile(r: &RateLimit) -> Result<CompiledRateLimit, FieldErrors> {
    let mut errs = FieldErrors::new();
    if r.redis.is_some() {
        errs.push(FieldError::new(
            "rateLimit.redis",
            "is not supported by this version of Switchyard",
        ));
    }
    let average = r.average.unwrap_or(0);
    if average < 0 {
        errs.push(FieldError::new(
            "rateLimit.average",
            format!("must be 0 or more, got {average}"),
        ));
    }
    let burst = r.burst.unwrap_or(1);
    if burst < 0 {
        errs.push(FieldError::new(
            "rateLimit.burst",
            format!("must be 0 or more, got {burst}"),
        ));
    }
    let period = match &r.period {
        None => Duration::from_secs(1),
        Some(p) => match p.as_nanos() {
            Ok(0) => Duration::from_secs(1),
            Ok(n) if n > 0 => Duration::from_nanos(n as u64),
            Ok(_) => {
                errs.push(FieldError::new(
                    "rateLimit.period",
                    format!("must not be negative, got {}", quote(&p.to_string())),
                ));
                Duration::from_secs(1)
            }
            Err(e) => {
                errs.push(FieldError::new("rateLimit.period", e));
                Duration::from_secs(1)
            }
        },
    };
    let rate = (average > 0).then(|| average as f64 / period.as_secs_f64());
    let max_delay = rate.map_or(Duration::ZERO, max_delay_for);
    let cluster = match r.scope.as_str() {
        "" | "proxy" => false,
        "cluster" => true,
        other => {
            errs.push(FieldError::new(
                "rateLimit.scope",
                format!("must be proxy or cluster, got {}", quote(other)),
            ));
            false
        }
    };
    let source = compile_source(
        "rateLimit",
        r.source_criterion.as_ref(),
        Source::Ip(Strategy::default()),
        &mut errs,
    );
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledRateLimit {
        rate,
        burst: burst.max(1) as f64,
        max_delay,
        source,
        cluster,
        table: Mutex::new(Table {
            buckets: HashMap::new(),
            shares: HashMap::new(),
            // Until the control node says otherwise, a proxy limits as with proxy scope.
            default_share: 1.0,
        }),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::duration::Duration as CfgDuration;

    fn rl(average: i64, period: &str, burst: i64) -> CompiledRateLimit {
        compile(&RateLimit {
            average: Some(average),
            period: Some(CfgDuration::from_str_value(period)),
            burst: Some(burst),
            ..RateLimit::default()
        })
        .unwrap()
    }

    #[test]
    fn token_bucket() {
        let t0 = Instant::now();
        // 10/s, burst 3: three at once, the fourth waits 100ms > maxDelay (50ms).
        let l = rl(10, "1s", 3);
        assert_eq!(l.max_delay, Duration::from_millis(50));
        for _ in 0..3 {
            assert_eq!(l.reserve("a", t0), Ok(()));
        }
        let d = l.reserve("a", t0).unwrap_err();
        assert!((d.as_secs_f64() - 0.1).abs() < 1e-6, "{d:?}");
        // Another source has its own bucket.
        assert_eq!(l.reserve("b", t0), Ok(()));
        // 60ms later: 0.6 token; the next is 40ms away, within maxDelay: allowed.
        assert_eq!(l.reserve("a", t0 + Duration::from_millis(60)), Ok(()));
        assert!(l.reserve("a", t0 + Duration::from_millis(61)).is_err());
        // Long after: refilled to burst, not beyond.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(l.reserve("a", later), Ok(()));
        }
        assert!(l.reserve("a", later).is_err());
    }

    #[test]
    fn slow_rates_and_no_limit() {
        let t0 = Instant::now();
        // 1 per minute: maxDelay 500ms.
        let l = rl(1, "1m", 1);
        assert_eq!(l.max_delay, Duration::from_millis(500));
        assert_eq!(l.reserve("a", t0), Ok(()));
        let d = l.reserve("a", t0).unwrap_err();
        assert_eq!(d.as_secs(), 60);
        let l = rl(0, "1s", 1);
        for _ in 0..1000 {
            assert_eq!(l.reserve("a", t0), Ok(()));
        }
    }

    #[test]
    fn cluster_shares() {
        let t0 = Instant::now();
        let mut r = RateLimit {
            average: Some(100),
            burst: Some(10),
            scope: "cluster".into(),
            ..RateLimit::default()
        };
        let l = compile(&r).unwrap();
        assert!(l.cluster);
        // Before any share: the whole limit (burst 10 at once).
        assert_eq!((0..20).filter(|_| l.reserve("a", t0).is_ok()).count(), 10);
        assert_eq!(l.take_demand(), vec![("a".to_string(), 20)]);
        assert_eq!(l.take_demand(), vec![]);
        // A third of the limit: over 10 s, about 333 requests (and the burst of 3.3).
        l.set_shares(0.5, [("a".to_string(), 1.0 / 3.0)]);
        let t1 = t0 + Duration::from_secs(10);
        let mut passed = 0;
        for ms in 0..10_000u64 {
            let t = t1 + Duration::from_millis(ms);
            passed += (0..3).filter(|_| l.reserve("a", t).is_ok()).count();
        }
        assert!((330..=345).contains(&passed), "{passed}");
        // Unknown sources get the default share; a zero share refuses.
        assert_eq!(l.share("b"), 0.5);
        // The next version of the middleware starts from these shares.
        let next = compile(&r).unwrap();
        next.inherit(&l);
        assert_eq!((next.share("a"), next.share("b")), (1.0 / 3.0, 0.5));
        l.set_shares(0.0, [("a".to_string(), 0.0)]);
        assert!(l.reserve("a", t1 + Duration::from_secs(20)).is_err());
        assert!(l.reserve("c", t1 + Duration::from_secs(20)).is_err());
        r.scope = "proxy".into();
        assert!(!compile(&r).unwrap().cluster);
    }

    #[test]
    fn bounded_memory() {
        let t0 = Instant::now();
        let l = rl(1, "1s", 1);
        for i in 0..(MAX_SOURCES + 10) {
            let _ = l.reserve(&i.to_string(), t0 + Duration::from_secs(i as u64 / 1000));
        }
        assert!(l.table.lock().unwrap().buckets.len() <= MAX_SOURCES);
    }

    #[test]
    fn bad_options() {
        let e = compile(&RateLimit {
            average: Some(-1),
            burst: Some(-2),
            period: Some(CfgDuration::from_str_value("-1s")),
            source_criterion: Some(crate::model::SourceCriterion {
                request_header_name: "X-A".into(),
                request_host: Some(true),
                ..Default::default()
            }),
            redis: Some(serde_json::json!({})),
            scope: "global".into(),
        })
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rateLimit.redis",
                "rateLimit.average",
                "rateLimit.burst",
                "rateLimit.period",
                "rateLimit.scope",
                "rateLimit.sourceCriterion"
            ]
        );
    }
}
