#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::redirect::split_host_port;
use super::rewrite::{decode_path, path_unescape_fails, strip_decoded_prefix};
use super::*;
use http::header::{HOST, LOCATION};
use switchyard_config::parse_document;

fn mws(yaml: &str) -> HashMap<String, Arc<Mw>> {
    let cfg = parse_document(yaml).unwrap();
    switchyard_config::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
    compile_all(&cfg.http.middlewares).unwrap()
}

fn route(all: &HashMap<String, Arc<Mw>>, names: &[&str]) -> Box<[Arc<Mw>]> {
    let refs: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    flatten(&refs, all).unwrap()
}

struct Out {
    parts: Parts,
    host: HeaderValue,
    suppress_xff: bool,
    resp: Option<(Response<ProxyBody>, usize)>,
}

fn run(
    list: &[Arc<Mw>],
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> Result<Out, ErrorKind> {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let (mut parts, ()) = b.body(()).unwrap().into_parts();
    let host = parts
        .headers
        .get(HOST)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(""));
    let mut req = MwRequest {
        parts: &mut parts,
        host,
        suppress_xff: false,
        client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        tls: false,
        ctx: ResponseCtx::default(),
        body: crate::body::UpBody::empty(),
        client_certs: &[],
        trace: None,
    };
    let flow = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(apply_request(list, &mut req))?;
    let (host, suppress_xff) = (req.host.clone(), req.suppress_xff);
    Ok(Out {
        parts,
        host,
        suppress_xff,
        resp: match flow {
            Flow::Continue => None,
            Flow::Respond(r, i) => Some((*r, i)),
        },
    })
}

