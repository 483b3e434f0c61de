//! # switchyard-fuzz
//!
//! Fuzz targets for the parts of Switchyard that read untrusted input without a socket in
//! between. Each target takes arbitrary bytes, must never panic, and checks properties that
//! hold for every input (oracles), so the fuzzer finds wrong answers as well as crashes:
//!
//! | target | input | runs | oracles |
//! |---|---|---|---|
//! | [`rule`] | a router rule | `rules::compile`, evaluation against a fixed request, `explain`, `host_constraint` | the canonical form re-parses to itself; `explain` and `matches` agree |
//! | [`config`] | a YAML/JSON document | `parse_document` → `validate` → `switchyard_router::compile` → `switchyard_tls::compile` (the control plane's `compile_check`) | a parsed config survives JSON → `from_value` unchanged; a valid config compiles to a route table |
//! | [`head`] | an HTTP/1 request head | `httparse` (hyper's parser) → `http::Uri` → the proxy handler's head stages: `paths::entrypoint_path`, `EncodedCharacters::check`, the host (`canonical_host`, `host_key`), `routing_path`, `parse_query`, route lookup, a `stripPrefix` rewrite check | a sanitised path has no dot segment, is idempotent and is still a valid request path; a rewrite that passes the check has no dot segment |
//!
//! [`TARGETS`] lists them by name. Coverage-guided runs use AFL++ through `cargo afl`
//! (`scripts/fuzz.sh`, the `afl` feature builds `switchyard-fuzz-afl TARGET`); the crate's
//! tests replay `fuzz/corpus/TARGET/*` (seeds from the test suites) and
//! `fuzz/regressions/TARGET/*` (every input a fuzzer ever crashed on) in a plain `cargo test`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use switchyard_config::paths::{
    check_rewrite, entrypoint_path, has_dot_segment, normalize_escapes, EncodedCharacters,
    RewriteCheck,
};
use switchyard_config::rules::{self, RequestView};

/// A fuzz target: arbitrary bytes in, panics on a bug.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz/corpus/` and `fuzz/regressions/` folders and the
/// argument of `switchyard-fuzz-afl`).
pub const TARGETS: [(&str, Target); 3] = [("rule", rule), ("config", config), ("head", head)];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// A request for evaluating arbitrary rules against.
fn sample_request() -> RequestView<'static> {
    const HEADERS: &[(&str, &str)] = &[("X-Env", "prod"), ("Content-Type", "text/plain")];
    RequestView {
        method: "GET",
        host: "api.example.com:8080",
        path: "/api/v1/users%2Fall",
        query: Some("id=3&debug&q=a+b"),
        headers: HEADERS,
        client_ip: Some(CLIENT),
    }
}

/// The rule parser and matcher.
pub fn rule(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(compiled) = rules::compile(text) else {
        return;
    };
    // The canonical form parses back to the same canonical form.
    let canonical = compiled.expr().to_string();
    match rules::parse(&canonical) {
        Ok(again) => assert_eq!(
            again.to_string(),
            canonical,
            "canonical form of {text:?} does not round-trip"
        ),
        Err(e) => panic!("canonical form {canonical:?} of {text:?} does not parse: {e}"),
    }
    let req = sample_request();
    let matched = compiled.matches(&req);
    let (explained, _) = compiled.explain(&req);
    assert_eq!(
        matched, explained,
        "matches and explain disagree on {text:?}"
    );
    let _ = compiled.host_constraint();
    let _ = compiled.default_priority();
    let _ = rules::rule_host_names(text);
}

/// The config decoder: document → model → validate → compile (the control plane's
/// `compile_check`).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = switchyard_config::parse_document(text) else {
        return;
    };
    // What the control plane stores and streams (JSON) decodes to the same model.
    let json = serde_json::to_value(&cfg).expect("a parsed config serialises");
    match switchyard_config::from_value(json.clone()) {
        Ok(back) => assert_eq!(back, cfg, "JSON round trip changed the config: {json}"),
        Err(e) => panic!("a parsed config does not re-parse from its JSON ({e}): {json}"),
    }
    if switchyard_config::validate(&cfg).is_ok() {
        if let Err(e) = switchyard_router::compile(&cfg, None) {
            panic!("validate accepted a config the router does not compile: {e}");
        }
        let _ = switchyard_tls::compile(&cfg, None);
    }
}

