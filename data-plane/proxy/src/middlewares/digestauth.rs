//! `digestAuth`: `Authorization: Digest …` checked against the compiled users (see
//! [`switchyard_config::middlewares::digestauth`]); a failure is answered `401` with a
//! challenge carrying a fresh random nonce (`stale=true` when only the nonce was at fault),
//! as Traefik's `go-http-auth`; a success sets `headerField` to the user and, with
//! `removeHeader`, drops `Authorization` before forwarding.

use std::sync::OnceLock;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use switchyard_config::middlewares::digestauth::{Check, CompiledDigestAuth, DigestRequest};

use super::MwRequest;
use crate::body::ProxyBody;

/// Milliseconds since the first use (the nonce table's clock).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// go-http-auth's `RandomKey`: 12 random bytes, base64.
fn nonce() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 12]>())
}

/// Request phase.
pub(crate) fn on_request(
    a: &CompiledDigestAuth,
    req: &mut MwRequest<'_>,
) -> Option<Response<ProxyBody>> {
    let now = now_ms();
    let uri = &req.parts.uri;
    let request_uri = if uri.scheme().is_some() {
        uri.to_string()
    } else {
        uri.path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string())
    };
    let check = a.check(
        &DigestRequest {
            authorization: req
                .parts
                .headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            method: req.parts.method.as_str(),
            request_uri: &request_uri,
            path: uri.path(),
        },
        now,
    );
    let user = match check {
        Check::User(u) => u,
        Check::Refused { stale } => {
            let mut resp =
                Response::new(ProxyBody::full(Bytes::from_static(b"401 Unauthorized\n")));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            if let Some(ch) = a.challenge(&nonce(), stale, now) {
                resp.headers_mut().insert(WWW_AUTHENTICATE, ch);
            }
            return Some(resp);
        }
    };
    super::pass_user(
        &mut req.parts.headers,
        &user,
        a.header_field.as_ref(),
        a.remove_header,
    );
    None
}
