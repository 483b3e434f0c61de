//! Issue 9: Traefik v3 middlewares through a real control node and proxy. Cases are ported
//! from Traefik's own tests (`pkg/middlewares/<name>/*_test.go`): each is a middleware
//! definition, a request, and what must come out (status, response headers, body) and what
//! the backend must have received. One stack serves every case (one router per case, on
//! host `c<N>.test`), so the suite stays fast; failures are collected and reported together.
//!
//! The backend is scripted by the request's query: `h=Name:Value` adds a response header
//! (repeatable, `%XX` decoded), `ct=` sets `Content-Type`, `len=N` answers `N` bytes of text
//! instead of the JSON echo of the request (method, path, headers), `status=N` answers
//! with that status.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use switchyard_e2e::backends::runtime;
use switchyard_e2e::client::{fetch, Req, Resp};
use switchyard_e2e::{apply_yaml, cli, cli_stdin, config_version, single_node_stack};

#[path = "middlewares/all_kinds.rs"]
mod all_kinds;
#[path = "middlewares/errors.rs"]
mod errors_cases;
#[path = "middlewares/forwardauth.rs"]
mod forwardauth;
#[path = "middlewares/more.rs"]
mod more;

/// Must show 1: every Traefik v3 HTTP middleware kind in one configuration.
#[test]
fn every_traefik_middleware_kind_in_one_config() {
    all_kinds::run();
}

// ---------------------------------------------------------------------------------------------
// Scripted backend

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Released by the streaming test: the second half of `/stream` responses.
fn stream_gate() -> &'static tokio::sync::Notify {
    static N: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    N.get_or_init(tokio::sync::Notify::new)
}

/// The text bodies are made of.
fn text(n: usize) -> Vec<u8> {
    b"The quick brown fox jumps over the lazy dog. "
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

/// Released by the in-flight test: the body of `/hold` responses.
fn hold_gate() -> &'static tokio::sync::Notify {
    static N: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    N.get_or_init(tokio::sync::Notify::new)
}

async fn scripted(
    req: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    if req.uri().path() == "/hold" {
        // Headers now, the body once the test releases the gate.
        let body = futures::stream::unfold(false, |done| async move {
            if done {
                return None;
            }
            hold_gate().notified().await;
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"held"))),
                true,
            ))
        });
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(body))));
    }
    if req.uri().path() == "/stream" {
        // 4000 bytes, then (once the test releases the gate) 4000 more.
        let body = futures::stream::unfold(0u8, |step| async move {
            match step {
                0 => Some((Ok::<_, Infallible>(Frame::data(Bytes::from(text(4000)))), 1)),
                1 => {
                    stream_gate().notified().await;
                    Some((Ok(Frame::data(Bytes::from(text(4000)))), 2))
                }
                _ => None,
            }
        });
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(body)));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        return Ok(resp);
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let mut extra: Vec<(String, String)> = Vec::new();
    let mut ct = None;
    let mut len = None;
    let mut status = None;
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = percent_decode(v);
        match k {
            "h" => {
                if let Some((n, val)) = v.split_once(':') {
                    extra.push((n.to_string(), val.to_string()));
                }
            }
            "ct" => ct = Some(v),
            "status" => status = v.parse::<u16>().ok(),
            "len" => len = v.parse::<usize>().ok(),
            _ => {}
        }
    }
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_string(), Value::String(v));
            }
        }
    }
    let body = match len {
        Some(n) => Bytes::from(text(n)),
        None => Bytes::from(
            json!({
                "method": req.method().as_str(),
                "path": req.uri().path_and_query().map_or("/", |p| p.as_str()),
                "headers": headers,
            })
            .to_string(),
        ),
    };
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(BodyExt::boxed(Full::new(body)));
    if let Some(s) = status.and_then(|s| http::StatusCode::from_u16(s).ok()) {
        *resp.status_mut() = s;
    }
    let h = resp.headers_mut();
    let ct = ct.unwrap_or_else(|| "application/json".into());
    if !ct.is_empty() {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_str(&ct).unwrap(),
        );
    }
    for (k, v) in extra {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    Ok(resp)
}

/// Starts the scripted backend; returns its address.
fn start_backend() -> SocketAddr {
    start_backend_on("127.0.0.1:0")
}

/// The scripted backend on `addr` (a port handed out by the harness, or 0).
fn start_backend_on(addr: &str) -> SocketAddr {
    let rt = runtime();
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    let addr = listener.local_addr().unwrap();
    switchyard_e2e::reserve_port(addr.port());
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service_fn(scripted))
                    .await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// Cases

