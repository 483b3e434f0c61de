//! Errors: the one place where a failure becomes an HTTP status.
//!
//! Two kinds live here:
//!
//! * [`ProxyError`]: failures of the proxy itself (binding a socket, reading a config file),
//!   returned by [`crate::Proxy::start`] and [`crate::run`].
//! * [`ErrorKind`]: why the proxy answered a request itself instead of relaying a backend
//!   response. Every kind maps to exactly one status, one short plain-text body and one metric
//!   label, and every occurrence is counted (`switchyard_proxy_errors_total{kind}`).
//!
//! | kind | status | when |
//! |---|---|---|
//! | `bad_request` | 400 | malformed request (bad `%` escape in the path, unusable URI, missing or repeated `Host`, malformed chunked body) |
//! | `no_route` | 404 | no router matches (Go's `404 page not found`, like Traefik) |
//! | `no_healthy_server` | 503 | the service has no available server (Traefik's `no available server`) |
//! | `bad_gateway` | 502 | the backend refused the connection, reset it, or sent garbage |
//! | `gateway_timeout` | 504 | dial timeout or response header timeout |
//! | `not_implemented` | 501 | `CONNECT` (Traefik ≥ 3.7.9 answers 501 too) |
//! | `internal` | 500 | an invariant was violated (should not happen; never a panic) |
//! | `misdirected` | 421 | TLS: the host selects another TLS option than the SNI |
//! | `request_timeout` | 408 | the request body was still arriving at the entry point's `readTimeout` |
//! | `header_fields_too_large` | 431 | HTTP/2 headers over `--max-header-bytes` / `--max-headers` (HTTP/1: hyper answers 431 itself) |
//!
//! Client disconnects are not errors of the proxy: hyper simply drops the response.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::body::ProxyBody;

/// A failure of the proxy itself (not of a request).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// An entry point could not be bound.
    #[error("entry point \"{name}\": cannot listen on {addr}: {source}")]
    Bind {
        /// Entry point name.
        name: String,
        /// Address as given.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The admin address could not be bound.
    #[error("admin: cannot listen on {addr}: {source}")]
    AdminBind {
        /// Address as given.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// Invalid options (e.g. a duplicate entry point name).
    #[error("{0}")]
    Options(String),
    /// The `--cache-dir` could not be used.
    #[error("config cache: {0}")]
    Cache(String),
    /// A config file could not be read or parsed.
    #[error("config file {path}: {message}")]
    ConfigFile {
        /// File path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A config was rejected (the NACK message).
    #[error("config rejected: {0}")]
    Config(String),
    /// Not called from within a tokio runtime.
    #[error("switchyard-proxy must run inside a tokio runtime")]
    NoRuntime,
}

/// Why the proxy answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: malformed request.
    BadRequest,
    /// 404: no router matched.
    NoRoute,
    /// 503: no available server.
    NoHealthyServer,
    /// 502: connection refused/reset, invalid response.
    BadGateway,
    /// 504: dial or response header timeout.
    GatewayTimeout,
    /// 501: `CONNECT`.
    NotImplemented,
    /// 500: internal invariant violated.
    Internal,
    /// 421: on a TLS connection, the request's host selects another TLS option than the SNI
    /// did (Traefik's domain-fronting check).
    Misdirected,
    /// 408: the request was not read within the entry point's `readTimeout`.
    RequestTimeout,
    /// 431: too many or too large request header fields.
    HeaderFieldsTooLarge,
}

impl ErrorKind {
    /// All kinds (metric label order).
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::BadRequest,
        ErrorKind::NoRoute,
        ErrorKind::NoHealthyServer,
        ErrorKind::BadGateway,
        ErrorKind::GatewayTimeout,
        ErrorKind::NotImplemented,
        ErrorKind::Internal,
        ErrorKind::Misdirected,
        ErrorKind::RequestTimeout,
        ErrorKind::HeaderFieldsTooLarge,
    ];

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NoRoute => StatusCode::NOT_FOUND,
            ErrorKind::NoHealthyServer => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::HeaderFieldsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// The short plain-text body.
    pub fn body(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "400 Bad Request\n",
            ErrorKind::NoRoute => "404 page not found\n",
            ErrorKind::NoHealthyServer => "no available server\n",
            ErrorKind::BadGateway => "Bad Gateway\n",
            ErrorKind::GatewayTimeout => "Gateway Timeout\n",
            ErrorKind::NotImplemented => "Not Implemented\n",
            ErrorKind::Internal => "Internal Server Error\n",
            ErrorKind::Misdirected => "421 Misdirected Request\n",
            ErrorKind::RequestTimeout => "408 Request Timeout\n",
            ErrorKind::HeaderFieldsTooLarge => "431 Request Header Fields Too Large\n",
        }
    }

    /// The `kind` label of `switchyard_proxy_errors_total`.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::NoHealthyServer => "no_healthy_server",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::GatewayTimeout => "gateway_timeout",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::Internal => "internal",
            ErrorKind::Misdirected => "misdirected",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::HeaderFieldsTooLarge => "header_fields_too_large",
        }
    }

    /// Index into [`ErrorKind::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            ErrorKind::BadRequest => 0,
            ErrorKind::NoRoute => 1,
            ErrorKind::NoHealthyServer => 2,
            ErrorKind::BadGateway => 3,
            ErrorKind::GatewayTimeout => 4,
            ErrorKind::NotImplemented => 5,
            ErrorKind::Internal => 6,
            ErrorKind::Misdirected => 7,
            ErrorKind::RequestTimeout => 8,
            ErrorKind::HeaderFieldsTooLarge => 9,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The response the proxy sends for `kind` (like Go's `http.Error`: plain text, nosniff).
/// The caller counts it (see [`crate::metrics::Metrics::count_error`]).
pub(crate) fn error_response(kind: ErrorKind) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(Bytes::from_static(kind.body().as_bytes())));
    *resp.status_mut() = kind.status();
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Classify an upstream failure of the hyper client into a status: the client's body missing
/// its `readTimeout` is 408, a malformed client body (bad chunking) 400, timeouts (dial or response header) are 504, everything else is 502
/// (Traefik's `pkg/proxy/httputil` mapping).
pub(crate) fn classify_upstream(err: &crate::upstream::Error) -> ErrorKind {
    match client_body_error(err) {
        Some(crate::body::BodyError::ReadTimeout) => return ErrorKind::RequestTimeout,
        // The client's body was malformed (bad chunking) or cut: the request is bad.
        Some(crate::body::BodyError::Client(_)) => return ErrorKind::BadRequest,
        None => {}
    }
    if is_timeout(err) {
        ErrorKind::GatewayTimeout
    } else {
        ErrorKind::BadGateway
    }
}

