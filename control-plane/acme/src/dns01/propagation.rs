//! The propagation check: wait until the TXT records are visible at the resolvers (any one, or
//! every one with `requireAllRNS`) and, unless `disableANSChecks`, at every authoritative name
//! server of the zone (found through the resolvers), as lego does.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use switchyard_config::acme::parse_dns_server;
use switchyard_config::DnsChallenge;

use super::{wire, TxtRecord};

/// How long records may take to propagate (lego's default for its hook providers).
pub const TIMEOUT: Duration = Duration::from_secs(60);
const INTERVAL: Duration = Duration::from_millis(500);

/// The resolvers of `d`, else the system's (`/etc/resolv.conf`), else 127.0.0.1:53.
pub fn resolvers(d: &DnsChallenge) -> Vec<SocketAddr> {
    let configured: Vec<SocketAddr> = d
        .resolvers
        .iter()
        .filter_map(|r| parse_dns_server(r))
        .collect();
    if !configured.is_empty() {
        return configured;
    }
    let system: Vec<SocketAddr> = std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| parse_dns_server(a.trim()))
        .collect();
    if system.is_empty() {
        vec![([127, 0, 0, 1], 53).into()]
    } else {
        system
    }
}

/// The TXT values `server` returns for `name`.
pub(crate) async fn txt_values(
    server: SocketAddr,
    name: &Name,
) -> Result<BTreeSet<String>, String> {
    let answer = wire::query(server, name, RecordType::TXT).await?;
    Ok(answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).to_string())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect())
}

/// The addresses of the authoritative name servers of the zone holding `name`.
async fn authoritative(resolver: SocketAddr, name: &Name) -> Result<Vec<SocketAddr>, String> {
    let zone = wire::find_zone(resolver, name).await?;
    let ns = wire::query(resolver, &zone, RecordType::NS).await?;
    let mut out = Vec::new();
    for r in &ns.answers {
        let RData::NS(host) = &r.data else { continue };
        for ty in [RecordType::A, RecordType::AAAA] {
            let a = wire::query(resolver, &host.0, ty).await?;
            for r in &a.answers {
                match &r.data {
                    RData::A(ip) => out.push(SocketAddr::new(ip.0.into(), 53)),
                    RData::AAAA(ip) => out.push(SocketAddr::new(ip.0.into(), 53)),
                    _ => {}
                }
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no authoritative name server found for zone {zone}"
        ));
    }
    Ok(out)
}

/// One check of every record; `Err` says what is not visible yet.
async fn check_once(d: &DnsChallenge, records: &[TxtRecord]) -> Result<(), String> {
    let resolvers = resolvers(d);
    let prop = d.propagation.clone().unwrap_or_default();
    let require_all = prop.require_all_rns.unwrap_or(false);
    for r in records {
        let name = Name::from_ascii(&r.fqdn).map_err(|e| format!("{}: {e}", r.fqdn))?;
        let mut seen = 0;
        let mut last = String::new();
        for s in &resolvers {
            match txt_values(*s, &name).await {
                Ok(v) if v.contains(&r.value) => seen += 1,
                Ok(_) => last = format!("{} not yet visible at {s}", r.fqdn),
                Err(e) => last = e,
            }
        }
        if seen == 0 || (require_all && seen < resolvers.len()) {
            return Err(last);
        }
        if !prop.disable_ans_checks.unwrap_or(false) {
            let resolver = resolvers[0];
            for ns in authoritative(resolver, &name).await? {
                let v = txt_values(ns, &name).await?;
                if !v.contains(&r.value) {
                    return Err(format!("{} not yet visible at authoritative {ns}", r.fqdn));
                }
            }
        }
    }
    Ok(())
}

/// Waits until every record is visible, at most [`TIMEOUT`].
pub async fn wait(d: &DnsChallenge, records: &[TxtRecord]) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let err = match check_once(d, records).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "DNS propagation check timed out after {TIMEOUT:?}: {err}"
            ));
        }
        tracing::debug!(error = %err, "ACME: DNS-01 records not visible yet");
        tokio::time::sleep(INTERVAL).await;
    }
}