fn hdr(p: &Parts, k: &str) -> Vec<String> {
    p.headers
        .get_all(k)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

const ALL: &str = r#"
http:
  middlewares:
    add: {addPrefix: {prefix: /api}}
    strip: {stripPrefix: {prefixes: [/foo, /bar/]}}
    stripslash: {stripPrefix: {prefixes: [/foo], forceSlash: true}}
    stripre: {stripPrefixRegex: {regex: ["/v[0-9]+"]}}
    replace: {replacePath: {path: /new}}
    replacere: {replacePathRegex: {regex: "^/old/(.*)", replacement: "/new/$1"}}
    badre: {replacePathRegex: {regex: "^/x", replacement: "/%zz"}}
    hdrs:
      headers:
        customRequestHeaders: {X-Added: yes, X-Removed: "", Host: backend.local}
        customResponseHeaders: {X-Resp: outer, Server: ""}
    inner:
      headers:
        customResponseHeaders: {X-Resp: inner, X-Inner: "1"}
    noxff: {headers: {customRequestHeaders: {X-Forwarded-For: ""}}}
    https: {redirectScheme: {scheme: https, permanent: true}}
    https8443: {redirectScheme: {scheme: https, port: "8443"}}
    https443: {redirectScheme: {scheme: https, port: 443}}
    rr: {redirectRegex: {regex: "^http://old\\.com/(.*)", replacement: "http://new.com/${1}"}}
    same: {redirectRegex: {regex: "^(.*)$", replacement: "$1"}}
    ch: {chain: {middlewares: [strip, ch2]}}
    ch2: {chain: {middlewares: [add]}}
"#;

#[test]
fn add_prefix() {
    let all = mws(ALL);
    let o = run(&route(&all, &["add"]), "GET", "/users?x=1", &[]).unwrap();
    assert_eq!(o.parts.uri, "/api/users?x=1");
}

#[test]
fn strip_prefix() {
    let all = mws(ALL);
    let r = route(&all, &["strip"]);
    let o = run(&r, "GET", "/foo/bar?q", &[]).unwrap();
    assert_eq!(o.parts.uri, "/bar?q");
    assert_eq!(hdr(&o.parts, "x-forwarded-prefix"), ["/foo"]);
    // No segment boundary: /foobar -> /bar.
    let o = run(&r, "GET", "/foobar", &[]).unwrap();
    assert_eq!(o.parts.uri, "/bar");
    // Exact prefix -> "/".
    let o = run(&r, "GET", "/foo", &[]).unwrap();
    assert_eq!(o.parts.uri, "/");
    // Matched on the decoded path, stripped from the escaped one.
    let o = run(&r, "GET", "/f%6Fo/a%20b", &[]).unwrap();
    assert_eq!(o.parts.uri, "/a%20b");
    // Second prefix, with its trailing slash.
    let o = run(&r, "GET", "/bar/x", &[]).unwrap();
    assert_eq!(o.parts.uri, "/x");
    assert_eq!(hdr(&o.parts, "x-forwarded-prefix"), ["/bar/"]);
    // No match: untouched, no header.
    let o = run(&r, "GET", "/baz", &[]).unwrap();
    assert_eq!(o.parts.uri, "/baz");
    assert!(hdr(&o.parts, "x-forwarded-prefix").is_empty());
    // forceSlash trims one extra slash; a result with an empty segment is refused
    // (Traefik's sanitised-path check).
    let o = run(&route(&all, &["stripslash"]), "GET", "/foox", &[]).unwrap();
    assert_eq!(o.parts.uri, "/x");
    assert_eq!(
        run(&route(&all, &["stripslash"]), "GET", "/foo//x", &[]).err(),
        Some(ErrorKind::BadRequest)
    );
    let o = run(&route(&all, &["stripslash"]), "GET", "/foo", &[]).unwrap();
    assert_eq!(o.parts.uri, "/");
    assert_eq!(
        run(&r, "GET", "/foo//x", &[]).err(),
        Some(ErrorKind::BadRequest)
    );
}

/// No rewriting middleware produces a path with dot segments: Traefik's strip_prefix_test
/// ("/api./foo", "/api../foo" → 400), strip_prefix_regex_test, replace_path_regex_test
/// ("/foo../bar" with `^/foo(.*)` → `/$1` → 400), and the same for addPrefix/replacePath.
#[test]
fn rewrites_never_produce_dot_segments() {
    let all = mws(r#"
http:
  middlewares:
    api: {stripPrefix: {prefixes: ["/api"]}}
    apiforce: {stripPrefix: {prefixes: ["/api"], forceSlash: true}}
    apire: {stripPrefixRegex: {regex: ["/api"]}}
    rre: {replacePathRegex: {regex: "^/foo(.*)", replacement: "/$1"}}
    renc: {replacePathRegex: {regex: "^/enc/(.*)", replacement: "/%2e%2e/$1"}}
    addp: {addPrefix: {prefix: "/p"}}
    adddot: {addPrefix: {prefix: "/p/."}}
    repdot: {replacePath: {path: "/a/../etc/passwd"}}
"#);
    let bad = [
        ("api", "/api../etc/passwd"),
        ("api", "/api./foo"),
        ("api", "/api../foo"),
        ("apiforce", "/api../foo"),
        ("apire", "/api./foo"),
        ("apire", "/api../foo"),
        ("rre", "/foo../bar"),
        ("rre", "/foo/../bar"),
        ("rre", "/foo/bar"),
        ("renc", "/enc/etc/passwd"),
        ("addp", "/../x"),
        ("addp", "/%2e%2e/x"),
        ("adddot", "/x"),
        ("repdot", "/anything"),
    ];
    for (mw, path) in bad {
        assert_eq!(
            run(&route(&all, &[mw]), "GET", path, &[]).err(),
            Some(ErrorKind::BadRequest),
            "{mw} on {path}"
        );
    }
    let good = [
        ("api", "/api/x", "/x"),
        ("api", "/api..x", "/..x"),
        ("apire", "/api/x/..y", "/x/..y"),
        ("rre", "/foobar", "/bar"),
        ("addp", "/x", "/p/x"),
        ("addp", "//x", "/p//x"),
    ];
    for (mw, path, want) in good {
        match run(&route(&all, &[mw]), "GET", path, &[]) {
            Ok(o) => assert_eq!(o.parts.uri, want, "{mw} on {path}"),
            Err(e) => panic!("{mw} on {path}: {e:?}"),
        }
    }
}

#[test]
fn strip_prefix_regex() {
    let all = mws(ALL);
    let r = route(&all, &["stripre"]);
    let o = run(&r, "GET", "/v12/users", &[]).unwrap();
    assert_eq!(o.parts.uri, "/users");
    assert_eq!(hdr(&o.parts, "x-forwarded-prefix"), ["/v12"]);
    // The match must be a prefix.
    let o = run(&r, "GET", "/a/v1/users", &[]).unwrap();
    assert_eq!(o.parts.uri, "/a/v1/users");
}

#[test]
fn replace_path() {
    let all = mws(ALL);
    let o = run(&route(&all, &["replace"]), "GET", "/a%20b?k=v", &[]).unwrap();
    assert_eq!(o.parts.uri, "/new?k=v");
    assert_eq!(hdr(&o.parts, "x-replaced-path"), ["/a%20b"]);
    let o = run(&route(&all, &["replacere"]), "GET", "/old/x/y", &[]).unwrap();
    assert_eq!(o.parts.uri, "/new/x/y");
    assert_eq!(hdr(&o.parts, "x-replaced-path"), ["/old/x/y"]);
    let o = run(&route(&all, &["replacere"]), "GET", "/other", &[]).unwrap();
    assert_eq!(o.parts.uri, "/other");
    assert!(hdr(&o.parts, "x-replaced-path").is_empty());
    assert_eq!(
        run(&route(&all, &["badre"]), "GET", "/x", &[]).err(),
        Some(ErrorKind::BadRequest)
    );
}

#[test]
fn headers() {
    let all = mws(ALL);
    let r = route(&all, &["hdrs", "inner"]);
    let o = run(
        &r,
        "GET",
        "/",
        &[("host", "a.com"), ("x-removed", "1"), ("x-added", "old")],
    )
    .unwrap();
    assert_eq!(hdr(&o.parts, "x-added"), ["yes"]);
    assert!(hdr(&o.parts, "x-removed").is_empty());
    assert_eq!(o.host, "backend.local");
    assert!(!o.suppress_xff);
    let mut resp = Response::new(ProxyBody::full(bytes::Bytes::new()));
    resp.headers_mut()
        .insert("server", HeaderValue::from_static("nginx"));
    apply_response(&r, r.len(), &ResponseCtx::default(), &mut resp);
    let h = resp.headers();
    // Outer (first) middleware wins.
    assert_eq!(h["x-resp"], "outer");
    assert_eq!(h["x-inner"], "1");
    assert!(h.get("server").is_none());
    assert!(has_response_phase(&r));
    let o = run(&route(&all, &["noxff"]), "GET", "/", &[]).unwrap();
    assert!(o.suppress_xff);
}

#[test]
fn redirect_scheme() {
    let all = mws(ALL);
    let o = run(
        &route(&all, &["https"]),
        "GET",
        "/p?q=1",
        &[("host", "a.com:8080"), ("x-forwarded-proto", "http")],
    )
    .unwrap();
    let (resp, i) = o.resp.unwrap();
    assert_eq!(i, 0);
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()[LOCATION], "https://a.com/p?q=1");
    // POST -> 308.
    let o = run(
        &route(&all, &["https"]),
        "POST",
        "/",
        &[("host", "a.com"), ("x-forwarded-proto", "http")],
    )
    .unwrap();
    assert_eq!(o.resp.unwrap().0.status(), 308);
    // Not permanent, explicit port.
    let o = run(
        &route(&all, &["https8443"]),
        "GET",
        "/x",
        &[("host", "a.com"), ("x-forwarded-proto", "http")],
    )
    .unwrap();
    let (resp, _) = o.resp.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()[LOCATION], "https://a.com:8443/x");
    let o = run(
        &route(&all, &["https8443"]),
        "PUT",
        "/x",
        &[("host", "a.com"), ("x-forwarded-proto", "http")],
    )
    .unwrap();
    assert_eq!(o.resp.unwrap().0.status(), 307);
    // Default port is dropped.
    let o = run(
        &route(&all, &["https443"]),
        "GET",
        "/",
        &[("host", "a.com"), ("x-forwarded-proto", "http")],
    )
    .unwrap();
    assert_eq!(o.resp.unwrap().0.headers()[LOCATION], "https://a.com/");
    // Already https (trusted X-Forwarded-Proto): passes through.
    let o = run(
        &route(&all, &["https"]),
        "GET",
        "/",
        &[("host", "a.com"), ("x-forwarded-proto", "https")],
    )
    .unwrap();
    assert!(o.resp.is_none());
}

