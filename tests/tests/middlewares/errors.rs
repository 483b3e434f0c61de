//! `errors` cases, ported from Traefik's `pkg/middlewares/customerrors/custom_errors_test.go`.
//! The error page service is the scripted backend: a page query such as
//! `/{status}?h=X-Page:{status}-{originalStatus}&len=15&ct=text/plain` makes the page show what
//! the middleware asked for.

use serde_json::{json, Value};
use switchyard_e2e::client::{fetch, Req};

use super::{case, text, Case, APR1_TEST};

fn errors(status: &[&str], query: &str, extra: Value) -> Value {
    let mut o = json!({"status": status, "service": "svc", "query": query});
    if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            o.insert(k.clone(), v.clone());
        }
    }
    json!({ "errors": o })
}

const PAGE: &str = "/{status}?h=X-Page:{status}-{originalStatus}&len=15&ct=text/plain";

fn page_text() -> String {
    String::from_utf8(text(15)).unwrap()
}

/// The table-driven cases (one router each).
pub(super) fn cases() -> Vec<Case> {
    let ranges = ["500-501", "503-599"];
    vec![
        case("errors: no error", errors(&ranges, PAGE, json!({})))
            .sent("X-Forwarded-Proto", "http")
            .lacks("x-page"),
        case(
            "errors: no error, but not a 200",
            errors(&ranges, PAGE, json!({})),
        )
        .path("/foo?status=206")
        .status(206)
        .lacks("x-page"),
        case("errors: a 304", errors(&ranges, PAGE, json!({})))
            .path("/foo?status=304")
            .status(304)
            .lacks("x-page")
            .body(""),
        case("errors: in the range", errors(&ranges, PAGE, json!({})))
            .path("/foo?status=500")
            .status(500)
            .has("x-page", "500-500")
            .has("content-type", "text/plain")
            .body(&page_text()),
        case("errors: not in the range", errors(&ranges, PAGE, json!({})))
            .path("/foo?status=502")
            .status(502)
            .has("content-type", "application/json")
            .lacks("x-page"),
        case(
            "errors: range with one code",
            errors(&["503-503"], PAGE, json!({})),
        )
        .path("/foo?status=503")
        .status(503)
        .has("x-page", "503-503"),
        case("errors: a single code", errors(&["503"], PAGE, json!({})))
            .path("/foo?status=503")
            .status(503)
            .has("x-page", "503-503"),
        case(
            "errors: a comma-separated list",
            errors(&["404,418"], PAGE, json!({})),
        )
        .path("/foo?status=418")
        .status(418)
        .has("x-page", "418-418"),
        case(
            "errors: statusRewrites",
            errors(
                &["500-599"],
                PAGE,
                json!({"statusRewrites": {"500-502": 404, "503": 418}}),
            ),
        )
        .path("/foo?status=502")
        .status(404)
        .has("x-page", "404-502"),
        case(
            "errors: statusRewrites, single code",
            errors(
                &["500-599"],
                PAGE,
                json!({"statusRewrites": {"500-502": 404, "503": 418}}),
            ),
        )
        .path("/foo?status=503")
        .status(418)
        .has("x-page", "418-503"),
        case(
            "errors: a status not rewritten",
            errors(
                &["500-599"],
                PAGE,
                json!({"statusRewrites": {"500-502": 404}}),
            ),
        )
        .path("/foo?status=504")
        .status(504)
        .has("x-page", "504-504"),
        case(
            "errors: empty query asks for /",
            errors(&["500"], "", json!({})),
        )
        .path("/foo?status=500")
        .status(500)
        .has("content-type", "application/json"),
        case(
            "errors: forward all headers by default",
            errors(&["503"], "/test", json!({})),
        )
        .path("/foo?status=503")
        .header("X-Request-Id", "trace-abc")
        .header("Authorization", "Bearer secret")
        .status(503)
        .sent("X-Request-Id", "trace-abc")
        .sent("Authorization", "Bearer secret"),
        case(
            "errors: forward only allowlisted headers",
            errors(
                &["503"],
                "/test",
                json!({"errorRequestHeaders": ["X-Request-Id"]}),
            ),
        )
        .path("/foo?status=503")
        .header("X-Request-Id", "trace-abc")
        .header("Authorization", "Bearer secret")
        .status(503)
        .sent("X-Request-Id", "trace-abc")
        .not_sent("Authorization"),
        case(
            "errors: forward no headers",
            errors(&["503"], "/test", json!({"errorRequestHeaders": []})),
        )
        .path("/foo?status=503")
        .header("X-Custom", "abc")
        .header("Authorization", "Bearer secret")
        .status(503)
        .not_sent("X-Custom")
        .not_sent("Authorization"),
        case(
            "errors: catches the answer of a middleware it wraps",
            json!([
                errors(&["401"], PAGE, json!({})),
                {"basicAuth": {"users": [APR1_TEST]}},
            ]),
        )
        .status(401)
        .has("x-page", "401-401")
        .body(&page_text()),
        case(
            "errors: middlewares around it see the page",
            json!([
                {"headers": {"customResponseHeaders": {"X-Outer": "1"}}},
                errors(&["500"], PAGE, json!({})),
            ]),
        )
        .path("/foo?status=500")
        .status(500)
        .has("x-outer", "1")
        .has("x-page", "500-500"),
    ]
}

/// Routers (host, service, middleware) for [`direct`].
pub(super) fn routers() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "err-url.test",
            "svc",
            errors(&["503"], "/?h=X-Url:{url}", json!({})),
        ),
        (
            "err-closed.test",
            "closed",
            errors(&["502"], "/page?len=15&ct=text/plain", json!({})),
        ),
    ]
}

/// Cases that depend on the router's host or service.
pub(super) fn direct(addr: &str) {
    // {url} is the escaped request URL; the page request keeps the client's Host.
    let r = fetch(addr, &Req::get("err-url.test", "/foo?status=503&x=1")).unwrap();
    assert_eq!(r.status, 503, "{r}");
    assert_eq!(
        r.header("x-url").as_deref(),
        Some("http://err-url.test/foo?status=503&x=1"),
        "{r}"
    );
    assert_eq!(r.json()["headers"]["host"], "err-url.test", "{r}");
    // The proxy's own 502 (a service that refuses connections) is caught too.
    let r = fetch(addr, &Req::get("err-closed.test", "/foo")).unwrap();
    assert_eq!(r.status, 502, "{r}");
    assert_eq!(r.text(), page_text(), "{r}");
}

/// Bad options: (middleware, expected error text).
pub(super) fn refusals() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"errors": {"status": ["5xx"], "service": "svc"}}),
            "errors.status[0]: invalid status range \"5xx\"",
        ),
        (
            json!({"errors": {"status": ["599-500"], "service": "svc"}}),
            "errors.status[0]: invalid status range \"599-500\"",
        ),
        (
            json!({"errors": {"status": ["500"]}}),
            "errors.service: a service name is required",
        ),
        (
            json!({"errors": {"status": ["500"], "service": "ghost"}}),
            "errors.service: service \"ghost\" not found",
        ),
        (
            json!({"errors": {"status": ["500"], "service": "svc", "statusRewrites": {"500": 1000}}}),
            "errors.statusRewrites.500: invalid HTTP status code 1000",
        ),
        (
            json!({"errors": {"status": ["500"], "service": "svc", "errorRequestHeaders": ["a b"]}}),
            "errors.errorRequestHeaders[0]: invalid header name",
        ),
    ]
}