/// Routers of every matcher kind, for the route lookups of [`head`].
const ROUTES: &str = r#"
http:
  routers:
    host: {rule: "Host(`example.com`)", service: s}
    wild: {rule: "Host(`*.example.com`) && PathPrefix(`/api`)", service: s}
    re: {rule: "HostRegexp(`^api[0-9]+\\.test$`) || PathRegexp(`^/items/[0-9]+$`)", service: s}
    path: {rule: "Path(`/exact`) || PathPrefix(`/admin`)", service: s}
    hdr: {rule: "Header(`X-Env`, `prod`) && Query(`debug`)", service: s}
    ip: {rule: "ClientIP(`127.0.0.0/8`) && Method(`POST`)", service: s}
    root: {rule: "PathPrefix(`/`)", priority: 1, service: s}
  services:
    s: {loadBalancer: {servers: [{url: "http://127.0.0.1:1"}]}}
"#;

fn route_table() -> Option<&'static switchyard_router::RouteTable> {
    static TABLE: OnceLock<Option<switchyard_router::RouteTable>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let cfg = switchyard_config::parse_document(ROUTES).ok()?;
            switchyard_router::compile(&cfg, None).ok()
        })
        .as_ref()
}

/// Every encoded character denied.
const DENY_ALL: &str = "allowEncodedSlash=false,allowEncodedBackSlash=false,\
allowEncodedNullCharacter=false,allowEncodedSemicolon=false,allowEncodedPercent=false,\
allowEncodedQuestionMark=false,allowEncodedHash=false";

/// The proxy's request head handling, in the handler's order.
pub fn head(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(data) else {
        return;
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return;
    };
    // hyper turns the request-target into an `http::Uri`; anything it refuses is a 400.
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    // Go's `req.Host`: the authority of an absolute-form target, else the Host header.
    let host = uri.authority().map(|a| a.as_str().to_string()).or_else(|| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::to_string)
    });
    let host = host.unwrap_or_default();
    let _ = rules::canonical_host(&host);
    let _ = rules::host_key(&host);
    let _ = rules::host_without_port(&host);
    let hs: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter_map(|h| Some((h.name, std::str::from_utf8(h.value).ok()?)))
        .collect();
    let mut deny_all = EncodedCharacters::default();
    if deny_all.apply_list(DENY_ALL).is_err() {
        panic!("DENY_ALL does not parse");
    }

    for sanitize in [true, false] {
        let Ok(path) = entrypoint_path(uri.path(), sanitize) else {
            continue; // 400
        };
        if sanitize {
            assert!(
                !has_dot_segment(&path),
                "sanitised {:?} into {path:?}, which has a dot segment",
                uri.path()
            );
            assert_eq!(
                entrypoint_path(&path, true).ok().as_deref(),
                Some(path.as_ref()),
                "sanitising {:?} is not idempotent",
                uri.path()
            );
        }
        // The handler puts the cleaned path back into the request URI.
        let pq = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        if !pq.is_empty() && pq != "*" {
            assert!(
                http::uri::PathAndQuery::try_from(pq.as_str()).is_ok(),
                "cleaned path {pq:?} of {target:?} is not a valid request path"
            );
        }
        let _ = deny_all.check(&path);
        let _ = rules::routing_path(&path);
        if let Some(q) = uri.query() {
            let _ = rules::parse_query(q);
        }
        let view = RequestView {
            method,
            host: &host,
            path: &path,
            query: uri.query(),
            headers: &hs,
            client_ip: Some(CLIENT),
        };
        if let Some(table) = route_table() {
            let found = table.lookup_conn("web", false, &view).is_some();
            let explained = table.explain_conn("web", Some(false), &view);
            assert_eq!(
                found,
                explained.winner.is_some(),
                "lookup and explain disagree on {target:?}"
            );
        }
        // stripPrefix `/api`: a rewrite that passes the check never has a dot segment.
        if let Some(rest) = path.strip_prefix("/api") {
            let rest = if rest.starts_with('/') || rest.is_empty() {
                rest.to_string()
            } else {
                format!("/{rest}")
            };
            if check_rewrite(&rest, RewriteCheck::Clean).is_ok() {
                let n = normalize_escapes(&rest).unwrap_or_default();
                assert!(
                    !has_dot_segment(&n),
                    "stripPrefix /api on {path:?} gave {rest:?}"
                );
            }
        }
    }
}
