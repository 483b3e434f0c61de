//! Path rewriting middlewares, applied to the escaped path (`Uri::path`); a path produced by
//! a middleware has any character that is not allowed in a URI path percent-encoded (Go's
//! `EscapedPath`):
//!
//! * `addPrefix`: path = prefix + path.
//! * `stripPrefix`: the first configured prefix (in order) that the *decoded* path starts with
//!   is removed from the escaped path (a leading `/` is ensured; `forceSlash` trims one extra
//!   slash like Traefik); `X-Forwarded-Prefix` is added with the prefix.
//! * `stripPrefixRegex`: the first regexp whose first match is a prefix of the decoded path;
//!   that text is stripped and added as `X-Forwarded-Prefix`.
//! * `replacePath`: the escaped path goes to `X-Replaced-Path`, the path becomes `path`.
//! * `replacePathRegex`: when the regexp matches the escaped path and the replacement is
//!   not empty, `X-Replaced-Path` is set and the path becomes `regex.replace_all(path,
//!   replacement)` (`$1`, `${name}`); a result that does not unescape is a 400.
//!
//! No rewrite can bring back a dot segment the entry point removed
//! ([`switchyard_config::paths::check_rewrite`], 400): `stripPrefix`, `stripPrefixRegex` and
//! `replacePathRegex` refuse a result that cleaning would change (Traefik's check, so
//! `/api../x` stripped of `/api` is refused rather than sent as `/../x`), `addPrefix` and
//! `replacePath` one with a `.` or `..` segment; `%2e` counts as a dot.

use std::borrow::Cow;

use http::header::HeaderValue;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::Uri;
use switchyard_config::paths::{check_rewrite, RewriteCheck};

use super::{Mw, MwRequest};
use crate::errors::ErrorKind;
use crate::forwarded::{X_FORWARDED_PREFIX, X_REPLACED_PATH};

/// Request phase of a rewrite middleware (other kinds: no effect).
pub(crate) fn on_request(m: &Mw, req: &mut MwRequest<'_>) -> Result<(), ErrorKind> {
    match m {
        Mw::AddPrefix(prefix) => {
            let p = format!("{prefix}{}", req.parts.uri.path());
            let p = ensure_leading_slash(&p);
            rewrite_ok(&p, RewriteCheck::NoDotSegments)?;
            set_path(req.parts, p)?;
        }
        Mw::StripPrefix {
            prefixes,
            headers,
            force_slash,
        } => {
            let raw = req.parts.uri.path();
            for (k, prefix) in prefixes.iter().enumerate() {
                if let Some(at) = strip_decoded_prefix(raw, prefix) {
                    let rest = &raw[at..];
                    let new = if *force_slash {
                        format!("/{}", rest.strip_prefix('/').unwrap_or(rest))
                    } else {
                        ensure_leading_slash(rest).into_owned()
                    };
                    let header = headers
                        .get(k)
                        .cloned()
                        .flatten()
                        .ok_or(ErrorKind::BadRequest)?;
                    rewrite_ok(&new, RewriteCheck::Clean)?;
                    set_path(req.parts, Cow::Owned(new))?;
                    req.parts.headers.append(X_FORWARDED_PREFIX.clone(), header);
                    break;
                }
            }
        }
        Mw::StripPrefixRegex(regexes) => {
            let raw = req.parts.uri.path().to_string();
            let decoded = decode_path(&raw);
            for re in regexes {
                let Some(m) = re.find(&decoded) else { continue };
                let prefix = m.as_str();
                if prefix.is_empty() || !decoded.starts_with(prefix) {
                    continue;
                }
                let Some(at) = strip_decoded_prefix(&raw, prefix) else {
                    continue;
                };
                let header = HeaderValue::from_str(prefix).map_err(|_| ErrorKind::BadRequest)?;
                let new = ensure_leading_slash(&raw[at..]);
                rewrite_ok(&new, RewriteCheck::Clean)?;
                set_path(req.parts, new)?;
                req.parts.headers.append(X_FORWARDED_PREFIX.clone(), header);
                break;
            }
        }
        Mw::ReplacePath(path) => {
            let old =
                HeaderValue::from_str(req.parts.uri.path()).map_err(|_| ErrorKind::BadRequest)?;
            rewrite_ok(path, RewriteCheck::NoDotSegments)?;
            set_path(req.parts, Cow::Borrowed(path))?;
            req.parts.headers.append(X_REPLACED_PATH.clone(), old);
        }
        Mw::ReplacePathRegex { regex, replacement } => {
            let current = req.parts.uri.path();
            if !replacement.is_empty() && regex.is_match(current) {
                let new = regex
                    .replace_all(current, replacement.as_str())
                    .into_owned();
                if path_unescape_fails(&new) {
                    return Err(ErrorKind::BadRequest);
                }
                let old = HeaderValue::from_str(current).map_err(|_| ErrorKind::BadRequest)?;
                rewrite_ok(&new, RewriteCheck::Clean)?;
                set_path(req.parts, Cow::Owned(new))?;
                req.parts.headers.append(X_REPLACED_PATH.clone(), old);
            }
        }
        _ => {}
    }
    Ok(())
}