#[test]
fn redirect_regex() {
    let all = mws(ALL);
    let o = run(
        &route(&all, &["rr"]),
        "GET",
        "/a/b?c",
        &[("host", "old.com")],
    )
    .unwrap();
    let (resp, _) = o.resp.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()[LOCATION], "http://new.com/a/b?c");
    let o = run(&route(&all, &["rr"]), "GET", "/a", &[("host", "other.com")]).unwrap();
    assert!(o.resp.is_none());
    let o = run(&route(&all, &["same"]), "GET", "/a", &[("host", "x.com")]).unwrap();
    assert!(o.resp.is_none());
    assert_eq!(o.parts.uri, "/a");
}

#[test]
fn chains_flatten_in_order() {
    let all = mws(ALL);
    let r = route(&all, &["ch"]);
    assert_eq!(r.len(), 2);
    let o = run(&r, "GET", "/foo/x", &[]).unwrap();
    assert_eq!(o.parts.uri, "/api/x");
    // Response phase stops at the redirect.
    let r = route(&all, &["hdrs", "https", "inner"]);
    let o = run(
        &r,
        "GET",
        "/",
        &[("host", "a.com"), ("x-forwarded-proto", "http")],
    )
    .unwrap();
    let (mut resp, i) = o.resp.unwrap();
    apply_response(&r, i, &ResponseCtx::default(), &mut resp);
    assert_eq!(resp.headers()["x-resp"], "outer");
    assert!(resp.headers().get("x-inner").is_none());
}

#[test]
fn helpers() {
    assert_eq!(strip_decoded_prefix("/a%2Fb/c", "/a/b"), Some(6));
    assert_eq!(strip_decoded_prefix("/ab", "/abc"), None);
    assert_eq!(decode_path("/a%20b%zz"), "/a b%zz");
    assert_eq!(escape_path("/a b?#é"), "/a%20b%3F%23%C3%A9");
    assert!(path_unescape_fails("/a%2"));
    assert!(!path_unescape_fails("/a%20"));
    assert_eq!(split_host_port("a.com:80"), ("a.com".into(), ":80".into()));
    assert_eq!(split_host_port("[::1]:80"), ("::1".into(), ":80".into()));
    assert_eq!(split_host_port("a.com"), ("a.com".into(), "".into()));
}
