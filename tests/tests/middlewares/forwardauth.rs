//! `forwardAuth` cases, ported from Traefik's `pkg/middlewares/auth/forward_test.go`, against a
//! real authentication server started here. The server is scripted by path:
//!
//! * `/ok`: 200 with `X-Auth-User`, `X-Auth-Secret`, two `X-Auth-Group`, `Foo-Bar` and two
//!   cookies (`authCookie`, `authCookieNotAdded`), body `Success`;
//! * `/deny`: 403 with `Proxy-Authenticate: test`, `X-Foo: bar`, a cookie, body `Forbidden`;
//! * `/redirect`: 302 to `http://example.com/redirect-test` with hop-by-hop headers;
//! * `/relative`: 302 to `/login?next=1`;
//! * `/unauthorized`: 401; `/big`: 200 with a 100-byte body;
//! * `/echo`: 200 with `X-Seen-<name>` for every request header it got, `X-Seen-Method`,
//!   `X-Seen-Path` and `X-Seen-Body`, so a case reads what the server received from what the
//!   backend received (`authResponseHeadersRegex: ^X-Seen-`).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use switchyard_e2e::backends::runtime;
use switchyard_e2e::client::{fetch, Req};

use super::{case, Case};

async fn auth(req: Request<Incoming>) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let body = body.unwrap_or_default();
    let mut resp = Response::new(BodyExt::boxed(Full::new(Bytes::new())));
    let h = resp.headers_mut();
    let set = |h: &mut http::HeaderMap, k: &str, v: &str| {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    };
    let text = |s: &str| BodyExt::boxed(Full::new(Bytes::from(s.to_string())));
    match path.as_str() {
        "/ok" => {
            set(h, "X-Auth-User", "user@example.com");
            set(h, "X-Auth-Secret", "secret");
            set(h, "X-Auth-Group", "group1");
            set(h, "X-Auth-Group", "group2");
            set(h, "Foo-Bar", "auth-value");
            set(h, "Set-Cookie", "authCookie=Auth");
            set(h, "Set-Cookie", "authCookieNotAdded=Auth");
            *resp.body_mut() = text("Success\n");
        }
        "/deny" => {
            set(h, "Proxy-Authenticate", "test");
            set(h, "Set-Cookie", "example=testing; Path=/");
            set(h, "X-Foo", "bar");
            set(h, "Content-Type", "text/plain; charset=utf-8");
            set(h, "X-Content-Type-Options", "nosniff");
            *resp.status_mut() = StatusCode::FORBIDDEN;
            *resp.body_mut() = text("Forbidden\n");
        }
        "/redirect" => {
            set(h, "Location", "http://example.com/redirect-test");
            set(h, "Keep-Alive", "test");
            set(h, "Trailer", "test");
            *resp.status_mut() = StatusCode::FOUND;
            *resp.body_mut() = text("<a href=\"http://example.com/redirect-test\">Found</a>.\n");
        }
        "/relative" => {
            set(h, "Location", "/login?next=1");
            *resp.status_mut() = StatusCode::FOUND;
        }
        "/unauthorized" => *resp.status_mut() = StatusCode::UNAUTHORIZED,
        "/big" => *resp.body_mut() = text(&"x".repeat(100)),
        _ => {
            for (k, v) in &headers {
                let name = format!("X-Seen-{k}");
                if let Ok(v) = v.to_str() {
                    set(h, &name, v);
                }
            }
            set(h, "X-Seen-Method", &method);
            set(h, "X-Seen-Path", &path);
            set(h, "X-Seen-Body", &String::from_utf8_lossy(&body));
        }
    }
    Ok(resp)
}

/// Starts the authentication server; returns its address.
pub(super) fn start_auth_server() -> SocketAddr {
    let rt = runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    switchyard_e2e::reserve_port(addr.port());
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(auth))
                    .await;
            });
        }
    });
    addr
}

fn fa(auth: &str, path: &str, extra: Value) -> Value {
    let mut o = json!({"address": format!("http://{auth}{path}")});
    if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            o.insert(k.clone(), v.clone());
        }
    }
    json!({ "forwardAuth": o })
}

/// `/echo` with the seen headers passed on to the backend.
fn echo(auth: &str, extra: Value) -> Value {
    let mut e = json!({"authResponseHeadersRegex": "^X-Seen-"});
    if let (Some(o), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            o.insert(k.clone(), v.clone());
        }
    }
    fa(auth, "/echo", e)
}

