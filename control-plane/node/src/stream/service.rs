use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::Stream;
use opentelemetry::trace::{Span as _, SpanKind};
use opentelemetry::KeyValue;
use switchyard_config::{delta, DynamicConfig};
use switchyard_proto::admin::ProxyStatus;
use switchyard_proto::stream::config_message::Body;
use switchyard_proto::stream::config_stream_server::ConfigStream;
use switchyard_proto::stream::proxy_message::Msg;
use switchyard_proto::stream::{ConfigMessage, Delta, ProxyMessage, ResourceChange, Snapshot};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::shared::Shared;

pub struct StreamService {
    shared: Arc<Shared>,
    /// Cluster-scope rate limits of the proxies attached here.
    limiter: Arc<super::limiter::Limiter>,
}

impl StreamService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            limiter: Arc::default(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The message that brings a proxy holding `from` (with config `base`, when known) to `cfg` at
/// `version`: a delta ([`switchyard_config::delta`]) when one says it exactly, else a snapshot.
pub fn message_for(
    node_id: u64,
    from: u64,
    base: Option<&DynamicConfig>,
    version: u64,
    cfg: &DynamicConfig,
) -> Result<ConfigMessage, Status> {
    if let Some(changes) = base
        .filter(|_| from > 0)
        .and_then(|base| delta::encode(base, cfg))
    {
        return Ok(ConfigMessage {
            version,
            node_id,
            body: Some(Body::Delta(Delta {
                base_version: from,
                changes: changes
                    .iter()
                    .map(|c| ResourceChange {
                        kind: c.kind.as_str().to_string(),
                        name: c.name.clone(),
                        json: c.json(),
                    })
                    .collect(),
            })),
            certificate: None,
            limiter_shares: None,
            traceparent: String::new(),
        });
    }
    let config_json = serde_json::to_string(cfg).map_err(|e| Status::internal(e.to_string()))?;
    Ok(ConfigMessage {
        version,
        node_id,
        body: Some(Body::Snapshot(Snapshot { config_json })),
        certificate: None,
        limiter_shares: None,
        traceparent: String::new(),
    })
}

/// The highest versions a proxy ACKed and NACKed on this stream.
#[derive(Debug, Clone, Copy)]
struct Replies {
    acked: u64,
    nacked: u64,
}

/// Where the sender stands with one proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SendState {
    /// The version the proxy holds, as far as this node knows (its Hello, then its ACKs): the
    /// base of the next delta.
    pub held: u64,
    /// Nothing at or below this version is sent (it was sent already, or the proxy holds newer).
    pub floor: u64,
    /// The version sent and not answered yet. One message is in flight at a time: every
    /// message is built from a version the proxy is known to hold, so a refused version is
    /// never the base of the next one, and pushes coalesce to the newest version.
    pub in_flight: Option<u64>,
}

impl SendState {
    pub(crate) fn new(hello_version: u64) -> Self {
        Self {
            held: hello_version,
            floor: hello_version,
            in_flight: None,
        }
    }

    /// Takes the proxy's answers into account (highest ACKed and NACKed versions so far).
    pub(crate) fn on_replies(&mut self, acked: u64, nacked: u64) {
        if acked > self.held {
            self.held = acked;
            self.floor = self.floor.max(acked);
        }
        if let Some(v) = self.in_flight {
            if acked >= v || nacked >= v {
                // ACKed: `held` moved. NACKed: the proxy kept `held`; `floor` stays at `v` so the
                // refused version is not sent again, and the next one starts from `held`.
                self.in_flight = None;
            }
        }
    }

    /// The (from, to) of the message to send now for `applied`, if any; marks it in flight.
    pub(crate) fn next(&mut self, applied: u64) -> Option<(u64, u64)> {
        if self.in_flight.is_some() || applied <= self.floor {
            return None;
        }
        self.in_flight = Some(applied);
        self.floor = applied;
        Some((self.held, applied))
    }
}

