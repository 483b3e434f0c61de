//! Pure decisions: which certificates the config asks for, when they are due, how long to back
//! off. No I/O, no clock: `now` is a parameter.

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_config::duration::parse_go_duration;
use switchyard_config::rules::{rule_host_names, rule_host_names_with_wildcards};
use switchyard_config::{AcmeResolver, DynamicConfig};
use switchyard_store::acme::CertRecord;

/// A certificate some router asks a resolver for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub resolver: String,
    /// First = main domain.
    pub domains: Vec<String>,
}

/// The certificate name of `resolver` + `main`: `<resolver>/<main>`.
pub fn cert_name(resolver: &str, main: &str) -> String {
    format!("{resolver}/{main}")
}

/// Every certificate the config asks for, by name: for each router with `tls.certResolver`
/// naming an ACME resolver, one certificate per `tls.domains` entry (main + SANs), or, without
/// domains, one for the exact names of its `Host(...)` rule. Wildcards (`*.example.com`, in
/// `domains` or a `Host` rule) are kept for DNS-01 resolvers only, as only DNS-01 can prove
/// them. TCP routers that terminate TLS count the same way, with the names of their
/// `HostSNI(...)` matchers (not `*`; `HostSNI` takes no wildcard) in place of `Host`;
/// passthrough routers serve no certificate and ask for none. Two routers asking for the same
/// name merge their SANs.
pub fn wanted(cfg: &DynamicConfig) -> BTreeMap<String, Wanted> {
    let mut out: BTreeMap<String, Wanted> = BTreeMap::new();
    for r in cfg.http.routers.values() {
        let Some(tls) = &r.tls else { continue };
        want(
            cfg,
            tls.cert_resolver.as_deref(),
            &tls.domains,
            |wildcards| {
                if wildcards {
                    rule_host_names_with_wildcards(&r.rule)
                } else {
                    rule_host_names(&r.rule)
                }
            },
            &mut out,
        );
    }
    for r in cfg.tcp.routers.values() {
        let Some(tls) = r.tls.as_ref().filter(|t| !t.passthrough) else {
            continue;
        };
        want(
            cfg,
            tls.cert_resolver.as_deref(),
            &tls.domains,
            |_| tcp_host_names(&r.rule),
            &mut out,
        );
    }
    out
}

/// The exact names of a TCP rule's `HostSNI(...)` matchers (lowercase, sorted, deduplicated,
/// `*` left out). Empty when the rule does not parse.
pub fn tcp_host_names(rule: &str) -> Vec<String> {
    let Ok(c) = switchyard_config::tcp::compile(rule) else {
        return Vec::new();
    };
    let mut out: Vec<String> = c
        .host_sni()
        .iter()
        .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty() && h != "*" && !h.contains('*'))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Add what one router (HTTP or TCP) asks `resolver` for to `out`.
fn want(
    cfg: &DynamicConfig,
    resolver: Option<&str>,
    domains: &[switchyard_config::Domain],
    rule_names: impl Fn(bool) -> Vec<String>,
    out: &mut BTreeMap<String, Wanted>,
) {
    let Some(resolver) = resolver else {
        return;
    };
    let resolver = resolver.split('@').next().unwrap_or(resolver);
    let Some(acme) = cfg
        .certificates_resolvers
        .get(resolver)
        .and_then(|c| c.acme.as_ref())
    else {
        return;
    };
    // Only DNS-01 proves control of a whole zone: wildcards need it (as in Traefik).
    let wildcards = acme.dns_challenge.is_some();
    let mut sets: Vec<Vec<String>> = Vec::new();
    if domains.is_empty() {
        let hosts = rule_names(wildcards);
        if !hosts.is_empty() {
            sets.push(hosts);
        }
    } else {
        for d in domains {
            let mut names: Vec<String> = Vec::new();
            for n in d.main.iter().chain(d.sans.iter()) {
                let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
                if !n.is_empty() && (wildcards || !n.starts_with("*.")) && !names.contains(&n) {
                    names.push(n);
                }
            }
            if !names.is_empty() {
                sets.push(names);
            }
        }
    }
    for names in sets {
        let name = cert_name(resolver, &names[0]);
        let w = out.entry(name).or_insert_with(|| Wanted {
            resolver: resolver.to_string(),
            domains: Vec::new(),
        });
        for n in names {
            if !w.domains.contains(&n) {
                w.domains.push(n);
            }
        }
    }
}

fn go_duration(v: &Option<String>) -> Option<Duration> {
    let ns = parse_go_duration(v.as_deref()?).ok()?;
    (ns > 0).then(|| Duration::from_nanos(ns as u64))
}

