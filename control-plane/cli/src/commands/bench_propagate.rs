//! `switchyard bench propagate`: how long a committed change takes to reach every proxy.
//!
//! Sets up a config with `--routers` routers, opens `--simulated` proxy streams (they decode each
//! message and ACK it, without compiling, so they measure the control plane's push), then applies
//! `--changes` single-router changes one after another. For each change it records the time from
//! `apply` returning to (a) every simulated stream having received the version and (b) every real
//! proxy attached to the cluster (not simulated) having ACKed it, as `get proxies` reports (polled
//! every millisecond, so (b) carries up to ~1 ms of polling granularity plus a ListProxies round trip).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use switchyard_proto::admin::{ApplyRequest, ListProxiesRequest};
use switchyard_proto::stream::config_stream_client::ConfigStreamClient;
use switchyard_proto::stream::proxy_message::Msg;
use switchyard_proto::stream::{Ack, Hello, ProxyMessage};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

use crate::args::{BenchPropagateArgs, Global};
use crate::client::{connect, status_error};

const SIM_PREFIX: &str = "bench-sim-";

fn base_config(routers: usize) -> String {
    let mut doc = String::with_capacity(routers * 100);
    doc.push_str("http:\n  services:\n    prop:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:9\"\n  routers:\n");
    for i in 0..routers {
        doc.push_str(&format!(
            "    prop-r{i}:\n      rule: \"Host(`r{i}.prop.example`)\"\n      service: prop\n"
        ));
    }
    doc
}

fn change(seq: usize) -> String {
    format!("http:\n  routers:\n    prop-r0:\n      rule: \"Host(`r0.prop.example`) && PathPrefix(`/{seq}`)\"\n      service: prop\n")
}

/// One simulated proxy: the highest version received.
struct Sim {
    version: AtomicU64,
}

async fn open_sim(ep: String, id: usize, sim: Arc<Sim>, notify: Arc<Notify>) -> Result<()> {
    let ch = tonic::transport::Endpoint::from_shared(ep)?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut client =
        ConfigStreamClient::new(ch).max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel(8);
    tx.send(ProxyMessage {
        msg: Some(Msg::Hello(Hello {
            proxy_id: format!("{SIM_PREFIX}{id}"),
            build: "bench".into(),
            ..Default::default()
        })),
    })
    .await?;
    let mut inbound = client
        .stream(ReceiverStream::new(rx))
        .await
        .map_err(status_error)?
        .into_inner();
    tokio::spawn(async move {
        while let Ok(Some(m)) = inbound.message().await {
            sim.version.fetch_max(m.version, Ordering::SeqCst);
            notify.notify_waiters();
            if tx
                .send(ProxyMessage {
                    msg: Some(Msg::Ack(Ack { version: m.version })),
                })
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

pub async fn run(g: &Global, a: BenchPropagateArgs) -> Result<std::process::ExitCode> {
    let mut admin = connect(&g.endpoints).await?;
    let t = Instant::now();
    let base = admin
        .apply(ApplyRequest {
            document: base_config(a.routers),
            prune: false,
            dry_run: false,
            rollout: None,
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .version;
    println!(
        "base config: {} routers at version {base} (applied in {:.0} ms)",
        a.routers,
        t.elapsed().as_secs_f64() * 1000.0
    );

    let notify = Arc::new(Notify::new());
    let sims: Vec<Arc<Sim>> = (0..a.simulated)
        .map(|_| {
            Arc::new(Sim {
                version: AtomicU64::new(0),
            })
        })
        .collect();
    for (i, sim) in sims.iter().enumerate() {
        let ep = g.endpoints[i % g.endpoints.len()].clone();
        let ep = if ep.contains("://") {
            ep
        } else {
            format!("http://{ep}")
        };
        open_sim(ep, i, sim.clone(), notify.clone()).await?;
    }
    let all_at = |v: u64| sims.iter().all(|s| s.version.load(Ordering::SeqCst) >= v);
    let wait_sims = |v: u64| {
        let notify = notify.clone();
        async move {
            loop {
                let n = notify.notified();
                if all_at(v) {
                    return;
                }
                n.await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), wait_sims(base))
        .await
        .map_err(|_| anyhow!("simulated streams did not all receive the base config"))?;

    let real: Vec<String> = admin
        .list_proxies(ListProxiesRequest { local_only: false })
        .await
        .map_err(status_error)?
        .into_inner()
        .proxies
        .into_iter()
        .filter(|p| !p.proxy_id.starts_with(SIM_PREFIX))
        .map(|p| p.proxy_id)
        .collect();
    println!(
        "{} simulated streams, {} real proxies ({}), {} changes",
        a.simulated,
        real.len(),
        real.join(", "),
        a.changes
    );

    let mut sim_lat = Vec::with_capacity(a.changes);
    let mut real_lat = Vec::with_capacity(a.changes);
    for seq in 0..a.changes {
        let v = admin
            .apply(ApplyRequest {
                document: change(seq),
                prune: false,
                dry_run: false,
                rollout: None,
            })
            .await
            .map_err(status_error)?
            .into_inner()
            .version;
        let t0 = Instant::now();
        let sims_done = async {
            wait_sims(v).await;
            t0.elapsed()
        };
        let mut poller = admin.clone();
        let real_done = async {
            if real.is_empty() {
                return Ok(Duration::ZERO);
            }
            loop {
                let list = poller
                    .list_proxies(ListProxiesRequest { local_only: false })
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .proxies;
                let done = real.iter().all(|id| {
                    list.iter()
                        .any(|p| &p.proxy_id == id && p.applied_version >= v)
                });
                if done {
                    return Ok::<_, anyhow::Error>(t0.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let (s, r) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(sims_done, real_done)
        })
        .await
        .map_err(|_| anyhow!("change {seq} (version {v}) did not reach every proxy in 60s"))?;
        sim_lat.push(s);
        real_lat.push(r?);
    }
    sim_lat.sort();
    real_lat.sort();
    println!("PROXIES                 P50_MS  P99_MS  MAX_MS");
    println!(
        "{:<23} {:<7.2} {:<7.2} {:.2}",
        format!("{} simulated", a.simulated),
        pct(&sim_lat, 0.5),
        pct(&sim_lat, 0.99),
        pct(&sim_lat, 1.0)
    );
    if !real.is_empty() {
        println!(
            "{:<23} {:<7.2} {:<7.2} {:.2}",
            format!("{} real (ACK)", real.len()),
            pct(&real_lat, 0.5),
            pct(&real_lat, 0.99),
            pct(&real_lat, 1.0)
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
