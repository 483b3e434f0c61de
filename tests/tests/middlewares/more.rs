//! Cases for `contentType`, `encodedCharacters`, `buffering` and `grpcWeb` (CORS and the
//! request translation; the gRPC round trip is in the every-kind test), ported from Traefik's
//! `content_type_test.go`, `encoded_characters_test.go`, `buffering_test.go` and the
//! `traefik/grpc-web` wrapper's behaviour.

use serde_json::{json, Value};

use super::{case, Case};

/// A 127-byte payload (Traefik's `make([]byte, math.MaxInt8)`).
fn payload() -> Vec<u8> {
    (0..127u8).map(|i| b'a' + i % 26).collect()
}

pub(crate) fn cases() -> Vec<Case> {
    let mut out = vec![
        // TestContentType
        case(
            "contentType: keep the server's type",
            json!({"contentType": {"autoDetect": false}}),
        )
        .path("/foo?ct=application/json&len=10")
        .has("Content-Type", "application/json"),
        case(
            "contentType: no detection when disabled",
            json!({"contentType": {"autoDetect": false}}),
        )
        .path("/foo?ct=&len=10")
        .lacks("Content-Type"),
        case(
            "contentType: keep the server's type with detection",
            json!({"contentType": {"autoDetect": true}}),
        )
        .path("/foo?ct=application/json&len=10")
        .has("Content-Type", "application/json"),
        case(
            "contentType: detect a missing type",
            json!({"contentType": {"autoDetect": true}}),
        )
        .path("/foo?ct=&len=10")
        .has("Content-Type", "text/plain; charset=utf-8")
        .body("The quick "),
        case(
            "contentType: detection is the default",
            json!({"contentType": {}}),
        )
        .path("/foo?ct=&len=2000")
        .has("Content-Type", "text/plain; charset=utf-8")
        .encoded("", 2000),
        case(
            "contentType: detected JSON echo is text",
            json!({"contentType": {}}),
        )
        .path("/foo?ct=")
        .has("Content-Type", "text/plain; charset=utf-8")
        .sent("X-Probe", "1")
        .header("X-Probe", "1"),
        case(
            "contentType: an empty body gets no type",
            json!({"contentType": {}}),
        )
        .path("/foo?ct=&len=0")
        .lacks("Content-Type")
        .body(""),
        case("contentType: no type for 204", json!({"contentType": {}}))
            .path("/foo?ct=&len=0&status=204")
            .status(204)
            .lacks("Content-Type"),
        case(
            "contentType: with compress, sniffed before encoding",
            json!([{"compress": {}}, {"contentType": {}}]),
        )
        .path("/foo?ct=&len=3000")
        .header("Accept-Encoding", "gzip")
        .has("Content-Type", "text/plain; charset=utf-8")
        .encoded("gzip", 3000),
        // TestBuffering
        case(
            "buffering: unlimited request and response",
            json!({"buffering": {}}),
        )
        .method("POST")
        .send(&payload())
        .sent("Content-Length", "127"),
        case(
            "buffering: limited request body",
            json!({"buffering": {"maxRequestBodyBytes": 1}}),
        )
        .method("POST")
        .send(&payload())
        .status(413),
        case(
            "buffering: limited response body",
            json!({"buffering": {"maxResponseBodyBytes": 1}}),
        )
        .method("POST")
        .send(&payload())
        .status(500),
        case(
            "buffering: request body at the limit",
            json!({"buffering": {"maxRequestBodyBytes": 127}}),
        )
        .method("POST")
        .send(&payload())
        .sent("Content-Length", "127"),
        case(
            "buffering: response within the limit gets its length",
            json!({"buffering": {"maxResponseBodyBytes": 5000, "memResponseBodyBytes": 100}}),
        )
        .path("/foo?len=4000")
        .has("Content-Length", "4000")
        .encoded("", 4000),
        case(
            "buffering: response just over the limit",
            json!({"buffering": {"maxResponseBodyBytes": 3999}}),
        )
        .path("/foo?len=4000")
        .status(500),
        case(
            "buffering: a HEAD answer keeps its length",
            json!({"buffering": {"maxResponseBodyBytes": 100000}}),
        )
        .method("HEAD")
        .path("/foo?len=4000")
        .has("Content-Length", "4000")
        .body(""),
        case(
            "buffering: a bodiless GET passes",
            json!({"buffering": {"maxRequestBodyBytes": 1, "memRequestBodyBytes": 1}}),
        )
        .status(200)
        .not_sent("Content-Length"),
        // grpcWeb: CORS preflight answered by the proxy (rs/cors 1.7 as wrapped by grpc-web).
        case(
            "grpcWeb: preflight from an allowed origin",
            json!({"grpcWeb": {"allowOrigins": ["https://app.test"]}}),
        )
        .method("OPTIONS")
        .header("Origin", "https://app.test")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-grpc-web,content-type")
        .status(200)
        .has("Access-Control-Allow-Origin", "https://app.test")
        .has("Access-Control-Allow-Methods", "POST")
        .has("Access-Control-Allow-Headers", "X-Grpc-Web, Content-Type")
        .has("Access-Control-Allow-Credentials", "true")
        .has("Access-Control-Max-Age", "600")
        .has("Vary", "Origin")
        .body(""),
        case(
            "grpcWeb: preflight from any origin with *",
            json!({"grpcWeb": {"allowOrigins": ["*"]}}),
        )
        .method("OPTIONS")
        .header("Origin", "https://other.test")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-grpc-web")
        .has("Access-Control-Allow-Origin", "https://other.test"),
        case(
            "grpcWeb: preflight from a disallowed origin gets no CORS headers",
            json!({"grpcWeb": {"allowOrigins": ["https://app.test"]}}),
        )
        .method("OPTIONS")
        .header("Origin", "https://evil.test")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-grpc-web")
        .status(200)
        .lacks("Access-Control-Allow-Origin")
        .lacks("Access-Control-Allow-Credentials")
        .has("Vary", "Origin"),
        case(
            "grpcWeb: preflight for a disallowed method",
            json!({"grpcWeb": {"allowOrigins": ["*"]}}),
        )
        .method("OPTIONS")
        .header("Origin", "https://app.test")
        .header("Access-Control-Request-Method", "DELETE")
        .header("Access-Control-Request-Headers", "x-grpc-web")
        .lacks("Access-Control-Allow-Origin"),
        case(
            "grpcWeb: other OPTIONS reach the service",
            json!({"grpcWeb": {"allowOrigins": ["*"]}}),
        )
        .method("OPTIONS")
        .header("Origin", "https://app.test")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .sent("Access-Control-Request-Headers", "content-type")
        .lacks("Access-Control-Allow-Origin"),
        case(
            "grpcWeb: request sent as gRPC",
            json!({"grpcWeb": {"allowOrigins": ["https://app.test"]}}),
        )
        .method("POST")
        .header("Origin", "https://app.test")
        .header("Content-Type", "application/grpc-web+proto")
        .send(b"\0\0\0\0\0")
        .sent("Content-Type", "application/grpc+proto")
        .has("Access-Control-Allow-Origin", "https://app.test")
        .has("Access-Control-Allow-Credentials", "true")
        .has("Vary", "Origin"),
        case(
            "grpcWeb: request from a disallowed origin still translated, no CORS",
            json!({"grpcWeb": {"allowOrigins": ["https://app.test"]}}),
        )
        .method("POST")
        .header("Origin", "https://evil.test")
        .header("Content-Type", "application/grpc-web")
        .send(b"\0\0\0\0\0")
        .sent("Content-Type", "application/grpc")
        .lacks("Access-Control-Allow-Origin"),
        // The backend's answer comes back base64-encoded (text mode): the decoded request is
        // checked by the gRPC round trip of the every-kind test.
        case(
            "grpcWeb: text request answered in text",
            json!({"grpcWeb": {}}),
        )
        .method("POST")
        .header("Content-Type", "application/grpc-web-text")
        .send(b"AAAAAAA=")
        .has("Content-Type", "application/json")
        .has("Vary", "Origin")
        .lacks("Content-Length"),
        case("grpcWeb: a GET is not gRPC-Web", json!({"grpcWeb": {}}))
            .header("Content-Type", "application/grpc-web")
            .sent("Content-Type", "application/grpc-web")
            .lacks("Access-Control-Expose-Headers"),
        case(
            "grpcWeb: plain requests pass",
            json!({"grpcWeb": {"allowOrigins": ["*"]}}),
        )
        .method("POST")
        .header("Content-Type", "application/json")
        .send(b"{}")
        .sent("Content-Type", "application/json")
        .lacks("Access-Control-Allow-Origin"),
    ];
    // TestEncodedCharacters: each character denied by default and allowed by its option.
    for (opt, path) in [
        ("allowEncodedSlash", "/foo%2fbar"),
        ("allowEncodedBackSlash", "/foo%5cbar"),
        ("allowEncodedNullCharacter", "/foo%00bar"),
        ("allowEncodedSemicolon", "/foo%3bbar"),
        ("allowEncodedPercent", "/foo%25bar"),
        ("allowEncodedQuestionMark", "/foo%3fbar"),
        ("allowEncodedHash", "/foo%23bar"),
    ] {
        out.push(
            case(
                "encodedCharacters: denied by default",
                json!({"encodedCharacters": {}}),
            )
            .path(path)
            .status(400),
        );
        out.push(
            case(
                "encodedCharacters: allowed by its option",
                json!({"encodedCharacters": {opt: true}}),
            )
            .path(path)
            .status(200),
        );
    }
    out.push(
        case(
            "encodedCharacters: slash allowed, semicolon still denied",
            json!({"encodedCharacters": {"allowEncodedSlash": true}}),
        )
        .path("/a%2Fb%3Bc")
        .status(400),
    );
    out.push(
        case(
            "encodedCharacters: plain path passes",
            json!({"encodedCharacters": {}}),
        )
        .path("/a/b%41c")
        .status(200),
    );
    out
}

