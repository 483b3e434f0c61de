//! Issue 3, must-show 8: service kinds through a real proxy. Canary weights hold within a few
//! percent over 2,000 requests; sticky cookies pin a client to one server; mirroring delivers
//! copies (the client only ever sees the main service); failover switches on health and back.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use switchyard_e2e::backends::{block_on, HttpBackend, Sha256};
use switchyard_e2e::client::{fetch, get, H1Client, Req};
use switchyard_e2e::{assert_holds_for, single_node_stack, wait_until, PROXY_SETTLE};

/// Sends `n` copies of `req` over `conns` keep-alive connections; counts responses by backend.
fn spread(addr: &str, req: &Req, n: usize, conns: usize) -> BTreeMap<String, usize> {
    let per = n / conns;
    let results = block_on(futures::future::join_all((0..conns).map(|_| {
        let (addr, req) = (addr.to_string(), req.clone());
        async move {
            let mut c = H1Client::new(&addr);
            let mut m: BTreeMap<String, usize> = BTreeMap::new();
            for i in 0..per {
                let r = c
                    .send(&req)
                    .await
                    .unwrap_or_else(|e| panic!("request {i}: {e}"));
                assert_eq!(r.status, 200, "request {i}: {r}");
                *m.entry(r.backend().unwrap_or_default()).or_default() += 1;
            }
            m
        }
    })));
    let mut total = BTreeMap::new();
    for m in results {
        for (k, v) in m {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

#[test]
fn canary_weights_hold_within_a_few_percent_over_2000_requests() {
    let stable = HttpBackend::start("stable");
    let canary = HttpBackend::start("canary");
    let doc = format!(
        r#"http:
  routers:
    app: {{rule: "Host(`app.test`)", service: app}}
  services:
    app:
      weighted:
        services:
          - {{name: stable, weight: 9}}
          - {{name: canary, weight: 1}}
    stable: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
    canary: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        stable.url(),
        canary.url()
    );
    let (_c, proxy) = single_node_stack(&doc, |s| s);
    let n = 2000;
    let got = spread(proxy.web(), &Req::get("app.test", "/"), n, 4);
    let c = *got.get("canary").unwrap_or(&0);
    let s = *got.get("stable").unwrap_or(&0);
    assert_eq!(c + s, n, "{got:?}");
    let share = c as f64 / n as f64;
    eprintln!(
        "weighted 9:1 over {n} requests: {got:?} (canary {:.1}%)",
        share * 100.0
    );
    assert!(
        (share - 0.10).abs() <= 0.03,
        "canary share {:.1}% is not 10% ± 3%: {got:?}",
        share * 100.0
    );
    assert_eq!(
        canary.hits() as usize,
        c,
        "the canary backend saw what the client saw"
    );
    assert_eq!(stable.hits() as usize, s);
}

fn cookie_value(set_cookie: &[String], name: &str) -> Option<String> {
    set_cookie.iter().find_map(|c| {
        let first = c.split(';').next()?.trim();
        let (k, v) = first.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

#[test]
fn sticky_cookie_pins_a_client_to_one_server() {
    let servers: Vec<HttpBackend> = (1..=3)
        .map(|i| HttpBackend::start(&format!("s{i}")))
        .collect();
    let list = servers
        .iter()
        .map(|b| format!("{{url: \"{}\"}}", b.url()))
        .collect::<Vec<_>>()
        .join(", ");
    let doc = format!(
        r#"http:
  routers:
    app: {{rule: "Host(`sticky.test`)", service: app}}
  services:
    app:
      loadBalancer:
        sticky:
          cookie:
            name: sy_pin
            httpOnly: true
        servers: [{list}]
"#
    );
    let (_c, proxy) = single_node_stack(&doc, |s| s);
    let addr = proxy.web();

    // Without the cookie, requests spread; each answer carries a cookie naming its server.
    let mut cookies: HashMap<String, String> = HashMap::new();
    for i in 0..30 {
        let r = get(addr, "sticky.test", "/").unwrap();
        assert_eq!(r.status, 200, "{r}");
        let set = r.header_all("set-cookie");
        let v = cookie_value(&set, "sy_pin")
            .unwrap_or_else(|| panic!("request {i} without a cookie got no sy_pin cookie: {r}"));
        assert!(
            set.iter()
                .any(|c| c.to_ascii_lowercase().contains("httponly")),
            "{set:?}"
        );
        cookies.entry(r.backend().unwrap()).or_insert(v);
    }
    assert!(
        cookies.len() >= 2,
        "requests without a cookie are balanced: {cookies:?}"
    );

    // With a cookie, every request goes to its server.
    for (backend, value) in &cookies {
        for i in 0..30 {
            let r = fetch(
                addr,
                &Req::get("sticky.test", &format!("/pinned/{i}"))
                    .header("Cookie", &format!("other=1; sy_pin={value}")),
            )
            .unwrap();
            assert_eq!(r.status, 200, "{r}");
            assert_eq!(
                r.backend().as_deref(),
                Some(backend.as_str()),
                "request {i} with the cookie of {backend}: {r}"
            );
        }
    }
}

#[test]
fn mirroring_delivers_copies_and_the_client_only_sees_the_main_service() {
    let main = HttpBackend::start("main");
    let shadow = HttpBackend::start("shadow");
    shadow.record(true);
    let doc = format!(
        r#"http:
  routers:
    app: {{rule: "Host(`mirror.test`)", service: app}}
  services:
    app:
      mirroring:
        service: main
        mirrors:
          - {{name: shadow, percent: 50}}
    main: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
    shadow: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        main.url(),
        shadow.url()
    );
    let (_c, proxy) = single_node_stack(&doc, |s| s);
    let n = 400usize;
    let mut bodies: HashMap<String, String> = HashMap::new();
    let mut client = H1Client::new(proxy.web());
    for i in 0..n {
        let path = format!("/m/{i}");
        let body = format!("payload {i} {}", "z".repeat(i));
        let mut h = Sha256::new();
        h.update(body.as_bytes());
        bodies.insert(path.clone(), h.finish());
        let r = block_on(
            client.send(
                &Req::get("mirror.test", &path)
                    .method("POST")
                    .body(body.into_bytes()),
            ),
        )
        .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "{r}");
        assert_eq!(r.backend().as_deref(), Some("main"), "request {i}: {r}");
        assert_eq!(r.json()["pathAndQuery"], path);
    }
    assert_eq!(main.hits() as usize, n);

    // Copies arrive asynchronously: about half of them (50% ± 10%), never more.
    let (lo, hi) = (n * 4 / 10, n * 6 / 10);
    wait_until(PROXY_SETTLE, "the mirror to receive its share", || {
        let h = shadow.hits() as usize;
        if h >= lo {
            Ok(())
        } else {
            Err(format!("{h} copies"))
        }
    });
    assert_holds_for(
        Duration::from_secs(1),
        "mirror copies within bounds",
        || {
            let h = shadow.hits() as usize;
            if h <= hi {
                Ok(())
            } else {
                Err(format!("{h} copies > {hi}"))
            }
        },
    );
    let seen = shadow.seen();
    eprintln!("mirroring 50%: {} of {n} requests copied", seen.len());
    let mut paths = HashSet::new();
    for s in &seen {
        assert_eq!(s.method, "POST", "{s:?}");
        let want = bodies
            .get(&s.path_and_query)
            .unwrap_or_else(|| panic!("the mirror got a request the client never sent: {s:?}"));
        assert_eq!(
            &s.body_sha256, want,
            "mirrored body of {}",
            s.path_and_query
        );
        assert!(
            paths.insert(s.path_and_query.clone()),
            "duplicate copy {s:?}"
        );
    }
}

#[test]
fn failover_switches_on_health_and_back() {
    let main = HttpBackend::start("main");
    let fallback = HttpBackend::start("fallback");
    let doc = format!(
        r#"http:
  routers:
    app: {{rule: "Host(`fo.test`)", service: app}}
  services:
    app:
      failover:
        service: main
        fallback: fallback
    main:
      loadBalancer:
        healthCheck: {{path: /health, interval: 200ms, timeout: 500ms}}
        servers: [{{url: "{}"}}]
    fallback: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
"#,
        main.url(),
        fallback.url()
    );
    let (_c, proxy) = single_node_stack(&doc, |s| s);
    let addr = proxy.web();
    let from = |who: &str| -> Result<(), String> {
        let r = get(addr, "fo.test", "/")?;
        if r.status == 200 && r.backend().as_deref() == Some(who) {
            Ok(())
        } else {
            Err(format!("{r}"))
        }
    };
    let all_from = |who: &str| {
        for i in 0..30 {
            from(who).unwrap_or_else(|e| panic!("request {i} should reach {who}: {e}"));
        }
    };

    all_from("main");
    // main still answers requests, but its health check fails: failover moves to the fallback.
    main.set_healthy(false);
    wait_until(PROXY_SETTLE, "failover to the fallback", || {
        from("fallback")
    });
    all_from("fallback");
    main.set_healthy(true);
    wait_until(PROXY_SETTLE, "traffic back on main", || from("main"));
    all_from("main");
    assert!(main.health_hits() > 0, "the health check ran");
}
