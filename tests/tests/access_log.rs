//! Issue 10, must-show 4: access logs through the real binaries (control node + proxy). Lines
//! in `json` and `common` formats carry Traefik's fields for a 200, a 404 and a 502; a router
//! with `observability.accessLogs: false` writes none; status-code filters and header
//! redaction hold; SIGUSR1 reopens the file after a rename (logrotate).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::{fetch, get, Req};
use switchyard_e2e::{apply_to, free_addr, wait_until, Cluster, Proxy, ProxySpec, PROXY_SETTLE};

const WAIT: Duration = Duration::from_secs(30);

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until the file has a line containing `marker`; returns every line.
fn wait_line(path: &Path, marker: &str) -> Vec<String> {
    wait_until(
        WAIT,
        &format!("a line with {marker:?} in {}", path.display()),
        || {
            let l = lines(path);
            l.iter().any(|x| x.contains(marker)).then_some(l)
        },
    )
}

fn doc(backend: &HttpBackend, closed: &str) -> String {
    format!(
        r#"http:
  routers:
    ok: {{rule: "Host(`ok.test`)", service: app}}
    broken: {{rule: "Host(`broken.test`)", service: refused}}
    quiet:
      rule: "Host(`quiet.test`)"
      service: app
      observability: {{accessLogs: false}}
  services:
    app: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
    refused: {{loadBalancer: {{servers: [{{url: "http://{closed}"}}]}}}}
"#,
        backend.url()
    )
}

fn json_line(all: &[String], marker: &str) -> Value {
    let l = all
        .iter()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in {all:#?}"));
    serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))
}

