//! `headers`: custom request and response headers, CORS (preflights answered by the proxy)
//! and security headers (Traefik's `unrolled/secure` options).

use std::collections::BTreeMap;

use http::header::{HeaderName, HeaderValue, HOST};
use regex::Regex;

use super::{regex, FieldError, FieldErrors};
use crate::error::quote;
use crate::model::Headers;

/// Set (`Some`) or remove (`None`) a header.
#[derive(Debug, Clone)]
pub struct HeaderOp {
    /// Header name.
    pub name: HeaderName,
    /// Value to set; `None` removes the header.
    pub value: Option<HeaderValue>,
}

/// A compiled `headers` middleware.
#[derive(Debug, Default)]
pub struct CompiledHeaders {
    /// `customRequestHeaders` except `Host`.
    pub request: Vec<HeaderOp>,
    /// `customRequestHeaders.Host`: the new request host.
    pub host: Option<HeaderValue>,
    /// An empty `X-Forwarded-For`: the proxy does not add its own.
    pub suppress_xff: bool,
    /// `customResponseHeaders`.
    pub response: Vec<HeaderOp>,
    /// CORS options, when any is set.
    pub cors: Option<Cors>,
    /// Security options, when any is set.
    pub secure: Option<Secure>,
}

/// CORS options (Traefik's `HasCorsHeadersDefined`).
#[derive(Debug, Default)]
pub struct Cors {
    /// `accessControlAllowCredentials`
    pub allow_credentials: bool,
    /// `accessControlAllowHeaders`, joined with `,` (`None` when empty).
    pub allow_headers: Option<HeaderValue>,
    /// `accessControlAllowHeaders` contains `*`.
    pub allow_headers_any: bool,
    /// `accessControlAllowMethods`, joined with `,` (`None` when empty).
    pub allow_methods: Option<HeaderValue>,
    /// `accessControlAllowMethods` contains `*`.
    pub allow_methods_any: bool,
    /// `accessControlAllowOriginList`, in order.
    pub origin_list: Vec<String>,
    /// `accessControlAllowOriginListRegex` (unanchored, as in Go).
    pub origin_regex: Vec<Regex>,
    /// `Access-Control-Expose-Headers`: `None` when empty, or when it contains `*` and
    /// credentials are allowed (a wildcard is not allowed with credentials).
    pub expose_headers: Option<HeaderValue>,
    /// `accessControlMaxAge`
    pub max_age: Option<HeaderValue>,
    /// `addVaryHeader`
    pub add_vary: bool,
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`: an exact entry of
    /// the list, `*` (the origin itself when credentials are allowed), or the origin when a
    /// regexp matches it.
    pub fn match_origin<'a>(&'a self, origin: &'a str) -> Option<&'a str> {
        for item in &self.origin_list {
            if item == origin {
                return Some(item);
            }
            if item == "*" {
                return Some(if self.allow_credentials { origin } else { item });
            }
        }
        self.origin_regex
            .iter()
            .any(|r| r.is_match(origin))
            .then_some(origin)
    }
}

/// Security options (Traefik's `HasSecureHeadersDefined`, applied like `unrolled/secure`).
#[derive(Debug, Default)]
pub struct Secure {
    /// `allowedHosts` (exact, case-insensitive, against the host as received, port included).
    pub allowed_hosts: Vec<String>,
    /// `hostsProxyHeaders`: headers that carry the host, checked in order.
    pub hosts_proxy_headers: Vec<HeaderName>,
    /// `sslProxyHeaders`: a request carrying one of these header values is secure.
    pub ssl_proxy_headers: Vec<(HeaderName, String)>,
    /// `isDevelopment`: no host check, no STS and no public key pins.
    pub is_development: bool,
    /// `Strict-Transport-Security` value (`stsSeconds` ≠ 0).
    pub sts: Option<HeaderValue>,
    /// `forceSTSHeader`: STS on plain requests too.
    pub force_sts: bool,
    /// `Public-Key-Pins` value (secure requests only).
    pub public_key: Option<HeaderValue>,
    /// Headers set on every response: frame options, nosniff, XSS protection, CSP, CSP report
    /// only, referrer and permissions policies.
    pub always: Vec<(HeaderName, HeaderValue)>,
}

impl CompiledHeaders {
    /// Whether responses are modified.
    pub fn has_response_phase(&self) -> bool {
        !self.response.is_empty() || self.cors.is_some() || self.secure.is_some()
    }
}

fn value(field: &str, v: &str, errs: &mut FieldErrors) -> Option<HeaderValue> {
    match HeaderValue::from_str(v) {
        Ok(v) => Some(v),
        Err(_) => {
            errs.push(FieldError::new(
                field,
                format!(
                    "must be a valid header value (visible ASCII, spaces and tabs), got {}",
                    quote(v)
                ),
            ));
            None
        }
    }
}

fn name(field: &str, n: &str, errs: &mut FieldErrors) -> Option<HeaderName> {
    match HeaderName::from_bytes(n.as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            errs.push(FieldError::new(
                field,
                format!("invalid header name {}", quote(n)),
            ));
            None
        }
    }
}

/// A list joined with `,` as a header value; `None` when empty.
fn joined(field: &str, list: Option<&Vec<String>>, errs: &mut FieldErrors) -> Option<HeaderValue> {
    let list = list.filter(|l| !l.is_empty())?;
    value(field, &list.join(","), errs)
}

fn compile_cors(h: &Headers, errs: &mut FieldErrors) -> Option<Cors> {
    let defined = h.access_control_allow_credentials.unwrap_or(false)
        || h.access_control_allow_headers
            .as_ref()
            .is_some_and(|l| !l.is_empty())
        || h.access_control_allow_methods
            .as_ref()
            .is_some_and(|l| !l.is_empty())
        || h.access_control_allow_origin_list
            .as_ref()
            .is_some_and(|l| !l.is_empty())
        || h.access_control_allow_origin_list_regex
            .as_ref()
            .is_some_and(|l| !l.is_empty())
        || h.access_control_expose_headers
            .as_ref()
            .is_some_and(|l| !l.is_empty())
        || h.access_control_max_age.is_some()
        || h.add_vary_header.unwrap_or(false);
    if !defined {
        return None;
    }
    let has_star = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| l.iter().any(|x| x == "*"));
    let allow_credentials = h.access_control_allow_credentials.unwrap_or(false);
    let origin_regex = h
        .access_control_allow_origin_list_regex
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, r)| {
            regex(
                &format!("headers.accessControlAllowOriginListRegex[{i}]"),
                r,
                errs,
            )
        })
        .collect();
    let expose_headers = if has_star(&h.access_control_expose_headers) && allow_credentials {
        None
    } else {
        joined(
            "headers.accessControlExposeHeaders",
            h.access_control_expose_headers.as_ref(),
            errs,
        )
    };
    Some(Cors {
        allow_credentials,
        allow_headers: joined(
            "headers.accessControlAllowHeaders",
            h.access_control_allow_headers.as_ref(),
            errs,
        ),
        allow_headers_any: has_star(&h.access_control_allow_headers),
        allow_methods: joined(
            "headers.accessControlAllowMethods",
            h.access_control_allow_methods.as_ref(),
            errs,
        ),
        allow_methods_any: has_star(&h.access_control_allow_methods),
        origin_list: h
            .access_control_allow_origin_list
            .clone()
            .unwrap_or_default(),
        origin_regex,
        expose_headers,
        max_age: h.access_control_max_age.map(HeaderValue::from),
        add_vary: h.add_vary_header.unwrap_or(false),
    })
}

fn compile_secure(h: &Headers, errs: &mut FieldErrors) -> Option<Secure> {
    let flag = |b: Option<bool>| b.unwrap_or(false);
    fn text(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|s| !s.is_empty())
    }
    let defined = h.allowed_hosts.as_ref().is_some_and(|l| !l.is_empty())
        || h.hosts_proxy_headers
            .as_ref()
            .is_some_and(|l| !l.is_empty())
        || h.ssl_proxy_headers.as_ref().is_some_and(|l| !l.is_empty())
        || h.sts_seconds.is_some()
        || flag(h.sts_include_subdomains)
        || flag(h.sts_preload)
        || flag(h.force_sts_header)
        || flag(h.frame_deny)
        || text(&h.custom_frame_options_value).is_some()
        || flag(h.content_type_nosniff)
        || flag(h.browser_xss_filter)
        || text(&h.custom_browser_xss_value).is_some()
        || text(&h.content_security_policy).is_some()
        || text(&h.content_security_policy_report_only).is_some()
        || text(&h.public_key).is_some()
        || text(&h.referrer_policy).is_some()
        || text(&h.permissions_policy).is_some()
        || flag(h.is_development);
    if !defined {
        return None;
    }
    let mut always = Vec::new();
    let mut set = |n: &'static str, field: &str, v: &str, errs: &mut FieldErrors| {
        if let Some(v) = value(field, v, errs) {
            always.push((HeaderName::from_static(n), v));
        }
    };
    if let Some(v) = text(&h.custom_frame_options_value) {
        set(
            "x-frame-options",
            "headers.customFrameOptionsValue",
            v,
            errs,
        );
    } else if flag(h.frame_deny) {
        set("x-frame-options", "headers.frameDeny", "DENY", errs);
    }
    if flag(h.content_type_nosniff) {
        set(
            "x-content-type-options",
            "headers.contentTypeNosniff",
            "nosniff",
            errs,
        );
    }
    if let Some(v) = text(&h.custom_browser_xss_value) {
        set("x-xss-protection", "headers.customBrowserXSSValue", v, errs);
    } else if flag(h.browser_xss_filter) {
        set(
            "x-xss-protection",
            "headers.browserXssFilter",
            "1; mode=block",
            errs,
        );
    }
    if let Some(v) = text(&h.content_security_policy) {
        set(
            "content-security-policy",
            "headers.contentSecurityPolicy",
            v,
            errs,
        );
    }
    if let Some(v) = text(&h.content_security_policy_report_only) {
        set(
            "content-security-policy-report-only",
            "headers.contentSecurityPolicyReportOnly",
            v,
            errs,
        );
    }
    if let Some(v) = text(&h.referrer_policy) {
        set("referrer-policy", "headers.referrerPolicy", v, errs);
    }
    if let Some(v) = text(&h.permissions_policy) {
        set("permissions-policy", "headers.permissionsPolicy", v, errs);
    }
    let sts = match h.sts_seconds.unwrap_or(0) {
        0 => None,
        secs => {
            let mut v = format!("max-age={secs}");
            if flag(h.sts_include_subdomains) {
                v.push_str("; includeSubDomains");
            }
            if flag(h.sts_preload) {
                v.push_str("; preload");
            }
            value("headers.stsSeconds", &v, errs)
        }
    };
    let public_key = text(&h.public_key).and_then(|v| value("headers.publicKey", v, errs));
    let hosts_proxy_headers = h
        .hosts_proxy_headers
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, n)| name(&format!("headers.hostsProxyHeaders[{i}]"), n, errs))
        .collect();
    let ssl_proxy_headers = h
        .ssl_proxy_headers
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((name("headers.sslProxyHeaders", k, errs)?, v.clone())))
        .collect();
    Some(Secure {
        allowed_hosts: h.allowed_hosts.clone().unwrap_or_default(),
        hosts_proxy_headers,
        ssl_proxy_headers,
        is_development: flag(h.is_development),
        sts,
        force_sts: flag(h.force_sts_header),
        public_key,
        always,
    })
}

fn header_ops(
    field: &str,
    map: &BTreeMap<String, String>,
    errs: &mut FieldErrors,
) -> Vec<HeaderOp> {
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
            errs.push(FieldError::new(
                field,
                format!("invalid header name {}", quote(k)),
            ));
            continue;
        };
        let value = if v.is_empty() {
            None
        } else {
            match HeaderValue::from_str(v) {
                Ok(v) => Some(v),
                Err(_) => {
                    errs.push(FieldError::new(
                        field,
                        format!("invalid value for header {}", quote(k)),
                    ));
                    continue;
                }
            }
        };
        out.push(HeaderOp { name, value });
    }
    out
}

/// Compile a `headers` middleware.
pub(crate) fn compile(h: &Headers) -> Result<CompiledHeaders, FieldErrors> {
    let mut errs = FieldErrors::new();
    let xff = HeaderName::from_static("x-forwarded-for");
    let mut request = header_ops(
        "headers.customRequestHeaders",
        &h.custom_request_headers,
        &mut errs,
    );
    let mut host = None;
    let mut suppress_xff = false;
    request.retain(|op| {
        if op.name == HOST {
            host = op.value.clone();
            // An empty Host value deletes the (already moved out) Host header in Go: no
            // effect on req.Host.
            false
        } else {
            if op.name == xff && op.value.is_none() {
                suppress_xff = true;
            }
            true
        }
    });
    let response = header_ops(
        "headers.customResponseHeaders",
        &h.custom_response_headers,
        &mut errs,
    );
    let cors = compile_cors(h, &mut errs);
    let secure = compile_secure(h, &mut errs);
    if h.custom_request_headers.is_empty()
        && h.custom_response_headers.is_empty()
        && cors.is_none()
        && secure.is_none()
    {
        // Traefik: "headers configuration not valid".
        errs.push(FieldError::new(
            "headers",
            "at least one option is required (custom headers, CORS or security headers)",
        ));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledHeaders {
        request,
        host,
        suppress_xff,
        response,
        cors,
        secure,
    })
}