/// One table row.
struct Case {
    name: &'static str,
    /// The middleware (`{"kind": {options}}`).
    mw: Value,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    status: u16,
    /// Response headers with their exact (first) value.
    has: Vec<(&'static str, String)>,
    /// Response headers that must be absent.
    lacks: Vec<&'static str>,
    /// Headers the backend must have received (exact value).
    sent: Vec<(&'static str, String)>,
    /// Headers the backend must not have received.
    not_sent: Vec<&'static str>,
    /// Exact response body.
    body: Option<String>,
    /// Sent to the entry point that trusts the client's forwarded headers.
    trusted: bool,
    /// Requests sent first (same route, results not checked), with these headers.
    prime: (usize, Vec<(&'static str, String)>),
    /// The body must be this encoding (`Content-Encoding`) of `len` bytes of [`text`];
    /// `Some("")`: not encoded, and exactly that text.
    encoded: Option<(&'static str, usize)>,
    /// The request body.
    req_body: Vec<u8>,
}

fn case(name: &'static str, mw: Value) -> Case {
    Case {
        name,
        mw,
        method: "GET",
        path: "/foo".into(),
        headers: Vec::new(),
        status: 200,
        has: Vec::new(),
        lacks: Vec::new(),
        sent: Vec::new(),
        not_sent: Vec::new(),
        body: None,
        trusted: false,
        encoded: None,
        prime: (0, Vec::new()),
        req_body: Vec::new(),
    }
}

impl Case {
    fn method(mut self, m: &'static str) -> Case {
        self.method = m;
        self
    }
    fn path(mut self, p: &str) -> Case {
        self.path = p.into();
        self
    }
    fn header(mut self, k: &'static str, v: &str) -> Case {
        self.headers.push((k, v.into()));
        self
    }
    fn status(mut self, s: u16) -> Case {
        self.status = s;
        self
    }
    fn has(mut self, k: &'static str, v: &str) -> Case {
        self.has.push((k, v.into()));
        self
    }
    fn lacks(mut self, k: &'static str) -> Case {
        self.lacks.push(k);
        self
    }
    fn sent(mut self, k: &'static str, v: &str) -> Case {
        self.sent.push((k, v.into()));
        self
    }
    fn not_sent(mut self, k: &'static str) -> Case {
        self.not_sent.push(k);
        self
    }
    fn encoded(mut self, enc: &'static str, len: usize) -> Case {
        self.encoded = Some((enc, len));
        self
    }
    fn prime(mut self, n: usize, headers: &[(&'static str, &str)]) -> Case {
        self.prime = (
            n,
            headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        self
    }
    fn trusted(mut self) -> Case {
        self.trusted = true;
        self
    }
    fn body(mut self, b: &str) -> Case {
        self.body = Some(b.into());
        self
    }
    fn send(mut self, b: &[u8]) -> Case {
        self.req_body = b.to_vec();
        self
    }

    /// Checks a response; every problem is described.
    fn check(&self, r: &Resp) -> Vec<String> {
        let mut p = Vec::new();
        if r.status != self.status {
            p.push(format!("status {} (expected {})", r.status, self.status));
        }
        for (k, v) in &self.has {
            match r.header(k) {
                Some(got) if got == *v => {}
                got => p.push(format!("response {k}: {got:?} (expected {v:?})")),
            }
        }
        for k in &self.lacks {
            if let Some(got) = r.header(k) {
                p.push(format!("response {k}: {got:?} (expected none)"));
            }
        }
        if !self.sent.is_empty() || !self.not_sent.is_empty() {
            match serde_json::from_slice::<Value>(&r.body) {
                Ok(echo) => {
                    let h = &echo["headers"];
                    for (k, v) in &self.sent {
                        let got = h[k.to_ascii_lowercase()].as_str();
                        if got != Some(v.as_str()) {
                            p.push(format!("backend got {k}: {got:?} (expected {v:?})"));
                        }
                    }
                    for k in &self.not_sent {
                        if let Some(got) = h[k.to_ascii_lowercase()].as_str() {
                            p.push(format!("backend got {k}: {got:?} (expected none)"));
                        }
                    }
                }
                Err(_) => p.push("the request did not reach the backend".into()),
            }
        }
        if let Some((enc, len)) = self.encoded {
            let ce = r.header("content-encoding").unwrap_or_default();
            if ce != enc {
                p.push(format!("Content-Encoding {ce:?} (expected {enc:?})"));
            } else {
                match decode(enc, &r.body) {
                    Ok(d) if d == text(len) => {}
                    Ok(d) => p.push(format!(
                        "decoded body of {} bytes is not the text of {len}",
                        d.len()
                    )),
                    Err(e) => p.push(format!("decoding {enc}: {e}")),
                }
            }
        }
        if let Some(b) = &self.body {
            if r.text() != *b {
                p.push(format!("body {:?} (expected {b:?})", r.text()));
            }
        }
        p
    }
}

/// Decodes a body (`""`: as is).
fn decode(enc: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    match enc {
        "" => out.extend_from_slice(body),
        "gzip" => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
        }
        "br" => {
            brotli::Decompressor::new(body, 4096).read_to_end(&mut out)?;
        }
        "zstd" => out = zstd::decode_all(body)?,
        other => return Err(std::io::Error::other(format!("unknown encoding {other}"))),
    }
    Ok(out)
}

/// The backend adds `name: value` to its response.
fn resp_header(path: &str, name: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    let enc: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{path}{sep}h={name}:{enc}")
}

/// `headers` cases: Traefik's header_test.go, headers_test.go and secure_test.go.
fn headers_cases() -> Vec<Case> {
    let origin = "https://foo.bar.org";
    let preflight = |name, cfg: Value| {
        case(name, json!({ "headers": cfg }))
            .method("OPTIONS")
            .header("Access-Control-Request-Headers", "origin")
            .header("Access-Control-Request-Method", "GET")
            .header("Origin", origin)
    };
    let simple = |name, cfg: Value| case(name, json!({ "headers": cfg })).header("Origin", origin);
    let methods = json!(["GET", "OPTIONS", "PUT"]);
    vec![
        // TestNewHeader_customRequestHeader
        case("custom request header added", json!({"headers": {"customRequestHeaders": {"X-Custom-Request-Header": "test_request"}}}))
            .header("Foo", "bar")
            .sent("X-Custom-Request-Header", "test_request")
            .sent("Foo", "bar"),
        case("custom request headers deleted", json!({"headers": {"customRequestHeaders": {"X-Forwarded-For": "", "X-Custom-Request-Header": "", "Foo": ""}}}))
            .header("Foo", "bar")
            .header("X-Custom-Request-Header", "x")
            .not_sent("Foo")
            .not_sent("X-Custom-Request-Header")
            .not_sent("X-Forwarded-For"),
        case("custom request header overridden", json!({"headers": {"customRequestHeaders": {"Foo": "test"}}}))
            .header("Foo", "bar")
            .sent("Foo", "test"),
        // TestNewHeader_customRequestHeader_Host
        case("custom Host header", json!({"headers": {"customRequestHeaders": {"Host": "example.com"}}}))
            .sent("Host", "example.com"),
        // TestNewHeader_CORSPreflights
        preflight("simple preflight", json!({"accessControlAllowMethods": methods, "accessControlAllowOriginList": [origin], "accessControlMaxAge": 600}))
            .has("Content-Length", "0")
            .has("Access-Control-Allow-Origin", origin)
            .has("Access-Control-Max-Age", "600")
            .has("Access-Control-Allow-Methods", "GET,OPTIONS,PUT")
            .lacks("Access-Control-Allow-Credentials")
            .lacks("Access-Control-Allow-Headers")
            .body(""),
        preflight("wildcard origin preflight", json!({"accessControlAllowMethods": methods, "accessControlAllowOriginList": ["*"], "accessControlMaxAge": 600}))
            .has("Access-Control-Allow-Origin", "*")
            .has("Access-Control-Max-Age", "600")
            .has("Access-Control-Allow-Methods", "GET,OPTIONS,PUT"),
        preflight("allow credentials preflight", json!({"accessControlAllowMethods": methods, "accessControlAllowOriginList": ["*"], "accessControlAllowCredentials": true, "accessControlMaxAge": 600}))
            .has("Access-Control-Allow-Origin", origin)
            .has("Access-Control-Allow-Credentials", "true")
            .has("Access-Control-Allow-Methods", "GET,OPTIONS,PUT"),
        preflight("allow headers preflight", json!({"accessControlAllowMethods": methods, "accessControlAllowOriginList": ["*"], "accessControlAllowHeaders": ["origin", "X-Forwarded-For"], "accessControlMaxAge": 600}))
            .has("Access-Control-Allow-Origin", "*")
            .has("Access-Control-Allow-Headers", "origin,X-Forwarded-For"),
        case("no request headers preflight", json!({"headers": {"accessControlAllowMethods": methods, "accessControlAllowOriginList": ["*"], "accessControlAllowHeaders": ["origin", "X-Forwarded-For"], "accessControlMaxAge": 600}}))
            .method("OPTIONS")
            .header("Access-Control-Request-Method", "GET")
            .header("Origin", origin)
            .has("Access-Control-Allow-Headers", "origin,X-Forwarded-For")
            .has("Content-Length", "0"),
        case("nil max age preflight", json!({"headers": {"accessControlAllowMethods": methods, "accessControlAllowOriginList": ["*"]}}))
            .method("OPTIONS")
            .header("Access-Control-Request-Method", "GET")
            .header("Origin", origin)
            .has("Access-Control-Allow-Origin", "*")
            .lacks("Access-Control-Max-Age"),
        preflight("wildcard methods and headers with credentials echo the request", json!({"accessControlAllowMethods": ["*"], "accessControlAllowHeaders": ["*"], "accessControlAllowOriginList": ["*"], "accessControlAllowCredentials": true}))
            .has("Access-Control-Allow-Methods", "GET")
            .has("Access-Control-Allow-Headers", "origin"),
        preflight("disallowed origin preflight gets no allow-origin", json!({"accessControlAllowMethods": methods, "accessControlAllowOriginList": ["https://other.org"]}))
            .has("Access-Control-Allow-Methods", "GET,OPTIONS,PUT")
            .lacks("Access-Control-Allow-Origin"),
        case("OPTIONS without Origin is not a preflight", json!({"headers": {"accessControlAllowMethods": methods, "accessControlAllowOriginList": ["*"]}}))
            .method("OPTIONS")
            .header("Access-Control-Request-Method", "GET")
            .sent("Access-Control-Request-Method", "GET")
            .lacks("Access-Control-Allow-Methods"),
        // TestNewHeader_CORSResponses
        simple("simple request", json!({"accessControlAllowOriginList": [origin]}))
            .has("Access-Control-Allow-Origin", origin)
            .sent("Origin", origin),
        simple("wildcard origin request", json!({"accessControlAllowOriginList": ["*"]}))
            .has("Access-Control-Allow-Origin", "*"),
        simple("regexp origin request", json!({"accessControlAllowOriginListRegex": ["^https?://([a-z]+)\\.bar\\.org$"]}))
            .has("Access-Control-Allow-Origin", origin),
        simple("partial regexp origin request", json!({"accessControlAllowOriginListRegex": ["([a-z]+)\\.bar"]}))
            .has("Access-Control-Allow-Origin", origin),
        case("regexp origin without match", json!({"headers": {"accessControlAllowOriginListRegex": ["([a-z]+)\\.bar\\.org"]}}))
            .header("Origin", "https://bar.org")
            .lacks("Access-Control-Allow-Origin"),
        case("empty origin request", json!({"headers": {"accessControlAllowOriginList": [origin]}}))
            .lacks("Access-Control-Allow-Origin"),
        simple("disallowed origin gets no allow-origin", json!({"accessControlAllowOriginList": ["https://other.org"]}))
            .lacks("Access-Control-Allow-Origin")
            .lacks("Access-Control-Allow-Credentials"),
        simple("allow credentials request", json!({"accessControlAllowOriginList": ["*"], "accessControlAllowCredentials": true}))
            .has("Access-Control-Allow-Origin", origin)
            .has("Access-Control-Allow-Credentials", "true"),
        simple("expose headers request", json!({"accessControlAllowOriginList": ["*"], "accessControlExposeHeaders": ["origin", "X-Forwarded-For"]}))
            .has("Access-Control-Allow-Origin", "*")
            .has("Access-Control-Expose-Headers", "origin,X-Forwarded-For"),
        simple("wildcard expose headers with credentials are dropped", json!({"accessControlAllowOriginList": ["*"], "accessControlExposeHeaders": ["*"], "accessControlAllowCredentials": true}))
            .lacks("Access-Control-Expose-Headers"),
        simple("vary header added", json!({"accessControlAllowOriginList": [origin], "addVaryHeader": true}))
            .has("Access-Control-Allow-Origin", origin)
            .has("Vary", "Origin"),
        simple("vary header appended", json!({"accessControlAllowOriginList": [origin], "addVaryHeader": true}))
            .path(&resp_header("/foo", "Vary", "Testing"))
            .has("Vary", "Testing,Origin"),
        simple("existing vary origin kept", json!({"accessControlAllowOriginList": [origin], "addVaryHeader": true}))
            .path(&resp_header("/foo", "Vary", "Origin"))
            .has("Vary", "Origin"),
        simple("backend allow-origin replaced", json!({"accessControlAllowOriginList": ["*"]}))
            .path(&resp_header("/foo", "Access-Control-Allow-Origin", "http://foo.bar.org"))
            .has("Access-Control-Allow-Origin", "*"),
        case("custom request headers not hijacked by CORS", json!({"headers": {"customRequestHeaders": {"foo": "bar"}}}))
            .method("OPTIONS")
            .header("Access-Control-Request-Headers", "origin")
            .header("Access-Control-Request-Method", "GET")
            .header("Origin", origin)
            .sent("foo", "bar")
            .lacks("Access-Control-Allow-Origin"),
        // TestNewHeader_customResponseHeaders
        case("custom response headers", json!({"headers": {"customResponseHeaders": {"Testing": "foo", "Testing2": "bar"}}}))
            .path(&resp_header("/foo", "Foo", "bar"))
            .has("Foo", "bar")
            .has("Testing", "foo")
            .has("Testing2", "bar"),
        case("empty custom response header", json!({"headers": {"customResponseHeaders": {"Testing": "foo", "Testing2": ""}}}))
            .path(&resp_header("/foo", "Foo", "bar"))
            .has("Testing", "foo")
            .lacks("Testing2"),
        case("custom response header deleted", json!({"headers": {"customResponseHeaders": {"Testing": "foo", "Foo": ""}}}))
            .path(&resp_header("/foo", "Foo", "bar"))
            .has("Testing", "foo")
            .lacks("Foo"),
        // Test_newSecure_modifyResponse
        case("permissions policy", json!({"headers": {"permissionsPolicy": "microphone=(),"}}))
            .has("Permissions-Policy", "microphone=(),"),
        case("STS forced", json!({"headers": {"stsSeconds": 1, "forceSTSHeader": true}}))
            .has("Strict-Transport-Security", "max-age=1"),
        case("STS forced with preload", json!({"headers": {"stsSeconds": 1, "forceSTSHeader": true, "stsPreload": true}}))
            .has("Strict-Transport-Security", "max-age=1; preload"),
        case("custom frame options", json!({"headers": {"customFrameOptionsValue": "foo"}}))
            .has("X-Frame-Options", "foo"),
        case("frame deny", json!({"headers": {"frameDeny": true}}))
            .has("X-Frame-Options", "DENY"),
        // TestNew_withSTSSecondsZero: valid, and no STS header.
        case("stsSeconds 0 is valid", json!({"headers": {"stsSeconds": 0, "forceSTSHeader": true}}))
            .lacks("Strict-Transport-Security"),
        case("content type nosniff", json!({"headers": {"contentTypeNosniff": true}}))
            .has("X-Content-Type-Options", "nosniff"),
        // unrolled/secure semantics Traefik relies on.
        case("STS not on a plain request", json!({"headers": {"stsSeconds": 315360000, "stsIncludeSubdomains": true}}))
            .lacks("Strict-Transport-Security"),
        case("STS on an sslProxyHeaders request", json!({"headers": {"stsSeconds": 315360000, "stsIncludeSubdomains": true, "stsPreload": true, "sslProxyHeaders": {"X-Ssl": "on"}}}))
            .header("X-Ssl", "on")
            .has("Strict-Transport-Security", "max-age=315360000; includeSubDomains; preload"),
        case("no STS in development", json!({"headers": {"stsSeconds": 60, "forceSTSHeader": true, "isDevelopment": true}}))
            .lacks("Strict-Transport-Security"),
        case("public key pins on secure requests", json!({"headers": {"publicKey": "pin-sha256=\"abc\"; max-age=60", "sslProxyHeaders": {"X-Ssl": "on"}}}))
            .header("X-Ssl", "on")
            .has("Public-Key-Pins", "pin-sha256=\"abc\"; max-age=60"),
        case("no public key pins on plain requests", json!({"headers": {"publicKey": "pin-sha256=\"abc\""}}))
            .lacks("Public-Key-Pins"),
        case("browser XSS filter", json!({"headers": {"browserXssFilter": true}}))
            .has("X-XSS-Protection", "1; mode=block"),
        case("custom browser XSS value wins", json!({"headers": {"browserXssFilter": true, "customBrowserXSSValue": "0"}}))
            .has("X-XSS-Protection", "0"),
        case("content security policy", json!({"headers": {"contentSecurityPolicy": "default-src 'self'", "contentSecurityPolicyReportOnly": "script-src 'none'"}}))
            .has("Content-Security-Policy", "default-src 'self'")
            .has("Content-Security-Policy-Report-Only", "script-src 'none'"),
        case("referrer policy", json!({"headers": {"referrerPolicy": "same-origin"}}))
            .has("Referrer-Policy", "same-origin"),
        case("custom response header overrides a security header", json!({"headers": {"frameDeny": true, "customResponseHeaders": {"X-Frame-Options": "SAMEORIGIN"}}}))
            .has("X-Frame-Options", "SAMEORIGIN"),
        case("security headers on the proxy's own errors", json!({"headers": {"frameDeny": true}}))
            .status(502)
            .has("X-Frame-Options", "DENY"),
    ]
}

/// `ipAllowList` / `ipWhiteList`: Traefik's ip_allowlist_test.go and pkg/ip strategy cases
/// (the client is 127.0.0.1; `X-Forwarded-For` only survives on the trusted entry point).
fn ip_cases() -> Vec<Case> {
    let xff = "1.1.1.1, 20.20.20.20";
    vec![
        case("authorized with remote address", json!({"ipAllowList": {"sourceRange": ["127.0.0.1"]}})),
        case("non authorized with remote address", json!({"ipAllowList": {"sourceRange": ["20.20.20.20"]}}))
            .status(403)
            .body("Forbidden"),
        case("authorized with remote address, reject 404", json!({"ipAllowList": {"sourceRange": ["127.0.0.1"], "rejectStatusCode": 404}})),
        case("non authorized with remote address, reject 404", json!({"ipAllowList": {"sourceRange": ["20.20.20.20"], "rejectStatusCode": 404}}))
            .status(404)
            .body("Not Found"),
        case("authorized by CIDR range", json!({"ipAllowList": {"sourceRange": ["10.0.0.0/8", "127.0.0.0/8"]}})),
        case("IPv6 range does not hold an IPv4 client", json!({"ipAllowList": {"sourceRange": ["::1/128"]}}))
            .status(403),
        case("ipWhiteList alias authorizes", json!({"ipWhiteList": {"sourceRange": ["127.0.0.1/32"]}})),
        case("ipWhiteList alias refuses", json!({"ipWhiteList": {"sourceRange": ["10.0.0.0/8"]}}))
            .status(403),
        case("depth 1 from a trusted entry point", json!({"ipAllowList": {"sourceRange": ["20.20.20.20"], "ipStrategy": {"depth": 1}}}))
            .header("X-Forwarded-For", xff)
            .trusted(),
        case("depth 2 picks the first entry", json!({"ipAllowList": {"sourceRange": ["20.20.20.20"], "ipStrategy": {"depth": 2}}}))
            .header("X-Forwarded-For", xff)
            .trusted()
            .status(403),
        case("depth on an untrusted entry point sees no client header", json!({"ipAllowList": {"sourceRange": ["20.20.20.20"], "ipStrategy": {"depth": 1}}}))
            .header("X-Forwarded-For", xff)
            .status(403),
        case("depth beyond the header refuses", json!({"ipAllowList": {"sourceRange": ["1.1.1.1", "20.20.20.20"], "ipStrategy": {"depth": 3}}}))
            .header("X-Forwarded-For", xff)
            .trusted()
            .status(403),
        case("excludedIPs skip proxies from the right", json!({"ipAllowList": {"sourceRange": ["1.1.1.1"], "ipStrategy": {"excludedIPs": ["20.20.20.0/24"]}}}))
            .header("X-Forwarded-For", xff)
            .trusted(),
        case("excludedIPs excluding everything refuses", json!({"ipAllowList": {"sourceRange": ["1.1.1.1", "20.20.20.20"], "ipStrategy": {"excludedIPs": ["1.1.1.1", "20.20.20.20"]}}}))
            .header("X-Forwarded-For", xff)
            .trusted()
            .status(403),
        case("depth wins over excludedIPs", json!({"ipAllowList": {"sourceRange": ["20.20.20.20"], "ipStrategy": {"depth": 1, "excludedIPs": ["20.20.20.20"]}}}))
            .header("X-Forwarded-For", xff)
            .trusted(),
        case("ipv6Subnet groups the depth address", json!({"ipAllowList": {"sourceRange": ["2001:db8:0:1::/128"], "ipStrategy": {"depth": 1, "ipv6Subnet": 64}}}))
            .header("X-Forwarded-For", "2001:db8:0:1:aa:bb:cc:dd")
            .trusted(),
        case("without ipv6Subnet the exact address is checked", json!({"ipAllowList": {"sourceRange": ["2001:db8:0:1::/128"], "ipStrategy": {"depth": 1}}}))
            .header("X-Forwarded-For", "2001:db8:0:1:aa:bb:cc:dd")
            .trusted()
            .status(403),
        case("refusal passes back through an outer headers middleware", json!([
            {"headers": {"customResponseHeaders": {"X-Outer": "1"}}},
            {"ipAllowList": {"sourceRange": ["20.20.20.20"]}},
        ]))
            .status(403)
            .has("X-Outer", "1"),
    ]
}

const APR1_TEST: &str = "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/";
const BCRYPT_B: &str = "b:$2a$04$.8sTYfcxbSplCtoxt5TdJOgpBYkarKtZYsYfYxQ1edbYRuO1DNi0e";
const SHA_S: &str = "s:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=";

/// `basicAuth`: Traefik's basic_auth_test.go (the usersFile cases use an htpasswd file that
/// `apply` uploads; its path is substituted for `USERS_FILE`).
fn basic_auth_cases() -> Vec<Case> {
    let users = json!([APR1_TEST, BCRYPT_B, SHA_S]);
    let ba = |extra: Value| {
        let mut m = json!({"users": users});
        if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        json!({ "basicAuth": m })
    };
    vec![
        case("apr1 user authenticated", ba(json!({})))
            .header("Authorization", "Basic dGVzdDp0ZXN0")
            .sent("Authorization", "Basic dGVzdDp0ZXN0"),
        case("wrong password refused", ba(json!({})))
            .header("Authorization", "Basic dGVzdDp0ZXNU")
            .status(401)
            .has("WWW-Authenticate", "Basic realm=\"traefik\"")
            .body("401 Unauthorized\n"),
        case("no credentials refused", ba(json!({})))
            .status(401)
            .has("WWW-Authenticate", "Basic realm=\"traefik\""),
        case("unknown user refused", ba(json!({})))
            .header("Authorization", "Basic bm9ib2R5OnRlc3Q=")
            .status(401),
        case("bcrypt user authenticated", ba(json!({})))
            .header("Authorization", "Basic Yjp0ZXN0"),
        case("SHA user authenticated", ba(json!({})))
            .header("Authorization", "Basic czp0ZXN0"),
        case("scheme is case-insensitive", ba(json!({})))
            .header("Authorization", "basic dGVzdDp0ZXN0"),
        case("malformed credentials refused", ba(json!({})))
            .header("Authorization", "Basic !!!")
            .status(401),
        case("bearer token refused", ba(json!({})))
            .header("Authorization", "Bearer dGVzdDp0ZXN0")
            .status(401),
        case("custom realm", ba(json!({"realm": "myRealm"})))
            .status(401)
            .has("WWW-Authenticate", "Basic realm=\"myRealm\""),
        case("headerField carries the user", ba(json!({"headerField": "X-Webauth-User"})))
            .header("Authorization", "Basic dGVzdDp0ZXN0")
            .header("X-Webauth-User", "admin")
            .sent("X-Webauth-User", "test"),
        case("removeHeader drops Authorization", ba(json!({"removeHeader": true})))
            .header("Authorization", "Basic dGVzdDp0ZXN0")
            .not_sent("Authorization"),
        case("users from the uploaded file", json!({"basicAuth": {"usersFile": "USERS_FILE"}}))
            .header("Authorization", "Basic dGVzdDI6dGVzdDI="),
        case("inline users override the file", json!({"basicAuth": {"usersFile": "USERS_FILE", "users": ["test2:$apr1$mK.GtItK$ncnLYvNLek0weXdxo68690"]}}))
            .header("Authorization", "Basic dGVzdDI6b3ZlcnJpZGRlbg=="),
        case("overridden file user refused", json!({"basicAuth": {"usersFile": "USERS_FILE", "users": ["test2:$apr1$mK.GtItK$ncnLYvNLek0weXdxo68690"]}}))
            .header("Authorization", "Basic dGVzdDI6dGVzdDI=")
            .status(401),
        case("file comments skipped, first user works", json!({"basicAuth": {"usersFile": "USERS_FILE"}}))
            .header("Authorization", "Basic dGVzdDp0ZXN0"),
    ]
}

/// `compress`: Traefik's compress_test.go and acceptencoding_test.go behaviour.
fn compress_cases() -> Vec<Case> {
    let big = "/foo?len=5000&ct=text/html";
    let c = |name, cfg: Value| case(name, json!({ "compress": cfg })).path(big);
    vec![
        c("gzip chosen", json!({}))
            .header("Accept-Encoding", "gzip")
            .has("Vary", "Accept-Encoding")
            .lacks("Content-Length")
            .encoded("gzip", 5000),
        c("br chosen", json!({}))
            .header("Accept-Encoding", "br")
            .encoded("br", 5000),
        c("zstd chosen", json!({}))
            .header("Accept-Encoding", "zstd")
            .encoded("zstd", 5000),
        c("q-values followed", json!({}))
            .header("Accept-Encoding", "gzip;q=0.5, br;q=0.9")
            .encoded("br", 5000),
        c("same weight: configured order", json!({}))
            .header("Accept-Encoding", "br, zstd, gzip")
            .encoded("gzip", 5000),
        c(
            "encodings order",
            json!({"encodings": ["zstd", "br", "gzip"]}),
        )
        .header("Accept-Encoding", "gzip, br, zstd")
        .encoded("zstd", 5000),
        c(
            "forbidden encoding ignored",
            json!({"encodings": ["br", "gzip"]}),
        )
        .header("Accept-Encoding", "zstd, gzip, br")
        .encoded("br", 5000),
        c("wildcard: first encoding", json!({}))
            .header("Accept-Encoding", "*")
            .encoded("gzip", 5000),
        c(
            "wildcard: defaultEncoding",
            json!({"defaultEncoding": "br"}),
        )
        .header("Accept-Encoding", "*")
        .encoded("br", 5000),
        c("no Accept-Encoding: identity", json!({}))
            .encoded("", 5000)
            .lacks("Vary"),
        c(
            "no Accept-Encoding: defaultEncoding",
            json!({"defaultEncoding": "zstd"}),
        )
        .encoded("zstd", 5000),
        c(
            "empty Accept-Encoding: identity",
            json!({"defaultEncoding": "zstd"}),
        )
        .header("Accept-Encoding", "")
        .encoded("", 5000),
        c("identity preferred", json!({}))
            .header("Accept-Encoding", "br;q=0.8, identity;q=1.0")
            .encoded("", 5000),
        c("unknown encodings only", json!({}))
            .header("Accept-Encoding", "compress, rar")
            .encoded("", 5000),
        c("zero weights", json!({}))
            .header("Accept-Encoding", "br;q=0, gzip;q=0, zstd;q=0")
            .encoded("", 5000),
        c("body under the default minimum", json!({}))
            .path("/foo?len=1000&ct=text/html")
            .header("Accept-Encoding", "gzip")
            .has("Vary", "Accept-Encoding")
            .has("Content-Length", "1000")
            .encoded("", 1000),
        c(
            "minResponseBodyBytes lowered",
            json!({"minResponseBodyBytes": 50}),
        )
        .path("/foo?len=100&ct=text/html")
        .header("Accept-Encoding", "gzip")
        .encoded("gzip", 100),
        c(
            "minResponseBodyBytes raised",
            json!({"minResponseBodyBytes": 10000}),
        )
        .header("Accept-Encoding", "gzip")
        .encoded("", 5000),
        c(
            "excluded content type",
            json!({"excludedContentTypes": ["text/html"]}),
        )
        .header("Accept-Encoding", "gzip")
        .encoded("", 5000),
        c(
            "excluded type with other parameters compressed",
            json!({"excludedContentTypes": ["text/html; charset=ascii"]}),
        )
        .path("/foo?len=5000&ct=text/html%3B%20charset%3Dutf-8")
        .header("Accept-Encoding", "gzip")
        .encoded("gzip", 5000),
        c(
            "not an included content type",
            json!({"includedContentTypes": ["application/json"]}),
        )
        .header("Accept-Encoding", "gzip")
        .encoded("", 5000),
        c(
            "included content type",
            json!({"includedContentTypes": ["application/json"]}),
        )
        .path("/foo?len=5000&ct=application/json")
        .header("Accept-Encoding", "gzip")
        .encoded("gzip", 5000),
        c("gRPC responses never compressed", json!({}))
            .path("/foo?len=5000&ct=application/grpc")
            .header("Accept-Encoding", "gzip")
            .encoded("", 5000),
        c("gRPC requests never compressed", json!({}))
            .header("Accept-Encoding", "gzip")
            .header("Content-Type", "application/grpc")
            .encoded("", 5000)
            .lacks("Vary"),
        c("already encoded response untouched", json!({}))
            .path(&resp_header(big, "Content-Encoding", "br"))
            .header("Accept-Encoding", "gzip")
            .has("Content-Encoding", "br")
            .has("Content-Length", "5000"),
        c("range response untouched", json!({}))
            .path(&resp_header(big, "Content-Range", "bytes 0-4999/10000"))
            .header("Accept-Encoding", "gzip")
            .encoded("", 5000),
        c("HEAD never compressed", json!({}))
            .method("HEAD")
            .header("Accept-Encoding", "gzip")
            .lacks("Content-Encoding")
            .lacks("Vary"),
        c("no content type compressed", json!({}))
            .path("/foo?len=5000&ct=")
            .header("Accept-Encoding", "gzip")
            .encoded("gzip", 5000),
    ]
}

/// `rateLimit`: Traefik's rate_limiter_test.go semantics (token bucket per source, 429 with
/// `Retry-After`); slow rates so that timing cannot change the outcome.
fn rate_limit_cases() -> Vec<Case> {
    let slow = |extra: Value| {
        let mut m = json!({"average": 1, "period": "1m"});
        if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        json!({ "rateLimit": m })
    };
    vec![
        case("first request passes", slow(json!({}))),
        case("default burst 1: second refused", slow(json!({})))
            .prime(1, &[])
            .status(429)
            .has("Retry-After", "60")
            .body("Too Many Requests"),
        case("burst 3: third passes", slow(json!({"burst": 3}))).prime(2, &[]),
        case("burst 3: fourth refused", slow(json!({"burst": 3})))
            .prime(3, &[])
            .status(429),
        case("average 0: no limit", json!({"rateLimit": {"average": 0}})).prime(5, &[]),
        case(
            "high rate: burst passes",
            json!({"rateLimit": {"average": 1000, "burst": 20}}),
        )
        .prime(10, &[]),
        case(
            "sources by header: another key passes",
            slow(json!({"sourceCriterion": {"requestHeaderName": "X-Key"}})),
        )
        .prime(1, &[("X-Key", "a")])
        .header("X-Key", "b"),
        case(
            "sources by header: same key refused",
            slow(json!({"sourceCriterion": {"requestHeaderName": "X-Key"}})),
        )
        .prime(1, &[("X-Key", "a")])
        .header("X-Key", "a")
        .status(429),
        case(
            "sources by host: same host refused",
            slow(json!({"sourceCriterion": {"requestHost": true}})),
        )
        .prime(1, &[])
        .status(429),
        case(
            "sources by ipStrategy depth: another client passes",
            slow(json!({"sourceCriterion": {"ipStrategy": {"depth": 1}}})),
        )
        .prime(1, &[("X-Forwarded-For", "1.1.1.1")])
        .header("X-Forwarded-For", "2.2.2.2")
        .trusted(),
        case(
            "sources by ipStrategy depth: same client refused",
            slow(json!({"sourceCriterion": {"ipStrategy": {"depth": 1}}})),
        )
        .prime(1, &[("X-Forwarded-For", "1.1.1.1")])
        .header("X-Forwarded-For", "1.1.1.1")
        .trusted()
        .status(429),
        case(
            "inFlightReq amount 0 refuses everything",
            json!({"inFlightReq": {"amount": 0}}),
        )
        .status(429)
        .body("Too Many Requests"),
        case(
            "inFlightReq under its amount passes",
            json!({"inFlightReq": {"amount": 1}}),
        )
        .prime(3, &[]),
        case(
            "refusal passes back through an outer headers middleware",
            json!([
                {"headers": {"customResponseHeaders": {"X-Outer": "1"}}},
                {"rateLimit": {"average": 1, "period": "1m"}},
            ]),
        )
        .prime(1, &[])
        .status(429)
        .has("X-Outer", "1"),
    ]
}

/// `circuitBreaker`: oxy's cbreaker cases that a single request can show (the breaker's
/// cycle through a dead server is [`circuit_breaker_opens_and_recovers`]).
fn circuit_breaker_cases() -> Vec<Case> {
    let cb = |extra: Value| {
        let mut m = json!({"expression": "ResponseCodeRatio(500, 600, 0, 600) > 0.5"});
        if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        json!({ "circuitBreaker": m })
    };
    vec![
        case(
            "circuitBreaker in standby passes",
            json!({"circuitBreaker": {"expression": "NetworkErrorRatio() > 0.5"}}),
        )
        .sent("X-Forwarded-Proto", "http"),
        case("circuitBreaker tripped by 5xx answers 503", cb(json!({})))
            .path("/foo?status=500")
            .prime(1, &[])
            .status(503)
            .has("Content-Type", "text/plain; charset=utf-8")
            .body("Service Unavailable"),
        case(
            "circuitBreaker responseCode",
            cb(json!({"responseCode": 418})),
        )
        .path("/foo?status=500")
        .prime(1, &[])
        .status(418)
        .body("I'm a teapot"),
        case(
            "circuitBreaker not tripped under RequestThreshold",
            json!({"circuitBreaker": {"expression": "ResponseCodeRatio(500, 600, 0, 600) > 0.5 && RequestThreshold() > 3"}}),
        )
        .path("/foo?status=500")
        .prime(1, &[])
        .status(500),
        case(
            "circuitBreaker latency quantile not reached",
            json!({"circuitBreaker": {"expression": "LatencyAtQuantileMS(50.0) > 10000"}}),
        )
        .prime(3, &[]),
        case(
            "circuitBreaker sees the answers of the middlewares it wraps",
            json!([
                {"circuitBreaker": {"expression": "ResponseCodeRatio(400, 500, 0, 600) > 0.5", "checkPeriod": "1ns"}},
                {"rateLimit": {"average": 1, "period": "1m"}},
            ]),
        )
        .prime(3, &[])
        .status(503),
    ]
}

/// htdigest lines of Traefik's digest_auth_test.go (`test:test`, `test2:test2`).
const DIGEST_TEST: &str = "test:traefik:a2688e031edb4be6a3797f3882655c05";
const DIGEST_TEST2: &str = "test2:traefik:518845800f9e2bfb1f1f740ec24f074e";

/// `digestAuth` cases a single request can show (the challenge-response exchange is
/// [`digest_auth_with_real_clients`]).
fn digest_auth_cases() -> Vec<Case> {
    let da = json!({"digestAuth": {"users": [DIGEST_TEST]}});
    vec![
        // TestDigestAuthFail: basic credentials are not digest ones.
        case("digestAuth refuses basic credentials", da.clone())
            .header("Authorization", "Basic dGVzdDp0ZXN0")
            .status(401)
            .has("Content-Type", "text/plain")
            .body("401 Unauthorized\n"),
        case("digestAuth without credentials", da.clone()).status(401),
        case(
            "digestAuth refuses a response for a nonce it never gave",
            da,
        )
        .header(
            "Authorization",
            "Digest username=\"test\", realm=\"traefik\", nonce=\"x\", uri=\"/foo\", qop=auth, nc=00000001, cnonce=\"y\", response=\"00000000000000000000000000000000\"",
        )
        .status(401),
    ]
}

fn md5_hex(s: &str) -> String {
    use md5::Digest as _;
    md5::Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `Authorization` for a challenge (RFC 2617, qop=auth), as a client computes it.
fn digest_answer(challenge: &str, user: &str, password: &str, uri: &str, nc: u32) -> String {
    let param = |k: &str| -> String {
        let at = challenge
            .find(&format!("{k}=\""))
            .unwrap_or_else(|| panic!("{k} in {challenge}"));
        let rest = &challenge[at + k.len() + 2..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    let (realm, nonce, opaque) = (param("realm"), param("nonce"), param("opaque"));
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("GET:{uri}"));
    let nc = format!("{nc:08x}");
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:0a4f113b:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc={nc}, cnonce=\"0a4f113b\", response=\"{response}\", opaque=\"{opaque}\", algorithm=MD5"
    )
}

/// `digestAuth` (`headerField: X-WebAuth-User`, `removeHeader`; `test2` from the uploaded
/// `usersFile`): curl's digest implementation logs in with Traefik's test users and is refused with a wrong password;
/// a hand-computed exchange shows the challenge, the success, and a replayed nonce count
/// refused with `stale=true`.
fn digest_auth_with_real_clients(addr: &str) {
    let curl = |user: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--digest", "-u", user, "-H", "Host: digest.test"])
            .args(["-w", "\n%{http_code}", &format!("http://{addr}/foo?a=1")])
            .output()
            .expect("curl runs (scripts/test.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_string(), body.to_string())
    };
    for user in ["test:test", "test2:test2"] {
        let (code, body) = curl(user);
        assert_eq!(code, "200", "curl --digest -u {user}: {body}");
        let echo: Value = serde_json::from_str(&body).unwrap();
        let name = user.split(':').next().unwrap();
        assert_eq!(echo["headers"]["x-webauth-user"], name, "{echo}");
        assert!(echo["headers"]["authorization"].is_null(), "{echo}");
    }
    let (code, _) = curl("test:wrong");
    assert_eq!(code, "401", "a wrong password is refused");
    let (code, _) = curl("foo:foo");
    assert_eq!(code, "401", "an unknown user is refused");

    let r = fetch(addr, &Req::get("digest.test", "/foo")).unwrap();
    assert_eq!(r.status, 401, "{r}");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Digest realm=\"traefik\", nonce=\"")
            && challenge.ends_with(", algorithm=MD5, qop=\"auth\""),
        "{challenge}"
    );
    let answer = digest_answer(&challenge, "test", "test", "/foo", 1);
    let ok = fetch(
        addr,
        &Req::get("digest.test", "/foo").header("Authorization", &answer),
    )
    .unwrap();
    assert_eq!(ok.status, 200, "{ok}");
    let replay = fetch(
        addr,
        &Req::get("digest.test", "/foo").header("Authorization", &answer),
    )
    .unwrap();
    assert_eq!(
        replay.status, 401,
        "a replayed nonce count is refused: {replay}"
    );
    assert!(
        replay
            .header("www-authenticate")
            .unwrap()
            .ends_with(", stale=true"),
        "{replay}"
    );
    let next = digest_answer(&challenge, "test", "test", "/foo", 2);
    let ok = fetch(
        addr,
        &Req::get("digest.test", "/foo").header("Authorization", &next),
    )
    .unwrap();
    assert_eq!(ok.status, 200, "the next nonce count passes: {ok}");
}

/// Host-dependent `headers` cases (the Host header is the case's own, so they need their own
/// routers): allowedHosts with the host or a hostsProxyHeaders value.
fn host_cases() -> Vec<(Case, &'static str)> {
    vec![
        // TestNew_allowedHosts
        (
            case("allowed host accepted", json!({"headers": {"allowedHosts": ["foo.com", "bar.com"]}}))
                .status(200),
            "foo.com",
        ),
        (
            case("allowed host refused", json!({"headers": {"allowedHosts": ["foo.com", "bar.com"]}}))
                .status(500)
                .body("Bad Host\n"),
            "boo.com",
        ),
        (
            case("allowed host via hostsProxyHeaders", json!({"headers": {"allowedHosts": ["foo.com"], "hostsProxyHeaders": ["X-Forwarded-Host-Custom"]}}))
                .header("X-Forwarded-Host-Custom", "foo.com")
                .status(200),
            "boo.com",
        ),
        (
            case("allowed host ignored in development", json!({"headers": {"allowedHosts": ["foo.com"], "isDevelopment": true}}))
                .status(200),
            "boo.com",
        ),
        (
            case("allowed host exact match", json!({"headers": {"allowedHosts": ["foo.com"], "customResponseHeaders": {"X-Seen": "1"}}}))
                .status(200)
                .has("X-Seen", "1"),
            "FOO.com",
        ),
    ]
}

/// Options that `apply` must refuse, naming the middleware and field.
fn refusals() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"headers": {"customRequestHeaders": {}}}),
            "headers: at least one option is required",
        ),
        (
            json!({"headers": {"accessControlAllowOriginListRegex": ["a(b"]}}),
            "headers.accessControlAllowOriginListRegex[0]: invalid regexp",
        ),
        (
            json!({"headers": {"customFrameOptionsValue": "a\u{1}b"}}),
            "headers.customFrameOptionsValue: must be a valid header value",
        ),
        (
            json!({"headers": {"hostsProxyHeaders": ["bad header"]}}),
            "headers.hostsProxyHeaders[0]: invalid header name",
        ),
        (
            json!({"headers": {"sslProxyHeaders": {"X(": "https"}}}),
            "headers.sslProxyHeaders: invalid header name",
        ),
        (
            json!({"retry": {"attempts": 0}}),
            "retry.attempts: must be 1 or more, got 0",
        ),
        (
            json!({"retry": {"attempts": 2, "initialInterval": "-1s"}}),
            "retry.initialInterval: must not be negative",
        ),
        (
            json!({"retry": {"attempts": 2, "status": ["500-599"]}}),
            "retry.status: is not supported by this version of Switchyard",
        ),
        (
            json!({"inFlightReq": {"amount": -1}}),
            "inFlightReq.amount: must be 0 or more, got -1",
        ),
        (
            json!({"inFlightReq": {"amount": 1, "sourceCriterion": {"ipStrategy": {"depth": 1}, "requestHost": true}}}),
            "inFlightReq.sourceCriterion: ipStrategy, requestHeaderName and requestHost are mutually exclusive",
        ),
        (
            json!({"inFlightReq": {"amount": 5, "scope": "global"}}),
            "inFlightReq.scope: must be proxy or cluster, got \"global\"",
        ),
        (
            json!({"rateLimit": {"average": 10, "scope": "global"}}),
            "rateLimit.scope: must be proxy or cluster, got \"global\"",
        ),
        (
            json!({"rateLimit": {"average": -1}}),
            "rateLimit.average: must be 0 or more, got -1",
        ),
        (
            json!({"rateLimit": {"average": 10, "period": "-1s"}}),
            "rateLimit.period: must not be negative",
        ),
        (
            json!({"rateLimit": {"average": 10, "sourceCriterion": {"requestHost": true, "requestHeaderName": "X-A"}}}),
            "rateLimit.sourceCriterion: ipStrategy, requestHeaderName and requestHost are mutually exclusive",
        ),
        (
            json!({"rateLimit": {"average": 10, "redis": {"endpoints": ["localhost:6379"]}}}),
            "rateLimit.redis: is not supported by this version of Switchyard",
        ),
        (
            json!({"compress": {"encodings": ["gzip", "lz4"]}}),
            "compress.encodings[1]: unsupported encoding \"lz4\", expected gzip, br or zstd",
        ),
        (
            json!({"compress": {"encodings": ["gzip"], "defaultEncoding": "br"}}),
            "compress.defaultEncoding: unsupported default encoding \"br\"",
        ),
        (
            json!({"compress": {"excludedContentTypes": ["text/html"], "includedContentTypes": ["text/css"]}}),
            "compress.includedContentTypes: excludedContentTypes and includedContentTypes are mutually exclusive",
        ),
        (
            json!({"compress": {"minResponseBodyBytes": -5}}),
            "compress.minResponseBodyBytes: must be 0 or more, got -5",
        ),
        (
            json!({"compress": {"excludedContentTypes": ["nonsense"]}}),
            "compress.excludedContentTypes[0]: invalid media type \"nonsense\"",
        ),
        (
            json!({"basicAuth": {"users": ["test"]}}),
            "basicAuth.users[0]: invalid user line for \"test\": expected name:hash",
        ),
        (
            json!({"basicAuth": {"users": ["test:test"]}}),
            "basicAuth.users[0]: user \"test\": unsupported password hash",
        ),
        (
            json!({"basicAuth": {"users": [APR1_TEST], "headerField": "X User"}}),
            "basicAuth.headerField: invalid header name",
        ),
        (
            json!({"basicAuth": {"users": [APR1_TEST], "realm": "a\"b"}}),
            "basicAuth.realm: must be printable text without quotes",
        ),
        (
            json!({"basicAuth": {}}),
            "basicAuth.users: at least one user is required",
        ),
        (
            json!({"basicAuth": {"usersFile": "/nonexistent/htpasswd"}}),
            "basicAuth.usersFile: cannot read \"/nonexistent/htpasswd\"",
        ),
        (
            json!({"ipAllowList": {"sourceRange": ["10.0.0.0/8", "foo"]}}),
            "ipAllowList.sourceRange[1]: invalid IP address or CIDR range \"foo\"",
        ),
        (
            json!({"ipAllowList": {"sourceRange": ["10.10.10.10"], "rejectStatusCode": 600}}),
            "ipAllowList.rejectStatusCode: invalid HTTP status code 600",
        ),
        (
            json!({"ipAllowList": {"ipStrategy": {"depth": 1}}}),
            "ipAllowList.sourceRange: at least one address or range is required",
        ),
        (
            json!({"ipWhiteList": {"sourceRange": ["10.0.0.1"], "ipStrategy": {"depth": -1}}}),
            "ipWhiteList.ipStrategy.depth: must be 0 or more, got -1",
        ),
        (
            json!({"ipAllowList": {"sourceRange": ["10.0.0.1"], "ipStrategy": {"ipv6Subnet": 129}}}),
            "ipAllowList.ipStrategy.ipv6Subnet: must be between 1 and 128, got 129",
        ),
        (
            json!({"digestAuth": {"users": ["test"]}}),
            "digestAuth.users[0]: invalid user line \"test\": expected name:realm:HA1",
        ),
        (
            json!({"digestAuth": {"users": ["test:traefik:xyz"]}}),
            "digestAuth.users[0]: user \"test\": HA1 must be 32 hexadecimal digits",
        ),
        (
            json!({"digestAuth": {"users": [DIGEST_TEST], "headerField": "X User"}}),
            "digestAuth.headerField: invalid header name",
        ),
        (
            json!({"circuitBreaker": {"expression": "NetworkErrorRatio() >"}}),
            "circuitBreaker.expression: invalid expression \"NetworkErrorRatio() >\": expected operand, found end of expression",
        ),
        (
            json!({"circuitBreaker": {"expression": "NetworkErrorRatio() > 1"}}),
            "circuitBreaker.expression: invalid expression",
        ),
        (
            json!({"circuitBreaker": {"expression": "Latency() > 1"}}),
            "unsupported function: Latency",
        ),
        (
            json!({"circuitBreaker": {}}),
            "circuitBreaker.expression: invalid expression \"\": the expression is empty",
        ),
        (
            json!({"circuitBreaker": {"expression": "NetworkErrorRatio() > 0.5", "checkPeriod": "-1s"}}),
            "circuitBreaker.checkPeriod: must not be negative",
        ),
        (
            json!({"circuitBreaker": {"expression": "NetworkErrorRatio() > 0.5", "responseCode": 600}}),
            "circuitBreaker.responseCode: invalid HTTP status code 600",
        ),
        (
            json!({"ipAllowList": {"sourceRange": ["10.0.0.1"], "ipStrategy": {"excludedIPs": ["300.1.1.1"]}}}),
            "ipAllowList.ipStrategy.excludedIPs[0]: invalid IP address or CIDR range",
        ),
    ]
}

/// A compressed response whose backend sends half its body and then waits: the client
/// decodes that half before the backend sends the rest.
fn streamed_response_stays_streamed(addr: &str) {
    use std::io::Write;
    let addr = addr.to_string();
    runtime().block_on(async move {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/stream")
            .header("host", "stream.test")
            .header("accept-encoding", "gzip")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        let mut body = resp.into_body();
        let mut dec = flate2::write::GzDecoder::new(Vec::new());
        let deadline = std::time::Duration::from_secs(20);
        // The first half arrives, decodable, while the backend still holds the rest.
        while dec.get_ref().len() < 4000 {
            let frame = tokio::time::timeout(deadline, body.frame())
                .await
                .expect("the first half arrives before the backend sends the rest")
                .expect("body not finished")
                .unwrap();
            if let Ok(d) = frame.into_data() {
                dec.write_all(&d).unwrap();
                dec.flush().unwrap();
            }
        }
        assert_eq!(dec.get_ref()[..], text(4000)[..]);
        stream_gate().notify_one();
        while let Some(frame) = tokio::time::timeout(deadline, body.frame()).await.unwrap() {
            if let Ok(d) = frame.unwrap().into_data() {
                dec.write_all(&d).unwrap();
            }
        }
        let all = dec.finish().unwrap();
        assert_eq!(all.len(), 8000);
        assert_eq!(all[4000..], text(4000)[..]);
    });
}

/// `inFlightReq` (amount 1 per `X-Key`): while a response is in progress, a second request
/// of the same key gets 429 and one of another key passes; once the body is finished, the
/// key passes again.
fn in_flight_requests_are_limited(addr: &str) {
    let key = |k: &str, path: &str| Req::get("inflight.test", path).header("X-Key", k);
    let a = addr.to_string();
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    let held = runtime().spawn(async move {
        let tcp = tokio::net::TcpStream::connect(&a).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/hold")
            .header("host", "inflight.test")
            .header("x-key", "a")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let _ = head_tx.send(resp.status().as_u16());
        resp.into_body().collect().await.unwrap().to_bytes()
    });
    let deadline = std::time::Duration::from_secs(20);
    // The held request is in progress once its response head arrived.
    let status = runtime()
        .block_on(async { tokio::time::timeout(deadline, head_rx).await })
        .expect("the held response head arrives")
        .unwrap();
    assert_eq!(status, 200);
    let r = fetch(addr, &key("a", "/foo")).unwrap();
    assert_eq!(
        (r.status, r.text()),
        (429, "Too Many Requests".to_string()),
        "a second request of key a while the first is in progress: {r}"
    );
    assert_eq!(
        fetch(addr, &key("b", "/foo")).unwrap().status,
        200,
        "another key passes"
    );
    hold_gate().notify_one();
    let body = runtime()
        .block_on(async { tokio::time::timeout(deadline, held).await })
        .expect("the held response finishes")
        .unwrap();
    assert_eq!(&body[..], b"held");
    switchyard_e2e::wait_until(
        deadline,
        "key a passes once its response is finished",
        || {
            let r = fetch(addr, &key("a", "/foo"))?;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("{r}"))
            }
        },
    );
}

