use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Map, Value};
use switchyard_proto::admin::{GetConfigRequest, GetRequest, ListRequest, Resource};

use crate::args::{Format, GetArgs, GetKind, Global};
use crate::client::{connect, status_error};
use crate::output::{cell, print_data, print_table};

pub async fn run(g: &Global, a: GetArgs) -> Result<ExitCode> {
    let mut client = connect(&g.endpoints).await?;
    let (kind, plural) = match a.kind {
        GetKind::Routers => ("router", "routers"),
        GetKind::Services => ("service", "services"),
        GetKind::Middlewares => ("middleware", "middlewares"),
        GetKind::Proxies => return super::proxies::get(g, &mut client, a.name.as_deref()).await,
        GetKind::Certs => {
            return super::certs::get(g, &mut client, a.name.as_deref(), a.consistent).await
        }
        GetKind::Config => {
            let r = client
                .get_config(GetConfigRequest {
                    consistent: a.consistent,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            eprintln!("config version {}", r.version);
            let doc: Value = serde_json::from_str(&r.json).context("decoding config")?;
            let format = if g.output == Format::Table {
                Format::Yaml
            } else {
                g.output
            };
            print_data(format, &doc)?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let (version, resources) = match &a.name {
        Some(name) => {
            let r = client
                .get(GetRequest {
                    kind: kind.into(),
                    name: name.clone(),
                    consistent: a.consistent,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            (r.version, r.resource.into_iter().collect::<Vec<_>>())
        }
        None => {
            let r = client
                .list(ListRequest {
                    kind: kind.into(),
                    consistent: a.consistent,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            (r.version, r.resources)
        }
    };
    eprintln!("config version {version}");
    let parsed: Vec<(String, Value)> = resources
        .into_iter()
        .map(|Resource { name, json, .. }| {
            serde_json::from_str(&json)
                .map(|v| (name.clone(), v))
                .with_context(|| format!("decoding {kind} {name:?}"))
        })
        .collect::<Result<_>>()?;
    match g.output {
        Format::Table => table(a.kind, &parsed),
        f => {
            let items: Map<String, Value> = parsed.into_iter().collect();
            let mut http = Map::new();
            http.insert(plural.into(), Value::Object(items));
            let mut doc = Map::new();
            doc.insert("http".into(), Value::Object(http));
            print_data(f, &Value::Object(doc))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table(kind: GetKind, items: &[(String, Value)]) {
    match kind {
        GetKind::Routers => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|(name, v)| {
                    vec![
                        name.clone(),
                        cell(v.get("rule")),
                        cell(v.get("priority")),
                        cell(v.get("entryPoints")),
                        cell(v.get("middlewares")),
                        cell(v.get("service")),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME",
                    "RULE",
                    "PRIORITY",
                    "ENTRYPOINTS",
                    "MIDDLEWARES",
                    "SERVICE",
                ],
                &rows,
            );
        }
        GetKind::Services => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|(name, v)| {
                    let (ty, body) = v
                        .as_object()
                        .and_then(|o| o.iter().next())
                        .map(|(k, b)| (k.clone(), b.clone()))
                        .unwrap_or_default();
                    let targets = match ty.as_str() {
                        "loadBalancer" => body
                            .get("servers")
                            .and_then(Value::as_array)
                            .map(|s| {
                                s.iter()
                                    .filter_map(|x| x.get("url").and_then(Value::as_str))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default(),
                        "weighted" => body
                            .get("services")
                            .and_then(Value::as_array)
                            .map(|s| {
                                s.iter()
                                    .map(|x| {
                                        format!(
                                            "{}={}",
                                            cell(x.get("name")),
                                            x.get("weight")
                                                .map(|w| w.to_string())
                                                .unwrap_or("1".into())
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default(),
                        "mirroring" | "failover" => cell(body.get("service")),
                        _ => String::new(),
                    };
                    vec![name.clone(), ty, targets]
                })
                .collect();
            print_table(&["NAME", "TYPE", "TARGETS"], &rows);
        }
        _ => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|(name, v)| {
                    let ty = v
                        .as_object()
                        .and_then(|o| o.keys().next().cloned())
                        .unwrap_or_default();
                    vec![name.clone(), ty]
                })
                .collect();
            print_table(&["NAME", "TYPE"], &rows);
        }
    }
}
