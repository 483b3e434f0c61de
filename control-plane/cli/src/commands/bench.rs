//! `switchyard bench apply`: concurrent small writes against a running cluster.
//!
//! Each client updates its own router (`bench-c<N>`) with a new rule per write, so every write is a
//! real change that commits a new config version while the config itself stays small. Clients are
//! spread round-robin over `--endpoints` (a follower forwards to the leader).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde_json::json;
use switchyard_proto::admin::ApplyRequest;

use crate::args::{BenchApplyArgs, BenchArgs, BenchCommand, Format, Global};
use crate::client::{connect, status_error};
use crate::output::{print_data, print_table};

pub async fn run(g: &Global, a: BenchArgs) -> Result<ExitCode> {
    match a.command {
        BenchCommand::Apply(a) => apply(g, a).await,
        BenchCommand::Propagate(a) => super::bench_propagate::run(g, a).await,
    }
}

struct Round {
    clients: usize,
    writes: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn document(client: usize, seq: usize) -> String {
    format!(
        "http:\n  routers:\n    bench-c{client}:\n      rule: \"Host(`c{client}-{seq}.bench.example`)\"\n      service: bench\n  services:\n    bench:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:9\"\n"
    )
}

async fn apply(g: &Global, a: BenchApplyArgs) -> Result<ExitCode> {
    let mut rounds = Vec::new();
    for &clients in &a.clients {
        if clients == 0 {
            return Err(anyhow!("--clients: must be positive"));
        }
        let per_client = a.writes.div_ceil(clients);
        let mut tasks = Vec::new();
        let started = Instant::now();
        for c in 0..clients {
            let ep = g.endpoints[c % g.endpoints.len()].clone();
            tasks.push(tokio::spawn(async move {
                let mut client = connect(&[ep]).await?;
                let mut lat = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let t = Instant::now();
                    client
                        .apply(ApplyRequest {
                            document: document(c, i),
                            prune: false,
                            dry_run: false,
                            rollout: None,
                        })
                        .await
                        .map_err(status_error)?;
                    lat.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(lat)
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.map_err(|e| anyhow!("client task: {e}"))??);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        rounds.push(Round {
            clients,
            writes: latencies.len(),
            elapsed,
            latencies,
        });
    }
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    match g.output {
        Format::Table => {
            let rows: Vec<Vec<String>> = rounds
                .iter()
                .map(|r| {
                    vec![
                        r.clients.to_string(),
                        r.writes.to_string(),
                        format!("{:.0}", r.writes as f64 / r.elapsed.as_secs_f64()),
                        ms(percentile(&r.latencies, 0.5)),
                        ms(percentile(&r.latencies, 0.99)),
                        ms(percentile(&r.latencies, 1.0)),
                    ]
                })
                .collect();
            print_table(
                &[
                    "CLIENTS", "WRITES", "WRITES/S", "P50_MS", "P99_MS", "MAX_MS",
                ],
                &rows,
            );
        }
        f => {
            let out: Vec<_> = rounds
                .iter()
                .map(|r| {
                    json!({
                        "clients": r.clients, "writes": r.writes,
                        "writesPerSecond": r.writes as f64 / r.elapsed.as_secs_f64(),
                        "p50Ms": percentile(&r.latencies, 0.5).as_secs_f64() * 1000.0,
                        "p99Ms": percentile(&r.latencies, 0.99).as_secs_f64() * 1000.0,
                        "maxMs": percentile(&r.latencies, 1.0).as_secs_f64() * 1000.0,
                    })
                })
                .collect();
            print_data(f, &out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
