//! Rollout: time from a breach to every proxy back on the previous config (BENCHMARKS.md,
//! "Progressive rollout").
//!
//! Starts a real 3-node cluster and `--proxies-per-zone` proxies in each of zone-a, zone-b and
//! zone-c, all serving `app.test` from a healthy backend, with traffic through every proxy. Each
//! run rolls out a change whose new backend answers 500 (`--rollout zone=zone-a,zone=zone-b,*`);
//! the first stage breaches after the bake and the leader rolls back. Measured per run: from the
//! breach (the leader's clock when it proposed the rollback, `rollout status`'s end time) to the
//! moment every proxy reports the rollback's version on its `/metrics` (polled in a loop, a few
//! ms per round), and from `apply --rollout` returning to that moment.
//!
//!   cargo run -p switchyard-e2e --bin rollout_bench -- [--proxies-per-zone 3] [--runs 5] [--bake 2s]
//!
//! (Needs the binaries built: `cargo build --bins`.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use switchyard_e2e::backends::{HttpBackend, Mode};
use switchyard_e2e::client::get;
use switchyard_e2e::proxy::{apply_wait, wait_attached, Proxy, ProxySpec, PROXY_SETTLE};
use switchyard_e2e::{cli, cli_stdin, Cluster};

fn app(backend: &HttpBackend) -> String {
    format!(
        "http:\n  routers:\n    app:\n      rule: \"Host(`app.test`)\"\n      service: app-svc\n  services:\n    app-svc:\n      loadBalancer:\n        servers:\n          - url: \"{}\"\n",
        backend.url()
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn pct(sorted: &[u64], q: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let per_zone: usize = arg(&args, "--proxies-per-zone", "3").parse()?;
    let runs: usize = arg(&args, "--runs", "5").parse()?;
    let bake = arg(&args, "--bake", "2s");

    let c = Cluster::start(3);
    let ep = c.endpoints();
    let mut proxies = Vec::new();
    for z in ["zone-a", "zone-b", "zone-c"] {
        for i in 0..per_zone {
            proxies.push(Proxy::start(
                ProxySpec::new(&format!("p-{z}-{i}"), &ep).zone("r1", z),
            ));
        }
    }
    for p in &proxies {
        wait_attached(&ep, &p.id, PROXY_SETTLE);
    }
    let old = HttpBackend::start("old");
    let bad = HttpBackend::start("bad");
    bad.set_mode(Mode::Status(500));
    let out = apply_wait(&ep, &app(&old), "60s", None);
    if !out.success() {
        bail!("apply --wait: {}", out.stderr);
    }

    // Traffic through every proxy for the whole run (bounded: 10 minutes at most).
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = proxies.iter().map(|p| p.web().to_string()).collect();
    let s = stop.clone();
    let traffic = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(600);
        while !s.load(Ordering::Relaxed) && Instant::now() < end {
            for a in &addrs {
                let _ = get(a, "app.test", "/");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });

    let mut breach_to_back = Vec::new();
    let mut apply_to_back = Vec::new();
    for run in 0..runs {
        let out = cli_stdin(
            &ep,
            &[
                "apply",
                "-f",
                "-",
                "--rollout",
                "zone=zone-a,zone=zone-b,*",
                "--bake",
                &bake,
            ],
            &app(&bad),
        );
        if !out.success() {
            bail!("apply --rollout: {}", out.stderr);
        }
        let applied = Instant::now();
        // Wait for the rollback, then for every proxy to serve its version.
        let deadline = Instant::now() + Duration::from_secs(120);
        let (rollback_version, ended_at) = loop {
            if Instant::now() > deadline {
                bail!("run {run}: no rollback within 120 s");
            }
            let st = cli(&ep, &["-o", "json", "rollout", "status"]);
            if st.success() {
                let v = st.json();
                match v["status"].as_str() {
                    Some("rolled-back") => {
                        break (
                            v["rollbackVersion"].as_u64().context("rollbackVersion")?,
                            v["endedAtUnixMs"].as_u64().context("endedAtUnixMs")?,
                        )
                    }
                    Some("running") => {}
                    other => bail!("run {run}: unexpected rollout status {other:?}: {v}"),
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let back_at = loop {
            if Instant::now() > deadline {
                bail!("run {run}: proxies not back within 120 s");
            }
            let mut all = true;
            for p in &proxies {
                if p.config_version().map_err(|e| anyhow!(e))? < rollback_version {
                    all = false;
                    break;
                }
            }
            if all {
                break now_ms();
            }
        };
        let b = back_at.saturating_sub(ended_at);
        let a = applied.elapsed().as_millis() as u64;
        println!("run {run}: breach -> every proxy back {b} ms; apply -> every proxy back {a} ms");
        breach_to_back.push(b);
        apply_to_back.push(a);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.join();
    breach_to_back.sort_unstable();
    apply_to_back.sort_unstable();
    println!(
        "{} proxies, bake {bake}, {runs} runs: breach -> every proxy on the previous config p50 {} ms, max {} ms; apply -> every proxy back p50 {} ms, max {} ms",
        proxies.len(),
        pct(&breach_to_back, 0.5),
        pct(&breach_to_back, 1.0),
        pct(&apply_to_back, 0.5),
        pct(&apply_to_back, 1.0),
    );
    Ok(())
}
