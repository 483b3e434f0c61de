//! The dashboard in a real headless browser (Debian's `chromium`, driven over the DevTools
//! protocol by `switchyard_e2e::browser`) against a running secure cluster of three nodes and a
//! proxy: the token is typed in the login field; every page loads with no console error, failed
//! resource load or uncaught exception; the pages show the nodes (one leader), the proxy (its zone
//! and applied version), the routers, services, middlewares and the uploaded certificate; a route
//! applied while the routers page is open appears without a reload; the explain box answers with
//! the winning router and its targets; a rollout shows above the page (running, then aborted).
//! Screenshots of every page are saved under
//! `target/dashboard-screenshots/` (test artifacts).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::browser::Browser;
use switchyard_e2e::proxy::{Proxy, ProxySpec};
use switchyard_e2e::{apply_yaml, bin_dir, wait_until, Cluster};

const PAGE: Duration = Duration::from_secs(30);

fn shots_dir() -> PathBuf {
    bin_dir()
        .parent()
        .map(|p| p.join("dashboard-screenshots"))
        .unwrap_or_else(|| PathBuf::from("dashboard-screenshots"))
}

/// Waits until the JavaScript expression `cond` is `true` in the page; on timeout the panic shows
/// the last value and the page's text.
fn wait_for(b: &Browser, what: &str, cond: &str) {
    wait_until(PAGE, what, || match b.eval(cond) {
        Ok(Value::Bool(true)) => Ok(()),
        Ok(v) => {
            let text = b
                .eval("document.body.innerText.slice(0, 2000)")
                .unwrap_or_default();
            Err(format!("{v}; page text: {text}"))
        }
        Err(e) => Err(e.to_string()),
    });
}

fn show(b: &Browser, page: &str) {
    b.eval(&format!("location.hash = '#/{page}'; true"))
        .unwrap();
    wait_for(
        b,
        &format!("page {page} shown"),
        &format!("!document.querySelector('#page-{page}').hidden"),
    );
}

fn shot(b: &Browser, name: &str) {
    b.screenshot(&shots_dir().join(format!("{name}.png")))
        .unwrap();
}

fn assert_clean(b: &Browser, when: &str) {
    let p = b.problems();
    assert!(p.is_empty(), "console errors {when}: {p:#?}");
}

/// A row of table `table` whose `data-{attr}` is `key` and whose text contains every `needle`.
fn row_with(table: &str, attr: &str, key: &str, needles: &[&str]) -> String {
    format!(
        "(() => {{ const r = document.querySelector('#{table} tbody tr[data-{attr}=\"{key}\"]'); \
         return !!r && {}.every(n => r.textContent.includes(n)); }})()",
        json!(needles)
    )
}

