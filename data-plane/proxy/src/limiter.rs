//! Cluster-wide rate limits, the proxy's side (`rateLimit` and `inFlightReq` with `scope:
//! cluster`; the design is in ARCHITECTURE.md, "Cluster-wide rate limits"). While attached to
//! a control node, the proxy reports every [`REPORT_INTERVAL`] how many requests each
//! cluster-scope `rateLimit` saw per source (each `inFlightReq`: the most wanted at once and
//! those in progress), and applies the shares the node answers with. Requests never wait for
//! this: each one is decided by the local token bucket (or in-flight count) at the share last
//! received. Without a
//! control node the shares stay as they were (sources never reported get the last default
//! share, `1 / proxies`), so every proxy keeps limiting to its part.

use std::sync::Arc;
use std::time::Duration;

use switchyard_proto::stream::proxy_message::Msg;
use switchyard_proto::stream::{LimiterDemand, LimiterReport, LimiterShares, ProxyMessage};
use tokio::sync::mpsc;

use crate::middlewares::Mw;
use crate::runtime::Runtime;
use crate::Proxy;

/// How often demand is reported.
pub const REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// The demand since the previous call, or `None` when there is no cluster-scope limit.
pub(crate) fn report(rt: &Runtime, interval: Duration) -> Option<LimiterReport> {
    if rt.cluster_limiters.is_empty() {
        return None;
    }
    let mut demands = Vec::new();
    for (name, m) in &rt.cluster_limiters {
        match &**m {
            Mw::RateLimit(r) => {
                let limit = r.rate.unwrap_or(0.0);
                for (key, requests) in r.take_demand() {
                    demands.push(LimiterDemand {
                        middleware: name.clone(),
                        key,
                        requests,
                        limit,
                        ..LimiterDemand::default()
                    });
                }
            }
            Mw::InFlightReq(c) => {
                let limit = c.amount as f64;
                for d in c.take_demand() {
                    demands.push(LimiterDemand {
                        middleware: name.clone(),
                        key: d.key,
                        requests: d.wanted,
                        limit,
                        in_flight_limit: true,
                        in_flight: d.in_flight,
                        admitting: d.admitting,
                    });
                }
            }
            _ => {}
        }
    }
    Some(LimiterReport {
        interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
        demands,
    })
}

/// Apply shares received from the control node.
pub(crate) fn apply(rt: &Runtime, s: &LimiterShares) {
    for (name, m) in &rt.cluster_limiters {
        let mine = s
            .shares
            .iter()
            .filter(|x| x.middleware == *name)
            .map(|x| (x.key.clone(), x.share));
        match &**m {
            Mw::RateLimit(r) => r.set_shares(s.default_share, mine),
            Mw::InFlightReq(c) => c.set_shares(mine),
            _ => {}
        }
    }
}

/// A new config version: its cluster-scope middlewares start from the shares of the
/// same-named ones of the previous version (none: as with proxy scope until the first answer).
pub(crate) fn inherit(old: &Runtime, new: &Runtime) {
    for (name, m) in &new.cluster_limiters {
        let Some((_, prev)) = old.cluster_limiters.iter().find(|(n, _)| n == name) else {
            continue;
        };
        match (&**m, &**prev) {
            (Mw::RateLimit(r), Mw::RateLimit(p)) => r.inherit(p),
            (Mw::InFlightReq(c), Mw::InFlightReq(p)) => c.inherit(p),
            _ => {}
        }
    }
}

/// Report demand on `tx` until the stream ends (the task is aborted with it).
pub(crate) async fn run(proxy: Proxy, tx: mpsc::Sender<ProxyMessage>) {
    let mut tick = tokio::time::interval(REPORT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        let rt: Arc<Runtime> = proxy.runtime();
        let Some(r) = report(&rt, now - last) else {
            last = now;
            continue;
        };
        last = now;
        let msg = ProxyMessage {
            msg: Some(Msg::LimiterReport(r)),
        };
        // A full channel (the stream is busy) drops this report; the next one counts from
        // here, so the node sees a lower demand for one period.
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(msg) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use switchyard_proto::stream::LimiterShare;

    /// Limiter traffic per proxy for one busy source (BENCHMARKS.md): a report and its answer,
    /// four times a second, plus gRPC (5 bytes) and HTTP/2 DATA (9 bytes) framing each.
    #[test]
    fn bytes_per_second_for_one_source() {
        let report = ProxyMessage {
            msg: Some(Msg::LimiterReport(LimiterReport {
                interval_ms: 250,
                demands: vec![LimiterDemand {
                    middleware: "api-limit".into(),
                    key: "203.0.113.7".into(),
                    requests: 60,
                    limit: 100.0,
                    ..LimiterDemand::default()
                }],
            })),
        };
        let shares = LimiterShares {
            default_share: 1.0 / 3.0,
            shares: vec![LimiterShare {
                middleware: "api-limit".into(),
                key: "203.0.113.7".into(),
                share: 1.0 / 3.0,
            }],
        };
        let up = report.encoded_len() + 14;
        // ConfigMessage: node_id (2) + limiter_shares field header (2) + the message.
        let down = shares.encoded_len() + 4 + 14;
        let per_sec = (up + down) * 4;
        eprintln!("limiter traffic: {up} B up, {down} B down per report, {per_sec} B/s");
        assert!(per_sec < 500, "{per_sec}");
    }
}