/// Renewal window: `renewBefore`, else derived from `certificatesDuration` as Traefik does
/// (≥ 1 year: 4 months; ≥ 90 days: 30 days; ≥ 7 days: 1 day; ≥ 24 h: 6 h; shorter: 20 min).
pub fn renew_before(a: &AcmeResolver) -> Duration {
    if let Some(d) = go_duration(&a.renew_before) {
        return d;
    }
    let hours = a.certificates_duration.unwrap_or(2160).max(1) as u64;
    let h = Duration::from_secs(3600);
    match hours {
        x if x >= 365 * 24 => h * 24 * 30 * 4,
        x if x >= 90 * 24 => h * 24 * 30,
        x if x >= 7 * 24 => h * 24,
        x if x >= 24 => h * 6,
        _ => Duration::from_secs(20 * 60),
    }
}

/// How often certificates are checked: `renewCheckInterval`, else as Traefik (1 day for ≥ 90
/// days, 1 h for ≥ 7 days, 10 min for shorter lifetimes).
pub fn check_interval(a: &AcmeResolver) -> Duration {
    if let Some(d) = go_duration(&a.renew_check_interval) {
        return d;
    }
    let hours = a.certificates_duration.unwrap_or(2160).max(1) as u64;
    match hours {
        x if x >= 90 * 24 => Duration::from_secs(24 * 3600),
        x if x >= 7 * 24 => Duration::from_secs(3600),
        _ => Duration::from_secs(600),
    }
}

/// A deterministic jitter in `[0, min(window/10, 1 h))` per certificate serial, so that renewals
/// of many certificates issued together spread out, and every leader computes the same time.
pub fn jitter(window: Duration, serial: &str) -> Duration {
    let span = (window / 10).min(Duration::from_secs(3600)).as_secs();
    if span == 0 {
        return Duration::ZERO;
    }
    // FNV-1a: stable across processes and versions.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in serial.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    Duration::from_secs(h % span)
}

/// Backoff after `failures` consecutive failures: 10 s doubling, at most 1 h.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(12);
    Duration::from_secs(10u64.saturating_mul(1 << exp)).min(Duration::from_secs(3600))
}

/// When the next order may start after a failure (Unix seconds): `now` plus the backoff for
/// `failures` (or `now` when the order must simply be restarted); for a rate limit, not before the
/// CA's `Retry-After` (`now` + 1 h when it sent none, at most a week ahead).
pub fn next_attempt(
    now: u64,
    failures: u32,
    immediate: bool,
    rate_limited: bool,
    retry_after: Option<u64>,
) -> u64 {
    let mut next = if immediate {
        now
    } else {
        now + backoff(failures).as_secs()
    };
    if rate_limited {
        // A CA's date is trusted up to a week ahead.
        next = next.max(retry_after.unwrap_or(now + 3600).min(now + 7 * 24 * 3600));
    }
    next
}

/// Why a certificate needs an order now, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// No certificate yet (or the names changed).
    Missing,
    /// Inside the renewal window.
    Renew,
}

