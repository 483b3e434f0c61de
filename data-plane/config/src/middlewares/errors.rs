//! `errors` (Traefik's `pkg/middlewares/customerrors`): a response whose status is in `status`
//! is replaced by the page `service` answers for `GET query` (`{status}`, `{originalStatus}`,
//! `{url}` substituted), with the caught status (or its `statusRewrites` replacement). Compiled
//! here (pure); the proxy links the service once per config version into
//! [`CompiledErrors::service_slot`].

use std::any::Any;
use std::sync::OnceLock;

use http::header::HeaderName;

use super::{FieldError, FieldErrors};
use crate::error::quote;
use crate::model::Errors;

/// Status ranges (inclusive).
pub type Ranges = Vec<(u16, u16)>;

/// A compiled `errors`.
#[derive(Debug)]
pub struct CompiledErrors {
    /// Statuses caught.
    pub status: Ranges,
    /// Rewrites, first match wins (in the order of the keys).
    pub status_rewrites: Vec<(Ranges, u16)>,
    /// The error page service's name (as written).
    pub service: String,
    /// The error page's path and query template (empty: `/`).
    pub query: String,
    /// Request headers sent to the error page service (`None`: all).
    pub request_headers: Option<Vec<HeaderName>>,
    /// The proxy's handle on the service, linked once per config version (opaque here).
    pub service_slot: OnceLock<Box<dyn Any + Send + Sync>>,
}

/// Whether `code` is in `ranges`.
pub fn contains(ranges: &Ranges, code: u16) -> bool {
    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
}

impl CompiledErrors {
    /// Whether a response status is caught.
    pub fn catches(&self, code: u16) -> bool {
        contains(&self.status, code)
    }

    /// The status answered for a caught `code`.
    pub fn rewrite(&self, code: u16) -> u16 {
        self.status_rewrites
            .iter()
            .find(|(r, _)| contains(r, code))
            .map_or(code, |(_, to)| *to)
    }

    /// The error page's path and query for `code` (caught as `original`) of the request URL
    /// `url` (Go's `url.QueryEscape` of it for `{url}`).
    pub fn page_query(&self, code: u16, original: u16, url: &str) -> String {
        if self.query.is_empty() {
            return "/".to_string();
        }
        format!("/{}", self.query.trim_start_matches('/'))
            .replace("{status}", &code.to_string())
            .replace("{originalStatus}", &original.to_string())
            .replace("{url}", &query_escape(url))
    }
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Parse `500`, `500-599` and comma-separated lists of them.
fn ranges(field: &str, list: &[String], errs: &mut FieldErrors) -> Ranges {
    let mut out = Vec::new();
    for (i, block) in list.iter().enumerate() {
        for part in block.split(',').map(str::trim) {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
                (Ok(lo), Ok(hi)) if lo <= hi => out.push((lo, hi)),
                _ => errs.push(FieldError::new(
                    format!("{field}[{i}]"),
                    format!(
                        "invalid status range {}, expected a status (500), a range (500-599) or a list of them",
                        quote(block)
                    ),
                )),
            }
        }
    }
    out
}

/// Compile `errors`.
pub(crate) fn compile(e: &Errors) -> Result<CompiledErrors, FieldErrors> {
    let mut errs = FieldErrors::new();
    let status = ranges("errors.status", &e.status, &mut errs);
    let mut status_rewrites = Vec::new();
    for (from, to) in &e.status_rewrites {
        let field = format!("errors.statusRewrites.{from}");
        let r = ranges(&field, std::slice::from_ref(from), &mut errs);
        match u16::try_from(*to) {
            Ok(to) if (100..=599).contains(&to) => status_rewrites.push((r, to)),
            _ => errs.push(FieldError::new(
                field,
                format!("invalid HTTP status code {to}"),
            )),
        }
    }
    if e.service.trim().is_empty() {
        errs.push(FieldError::new(
            "errors.service",
            "a service name is required",
        ));
    }
    let request_headers = e.error_request_headers.as_ref().map(|list| {
        let mut out = Vec::new();
        for (i, h) in list.iter().enumerate() {
            match HeaderName::from_bytes(h.trim().as_bytes()) {
                Ok(n) => out.push(n),
                Err(_) => errs.push(FieldError::new(
                    format!("errors.errorRequestHeaders[{i}]"),
                    format!("invalid header name {}", quote(h)),
                )),
            }
        }
        out
    });
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledErrors {
        status,
        status_rewrites,
        service: e.service.trim().to_string(),
        query: e.query.clone(),
        request_headers,
        service_slot: OnceLock::new(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn errors(status: &[&str]) -> Errors {
        Errors {
            status: status.iter().map(|s| s.to_string()).collect(),
            service: "pages".into(),
            ..Errors::default()
        }
    }

    #[test]
    fn ranges_and_rewrites() {
        let mut e = errors(&["500-502", "404", "418,420"]);
        e.status_rewrites.insert("500-501".into(), 503);
        e.query = "{status}.html?from={originalStatus}&u={url}".into();
        let c = compile(&e).unwrap();
        for (code, caught) in [
            (500, true),
            (502, true),
            (503, false),
            (404, true),
            (420, true),
        ] {
            assert_eq!(c.catches(code), caught, "{code}");
        }
        assert_eq!(c.rewrite(500), 503);
        assert_eq!(c.rewrite(502), 502);
        assert_eq!(
            c.page_query(503, 500, "http://a.com/x?y=1 2"),
            "/503.html?from=500&u=http%3A%2F%2Fa.com%2Fx%3Fy%3D1+2"
        );
        let e = Errors {
            query: String::new(),
            ..errors(&["500"])
        };
        assert_eq!(compile(&e).unwrap().page_query(500, 500, "u"), "/");
    }

    #[test]
    fn refusals() {
        let field = |e: Errors| compile(&e).unwrap_err()[0].field.clone();
        assert_eq!(field(errors(&["abc"])), "errors.status[0]");
        assert_eq!(field(errors(&["599-500"])), "errors.status[0]");
        assert_eq!(
            field(Errors {
                service: String::new(),
                ..errors(&["500"])
            }),
            "errors.service"
        );
        let mut e = errors(&["500"]);
        e.status_rewrites.insert("500".into(), 1000);
        assert_eq!(field(e), "errors.statusRewrites.500");
    }
}
