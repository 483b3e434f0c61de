//! `forwardAuth`: every request is first sent to an authentication server (`address`); a 2xx
//! answer lets the request through (with `authResponseHeaders` /
//! `authResponseHeadersRegex` copied onto it and `addAuthCookiesToResponse` added to the
//! client's response), any other answer is returned to the client as is (Traefik's
//! `pkg/middlewares/auth/forward.go`). Compiled here (pure); the proxy builds the client to the
//! authentication server once per config version and stores it in [`CompiledForwardAuth::client`].

use std::any::Any;
use std::collections::HashSet;
use std::sync::OnceLock;

use http::header::{HeaderName, HeaderValue};
use regex::Regex;

use super::{regex, FieldError, FieldErrors};
use crate::error::quote;
use crate::model::{ForwardAuth, ForwardAuthTls};

/// Traefik's managed `X-Forwarded-*` headers (`forwardedheaders.XHeadersSet`), lower case.
pub const X_HEADERS: &[&str] = &[
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-prefix",
    "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
    "x-scheme",
    "x-real-ip",
];

/// Whether `name` (lower case) is one of [`X_HEADERS`], `_` counting as `-` (Go keeps
/// `X_Forwarded_Proto` as sent).
pub fn is_managed_x_header(name: &str) -> bool {
    if !name.starts_with('x') {
        return false;
    }
    if name.contains('_') {
        let n = name.replace('_', "-");
        X_HEADERS.contains(&n.as_str())
    } else {
        X_HEADERS.contains(&name)
    }
}

/// Go's `http.CanonicalHeaderKey` (`x-auth-user` → `X-Auth-User`), the form
/// `authResponseHeadersRegex` is matched against.
pub fn canonical_header_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

/// A compiled `forwardAuth`.
#[derive(Debug)]
pub struct CompiledForwardAuth {
    /// The authentication server's URL as written.
    pub address: String,
    /// The same, parsed (relative `Location`s are resolved against it).
    pub url: url::Url,
    /// TLS to the authentication server.
    pub tls: Option<ForwardAuthTls>,
    /// `trustForwardHeader`: `None` is Traefik's legacy behaviour.
    pub trust_forward_header: Option<bool>,
    /// Copied from a 2xx auth response onto the request (replacing the client's).
    pub auth_response_headers: Vec<HeaderName>,
    /// Auth response headers whose canonical name matches are copied (the request's matching
    /// headers removed first).
    pub auth_response_headers_regex: Option<Regex>,
    /// Request headers sent to the authentication server (empty: all), with Traefik's
    /// `X-Forwarded-*` set added when `trustForwardHeader` is true.
    pub auth_request_headers: Vec<HeaderName>,
    /// Largest auth response body (`None`: no limit); beyond it the answer is 401.
    pub max_response_body_size: Option<u64>,
    /// Cookie names of the auth response added to the client's response.
    pub add_auth_cookies_to_response: HashSet<String>,
    /// Auth response header naming the user.
    pub header_field: Option<HeaderName>,
    /// Send the request body.
    pub forward_body: bool,
    /// Largest forwarded request body (`None`: no limit); beyond it the answer is 401.
    pub max_body_size: Option<u64>,
    /// Pass `Location` as is.
    pub preserve_location_header: bool,
    /// Ask with the request's method instead of `GET`.
    pub preserve_request_method: bool,
    /// `authSigninURL`: a 401 from the server becomes a 302 to it.
    pub auth_signin_url: Option<HeaderValue>,
    /// The proxy's client to the authentication server, built once per config version (an
    /// opaque slot: this crate does no I/O).
    pub client: OnceLock<Box<dyn Any + Send + Sync>>,
}

fn header_names(field: &str, list: &[String], errs: &mut FieldErrors) -> Vec<HeaderName> {
    let mut out = Vec::with_capacity(list.len());
    for (i, h) in list.iter().enumerate() {
        match HeaderName::from_bytes(h.trim().as_bytes()) {
            Ok(n) => out.push(n),
            Err(_) => errs.push(FieldError::new(
                format!("{field}[{i}]"),
                format!("invalid header name {}", quote(h)),
            )),
        }
    }
    out
}

fn size(field: &str, v: Option<i64>, errs: &mut FieldErrors) -> Option<u64> {
    match v {
        None => None,
        Some(n) if n < -1 => {
            errs.push(FieldError::new(
                field,
                format!("must be -1 (no limit) or more, got {n}"),
            ));
            None
        }
        Some(n) => u64::try_from(n).ok(),
    }
}