/// Sends the proxy one version at a time, always the newest applied one, each built from the
/// version the proxy holds (see [`SendState`]).
async fn send_versions(
    shared: Arc<Shared>,
    proxy_id: String,
    (region, zone, cluster): (String, String, String),
    hello_version: u64,
    tx: mpsc::Sender<Result<ConfigMessage, Status>>,
    mut replies: watch::Receiver<Replies>,
) {
    let mut applied = shared.applied.clone();
    let mut st = SendState::new(hello_version);
    loop {
        {
            let r = *replies.borrow_and_update();
            st.on_replies(r.acked, r.nacked);
        }
        // During a rollout, the version this proxy's stage allows (see `ClusterState::config_for`);
        // the change's trace travels with the version it made.
        let (version, cfg, trace) = {
            let a = applied.borrow_and_update();
            let place = switchyard_store::Place {
                region: &region,
                zone: &zone,
                cluster: &cluster,
            };
            let (version, cfg) = a.state.config_for(place);
            let trace = (version == a.state.config_version)
                .then(|| a.state.config_trace.clone())
                .flatten();
            (version, cfg.clone(), trace)
        };
        if let Some((from, to)) = st.next(version) {
            let mut span = send_span(&shared, &proxy_id, from, to, trace.as_deref());
            let msg = shared
                .history
                .message(shared.id, &cluster, from, to, &cfg)
                .map(|m| {
                    let mut m = ConfigMessage::clone(&m);
                    if let Some(tp) = span
                        .as_ref()
                        .and_then(|s| switchyard_otel::traceparent(s.span_context()))
                    {
                        m.traceparent = tp;
                    }
                    m
                });
            if let (Some(s), Ok(m)) = (&mut span, &msg) {
                let kind = match m.body {
                    Some(Body::Delta(_)) => "delta",
                    _ => "snapshot",
                };
                s.set_attribute(KeyValue::new("switchyard.config.message", kind));
            }
            let failed = msg.is_err();
            let sent = tx.send(msg).await.is_ok();
            if let Some(mut s) = span {
                if failed || !sent {
                    s.set_status(opentelemetry::trace::Status::error("not sent"));
                }
                s.end();
            }
            if !sent || failed {
                return;
            }
            continue;
        }
        tokio::select! {
            r = applied.changed() => if r.is_err() {
                let _ = tx
                    .send(Err(Status::unavailable("control node shutting down")))
                    .await;
                return;
            },
            r = replies.changed() => if r.is_err() {
                return;
            },
        }
    }
}

/// The span of sending version `to` (from `from`) to a proxy, in the trace of the change that
/// made it (`trace`: from the Raft entry), when this node traces and the change was traced.
fn send_span(
    shared: &Shared,
    proxy_id: &str,
    from: u64,
    to: u64,
    trace: Option<&str>,
) -> Option<switchyard_otel::Span> {
    let tracer = shared.tracer.as_ref()?;
    let parent = crate::trace::remote(trace?)?;
    Some(tracer.child(
        crate::trace::STREAM_SEND,
        SpanKind::Producer,
        &parent,
        vec![
            KeyValue::new("switchyard.node.id", shared.id as i64),
            KeyValue::new("switchyard.proxy.id", proxy_id.to_string()),
            KeyValue::new("switchyard.config.version", to as i64),
            KeyValue::new("switchyard.config.base_version", from as i64),
        ],
    ))
}

