//! `redirectScheme` and `redirectRegex`: a regexp and a replacement on the request URL
//! (`redirectScheme` is Traefik's fixed pattern with the scheme and port as replacement).

use super::{done, regex, CompiledMiddleware, FieldErrors};
use crate::duration::StrOrInt;
use crate::model::{RedirectRegex, RedirectScheme};

/// Which URL the regexp sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// Traefik's `clientRequestURL` (honours `X-Forwarded-Proto`).
    Scheme,
    /// Traefik's `rawURL`.
    Regex,
}

/// The pattern Traefik's redirectScheme rewrites with.
const SCHEME_URI_PATTERN: &str =
    r"^(https?://)?(\[[0-9A-Za-z_:.]+\]|[0-9A-Za-z_._-]+)?(:\d+)?(.*)$";

/// Compile `redirectScheme`.
pub(crate) fn compile_scheme(r: &RedirectScheme) -> Result<CompiledMiddleware, FieldErrors> {
    let mut errs = FieldErrors::new();
    let port = match &r.port {
        None => String::new(),
        Some(StrOrInt::Int(p)) => p.to_string(),
        Some(StrOrInt::Str(s)) => s.clone(),
    };
    let default_port =
        (r.scheme == "http" && port == "80") || (r.scheme == "https" && port == "443");
    let port = if port.is_empty() || default_port {
        String::new()
    } else {
        format!(":{port}")
    };
    let out = regex("redirectScheme", SCHEME_URI_PATTERN, &mut errs).map(|regex| {
        CompiledMiddleware::Redirect {
            kind: RedirectKind::Scheme,
            regex,
            replacement: format!("{}://${{2}}{port}${{4}}", r.scheme),
            permanent: r.permanent.unwrap_or(false),
        }
    });
    done(out, errs)
}

/// Compile `redirectRegex`.
pub(crate) fn compile_regex(r: &RedirectRegex) -> Result<CompiledMiddleware, FieldErrors> {
    let mut errs = FieldErrors::new();
    let out = regex("redirectRegex.regex", &r.regex, &mut errs).map(|regex| {
        CompiledMiddleware::Redirect {
            kind: RedirectKind::Regex,
            regex,
            replacement: r.replacement.clone(),
            permanent: r.permanent.unwrap_or(false),
        }
    });
    done(out, errs)
}
