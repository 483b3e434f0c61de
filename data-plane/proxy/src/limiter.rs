//! Cluster-wide rate limits, the proxy's side (`rateLimit` with `scope: cluster`; the design
//! is in ARCHITECTURE.md, "Cluster-wide rate limits"). While attached to a control node, the
//! proxy reports every [`REPORT_INTERVAL`] how many requests each cluster-scope middleware saw
//! per source, and applies the shares the node answers with. Requests never wait for this:
//! each one is decided by the local token bucket at the share last received. Without a
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
        let Mw::RateLimit(r) = &**m else { continue };
        let limit = r.rate.unwrap_or(0.0);
        for (key, requests) in r.take_demand() {
            demands.push(LimiterDemand {
                middleware: name.clone(),
                key,
                requests,
                limit,
            });
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
        let Mw::RateLimit(r) = &**m else { continue };
        r.set_shares(
            s.default_share,
            s.shares
                .iter()
                .filter(|x| x.middleware == *name)
                .map(|x| (x.key.clone(), x.share)),
        );
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
