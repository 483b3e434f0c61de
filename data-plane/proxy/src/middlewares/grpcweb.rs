//! `grpcWeb` (Traefik's `grpcweb`: the `traefik/grpc-web` wrapper with rs/cors 1.7):
//!
//! * a CORS preflight for gRPC-Web (`OPTIONS` with `Access-Control-Request-Method` and
//!   `x-grpc-web` in `Access-Control-Request-Headers`) is answered 200 by the proxy: `Vary`
//!   (`Origin`, `Access-Control-Request-Method`, `Access-Control-Request-Headers`), and for
//!   an origin in `allowOrigins` (or `*`) and a `GET`/`POST`/`HEAD` method,
//!   `Access-Control-Allow-Origin` (the origin), `-Allow-Methods`, `-Allow-Headers` (the
//!   requested ones, canonicalised), `-Allow-Credentials: true`, `-Max-Age: 600`;
//! * a gRPC-Web request (`POST`, `Content-Type: application/grpc-web…`) goes to the service
//!   as gRPC: `application/grpc-web` (or `application/grpc-web-text`, whose base64 body is
//!   decoded, up to 8 MiB: 413 above) becomes `application/grpc` in `Content-Type`, `Content-Length` is dropped (the
//!   service must be HTTP/2: `h2c://` or `https://`);
//! * its response goes back as gRPC-Web: `Content-Type` `application/grpc…` →
//!   `application/grpc-web…` (`-text` for text requests, whose body is then base64, one
//!   padded piece per frame), `Trailer` dropped, `Access-Control-Expose-Headers` listing the
//!   response's headers and `grpc-status, grpc-message`, `Vary: Origin` and, for an allowed
//!   origin, `Access-Control-Allow-Origin` and `-Allow-Credentials: true`; the trailers
//!   (lower-cased, sorted, `name: value\r\n`, minus names already sent as headers) become a
//!   last message flagged `0x80`.
//!
//! Other requests pass untouched.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN, VARY,
};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame};
use switchyard_config::middlewares::grpcweb::CompiledGrpcWeb;

use super::{MwRequest, ResponseCtx};
use crate::body::{ProxyBody, UpBody};

/// What the response phase needs (recorded by the request phase).
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The middleware's index.
    pub at: usize,
    /// Text mode (`application/grpc-web-text`).
    pub text: bool,
    /// The request's origin when CORS allows it.
    pub origin: Option<HeaderValue>,
}

const GRPC_WEB: &str = "application/grpc-web";
/// Largest text-mode request body decoded (base64 of gRPC's default 4 MiB message limit, and
/// some): bounded memory per request; 413 above.
const TEXT_LIMIT: u64 = 8 << 20;
const GRPC_WEB_TEXT: &str = "application/grpc-web-text";

/// Go's `http.CanonicalHeaderKey`.
fn canonical(name: &str) -> String {
    let mut up = true;
    name.chars()
        .map(|c| {
            let o = if up {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            up = c == '-';
            o
        })
        .collect()
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Request phase: the preflight answer, or the request turned into gRPC.
pub(crate) async fn on_request(
    g: &CompiledGrpcWeb,
    i: usize,
    req: &mut MwRequest<'_>,
) -> Option<Response<ProxyBody>> {
    let h = &req.parts.headers;
    let origin = h
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let acrh = h
        .get("access-control-request-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let acrm = h
        .get("access-control-request-method")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if req.parts.method == Method::OPTIONS && acrh.contains("x-grpc-web") && !acrm.is_empty() {
        let mut resp = Response::new(ProxyBody::full(Bytes::new()));
        let rh = resp.headers_mut();
        for v in [
            "Origin",
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers",
        ] {
            rh.append(VARY, HeaderValue::from_static(v));
        }
        let method = acrm.to_ascii_uppercase();
        if !origin.is_empty()
            && g.allows(&origin)
            && matches!(method.as_str(), "GET" | "POST" | "HEAD")
        {
            rh.insert("access-control-allow-origin", hv(&origin));
            rh.insert("access-control-allow-methods", hv(&method));
            let requested: Vec<String> = acrh
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(canonical)
                .collect();
            if !requested.is_empty() {
                rh.insert("access-control-allow-headers", hv(&requested.join(", ")));
            }
            rh.insert(
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            );
            rh.insert("access-control-max-age", HeaderValue::from_static("600"));
        }
        *resp.status_mut() = StatusCode::OK;
        return Some(resp);
    }
    let ct = h
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if req.parts.method != Method::POST || !ct.starts_with(GRPC_WEB) {
        return None;
    }
    let text = ct.starts_with(GRPC_WEB_TEXT);
    let from = if text { GRPC_WEB_TEXT } else { GRPC_WEB };
    req.parts
        .headers
        .insert(CONTENT_TYPE, hv(&ct.replacen(from, "application/grpc", 1)));
    req.parts.headers.remove(CONTENT_LENGTH);
    if text {
        let body = std::mem::replace(&mut req.body, UpBody::empty());
        let raw = match super::forwardauth::read_limited(body, Some(TEXT_LIMIT)).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(())) => return Some(status(StatusCode::PAYLOAD_TOO_LARGE)),
            Err(()) => return Some(status(StatusCode::BAD_REQUEST)),
        };
        let compact: Vec<u8> = raw
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        match decode_padded_pieces(&compact) {
            Some(d) => req.body = UpBody::Full((!d.is_empty()).then(|| Bytes::from(d))),
            None => return Some(status(StatusCode::BAD_REQUEST)),
        }
    }
    let allowed = (!origin.is_empty() && g.allows(&origin)).then(|| hv(&origin));
    req.ctx.grpc_web = Some(Seen {
        at: i,
        text,
        origin: allowed,
    });
    None
}

fn status(s: StatusCode) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(Bytes::new()));
    *r.status_mut() = s;
    r
}