fn ensure_leading_slash(s: &str) -> Cow<'_, str> {
    if s.is_empty() || s.starts_with('/') {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("/{s}"))
    }
}

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Walk the escaped path `raw` decoding `%XX` as we go, and when the decoded bytes start with
/// `prefix`, return the index in `raw` where the rest begins.
pub(crate) fn strip_decoded_prefix(raw: &str, prefix: &str) -> Option<usize> {
    let r = raw.as_bytes();
    let p = prefix.as_bytes();
    let (mut i, mut j) = (0, 0);
    while j < p.len() {
        let (b, step) = match r.get(i)? {
            b'%' => match (
                r.get(i + 1).and_then(|&b| hexval(b)),
                r.get(i + 2).and_then(|&b| hexval(b)),
            ) {
                (Some(h), Some(l)) => (h * 16 + l, 3),
                _ => (b'%', 1),
            },
            &b => (b, 1),
        };
        if b != p[j] {
            return None;
        }
        i += step;
        j += 1;
    }
    // Never split inside a UTF-8 sequence of the raw path.
    raw.is_char_boundary(i).then_some(i)
}

/// Go's `URL.Path`: the fully decoded path (invalid escapes kept, invalid UTF-8 replaced).
pub(crate) fn decode_path(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&x| hexval(x)),
                b.get(i + 2).and_then(|&x| hexval(x)),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `url.PathUnescape` failing: a `%` not followed by two hex digits.
pub(crate) fn path_unescape_fails(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !(b.get(i + 1).is_some_and(|&x| hexval(x).is_some())
                && b.get(i + 2).is_some_and(|&x| hexval(x).is_some()))
    })
}

/// Percent-encode the bytes that may not appear in a URI path (RFC 3986 `pchar`, `/`, and an
/// existing `%`).
pub(crate) fn escape_path(s: &str) -> Cow<'_, str> {
    fn ok(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
    }
    if s.bytes().all(ok) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if ok(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 0xf) as usize]));
        }
    }
    Cow::Owned(out)
}

/// The dot-segment check of a path a rewriting middleware produced
/// ([`switchyard_config::paths::check_rewrite`]): 400 when it fails.
fn rewrite_ok(path: &str, how: RewriteCheck) -> Result<(), ErrorKind> {
    check_rewrite(path, how).map_err(|_| ErrorKind::BadRequest)
}

/// Replace the path of the request URI, keeping the query.
pub(crate) fn set_path(parts: &mut Parts, path: Cow<'_, str>) -> Result<(), ErrorKind> {
    let path = if path.is_empty() {
        Cow::Borrowed("/")
    } else {
        path
    };
    let escaped = match escape_path(&path) {
        Cow::Owned(e) => Some(e),
        Cow::Borrowed(_) => None,
    };
    // Nothing to escape: the path as given (no copy when it is already owned).
    let path = escaped.unwrap_or_else(|| path.into_owned());
    let pq = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let pq = PathAndQuery::try_from(pq).map_err(|_| ErrorKind::BadRequest)?;
    let mut up = std::mem::take(&mut parts.uri).into_parts();
    up.path_and_query = Some(pq);
    parts.uri = Uri::from_parts(up).map_err(|_| ErrorKind::BadRequest)?;
    Ok(())
}
