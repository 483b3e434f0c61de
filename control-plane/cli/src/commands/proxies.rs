//! `get proxies` and `apply --wait`: what every proxy holds.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use serde_json::json;
use switchyard_proto::admin::{ListProxiesRequest, ListProxiesResponse, ProxyStatus};

use crate::args::{Format, Global};
use crate::client::status_error;
use crate::output::{print_data, print_table};

async fn list(client: &mut crate::client::Client) -> Result<ListProxiesResponse> {
    Ok(client
        .list_proxies(ListProxiesRequest { local_only: false })
        .await
        .map_err(status_error)?
        .into_inner())
}

fn since(ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let s = now.saturating_sub(ms) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        _ => format!("{}h{}m ago", s / 3600, (s % 3600) / 60),
    }
}

pub async fn get(
    g: &Global,
    client: &mut crate::client::Client,
    name: Option<&str>,
) -> Result<ExitCode> {
    let r = list(client).await?;
    let proxies: Vec<&ProxyStatus> = r
        .proxies
        .iter()
        .filter(|p| name.is_none_or(|n| p.proxy_id == n))
        .collect();
    if let Some(n) = name {
        if proxies.is_empty() {
            return Err(anyhow!(
                "proxy {n:?} is not attached to any reachable control node (code: NOT_FOUND)"
            ));
        }
    }
    for id in &r.unreachable_nodes {
        eprintln!("warning: control node {id} could not be asked; its proxies are missing");
    }
    match g.output {
        Format::Table => {
            let rows: Vec<Vec<String>> = proxies
                .iter()
                .map(|p| {
                    let dash = |s: &str| {
                        if s.is_empty() {
                            "-".to_string()
                        } else {
                            s.to_string()
                        }
                    };
                    vec![
                        p.proxy_id.clone(),
                        dash(&p.region),
                        dash(&p.zone),
                        p.node_id.to_string(),
                        p.applied_version.to_string(),
                        if p.last_nack_version == 0 {
                            "-".into()
                        } else {
                            format!("v{}: {}", p.last_nack_version, p.last_nack_error)
                        },
                        since(p.connected_since_unix_ms),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "REGION",
                    "ZONE",
                    "NODE",
                    "VERSION",
                    "LAST NACK",
                    "CONNECTED",
                ],
                &rows,
            );
        }
        f => {
            let items: Vec<_> = proxies
                .iter()
                .map(|p| {
                    json!({
                        "id": p.proxy_id, "region": p.region, "zone": p.zone, "labels": p.labels,
                        "node": p.node_id, "appliedVersion": p.applied_version,
                        "lastNackVersion": p.last_nack_version, "lastNackError": p.last_nack_error,
                        "connectedSinceUnixMs": p.connected_since_unix_ms, "peer": p.peer,
                        "build": p.build, "entrypoints": p.entrypoints,
                    })
                })
                .collect();
            print_data(
                f,
                &json!({"proxies": items, "unreachableNodes": r.unreachable_nodes}),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--wait-selector region=…,zone=…,LABEL=…`.
#[derive(Debug, Default)]
pub struct Selector(Vec<(String, String)>);

impl Selector {
    pub fn parse(s: Option<&str>) -> Result<Selector> {
        let mut out = Vec::new();
        for part in s
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| anyhow!("--wait-selector: {part:?} is not KEY=VALUE"))?;
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(Selector(out))
    }

    pub fn matches(&self, p: &ProxyStatus) -> bool {
        self.0.iter().all(|(k, v)| match k.as_str() {
            "region" => &p.region == v,
            "zone" => &p.zone == v,
            "id" => &p.proxy_id == v,
            label => p.labels.get(label) == Some(v),
        })
    }
}

/// Polls the cluster's proxy list until every matching proxy ACKed `version`, one NACKed it, or
/// `timeout` passes.
pub async fn wait_for_version(
    client: &mut crate::client::Client,
    version: u64,
    timeout: Duration,
    selector: &Selector,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = list(client).await?;
        let matching: Vec<&ProxyStatus> =
            r.proxies.iter().filter(|p| selector.matches(p)).collect();
        let nacked: Vec<String> = matching
            .iter()
            .filter(|p| p.last_nack_version >= version && p.applied_version < version)
            .map(|p| {
                format!(
                    "{} (v{}: {})",
                    p.proxy_id, p.last_nack_version, p.last_nack_error
                )
            })
            .collect();
        if !nacked.is_empty() {
            return Err(anyhow!(
                "proxies refused config version {version}: {}",
                nacked.join("; ")
            ));
        }
        let behind: Vec<String> = matching
            .iter()
            .filter(|p| p.applied_version < version)
            .map(|p| format!("{} (at v{})", p.proxy_id, p.applied_version))
            .collect();
        if behind.is_empty() && r.unreachable_nodes.is_empty() {
            println!(
                "{} prox{} at config version {version} or later",
                matching.len(),
                if matching.len() == 1 { "y" } else { "ies" }
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            let mut why = Vec::new();
            if !behind.is_empty() {
                why.push(format!("not acknowledged by {}", behind.join(", ")));
            }
            if !r.unreachable_nodes.is_empty() {
                why.push(format!(
                    "control nodes {:?} could not be asked",
                    r.unreachable_nodes
                ));
            }
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for config version {version}: {}",
                why.join("; ")
            ));
        }
        // Polling interval of the CLI, not a synchronisation in tests.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