/// Base64 made of padded pieces (the gRPC-Web text format allows several).
fn decode_padded_pieces(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        // A piece ends after its padding, or at the end.
        let mut end = rest.len();
        if let Some(p) = rest.iter().position(|&c| c == b'=') {
            end = p;
            while end < rest.len() && rest[end] == b'=' {
                end += 1;
            }
        }
        let piece = &rest[..end];
        out.extend(
            base64::engine::general_purpose::STANDARD
                .decode(piece)
                .ok()?,
        );
        rest = &rest[end..];
    }
    Some(out)
}

/// Response phase of middleware `i`.
pub(crate) fn on_response(i: usize, ctx: &ResponseCtx, resp: &mut Response<ProxyBody>) {
    let Some(seen) = ctx.grpc_web.as_ref().filter(|s| s.at == i) else {
        return;
    };
    let h = resp.headers_mut();
    h.remove("trailer");
    h.remove(CONTENT_LENGTH);
    let web = if seen.text { GRPC_WEB_TEXT } else { GRPC_WEB };
    let cts: Vec<HeaderValue> = h
        .get_all(CONTENT_TYPE)
        .iter()
        .map(|v| hv(&String::from_utf8_lossy(v.as_bytes()).replacen("application/grpc", web, 1)))
        .collect();
    h.remove(CONTENT_TYPE);
    for v in cts {
        h.append(CONTENT_TYPE, v);
    }
    h.append(VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = &seen.origin {
        h.insert("access-control-allow-origin", o.clone());
        h.insert(
            "access-control-allow-credentials",
            HeaderValue::from_static("true"),
        );
    }
    let mut keys: Vec<String> = Vec::new();
    for k in h.keys() {
        let c = canonical(k.as_str());
        if !keys.contains(&c) {
            keys.push(c);
        }
    }
    keys.push("grpc-status".into());
    keys.push("grpc-message".into());
    h.insert("access-control-expose-headers", hv(&keys.join(", ")));
    let sent: Vec<HeaderName> = h.keys().cloned().collect();
    let body = std::mem::replace(resp.body_mut(), ProxyBody::full(Bytes::new()));
    *resp.body_mut() = ProxyBody::grpc_web(WebBody {
        src: body,
        sent,
        text: seen.text,
        done: false,
    });
}

/// A gRPC response body as gRPC-Web.
pub(crate) struct WebBody {
    src: ProxyBody,
    /// Header names already sent (not repeated in the trailer message).
    sent: Vec<HeaderName>,
    text: bool,
    done: bool,
}

/// The trailer message: `0x80`, length, `name: value\r\n` lines (lower case, sorted).
pub(crate) fn trailer_message(t: &HeaderMap, skip: &[HeaderName]) -> Option<Bytes> {
    let mut lines: Vec<(String, String)> = t
        .iter()
        .filter(|(k, _)| !skip.contains(k) && k.as_str() != "trailer")
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).replace(['\r', '\n'], " ");
            (k.as_str().to_string(), v.trim().to_string())
        })
        .collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::new();
    for (k, v) in lines {
        text.push_str(&k);
        text.push_str(": ");
        text.push_str(&v);
        text.push_str("\r\n");
    }
    if text.is_empty() {
        return None;
    }
    let mut b = BytesMut::with_capacity(5 + text.len());
    b.put_u8(0x80);
    b.put_u32(text.len() as u32);
    b.put_slice(text.as_bytes());
    Some(b.freeze())
}

impl WebBody {
    fn out(&self, d: Bytes) -> Bytes {
        if self.text {
            Bytes::from(base64::engine::general_purpose::STANDARD.encode(&d))
        } else {
            d
        }
    }

    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.src).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(f))) => match f.into_data() {
                    Ok(d) if d.is_empty() => continue,
                    Ok(d) => return Poll::Ready(Some(Ok(Frame::data(self.out(d))))),
                    Err(f) => {
                        if let Ok(t) = f.into_trailers() {
                            self.done = true;
                            if let Some(m) = trailer_message(&t, &self.sent) {
                                return Poll::Ready(Some(Ok(Frame::data(self.out(m)))));
                            }
                            return Poll::Ready(None);
                        }
                    }
                },
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn trailers_become_the_last_message() {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        t.insert("grpc-message", HeaderValue::from_static("ok"));
        t.insert("x-sent", HeaderValue::from_static("1"));
        let m = trailer_message(&t, &[HeaderName::from_static("x-sent")]).unwrap();
        let text = b"grpc-message: ok\r\ngrpc-status: 0\r\n";
        assert_eq!(m[0], 0x80);
        assert_eq!(&m[1..5], &(text.len() as u32).to_be_bytes());
        assert_eq!(&m[5..], text);
        assert!(trailer_message(&HeaderMap::new(), &[]).is_none());
    }

    #[test]
    fn text_pieces() {
        assert_eq!(decode_padded_pieces(b"AAAAAAA=AAAAAAI=").unwrap().len(), 10);
        assert!(decode_padded_pieces(b"AAAAAAJ4eQ").is_none());
        assert_eq!(canonical("x-grpc-web"), "X-Grpc-Web");
    }
}