/// Whether `want` needs a new order at `now` given what the store knows (`rec`) and whether a
/// certificate is installed. Respects the backoff (`next_attempt`).
pub fn due(
    want: &Wanted,
    rec: Option<&CertRecord>,
    installed_domains: Option<&[String]>,
    resolver: &AcmeResolver,
    now: u64,
) -> Option<Due> {
    if let Some(r) = rec {
        if r.next_attempt > now {
            return None;
        }
    }
    let Some(installed) = installed_domains else {
        return Some(Due::Missing);
    };
    let mut a = installed.to_vec();
    let mut b = want.domains.clone();
    a.sort();
    b.sort();
    if a != b {
        return Some(Due::Missing);
    }
    let Some(r) = rec else {
        return Some(Due::Missing);
    };
    let window = renew_before(resolver);
    let at = r.not_after - window.as_secs() as i64 - jitter(window, &r.serial).as_secs() as i64;
    (now as i64 >= at).then_some(Due::Renew)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_config::parse_document;

    const DOC: &str = r#"
certificatesResolvers:
  le:
    acme:
      httpChallenge: { entryPoint: web }
http:
  routers:
    a:
      rule: "Host(`b.test`) || Host(`a.test`)"
      service: s
      tls: { certResolver: le }
    b:
      rule: "Host(`x.test`)"
      service: s
      tls:
        certResolver: le
        domains:
          - main: c.test
            sans: [d.test, "*.w.test"]
    plain:
      rule: "Host(`p.test`)"
      service: s
  services:
    s: { loadBalancer: { servers: [ { url: "http://127.0.0.1:1" } ] } }
"#;

    #[test]
    fn wanted_from_hosts_and_domains() {
        let cfg = parse_document(DOC).expect("doc");
        let w = wanted(&cfg);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w["le/a.test"].domains, vec!["a.test", "b.test"]);
        assert_eq!(w["le/c.test"].domains, vec!["c.test", "d.test"]);
    }

    #[test]
    fn wanted_from_tcp_routers_hostsni_and_domains() {
        let doc = r#"
certificatesResolvers:
  le:
    acme:
      tlsChallenge: {}
tcp:
  routers:
    db:
      rule: "HostSNI(`DB.test`) || (HostSNI(`*`) && ClientIP(`10.0.0.0/8`))"
      service: s
      tls: { certResolver: le }
    mq:
      rule: "HostSNI(`mq.test`)"
      service: s
      tls: { certResolver: le, domains: [ { main: mq.test, sans: [mqtt.test] } ] }
    pass:
      rule: "HostSNI(`pass.test`)"
      service: s
      tls: { passthrough: true }
    other:
      rule: "HostSNI(`x.test`)"
      service: s
      tls: {}
http:
  routers:
    web:
      rule: "Host(`db.test`)"
      service: w
      tls: { certResolver: le }
  services:
    w: { loadBalancer: { servers: [ { url: "http://127.0.0.1:1" } ] } }
"#;
        let cfg = parse_document(doc).expect("doc");
        let w = wanted(&cfg);
        assert_eq!(w.len(), 2, "{w:?}");
        // The HTTP and the TCP router share one certificate.
        assert_eq!(w["le/db.test"].domains, vec!["db.test"]);
        assert_eq!(w["le/mq.test"].domains, vec!["mq.test", "mqtt.test"]);
        assert_eq!(tcp_host_names("HostSNI(`*`)"), Vec::<String>::new());
    }

    #[test]
    fn wildcards_only_for_dns01() {
        let doc = r#"
certificatesResolvers:
  dns:
    acme:
      dnsChallenge: { provider: exec, exec: { path: /bin/true } }
http:
  routers:
    w:
      rule: "Host(`*.app.test`) || Host(`app.test`)"
      service: s
      tls: { certResolver: dns }
    d:
      rule: "Host(`x.test`)"
      service: s
      tls:
        certResolver: dns
        domains: [ { main: "*.w.test", sans: [w.test] } ]
  services:
    s: { loadBalancer: { servers: [ { url: "http://127.0.0.1:1" } ] } }
"#;
        let cfg = parse_document(doc).expect("doc");
        let w = wanted(&cfg);
        assert_eq!(w["dns/*.app.test"].domains, vec!["*.app.test", "app.test"]);
        assert_eq!(w["dns/*.w.test"].domains, vec!["*.w.test", "w.test"]);
    }

    #[test]
    fn windows_jitter_backoff() {
        let mut a = AcmeResolver::default();
        assert_eq!(renew_before(&a), Duration::from_secs(30 * 24 * 3600));
        assert_eq!(check_interval(&a), Duration::from_secs(24 * 3600));
        a.renew_before = Some("1h".into());
        a.renew_check_interval = Some("2s".into());
        assert_eq!(renew_before(&a), Duration::from_secs(3600));
        assert_eq!(check_interval(&a), Duration::from_secs(2));
        let j = jitter(Duration::from_secs(3600), "01ab");
        assert!(j < Duration::from_secs(360));
        assert_eq!(j, jitter(Duration::from_secs(3600), "01ab"));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(40), Duration::from_secs(3600));
    }

    #[test]
    fn next_attempt_respects_backoff_and_retry_after() {
        assert_eq!(next_attempt(1000, 1, false, false, None), 1010);
        assert_eq!(next_attempt(1000, 3, false, false, Some(99_999)), 1040);
        assert_eq!(next_attempt(1000, 1, true, false, None), 1000);
        assert_eq!(next_attempt(1000, 1, false, true, Some(5000)), 5000);
        assert_eq!(next_attempt(1000, 1, false, true, None), 4600);
        assert_eq!(next_attempt(1000, 1, false, true, Some(1001)), 1010);
        assert_eq!(
            next_attempt(1000, 1, false, true, Some(u64::MAX)),
            1000 + 7 * 24 * 3600
        );
    }

    #[test]
    fn due_rules() {
        let a = AcmeResolver {
            renew_before: Some("100s".into()),
            ..Default::default()
        };
        let w = Wanted {
            resolver: "le".into(),
            domains: vec!["a.test".into()],
        };
        assert_eq!(due(&w, None, None, &a, 0), Some(Due::Missing));
        let rec = CertRecord {
            not_after: 10_000,
            serial: "x".into(),
            ..Default::default()
        };
        let installed = vec!["a.test".to_string()];
        assert_eq!(due(&w, Some(&rec), Some(&installed), &a, 5_000), None);
        assert_eq!(
            due(&w, Some(&rec), Some(&installed), &a, 9_950),
            Some(Due::Renew)
        );
        let other = vec!["z.test".to_string()];
        assert_eq!(
            due(&w, Some(&rec), Some(&other), &a, 5_000),
            Some(Due::Missing)
        );
        let backing_off = CertRecord {
            next_attempt: 6_000,
            ..rec
        };
        assert_eq!(due(&w, Some(&backing_off), None, &a, 5_000), None);
    }
}