/// The table-driven cases (one router each).
pub(super) fn cases(auth: &str, closed: &str) -> Vec<Case> {
    vec![
        // TestForwardAuthFail + TestForwardAuthFailResponseHeaders
        case(
            "forwardAuth: a 403 answer goes back as is",
            fa(auth, "/deny", json!({})),
        )
        .status(403)
        .has("proxy-authenticate", "test")
        .has("x-foo", "bar")
        .has("set-cookie", "example=testing; Path=/")
        .has("content-type", "text/plain; charset=utf-8")
        .has("content-length", "10")
        .body("Forbidden\n"),
        // TestForwardAuthSuccess
        case(
            "forwardAuth: success copies authResponseHeaders and the regexp's",
            fa(
                auth,
                "/ok",
                json!({"authResponseHeaders": ["X-Auth-User", "X-Auth-Group"],
                       "authResponseHeadersRegex": "^Foo-",
                       "addAuthCookiesToResponse": ["authCookie"]}),
            ),
        )
        .header("X-Auth-Group", "admin_group")
        .header("Foo-Bar", "client-value")
        .header("Foo-Baz", "client-value")
        .sent("X-Auth-User", "user@example.com")
        .not_sent("X-Auth-Secret")
        .sent("X-Auth-Group", "group1, group2")
        .sent("Foo-Bar", "auth-value")
        .not_sent("Foo-Baz"),
        case(
            "forwardAuth: headers not listed stay the client's",
            fa(auth, "/ok", json!({"authResponseHeaders": ["X-Auth-User"]})),
        )
        .header("X-Auth-Group", "admin_group")
        .header("X-Auth-User", "forged")
        .sent("X-Auth-User", "user@example.com")
        .sent("X-Auth-Group", "admin_group")
        .not_sent("X-Auth-Secret"),
        // TestForwardAuthRedirect + TestForwardAuthRemoveHopByHopHeaders
        case(
            "forwardAuth: a redirect goes back",
            fa(auth, "/redirect", json!({})),
        )
        .status(302)
        .has("location", "http://example.com/redirect-test")
        .lacks("keep-alive")
        .lacks("trailer"),
        case(
            "forwardAuth: a relative Location is resolved against the address",
            fa(auth, "/relative", json!({})),
        )
        .status(302)
        .has("location", &format!("http://{auth}/login?next=1")),
        // TestForwardAuthPreserveLocationHeader
        case(
            "forwardAuth: preserveLocationHeader passes it as is",
            fa(auth, "/relative", json!({"preserveLocationHeader": true})),
        )
        .status(302)
        .has("location", "/login?next=1"),
        // TestForwardAuthForwardError
        case(
            "forwardAuth: an unreachable server is a 500",
            json!({"forwardAuth": {"address": format!("http://{closed}/auth")}}),
        )
        .status(500),
        // TestForwardAuthAuthSigninURL
        case(
            "forwardAuth: a 401 redirects to authSigninURL",
            fa(
                auth,
                "/unauthorized",
                json!({"authSigninURL": "https://login.example.com/signin"}),
            ),
        )
        .status(302)
        .has("location", "https://login.example.com/signin"),
        case(
            "forwardAuth: a 401 without authSigninURL",
            fa(auth, "/unauthorized", json!({})),
        )
        .status(401),
        case(
            "forwardAuth: authSigninURL only on 401",
            fa(
                auth,
                "/deny",
                json!({"authSigninURL": "https://login.example.com/signin"}),
            ),
        )
        .status(403)
        .lacks("location"),
        case(
            "forwardAuth: authSigninURL not on success",
            fa(
                auth,
                "/ok",
                json!({"authSigninURL": "https://login.example.com/signin"}),
            ),
        )
        .status(200),
        // TestForwardAuthMaxResponseBodySize
        case(
            "forwardAuth: an answer over maxResponseBodySize is a 401",
            fa(auth, "/big", json!({"maxResponseBodySize": 10})),
        )
        .status(401),
        case(
            "forwardAuth: an answer within maxResponseBodySize",
            fa(auth, "/big", json!({"maxResponseBodySize": 100})),
        )
        .status(200),
        case(
            "forwardAuth: a failure body over maxResponseBodySize is a 401",
            fa(auth, "/deny", json!({"maxResponseBodySize": 5})),
        )
        .status(401),
        // TestForwardAuth_oldWriteHeader (trustForwardHeader unset; on the trusted entry point,
        // so the client's X-Forwarded-Prefix gets this far)
        case(
            "forwardAuth: legacy X-Forwarded headers",
            echo(auth, json!({})),
        )
        .trusted()
        .path("/foo?q=1")
        .header("X-Forwarded-Prefix", "/kept")
        .header("X-Forwarded-Uri", "/forged")
        .sent("X-Seen-X-Forwarded-Method", "GET")
        .sent("X-Seen-X-Forwarded-Proto", "http")
        .sent("X-Seen-X-Forwarded-Uri", "/foo?q=1")
        .sent("X-Seen-X-Forwarded-For", "127.0.0.1")
        .sent("X-Seen-X-Forwarded-Prefix", "/kept")
        .sent("X-Seen-Method", "GET")
        .sent("X-Seen-Path", "/echo"),
        // TestForwardAuth_writeHeader: not trusted
        case(
            "forwardAuth: trustForwardHeader false drops the client's X-Forwarded",
            echo(auth, json!({"trustForwardHeader": false})),
        )
        .header("X-Forwarded-Prefix", "/dropped")
        .header("X-Forwarded-Uri", "/forged")
        .header("X_Forwarded_Proto", "https")
        .sent("X-Seen-X-Forwarded-Uri", "/foo")
        .sent("X-Seen-X-Forwarded-Port", "80")
        .sent("X-Seen-X-Forwarded-Proto", "http")
        .sent("X-Seen-X-Forwarded-For", "127.0.0.1")
        .not_sent("X-Seen-X-Forwarded-Prefix")
        .not_sent("X-Seen-X_forwarded_proto"),
        // trusted: the client's X-Forwarded-* are kept (the entry point trusts the client)
        case(
            "forwardAuth: trustForwardHeader true keeps them",
            echo(auth, json!({"trustForwardHeader": true})),
        )
        .trusted()
        .header("X-Forwarded-Uri", "/forwarded")
        .header("X-Forwarded-Method", "PUT")
        .header("X-Forwarded-For", "10.0.0.1")
        .sent("X-Seen-X-Forwarded-Uri", "/forwarded")
        .sent("X-Seen-X-Forwarded-Method", "PUT")
        .sent("X-Seen-X-Forwarded-For", "10.0.0.1, 127.0.0.1"),
        // filter forward request headers
        case(
            "forwardAuth: authRequestHeaders filters what the server gets",
            echo(
                auth,
                json!({"authRequestHeaders": ["X-Keep", "User-Agent"]}),
            ),
        )
        .header("X-Keep", "1")
        .header("X-Drop", "2")
        .sent("X-Seen-X-Keep", "1")
        .not_sent("X-Seen-X-Drop")
        .sent("X-Seen-X-Forwarded-Method", "GET"),
        case(
            "forwardAuth: authRequestHeaders with trustForwardHeader keeps X-Forwarded",
            echo(
                auth,
                json!({"authRequestHeaders": ["X-Keep"], "trustForwardHeader": true}),
            ),
        )
        .trusted()
        .header("X-Keep", "1")
        .header("X-Drop", "2")
        .header("X-Forwarded-Uri", "/forwarded")
        .sent("X-Seen-X-Keep", "1")
        .not_sent("X-Seen-X-Drop")
        .sent("X-Seen-X-Forwarded-Uri", "/forwarded"),
        // hop-by-hop headers never reach the server
        case(
            "forwardAuth: hop-by-hop headers are removed",
            echo(auth, json!({})),
        )
        .header("Keep-Alive", "300")
        .header("Te", "trailers")
        .not_sent("X-Seen-Keep-Alive")
        .not_sent("X-Seen-Te"),
        // TestForwardAuthPreserveRequestMethod
        case(
            "forwardAuth: the server is asked with GET",
            echo(auth, json!({})),
        )
        .method("DELETE")
        .sent("X-Seen-Method", "GET")
        .sent("X-Seen-X-Forwarded-Method", "DELETE"),
        case(
            "forwardAuth: preserveRequestMethod",
            echo(auth, json!({"preserveRequestMethod": true})),
        )
        .method("DELETE")
        .sent("X-Seen-Method", "DELETE"),
        // TestForwardAuthNotForwardBody (no body sent without forwardBody)
        case(
            "forwardAuth: no body without forwardBody",
            echo(auth, json!({})),
        )
        .sent("X-Seen-Body", ""),
    ]
}