#[test]
fn dashboard_in_headless_chromium() {
    let c = Cluster::start(3);
    let ep = c.endpoints();
    let creds = c.creds();
    let proxy = Proxy::start(ProxySpec::new("edge-1", &ep).zone("eu", "eu-1"));
    let ck = rcgen::generate_simple_self_signed(vec!["dash.example".to_string()]).unwrap();
    let doc = json!({
        "http": {
            "routers": {
                "app": {"rule": "Host(`app.example`)", "service": "app", "middlewares": ["tag"]},
            },
            "services": {
                "app": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9", "zone": "eu-1"}]}},
            },
            "middlewares": {
                "tag": {"headers": {"customResponseHeaders": {"X-Tag": "1"}}},
            },
        },
        "tls": {"certificates": [{"certFile": ck.cert.pem(), "keyFile": ck.signing_key.serialize_pem()}]},
    });
    let v = apply_yaml(&ep, &doc.to_string()).unwrap();
    proxy.wait_version(v, PAGE);
    let viewer = creds.create_token(&ep, "viewer");
    let http = c.nodes[0].addrs.http.clone();

    let b = Browser::launch().unwrap();
    b.navigate(&format!("http://{http}/dashboard/#/cluster"))
        .unwrap();
    wait_for(
        &b,
        "the login field (secure cluster)",
        "!!document.querySelector('#login') && !document.querySelector('#login').hidden && \
         document.querySelector('#banner').textContent.includes('token')",
    );
    // Log in through the token field, as a user would.
    b.eval(&format!(
        "document.querySelector('#token').value = {}; \
         document.querySelector('#login').requestSubmit(); true",
        json!(viewer)
    ))
    .unwrap();

    // Cluster: three members, exactly one leader, all reachable.
    wait_for(
        &b,
        "three nodes, one leader",
        "(() => { const rows = [...document.querySelectorAll('#nodes tbody tr')]; \
         return rows.length === 3 \
           && rows.filter(r => r.children[3].textContent === 'yes').length === 1 \
           && rows.every(r => r.children[9].textContent === 'yes'); })()",
    );
    wait_for(
        &b,
        "live status line",
        "document.querySelector('#live').textContent.startsWith('config v')",
    );
    shot(&b, "cluster");
    assert_clean(&b, "on the cluster page");

    show(&b, "proxies");
    wait_for(
        &b,
        "proxy edge-1 in zone eu-1 at the applied version",
        &row_with(
            "proxies",
            "id",
            "edge-1",
            &["eu / eu-1", &v.to_string(), "web"],
        ),
    );
    shot(&b, "proxies");

    show(&b, "services");
    wait_for(
        &b,
        "service app",
        &row_with(
            "services",
            "name",
            "app@file",
            &["enabled", "loadbalancer", "http://127.0.0.1:9", "app@file"],
        ),
    );
    shot(&b, "services");

    show(&b, "middlewares");
    wait_for(
        &b,
        "middleware tag",
        &row_with(
            "middlewares",
            "name",
            "tag@file",
            &["enabled", "headers", "app@file"],
        ),
    );
    shot(&b, "middlewares");

    show(&b, "certificates");
    wait_for(
        &b,
        "the uploaded certificate",
        &row_with(
            "certificates",
            "name",
            "tls.certificates[0]",
            &["dash.example", "uploaded", "valid"],
        ),
    );
    shot(&b, "certificates");

    show(&b, "routers");
    wait_for(
        &b,
        "router app",
        &row_with(
            "routers",
            "name",
            "app@file",
            &["enabled", "Host(`app.example`)", "tag", "web"],
        ),
    );
    shot(&b, "routers");
    assert_clean(&b, "after loading every page");

    // A route applied while the page is open appears without a reload.
    let fresh = r#"{"http": {"routers": {"fresh": {"rule": "Host(`fresh.example`) && PathPrefix(`/new`)", "service": "app"}}}}"#;
    let v2 = apply_yaml(&ep, fresh).unwrap();
    assert!(v2 > v);
    wait_for(
        &b,
        "the new router on the open routers page",
        &row_with(
            "routers",
            "name",
            "fresh@file",
            &["enabled", "fresh.example"],
        ),
    );
    wait_for(
        &b,
        "the live line follows the new version",
        &format!("document.querySelector('#live').textContent.includes('config v{v2}')"),
    );
    shot(&b, "routers-updated");

    // The explain box.
    show(&b, "explain");
    b.eval(
        "document.querySelector('#explain-url').value = 'http://fresh.example/new/x'; \
         document.querySelector('#explain-form').requestSubmit(); true",
    )
    .unwrap();
    wait_for(
        &b,
        "the explain answer",
        "(() => { const a = document.querySelector('#explain-answer'); \
         return !!a && a.textContent.includes('fresh') \
           && a.textContent.includes('http://127.0.0.1:9 (zone eu-1)'); })()",
    );
    let lost: Value = b
        .eval("[...document.querySelectorAll('#explain-result li')].map(li => li.textContent)")
        .unwrap();
    assert_eq!(
        lost,
        json!([]),
        "fresh (priority 46) is tried before app (priority 23)"
    );
    b.eval(
        "document.querySelector('#explain-url').value = 'http://app.example/'; \
         document.querySelector('#explain-form').requestSubmit(); true",
    )
    .unwrap();
    wait_for(
        &b,
        "app wins after fresh lost on its Host",
        "(() => { const a = document.querySelector('#explain-answer'); \
         const li = [...document.querySelectorAll('#explain-result li')].map(x => x.textContent); \
         return !!a && a.textContent.includes('app (priority') \
           && li.length === 1 && li[0].startsWith('fresh') && li[0].includes('Host(`fresh.example`)'); })()",
    );
    shot(&b, "explain");

    // A progressive rollout (`apply --rollout`) shows above every page while it runs, then its
    // outcome.
    let out = switchyard_e2e::cli_stdin(
        &ep,
        &[
            "apply",
            "-f",
            "-",
            "--rollout",
            "zone=eu-1,*",
            "--bake",
            "60s",
        ],
        r#"{"http": {"routers": {"roll": {"rule": "Host(`roll.example`)", "service": "app"}}}}"#,
    );
    assert!(out.success(), "apply --rollout: {}", out.stderr);
    wait_for(
        &b,
        "the rollout line",
        "(() => { const r = document.querySelector('#rollout'); \
         return !r.hidden && r.textContent.includes('running') \
           && r.textContent.includes('[zone=eu-1]'); })()",
    );
    shot(&b, "rollout");
    let out = switchyard_e2e::cli(&ep, &["rollout", "abort"]);
    assert!(out.success(), "rollout abort: {}", out.stderr);
    wait_for(
        &b,
        "the aborted rollout",
        "document.querySelector('#rollout').textContent.includes('aborted')",
    );
    assert_clean(&b, "at the end");
    // The collector sees console errors (so the checks above can fail).
    b.eval("console.error('probe from the test'); true")
        .unwrap();
    wait_until(PAGE, "the probe console error", || {
        b.problems()
            .iter()
            .any(|p| p.contains("probe from the test"))
    });
    for name in [
        "cluster",
        "proxies",
        "services",
        "middlewares",
        "certificates",
        "routers",
        "routers-updated",
        "explain",
    ] {
        let p = shots_dir().join(format!("{name}.png"));
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {} is {len} bytes", p.display());
    }
}
