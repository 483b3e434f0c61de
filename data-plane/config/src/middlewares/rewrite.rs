//! Path rewriting middlewares: `addPrefix`, `stripPrefix`, `stripPrefixRegex`, `replacePath`,
//! `replacePathRegex`. Their path options are checked by [`crate::validate`] (leading `/`,
//! allowed characters); compilation builds the regexps.

use super::{done, regex, CompiledMiddleware, FieldErrors};
use crate::model::Middleware;

/// Compile a rewrite middleware (`m` is one of the five kinds).
pub(crate) fn compile(m: &Middleware) -> Result<CompiledMiddleware, FieldErrors> {
    let mut errs = FieldErrors::new();
    let out = match m {
        Middleware::AddPrefix(a) => Some(CompiledMiddleware::AddPrefix(a.prefix.clone())),
        Middleware::StripPrefix(s) => Some(CompiledMiddleware::StripPrefix {
            prefixes: s.prefixes.clone(),
            headers: s
                .prefixes
                .iter()
                .map(|p| http::HeaderValue::from_str(p.trim()).ok())
                .collect(),
            force_slash: s.force_slash.unwrap_or(false),
        }),
        Middleware::StripPrefixRegex(s) => {
            let res: Vec<_> = s
                .regex
                .iter()
                .enumerate()
                .filter_map(|(i, r)| regex(&format!("stripPrefixRegex.regex[{i}]"), r, &mut errs))
                .collect();
            Some(CompiledMiddleware::StripPrefixRegex(res))
        }
        Middleware::ReplacePath(r) => Some(CompiledMiddleware::ReplacePath(r.path.clone())),
        Middleware::ReplacePathRegex(r) => regex("replacePathRegex.regex", &r.regex, &mut errs)
            .map(|regex| CompiledMiddleware::ReplacePathRegex {
                regex,
                replacement: r.replacement.clone(),
            }),
        _ => None,
    };
    done(out, errs)
}
