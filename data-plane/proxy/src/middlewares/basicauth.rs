//! `basicAuth`: `Authorization: Basic …` checked against the compiled users; a failure is
//! answered `401` with `WWW-Authenticate: Basic realm="…"` (Traefik's `go-http-auth`
//! answer); a success sets `headerField` to the user and, with `removeHeader`, drops
//! `Authorization` before forwarding.
//!
//! Verification runs on the connection's task: a bcrypt check costs what its cost factor says
//! (about a millisecond at cost 5, tens at cost 10 and more), as in Traefik.

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use switchyard_config::middlewares::basicauth::CompiledBasicAuth;

use super::MwRequest;
use crate::body::ProxyBody;

/// Go's `Request.BasicAuth`.
fn credentials(req: &MwRequest<'_>) -> Option<(String, String)> {
    let v = req.parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Request phase.
pub(crate) fn on_request(
    a: &CompiledBasicAuth,
    req: &mut MwRequest<'_>,
) -> Option<Response<ProxyBody>> {
    let user = match credentials(req) {
        Some((user, password)) if a.check(&user, &password) => user,
        _ => {
            let mut resp =
                Response::new(ProxyBody::full(Bytes::from_static(b"401 Unauthorized\n")));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            resp.headers_mut()
                .insert(WWW_AUTHENTICATE, a.challenge.clone());
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
