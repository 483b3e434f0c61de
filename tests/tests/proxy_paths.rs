//! Issue 8, must-show 1: path normalisation through a real proxy, as Traefik v3 does it.
//!
//! Dot-segment and encoded dot-segment requests are cleaned before routing (`sanitizePath`,
//! on by default) or refused with 400; a malformed escape is a 400; `encodedCharacters`
//! refuse the denied escapes of a routed request; no rewriting middleware (stripPrefix,
//! stripPrefixRegex, replacePathRegex, addPrefix, replacePath) can hand the backend a path with
//! dot segments; and `switchyard explain` routes the same cleaned path.
//!
//! Requests are written on raw TCP sockets, byte for byte, because HTTP clients normalise
//! dot segments themselves. One proxy has three entry points: `web` (Traefik's defaults),
//! `raw` (`--sanitize-path raw=false`) and `strict` (`--encoded-characters strict=…=false`).
//! Every router tags its responses with `X-Router`, and the echo backend answers with the
//! path and query it received, so each case checks status, router and forwarded path.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::backends::{block_on, HttpBackend};
use switchyard_e2e::client::{H2Client, Req};
use switchyard_e2e::{apply_to, cli, Cluster, Proxy, ProxySpec, PROXY_SETTLE};

const STRICT: &str = "allowEncodedSlash=false,allowEncodedBackSlash=false,\
allowEncodedNullCharacter=false,allowEncodedSemicolon=false,allowEncodedPercent=false,\
allowEncodedQuestionMark=false,allowEncodedHash=false";

fn config(backend: &HttpBackend) -> String {
    format!(
        r#"
http:
  routers:
    api:
      rule: "PathPrefix(`/api`)"
      middlewares: [tag-api, strip-api]
      service: echo
    admin:
      rule: "PathPrefix(`/admin`)"
      middlewares: [tag-admin]
      service: echo
    files:
      rule: "PathPrefix(`/files`)"
      middlewares: [tag-files, strip-files]
      service: echo
    rre:
      rule: "PathPrefix(`/rre`)"
      middlewares: [tag-rre, rre]
      service: echo
    addp:
      rule: "PathPrefix(`/addp`)"
      middlewares: [tag-addp, addp]
      service: echo
    rp:
      rule: "PathPrefix(`/rp`)"
      middlewares: [tag-rp, rp]
      service: echo
  middlewares:
    tag-api: {{headers: {{customResponseHeaders: {{X-Router: api}}}}}}
    tag-admin: {{headers: {{customResponseHeaders: {{X-Router: admin}}}}}}
    tag-files: {{headers: {{customResponseHeaders: {{X-Router: files}}}}}}
    tag-rre: {{headers: {{customResponseHeaders: {{X-Router: rre}}}}}}
    tag-addp: {{headers: {{customResponseHeaders: {{X-Router: addp}}}}}}
    tag-rp: {{headers: {{customResponseHeaders: {{X-Router: rp}}}}}}
    strip-api: {{stripPrefix: {{prefixes: ["/api"]}}}}
    strip-files: {{stripPrefixRegex: {{regex: ["^/files"]}}}}
    rre: {{replacePathRegex: {{regex: "^/rre/?(.*)", replacement: "/$1"}}}}
    addp: {{addPrefix: {{prefix: "/p"}}}}
    rp: {{replacePath: {{path: "/a/../etc/passwd"}}}}
  services:
    echo:
      loadBalancer:
        servers: [{{url: "{}"}}]
"#,
        backend.url()
    )
}

