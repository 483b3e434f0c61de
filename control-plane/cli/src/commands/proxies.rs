//! `get proxies` and `apply --wait`: what every proxy holds.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use serde_json::json;
use switchyard_proto::admin::{ListProxiesRequest, ListProxiesResponse, ProxyStatus};

use crate::args::{Format, Global};
use crate::client::status_error;
use crate::output::{print_data, print_table};

async fn list(client: &mut crate::client::Client) -> Result<ListProxiesResponse> {
    Ok(client
        .list_proxies(ListProxiesRequest { local_only: false })
        .await
        .map_err(status_error)?
        .into_inner())
}

fn since(ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let s = now.saturating_sub(ms) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        _ => format!("{}h{}m ago", s / 3600, (s % 3600) / 60),
    }
}

pub async fn get(
    g: &Global,
    client: &mut crate::client::Client,
    name: Option<&str>,
) -> Result<ExitCode> {
    let r = list(client).await?;
    let proxies: Vec<&ProxyStatus> = r
        .proxies
        .iter()
        .filter(|p| name.is_none_or(|n| p.proxy_id == n))
        .collect();
    if let Some(n) = name {
        if proxies.is_empty() {
            return Err(anyhow!(
                "proxy {n:?} is not attached to any reachable control node (code: NOT_FOUND)"
            ));
        }
    }
    for id in &r.unreachable_nodes {
        eprintln!("warning: control node {id} could not be asked; its proxies are missing");
    }
    match g.output {
        Format::Table => {
            let rows: Vec<Vec<String>> = proxies
                .iter()
                .map(|p| {
                    let dash = |s: &str| {
                        if s.is_empty() {
                            "-".to_string()
                        } else {
                            s.to_string()
                        }
                    };
                    vec![
                        p.proxy_id.clone(),
                        dash(&p.cluster),
                        dash(&p.region),
                        dash(&p.zone),
                        p.node_id.to_string(),
                        p.applied_version.to_string(),
                        if p.last_nack_version == 0 {
                            "-".into()
                        } else {
                            format!("v{}: {}", p.last_nack_version, p.last_nack_error)
                        },
                        since(p.connected_since_unix_ms),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "CLUSTER",
                    "REGION",
                    "ZONE",
                    "NODE",
                    "VERSION",
                    "LAST NACK",
                    "CONNECTED",
                ],
                &rows,
            );
        }
        f => {
            let items: Vec<_> = proxies
                .iter()
                .map(|p| {
                    json!({
                        "id": p.proxy_id, "cluster": p.cluster, "region": p.region, "zone": p.zone, "labels": p.labels,
                        "node": p.node_id, "appliedVersion": p.applied_version,
                        "lastNackVersion": p.last_nack_version, "lastNackError": p.last_nack_error,
                        "connectedSinceUnixMs": p.connected_since_unix_ms, "peer": p.peer,
                        "build": p.build, "entrypoints": p.entrypoints,
                        "versionCounters": p.version_counters.iter().map(|c| json!({
                            "version": c.version, "requests": c.requests, "errors": c.errors,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            print_data(
                f,
                &json!({"proxies": items, "unreachableNodes": r.unreachable_nodes}),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--wait-selector region=…,zone=…,cluster=…,LABEL=…`.
#[derive(Debug, Default)]
pub struct Selector(Vec<(String, String)>);

impl Selector {
    pub fn parse(s: Option<&str>) -> Result<Selector> {
        let mut out = Vec::new();
        for part in s
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| anyhow!("--wait-selector: {part:?} is not KEY=VALUE"))?;
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(Selector(out))
    }

    pub fn matches(&self, p: &ProxyStatus) -> bool {
        self.0.iter().all(|(k, v)| match k.as_str() {
            "region" => &p.region == v,
            "zone" => &p.zone == v,
            "cluster" => &p.cluster == v,
            "id" => &p.proxy_id == v,
            label => p.labels.get(label) == Some(v),
        })
    }
}

/// What `apply --wait` waits on (see [`Waiter::judge`]).
///
/// The proxies waited on are every matching proxy listed by a reachable control node before the
/// write or at any poll during the wait: a proxy seen once must be seen again at the version
/// (possibly on another node: proxies move when their node dies). A control node that cannot be
/// asked is a warning naming it, not a failure: its proxies fail over to live nodes within
/// seconds and are counted once they attach there. The wait fails when a proxy NACKed the
/// version, or when the timeout passes with a proxy behind or no longer listed.
#[derive(Debug, Default)]
pub struct Waiter {
    expected: std::collections::BTreeSet<String>,
    warned: std::collections::BTreeSet<u64>,
}

/// One look at the cluster's proxy list.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every proxy waited on holds the version: how many.
    Done(usize),
    /// Proxies that refused the version (`id (vN: error)`).
    Refused(Vec<String>),
    /// Proxies behind (`id (at vN)`) and proxies seen before but not listed now.
    Waiting {
        behind: Vec<String>,
        missing: Vec<String>,
    },
}

impl Waiter {
    /// Starts with the matching proxies of a list taken before the write.
    pub fn new(before: Option<&ListProxiesResponse>, selector: &Selector) -> Self {
        let mut w = Waiter::default();
        if let Some(r) = before {
            w.expected.extend(
                r.proxies
                    .iter()
                    .filter(|p| selector.matches(p))
                    .map(|p| p.proxy_id.clone()),
            );
        }
        w
    }

    /// Control nodes of `r` that could not be asked and were not reported yet.
    pub fn new_unreachable(&mut self, r: &ListProxiesResponse) -> Vec<u64> {
        r.unreachable_nodes
            .iter()
            .copied()
            .filter(|id| self.warned.insert(*id))
            .collect()
    }

    /// The progress line of a wait: `waiting for config version V: A/T proxies ACKed (zone
    /// a/t, …)`. Counts the proxies [`Waiter::judge`] waits on (so call it after `judge`); a
    /// proxy waited on but not listed now counts as not ACKed, under zone `?`; proxies without a
    /// zone are under `-`.
    pub fn progress(&self, r: &ListProxiesResponse, version: u64, selector: &Selector) -> String {
        let mut zones: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        let mut listed = std::collections::BTreeSet::new();
        for p in r.proxies.iter().filter(|p| selector.matches(p)) {
            if !listed.insert(p.proxy_id.as_str()) {
                continue;
            }
            let z = zones
                .entry(if p.zone.is_empty() { "-" } else { &p.zone })
                .or_default();
            z.1 += 1;
            if p.applied_version >= version {
                z.0 += 1;
            }
        }
        let gone = self
            .expected
            .iter()
            .filter(|id| !listed.contains(id.as_str()))
            .count();
        if gone > 0 {
            zones.entry("?").or_default().1 += gone;
        }
        let (acked, total) = zones
            .values()
            .fold((0, 0), |(a, t), (za, zt)| (a + za, t + zt));
        let by_zone: Vec<String> = zones
            .iter()
            .map(|(z, (a, t))| format!("{z} {a}/{t}"))
            .collect();
        format!(
            "waiting for config version {version}: {acked}/{total} proxies ACKed ({})",
            by_zone.join(", ")
        )
    }

    /// Judges one list against `version`.
    pub fn judge(&mut self, r: &ListProxiesResponse, version: u64, selector: &Selector) -> Verdict {
        let matching: Vec<&ProxyStatus> =
            r.proxies.iter().filter(|p| selector.matches(p)).collect();
        self.expected
            .extend(matching.iter().map(|p| p.proxy_id.clone()));
        let refused: Vec<String> = matching
            .iter()
            .filter(|p| p.last_nack_version >= version && p.applied_version < version)
            .map(|p| {
                format!(
                    "{} (v{}: {})",
                    p.proxy_id, p.last_nack_version, p.last_nack_error
                )
            })
            .collect();
        if !refused.is_empty() {
            return Verdict::Refused(refused);
        }
        let behind: Vec<String> = matching
            .iter()
            .filter(|p| p.applied_version < version)
            .map(|p| format!("{} (at v{})", p.proxy_id, p.applied_version))
            .collect();
        let missing: Vec<String> = self
            .expected
            .iter()
            .filter(|id| !matching.iter().any(|p| &p.proxy_id == *id))
            .cloned()
            .collect();
        if behind.is_empty() && missing.is_empty() {
            Verdict::Done(self.expected.len())
        } else {
            Verdict::Waiting { behind, missing }
        }
    }
}

/// The proxy list before a write, for [`wait_for_version`] (`None` when it cannot be had: the
/// wait then starts from the first list after the write).
pub async fn list_before(client: &mut crate::client::Client) -> Option<ListProxiesResponse> {
    list(client).await.ok()
}

/// Where the final line of [`wait_for_version`] goes: standard output after a table, standard
/// error after a JSON or YAML document (standard output stays one clean document for `jq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    Stdout,
    Stderr,
}

/// Polls the cluster's proxy list until every proxy waited on ([`Waiter`]) ACKed `version`, one
/// NACKed it, or `timeout` passes. Control nodes that cannot be asked are named on stderr.
/// When standard error is a terminal, a progress line (proxies ACKed / total, by zone; see
/// [`Waiter::progress`]) is redrawn in place at each poll and erased at the end; piped, nothing
/// but warnings and the final line is written.
pub async fn wait_for_version(
    client: &mut crate::client::Client,
    before: Option<&ListProxiesResponse>,
    version: u64,
    timeout: Duration,
    selector: &Selector,
    summary: Summary,
) -> Result<()> {
    use std::io::{IsTerminal, Write};
    let deadline = Instant::now() + timeout;
    let mut w = Waiter::new(before, selector);
    let live = std::io::stderr().is_terminal();
    // Erases the progress line (a no-op when none was drawn).
    let clear = |drawn: &mut bool| {
        if std::mem::take(drawn) {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    };
    let mut drawn = false;
    loop {
        let r = list(client).await?;
        let unreachable = w.new_unreachable(&r);
        if !unreachable.is_empty() {
            clear(&mut drawn);
        }
        for id in unreachable {
            eprintln!(
                "warning: control node {id} could not be asked; proxies attached only to it are counted once they re-attach to a reachable node"
            );
        }
        let verdict = w.judge(&r, version, selector);
        if live {
            eprint!("\r\x1b[2K{}", w.progress(&r, version, selector));
            let _ = std::io::stderr().flush();
            drawn = true;
        }
        let (behind, missing) = match verdict {
            Verdict::Done(n) => {
                clear(&mut drawn);
                let line = format!(
                    "{n} prox{} at config version {version} or later",
                    if n == 1 { "y" } else { "ies" }
                );
                match summary {
                    Summary::Stdout => println!("{line}"),
                    Summary::Stderr => eprintln!("{line}"),
                }
                return Ok(());
            }
            Verdict::Refused(refused) => {
                clear(&mut drawn);
                return Err(anyhow!(
                    "proxies refused config version {version}: {}",
                    refused.join("; ")
                ));
            }
            Verdict::Waiting { behind, missing } => (behind, missing),
        };
        if Instant::now() >= deadline {
            let mut why = Vec::new();
            if !behind.is_empty() {
                why.push(format!("not acknowledged by {}", behind.join(", ")));
            }
            if !missing.is_empty() {
                why.push(format!(
                    "no longer attached to a reachable control node: {}",
                    missing.join(", ")
                ));
            }
            if !w.warned.is_empty() {
                why.push(format!(
                    "control nodes {:?} could not be asked",
                    w.warned.iter().collect::<Vec<_>>()
                ));
            }
            clear(&mut drawn);
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for config version {version}: {}",
                why.join("; ")
            ));
        }
        // Polling interval of the CLI, not a synchronisation in tests.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, applied: u64, nack: u64) -> ProxyStatus {
        ProxyStatus {
            proxy_id: id.into(),
            applied_version: applied,
            last_nack_version: nack,
            last_nack_error: if nack > 0 {
                "bad".into()
            } else {
                String::new()
            },
            zone: "a".into(),
            ..ProxyStatus::default()
        }
    }

    fn list(proxies: Vec<ProxyStatus>, unreachable: Vec<u64>) -> ListProxiesResponse {
        ListProxiesResponse {
            proxies,
            unreachable_nodes: unreachable,
        }
    }

    #[test]
    fn an_unreachable_node_is_a_warning_not_a_failure() {
        let sel = Selector::default();
        let before = list(vec![p("a", 4, 0), p("b", 4, 0)], vec![1]);
        let mut w = Waiter::new(Some(&before), &sel);
        assert_eq!(w.new_unreachable(&before), vec![1]);
        assert_eq!(w.new_unreachable(&before), Vec::<u64>::new(), "named once");
        let now = list(vec![p("a", 5, 0), p("b", 5, 0)], vec![1]);
        assert_eq!(w.judge(&now, 5, &sel), Verdict::Done(2));
    }

    #[test]
    fn a_proxy_seen_once_must_be_seen_again_at_the_version() {
        let sel = Selector::default();
        let before = list(vec![p("a", 4, 0), p("b", 4, 0)], vec![]);
        let mut w = Waiter::new(Some(&before), &sel);
        // `b` is moving (its node died): not listed yet.
        let now = list(vec![p("a", 5, 0)], vec![2]);
        assert_eq!(
            w.judge(&now, 5, &sel),
            Verdict::Waiting {
                behind: vec![],
                missing: vec!["b".into()]
            }
        );
        // Re-attached elsewhere, behind, then caught up.
        let now = list(vec![p("a", 5, 0), p("b", 4, 0)], vec![2]);
        assert_eq!(
            w.judge(&now, 5, &sel),
            Verdict::Waiting {
                behind: vec!["b (at v4)".into()],
                missing: vec![]
            }
        );
        // A proxy first seen during the wait is waited on too.
        let now = list(vec![p("a", 5, 0), p("b", 6, 0), p("c", 3, 0)], vec![]);
        assert!(matches!(w.judge(&now, 5, &sel), Verdict::Waiting { .. }));
        let now = list(vec![p("a", 5, 0), p("b", 6, 0), p("c", 5, 0)], vec![]);
        assert_eq!(w.judge(&now, 5, &sel), Verdict::Done(3));
    }

    #[test]
    fn progress_counts_acks_by_zone_and_proxies_gone_missing() {
        let sel = Selector::default();
        let mut b = p("b", 4, 0);
        b.zone = "b".into();
        let mut nozone = p("n", 5, 0);
        nozone.zone.clear();
        let before = list(vec![p("a", 4, 0), b.clone(), p("gone", 4, 0)], vec![]);
        let mut w = Waiter::new(Some(&before), &sel);
        let now = list(vec![p("a", 5, 0), b, nozone], vec![]);
        assert!(matches!(w.judge(&now, 5, &sel), Verdict::Waiting { .. }));
        assert_eq!(
            w.progress(&now, 5, &sel),
            "waiting for config version 5: 2/4 proxies ACKed (- 1/1, ? 0/1, a 1/1, b 0/1)"
        );
        let only_b = Selector::parse(Some("zone=b")).expect("selector");
        let w = Waiter::new(None, &only_b);
        assert_eq!(
            w.progress(&now, 5, &only_b),
            "waiting for config version 5: 0/1 proxies ACKed (b 0/1)"
        );
    }

    #[test]
    fn a_nack_fails_and_the_selector_limits_the_set() {
        let sel = Selector::parse(Some("zone=b")).expect("selector");
        let mut w = Waiter::new(None, &sel);
        let mut other = p("z", 1, 5);
        other.zone = "b".into();
        let now = list(vec![p("a", 1, 5), other], vec![]);
        assert_eq!(
            w.judge(&now, 5, &sel),
            Verdict::Refused(vec!["z (v5: bad)".into()])
        );
        let mut w = Waiter::new(None, &sel);
        let now = list(vec![p("a", 1, 5)], vec![]);
        assert_eq!(w.judge(&now, 5, &sel), Verdict::Done(0));
    }
}
