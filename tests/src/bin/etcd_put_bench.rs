//! Load tool for the etcd comparison in BENCHMARKS.md: the same workload as
//! `switchyard bench apply` (each client rewrites its own key with a ~300-byte value), sent as
//! etcd v3 `KV/Put` calls, printing the same table.
//!
//! `etcd_put_bench ENDPOINT[,ENDPOINT…] CLIENTS[,CLIENTS…] WRITES`

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

/// The two fields of etcd's `PutRequest` this workload sets (etcdserverpb, rpc.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// Fields of the answer are not needed.
#[derive(Clone, PartialEq, prost::Message)]
struct PutResponse {}

async fn put(ch: Channel, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready()
        .await
        .map_err(|e| anyhow!("etcd not ready: {e}"))?;
    let codec = tonic_prost::ProstCodec::<PutRequest, PutResponse>::default();
    grpc.unary(
        tonic::Request::new(PutRequest { key, value }),
        PathAndQuery::from_static("/etcdserverpb.KV/Put"),
        codec,
    )
    .await
    .map_err(|s| anyhow!("put: {s}"))?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err(anyhow!("usage: etcd_put_bench ENDPOINTS CLIENTS WRITES"));
    }
    let endpoints: Vec<String> = args[1].split(',').map(str::to_string).collect();
    let rounds: Vec<usize> = args[2]
        .split(',')
        .map(|c| c.parse().context("CLIENTS"))
        .collect::<Result<_>>()?;
    let writes: usize = args[3].parse().context("WRITES")?;
    println!("CLIENTS  WRITES  WRITES/S  P50_MS  P99_MS  MAX_MS");
    for clients in rounds {
        let per_client = writes.div_ceil(clients.max(1));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let ep = endpoints[c % endpoints.len()].clone();
            tasks.push(tokio::spawn(async move {
                let ch = Endpoint::from_shared(ep)?.tcp_nodelay(true).connect().await?;
                let mut lat = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let value = format!(
                        "http:\n  routers:\n    bench-c{c}:\n      rule: \"Host(`c{c}-{i}.bench.example`)\"\n      service: bench\n  services:\n    bench:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:9\"\n"
                    );
                    let t = Instant::now();
                    put(ch.clone(), format!("bench-c{c}").into_bytes(), value.into_bytes()).await?;
                    lat.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(lat)
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        lat.sort();
        println!(
            "{:<8} {:<7} {:<9.0} {:<7.2} {:<7.2} {:.2}",
            clients,
            lat.len(),
            lat.len() as f64 / elapsed,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
    }
    Ok(())
}
