//! `switchyard dev`: a one-node control plane with a sample config, for trying things locally.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use switchyard_node::{ControlNode, NodeOptions, RaftTimings};
use switchyard_proto::admin::ApplyRequest;

use super::server::{init_tracing, wait_for_signal};
use crate::args::DevArgs;

/// The sample config `dev` applies (also in `deploy/examples/sample.yaml`).
pub const SAMPLE: &str = include_str!("../../../../deploy/examples/sample.yaml");

pub async fn run(a: DevArgs) -> Result<ExitCode> {
    init_tracing();
    let (data_dir, _temp) = match &a.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::tempdir().context("creating a temporary data dir")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let opts = NodeOptions {
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
        insecure: true,
    };
    let node = ControlNode::start(opts)
        .await
        .context("starting the control node")?;
    let api = format!("http://{}", node.api_addr);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "switchyard".into());
    let version = apply_sample(&api).await?;
    println!(
        "\nSwitchyard dev is running (single control node, data in {}).\n\
         \n  admin API   {api}\
         \n  health      http://{http}/readyz\
         \n  metrics     http://{http}/metrics\
         \n\nThe sample config (deploy/examples/sample.yaml) is applied at version {version}. Try:\n\
         \n  {exe} --endpoints {api} get routers\
         \n  {exe} --endpoints {api} get config -o yaml\
         \n  {exe} --endpoints {api} cluster status\
         \n  grpcurl -plaintext {addr} list\
         \n\nPress Ctrl-C to stop.",
        data_dir.display(),
        http = node.http_addr,
        addr = node.api_addr,
    );
    wait_for_signal().await;
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Applies the sample config once the node has elected itself.
async fn apply_sample(api: &str) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = async {
            let mut c = crate::client::connect(&[api.to_string()]).await?;
            let r = c
                .apply(ApplyRequest {
                    document: SAMPLE.to_string(),
                    prune: false,
                    dry_run: false,
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
