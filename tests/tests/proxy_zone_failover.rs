//! Issue 3, must-show 7: zone failover. A proxy in zone `a` balances over servers in zones `a`
//! and `b` with an active health check: traffic stays in zone `a`; when zone `a`'s backends stop,
//! traffic moves to zone `b` with no failed request after the health check noticed (defined as
//! the first response from zone `b`); when they return, traffic moves back, again without a
//! failed request. A second test checks the order zone → region → anywhere.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::{get, LoadLoop, Req, Resp, Sample};
use switchyard_e2e::{single_node_stack, wait_until, PROXY_SETTLE};

fn servers_yaml(servers: &[(&HttpBackend, &str)]) -> String {
    servers
        .iter()
        .map(|(b, region)| {
            format!(
                "          - {{url: \"{}\", zone: \"{}\", region: \"{region}\"}}\n",
                b.url(),
                b.zone()
            )
        })
        .collect()
}

fn doc(servers: &[(&HttpBackend, &str)]) -> String {
    format!(
        r#"http:
  routers:
    zoned:
      rule: "Host(`zoned.test`)"
      service: zoned
  services:
    zoned:
      loadBalancer:
        healthCheck:
          path: /health
          interval: 200ms
          timeout: 500ms
        servers:
{}"#,
        servers_yaml(servers)
    )
}

/// Labels samples `zone/name`.
fn zone_check() -> Arc<switchyard_e2e::client::CheckFn> {
    Arc::new(|r: &Resp| {
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.text().trim()));
        }
        Ok(format!(
            "{}/{}",
            r.header("x-backend-zone").unwrap_or_default(),
            r.backend().unwrap_or_default()
        ))
    })
}

fn zone_of(s: &Sample) -> Option<&str> {
    s.outcome.as_ref().ok().and_then(|l| l.split('/').next())
}

fn tally(samples: &[Sample]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in samples {
        let k = match &s.outcome {
            Ok(l) => l.clone(),
            Err(_) => "FAILED".to_string(),
        };
        *m.entry(k).or_default() += 1;
    }
    m
}

/// Waits until the loop has a sample (at index ≥ `from`) satisfying `f`; returns its index.
fn wait_for_sample(l: &LoadLoop, from: usize, what: &str, f: impl Fn(&Sample) -> bool) -> usize {
    wait_until(PROXY_SETTLE, what, || {
        let s = l.samples();
        s.iter()
            .enumerate()
            .skip(from)
            .find(|(_, x)| f(x))
            .map(|(i, _)| i)
            .ok_or_else(|| format!("{:?}", tally(s.get(from..).unwrap_or(&[]))))
    })
}