/// Routers (host, service, middleware) for [`bodies_and_cookies`]; service `authsvc` is the
/// authentication server itself, whose `/foo` answer shows what it received as a backend
/// (`X-Seen-Body`) and, through the copied headers, as the authentication server
/// (`X-Seen-X-Seen-Body`).
pub(super) fn routers(auth: &str) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "fa-body.test",
            "authsvc",
            echo(auth, json!({"forwardBody": true, "maxBodySize": 15})),
        ),
        (
            "fa-body-small.test",
            "authsvc",
            echo(auth, json!({"forwardBody": true, "maxBodySize": 14})),
        ),
        (
            "fa-body-unlimited.test",
            "authsvc",
            echo(auth, json!({"forwardBody": true})),
        ),
        ("fa-no-body.test", "authsvc", echo(auth, json!({}))),
        (
            "fa-cookies.test",
            "svc",
            fa(
                auth,
                "/ok",
                json!({"addAuthCookiesToResponse": ["authCookie"]}),
            ),
        ),
    ]
}

/// TestForwardAuthForwardBody, …SizeLimit, …EmptyBody, …NotForwardBody and the cookies of
/// TestForwardAuthSuccess.
pub(super) fn bodies_and_cookies(addr: &str) {
    let data = "forwardBodyTest";
    let post = |host: &str, body: &str| {
        fetch(
            addr,
            &Req::get(host, "/foo").method("POST").body(body.to_string()),
        )
        .unwrap()
    };
    // The body reaches the authentication server and, whole, the backend.
    let r = post("fa-body.test", data);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.header("x-seen-x-seen-body").as_deref(), Some(data), "{r}");
    assert_eq!(
        r.header("x-seen-x-seen-content-length").as_deref(),
        Some("15"),
        "{r}"
    );
    assert_eq!(r.header("x-seen-body").as_deref(), Some(data), "{r}");
    // One byte over maxBodySize: 401, nothing reaches the backend.
    let r = post("fa-body-small.test", data);
    assert_eq!(r.status, 401, "{r}");
    assert!(r.body.is_empty(), "{r}");
    assert!(r.header("x-seen-body").is_none(), "{r}");
    // No limit.
    let big = "b".repeat(20_000);
    let r = post("fa-body-unlimited.test", &big);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.header("x-seen-x-seen-body").map(|b| b.len()),
        Some(big.len())
    );
    assert_eq!(r.header("x-seen-body").map(|b| b.len()), Some(big.len()));
    // An empty body.
    let r = fetch(addr, &Req::get("fa-body-unlimited.test", "/foo")).unwrap();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.header("x-seen-x-seen-body").as_deref(), Some(""), "{r}");
    // Without forwardBody the server gets no body; the backend gets it all the same.
    let r = post("fa-no-body.test", data);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.header("x-seen-x-seen-body").as_deref(), Some(""), "{r}");
    assert_eq!(r.header("x-seen-body").as_deref(), Some(data), "{r}");
    // addAuthCookiesToResponse: the server's authCookie replaces the backend's.
    let r = fetch(
        addr,
        &Req::get(
            "fa-cookies.test",
            "/foo?h=Set-Cookie:authCookie%3DBackend&h=Set-Cookie:backendCookie%3DBackend&h=Other-Header:BackendHeaderValue",
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.header_all("set-cookie"),
        ["backendCookie=Backend", "authCookie=Auth"],
        "{r}"
    );
    assert_eq!(
        r.header("other-header").as_deref(),
        Some("BackendHeaderValue")
    );
}