/// Bad options refused at the API.
pub(crate) fn refusals() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"buffering": {"maxRequestBodyBytes": -1}}),
            "buffering.maxRequestBodyBytes: must not be negative",
        ),
        (
            json!({"buffering": {"memResponseBodyBytes": -5}}),
            "buffering.memResponseBodyBytes: must not be negative",
        ),
        (
            json!({"buffering": {"retryExpression": "IsNetworkError() &&"}}),
            "buffering.retryExpression: invalid expression",
        ),
        (
            json!({"buffering": {"retryExpression": "Foo() > 1"}}),
            "unsupported function \"Foo\"",
        ),
        (
            json!({"grpcWeb": {"allowOrigins": ["https://a.test", ""]}}),
            "grpcWeb.allowOrigins[1]: invalid origin",
        ),
        (
            json!({"passTLSClientCert": {"info": {"issuer": {"organizationalUnit": true}}}}),
            "passTLSClientCert.info.issuer.organizationalUnit",
        ),
        (json!({"contentType": {"autoDetect": "yes"}}), "autoDetect"),
        (
            json!({"encodedCharacters": {"allowEncodedSlashes": true}}),
            "allowEncodedSlashes",
        ),
        // The path and redirect kinds (the others are in their own lists).
        (
            json!({"addPrefix": {}}),
            "addPrefix.prefix: a path is required",
        ),
        (
            json!({"stripPrefix": {"prefixes": [""]}}),
            "stripPrefix.prefixes[0]",
        ),
        (
            json!({"stripPrefixRegex": {"regex": ["/ok", "a(b"]}}),
            "stripPrefixRegex.regex[1]: invalid regexp",
        ),
        (
            json!({"replacePath": {}}),
            "replacePath.path: a path is required",
        ),
        (
            json!({"replacePathRegex": {"regex": "(", "replacement": "/x"}}),
            "replacePathRegex.regex: invalid regexp",
        ),
        (
            json!({"redirectRegex": {"regex": "^http://(.*", "replacement": "https://x/"}}),
            "redirectRegex.regex: invalid regexp",
        ),
        (
            json!({"redirectRegex": {"regex": "^http://(.*)"}}),
            "redirectRegex.replacement: a replacement is required",
        ),
        (
            json!({"redirectScheme": {"scheme": "https", "port": 70000}}),
            "redirectScheme.port: invalid port",
        ),
        (
            json!({"chain": {"middlewares": ["ghost"]}}),
            "chain.middlewares[0]: middleware \"ghost\" not found",
        ),
    ]
}