/// `retry` (attempts 3) over a service of three servers of which the first two refuse
/// connections: the very first request gets 200 (two refused attempts, then the third
/// server), and so does every later one; the same servers without retry answer the first
/// request 502 (the balancer starts with the same server; a refused server is then ejected
/// for a while, see `services::lb`). Retrying a service whose only server is closed still
/// ends in 502.
fn refused_connections_are_retried(addr: &str) {
    let r = fetch(addr, &Req::get("once.test", "/foo")).unwrap();
    assert_eq!(r.status, 502, "without retry the first server refuses: {r}");
    for i in 0..6 {
        let r = fetch(addr, &Req::get("retry.test", "/foo")).unwrap();
        assert_eq!(r.status, 200, "request {i} through retry: {r}");
    }
    let r = fetch(addr, &Req::get("retry-dead.test", "/foo")).unwrap();
    assert_eq!(r.status, 502, "{r}");
}

/// `circuitBreaker` (`NetworkErrorRatio() > 0.5`) in front of a service whose only server is
/// down: the first response is the proxy's 502, which trips the breaker; from then on the
/// breaker answers Traefik's fallback (503, "Service Unavailable") without trying the
/// server. Once the server is back and `fallbackDuration` has passed, the breaker lets a
/// growing share of requests through (recovering) and then all of them (standby).
fn circuit_breaker_opens_and_recovers(addr: &str, dead: &str) {
    let deadline = std::time::Duration::from_secs(30);
    let get = || fetch(addr, &Req::get("breaker.test", "/foo"));
    let r = get().unwrap();
    assert_eq!(r.status, 502, "the server is down: {r}");
    let r = switchyard_e2e::wait_until(deadline, "the breaker trips", || {
        let r = get()?;
        if r.status == 503 {
            Ok(r)
        } else {
            Err(format!("{r}"))
        }
    });
    assert_eq!(r.text(), "Service Unavailable", "{r}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    // The server comes back: requests pass again, first some, then all.
    start_backend_on(dead);
    switchyard_e2e::wait_until(deadline, "the breaker lets requests through", || {
        let r = get()?;
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!("{r}"))
        }
    });
    switchyard_e2e::wait_until(deadline, "the breaker is back to standby", || {
        for i in 0..20 {
            let r = get()?;
            if r.status != 200 {
                return Err(format!("request {i} of a run of 20: {r}"));
            }
        }
        Ok::<(), String>(())
    });
}

