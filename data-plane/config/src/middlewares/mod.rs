//! Middleware compilation: each middleware's options become the form the proxy applies per
//! request (regexps, header names and values, address ranges, password hashes …). Pure (no
//! I/O): the proxy compiles its middlewares with it, and [`crate::validate`] runs it too, so
//! a configuration the proxy would refuse is refused at the API with the middleware's name
//! and the field at fault.
//!
//! One file per middleware family; adding a middleware touches its file here, its model in
//! [`crate::model`] and its runtime in the proxy.

pub mod basicauth;
pub mod buffering;
pub mod circuitbreaker;
pub mod compress;
pub mod contenttype;
pub mod digestauth;
pub mod encodedcharacters;
pub mod errors;
pub mod forwardauth;
pub mod grpcweb;
pub mod headers;
pub mod inflight;
pub mod ip;
pub mod passtlsclientcert;
pub mod ratelimit;
pub mod redirect;
pub mod retry;
pub mod rewrite;

use regex::Regex;

use crate::error::quote;
use crate::model::Middleware;
use crate::rules::compile_regex;

pub use headers::CompiledHeaders;
pub use redirect::RedirectKind;

/// One problem in a middleware's options: the field (e.g. `headers.accessControlMaxAge`) and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path inside the middleware, starting with the kind.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Problems of one middleware, all of them.
pub type FieldErrors = Vec<FieldError>;

/// A compiled middleware. Chains are kept as references; the proxy expands them per router.
#[derive(Debug)]
pub enum CompiledMiddleware {
    /// `addPrefix`: the prefix.
    AddPrefix(String),
    /// `stripPrefix`
    StripPrefix {
        /// Prefixes, in order.
        prefixes: Vec<String>,
        /// Each prefix's `X-Forwarded-Prefix` value (trimmed; `None`: not a valid header
        /// value, a request it strips gets 400), built once.
        headers: Vec<Option<http::HeaderValue>>,
        /// Trim one extra slash.
        force_slash: bool,
    },
    /// `stripPrefixRegex`
    StripPrefixRegex(Vec<Regex>),
    /// `replacePath`: the new path.
    ReplacePath(String),
    /// `replacePathRegex`
    ReplacePathRegex {
        /// Regexp on the escaped path.
        regex: Regex,
        /// Replacement (`$1`, `${name}`).
        replacement: String,
    },
    /// `headers`
    Headers(Box<CompiledHeaders>),
    /// `redirectScheme` / `redirectRegex`
    Redirect {
        /// Which URL form the regexp sees.
        kind: RedirectKind,
        /// Regexp on the request URL.
        regex: Regex,
        /// Replacement.
        replacement: String,
        /// 301/308 instead of 302/307.
        permanent: bool,
    },
    /// `ipAllowList` / `ipWhiteList`
    IpAllowList(ip::CompiledIpAllowList),
    /// `basicAuth`
    BasicAuth(Box<basicauth::CompiledBasicAuth>),
    /// `compress`
    Compress(compress::CompiledCompress),
    /// `forwardAuth`
    ForwardAuth(Box<forwardauth::CompiledForwardAuth>),
    /// `errors`
    Errors(Box<errors::CompiledErrors>),
    /// `rateLimit`
    RateLimit(Box<ratelimit::CompiledRateLimit>),
    /// `inFlightReq`
    InFlightReq(Box<inflight::CompiledInFlight>),
    /// `retry`
    Retry(retry::CompiledRetry),
    /// `circuitBreaker`
    CircuitBreaker(Box<circuitbreaker::CompiledCircuitBreaker>),
    /// `digestAuth`
    DigestAuth(Box<digestauth::CompiledDigestAuth>),
    /// `contentType`: sniff a missing `Content-Type` (`false`: no-op).
    ContentType(bool),
    /// `encodedCharacters`: the allowed encoded characters.
    EncodedCharacters(crate::paths::EncodedCharacters),
    /// `buffering`
    Buffering(Box<buffering::CompiledBuffering>),
    /// `grpcWeb`
    GrpcWeb(Box<grpcweb::CompiledGrpcWeb>),
    /// `passTLSClientCert`
    PassTlsClientCert(Box<passtlsclientcert::CompiledPassTls>),
    /// `chain`: the referenced middlewares, in order.
    Chain(Vec<String>),
}