/// True when the upstream request failed because of the client's side (its request body
/// failed, e.g. the client went away mid-upload): not the backend's fault, so passive health
/// does not count it.
pub(crate) fn is_client_side(err: &crate::upstream::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_user() {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

/// The failure of the client's request body in an error chain, if that is what failed.
fn client_body_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a crate::body::BodyError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(b) = e.downcast_ref::<crate::body::BodyError>() {
            return Some(b);
        }
        cur = e.source();
    }
    None
}

/// True when an error chain contains an I/O timeout.
fn is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let want = [
            (ErrorKind::BadRequest, 400, "bad_request"),
            (ErrorKind::NoRoute, 404, "no_route"),
            (ErrorKind::NoHealthyServer, 503, "no_healthy_server"),
            (ErrorKind::BadGateway, 502, "bad_gateway"),
            (ErrorKind::GatewayTimeout, 504, "gateway_timeout"),
            (ErrorKind::NotImplemented, 501, "not_implemented"),
            (ErrorKind::Internal, 500, "internal"),
            (ErrorKind::Misdirected, 421, "misdirected"),
            (ErrorKind::RequestTimeout, 408, "request_timeout"),
            (
                ErrorKind::HeaderFieldsTooLarge,
                431,
                "header_fields_too_large",
            ),
        ];
        for (i, (k, code, label)) in want.into_iter().enumerate() {
            assert_eq!(k.status().as_u16(), code);
            assert_eq!(k.label(), label);
            assert_eq!(k.index(), i);
            assert_eq!(ErrorKind::ALL[i], k);
            assert!(k.body().ends_with('\n') && k.body().len() < 40, "{k}");
            let r = error_response(k);
            assert_eq!(r.status().as_u16(), code);
            assert_eq!(
                r.headers()[CONTENT_TYPE],
                HeaderValue::from_static("text/plain; charset=utf-8")
            );
        }
        assert_eq!(ErrorKind::NoRoute.body(), "404 page not found\n");
        assert_eq!(ErrorKind::NoHealthyServer.body(), "no available server\n");
    }

    #[test]
    fn timeouts_are_found_in_chains() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrap")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let t = Wrap(std::io::Error::new(std::io::ErrorKind::TimedOut, "dial"));
        assert!(is_timeout(&t));
        let r = Wrap(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(!is_timeout(&r));
    }
}
