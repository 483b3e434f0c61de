//! The config stream client: keeps the proxy attached to a control node and applies every version
//! it is sent.
//!
//! - **Which node.** Candidates are the `--control` URLs plus every node the cluster reports
//!   (`ClusterStatus`, refreshed on each attach), ordered: same region and zone, same region, the
//!   rest. The proxy attaches to the first that answers.
//! - **Failover.** When the stream ends or fails, the proxy moves to the next candidate after a
//!   short jittered backoff (first retry within ~100 ms, growing to 5 s while nothing answers;
//!   reset once a stream has been up for 10 s). HTTP/2 keep-alives (1 s) detect a node that hangs
//!   without closing the connection.
//! - **Serving meanwhile.** Nothing here is on the request path: the proxy keeps serving its last
//!   applied version, indefinitely if every node is gone. `/readyz` says which state it is in.
//! - **Versions.** `Hello` carries the version the proxy holds; a node sends a delta from it when
//!   it can, else a snapshot, and never an older version. Each applied version is ACKed, a refused
//!   one NACKed with the compile error; it is also written to `--cache-dir` when set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use switchyard_config::delta::{self, DeltaChange};
use switchyard_config::DynamicConfig;
use switchyard_proto::admin::admin_client::AdminClient;
use switchyard_proto::admin::ClusterStatusRequest;
use switchyard_proto::stream::config_message::Body;
use switchyard_proto::stream::config_stream_client::ConfigStreamClient;
use switchyard_proto::stream::proxy_message::Msg;
use switchyard_proto::stream::{Ack, ConfigMessage, Hello, Nack, ProxyMessage, RenewCertificate};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::cache::Cache;
use crate::control_tls::{self, ControlTls};
use crate::Proxy;

/// How the proxy finds and identifies itself to the control plane.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// `--control` URLs, in the operator's order.
    pub endpoints: Vec<String>,
    /// Labels sent in `Hello` (for `apply --wait-selector`).
    pub labels: BTreeMap<String, String>,
    /// The proxy cluster served (`--cluster`), sent in `Hello`: the control plane sends only
    /// what this cluster serves (`switchyard_config::scope`).
    pub cluster: String,
    /// Entry point names, reported to the control plane.
    pub entrypoints: Vec<String>,
    /// `--cache-dir`, when set.
    pub cache: Option<Cache>,
    /// Secure mode (`--ca-cert` + `--join-token`): TLS to the nodes and a client certificate for the
    /// stream. `None`: plaintext (`--insecure`).
    pub tls: Option<Arc<ControlTls>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    url: String,
    region: String,
    zone: String,
}

/// A node URL: `https://` in secure mode, `http://` with `--insecure`, unless given.
fn url(addr: &str, secure: bool) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else if secure {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

/// 0: same region and zone, 1: same region, 2: elsewhere (or unknown).
fn rank(c: &Candidate, region: &str, zone: &str) -> u8 {
    let same_region = !region.is_empty() && c.region == region;
    let same_zone = same_region && !zone.is_empty() && c.zone == zone;
    match (same_region, same_zone) {
        (true, true) => 0,
        (true, false) => 1,
        _ => 2,
    }
}

/// Candidates in preference order (see [`rank`]); stable within each rank (operator order first,
/// then discovered nodes).
fn ordered(cands: &[Candidate], region: &str, zone: &str) -> Vec<Candidate> {
    let mut out = cands.to_vec();
    out.sort_by_key(|c| rank(c, region, zone));
    out
}

fn endpoint(u: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(u.to_string())?
        .connect_timeout(Duration::from_millis(1000))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true))
}

/// The config a message brings the proxy to, from the config it holds.
fn next_config(
    current: Option<&(u64, Arc<DynamicConfig>)>,
    msg: &ConfigMessage,
) -> Result<DynamicConfig, String> {
    match &msg.body {
        Some(Body::Snapshot(s)) => {
            let v: serde_json::Value = serde_json::from_str(&s.config_json)
                .map_err(|e| format!("snapshot v{}: {e}", msg.version))?;
            switchyard_config::from_stream_value(v)
                .map_err(|e| format!("snapshot v{}: {e}", msg.version))
        }
        Some(Body::Delta(d)) => {
            let Some((held, cfg)) = current else {
                return Err(format!("delta v{} but no config is held", msg.version));
            };
            if *held != d.base_version {
                return Err(format!(
                    "delta v{} is based on v{} but v{held} is held",
                    msg.version, d.base_version
                ));
            }
            let changes = d
                .changes
                .iter()
                .map(|c| DeltaChange::from_wire(&c.kind, c.name.clone(), &c.json))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("delta v{}: {e}", msg.version))?;
            Ok(delta::apply(cfg, &changes))
        }
        None => Err(format!("message v{} has no body", msg.version)),
    }
}

