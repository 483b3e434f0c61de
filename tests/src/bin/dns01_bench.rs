//! Time from `apply` of a wildcard route to a served certificate via DNS-01 (BENCHMARKS.md,
//! "TLS (issue 13)"). Real processes from `target/debug` (or `SWITCHYARD_BIN_DIR`): pebble as
//! the CA with `PEBBLE_VA_NOSLEEP=1` (no validation delays), pebble-challtestsrv as its DNS, the
//! `httpreq` provider writing TXT records there, a 3-node cluster and one proxy.
//!
//! `dns01_bench [ROUNDS]`: each round applies a router for `*.appN.test` + `appN.test` (a new
//! certificate) and measures until the proxy serves `x.appN.test` with a certificate that
//! verifies against pebble's root.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use switchyard_e2e::acme::{https_get, port_free_on, HttpReqHook, Pebble, PebbleOpts};
use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::{apply_yaml, wait_attached_to, Cluster, Proxy, ProxySpec, PROXY_SETTLE};

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(Ok(5), |r| r.parse())
        .context("ROUNDS")?;
    let tls_port = port_free_on(&["127.0.0.2"]);
    let pebble = Pebble::start(PebbleOpts {
        always_valid: false,
        http_port: port_free_on(&["127.0.0.2"]),
        tls_port,
        default_ipv4: "127.0.0.2".into(),
    });
    let cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let _proxy = Proxy::start(
        ProxySpec::new("pa", &cluster.node(leader).endpoint())
            .entrypoints(&[])
            .entrypoint_at("websecure", &format!("127.0.0.2:{tls_port}")),
    );
    wait_attached_to(&cluster.node(leader).endpoint(), "pa", leader, PROXY_SETTLE);
    let hook = HttpReqHook::start(&pebble.chall_management, None);
    let backend = HttpBackend::start("app");
    let roots = pebble.roots_pem();
    let addr = format!("127.0.0.2:{tls_port}");
    let mut times = Vec::new();
    println!("round  apply→served (s)");
    for n in 0..rounds {
        let doc = json!({
            "certificatesResolvers": { "dns": { "acme": {
                "email": "ops@example.test",
                "caServer": pebble.directory,
                "caCertificates": [pebble.api_ca_pem()],
                "dnsChallenge": {
                    "provider": "httpreq",
                    "resolvers": [pebble.dns],
                    "propagation": {"disableANSChecks": true},
                    "httpreq": {"endpoint": hook.url()}
                }
            } } },
            "http": {
                "routers": { format!("app{n}"): {
                    "rule": format!("Host(`*.app{n}.test`) || Host(`app{n}.test`)"),
                    "entryPoints": ["websecure"], "service": "app",
                    "tls": { "certResolver": "dns" }
                } },
                "services": { "app": { "loadBalancer": { "servers": [ { "url": backend.url() } ] } } }
            }
        });
        let host = format!("x.app{n}.test");
        let start = Instant::now();
        apply_yaml(&cluster.endpoints(), &doc.to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
        loop {
            if let Ok((200, _, _)) = https_get(&addr, &host, &roots, "/") {
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(120),
                "round {n}: not served within 120 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = start.elapsed().as_secs_f64();
        println!("{n:>5}  {t:.2}");
        times.push(t);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median {:.2} s, min {:.2} s, max {:.2} s over {} rounds ({} certificates issued by pebble)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len(),
        pebble.issued()
    );
    Ok(())
}
