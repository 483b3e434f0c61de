//! `headers`: custom request and response headers.

use std::collections::BTreeMap;

use http::header::{HeaderName, HeaderValue, HOST};

use super::{FieldError, FieldErrors};
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
}

impl CompiledHeaders {
    /// Whether responses are modified.
    pub fn has_response_phase(&self) -> bool {
        !self.response.is_empty()
    }
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
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledHeaders {
        request,
        host,
        suppress_xff,
        response,
    })
}