/// The resources a delta message changes (`None`: a snapshot, or a kind this proxy does not
/// know, which `next_config` refuses anyway).
fn delta_keys(msg: &ConfigMessage) -> Option<Vec<(switchyard_config::ResourceKind, String)>> {
    match &msg.body {
        Some(Body::Delta(d)) => d
            .changes
            .iter()
            .map(|c| switchyard_config::ResourceKind::parse(&c.kind).map(|k| (k, c.name.clone())))
            .collect(),
        _ => None,
    }
}

/// Runs forever: attach, apply, fail over. Spawn it; it never touches the request path.
pub async fn run(proxy: Proxy, opts: ControlOptions, region: String, zone: String) {
    let mut current: Option<(u64, Arc<DynamicConfig>)> = None;
    // The version loaded from --cache-dir, while nothing newer came from a control node.
    let mut cached: Option<u64> = None;
    if let Some(cache) = &opts.cache {
        if let Some((version, cfg)) = cache.load() {
            let cfg = Arc::new(cfg);
            match proxy.apply(version, cfg.clone()) {
                Ok(()) => {
                    proxy.metrics().config_applies.inc();
                    cached = Some(version);
                    tracing::warn!(
                        version,
                        "serving the cached config until a control node answers"
                    );
                    proxy.set_ready_note(&format!(
                        "serving cached config v{version}; no control node reached yet"
                    ));
                    current = Some((version, cfg));
                }
                Err(e) => {
                    tracing::warn!(version, error = %e, "the cached config does not compile; ignoring it")
                }
            }
        }
    }
    let mut candidates: Vec<Candidate> = opts
        .endpoints
        .iter()
        .map(|e| Candidate {
            url: url(e, opts.tls.is_some()),
            region: String::new(),
            zone: String::new(),
        })
        .collect();
    let mut failures: u32 = 0;
    // Nodes that failed lately are not preferred over a working one (no flapping, no busy loop).
    let mut failed_at: BTreeMap<String, Instant> = BTreeMap::new();
    'rounds: loop {
        let order = ordered(&candidates, &region, &zone);
        let mut attached_for = Duration::ZERO;
        for cand in &order {
            let started = Instant::now();
            failed_at.retain(|_, t| t.elapsed() < PREFER_AFTER_FAILURE);
            let avoid: Vec<String> = failed_at.keys().cloned().collect();
            let outcome = attach(
                &proxy,
                &opts,
                (&region, &zone),
                cand,
                &avoid,
                &mut current,
                &mut candidates,
            )
            .await;
            if outcome.is_err() {
                failed_at.insert(cand.url.clone(), Instant::now());
            }
            match outcome {
                Ok(Ended::Preferred) => {
                    tracing::info!(from = %cand.url, "moving to a control node of this proxy's region or zone");
                    continue 'rounds;
                }
                Ok(Ended::Closed) => {
                    tracing::warn!(node = %cand.url, "config stream ended; failing over")
                }
                Err(e) => tracing::warn!(node = %cand.url, error = %e, "control node unavailable"),
            }
            attached_for = attached_for.max(started.elapsed());
            let held = proxy.version();
            if cached.is_some_and(|c| c != held) {
                cached = None;
            }
            proxy.set_ready_note(&match (held, cached) {
                (0, _) => "no control node reachable; no config yet".to_string(),
                (_, Some(_)) => {
                    format!("serving cached config v{held}; no control node reachable")
                }
                _ => format!("no control node reachable; serving config v{held}"),
            });
        }
        failures = if attached_for > Duration::from_secs(10) {
            0
        } else {
            failures.saturating_add(1)
        };
        // Jittered exponential backoff between rounds over every candidate.
        let base = Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)))
            .min(Duration::from_secs(5));
        let jitter = rand::rng().random_range(0.5..1.0);
        tokio::time::sleep(base.mul_f64(jitter)).await;
    }
}

/// How long a node that failed is not preferred over one that works.
const PREFER_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// Why an attachment ended without an error.
enum Ended {
    /// The node closed the stream.
    Closed,
    /// Discovery found a node closer to this proxy (its region or zone) than this one.
    Preferred,
}

