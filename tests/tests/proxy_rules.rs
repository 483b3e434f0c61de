//! Issue 3, must-show 6: a table of rule cases (matchers, precedence, priorities, edge cases),
//! each run both through `switchyard explain` and as a real request to the proxy, which must
//! agree with the expected winner (or 404).
//!
//! The cases are grouped in scenarios, one per proxy entry point: each scenario's routers attach
//! only to its entry point (`entryPoints: [NAME]`), so catch-all routers of one scenario cannot
//! interfere with another, and `explain --entrypoint NAME` answers for exactly that entry point.
//! Every router has its own `headers` middleware adding `X-Router: <name>`, so a response tells
//! which router answered. The whole table is one config, applied once.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{json, Value};
use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::{fetch, Req};
use switchyard_e2e::{apply_to, explain, Cluster, Proxy, ProxySpec, PROXY_SETTLE};

const ENTRYPOINTS: [&str; 6] = ["host", "path", "prio", "hdr", "logic", "eps"];

/// A router of the table: name, entry points (empty: all), rule, explicit priority.
struct R(
    &'static str,
    &'static [&'static str],
    &'static str,
    Option<i64>,
);

const ROUTERS: &[R] = &[
    // Host matching.
    R("h-exact", &["host"], "Host(`example.com`)", None),
    R("h-wild", &["host"], "Host(`*.example.com`)", None),
    R(
        "h-multi",
        &["host"],
        "Host(`other.test`) || Host(`alias.test`)",
        None,
    ),
    R(
        "h-re",
        &["host"],
        r"HostRegexp(`^api[0-9]+\.regexp\.test$`)",
        None,
    ),
    R("h-unanchored", &["host"], "HostRegexp(`unanchored`)", None),
    R("h-trail", &["host"], "Host(`trailing.test.`)", None),
    R(
        "h-doc-re",
        &["host"],
        r"HostRegexp(`[a-z]+\.traefik\.com`)",
        None,
    ),
    R("h-doc-host", &["host"], "Host(`foobar.traefik.com`)", None),
    // Paths and default priorities.
    R("p-exact", &["path"], "Path(`/exact/path`)", None),
    R("p-short", &["path"], "Path(`/short`)", None),
    R("p-prefix", &["path"], "PathPrefix(`/api`)", None),
    R("p-prefix-long", &["path"], "PathPrefix(`/api/v2`)", None),
    R("p-regexp", &["path"], "PathRegexp(`/items/[0-9]+`)", None),
    R("p-anchored", &["path"], "PathRegexp(`^/anchored$`)", None),
    R("p-root", &["path"], "PathPrefix(`/`)", None),
    // Explicit priorities.
    R("c-low", &["prio"], "PathPrefix(`/`)", Some(1)),
    R("c-high", &["prio"], "PathPrefix(`/p`)", Some(100)),
    R(
        "c-long",
        &["prio"],
        "PathPrefix(`/p/very/long/prefix/for/priority`)",
        Some(50),
    ),
    R("c-neg", &["prio"], "Path(`/neg`)", Some(-5)),
    R("c-zero", &["prio"], "Path(`/zero-default`)", Some(0)),
    R("c-tie-a", &["prio"], "PathPrefix(`/ti`)", Some(10)),
    R("c-tie-b", &["prio"], "Path(`/tie`)", Some(10)),
    // Headers and queries.
    R("d-header", &["hdr"], "Header(`X-Env`, `prod`)", None),
    R(
        "d-header-re",
        &["hdr"],
        "HeaderRegexp(`X-Version`, `^v[0-9]+$`)",
        None,
    ),
    R("d-query", &["hdr"], "Query(`mode`, `fast`)", None),
    R("d-query-flag", &["hdr"], "Query(`debug`)", None),
    R(
        "d-query-re",
        &["hdr"],
        "QueryRegexp(`id`, `^[0-9]+$`)",
        None,
    ),
    R("d-multi", &["hdr"], "Header(`X-Multi`, `b`)", None),
    // Operators, methods, client IP.
    R(
        "e-prec",
        &["logic"],
        "Host(`a.logic`) || Host(`b.logic`) && Path(`/only-b`)",
        None,
    ),
    R(
        "e-not",
        &["logic"],
        "Host(`n.logic`) && !PathPrefix(`/admin`)",
        None,
    ),
    R(
        "e-post",
        &["logic"],
        "Host(`m.logic`) && Method(`POST`)",
        None,
    ),
    R(
        "e-get-lower",
        &["logic"],
        "Host(`m.logic`) && Method(`get`)",
        None,
    ),
    R(
        "e-ip",
        &["logic"],
        "Host(`ip.logic`) && ClientIP(`127.0.0.1`)",
        None,
    ),
    R(
        "e-ip-miss",
        &["logic"],
        "Host(`ip.logic`) && ClientIP(`10.0.0.0/8`)",
        None,
    ),
    R(
        "e-ip-net",
        &["logic"],
        "Host(`net.logic`) && ClientIP(`127.0.0.0/8`)",
        None,
    ),
    R(
        "e-ip-not",
        &["logic"],
        "Host(`ipnot.logic`) && !ClientIP(`127.0.0.0/8`)",
        None,
    ),
    R(
        "e-paren",
        &["logic"],
        "(Host(`p.logic`) || Host(`q.logic`)) && Path(`/x`)",
        None,
    ),
    R(
        "e-not-paren",
        &["logic"],
        "Host(`np.logic`) && !(Path(`/a`) || Path(`/b`))",
        None,
    ),
    // Entry point attachment.
    R("f-all", &[], "Host(`all.entrypoints.test`)", None),
    R("f-one", &["eps"], "Host(`one.eps`)", None),
    R("f-two", &["eps", "logic"], "Host(`two.eps`)", None),
];

