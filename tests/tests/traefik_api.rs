//! Traefik's read API on a control node's HTTP port, through the real binaries, real `curl` and
//! real `jq`:
//!
//! - README's "Traefik API and dashboard" ```` ```bash ```` blocks run word by word (Traefik's
//!   `curl …/api/http/routers | jq '.[] | select(.status=="enabled") | {name, rule, service}'`
//!   against an insecure node, then the viewer-token, preview and rawdata round-trip commands
//!   against a secure one), with only addresses and the binary directory substituted;
//! - Traefik's shapes, filters, paging (`X-Next-Page`, a 400 past the end) and 404 bodies;
//! - entry points of the attached proxies: a router naming one no proxy serves is `warning`, with
//!   none valid `disabled`;
//! - a router whose service is missing shows `status: disabled` with the error (preview), while
//!   `apply` refuses it and the served API is unchanged;
//! - `/api/rawdata` → file → `apply` changes nothing (same version, same rawdata);
//! - a secure node refuses reads without a token (401, Traefik's `{"message"}` body).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::proxy::{Proxy, ProxySpec};
use switchyard_e2e::{apply_yaml, bin_dir, cli_stdin, wait_until, Cluster, INSECURE};

const SETTLE: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The ```` ```bash ```` blocks of README's "Traefik API and dashboard" section, in order.
fn readme_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut in_section = false;
    let mut current: Option<String> = None;
    for line in readme.lines() {
        if let Some(text) = current.as_mut() {
            if line.trim_start().starts_with("```") {
                out.push(std::mem::take(text));
                current = None;
            } else {
                text.push_str(line);
                text.push('\n');
            }
            continue;
        }
        if let Some(h) = line.strip_prefix("## ") {
            in_section = h.trim() == "Traefik API and dashboard";
        } else if in_section && line.trim() == "```bash" {
            current = Some(String::new());
        }
    }
    out
}

fn substitute(text: &str, table: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in table {
        assert!(
            out.contains(from),
            "README block no longer contains {from:?}:\n{text}"
        );
        out = out.replace(from, to);
    }
    out
}

