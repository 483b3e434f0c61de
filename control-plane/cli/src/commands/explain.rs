//! `switchyard explain METHOD URL`: evaluates the committed config with the proxy's own route
//! compiler and matcher (`switchyard-router`), locally, so the answer is exactly what a proxy
//! would do with that request.
//!
//! The path is the URL's path exactly as written (not the `url` crate's WHATWG-normalised one),
//! put through the entry point's path hygiene with the proxy's own function
//! ([`switchyard_config::paths::entrypoint_path`]), so `http://h/api/../admin` is routed as
//! `/admin`, as the proxy does, unless `--sanitize-path false`.

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use switchyard_config::paths::EncodedCharacters;
use switchyard_proto::admin::GetConfigRequest;
use switchyard_router::url_explain::{explain_url, UrlRequest};

use crate::args::{ExplainArgs, Format, Global};
use crate::client::{connect, status_error};
use crate::output::print_data;

/// How many non-matching routers are listed before the rest are summarised.
const SHOWN: usize = 20;

pub async fn run(g: &Global, a: ExplainArgs) -> Result<ExitCode> {
    if a.method == "tcp" {
        return super::explain_tcp::run(g, a).await;
    }
    let mut encoded = EncodedCharacters::default();
    if let Some(list) = &a.encoded_characters {
        encoded
            .apply_list(list)
            .map_err(|e| anyhow!("--encoded-characters: {e}"))?;
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| anyhow!("-H {h:?}: expected 'Name: value'"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let req = UrlRequest {
        method: &a.method,
        url: &a.url,
        headers: &headers,
        client_ip: a.client_ip,
        entrypoint: a.entrypoint.as_deref(),
        sanitize_path: a.sanitize_path,
        encoded,
    };
    // Refuse a bad URL before asking the cluster.
    url::Url::parse(&a.url).with_context(|| format!("URL {:?}", a.url))?;

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
    let ex = explain_url(&cfg, &req)?;
    eprintln!("config version {}", r.version);

    match g.output {
        Format::Table => {
            if ex.path != ex.raw_path {
                println!("path         {} (sanitized from {})", ex.path, ex.raw_path);
            }
            match &ex.winner {
                Some(w) => {
                    println!("router       {} (priority {})", w.name, w.priority);
                    println!("rule         {}", w.rule);
                    println!(
                        "middlewares  {}",
                        if w.middlewares.is_empty() {
                            "-".to_string()
                        } else {
                            w.middlewares.join(" -> ")
                        }
                    );
                    if let Some(s) = &ex.service {
                        println!("service      {} ({})", w.service, s.kind);
                        for (i, line) in s.targets.iter().enumerate() {
                            println!(
                                "{}{line}",
                                if i == 0 {
                                    "targets      "
                                } else {
                                    "             "
                                }
                            );
                        }
                    }
                }
                None if ex.refused.is_some() => {}
                None => println!("no router matches: the proxy answers 404"),
            }
            if let Some(e) = &ex.refused {
                println!("refused      400 Bad Request: {}", e.reason);
            }
            if !ex.rejected.is_empty() {
                println!("\n{} router(s) tried first, in order:", ex.rejected.len());
                for rj in ex.rejected.iter().take(SHOWN) {
                    println!(
                        "  {} (priority {}): false: {}",
                        rj.name,
                        rj.priority,
                        rj.failed.join(", ")
                    );
                }
                if ex.rejected.len() > SHOWN {
                    println!(
                        "  … and {} more (-o json lists all)",
                        ex.rejected.len() - SHOWN
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
    Ok(if ex.served() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `cfg` as the proxies of `cluster` receive it (`--cluster`), or whole.
pub(super) fn for_cluster(
    cfg: switchyard_config::DynamicConfig,
    cluster: Option<&str>,
) -> Result<switchyard_config::DynamicConfig> {
    match cluster {
        None => Ok(cfg),
        Some(name) => {
            if let Some(problem) = switchyard_config::scope::cluster_name_problem(name) {
                return Err(anyhow!("--cluster {name:?}: {problem}"));
            }
            Ok(switchyard_config::scope::for_cluster(&cfg, name))
        }
    }
}