#[test]
fn access_log_lines_have_traefiks_fields_filters_and_reopen_on_sigusr1() {
    let backend = HttpBackend::start("app");
    let closed = free_addr(); // nothing listens there: 502
    let c = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("logs/access.json");
    let clf_path = dir.path().join("access.log");
    let pj = Proxy::start(ProxySpec::new("pj", &c.endpoints()).args(&[
        "--accesslog.filepath",
        json_path.to_str().unwrap(),
        "--accesslog.format",
        "json",
        "--accesslog.fields.headers.defaultmode",
        "keep",
        "--accesslog.fields.headers.names",
        "Authorization=redact",
        "--accesslog.fields.names",
        "StartLocal=drop",
    ]));
    let pc = Proxy::start(ProxySpec::new("pc", &c.endpoints()).args(&[
        "--accesslog.filepath",
        clf_path.to_str().unwrap(),
        "--accesslog.filters.statuscodes",
        "400-499,502",
        "--accesslog.fields.headers.names",
        "User-Agent=keep",
    ]));
    let d = doc(&backend, &closed);
    let v = apply_to(&c.endpoints(), &pj, &d);
    pc.wait_version(v, PROXY_SETTLE);

    for p in [&pj, &pc] {
        let ok = fetch(
            p.web(),
            &Req::get("ok.test:80", "/hello?x=1")
                .header("Authorization", "Bearer secret-token")
                .header("User-Agent", "obs-test/1"),
        )
        .unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(
            get(p.web(), "nowhere.test", "/missing").unwrap().status,
            404
        );
        assert_eq!(get(p.web(), "broken.test", "/down").unwrap().status, 502);
        assert_eq!(get(p.web(), "quiet.test", "/quiet").unwrap().status, 200);
        // Lines are written in order: once the marker is there, the quiet line would be too.
        assert_eq!(get(p.web(), "ok.test", "/marker").unwrap().status, 200);
    }

    // json: Traefik's names and types.
    let all = wait_line(&json_path, "/marker");
    assert!(!all.iter().any(|l| l.contains("/quiet")), "{all:#?}");
    assert_eq!(all.len(), 4, "{all:#?}");
    let ok = json_line(&all, "/hello");
    for (k, want) in [
        ("RequestMethod", Value::from("GET")),
        ("RequestPath", Value::from("/hello?x=1")),
        ("RequestProtocol", Value::from("HTTP/1.1")),
        ("RequestScheme", Value::from("http")),
        ("RequestHost", Value::from("ok.test")),
        ("RequestAddr", Value::from("ok.test:80")),
        ("RequestPort", Value::from("80")),
        ("ClientHost", Value::from("127.0.0.1")),
        ("RouterName", Value::from("ok")),
        ("ServiceName", Value::from("app")),
        ("ServiceURL", Value::from(backend.url())),
        ("ServiceAddr", Value::from(backend.addr().to_string())),
        ("DownstreamStatus", Value::from(200)),
        ("OriginStatus", Value::from(200)),
        ("RetryAttempts", Value::from(0)),
        ("EntryPointName", Value::from("web")),
        ("request_Authorization", Value::from("REDACTED")),
        ("request_User-Agent", Value::from("obs-test/1")),
        ("level", Value::from("info")),
    ] {
        assert_eq!(ok[k], want, "{k} in {ok}");
    }
    for k in [
        "Duration",
        "OriginDuration",
        "Overhead",
        "DownstreamContentSize",
        "RequestCount",
    ] {
        assert!(ok[k].is_u64(), "{k} in {ok}");
    }
    assert!(ok["DownstreamContentSize"].as_u64().unwrap() > 0, "{ok}");
    assert!(ok["ClientPort"].is_string(), "{ok}");
    assert!(ok["StartUTC"].as_str().unwrap().ends_with('Z'), "{ok}");
    assert!(
        ok.get("StartLocal").is_none(),
        "dropped field written: {ok}"
    );
    assert!(!all.iter().any(|l| l.contains("secret-token")), "{all:#?}");
    // A response header is there too (headers default mode keep).
    assert!(ok["downstream_Content-Type"].is_string(), "{ok}");

    let nf = json_line(&all, "/missing");
    assert_eq!(nf["DownstreamStatus"], 404, "{nf}");
    assert!(nf.get("RouterName").is_none(), "{nf}");
    assert!(nf.get("OriginStatus").is_none(), "{nf}");

    let bad = json_line(&all, "/down");
    assert_eq!(bad["DownstreamStatus"], 502, "{bad}");
    assert_eq!(bad["RouterName"], "broken", "{bad}");
    assert_eq!(bad["ServiceName"], "refused", "{bad}");
    assert_eq!(bad["ServiceURL"], format!("http://{closed}"), "{bad}");
    assert!(bad.get("OriginStatus").is_none(), "{bad}");

    // common, filtered to 4xx and 502: the 404 and the 502 only.
    let clf = wait_line(&clf_path, "/down");
    assert_eq!(clf.len(), 2, "{clf:#?}");
    let nf = clf.iter().find(|l| l.contains("/missing")).unwrap();
    assert!(
        nf.starts_with("127.0.0.1 - - ["),
        "CLF line starts with ClientHost - ClientUsername: {nf}"
    );
    assert!(
        nf.contains("] \"GET /missing HTTP/1.1\" 404 "),
        "request line and status: {nf}"
    );
    assert!(
        nf.contains(" \"-\" \"-\" "),
        "router and server URL unknown: {nf}"
    );
    assert!(nf.ends_with("ms"), "{nf}");
    let bad = clf.iter().find(|l| l.contains("/down")).unwrap();
    assert!(
        bad.contains(" 502 ") && bad.contains(&format!("\"broken\" \"http://{closed}\" ")),
        "{bad}"
    );

    // SIGUSR1 after a rename: the old file keeps what it had, the new one gets new lines.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&clf_path, &rotated).unwrap();
    let pid = pc.pid().unwrap();
    let st = std::process::Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait_until(WAIT, "the access log file reopened", || clf_path.exists());
    assert_eq!(
        get(pc.web(), "nowhere.test", "/after-rotate")
            .unwrap()
            .status,
        404
    );
    let fresh = wait_line(&clf_path, "/after-rotate");
    assert_eq!(fresh.len(), 1, "{fresh:#?}");
    assert_eq!(lines(&rotated).len(), 2);

    // The writer's counters.
    let m = pc.metrics().unwrap();
    assert!(
        m.contains("switchyard_proxy_accesslog_lines_total 3"),
        "{m}"
    );
    assert!(
        m.contains("switchyard_proxy_accesslog_dropped_total 0"),
        "{m}"
    );
}
