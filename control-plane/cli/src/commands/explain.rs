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
use serde_json::json;
use switchyard_config::paths::{entrypoint_path, EncodedCharacters};
use switchyard_config::rules::RequestView;
use switchyard_config::{DynamicConfig, Service};
use switchyard_proto::admin::GetConfigRequest;

use crate::args::{ExplainArgs, Format, Global};
use crate::client::{connect, status_error};
use crate::output::print_data;

/// How many non-matching routers are listed before the rest are summarised.
const SHOWN: usize = 20;

fn strip_provider(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// Where a service sends requests, one line per target.
fn targets(cfg: &DynamicConfig, name: &str) -> (String, Vec<String>) {
    let Some(svc): Option<&Service> = cfg.http.services.get(strip_provider(name)) else {
        return ("missing".into(), Vec::new());
    };
    if let Some(lb) = &svc.load_balancer {
        let servers = lb
            .servers
            .iter()
            .map(|s| {
                let mut line = s.url.clone();
                let mut tags = Vec::new();
                if let Some(w) = s.weight {
                    tags.push(format!("weight {w}"));
                }
                if let Some(z) = &s.zone {
                    tags.push(format!("zone {z}"));
                }
                if let Some(r) = &s.region {
                    tags.push(format!("region {r}"));
                }
                if !tags.is_empty() {
                    line.push_str(&format!(" ({})", tags.join(", ")));
                }
                line
            })
            .collect();
        return ("loadBalancer".into(), servers);
    }
    if let Some(w) = &svc.weighted {
        let t = w
            .services
            .iter()
            .map(|s| format!("service {} (weight {})", s.name, s.weight.unwrap_or(1)))
            .collect();
        return ("weighted".into(), t);
    }
    if let Some(m) = &svc.mirroring {
        let mut t = vec![format!("service {} (main)", m.service)];
        t.extend(
            m.mirrors
                .iter()
                .map(|x| format!("service {} (mirror {}%)", x.name, x.percent)),
        );
        return ("mirroring".into(), t);
    }
    if let Some(f) = &svc.failover {
        return (
            "failover".into(),
            vec![
                format!("service {} (main)", f.service),
                format!("service {} (fallback)", f.fallback),
            ],
        );
    }
    ("unknown".into(), Vec::new())
}

/// The path and query of an absolute URL exactly as written (`url::Url` would resolve dot
/// segments and re-encode the path before the proxy's own rules could): the path runs from the
/// end of the authority to `?` or `#` (`/` when empty), the query from `?` to `#`.
fn raw_path_and_query(url: &str) -> (String, Option<String>) {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let target = after_scheme
        .find(['/', '?', '#'])
        .map_or("", |i| &after_scheme[i..]);
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    (path.to_string(), query)
}

pub async fn run(g: &Global, a: ExplainArgs) -> Result<ExitCode> {
    let url = url::Url::parse(&a.url).with_context(|| format!("URL {:?}", a.url))?;
    let mut encoded = EncodedCharacters::default();
    if let Some(list) = &a.encoded_characters {
        encoded
            .apply_list(list)
            .map_err(|e| anyhow!("--encoded-characters: {e}"))?;
    }
    let (raw_path, query) = raw_path_and_query(&a.url);
    // The proxy's stage 2: a malformed escape is a 400 before any router is looked at.
    let path = match entrypoint_path(&raw_path, a.sanitize_path) {
        Ok(p) => p.into_owned(),
        Err(e) => {
            match g.output {
                Format::Table => println!("refused      400 Bad Request: {e}"),
                f => print_data(
                    f,
                    &json!({"path": raw_path, "rawPath": raw_path, "winner": null,
                            "refused": {"status": 400, "reason": e.to_string()}}),
                )?,
            }
            return Ok(ExitCode::from(1));
        }
    };
    let mut host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => String::new(),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| anyhow!("-H {h:?}: expected 'Name: value'"))?;
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        if k.eq_ignore_ascii_case("host") {
            host = v;
        } else {
            headers.push((k, v));
        }
    }
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let method = a.method.to_ascii_uppercase();
    let req = RequestView {
        method: &method,
        host: &host,
        path: &path,
        query: query.as_deref(),
        headers: &header_refs,
        client_ip: a.client_ip,
    };

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
    let entrypoints: Vec<String> = a.entrypoint.iter().cloned().collect();
    let table =
        switchyard_router::compile(&cfg, a.entrypoint.as_ref().map(|_| entrypoints.as_slice()))
            .map_err(|e| anyhow!("config: {e}"))?;
    // The proxy routes https:// requests (TLS connections) to routers with `tls` only, and
    // http:// requests to the others.
    let ex = table.explain_conn(
        a.entrypoint.as_deref().unwrap_or(""),
        Some(url.scheme() == "https"),
        &req,
    );
    eprintln!("config version {}", r.version);
    // The proxy's stage 4: the entry point's encodedCharacters, once a router matched.
    let refused = match &ex.winner {
        Some(_) => encoded.check(&path).err(),
        None => None,
    };

    let service = ex.winner.as_ref().map(|w| targets(&cfg, &w.service));
    match g.output {
        Format::Table => {
            if path != raw_path {
                println!("path         {path} (sanitized from {raw_path})");
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
                    if let Some((kind, t)) = &service {
                        println!("service      {} ({kind})", w.service);
                        for (i, line) in t.iter().enumerate() {
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
                None => println!("no router matches: the proxy answers 404"),
            }
            if let Some(e) = &refused {
                println!("refused      400 Bad Request: {e}");
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
            let svc = service.map(|(kind, t)| json!({"kind": kind, "targets": t}));
            print_data(
                f,
                &json!({"version": r.version, "path": path, "rawPath": raw_path,
                        "winner": ex.winner, "service": svc, "rejected": ex.rejected,
                        "refused": refused.as_ref().map(|e| json!({"status": 400, "reason": e.to_string()}))}),
            )?;
        }
    }
    Ok(if ex.winner.is_some() && refused.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::raw_path_and_query;

    #[test]
    fn raw_path_is_taken_as_written() {
        let cases = [
            ("http://h/api/../admin", "/api/../admin", None),
            ("http://h:8080/a/%2e%2e/b?x=1#f", "/a/%2e%2e/b", Some("x=1")),
            ("http://h", "/", None),
            ("http://h?q", "/", Some("q")),
            ("https://h#frag", "/", None),
            ("http://h//x/./y", "//x/./y", None),
        ];
        for (url, path, query) in cases {
            let (p, q) = raw_path_and_query(url);
            assert_eq!(p, path, "{url}");
            assert_eq!(q.as_deref(), query, "{url}");
        }
    }
}