/// Compile `forwardAuth`.
pub(crate) fn compile(f: &ForwardAuth) -> Result<CompiledForwardAuth, FieldErrors> {
    let mut errs = FieldErrors::new();
    let url = match url::Url::parse(f.address.trim()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            errs.push(FieldError::new(
                "forwardAuth.address",
                format!("{} must be an http or https URL", quote(&f.address)),
            ));
            None
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            errs.push(FieldError::new(
                "forwardAuth.address",
                format!("{} has no host", quote(&f.address)),
            ));
            None
        }
        Ok(u) => Some(u),
        Err(e) => {
            errs.push(FieldError::new(
                "forwardAuth.address",
                if f.address.trim().is_empty() {
                    "is required".to_string()
                } else {
                    format!("{} is not a URL: {e}", quote(&f.address))
                },
            ));
            None
        }
    };
    let auth_response_headers = header_names(
        "forwardAuth.authResponseHeaders",
        &f.auth_response_headers,
        &mut errs,
    );
    let auth_response_headers_regex = if f.auth_response_headers_regex.is_empty() {
        None
    } else {
        regex(
            "forwardAuth.authResponseHeadersRegex",
            &f.auth_response_headers_regex,
            &mut errs,
        )
    };
    let mut auth_request_headers = header_names(
        "forwardAuth.authRequestHeaders",
        &f.auth_request_headers,
        &mut errs,
    );
    if f.trust_forward_header == Some(true) && !auth_request_headers.is_empty() {
        auth_request_headers.extend(X_HEADERS.iter().map(|h| HeaderName::from_static(h)));
    }
    let header_field = if f.header_field.is_empty() {
        None
    } else {
        match HeaderName::from_bytes(f.header_field.as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                errs.push(FieldError::new(
                    "forwardAuth.headerField",
                    format!("invalid header name {}", quote(&f.header_field)),
                ));
                None
            }
        }
    };
    let max_body_size = size("forwardAuth.maxBodySize", f.max_body_size, &mut errs);
    let max_response_body_size = size(
        "forwardAuth.maxResponseBodySize",
        f.max_response_body_size,
        &mut errs,
    );
    let auth_signin_url = if f.auth_signin_url.is_empty() {
        None
    } else {
        match url::Url::parse(&f.auth_signin_url)
            .ok()
            .and_then(|_| HeaderValue::from_str(&f.auth_signin_url).ok())
        {
            Some(v) => Some(v),
            None => {
                errs.push(FieldError::new(
                    "forwardAuth.authSigninURL",
                    format!("{} is not a URL", quote(&f.auth_signin_url)),
                ));
                None
            }
        }
    };
    if let Some(tls) = &f.tls {
        if tls.cert.trim().is_empty() != tls.key.trim().is_empty() {
            errs.push(FieldError::new(
                "forwardAuth.tls",
                "cert and key must be given together",
            ));
        }
        for (field, v, marker) in [
            ("forwardAuth.tls.ca", &tls.ca, "CERTIFICATE"),
            ("forwardAuth.tls.cert", &tls.cert, "CERTIFICATE"),
            ("forwardAuth.tls.key", &tls.key, "PRIVATE KEY"),
        ] {
            let pem = v.contains("-----BEGIN") && v.contains(marker);
            if !v.trim().is_empty() && !pem {
                errs.push(FieldError::new(
                    field,
                    "must be PEM (or a file path given to apply)",
                ));
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let Some(url) = url else {
        return Err(vec![FieldError::new("forwardAuth.address", "is required")]);
    };
    Ok(CompiledForwardAuth {
        address: f.address.trim().to_string(),
        url,
        tls: f.tls.clone(),
        trust_forward_header: f.trust_forward_header,
        auth_response_headers,
        auth_response_headers_regex,
        auth_request_headers,
        max_response_body_size,
        add_auth_cookies_to_response: f.add_auth_cookies_to_response.iter().cloned().collect(),
        header_field,
        forward_body: f.forward_body.unwrap_or(false),
        max_body_size,
        preserve_location_header: f.preserve_location_header.unwrap_or(false),
        preserve_request_method: f.preserve_request_method.unwrap_or(false),
        auth_signin_url,
        client: OnceLock::new(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fa(address: &str) -> ForwardAuth {
        ForwardAuth {
            address: address.into(),
            ..ForwardAuth::default()
        }
    }

    #[test]
    fn options() {
        let c = compile(&ForwardAuth {
            auth_response_headers: vec!["X-Auth-User".into()],
            auth_response_headers_regex: "^Foo-".into(),
            auth_request_headers: vec!["Accept".into()],
            trust_forward_header: Some(true),
            max_body_size: Some(-1),
            ..fa("http://auth.example:9000/verify")
        })
        .unwrap();
        assert_eq!(c.url.port(), Some(9000));
        assert_eq!(c.auth_response_headers, ["x-auth-user"]);
        assert_eq!(c.max_body_size, None);
        // trustForwardHeader with a list: Traefik's X headers are allowed too.
        assert_eq!(c.auth_request_headers.len(), 1 + X_HEADERS.len());
        assert!(c
            .auth_response_headers_regex
            .unwrap()
            .is_match(&canonical_header_key("foo-bar")));
    }

    #[test]
    fn refusals() {
        let field = |f: ForwardAuth| compile(&f).unwrap_err()[0].field.clone();
        assert_eq!(field(fa("not a url")), "forwardAuth.address");
        assert_eq!(field(fa("")), "forwardAuth.address");
        assert_eq!(field(fa("ftp://a")), "forwardAuth.address");
        assert_eq!(
            field(ForwardAuth {
                auth_response_headers_regex: "a(".into(),
                ..fa("http://a")
            }),
            "forwardAuth.authResponseHeadersRegex"
        );
        assert_eq!(
            field(ForwardAuth {
                auth_response_headers: vec!["bad header".into()],
                ..fa("http://a")
            }),
            "forwardAuth.authResponseHeaders[0]"
        );
        assert_eq!(
            field(ForwardAuth {
                max_body_size: Some(-2),
                ..fa("http://a")
            }),
            "forwardAuth.maxBodySize"
        );
        assert_eq!(
            field(ForwardAuth {
                tls: Some(ForwardAuthTls {
                    cert: "x".into(),
                    ..ForwardAuthTls::default()
                }),
                ..fa("https://a")
            }),
            "forwardAuth.tls"
        );
    }

    #[test]
    fn header_keys() {
        assert_eq!(canonical_header_key("x-auth-user"), "X-Auth-User");
        assert_eq!(canonical_header_key("foo"), "Foo");
        assert!(is_managed_x_header("x-forwarded-proto"));
        assert!(is_managed_x_header("x_forwarded_proto"));
        assert!(!is_managed_x_header("x-foo"));
    }
}