#[test]
fn traefik_middleware_cases_through_a_real_proxy() {
    let backend = start_backend();
    let closed = switchyard_e2e::free_addr();
    let closed2 = switchyard_e2e::free_addr();
    let revived = switchyard_e2e::free_addr();
    let auth = forwardauth::start_auth_server().to_string();
    let mut cases: Vec<(Case, String)> = Vec::new();
    for c in headers_cases()
        .into_iter()
        .chain(ip_cases())
        .chain(basic_auth_cases())
        .chain(compress_cases())
        .chain(rate_limit_cases())
        .chain(circuit_breaker_cases())
        .chain(digest_auth_cases())
        .chain(forwardauth::cases(&auth, &closed))
        .chain(errors_cases::cases())
        .chain(more::cases())
    {
        let host = format!("c{}.test", cases.len());
        cases.push((c, host));
    }
    for (c, host) in host_cases() {
        cases.push((c, host.to_string()));
    }
    // One router per case; the host-dependent ones route on a path prefix instead.
    let mut doc = String::from("http:\n  routers:\n");
    for (i, (c, host)) in cases.iter().enumerate() {
        let rule = if host.starts_with('c') && host.ends_with(".test") {
            format!("Host(`{host}`)")
        } else {
            format!("PathPrefix(`/case{i}/`)")
        };
        let service = if c.name == "security headers on the proxy's own errors" {
            "closed"
        } else {
            "svc"
        };
        let n = c.mw.as_array().map_or(1, Vec::len);
        let names: Vec<String> = (0..n).map(|j| format!("m{i}_{j}")).collect();
        writeln!(
            doc,
            "    r{i}: {{rule: {}, service: {service}, middlewares: {}}}",
            json!(rule),
            json!(names)
        )
        .unwrap();
    }
    doc.push_str(
        "    streamed: {rule: \"Host(`stream.test`)\", service: svc, middlewares: [gz]}\n",
    );
    doc.push_str(
        "    inflight: {rule: \"Host(`inflight.test`)\", service: svc, middlewares: [one]}\n",
    );
    doc.push_str(
        "    retried: {rule: \"Host(`retry.test`)\", service: flaky, middlewares: [three]}\n",
    );
    doc.push_str("    retried-dead: {rule: \"Host(`retry-dead.test`)\", service: closed, middlewares: [three]}\n");
    doc.push_str("    not-retried: {rule: \"Host(`once.test`)\", service: flaky-once}\n");
    doc.push_str(
        "    breaker: {rule: \"Host(`breaker.test`)\", service: revived, middlewares: [cb]}\n",
    );
    doc.push_str("    digest: {rule: \"Host(`digest.test`)\", service: svc, middlewares: [dg]}\n");
    let mut fa_routers = forwardauth::routers(&auth);
    fa_routers.extend(errors_cases::routers());
    for (i, (host, service, _)) in fa_routers.iter().enumerate() {
        writeln!(
            doc,
            "    fa{i}: {{rule: \"Host(`{host}`)\", service: {service}, middlewares: [fa{i}]}}"
        )
        .unwrap();
    }
    doc.push_str("  middlewares:\n    gz: {compress: {}}\n");
    writeln!(doc, "    dg: {{digestAuth: {{users: [{DIGEST_TEST}], usersFile: DIGEST_FILE, headerField: X-WebAuth-User, removeHeader: true}}}}").unwrap();
    doc.push_str("    cb: {circuitBreaker: {expression: \"NetworkErrorRatio() > 0.5\", checkPeriod: 100ms, fallbackDuration: 1s, recoveryDuration: 1s}}\n");
    for (i, (_, _, m)) in fa_routers.iter().enumerate() {
        writeln!(doc, "    fa{i}: {m}").unwrap();
    }
    doc.push_str("    three: {retry: {attempts: 3, initialInterval: 10ms}}\n");
    doc.push_str(
        "    one: {inFlightReq: {amount: 1, sourceCriterion: {requestHeaderName: X-Key}}}\n",
    );
    for (i, (c, _)) in cases.iter().enumerate() {
        let list = match c.mw.as_array() {
            Some(l) => l.clone(),
            None => vec![c.mw.clone()],
        };
        for (j, m) in list.iter().enumerate() {
            writeln!(doc, "    m{i}_{j}: {m}").unwrap();
        }
    }
    writeln!(
        doc,
        "  services:\n    svc: {{loadBalancer: {{servers: [{{url: \"http://{backend}\"}}]}}}}\n    closed: {{loadBalancer: {{servers: [{{url: \"http://{closed}\"}}]}}}}\n    flaky: {{loadBalancer: {{servers: [{{url: \"http://{closed}\"}}, {{url: \"http://{closed2}\"}}, {{url: \"http://{backend}\"}}]}}}}\n    flaky-once: {{loadBalancer: {{servers: [{{url: \"http://{closed}\"}}, {{url: \"http://{closed2}\"}}, {{url: \"http://{backend}\"}}]}}}}\n    revived: {{loadBalancer: {{servers: [{{url: \"http://{revived}\"}}]}}}}"
    )
    .unwrap();
    writeln!(
        doc,
        "    authsvc: {{loadBalancer: {{servers: [{{url: \"http://{auth}\"}}]}}}}"
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let users_file = dir.path().join("htpasswd");
    std::fs::write(
        &users_file,
        "#Comment\ntest:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/\ntest2:$apr1$d9hr9HBB$4HxwgUir3HP4EsggP/QNo0",
    )
    .unwrap();
    let doc = doc.replace("USERS_FILE", &users_file.display().to_string());
    let digest_file = dir.path().join("htdigest");
    std::fs::write(&digest_file, format!("# test2:test2\n{DIGEST_TEST2}\n")).unwrap();
    let doc = doc.replace("DIGEST_FILE", &digest_file.display().to_string());
    let (c, proxy) = single_node_stack(&doc, |s| {
        s.entrypoints(&["web", "trusted"])
            .args(&["--trusted-ips", "trusted=127.0.0.1/32"])
    });

    let mut failures = Vec::new();
    for (i, (case, host)) in cases.iter().enumerate() {
        let path = if host.ends_with(".test") && host.starts_with('c') {
            case.path.clone()
        } else {
            format!("/case{i}{}", case.path)
        };
        let mut req = Req::get(host, &path)
            .method(case.method)
            .body(case.req_body.clone());
        for (k, v) in &case.headers {
            req = req.header(k, v);
        }
        let addr = proxy.entry(if case.trusted { "trusted" } else { "web" });
        for _ in 0..case.prime.0 {
            let mut p = Req::get(host, &path).method(case.method);
            for (k, v) in &case.prime.1 {
                p = p.header(k, v);
            }
            let _ = fetch(addr, &p);
        }
        match fetch(addr, &req) {
            Ok(r) => {
                let problems = case.check(&r);
                if !problems.is_empty() {
                    failures.push(format!("{}: {}\n    {r}", case.name, problems.join("; ")));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} middleware cases passed", cases.len());

    streamed_response_stays_streamed(proxy.web());
    in_flight_requests_are_limited(proxy.web());
    refused_connections_are_retried(proxy.web());
    circuit_breaker_opens_and_recovers(proxy.web(), &revived);
    digest_auth_with_real_clients(proxy.web());
    forwardauth::bodies_and_cookies(proxy.web());
    errors_cases::direct(proxy.web());

    // Bad options: refused at the API naming middleware and field; nothing changes.
    let endpoints = c.endpoints();
    let before = config_version(&endpoints);

    // Every middleware round-trips: `get config -o yaml | apply -f -` is a no-op.
    let yaml = cli(&endpoints, &["-o", "yaml", "get", "config"]).expect_success();
    let back = cli_stdin(
        &endpoints,
        &["-o", "json", "apply", "-f", "-"],
        &yaml.stdout,
    )
    .expect_success()
    .json();
    assert_eq!(back["version"].as_u64(), Some(before), "{back}");
    assert_eq!(back["changes"], json!([]), "{back}");
    for (mw, want) in refusals()
        .into_iter()
        .chain(forwardauth::refusals())
        .chain(errors_cases::refusals())
        .chain(more::refusals())
    {
        let bad = format!("http:\n  middlewares:\n    bad: {mw}\n");
        match apply_yaml(&endpoints, &bad) {
            Ok(v) => panic!("{mw} was accepted (version {v})"),
            Err(e) => assert!(
                e.contains("middleware \"bad\"") && e.contains(want),
                "{mw}: expected an error naming middleware \"bad\" and {want:?}, got: {e}"
            ),
        }
    }
    assert_eq!(
        config_version(&endpoints),
        before,
        "refusals changed nothing"
    );
}