/// Expected outcome of a case.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// 200 from this router, which routed this (cleaned) path; the backend saw the last path
    /// and query.
    Ok(&'static str, &'static str, &'static str),
    /// 400 from the router's rewriting middleware (explain names the router).
    Rewrite400(&'static str),
    /// 400 from the entry point (malformed escape, or a denied encoded character once this
    /// router matched); explain reports it refused.
    Entry400(Option<&'static str>),
    /// 404: no router.
    NotFound,
}

/// (entry point, request-target as written on the wire, expected).
const CASES: &[(&str, &str, Want)] = &[
    // --- web: Traefik's defaults (sanitizePath on).
    (
        "web",
        "/api/../admin",
        Want::Ok("admin", "/admin", "/admin"),
    ),
    (
        "web",
        "/api/%2e%2e/admin",
        Want::Ok("admin", "/admin", "/admin"),
    ),
    (
        "web",
        "/api/%2E%2E/admin",
        Want::Ok("admin", "/admin", "/admin"),
    ),
    (
        "web",
        "/api/.%2e/admin",
        Want::Ok("admin", "/admin", "/admin"),
    ),
    (
        "web",
        "/api/%2e./admin",
        Want::Ok("admin", "/admin", "/admin"),
    ),
    (
        "web",
        "/%2e%2e/%2e%2e/admin",
        Want::Ok("admin", "/admin", "/admin"),
    ),
    (
        "web",
        "/api/../admin?x=1&y=%2e",
        Want::Ok("admin", "/admin", "/admin?x=1&y=%2e"),
    ),
    ("web", "/api/./v1", Want::Ok("api", "/api/v1", "/v1")),
    ("web", "//api//v1/", Want::Ok("api", "/api/v1/", "/v1/")),
    ("web", "/api/v1/..", Want::Ok("api", "/api", "/")),
    (
        "web",
        "/%61dmin/x",
        Want::Ok("admin", "/admin/x", "/admin/x"),
    ),
    (
        "web",
        "/admin/a%2fb",
        Want::Ok("admin", "/admin/a%2Fb", "/admin/a%2Fb"),
    ),
    // An encoded slash is not a separator: one segment, forwarded as is (Traefik's
    // TestPathOperations); `strict` below refuses it.
    (
        "web",
        "/api/..%2Fadmin",
        Want::Ok("api", "/api/..%2Fadmin", "/..%2Fadmin"),
    ),
    (
        "web",
        "/api/%252e%252e/admin",
        Want::Ok("api", "/api/%252e%252e/admin", "/%252e%252e/admin"),
    ),
    // Rewrites that would produce dot segments: 400 (the issue's `/api../etc/passwd`).
    ("web", "/api../etc/passwd", Want::Rewrite400("api")),
    ("web", "/api./etc/passwd", Want::Rewrite400("api")),
    ("web", "/api%2e%2e/etc/passwd", Want::Rewrite400("api")),
    ("web", "/files../etc/passwd", Want::Rewrite400("files")),
    ("web", "/rre../etc/passwd", Want::Rewrite400("rre")),
    ("web", "/rp/anything", Want::Rewrite400("rp")),
    ("web", "/files/x", Want::Ok("files", "/files/x", "/x")),
    ("web", "/rre/x", Want::Ok("rre", "/rre/x", "/x")),
    ("web", "/addp/x", Want::Ok("addp", "/addp/x", "/p/addp/x")),
    // Malformed escapes.
    ("web", "/api/%zz", Want::Entry400(None)),
    ("web", "/admin/%2", Want::Entry400(None)),
    ("web", "/nothing/../..", Want::NotFound),
    // --- raw: sanitizePath=false. Dot segments are routed and forwarded as sent (the
    // operator's choice, as in Traefik), but no rewrite may produce one.
    (
        "raw",
        "/admin/../x",
        Want::Ok("admin", "/admin/../x", "/admin/../x"),
    ),
    (
        "raw",
        "/admin/%2e%2e/x",
        Want::Ok("admin", "/admin/../x", "/admin/../x"),
    ),
    ("raw", "/api/../admin", Want::Rewrite400("api")),
    ("raw", "/addp/../x", Want::Rewrite400("addp")),
    ("raw", "/rre/../x", Want::Rewrite400("rre")),
    ("raw", "/files/./x", Want::Rewrite400("files")),
    // --- strict: every encodedCharacters option false (cleaning still applies).
    ("strict", "/admin/a%2Fb", Want::Entry400(Some("admin"))),
    ("strict", "/admin/a%2fb", Want::Entry400(Some("admin"))),
    ("strict", "/api/..%2Fadmin", Want::Entry400(Some("api"))),
    ("strict", "/admin/%5C", Want::Entry400(Some("admin"))),
    ("strict", "/admin/%00", Want::Entry400(Some("admin"))),
    ("strict", "/admin/%3b", Want::Entry400(Some("admin"))),
    ("strict", "/admin/%252e%252e", Want::Entry400(Some("admin"))),
    ("strict", "/admin/%3F", Want::Entry400(Some("admin"))),
    ("strict", "/admin/%23", Want::Entry400(Some("admin"))),
    (
        "strict",
        "/admin/a%20b",
        Want::Ok("admin", "/admin/a%20b", "/admin/a%20b"),
    ),
    (
        "strict",
        "/api/%2e%2e/admin/x",
        Want::Ok("admin", "/admin/x", "/admin/x"),
    ),
    // No router: 404 before the encodedCharacters check, as in Traefik.
    ("strict", "/nothing%2F", Want::NotFound),
];

/// A response read from a raw socket.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Write `GET {target} HTTP/1.1` byte for byte and read the whole response (`Connection:
/// close`; chunked bodies are decoded).
fn raw_get(addr: &str, target: &str) -> Result<Raw, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {target} HTTP/1.1\r\nHost: paths.test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end: {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Raw {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `explain -o json GET http://paths.test{target} --entrypoint EP` with the entry point's
/// path flags.
fn explain(endpoint: &str, ep: &str, target: &str) -> (Option<i32>, Value, String) {
    let url = format!("http://paths.test{target}");
    let mut args = vec![
        "-o",
        "json",
        "explain",
        "GET",
        url.as_str(),
        "--entrypoint",
        ep,
    ];
    match ep {
        "raw" => args.extend(["--sanitize-path", "false"]),
        "strict" => args.extend(["--encoded-characters", STRICT]),
        _ => {}
    }
    let out = cli(endpoint, &args);
    let json = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, format!("{out}"))
}

#[test]
fn dot_segments_are_cleaned_or_refused_and_explain_agrees() {
    let c = Cluster::start(1);
    let backend = HttpBackend::start("echo");
    let proxy = Proxy::start(
        ProxySpec::new("p1", &c.endpoints())
            .entrypoints(&["web", "raw", "strict"])
            .args(&[
                "--sanitize-path",
                "raw=false",
                "--encoded-characters",
                &format!("strict={STRICT}"),
            ]),
    );
    apply_to(&c.endpoints(), &proxy, &config(&backend));
    proxy.wait_ready(PROXY_SETTLE);
    let endpoint = c.nodes[0].endpoint();

    let mut problems = Vec::new();
    for (ep, target, want) in CASES {
        let label = format!("{ep} GET {target} (want {want:?})");
        // 1. The real proxy.
        match raw_get(proxy.entry(ep), target) {
            Err(e) => problems.push(format!("{label}: {e}")),
            Ok(r) => {
                let router = r.header("x-router").map(str::to_string);
                let seen = serde_json::from_str::<Value>(&r.body)
                    .ok()
                    .and_then(|j| j["pathAndQuery"].as_str().map(str::to_string));
                let ok = match want {
                    Want::Ok(rt, _, forwarded) => {
                        r.status == 200
                            && router.as_deref() == Some(rt)
                            && seen.as_deref() == Some(forwarded)
                    }
                    Want::Rewrite400(rt) => r.status == 400 && router.as_deref() == Some(rt),
                    Want::Entry400(_) => r.status == 400 && seen.is_none(),
                    Want::NotFound => r.status == 404,
                };
                if !ok {
                    problems.push(format!(
                        "{label}: proxy answered {} from router {router:?}, backend saw {seen:?}",
                        r.status
                    ));
                }
            }
        }
        // 2. explain: the same cleaned path, the same router, the same entry-point refusal.
        let (code, json, out) = explain(&endpoint, ep, target);
        let winner = json["winner"]["name"]
            .as_str()
            .map(|n| n.split('@').next().unwrap_or(n).to_string());
        let refused = json["refused"]["status"].as_u64();
        let ok = match want {
            Want::Ok(rt, routed, _) => {
                code == Some(0)
                    && winner.as_deref() == Some(rt)
                    && refused.is_none()
                    && json["path"].as_str() == Some(routed)
            }
            Want::Rewrite400(rt) => code == Some(0) && winner.as_deref() == Some(rt),
            Want::Entry400(rt) => {
                code == Some(1) && refused == Some(400) && winner.as_deref() == *rt
            }
            Want::NotFound => code == Some(1) && winner.is_none() && refused.is_none(),
        };
        if !ok {
            problems.push(format!(
                "{label}: explain exited {code:?}, winner {winner:?}, refused {refused:?}: {out}"
            ));
        }
    }

    // HTTP/2 carries the path in `:path`: cleaned the same way.
    let r = block_on(async {
        let h2 = H2Client::connect(proxy.entry("web")).await?;
        h2.send(&Req::get("paths.test", "/api/%2e%2e/admin/h2"))
            .await
    })
    .unwrap();
    assert_eq!(r.status, 200, "h2: {r}");
    assert_eq!(r.header("x-router").as_deref(), Some("admin"), "h2: {r}");
    assert_eq!(r.json()["pathAndQuery"], "/admin/h2", "h2: {r}");

    // The table form says what happened to the path.
    let out = cli(
        &endpoint,
        &[
            "explain",
            "GET",
            "http://paths.test/api/../admin",
            "--entrypoint",
            "web",
        ],
    );
    assert!(
        out.stdout
            .contains("path         /admin (sanitized from /api/../admin)"),
        "{out}"
    );

    eprintln!("{} path cases through the proxy and explain", CASES.len());
    assert!(
        problems.is_empty(),
        "{} of {} path cases disagree:\n{}",
        problems.len(),
        CASES.len(),
        problems.join("\n")
    );
}

#[test]
fn bad_path_flags_are_refused_at_start() {
    for (flags, needle) in [
        (
            vec!["--sanitize-path", "web=maybe"],
            "--sanitize-path \"web=maybe\": expected NAME=true|false",
        ),
        (
            vec!["--encoded-characters", "web=allowEncodedSlashes=false"],
            "unknown option \"allowEncodedSlashes\"",
        ),
        (
            vec!["--sanitize-path", "nosuch=false"],
            "path options given for unknown entry point \"nosuch\"",
        ),
    ] {
        let mut args = vec![
            "--config-file",
            "/dev/null",
            "--entrypoint",
            "web=127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ];
        args.extend(flags.iter().copied());
        let out = switchyard_e2e::run_binary(
            &switchyard_e2e::proxy::proxy_bin(),
            &args,
            None,
            Duration::from_secs(30),
        );
        assert!(!out.success(), "{flags:?} accepted: {out}");
        assert!(out.stderr.contains(needle), "{flags:?}: {out}");
    }
}