/// Cluster-scope rate limits: refresh the count of proxies attached here and cluster-wide
/// (each node's part of a limit) every 2 s, for the node's lifetime.
async fn count_proxies(shared: Arc<Shared>, limiter: Arc<super::limiter::Limiter>) {
    loop {
        let svc = crate::admin::AdminService::new(shared.clone());
        let all = svc.cluster_proxies(shared.proxies.list()).await;
        limiter.set_counts(shared.proxies.len(), all.proxies.len());
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

type OutStream = Pin<Box<dyn Stream<Item = Result<ConfigMessage, Status>> + Send>>;

#[tonic::async_trait]
impl ConfigStream for StreamService {
    type StreamStream = OutStream;

    async fn stream(
        &self,
        req: Request<Streaming<ProxyMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        // Secure mode: the TLS layer verified the chain against the cluster CA; the certificate
        // must also name the proxy that says Hello.
        let cert_proxy = if self.shared.opts.insecure {
            None
        } else {
            let certs = req.peer_certs();
            let first = certs.as_ref().and_then(|c| c.first());
            match first.and_then(|c| crate::security::proxy_id_of(c.as_ref())) {
                Some(id) => Some(id),
                None => {
                    return Err(Status::unauthenticated(
                        "the config stream needs a proxy client certificate issued by the cluster CA (switchyard-proxy --join-token)",
                    ))
                }
            }
        };
        let mut inbound = req.into_inner();
        let hello = match inbound.message().await? {
            Some(ProxyMessage {
                msg: Some(Msg::Hello(h)),
            }) => h,
            _ => return Err(Status::invalid_argument("the first message must be Hello")),
        };
        if hello.proxy_id.trim().is_empty() {
            return Err(Status::invalid_argument(
                "hello: proxy_id must not be empty",
            ));
        }
        if let Some(id) = &cert_proxy {
            if *id != hello.proxy_id {
                return Err(Status::permission_denied(format!(
                    "client certificate is for proxy {id:?}, not {:?}",
                    hello.proxy_id
                )));
            }
        }
        let cluster = if hello.cluster.is_empty() {
            switchyard_config::scope::DEFAULT_CLUSTER.to_string()
        } else {
            hello.cluster.clone()
        };
        if let Some(p) = switchyard_config::scope::cluster_name_problem(&cluster) {
            return Err(Status::invalid_argument(format!("hello: {p}")));
        }
        let shared = self.shared.clone();
        let proxy_id = hello.proxy_id.clone();
        let conn = shared.proxies.attach(ProxyStatus {
            proxy_id: proxy_id.clone(),
            region: hello.region.clone(),
            zone: hello.zone.clone(),
            labels: hello.labels.clone(),
            node_id: shared.id,
            applied_version: hello.version,
            last_nack_version: 0,
            last_nack_error: String::new(),
            connected_since_unix_ms: now_ms(),
            peer,
            build: hello.build.clone(),
            entrypoints: hello.entrypoints.clone(),
            cluster: cluster.clone(),
            version_counters: Vec::new(),
        });
        tracing::info!(proxy = %proxy_id, version = hello.version, "proxy attached");

        let (tx, rx) = mpsc::channel::<Result<ConfigMessage, Status>>(2);
        let cert_tx = tx.clone();
        let limiter = self.limiter.clone();
        // What the proxy answered last (highest ACKed and NACKed versions), for the sender.
        let (replies_tx, replies) = watch::channel(Replies {
            acked: hello.version,
            nacked: 0,
        });
        let sender = tokio::spawn(send_versions(
            shared.clone(),
            proxy_id.clone(),
            (hello.region.clone(), hello.zone.clone(), cluster),
            hello.version,
            tx,
            replies,
        ));
        // Receiver: ACKs and NACKs; the stream's end detaches the proxy.
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(ProxyMessage {
                        msg: Some(Msg::Ack(a)),
                    })) => {
                        shared.proxies.update(&proxy_id, conn, |s| {
                            s.applied_version = s.applied_version.max(a.version)
                        });
                        replies_tx.send_modify(|r| r.acked = r.acked.max(a.version));
                    }
                    Ok(Some(ProxyMessage {
                        msg: Some(Msg::Nack(n)),
                    })) => {
                        tracing::warn!(proxy = %proxy_id, version = n.version, error = %n.error, "proxy refused a config version");
                        shared.proxies.update(&proxy_id, conn, |s| {
                            s.last_nack_version = n.version;
                            s.last_nack_error = n.error.clone();
                        });
                        replies_tx.send_modify(|r| r.nacked = r.nacked.max(n.version));
                    }
                    Ok(Some(ProxyMessage {
                        msg: Some(Msg::Renew(r)),
                    })) => {
                        if shared.opts.insecure {
                            continue;
                        }
                        let msg =
                            crate::admin::issue_for_proxy(&shared, &proxy_id, &r.public_key_pem)
                                .map(|cert| ConfigMessage {
                                    version: 0,
                                    node_id: shared.id,
                                    body: None,
                                    certificate: Some(cert),
                                    limiter_shares: None,
                                    traceparent: String::new(),
                                })
                                .map_err(Status::from);
                        if let Err(e) = &msg {
                            tracing::warn!(proxy = %proxy_id, error = %e, "certificate renewal refused");
                        }
                        if cert_tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(ProxyMessage {
                        msg: Some(Msg::LimiterReport(r)),
                    })) => {
                        if limiter.start_counting() {
                            tokio::spawn(count_proxies(shared.clone(), limiter.clone()));
                        }
                        let shares = limiter.report(&proxy_id, &r, shared.proxies.len(), now_ms());
                        let msg = ConfigMessage {
                            version: 0,
                            node_id: shared.id,
                            body: None,
                            certificate: None,
                            limiter_shares: Some(shares),
                            traceparent: String::new(),
                        };
                        // Never wait on a slow proxy for this: a share missed is sent again
                        // in answer to the next report.
                        let _ = cert_tx.try_send(Ok(msg));
                    }
                    Ok(Some(ProxyMessage {
                        msg: Some(Msg::VersionReport(r)),
                    })) => {
                        // Bounded: the proxy reports a few versions, each a fixed histogram.
                        let mut versions = r.versions;
                        versions.truncate(8);
                        for v in &mut versions {
                            v.latency_buckets
                                .truncate(switchyard_proto::latency::BUCKETS);
                        }
                        shared
                            .proxies
                            .update(&proxy_id, conn, |s| s.version_counters = versions);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            limiter.detach(&proxy_id);
            sender.abort();
            shared.proxies.detach(&proxy_id, conn);
            tracing::info!(proxy = %proxy_id, "proxy detached");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_config::parse_document;

    fn cfg(extra_router: bool) -> DynamicConfig {
        let mut doc = String::from("http:\n  routers:\n    a: {rule: \"Host(`a`)\", service: s}\n");
        if extra_router {
            doc.push_str("    b: {rule: \"Host(`b`)\", service: s}\n");
        }
        doc.push_str(
            "  services:\n    s: {loadBalancer: {servers: [{url: \"http://127.0.0.1:1\"}]}}\n",
        );
        parse_document(&doc).expect("valid")
    }

    #[test]
    fn delta_when_base_known_snapshot_otherwise() {
        let old = cfg(false);
        let new = cfg(true);
        let m = message_for(1, 5, Some(&old), 7, &new).expect("message");
        match m.body {
            Some(Body::Delta(d)) => {
                assert_eq!(d.base_version, 5);
                assert_eq!(d.changes.len(), 1);
                assert_eq!(d.changes[0].kind, "router");
                assert_eq!(d.changes[0].name, "b");
                assert!(d.changes[0].json.contains("Host(`b`)"));
            }
            other => panic!("expected a delta, got {other:?}"),
        }
        let back = message_for(1, 7, Some(&new), 9, &old).expect("message");
        match back.body {
            Some(Body::Delta(d)) => assert_eq!(d.changes[0].json, ""),
            other => panic!("expected a delta, got {other:?}"),
        }
        let snap = message_for(1, 5, None, 7, &new).expect("message");
        assert!(matches!(snap.body, Some(Body::Snapshot(_))));
        let fresh = message_for(1, 0, Some(&old), 7, &new).expect("message");
        assert!(matches!(fresh.body, Some(Body::Snapshot(_))));
    }

    #[test]
    fn one_message_in_flight_and_a_nack_never_becomes_a_base() {
        let mut st = SendState::new(5);
        assert_eq!(st.next(5), None, "nothing newer than what the proxy holds");
        assert_eq!(st.next(6), Some((5, 6)));
        assert_eq!(st.next(7), None, "v6 is in flight");
        st.on_replies(6, 0);
        assert_eq!(st.next(7), Some((6, 7)));
        // v7 refused: v7 is not sent again, v8 starts from v6.
        st.on_replies(6, 7);
        assert_eq!(st.next(7), None);
        assert_eq!(st.next(8), Some((6, 8)));
        // Pushes coalesce: while v8 is in flight, v9 and v10 land; v10 is next.
        assert_eq!(st.next(10), None);
        st.on_replies(8, 7);
        assert_eq!(st.next(10), Some((8, 10)));
        st.on_replies(10, 7);
        assert_eq!(st.held, 10);
        assert_eq!(st.in_flight, None);
    }

    #[test]
    fn a_fresh_proxy_starts_from_a_snapshot_base() {
        let mut st = SendState::new(0);
        assert_eq!(st.next(3), Some((0, 3)));
        st.on_replies(0, 3);
        assert_eq!(
            st.next(4),
            Some((0, 4)),
            "still nothing held: from 0 (a snapshot)"
        );
    }
}