/// Compile one middleware. Every problem is reported.
pub fn compile(m: &Middleware) -> Result<CompiledMiddleware, FieldErrors> {
    Ok(match m {
        Middleware::AddPrefix(_)
        | Middleware::StripPrefix(_)
        | Middleware::StripPrefixRegex(_)
        | Middleware::ReplacePath(_)
        | Middleware::ReplacePathRegex(_) => rewrite::compile(m)?,
        Middleware::RedirectScheme(r) => redirect::compile_scheme(r)?,
        Middleware::RedirectRegex(r) => redirect::compile_regex(r)?,
        Middleware::Headers(h) => CompiledMiddleware::Headers(Box::new(headers::compile(h)?)),
        Middleware::IpAllowList(a) => CompiledMiddleware::IpAllowList(ip::compile(
            "ipAllowList",
            &a.source_range,
            a.ip_strategy.as_ref(),
            a.reject_status_code,
        )?),
        Middleware::IpWhiteList(a) => CompiledMiddleware::IpAllowList(ip::compile(
            "ipWhiteList",
            &a.source_range,
            a.ip_strategy.as_ref(),
            None,
        )?),
        Middleware::BasicAuth(b) => CompiledMiddleware::BasicAuth(Box::new(basicauth::compile(b)?)),
        Middleware::Compress(c) => CompiledMiddleware::Compress(compress::compile(c)?),
        Middleware::ForwardAuth(f) => {
            CompiledMiddleware::ForwardAuth(Box::new(forwardauth::compile(f)?))
        }
        Middleware::Errors(e) => CompiledMiddleware::Errors(Box::new(errors::compile(e)?)),
        Middleware::RateLimit(r) => CompiledMiddleware::RateLimit(Box::new(ratelimit::compile(r)?)),
        Middleware::InFlightReq(r) => {
            CompiledMiddleware::InFlightReq(Box::new(inflight::compile(r)?))
        }
        Middleware::Retry(r) => CompiledMiddleware::Retry(retry::compile(r)?),
        Middleware::DigestAuth(d) => {
            CompiledMiddleware::DigestAuth(Box::new(digestauth::compile(d)?))
        }
        Middleware::CircuitBreaker(c) => {
            CompiledMiddleware::CircuitBreaker(Box::new(circuitbreaker::compile(c)?))
        }
        Middleware::Chain(c) => CompiledMiddleware::Chain(c.middlewares.clone()),
        Middleware::ContentType(c) => contenttype::compile(c)?,
        Middleware::EncodedCharacters(e) => encodedcharacters::compile(e)?,
        Middleware::Buffering(b) => buffering::compile(b)?,
        Middleware::GrpcWeb(g) => grpcweb::compile(g)?,
        Middleware::PassTlsClientCert(p) => passtlsclientcert::compile(p)?,
        other @ Middleware::Plugin(_) => {
            return Err(vec![FieldError::new(
                other.kind_name(),
                format!(
                    "{} middlewares are not supported by this version of Switchyard",
                    other.kind_name()
                ),
            )])
        }
    })
}

/// Compile a regexp option (Go syntax, as Traefik).
pub(crate) fn regex(field: &str, re: &str, errs: &mut FieldErrors) -> Option<Regex> {
    match compile_regex(re) {
        Ok(r) => Some(r),
        Err(e) => {
            errs.push(FieldError::new(
                field,
                format!("invalid regexp {}: {e}", quote(re)),
            ));
            None
        }
    }
}

/// `Ok(v)` when no problem was recorded.
pub(crate) fn done<T>(v: Option<T>, errs: FieldErrors) -> Result<T, FieldErrors> {
    match v {
        Some(v) if errs.is_empty() => Ok(v),
        _ if errs.is_empty() => Err(vec![FieldError::new("", "invalid options")]),
        _ => Err(errs),
    }
}
