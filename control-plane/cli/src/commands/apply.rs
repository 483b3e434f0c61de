use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use switchyard_proto::admin::ApplyRequest;

use crate::args::{ApplyArgs, Format, Global};
use crate::client::{connect, status_error};
use crate::output::print_data;

/// Replace certificate/key/CA file paths by the files' contents
/// ([`switchyard_config::inline_files`]), relative to the document's directory (the current
/// directory for stdin). A document without file paths is sent as written; one with paths is
/// sent as JSON with the contents inline. A document that does not parse is sent as written so
/// the API reports the error. File contents are never printed.
fn upload_files(document: String, file: &str) -> Result<String> {
    let Ok(mut cfg) = switchyard_config::parse_document(&document) else {
        return Ok(document);
    };
    let base = if file == "-" {
        std::path::PathBuf::from(".")
    } else {
        std::path::Path::new(file)
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default()
    };
    let changed = switchyard_config::inline_files(&mut cfg, |path| {
        let p = base.join(path);
        std::fs::read_to_string(&p).map_err(|e| e.to_string())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !changed {
        return Ok(document);
    }
    serde_json::to_string(&cfg).context("encoding the document")
}

pub async fn run(g: &Global, a: ApplyArgs) -> Result<ExitCode> {
    let document = if a.file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file))?
    };
    // Refused here already (the API refuses it too): no point sending it.
    switchyard_config::check_document_size(&document).map_err(|e| anyhow::anyhow!("{e}"))?;
    let document = upload_files(document, &a.file)?;
    let wait = match &a.wait {
        Some(t) if !a.dry_run => Some((
            super::server::duration("wait", t)?,
            super::proxies::Selector::parse(a.wait_selector.as_deref())?,
        )),
        _ => None,
    };
    let rollout = a
        .rollout
        .as_deref()
        .map(|stages| {
            super::rollout::plan(
                stages,
                a.bake.as_deref(),
                a.max_error_rate.as_deref(),
                a.max_p99.as_deref(),
            )
        })
        .transpose()?;
    let rolling = rollout.is_some();
    let mut client = connect(&g.endpoints).await?;
    // The proxies listed before the write are waited on even if they move meanwhile.
    let before = match &wait {
        Some(_) => super::proxies::list_before(&mut client).await,
        None => None,
    };
    let mut req = tonic::Request::new(ApplyRequest {
        document,
        prune: a.prune,
        dry_run: a.dry_run,
        rollout,
    });
    if let Some(tp) = &a.traceparent {
        let v = tp
            .parse()
            .map_err(|_| anyhow::anyhow!("--traceparent {tp:?}: not a valid metadata value"))?;
        req.metadata_mut().insert("traceparent", v);
    }
    let r = client.apply(req).await.map_err(status_error)?.into_inner();
    match g.output {
        Format::Table => {
            for c in &r.changes {
                let verb = match c.action.as_str() {
                    "create" => "created",
                    "update" => "updated",
                    "delete" => "deleted",
                    other => other,
                };
                let suffix = if r.dry_run { " (dry run)" } else { "" };
                println!("{}/{} {verb}{suffix}", c.kind, c.name);
            }
            if r.dry_run {
                println!(
                    "dry run: {} change(s) against config version {}; nothing written",
                    r.changes.len(),
                    r.version
                );
            } else if r.changes.is_empty() {
                println!("unchanged: config version {}", r.version);
            } else if rolling {
                println!(
                    "rollout started: config version {} (follow it with `switchyard rollout status`)",
                    r.version
                );
            } else {
                println!("applied: config version {}", r.version);
            }
            if !r.trace_id.is_empty() {
                eprintln!("trace id: {}", r.trace_id);
            }
        }
        f => {
            let changes: Vec<_> = r
                .changes
                .iter()
                .map(|c| json!({"kind": c.kind, "name": c.name, "action": c.action}))
                .collect();
            let mut out = json!({"version": r.version, "dryRun": r.dry_run, "changes": changes});
            if !r.trace_id.is_empty() {
                out["traceId"] = json!(r.trace_id);
            }
            print_data(f, &out)?;
        }
    }
    if let (Some(stages), false, false) = (&a.rollout, r.dry_run, r.changes.is_empty()) {
        super::rollout::warn_unmatched(&mut client, stages).await;
    }
    if let Some((timeout, selector)) = wait {
        super::proxies::wait_for_version(
            &mut client,
            before.as_ref(),
            r.version,
            timeout,
            &selector,
            match g.output {
                Format::Table => super::proxies::Summary::Stdout,
                _ => super::proxies::Summary::Stderr,
            },
        )
        .await?;
    }
    Ok(ExitCode::SUCCESS)
}