/// A case: entry point, method, Host header, path and query, headers, expected winner.
struct C(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
);

const NO: &[(&str, &str)] = &[];

const CASES: &[C] = &[
    // --- Host: port stripping, case folding, trailing dots, wildcards, regexps.
    C("host", "GET", "example.com", "/", NO, Some("h-exact")),
    C("host", "GET", "EXAMPLE.Com", "/", NO, Some("h-exact")),
    C("host", "GET", "example.com:8080", "/", NO, Some("h-exact")),
    C("host", "GET", "example.com.", "/", NO, Some("h-exact")),
    C("host", "GET", "Example.COM.:9000", "/", NO, Some("h-exact")),
    C(
        "host",
        "GET",
        "example.com",
        "/any/path?x=1",
        NO,
        Some("h-exact"),
    ),
    C("host", "GET", "www.example.com", "/", NO, Some("h-wild")),
    C(
        "host",
        "GET",
        "WWW.Example.com:443",
        "/",
        NO,
        Some("h-wild"),
    ),
    C("host", "GET", "a.b.example.com", "/", NO, None),
    C("host", "GET", "example.org", "/", NO, None),
    C("host", "GET", "alias.test", "/", NO, Some("h-multi")),
    C("host", "GET", "other.test:1", "/", NO, Some("h-multi")),
    C("host", "GET", "api42.regexp.test", "/", NO, Some("h-re")),
    C("host", "GET", "xapi42.regexp.test", "/", NO, None),
    C("host", "GET", "API7.REGEXP.TEST", "/", NO, Some("h-re")),
    C(
        "host",
        "GET",
        "my-unanchored-host.test",
        "/",
        NO,
        Some("h-unanchored"),
    ),
    C("host", "GET", "trailing.test", "/", NO, Some("h-trail")),
    C("host", "GET", "trailing.test.", "/", NO, Some("h-trail")),
    C(
        "host",
        "GET",
        "foobar.traefik.com",
        "/",
        NO,
        Some("h-doc-re"),
    ),
    C("host", "GET", "traefik.com", "/", NO, None),
    // --- Paths: exact, prefix without segment boundary, unanchored regexps, rule length.
    C(
        "path",
        "GET",
        "path.test",
        "/exact/path",
        NO,
        Some("p-exact"),
    ),
    C(
        "path",
        "GET",
        "path.test",
        "/exact/path/",
        NO,
        Some("p-root"),
    ),
    C(
        "path",
        "GET",
        "path.test",
        "/exact/pathx",
        NO,
        Some("p-root"),
    ),
    C("path", "GET", "path.test", "/short", NO, Some("p-root")),
    C("path", "GET", "path.test", "/api", NO, Some("p-prefix")),
    C("path", "GET", "path.test", "/apix", NO, Some("p-prefix")),
    C(
        "path",
        "GET",
        "path.test",
        "/api/v1/users",
        NO,
        Some("p-prefix"),
    ),
    C("path", "GET", "path.test", "/api?x=1", NO, Some("p-prefix")),
    C(
        "path",
        "GET",
        "path.test",
        "/api/v2",
        NO,
        Some("p-prefix-long"),
    ),
    C(
        "path",
        "GET",
        "path.test",
        "/api/v2x/y",
        NO,
        Some("p-prefix-long"),
    ),
    C(
        "path",
        "GET",
        "path.test",
        "/x/items/12/y",
        NO,
        Some("p-regexp"),
    ),
    C(
        "path",
        "GET",
        "path.test",
        "/api/items/3",
        NO,
        Some("p-regexp"),
    ),
    C("path", "GET", "path.test", "/items/abc", NO, Some("p-root")),
    C(
        "path",
        "GET",
        "path.test",
        "/anchored",
        NO,
        Some("p-anchored"),
    ),
    C(
        "path",
        "GET",
        "path.test",
        "/anchored/x",
        NO,
        Some("p-root"),
    ),
    C("path", "GET", "path.test", "/API", NO, Some("p-root")),
    // --- Explicit priorities: beat rule length; 0 means default; negative sorts last; ties.
    C(
        "prio",
        "GET",
        "prio.test",
        "/p/very/long/prefix/for/priority/x",
        NO,
        Some("c-high"),
    ),
    C("prio", "GET", "prio.test", "/p", NO, Some("c-high")),
    C("prio", "GET", "prio.test", "/q", NO, Some("c-low")),
    C("prio", "GET", "prio.test", "/neg", NO, Some("c-low")),
    C(
        "prio",
        "GET",
        "prio.test",
        "/zero-default",
        NO,
        Some("c-zero"),
    ),
    C("prio", "GET", "prio.test", "/tie", NO, Some("c-tie-a")),
    // --- Header and Query forms.
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/",
        &[("X-Env", "prod")],
        Some("d-header"),
    ),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/",
        &[("x-env", "prod")],
        Some("d-header"),
    ),
    C("hdr", "GET", "hdr.test", "/", &[("X-Env", "Prod")], None),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/",
        &[("X-Env", "production")],
        None,
    ),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/",
        &[("X-Version", "v12")],
        Some("d-header-re"),
    ),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/",
        &[("X-Version", "xv12")],
        None,
    ),
    C("hdr", "GET", "hdr.test", "/?mode=fast", NO, Some("d-query")),
    C("hdr", "GET", "hdr.test", "/?mode=slow", NO, None),
    C("hdr", "GET", "hdr.test", "/?MODE=fast", NO, None),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/?mode=slow&mode=fast",
        NO,
        Some("d-query"),
    ),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/?debug",
        NO,
        Some("d-query-flag"),
    ),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/?debug=",
        NO,
        Some("d-query-flag"),
    ),
    C("hdr", "GET", "hdr.test", "/?debug=1", NO, None),
    C("hdr", "GET", "hdr.test", "/?id=123", NO, Some("d-query-re")),
    C("hdr", "GET", "hdr.test", "/?id=12a", NO, None),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/?a=1&id=7",
        NO,
        Some("d-query-re"),
    ),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/?mode=fast",
        &[("X-Version", "v1")],
        Some("d-header-re"),
    ),
    C(
        "hdr",
        "GET",
        "hdr.test",
        "/",
        &[("X-Multi", "a"), ("X-Multi", "b")],
        Some("d-multi"),
    ),
    C("hdr", "GET", "hdr.test", "/", NO, None),
    // --- Operators: && binds tighter than ||; negations; parentheses; Method; ClientIP.
    C("logic", "GET", "a.logic", "/anything", NO, Some("e-prec")),
    C("logic", "GET", "b.logic", "/only-b", NO, Some("e-prec")),
    C("logic", "GET", "b.logic", "/other", NO, None),
    C("logic", "GET", "n.logic", "/public", NO, Some("e-not")),
    C("logic", "GET", "n.logic", "/admin/x", NO, None),
    C("logic", "GET", "n.logic", "/administrator", NO, None),
    C("logic", "POST", "m.logic", "/", NO, Some("e-post")),
    C("logic", "GET", "m.logic", "/", NO, Some("e-get-lower")),
    C("logic", "PUT", "m.logic", "/", NO, None),
    C("logic", "GET", "ip.logic", "/", NO, Some("e-ip")),
    C("logic", "GET", "net.logic", "/", NO, Some("e-ip-net")),
    C("logic", "GET", "ipnot.logic", "/", NO, None),
    C("logic", "GET", "q.logic", "/x", NO, Some("e-paren")),
    C("logic", "GET", "q.logic", "/y", NO, None),
    C("logic", "GET", "p.logic", "/x", NO, Some("e-paren")),
    C("logic", "GET", "np.logic", "/c", NO, Some("e-not-paren")),
    C("logic", "GET", "np.logic", "/b", NO, None),
    // --- Entry points: empty = all; a listed entry point only.
    C("eps", "GET", "all.entrypoints.test", "/", NO, Some("f-all")),
    C(
        "host",
        "GET",
        "all.entrypoints.test",
        "/",
        NO,
        Some("f-all"),
    ),
    C(
        "path",
        "GET",
        "all.entrypoints.test",
        "/",
        NO,
        Some("f-all"),
    ),
    C("eps", "GET", "one.eps", "/", NO, Some("f-one")),
    C("host", "GET", "one.eps", "/", NO, None),
    C("logic", "GET", "two.eps", "/", NO, Some("f-two")),
    C("hdr", "GET", "two.eps", "/", NO, None),
];

