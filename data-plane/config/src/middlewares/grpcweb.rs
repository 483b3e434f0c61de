//! `grpcWeb` (Traefik's `grpcweb`, the `traefik/grpc-web` wrapper): gRPC-Web requests
//! (`POST`, `Content-Type: application/grpc-web…`) are sent to the service as gRPC, and the
//! response is turned back into gRPC-Web (trailers become the last length-prefixed message,
//! flagged `0x80`). CORS for them follows `allowOrigins` (`*`: any origin).

use super::{CompiledMiddleware, FieldError, FieldErrors};
use crate::model::GrpcWeb;

/// A compiled `grpcWeb`.
#[derive(Debug, Clone)]
pub struct CompiledGrpcWeb {
    /// Origins allowed (exact match), or every origin.
    pub any_origin: bool,
    /// The listed origins.
    pub origins: Vec<String>,
}

impl CompiledGrpcWeb {
    /// Whether CORS allows `origin`.
    pub fn allows(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o == origin)
    }
}

/// Compile.
pub fn compile(g: &GrpcWeb) -> Result<CompiledMiddleware, FieldErrors> {
    let mut errs = Vec::new();
    for (i, o) in g.allow_origins.iter().enumerate() {
        if o.is_empty() || o.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            errs.push(FieldError::new(
                format!("grpcWeb.allowOrigins[{i}]"),
                format!(
                    "invalid origin {}, expected `*` or scheme://host[:port]",
                    crate::error::quote(o)
                ),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledMiddleware::GrpcWeb(Box::new(CompiledGrpcWeb {
        any_origin: g.allow_origins.iter().any(|o| o == "*"),
        origins: g.allow_origins.clone(),
    })))
}
