//! `encodedCharacters` (Traefik v3.7 middleware): 400 for a request path holding a denied
//! percent-encoded `/ \ NUL ; % ? #`. Unlike the entry-point option of the same name, every
//! character is denied unless its `allowEncoded*` option is `true`.

use super::{CompiledMiddleware, FieldErrors};
use crate::model::EncodedCharactersMw;
use crate::paths::EncodedCharacters;

/// Compile: the allowed set.
pub fn compile(e: &EncodedCharactersMw) -> Result<CompiledMiddleware, FieldErrors> {
    let on = |b: Option<bool>| b.unwrap_or(false);
    Ok(CompiledMiddleware::EncodedCharacters(EncodedCharacters {
        allow_encoded_slash: on(e.allow_encoded_slash),
        allow_encoded_back_slash: on(e.allow_encoded_back_slash),
        allow_encoded_null_character: on(e.allow_encoded_null_character),
        allow_encoded_semicolon: on(e.allow_encoded_semicolon),
        allow_encoded_percent: on(e.allow_encoded_percent),
        allow_encoded_question_mark: on(e.allow_encoded_question_mark),
        allow_encoded_hash: on(e.allow_encoded_hash),
    }))
}