/// Runs `script` with `bash -euo pipefail` in `dir`; returns stdout, panics on failure.
fn bash(dir: &Path, script: &str, env: &[(&str, String)]) -> String {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "script failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `curl -s -i` → (status, lower-case headers, body).
fn curl(url: &str, token: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.arg(url).output().unwrap();
    assert!(out.status.success(), "curl {url}: {:?}", out);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// A TLS router makes the leader commit the cluster's session-ticket keys once, a config version
/// of its own, shortly after the first TLS router is applied: waits for it, so the versions a
/// test compares are not moved by it in between.
fn wait_for_ticket_keys(c: &Cluster) {
    wait_until(
        Duration::from_secs(60),
        "the cluster's session-ticket keys committed",
        || {
            let committed = c.nodes.iter().any(|n| {
                std::fs::read_to_string(n.log_path())
                    .unwrap_or_default()
                    .contains("TLS session-ticket keys rotated")
            });
            if committed {
                Ok(())
            } else {
                Err("not yet")
            }
        },
    );
}

fn get_json(http: &str, path: &str, token: Option<&str>) -> Value {
    let (status, _, body) = curl(&format!("http://{http}{path}"), token);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

const DOC: &str = r#"
http:
  routers:
    api:
      rule: Host(`api.example`) && PathPrefix(`/v1`)
      service: api
      entryPoints: [web]
      middlewares: [strip, auth@file]
    web:
      rule: Host(`www.example`)
      service: web@file
      priority: 7
    secure:
      rule: Host(`secure.example`)
      service: web
      tls: {}
    elsewhere:
      rule: Host(`x.example`)
      service: web
      entryPoints: [web, nowhere]
    orphan:
      rule: Host(`o.example`)
      service: web
      entryPoints: [nowhere]
  services:
    api:
      loadBalancer:
        servers: [{url: "http://127.0.0.1:9", zone: a}]
    web:
      weighted:
        services: [{name: api, weight: 2}]
  middlewares:
    strip:
      stripPrefix: {prefixes: [/v1]}
    auth:
      headers: {customRequestHeaders: {X-Auth: "1"}}
"#;

#[test]
fn traefik_api_through_curl_and_jq() {
    // Two single-node clusters side by side: an insecure one (README's dev command) and a secure
    // one (viewer token, preview, rawdata round trip).
    let open = std::thread::spawn(|| Cluster::start_with(1, &[INSECURE]));
    let secure = Cluster::start(1);
    let open = open.join().unwrap();
    let open_http = open.nodes[0].addrs.http.clone();
    let sec_http = secure.nodes[0].addrs.http.clone();
    let _p1 =
        Proxy::start(ProxySpec::new("p1", &open.endpoints()).entrypoints(&["web", "websecure"]));
    let _p2 = Proxy::start(ProxySpec::new("p2", &secure.endpoints()));
    let v = apply_yaml(&open.endpoints(), DOC).unwrap();
    apply_yaml(&secure.endpoints(), DOC).unwrap();

    // The proxy's entry points are known to the node once it attached.
    wait_until(SETTLE, "entry points of p1", || {
        let eps = get_json(&open_http, "/api/entrypoints", None);
        if eps
            == json!([{"name": "web", "proxies": ["p1"]}, {"name": "websecure", "proxies": ["p1"]}])
        {
            Ok(())
        } else {
            Err(eps.to_string())
        }
    });

    // README block 1, word by word (only the address differs).
    let blocks = readme_blocks();
    assert_eq!(
        blocks.len(),
        2,
        "README's Traefik API section has two bash blocks"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = bash(
        tmp.path(),
        &substitute(&blocks[0], &[("localhost:7402", open_http.clone())]),
        &[],
    );
    let seen: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        seen,
        vec![
            json!({"name": "api@file", "rule": "Host(`api.example`) && PathPrefix(`/v1`)", "service": "api"}),
            json!({"name": "secure@file", "rule": "Host(`secure.example`)", "service": "web"}),
            json!({"name": "web@file", "rule": "Host(`www.example`)", "service": "web@file"}),
        ],
        "enabled routers (elsewhere: warning, orphan: disabled):\n{out}"
    );

    // Traefik's shapes.
    let api = get_json(&open_http, "/api/http/routers/api@file", None);
    assert_eq!(
        api,
        json!({"entryPoints": ["web"], "middlewares": ["strip", "auth@file"], "name": "api@file",
               "provider": "file", "priorityStr": "0", "rule": "Host(`api.example`) && PathPrefix(`/v1`)",
               "service": "api", "status": "enabled", "using": ["web"]})
    );
    let web = get_json(&open_http, "/api/http/routers/web@file", None);
    assert_eq!(web["priority"], 7);
    assert_eq!(web["priorityStr"], "7");
    assert_eq!(web["using"], json!(["web", "websecure"]));
    let sec = get_json(&open_http, "/api/http/routers/secure@file", None);
    assert_eq!(sec["tls"], json!({"options": "default"}));
    let elsewhere = get_json(&open_http, "/api/http/routers/elsewhere@file", None);
    assert_eq!(elsewhere["status"], "warning");
    assert_eq!(
        elsewhere["error"],
        json!(["entryPoint \"nowhere\" doesn't exist"])
    );
    assert_eq!(elsewhere["using"], json!(["web"]));
    let orphan = get_json(&open_http, "/api/http/routers/orphan@file", None);
    assert_eq!(orphan["status"], "disabled");
    assert_eq!(
        orphan["error"],
        json!([
            "entryPoint \"nowhere\" doesn't exist",
            "no valid entryPoint for this router"
        ])
    );
    let svc = get_json(&open_http, "/api/http/services/api@file", None);
    assert_eq!(svc["type"], "loadbalancer");
    assert_eq!(svc["usedBy"], json!(["api@file"]));
    assert_eq!(
        svc["loadBalancer"]["servers"][0]["url"],
        "http://127.0.0.1:9"
    );
    let web_svc = get_json(&open_http, "/api/http/services/web@file", None);
    assert_eq!(web_svc["type"], "weighted");
    assert_eq!(
        web_svc["usedBy"],
        json!(["elsewhere@file", "orphan@file", "secure@file", "web@file"])
    );
    let mw = get_json(&open_http, "/api/http/middlewares?search=str", None);
    assert_eq!(
        mw,
        json!([{"name": "strip@file", "provider": "file", "status": "enabled", "type": "stripprefix",
                "stripPrefix": {"prefixes": ["/v1"]}, "usedBy": ["api@file"]}])
    );
    let ov = get_json(&open_http, "/api/overview", None);
    assert_eq!(
        ov["http"]["routers"],
        json!({"total": 5, "warnings": 1, "errors": 1})
    );
    assert_eq!(
        ov["http"]["services"],
        json!({"total": 2, "warnings": 0, "errors": 0})
    );
    assert_eq!(
        ov["http"]["middlewares"],
        json!({"total": 2, "warnings": 0, "errors": 0})
    );
    let ver = get_json(&open_http, "/api/version", None);
    assert!(
        ver["Version"].is_string() && ver["startDate"].is_string(),
        "{ver}"
    );

    // Filters, sorting, paging as Traefik.
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let dis = get_json(&open_http, "/api/http/routers?status=disabled", None);
    assert_eq!(names(&dis), ["orphan@file"]);
    let by_svc = get_json(&open_http, "/api/http/routers?serviceName=api@file", None);
    assert_eq!(names(&by_svc), ["api@file"]);
    let by_mw = get_json(&open_http, "/api/http/routers?middlewareName=strip", None);
    assert_eq!(names(&by_mw), ["api@file"]);
    let search = get_json(&open_http, "/api/http/routers?search=www.EXAMPLE", None);
    assert_eq!(names(&search), ["web@file"]);
    let desc = get_json(
        &open_http,
        "/api/http/routers?sortBy=name&direction=desc",
        None,
    );
    assert_eq!(
        names(&desc),
        [
            "web@file",
            "secure@file",
            "orphan@file",
            "elsewhere@file",
            "api@file"
        ]
    );
    let (st, h, body) = curl(
        &format!("http://{open_http}/api/http/routers?per_page=2"),
        None,
    );
    assert_eq!((st, header(&h, "x-next-page")), (200, Some("2")), "{body}");
    assert_eq!(
        names(&serde_json::from_str(&body).unwrap()),
        ["api@file", "elsewhere@file"]
    );
    let (st, h, body) = curl(
        &format!("http://{open_http}/api/http/routers?per_page=2&page=3"),
        None,
    );
    assert_eq!((st, header(&h, "x-next-page")), (200, Some("1")), "{body}");
    assert_eq!(names(&serde_json::from_str(&body).unwrap()), ["web@file"]);
    let (st, _, body) = curl(
        &format!("http://{open_http}/api/http/routers?per_page=2&page=4"),
        None,
    );
    assert_eq!(st, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"message": "invalid request: page: 4, per_page: 2"})
    );
    let (st, _, body) = curl(
        &format!("http://{open_http}/api/http/routers/nope@file"),
        None,
    );
    assert_eq!(st, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"message": "router not found: nope@file"})
    );

    // The explain endpoint says what `switchyard explain` says.
    // The answer carries the version it evaluated: the one applied, or a later one (a TLS
    // router makes the leader commit session-ticket keys, which moves the version once).
    wait_for_ticket_keys(&open);
    let version_before = switchyard_e2e::config_version(&open.endpoints());
    let ex = get_json(
        &open_http,
        "/api/switchyard/explain?method=GET&url=http%3A%2F%2Fapi.example%2Fv1%2Fusers",
        None,
    );
    let version_after = switchyard_e2e::config_version(&open.endpoints());
    assert_eq!(ex["winner"]["name"], "api");
    assert_eq!(
        ex["service"]["targets"],
        json!(["http://127.0.0.1:9 (zone a)"])
    );
    let evaluated = ex["version"].as_u64().expect("explain names its version");
    assert!(
        v <= version_before && version_before <= evaluated && evaluated <= version_after,
        "explain evaluated version {evaluated}; applied {v}, node at {version_before} before and {version_after} after"
    );

    // Secure node: no token, no data; README block 2 word by word with a viewer token.
    let (st, _, body) = curl(&format!("http://{sec_http}/api/http/routers"), None);
    assert_eq!(st, 401, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["message"].is_string());
    let creds = secure.creds();
    wait_for_ticket_keys(&secure);
    let before = get_json(&sec_http, "/api/rawdata", Some(&creds.token));
    let version_before = switchyard_e2e::config_version(&secure.endpoints());
    let out = bash(
        tmp.path(),
        &substitute(
            &blocks[1],
            &[
                ("target/debug/", format!("{}/", bin_dir().display())),
                ("127.0.0.1:7102", sec_http.clone()),
            ],
        ),
        &[
            ("SWITCHYARD_ENDPOINTS", secure.endpoints()),
            ("SWITCHYARD_CA_CERT", creds.ca.display().to_string()),
            ("SWITCHYARD_TOKEN", creds.token.clone()),
        ],
    );
    let seen: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .collect();
    // The secure cluster's proxy serves only `web`: `secure` attaches there too.
    assert!(
        seen.contains(&json!({"name": "api@file", "rule": "Host(`api.example`) && PathPrefix(`/v1`)", "service": "api"})),
        "{out}"
    );
    // The preview of a router whose service is missing: disabled, with the error.
    let broken = seen
        .iter()
        .find(|v| v.get("status").is_some())
        .unwrap_or_else(|| panic!("no preview in:\n{out}"));
    assert_eq!(
        broken,
        &json!({"status": "disabled", "error": ["service: service \"missing\" not found"]})
    );
    // ...which apply refuses, naming router and field, and the served API does not show.
    let refused = cli_stdin(
        &secure.endpoints(),
        &["apply", "-f", "-"],
        &std::fs::read_to_string(tmp.path().join("broken.yaml")).unwrap(),
    );
    assert!(!refused.success());
    assert!(
        refused
            .stderr
            .contains("router \"broken\": service: service \"missing\" not found"),
        "{refused}"
    );
    let (st, _, _) = curl(
        &format!("http://{sec_http}/api/http/routers/broken@file"),
        Some(&creds.token),
    );
    assert_eq!(st, 404);
    // rawdata → file → apply: nothing changed.
    assert_eq!(
        switchyard_e2e::config_version(&secure.endpoints()),
        version_before
    );
    let after = get_json(&sec_http, "/api/rawdata", Some(&creds.token));
    assert_eq!(before, after);
    assert_eq!(
        before["routers"]["api@file"]["status"], "enabled",
        "rawdata has Traefik's runtime fields: {before}"
    );
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("rawdata.json")).unwrap())
            .unwrap();
    assert_eq!(file["http"]["routers"]["secure"]["tls"], json!({}));
}
