use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use switchyard_node::{parse_initial_cluster, ControlNode, NodeOptions, RaftTimings};

use crate::args::{Global, ServerArgs};

pub fn duration(flag: &str, v: &str) -> Result<Duration> {
    let nanos =
        switchyard_config::duration::parse_go_duration(v).map_err(|e| anyhow!("--{flag}: {e}"))?;
    if nanos <= 0 {
        return Err(anyhow!("--{flag}: must be positive, got {v:?}"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn options(a: &ServerArgs, g: &Global) -> Result<NodeOptions> {
    if a.node_id == 0 {
        return Err(anyhow!("--node-id: must be a positive number"));
    }
    let preset = a.raft_profile.timers();
    let raft = RaftTimings {
        heartbeat: duration(
            "heartbeat-interval",
            a.heartbeat_interval.as_deref().unwrap_or(preset.0),
        )?,
        election_min: duration(
            "election-timeout-min",
            a.election_timeout_min.as_deref().unwrap_or(preset.1),
        )?,
        election_max: duration(
            "election-timeout-max",
            a.election_timeout_max.as_deref().unwrap_or(preset.2),
        )?,
    };
    if raft.election_min >= raft.election_max || raft.heartbeat >= raft.election_min {
        return Err(anyhow!(
            "raft timers: need heartbeat-interval < election-timeout-min < election-timeout-max"
        ));
    }
    if a.max_write_batch == 0 {
        return Err(anyhow!("--max-write-batch: must be positive"));
    }
    if a.snapshot_threshold == 0 {
        return Err(anyhow!("--snapshot-threshold: must be positive"));
    }
    let initial_cluster = match &a.initial_cluster {
        Some(s) => parse_initial_cluster(s).map_err(|e| anyhow!("--initial-cluster: {e}"))?,
        None => Vec::new(),
    };
    Ok(NodeOptions {
        node_id: a.node_id,
        data_dir: a.data_dir.clone(),
        api_addr: a.api_addr.clone(),
        peer_addr: a.peer_addr.clone(),
        http_addr: a.http_addr.clone(),
        advertise_api_addr: a.advertise_api_addr.clone(),
        advertise_peer_addr: a.advertise_peer_addr.clone(),
        initial_cluster,
        join: a.join.clone(),
        region: a.region.clone(),
        zone: a.zone.clone(),
        raft,
        snapshot_threshold: a.snapshot_threshold,
        snapshot_keep_logs: a.snapshot_keep_logs,
        write_timeout: duration("write-timeout", &a.write_timeout)?,
        max_write_batch: a.max_write_batch,
        insecure: g.insecure,
        proxy_cert_ttl: duration("proxy-cert-ttl", &a.proxy_cert_ttl)?,
        tls_ticket_rotation: match a.tls_ticket_rotation.as_str() {
            "0" | "0s" => Duration::ZERO,
            v => duration("tls-ticket-rotation", v)?,
        },
        ca_cert: g.ca_cert.clone(),
        token: g.token.clone(),
        tracing: a
            .tracing
            .options(|k| std::env::var(k).ok())
            .map_err(|e| anyhow!(e))?,
        otlp_metrics: a
            .metrics
            .options(|k| std::env::var(k).ok())
            .map_err(|e| anyhow!(e))?,
    })
}

pub async fn run(a: ServerArgs, g: &Global) -> Result<ExitCode> {
    init_tracing();
    let opts = options(&a, g)?;
    if g.insecure {
        tracing::warn!(
            "*** --insecure: plaintext gRPC, no TLS, no tokens: anyone who can reach the API or peer port can read and change the whole cluster. Development only. ***"
        );
    }
    let node = ControlNode::start(opts)
        .await
        .context("starting the control node")?;
    tracing::info!(
        node = a.node_id,
        api = %node.api_addr,
        peer = %node.peer_addr,
        http = %node.http_addr,
        "control node started"
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use crate::args::{Cli, Command};

    fn timers(extra: &[&str]) -> anyhow::Result<(u128, u128, u128)> {
        let mut argv = vec!["switchyard", "server", "--node-id", "1", "--data-dir", "/d"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv)?;
        let Command::Server(a) = cli.command else {
            anyhow::bail!("not a server command");
        };
        let o = super::options(&a, &cli.global)?;
        Ok((
            o.raft.heartbeat.as_millis(),
            o.raft.election_min.as_millis(),
            o.raft.election_max.as_millis(),
        ))
    }

    #[test]
    fn raft_profiles_set_the_timers_and_flags_override_them() {
        assert_eq!(timers(&[]).unwrap(), (100, 300, 600));
        assert_eq!(timers(&["--raft-profile", "lan"]).unwrap(), (100, 300, 600));
        assert_eq!(
            timers(&["--raft-profile", "wan"]).unwrap(),
            (300, 1500, 3000)
        );
        assert_eq!(
            timers(&["--raft-profile", "wan", "--heartbeat-interval", "200ms"]).unwrap(),
            (200, 1500, 3000)
        );
        assert!(timers(&["--raft-profile", "moon"]).is_err());
        // An override that breaks the ordering is refused, naming the rule.
        let e = timers(&["--raft-profile", "wan", "--election-timeout-max", "1s"]).unwrap_err();
        assert!(e.to_string().contains("election-timeout-min"), "{e}");
    }
}
