//! `switchyard explain tcp SNI`: which TCP router a connection with that SNI would reach (or
//! whether HTTP serves it), evaluated locally on the committed config with the proxy's own TCP
//! muxer ([`switchyard_config::tcp::explain_conn`]), so the answer is what a proxy would do.

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use switchyard_config::tcp::{explain_conn, TcpRequest};
use switchyard_proto::admin::GetConfigRequest;

use crate::args::{ExplainArgs, Format, Global};
use crate::client::{connect, status_error};
use crate::output::print_data;

pub async fn run(g: &Global, a: ExplainArgs) -> Result<ExitCode> {
    let sni = Some(a.url.trim()).filter(|s| !a.plain && !s.is_empty());
    let client_ip = a
        .client_ip
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let mut client = connect(&g.endpoints).await?;
    let r = client
        .get_config(GetConfigRequest {
            consistent: a.consistent,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let value: serde_json::Value = serde_json::from_str(&r.json).context("decoding config")?;
    let cfg = switchyard_config::from_value(value).map_err(|e| anyhow!("config: {e}"))?;
    let cfg = super::explain::for_cluster(cfg, a.cluster.as_deref())?;
    let req = TcpRequest {
        entrypoint: a.entrypoint.as_deref(),
        tls: !a.plain,
        sni,
        client_ip,
        alpn: &a.alpn,
    };
    let ex = explain_conn(&cfg, &req).map_err(|e| anyhow!("{e}"))?;
    eprintln!("config version {}", r.version);
    match g.output {
        Format::Table => {
            match (&ex.router, &ex.http_reason) {
                (Some(router), _) => {
                    println!("tcp router   {router}");
                    println!("service      {}", ex.service.as_deref().unwrap_or("-"));
                    println!("mode         {}", ex.mode.as_deref().unwrap_or("-"));
                }
                (None, Some(why)) => println!("http         {why}"),
                (None, None) => println!("http"),
            }
            let before: Vec<_> = ex.tried.iter().filter(|t| !t.matched).collect();
            if !before.is_empty() {
                println!("\nTCP router(s) that do not match:");
                for t in before {
                    println!(
                        "  {} (priority {}): false: {}",
                        t.name,
                        t.priority,
                        t.failed.join(", ")
                    );
                }
            }
        }
        f => {
            let mut v = serde_json::to_value(&ex)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("version".into(), r.version.into());
            }
            print_data(f, &v)?;
        }
    }
    Ok(if ex.router.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
