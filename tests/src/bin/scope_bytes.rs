//! Config bytes a scoped proxy receives vs the whole config (BENCHMARKS.md, "Scoped clusters").
//!
//! Starts a real control node (`--insecure`, so raw config streams need no certificate), applies
//! `--clusters` × `--routers-per-cluster` routers, each scoped to one cluster with its own
//! service, and opens raw config streams (a `Hello` with a cluster, as `switchyard-proxy
//! --cluster` sends): the first message is the snapshot that proxy would compile. Then the same
//! routers unscoped give the whole config's snapshot. Last, one router of cluster `c0` changes:
//! the delta a `c0` proxy and a `c1` proxy receive.
//!
//!   cargo run --release -p switchyard-e2e --bin scope_bytes -- [--clusters 10] [--routers-per-cluster 1000]
//!
//! (Needs the binaries built: `cargo build --release --bins` and SWITCHYARD_BIN_DIR=target/release,
//! or a debug build.)

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use prost::Message;
use switchyard_e2e::backends::block_on;
use switchyard_e2e::{apply_yaml, Cluster, INSECURE};
use switchyard_proto::stream::config_message::Body;
use switchyard_proto::stream::config_stream_client::ConfigStreamClient;
use switchyard_proto::stream::proxy_message::Msg;
use switchyard_proto::stream::{Ack, ConfigMessage, Hello, ProxyMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn doc(clusters: usize, per: usize, scoped: bool, changed: bool) -> String {
    let mut d = String::with_capacity(clusters * per * 260);
    d.push_str("http:\n  routers:\n");
    for c in 0..clusters {
        for i in 0..per {
            let path = if changed && c == 0 && i == 0 {
                " && PathPrefix(`/v2`)"
            } else {
                ""
            };
            d.push_str(&format!(
                "    c{c}-r{i}:\n      rule: \"Host(`r{i}.c{c}.example.com`){path}\"\n      service: c{c}-s{i}\n"
            ));
            if scoped {
                d.push_str(&format!("      clusters: [c{c}]\n"));
            }
        }
    }
    d.push_str("  services:\n");
    for c in 0..clusters {
        for i in 0..per {
            d.push_str(&format!(
                "    c{c}-s{i}:\n      loadBalancer:\n        servers:\n          - url: \"http://10.{c}.{}.{}:8080\"\n",
                i / 250,
                i % 250
            ));
        }
    }
    d
}

/// A raw config stream: Hello as a proxy of `cluster` holding `version`.
struct RawStream {
    tx: mpsc::Sender<ProxyMessage>,
    inbound: tonic::Streaming<ConfigMessage>,
}

async fn open(ep: &str, id: &str, cluster: &str, version: u64) -> Result<RawStream> {
    let mut client = ConfigStreamClient::connect(ep.to_string())
        .await?
        .max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel(8);
    tx.send(ProxyMessage {
        msg: Some(Msg::Hello(Hello {
            proxy_id: id.into(),
            cluster: cluster.into(),
            version,
            entrypoints: vec!["web".into()],
            ..Hello::default()
        })),
    })
    .await?;
    let inbound = client.stream(ReceiverStream::new(rx)).await?.into_inner();
    Ok(RawStream { tx, inbound })
}

impl RawStream {
    async fn next(&mut self) -> Result<ConfigMessage> {
        let m = tokio::time::timeout(Duration::from_secs(60), self.inbound.message())
            .await
            .context("no config message in 60 s")??
            .ok_or_else(|| anyhow!("stream ended"))?;
        self.tx
            .send(ProxyMessage {
                msg: Some(Msg::Ack(Ack { version: m.version })),
            })
            .await?;
        Ok(m)
    }
}

fn describe(m: &ConfigMessage) -> String {
    match &m.body {
        Some(Body::Snapshot(s)) => format!("snapshot, config_json {} bytes", s.config_json.len()),
        Some(Body::Delta(d)) => format!("delta of {} changes", d.changes.len()),
        None => "no body".into(),
    }
}

fn arg(name: &str, default: usize) -> Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or_else(|| anyhow!("{name} needs a value"))?
            .parse()
            .with_context(|| name.to_string()),
        None => Ok(default),
    }
}

fn main() -> Result<()> {
    let clusters = arg("--clusters", 10)?;
    let per = arg("--routers-per-cluster", 1000)?;
    let cluster = Cluster::start_with(1, &[INSECURE]);
    let ep = cluster.endpoints();
    println!("{clusters} clusters x {per} routers (each with its own service), one control node");

    let scoped_doc = doc(clusters, per, true, false);
    println!("applied document: {} bytes", scoped_doc.len());
    let v1 = apply_yaml(&ep, &scoped_doc).map_err(|e| anyhow!("apply: {e}"))?;
    let (scoped, c1_first) = block_on(async {
        let mut s0 = open(&ep, "c0-proxy", "c0", 0).await?;
        let t = Instant::now();
        let m = s0.next().await?;
        let first = t.elapsed();
        let mut s1 = open(&ep, "c1-proxy", "c1", 0).await?;
        let m1 = s1.next().await?;
        anyhow::Ok(((m, first, s0), (m1, s1)))
    })?;
    let (m_scoped, t_scoped, mut s0) = scoped;
    let (_, mut s1) = c1_first;
    println!(
        "cluster c0 proxy, first message at v{}: {} bytes on the wire ({}) in {:?}",
        m_scoped.version,
        m_scoped.encoded_len(),
        describe(&m_scoped),
        t_scoped
    );
    assert_eq!(m_scoped.version, v1);

    // One router of c0 changes: the delta each cluster's proxy receives.
    let v2 = apply_yaml(&ep, &doc(clusters, per, true, true)).map_err(|e| anyhow!("{e}"))?;
    let (d0, d1) = block_on(async { anyhow::Ok((s0.next().await?, s1.next().await?)) })?;
    assert_eq!((d0.version, d1.version), (v2, v2));
    println!(
        "one c0 router changed (v{v2}): c0 proxy {} bytes ({}), c1 proxy {} bytes ({})",
        d0.encoded_len(),
        describe(&d0),
        d1.encoded_len(),
        describe(&d1)
    );

    drop((s0, s1));
    // The same routers unscoped: every proxy gets the whole config.
    let whole_doc = doc(clusters, per, false, true);
    let v3 = apply_yaml(&ep, &whole_doc).map_err(|e| anyhow!("{e}"))?;
    let (m_whole, t_whole) = block_on(async {
        let mut s = open(&ep, "whole-proxy", "c0", 0).await?;
        let t = Instant::now();
        let m = s.next().await?;
        anyhow::Ok((m, t.elapsed()))
    })?;
    assert_eq!(m_whole.version, v3);
    println!(
        "unscoped (whole config), first message at v{}: {} bytes on the wire ({}) in {:?}",
        m_whole.version,
        m_whole.encoded_len(),
        describe(&m_whole),
        t_whole
    );
    println!(
        "scoped / whole: {:.1}% of the bytes",
        100.0 * m_scoped.encoded_len() as f64 / m_whole.encoded_len() as f64
    );
    Ok(())
}
