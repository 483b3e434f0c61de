//! `switchyard dev`: one control node, one proxy and a demo backend in one process, with the sample
//! route applied, for trying Switchyard locally. The proxy is attached to the node through the real
//! config stream, exactly as a separate `switchyard-proxy --control …` would be.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use switchyard_node::{ControlNode, NodeOptions, RaftTimings};
use switchyard_proto::admin::ApplyRequest;
use switchyard_proxy::control::ControlOptions;
use switchyard_proxy::{Proxy, ProxyOptions};

use super::server::{init_tracing, wait_for_signal};
use crate::args::DevArgs;

/// The sample config `dev` applies (also in `deploy/examples/sample.yaml`).
pub const SAMPLE: &str = include_str!("../../../../deploy/examples/sample.yaml");
/// The backend address written in the sample.
const SAMPLE_BACKEND: &str = "127.0.0.1:7480";

pub async fn run(a: DevArgs) -> Result<ExitCode> {
    init_tracing();
    // dev is a local playground: plaintext and open (main configures the client so), and says so.
    tracing::warn!(
        "*** switchyard dev runs INSECURE (plaintext gRPC, no tokens): for local development only; use `switchyard server` for anything else ***"
    );
    let (data_dir, _temp) = match &a.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::tempdir().context("creating a temporary data dir")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let backend = tokio::net::TcpListener::bind(&a.backend_addr)
        .await
        .with_context(|| format!("demo backend: cannot listen on {}", a.backend_addr))?;
    let backend_addr = backend.local_addr()?;
    tokio::spawn(super::dev_backend::serve(backend));

    let node = ControlNode::start(NodeOptions {
        node_id: 1,
        data_dir: data_dir.clone(),
        api_addr: a.api_addr.clone(),
        peer_addr: a.peer_addr.clone(),
        http_addr: a.http_addr.clone(),
        advertise_api_addr: None,
        advertise_peer_addr: None,
        initial_cluster: vec![(1, a.peer_addr.clone())],
        join: None,
        region: "local".into(),
        zone: "local-a".into(),
        raft: RaftTimings {
            heartbeat: Duration::from_millis(50),
            election_min: Duration::from_millis(150),
            election_max: Duration::from_millis(300),
        },
        snapshot_threshold: 10_000,
        snapshot_keep_logs: 1_000,
        write_timeout: Duration::from_secs(5),
        max_write_batch: switchyard_node::proposer::MAX_BATCH,
        insecure: true,
        proxy_cert_ttl: Duration::from_secs(24 * 3600),
        tls_ticket_rotation: Duration::from_secs(12 * 3600),
        ca_cert: None,
        token: None,
        tracing: None,
        otlp_metrics: None,
    })
    .await
    .context("starting the control node")?;
    let api = format!("http://{}", node.api_addr);

    let proxy = Proxy::start(ProxyOptions {
        proxy_id: "dev-proxy".into(),
        region: "local".into(),
        zone: "local-a".into(),
        entrypoints: vec![("web".into(), a.proxy_addr.clone())],
        admin_addr: a.proxy_admin_addr.clone(),
        ..ProxyOptions::default()
    })
    .await
    .context("starting the proxy")?;
    let control = tokio::spawn(switchyard_proxy::control::run(
        proxy.clone(),
        ControlOptions {
            endpoints: vec![api.clone()],
            labels: BTreeMap::new(),
            cluster: switchyard_config::scope::DEFAULT_CLUSTER.into(),
            entrypoints: vec!["web".into()],
            cache: None,
            tls: None,
        },
        "local".into(),
        "local-a".into(),
    ));

    let sample = SAMPLE.replace(SAMPLE_BACKEND, &backend_addr.to_string());
    let version = apply_sample(&api, &sample).await?;
    wait_for_proxy(&proxy, version).await?;

    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "switchyard".into());
    let web = proxy
        .local_addrs()
        .first()
        .map(|(_, a)| *a)
        .ok_or_else(|| anyhow!("the proxy has no entry point"))?;
    println!(
        "\nSwitchyard dev is running: one control node, one proxy, one demo backend\n\
         (data in {}).\n\
         \n  proxy       http://localhost:{port}/   (entry point \"web\")\
         \n  proxy admin http://{padmin}/readyz  /metrics\
         \n  admin API   {api}\
         \n  node HTTP   http://{http}/readyz  /metrics  /api/http/routers\
         \n  dashboard   http://{http}/dashboard/\
         \n  backend     http://{backend_addr}/\
         \n\nThe sample config (deploy/examples/sample.yaml) is at version {version} on the proxy. Try:\n\
         \n  curl -i http://localhost:{port}/hello                 # router demo: X-Served-By header added\
         \n  curl -i http://localhost:{port}/api/users             # router demo-api: /api stripped\
         \n  curl -i -H 'Host: other.example' http://127.0.0.1:{port}/   # no router: 404\
         \n  {exe} --insecure --endpoints {api} get routers\
         \n  {exe} --insecure --endpoints {api} get proxies\
         \n  {exe} --insecure --endpoints {api} explain GET http://localhost/api/users\
         \n  {exe} --insecure --endpoints {api} get config -o yaml\
         \n\nWARNING: dev is insecure (plaintext, no tokens), hence --insecure above (or SWITCHYARD_INSECURE=1).\
         \n\nPress Ctrl-C to stop.",
        data_dir.display(),
        port = web.port(),
        padmin = proxy.admin_addr(),
        http = node.http_addr,
    );
    wait_for_signal().await;
    control.abort();
    proxy.shutdown().await;
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Applies the sample config once the node has elected itself.
async fn apply_sample(api: &str, sample: &str) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = async {
            let mut c = crate::client::connect(&[api.to_string()]).await?;
            let r = c
                .apply(ApplyRequest {
                    document: sample.to_string(),
                    prune: false,
                    dry_run: false,
                    rollout: None,
                })
                .await
                .map_err(crate::client::status_error)?;
            Ok::<u64, anyhow::Error>(r.into_inner().version)
        }
        .await;
        match attempt {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => {
                return Err(anyhow!("applying the sample config: {e:#}"))
            }
            // Retry until the single node has elected itself.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until the proxy has applied `version` (it arrives over the config stream).
async fn wait_for_proxy(proxy: &Proxy, version: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while proxy.version() < version {
        if Instant::now() > deadline {
            return Err(anyhow!(
                "the proxy did not receive config version {version} within 15s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