#[test]
fn stopping_the_local_zone_moves_traffic_to_the_other_zone_and_back() {
    let a1 = HttpBackend::start_in("a1", "r1", "a");
    let a2 = HttpBackend::start_in("a2", "r1", "a");
    let b1 = HttpBackend::start_in("b1", "r1", "b");
    let b2 = HttpBackend::start_in("b2", "r1", "b");
    // Zone b listed first, so "zone a" cannot come from server order.
    let cfg = doc(&[(&b1, "r1"), (&a1, "r1"), (&b2, "r1"), (&a2, "r1")]);
    let (_c, proxy) = single_node_stack(&cfg, |s| s.zone("r1", "a"));

    let load = LoadLoop::start_with(
        "zoned",
        proxy.web(),
        Req::get("zoned.test", "/"),
        Duration::from_millis(2),
        zone_check(),
    );

    // Phase 1: zone a only (both of its servers).
    load.wait_for_more(200, PROXY_SETTLE);
    let p1 = load.samples();
    assert!(
        p1.iter().all(|s| zone_of(s) == Some("a")),
        "with zone a healthy, only zone a serves: {:?}",
        tally(&p1)
    );
    let t = tally(&p1);
    assert!(
        t.contains_key("a/a1") && t.contains_key("a/a2"),
        "both zone-a servers share the load: {t:?}"
    );

    // Phase 2: zone a goes away.
    let mark = load.count();
    a1.stop();
    a2.stop();
    let noticed = wait_for_sample(&load, mark, "the first response from zone b", |s| {
        zone_of(s) == Some("b")
    });
    load.wait_for_more(400, PROXY_SETTLE);
    let s = load.samples();
    let before_notice = &s[mark..noticed];
    let after_notice = &s[noticed..];
    eprintln!(
        "zone a stopped: {} requests until zone b answered ({:?}), first zone-b response after {:.0?}; \
         then {:?}",
        before_notice.len(),
        tally(before_notice),
        s[noticed].at.saturating_sub(s[mark].at),
        tally(after_notice)
    );
    assert!(
        after_notice.iter().all(|x| zone_of(x) == Some("b")),
        "after the health check noticed, every request succeeds in zone b: {}\n{:?}",
        LoadLoop::summary(after_notice),
        tally(after_notice)
    );
    let t = tally(after_notice);
    assert!(
        t.contains_key("b/b1") && t.contains_key("b/b2"),
        "both zone-b servers share the load: {t:?}"
    );

    // Phase 3: zone a returns; traffic moves back, with no failure at all.
    let mark = load.count();
    a1.restart();
    a2.restart();
    let back = wait_for_sample(&load, mark, "the first response from zone a again", |s| {
        zone_of(s) == Some("a")
    });
    load.wait_for_more(400, PROXY_SETTLE);
    let (s, _) = load.stop();
    let phase3 = &s[mark..];
    eprintln!(
        "zone a restarted: back after {} requests; then {:?}",
        back - mark,
        tally(&s[back..])
    );
    assert!(
        phase3.iter().all(|x| x.outcome.is_ok()),
        "no request fails while zone a returns: {}",
        LoadLoop::summary(phase3)
    );
    let after_back = &s[back..];
    assert!(
        after_back.iter().all(|x| zone_of(x) == Some("a")),
        "once zone a is healthy again it takes all the traffic: {:?}",
        tally(after_back)
    );
    let m = proxy.metrics().unwrap();
    for b in [&a1, &a2, &b1, &b2] {
        let line = format!("url=\"{}\"", b.url());
        assert!(
            m.lines()
                .any(|l| l.starts_with("switchyard_proxy_backend_server_up")
                    && l.contains(&line)
                    && l.trim_end().ends_with(" 1")),
            "backend {} reported up in /metrics:\n{m}",
            b.name()
        );
    }
}

fn zone_now(addr: &str) -> Result<String, String> {
    let r = get(addr, "zoned.test", "/")?;
    if r.status != 200 {
        return Err(format!("{r}"));
    }
    Ok(r.header("x-backend-zone").unwrap_or_default())
}

fn in_zone(addr: &str, zone: &str) -> Result<(), String> {
    let z = zone_now(addr)?;
    if z == zone {
        Ok(())
    } else {
        Err(format!("served from zone {z:?}"))
    }
}

fn all_in_zone(addr: &str, zone: &str, n: usize) {
    for i in 0..n {
        let z = zone_now(addr).unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(z, zone, "request {i} while zone {zone} should serve");
    }
}

#[test]
fn zone_then_region_then_anywhere() {
    // Proxy in region r1, zone a. Servers: zone a (r1), zone b (r1), zone c (r2).
    let a = HttpBackend::start_in("a", "r1", "a");
    let b = HttpBackend::start_in("b", "r1", "b");
    let c = HttpBackend::start_in("c", "r2", "c");
    let cfg = doc(&[(&c, "r2"), (&b, "r1"), (&a, "r1")]);
    let (_cl, proxy) = single_node_stack(&cfg, |s| s.zone("r1", "a"));
    let addr = proxy.web().to_string();

    all_in_zone(&addr, "a", 30);
    a.stop();
    wait_until(PROXY_SETTLE, "traffic in zone b (same region)", || {
        in_zone(&addr, "b")
    });
    all_in_zone(&addr, "b", 30);
    b.stop();
    wait_until(PROXY_SETTLE, "traffic in zone c (another region)", || {
        in_zone(&addr, "c")
    });
    all_in_zone(&addr, "c", 30);
    b.restart();
    wait_until(PROXY_SETTLE, "traffic back in zone b", || {
        in_zone(&addr, "b")
    });
    all_in_zone(&addr, "b", 30);
    a.restart();
    wait_until(PROXY_SETTLE, "traffic back in zone a", || {
        in_zone(&addr, "a")
    });
    all_in_zone(&addr, "a", 30);
}
