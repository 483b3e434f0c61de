//! `contentType`: Traefik v3 never guesses a missing response `Content-Type`; this
//! middleware turns Go's sniffing (`http.DetectContentType` on the first 512 bytes) back on
//! for the routes that use it. `autoDetect: false` (deprecated) makes it a no-op.

use super::{CompiledMiddleware, FieldErrors};
use crate::model::ContentType;

/// Compile: `CompiledMiddleware::ContentType(sniff)`.
pub fn compile(c: &ContentType) -> Result<CompiledMiddleware, FieldErrors> {
    Ok(CompiledMiddleware::ContentType(
        c.auto_detect != Some(false),
    ))
}