/// Bad options: (middleware, expected error text).
pub(super) fn refusals() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"forwardAuth": {"address": "not a url"}}),
            "forwardAuth.address: \"not a url\" is not a URL",
        ),
        (
            json!({"forwardAuth": {}}),
            "forwardAuth.address: is required",
        ),
        (
            json!({"forwardAuth": {"address": "ftp://auth.example"}}),
            "forwardAuth.address: \"ftp://auth.example\" must be an http or https URL",
        ),
        (
            json!({"forwardAuth": {"address": "http://a", "authResponseHeadersRegex": "(x"}}),
            "forwardAuth.authResponseHeadersRegex: invalid regexp",
        ),
        (
            json!({"forwardAuth": {"address": "http://a", "authRequestHeaders": ["bad header"]}}),
            "forwardAuth.authRequestHeaders[0]: invalid header name",
        ),
        (
            json!({"forwardAuth": {"address": "http://a", "maxBodySize": -5}}),
            "forwardAuth.maxBodySize: must be -1 (no limit) or more, got -5",
        ),
        (
            json!({"forwardAuth": {"address": "http://a", "tls": {"cert": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"}}}),
            "forwardAuth.tls: cert and key must be given together",
        ),
        (
            json!({"forwardAuth": {"address": "http://a", "unknownOption": true}}),
            "unknownOption",
        ),
    ]
}