fn config(backend: &HttpBackend) -> String {
    let mut routers = serde_json::Map::new();
    let mut middlewares = serde_json::Map::new();
    for R(name, eps, rule, prio) in ROUTERS {
        let mw = format!("mw-{name}");
        let mut r = json!({"rule": rule, "service": "echo", "middlewares": [mw]});
        if !eps.is_empty() {
            r["entryPoints"] = json!(eps);
        }
        if let Some(p) = prio {
            r["priority"] = json!(p);
        }
        routers.insert(name.to_string(), r);
        middlewares.insert(
            mw,
            json!({"headers": {"customResponseHeaders": {"X-Router": name}}}),
        );
    }
    json!({"http": {
        "routers": routers,
        "middlewares": middlewares,
        "services": {"echo": {"loadBalancer": {"servers": [{"url": backend.url()}]}}},
    }})
    .to_string()
}

/// The priority a router must be reported with: explicit unless absent or 0, else the length
/// of its rule.
fn expected_priority(name: &str) -> i64 {
    let r = ROUTERS.iter().find(|r| r.0 == name).unwrap();
    match r.3 {
        Some(p) if p != 0 => p,
        _ => r.2.chars().count() as i64,
    }
}

#[test]
fn rule_table_agrees_between_explain_and_real_requests() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    let c = Cluster::start(1);
    let backend = HttpBackend::start("echo");
    let proxy = Proxy::start(ProxySpec::new("p1", &c.endpoints()).entrypoints(&ENTRYPOINTS));
    apply_to(&c.endpoints(), &proxy, &config(&backend));
    proxy.wait_ready(PROXY_SETTLE);
    let ep = c.nodes[0].endpoint();

    let mut problems = Vec::new();
    let mut per_scenario: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, C(entry, method, host, path, headers, want)) in CASES.iter().enumerate() {
        *per_scenario.entry(entry).or_default() += 1;
        let label = format!(
            "case {i}: {method} {host}{path} {headers:?} on entry point {entry:?} (want {})",
            want.unwrap_or("404")
        );
        let hs: Vec<(String, String)> = std::iter::once(("Host".to_string(), host.to_string()))
            .chain(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();

        // 1. explain, with the socket address real requests come from.
        let ex = explain(
            &ep,
            method,
            &format!("http://localhost{path}"),
            &hs,
            Some("127.0.0.1"),
            Some(entry),
        );
        let want_code = if want.is_some() { 0 } else { 1 };
        if ex.code != Some(want_code) || ex.json == Value::Null {
            problems.push(format!(
                "{label}: explain exited {:?} (want {want_code}): {}",
                ex.code, ex.out
            ));
        } else if ex.winner().as_deref() != *want {
            problems.push(format!(
                "{label}: explain says {:?}: {}",
                ex.winner(),
                ex.json
            ));
        } else if let Some(w) = want {
            let p = ex.json["winner"]["priority"].as_i64();
            if p != Some(expected_priority(w)) {
                problems.push(format!(
                    "{label}: explain reports priority {p:?}, want {}",
                    expected_priority(w)
                ));
            }
        }

        // 2. a real request through the proxy.
        let mut req = Req::get(host, path).method(method);
        for (k, v) in headers.iter() {
            req = req.header(k, v);
        }
        match fetch(proxy.entry(entry), &req) {
            Err(e) => problems.push(format!("{label}: request failed: {e}")),
            Ok(r) => {
                let got = r.header("x-router");
                match want {
                    Some(w) if r.status != 200 || got.as_deref() != Some(w) => problems.push(
                        format!("{label}: proxy answered {} from router {got:?}", r.status),
                    ),
                    None if r.status != 404 || got.is_some() => problems.push(format!(
                        "{label}: proxy answered {} from router {got:?}, want 404",
                        r.status
                    )),
                    _ => {}
                }
            }
        }
    }
    eprintln!(
        "{} rule cases over {} routers ({per_scenario:?})",
        CASES.len(),
        ROUTERS.len()
    );
    assert!(
        problems.is_empty(),
        "{} of {} rule cases disagree:\n{}",
        problems.len(),
        CASES.len(),
        problems.join("\n")
    );
}