/// One attachment: open the stream on `cand`, apply what comes, until it ends.
async fn attach(
    proxy: &Proxy,
    opts: &ControlOptions,
    (region, zone): (&str, &str),
    cand: &Candidate,
    avoid: &[String],
    current: &mut Option<(u64, Arc<DynamicConfig>)>,
    candidates: &mut Vec<Candidate>,
) -> Result<Ended, String> {
    let ep = endpoint(&cand.url).map_err(|e| e.to_string())?;
    let channel: Channel = match &opts.tls {
        Some(tls) => tls.channel(proxy, ep).await?,
        None => ep.connect().await.map_err(|e| format!("connect: {e}"))?,
    };
    discover(channel.clone(), candidates, opts.tls.as_deref()).await;
    let me = candidates
        .iter()
        .find(|c| c.url == cand.url)
        .map_or_else(|| rank(cand, region, zone), |c| rank(c, region, zone));
    let better = candidates
        .iter()
        .any(|c| rank(c, region, zone) < me && !avoid.contains(&c.url));
    if better {
        return Ok(Ended::Preferred);
    }

    let (tx, rx) = mpsc::channel::<ProxyMessage>(16);
    let hello = Hello {
        proxy_id: proxy.id().to_string(),
        region: region.to_string(),
        zone: zone.to_string(),
        labels: opts.labels.clone().into_iter().collect(),
        version: proxy.version(),
        entrypoints: opts.entrypoints.clone(),
        build: env!("CARGO_PKG_VERSION").to_string(),
        cluster: opts.cluster.clone(),
    };
    tx.send(ProxyMessage {
        msg: Some(Msg::Hello(hello)),
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut client = ConfigStreamClient::new(channel)
        .max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES);
    let mut inbound = client
        .stream(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("stream: {}", s.message()))?
        .into_inner();
    tracing::info!(node = %cand.url, version = proxy.version(), "attached to control node");
    proxy.set_ready_note(&format!("attached to {}", cand.url));
    proxy.metrics().control_connected.set(1);
    // Cluster-scope rate limits: demand out every 250 ms (aborted with the stream).
    let reporter = tokio::spawn(crate::limiter::run(proxy.clone(), tx.clone()));
    // Request counters per version (for rollouts), every 500 ms while they move.
    let counters = tokio::spawn(crate::version_stats::run(proxy.clone(), tx.clone()));
    let result = stream_loop(proxy, opts, &tx, &mut inbound, current).await;
    reporter.abort();
    counters.abort();
    proxy.metrics().control_connected.set(0);
    result.map(|()| Ended::Closed)
}

/// Applies every version the node sends, answering each with an ACK or a NACK.
async fn stream_loop(
    proxy: &Proxy,
    opts: &ControlOptions,
    tx: &mpsc::Sender<ProxyMessage>,
    inbound: &mut tonic::Streaming<ConfigMessage>,
    current: &mut Option<(u64, Arc<DynamicConfig>)>,
) -> Result<(), String> {
    // Secure mode: the key of a renewal asked for and not answered yet.
    let mut pending_key: Option<String> = None;
    loop {
        let renew_in = match (&opts.tls, &pending_key) {
            (Some(tls), None) => tls.renew_in(),
            _ => None,
        };
        let msg = tokio::select! {
            m = inbound.message() => match m {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(()),
                Err(s) => return Err(format!("stream: {}", s.message())),
            },
            () = tokio::time::sleep(renew_in.unwrap_or(Duration::from_secs(3600))), if renew_in.is_some() => {
                let (key, public_key_pem) = control_tls::new_key()?;
                pending_key = Some(key);
                tracing::info!("renewing the client certificate over the config stream");
                let renew = ProxyMessage { msg: Some(Msg::Renew(RenewCertificate { public_key_pem })) };
                if tx.send(renew).await.is_err() {
                    return Ok(());
                }
                continue;
            }
        };
        if let Some(shares) = &msg.limiter_shares {
            crate::limiter::apply(&proxy.runtime(), shares);
            continue;
        }
        if let Some(cert) = msg.certificate {
            match (&opts.tls, pending_key.take()) {
                (Some(tls), Some(key)) => {
                    tracing::info!(
                        not_after_unix = cert.not_after_unix,
                        "client certificate renewed"
                    );
                    tls.install(proxy, key, cert);
                    proxy.metrics().cert_renewals.inc();
                }
                _ => tracing::warn!("ignoring a certificate that was not asked for"),
            }
            continue;
        }
        let version = msg.version;
        if version <= proxy.version() {
            // Never move backwards (a node may repeat what another already sent).
            continue;
        }
        let mut span = crate::otel::config_apply_span(proxy, &msg);
        let reply = match next_config(current.as_ref(), &msg) {
            Err(e) => {
                proxy.metrics().config_nacks.inc();
                Msg::Nack(Nack { version, error: e })
            }
            Ok(cfg) => {
                let cfg = Arc::new(cfg);
                let changed = delta_keys(&msg);
                let change = match (&msg.body, &changed) {
                    (Some(Body::Delta(d)), Some(keys)) => Some((d.base_version, &keys[..])),
                    _ => None,
                };
                match proxy.apply_change(version, cfg.clone(), change) {
                    Ok(()) => {
                        proxy.metrics().config_applies.inc();
                        if matches!(msg.body, Some(Body::Delta(_))) {
                            proxy.metrics().config_deltas.inc();
                        }
                        if let Some(cache) = opts.cache.clone() {
                            let c = cfg.clone();
                            tokio::task::spawn_blocking(move || {
                                if let Err(e) = cache.store(version, &c) {
                                    tracing::warn!(error = %e, "cannot write the config cache");
                                }
                            });
                        }
                        *current = Some((version, cfg));
                        Msg::Ack(Ack { version })
                    }
                    Err(e) => {
                        proxy.metrics().config_nacks.inc();
                        tracing::warn!(version, error = %e, "refusing config version");
                        Msg::Nack(Nack { version, error: e })
                    }
                }
            }
        };
        if let Some(s) = &mut span {
            crate::otel::end_config_apply(s, &reply);
        }
        if tx.send(ProxyMessage { msg: Some(reply) }).await.is_err() {
            return Ok(());
        }
        drop(span);
    }
}

/// Adds the cluster's nodes (with their region and zone) to the candidates.
async fn discover(channel: Channel, candidates: &mut Vec<Candidate>, tls: Option<&ControlTls>) {
    let mut admin = AdminClient::new(channel);
    let mut req = tonic::Request::new(ClusterStatusRequest {});
    if let Some(tls) = tls {
        req.metadata_mut().insert("authorization", tls.bearer());
    }
    req.set_timeout(Duration::from_secs(2));
    let Ok(status) = admin.cluster_status(req).await else {
        return;
    };
    for n in status.into_inner().nodes {
        if n.api_addr.is_empty() {
            continue;
        }
        let u = url(&n.api_addr, tls.is_some());
        match candidates.iter_mut().find(|c| c.url == u) {
            Some(c) => {
                c.region = n.region;
                c.zone = n.zone;
            }
            None => candidates.push(Candidate {
                url: u,
                region: n.region,
                zone: n.zone,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_config::Kind;
    use switchyard_proto::stream::{Delta, ResourceChange, Snapshot};

    fn c(url: &str, region: &str, zone: &str) -> Candidate {
        Candidate {
            url: url.into(),
            region: region.into(),
            zone: zone.into(),
        }
    }

    #[test]
    fn prefers_own_zone_then_region() {
        let cands = vec![
            c("a", "us", "us-1"),
            c("b", "eu", "eu-2"),
            c("d", "eu", "eu-1"),
            c("e", "", ""),
        ];
        let o: Vec<String> = ordered(&cands, "eu", "eu-1")
            .into_iter()
            .map(|c| c.url)
            .collect();
        assert_eq!(o, vec!["d", "b", "a", "e"]);
        let o: Vec<String> = ordered(&cands, "", "").into_iter().map(|c| c.url).collect();
        assert_eq!(o, vec!["a", "b", "d", "e"], "no region: operator order");
    }

    #[test]
    fn applies_snapshots_and_deltas() {
        let snap = ConfigMessage {
            version: 5,
            node_id: 1,
            certificate: None,
                limiter_shares: None,
                traceparent: String::new(),
            body: Some(Body::Snapshot(Snapshot {
                config_json: r#"{"http":{"routers":{"a":{"rule":"Host(`a`)","service":"s"}},"services":{"s":{"loadBalancer":{"servers":[{"url":"http://127.0.0.1:1"}]}}}}}"#.into(),
            })),
        };
        let cfg = next_config(None, &snap).expect("snapshot");
        assert_eq!(cfg.names(Kind::Router), vec!["a".to_string()]);
        let held = (5, Arc::new(cfg));
        let delta = ConfigMessage {
            version: 7,
            node_id: 1,
            certificate: None,
            limiter_shares: None,
            traceparent: String::new(),
            body: Some(Body::Delta(Delta {
                base_version: 5,
                changes: vec![
                    ResourceChange {
                        kind: "router".into(),
                        name: "b".into(),
                        json: r#"{"rule":"Host(`b`)","service":"s"}"#.into(),
                    },
                    ResourceChange {
                        kind: "router".into(),
                        name: "a".into(),
                        json: String::new(),
                    },
                ],
            })),
        };
        let next = next_config(Some(&held), &delta).expect("delta");
        assert_eq!(next.names(Kind::Router), vec!["b".to_string()]);
        let wrong_base = ConfigMessage {
            version: 9,
            node_id: 1,
            certificate: None,
            limiter_shares: None,
            traceparent: String::new(),
            body: delta.body.clone(),
        };
        let held7 = (7, Arc::new(next));
        assert!(next_config(Some(&held7), &wrong_base).is_err());
        assert!(next_config(None, &delta).is_err());
    }
}
