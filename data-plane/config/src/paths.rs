//! Request-path hygiene, as a Traefik v3 entry point and its path-rewriting middlewares do it.
//!
//! An entry point turns the escaped request path into the path that is routed and forwarded
//! ([`entrypoint_path`]), in Traefik's order (`pkg/server/server_entrypoint_tcp.go`):
//!
//! 1. **normalise** ([`normalize_escapes`], Traefik's `normalizePath`, always on): `%XX` of an
//!    unreserved character (`A-Z a-z 0-9 - . _ ~`, RFC 3986 §2.3) is decoded and every other
//!    `%xx` is upper-cased, so `/%2e%2e/` *is* `/../` from here on; a `%` not followed by two
//!    hex digits is malformed (400);
//! 2. **sanitise** ([`clean`], `sanitizePath`, on by default): Go's `URL.JoinPath()` — `path.Clean`
//!    on the escaped path (`.` and `..` segments resolved, `..` never climbing above the root,
//!    duplicate slashes merged) with a trailing slash kept. `%2F` is not a separator, so
//!    `/a%2F..%2Fb` is one segment and stays as it is (deny it with `allowEncodedSlash=false`).
//!
//! Once a router matched, the entry point's `encodedCharacters` ([`EncodedCharacters`]) refuse
//! (400) a path holding a denied `%2F %5C %00 %3B %25 %3F %23`; all are allowed by default
//! (Traefik ≥ v3.6.?: the v3.6.4 deny-by-default was reverted).
//!
//! Rewriting middlewares must not bring back what the entry point removed ([`check_rewrite`]):
//! `stripPrefix`, `stripPrefixRegex` and `replacePathRegex` answer 400 when their result is not
//! equal to its cleaned form (Traefik's check), and `replacePath` and `addPrefix` (which Traefik
//! does not check) answer 400 when their result has a `.` or `..` segment. Both checks look at
//! the normalised result, so an encoded `%2e%2e` produced by a replacement counts as `..`
//! (Traefik would forward it).
//!
//! Everything here is pure and allocation-free when the path is already clean (the common
//! case): the functions return `Cow::Borrowed`.

use std::borrow::Cow;

/// Why a request path is refused (the proxy answers 400 Bad Request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding in the request path")]
    MalformedEscape,
    /// A percent-encoded character the entry point's `encodedCharacters` deny.
    #[error("the request path contains {sequence}, denied by encodedCharacters.{option}=false")]
    EncodedCharacter {
        /// The sequence found, e.g. `%2F`.
        sequence: &'static str,
        /// The Traefik option that allows it, e.g. `allowEncodedSlash`.
        option: &'static str,
    },
    /// A rewriting middleware produced a path with dot segments (or, for the checks Traefik
    /// does, any path that cleaning would change).
    #[error("the rewritten path {0:?} has dot segments or empty segments")]
    UncleanRewrite(String),
}

/// The entry point's path options (Traefik's `entryPoints.NAME.http.sanitizePath` and
/// `entryPoints.NAME.http.encodedCharacters`). Default: sanitise, allow every encoded character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    /// `sanitizePath` (default `true`).
    pub sanitize: bool,
    /// `encodedCharacters.allow*` (default: all allowed).
    pub encoded: EncodedCharacters,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions {
            sanitize: true,
            encoded: EncodedCharacters::default(),
        }
    }
}

/// Traefik's `http.encodedCharacters`: which percent-encoded characters the request path may
/// hold. Default: all allowed (as Traefik v3.6.x/v3.7 after the revert of v3.6.4's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedCharacters {
    /// `allowEncodedSlash`: `%2F`.
    pub allow_encoded_slash: bool,
    /// `allowEncodedBackSlash`: `%5C`.
    pub allow_encoded_back_slash: bool,
    /// `allowEncodedNullCharacter`: `%00`.
    pub allow_encoded_null_character: bool,
    /// `allowEncodedSemicolon`: `%3B`.
    pub allow_encoded_semicolon: bool,
    /// `allowEncodedPercent`: `%25`.
    pub allow_encoded_percent: bool,
    /// `allowEncodedQuestionMark`: `%3F`.
    pub allow_encoded_question_mark: bool,
    /// `allowEncodedHash`: `%23`.
    pub allow_encoded_hash: bool,
}

impl Default for EncodedCharacters {
    fn default() -> Self {
        EncodedCharacters {
            allow_encoded_slash: true,
            allow_encoded_back_slash: true,
            allow_encoded_null_character: true,
            allow_encoded_semicolon: true,
            allow_encoded_percent: true,
            allow_encoded_question_mark: true,
            allow_encoded_hash: true,
        }
    }
}

/// (option name, decoded byte, upper-case sequence) of every `encodedCharacters` option.
const ENCODED_OPTIONS: [(&str, u8, &str); 7] = [
    ("allowEncodedSlash", b'/', "%2F"),
    ("allowEncodedBackSlash", b'\\', "%5C"),
    ("allowEncodedNullCharacter", 0, "%00"),
    ("allowEncodedSemicolon", b';', "%3B"),
    ("allowEncodedPercent", b'%', "%25"),
    ("allowEncodedQuestionMark", b'?', "%3F"),
    ("allowEncodedHash", b'#', "%23"),
];

impl EncodedCharacters {
    /// The Traefik option names, in Traefik's order.
    pub const OPTIONS: [&'static str; 7] = [
        "allowEncodedSlash",
        "allowEncodedBackSlash",
        "allowEncodedNullCharacter",
        "allowEncodedSemicolon",
        "allowEncodedPercent",
        "allowEncodedQuestionMark",
        "allowEncodedHash",
    ];

    fn flag(&mut self, option: &str) -> Option<&mut bool> {
        Some(match option {
            "allowEncodedSlash" => &mut self.allow_encoded_slash,
            "allowEncodedBackSlash" => &mut self.allow_encoded_back_slash,
            "allowEncodedNullCharacter" => &mut self.allow_encoded_null_character,
            "allowEncodedSemicolon" => &mut self.allow_encoded_semicolon,
            "allowEncodedPercent" => &mut self.allow_encoded_percent,
            "allowEncodedQuestionMark" => &mut self.allow_encoded_question_mark,
            "allowEncodedHash" => &mut self.allow_encoded_hash,
            _ => return None,
        })
    }

    fn allows(&self, byte: u8) -> bool {
        match byte {
            b'/' => self.allow_encoded_slash,
            b'\\' => self.allow_encoded_back_slash,
            0 => self.allow_encoded_null_character,
            b';' => self.allow_encoded_semicolon,
            b'%' => self.allow_encoded_percent,
            b'?' => self.allow_encoded_question_mark,
            b'#' => self.allow_encoded_hash,
            _ => true,
        }
    }

    /// Whether every encoded character is allowed (nothing to check).
    pub fn allows_all(&self) -> bool {
        *self == EncodedCharacters::default()
    }

    /// Apply a comma-separated list of `OPTION=BOOL` (Traefik's option names, e.g.
    /// `allowEncodedSlash=false,allowEncodedHash=false`) to `self`. Booleans are
    /// `true/false/1/0/yes/no` (any case).
    pub fn apply_list(&mut self, list: &str) -> Result<(), String> {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected OPTION=true|false"))?;
            let value = parse_bool(value.trim())
                .ok_or_else(|| format!("{item:?}: expected true or false"))?;
            let name = name.trim();
            let slot = self.flag(name).ok_or_else(|| {
                format!(
                    "unknown option {name:?} (expected one of {})",
                    Self::OPTIONS.join(", ")
                )
            })?;
            *slot = value;
        }
        Ok(())
    }

    /// The first denied encoded character of the escaped `path` (Traefik's
    /// `denyEncodedPathCharacters`; both hex cases). A malformed `%` is an error too.
    pub fn check(&self, path: &str) -> Result<(), PathError> {
        if self.allows_all() || !path.contains('%') {
            return Ok(());
        }
        let b = path.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                i += 1;
                continue;
            }
            let v = escape_at(b, i)?;
            if !self.allows(v) {
                let (option, _, sequence) = ENCODED_OPTIONS
                    .iter()
                    .copied()
                    .find(|(_, c, _)| *c == v)
                    .unwrap_or(("", v, ""));
                return Err(PathError::EncodedCharacter { sequence, option });
            }
            i += 3;
        }
        Ok(())
    }
}

/// `true/false/1/0/yes/no/on/off`, any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte of the `%XX` at `b[i]`.
fn escape_at(b: &[u8], i: usize) -> Result<u8, PathError> {
    match (
        b.get(i + 1).copied().and_then(hex),
        b.get(i + 2).copied().and_then(hex),
    ) {
        (Some(h), Some(l)) => Ok(h * 16 + l),
        _ => Err(PathError::MalformedEscape),
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Traefik's `normalizePath`: decode `%XX` of unreserved characters, upper-case the hex digits
/// of every other escape. Err on a `%` not followed by two hex digits.
pub fn normalize_escapes(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let b = raw.as_bytes();
    // Fast path: nothing to change unless an escape is unreserved or has lower-case hex.
    let mut changes = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let v = escape_at(b, i)?;
            if unreserved(v) || b[i + 1].is_ascii_lowercase() || b[i + 2].is_ascii_lowercase() {
                changes = true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    if !changes {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        out.push_str(&raw[last..i]);
        let v = escape_at(b, i)?;
        if unreserved(v) {
            out.push(char::from(v));
        } else {
            out.push('%');
            out.push(char::from(b[i + 1].to_ascii_uppercase()));
            out.push(char::from(b[i + 2].to_ascii_uppercase()));
        }
        i += 3;
        last = i;
    }
    out.push_str(&raw[last..]);
    Ok(Cow::Owned(out))
}

/// Whether a segment of `path` (between slashes) is `.` or `..`. Looks at the path as given
/// (normalise first to count `%2e`).
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

/// Whether [`clean`] would leave `path` unchanged: rooted, no `.`/`..` segment and no empty
/// segment but a trailing one.
fn is_clean(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Go's `path.Clean` of a rooted path.
fn go_clean_rooted(path: &[u8]) -> Vec<u8> {
    debug_assert!(path.first() == Some(&b'/'));
    let n = path.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    out.push(b'/');
    let mut r = 1;
    while r < n {
        if path[r] == b'/' || (path[r] == b'.' && (r + 1 == n || path[r + 1] == b'/')) {
            // An empty or `.` element.
            r += 1;
        } else if path[r] == b'.' && path[r + 1] == b'.' && (r + 2 == n || path[r + 2] == b'/') {
            r += 2;
            // Back up to the previous slash, never above the root.
            while out.len() > 1 {
                let c = out.pop();
                if c == Some(b'/') {
                    break;
                }
            }
        } else {
            if out.len() != 1 {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    out
}

/// Traefik's `sanitizePath` on an escaped path: Go's `URL.JoinPath()` — `path.Clean` (rooting
/// a relative path first and un-rooting the result, as JoinPath does), then a trailing slash
/// of the input is kept. `*` stays `*`. Never returns a path with a `.` or `..` segment or an
/// empty segment other than a trailing one.
pub fn clean(path: &str) -> Cow<'_, str> {
    if is_clean(path) {
        return Cow::Borrowed(path);
    }
    let rooted = path.starts_with('/');
    let cleaned = if rooted {
        go_clean_rooted(path.as_bytes())
    } else {
        let mut p = Vec::with_capacity(path.len() + 1);
        p.push(b'/');
        p.extend_from_slice(path.as_bytes());
        let mut c = go_clean_rooted(&p);
        c.remove(0);
        c
    };
    // Segments are copied whole between ASCII slashes, so the bytes stay UTF-8.
    let mut out = String::from_utf8(cleaned).unwrap_or_else(|e| {
        String::from_utf8_lossy(e.as_bytes()).into_owned() // unreachable
    });
    let last_ends_with_slash = if rooted {
        path.ends_with('/')
    } else {
        // JoinPath looks at "/" + path.
        path.is_empty() || path.ends_with('/')
    };
    if last_ends_with_slash && !out.ends_with('/') {
        out.push('/');
    }
    if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    }
}

/// The path an entry point routes and forwards: [`normalize_escapes`], then [`clean`] when
/// `sanitize` (Traefik's `sanitizePath`).
pub fn entrypoint_path(raw: &str, sanitize: bool) -> Result<Cow<'_, str>, PathError> {
    let normalized = normalize_escapes(raw)?;
    if !sanitize {
        return Ok(normalized);
    }
    Ok(match normalized {
        Cow::Borrowed(p) => clean(p),
        Cow::Owned(p) => match clean(&p) {
            Cow::Borrowed(_) => Cow::Owned(p),
            Cow::Owned(c) => Cow::Owned(c),
        },
    })
}

/// How strictly [`check_rewrite`] judges a rewritten path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteCheck {
    /// `stripPrefix`, `stripPrefixRegex`, `replacePathRegex` (Traefik's check): the result
    /// must equal its cleaned form (no dot segment, no duplicate slash).
    Clean,
    /// `addPrefix`, `replacePath`: the result must not have a `.` or `..` segment.
    NoDotSegments,
}

/// The check of a path a rewriting middleware produced (escaped form). An empty path passes
/// (it becomes `/`). Encoded dots count: the path is normalised first.
pub fn check_rewrite(path: &str, how: RewriteCheck) -> Result<(), PathError> {
    if path.is_empty() {
        return Ok(());
    }
    let n = normalize_escapes(path)?;
    let bad = match how {
        RewriteCheck::Clean => !is_clean(&n) && clean(&n) != n,
        RewriteCheck::NoDotSegments => has_dot_segment(&n),
    };
    if bad {
        Err(PathError::UncleanRewrite(path.to_string()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Go's `URL.JoinPath()` cases: Traefik's `TestSanitizePath` (pkg/server/
    /// server_entrypoint_tcp_test.go) and Go's `path.Clean` tests (src/path/path_test.go),
    /// with JoinPath's trailing-slash rule.
    #[test]
    fn clean_matches_go_join_path() {
        let cases = [
            // Traefik TestSanitizePath.
            ("/b", "/b"),
            ("/b/", "/b/"),
            ("/../../b/", "/b/"),
            ("/../../b", "/b"),
            ("/a/b/..", "/a"),
            ("/a/b/../", "/a/"),
            ("/a/../../b", "/b"),
            ("/..///b///", "/b/"),
            ("/a/../b", "/b"),
            ("/a/./b", "/a/b"),
            ("/a//b", "/a/b"),
            ("/a/../../b/", "/b/"),
            ("/a/../c/../b", "/b"),
            ("/a/../../../c/../b", "/b"),
            ("/a/../c/../../b", "/b"),
            ("/a/..//c/.././b", "/b"),
            ("/a/../.../b", "/.../b"),
            ("/a/../..b", "/..b"),
            ("/a/..../b", "/a/..../b"),
            ("/a/b//", "/a/b/"),
            ("/a/b///", "/a/b/"),
            // Go path.Clean (rooted).
            ("/", "/"),
            ("/abc", "/abc"),
            ("/abc/def", "/abc/def"),
            ("/a/b/c", "/a/b/c"),
            ("/abc/", "/abc/"),
            ("/abc/def/", "/abc/def/"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("//abc//", "/abc/"),
            ("/./", "/"),
            ("/abc/./def", "/abc/def"),
            ("/./abc/def", "/abc/def"),
            ("/abc/.", "/abc"),
            ("/abc/def/ghi/../jkl", "/abc/def/jkl"),
            ("/abc/def/../ghi/../jkl", "/abc/jkl"),
            ("/abc/def/..", "/abc"),
            ("/abc/def/../..", "/"),
            ("/abc/def/../../..", "/"),
            ("/abc/def/../../../ghi/jkl/../../../mno", "/mno"),
            ("/..", "/"),
            ("/../", "/"),
            ("/.", "/"),
            ("/abc/./../def", "/def"),
            ("/abc//./../def", "/def"),
            ("/abc/../../././../def", "/def"),
            // The cases.
            ("/api/../admin", "/admin"),
            ("/api/./admin", "/api/admin"),
            // Not separators, not dot segments.
            ("/a%2F..%2Fb", "/a%2F..%2Fb"),
            ("/a/.%2E/b", "/a/.%2E/b"),
            ("/a/..;/b", "/a/..;/b"),
            ("/a/.../b", "/a/.../b"),
            // Non-rooted (OPTIONS *), via JoinPath's "/"+path.
            ("*", "*"),
            ("a/../b", "b"),
            ("", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    /// Traefik's `TestNormalizePath`: unreserved escapes decoded, others upper-cased.
    #[test]
    fn normalize_matches_traefik() {
        let unreserved = [
            "%2E", "%2D", "%5F", "%7E", "%41", "%5A", "%61", "%7A", "%30", "%39",
        ];
        for e in unreserved {
            let v = u8::from_str_radix(&e[1..], 16).unwrap();
            assert_eq!(
                normalize_escapes(&format!("/foo{e}bar")).unwrap(),
                format!("/foo{}bar", char::from(v))
            );
            assert_eq!(
                normalize_escapes(&format!("/foo{}bar", e.to_lowercase())).unwrap(),
                format!("/foo{}bar", char::from(v))
            );
        }
        let reserved = [
            "%3A", "%2F", "%3F", "%23", "%5B", "%5D", "%40", "%21", "%24", "%26", "%27", "%28",
            "%29", "%2A", "%2B", "%2C", "%3B", "%3D", "%25", "%20", "%C3", "%00", "%5C",
        ];
        for e in reserved {
            assert_eq!(
                normalize_escapes(&format!("/foo{e}bar")).unwrap(),
                format!("/foo{e}bar")
            );
            assert_eq!(
                normalize_escapes(&format!("/foo{}bar", e.to_lowercase())).unwrap(),
                format!("/foo{e}bar")
            );
        }
        assert!(matches!(
            normalize_escapes("/a/b").unwrap(),
            Cow::Borrowed(_)
        ));
        for bad in ["/%", "/%2", "/%zz", "/a%2", "/%g0/x"] {
            assert_eq!(
                normalize_escapes(bad),
                Err(PathError::MalformedEscape),
                "{bad}"
            );
        }
    }

    /// Traefik's `TestPathOperations` (normalizePath + sanitizePath through a real entry
    /// point; the expected escaped path the handler sees).
    #[test]
    fn traefik_path_operations() {
        let cases = [
            ("/a/../b/%41%42%43//%2f/", "/b/ABC/%2F/"),
            ("/../../b/", "/b/"),
            ("/a/../../b/../c/", "/c/"),
            ("/a/../b/./c/../d/", "/b/d/"),
            ("/a/b/../", "/a/"),
            ("/a/%2E%2E/%2E%2E/b/", "/b/"),
            ("/a/%252E%252E/%252E%252E/b/", "/a/%252E%252E/%252E%252E/b/"),
            ("/foo%20bar", "/foo%20bar"),
            ("/foo%2Fbar", "/foo%2Fbar"),
            ("/foo%20%2Fbar", "/foo%20%2Fbar"),
            ("/a/..%2Fb/", "/a/..%2Fb/"),
        ];
        for (raw, want) in cases {
            assert_eq!(entrypoint_path(raw, true).unwrap(), want, "{raw}");
        }
        // TestNormalizePath.
        let unreserved_decoded =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
        let unreserved: String = unreserved_decoded
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        let reserved = "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%25";
        assert_eq!(
            normalize_escapes(&format!("/{unreserved}{reserved}%0a")).unwrap(),
            format!("/{unreserved_decoded}{reserved}%0A")
        );
        // TestNormalizePath_malformedPercentEncoding.
        assert_eq!(normalize_escapes("/%20").unwrap(), "/%20");
        assert_eq!(normalize_escapes("/%"), Err(PathError::MalformedEscape));
        assert_eq!(normalize_escapes("/%f"), Err(PathError::MalformedEscape));
    }

    /// Traefik's integration fixture `simple_sanitize_path.toml` and the requests.
    #[test]
    fn entrypoint_paths() {
        let cases = [
            ("/api/../admin", "/admin"),
            ("/api/%2e%2e/admin", "/admin"),
            ("/api/%2E%2E/admin", "/admin"),
            ("/api/.%2e/admin", "/admin"),
            ("/api/%2e/admin", "/api/admin"),
            ("/api/..%2Fadmin", "/api/..%2Fadmin"),
            ("/api/..%2fadmin", "/api/..%2Fadmin"),
            ("/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"),
            ("/api../etc/passwd", "/api../etc/passwd"),
            ("/b/%61dmin", "/b/admin"),
            ("//admin", "/admin"),
            ("/a/b/%2e%2e/", "/a/"),
        ];
        for (raw, want) in cases {
            assert_eq!(entrypoint_path(raw, true).unwrap(), want, "{raw}");
        }
        // sanitizePath=false: only the escapes are normalised.
        assert_eq!(
            entrypoint_path("/api/%2e%2e/admin", false).unwrap(),
            "/api/../admin"
        );
        assert_eq!(entrypoint_path("/%", true), Err(PathError::MalformedEscape));
    }

    /// Traefik's `TestDenyEncodedPathCharacters` style cases.
    #[test]
    fn encoded_characters() {
        let all = EncodedCharacters::default();
        assert!(all.allows_all());
        assert_eq!(all.check("/a%2Fb%00%25%3B%3F%23%5C"), Ok(()));
        let none = EncodedCharacters {
            allow_encoded_slash: false,
            allow_encoded_back_slash: false,
            allow_encoded_null_character: false,
            allow_encoded_semicolon: false,
            allow_encoded_percent: false,
            allow_encoded_question_mark: false,
            allow_encoded_hash: false,
        };
        let denied = [
            ("/a%2Fb", "%2F", "allowEncodedSlash"),
            ("/a%2fb", "%2F", "allowEncodedSlash"),
            ("/a%5Cb", "%5C", "allowEncodedBackSlash"),
            ("/a%5cb", "%5C", "allowEncodedBackSlash"),
            ("/a%00b", "%00", "allowEncodedNullCharacter"),
            ("/a%3Bb", "%3B", "allowEncodedSemicolon"),
            ("/a%3bb", "%3B", "allowEncodedSemicolon"),
            ("/a%25b", "%25", "allowEncodedPercent"),
            ("/a%3Fb", "%3F", "allowEncodedQuestionMark"),
            ("/a%3fb", "%3F", "allowEncodedQuestionMark"),
            ("/a%23b", "%23", "allowEncodedHash"),
        ];
        for (p, sequence, option) in denied {
            assert_eq!(
                none.check(p),
                Err(PathError::EncodedCharacter { sequence, option }),
                "{p}"
            );
            // Only that option set to false denies it.
            let mut one = EncodedCharacters::default();
            one.apply_list(&format!("{option}=false")).unwrap();
            assert!(one.check(p).is_err(), "{p} with {option}=false");
            for other in EncodedCharacters::OPTIONS.iter().filter(|o| **o != option) {
                let mut o = EncodedCharacters::default();
                o.apply_list(&format!("{other}=false")).unwrap();
                assert_eq!(o.check(p), Ok(()), "{p} with {other}=false");
            }
        }
        // Other escapes and a `%25` followed by hex are fine / judged by the first escape only.
        assert_eq!(none.check("/a%20b%41"), Ok(()));
        assert_eq!(
            none.check("/%252F"),
            Err(PathError::EncodedCharacter {
                sequence: "%25",
                option: "allowEncodedPercent"
            })
        );
        assert_eq!(none.check("/a%2"), Err(PathError::MalformedEscape));
    }

    #[test]
    fn encoded_options_parse() {
        let mut e = EncodedCharacters::default();
        e.apply_list("allowEncodedSlash=false, allowEncodedHash=FALSE,allowEncodedPercent=no")
            .unwrap();
        assert!(!e.allow_encoded_slash && !e.allow_encoded_hash && !e.allow_encoded_percent);
        assert!(e.allow_encoded_back_slash);
        e.apply_list("allowEncodedSlash=true").unwrap();
        assert!(e.allow_encoded_slash);
        assert!(e
            .apply_list("allowEncodedSlashes=false")
            .unwrap_err()
            .contains("unknown option \"allowEncodedSlashes\""));
        assert!(e.apply_list("allowEncodedSlash").is_err());
        assert!(e.apply_list("allowEncodedSlash=maybe").is_err());
    }

    /// Traefik's stripPrefix / stripPrefixRegex / replacePathRegex tests that expect 400, and
    /// the checks Switchyard adds for replacePath and addPrefix.
    #[test]
    fn rewrite_checks() {
        use RewriteCheck::*;
        for p in [
            "/../etc/passwd",
            "/..",
            "/.",
            "/a/../b",
            "/a/./b",
            "//b",
            "/a//b",
            "/%2e%2e/etc",
            "/%2E./etc",
            "/a/%2e",
            "..",
            "../x",
        ] {
            assert!(check_rewrite(p, Clean).is_err(), "Clean {p}");
        }
        for p in [
            "/",
            "",
            "/a",
            "/a/",
            "/a%2F..%2Fb",
            "/..a",
            "/a../b",
            "/...",
            "/a;/..b",
        ] {
            assert_eq!(check_rewrite(p, Clean), Ok(()), "Clean {p}");
        }
        for p in ["/../etc", "/a/.", "/a/%2E%2E/b", "/p/./x"] {
            assert!(check_rewrite(p, NoDotSegments).is_err(), "NoDot {p}");
        }
        for p in ["/p//x", "/p/", "/p/x", "/p/..x"] {
            assert_eq!(check_rewrite(p, NoDotSegments), Ok(()), "NoDot {p}");
        }
        assert_eq!(check_rewrite("/a%", Clean), Err(PathError::MalformedEscape));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// Paths made of the characters that matter: slashes, dots, escapes, letters.
        fn path() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just("/".to_string()),
                    Just(".".to_string()),
                    Just("..".to_string()),
                    Just("%2e".to_string()),
                    Just("%2E".to_string()),
                    Just("%2F".to_string()),
                    Just("%25".to_string()),
                    Just("%41".to_string()),
                    Just("a".to_string()),
                    Just("é".to_string()),
                    Just(";".to_string()),
                ],
                0..24,
            )
            .prop_map(|v| v.concat())
        }

        fn segments_ok(p: &str) -> bool {
            let rest = p.strip_prefix('/').unwrap_or(p);
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            rest.is_empty()
                || rest
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..")
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn clean_is_idempotent_and_dot_free(p in path()) {
                let rooted = format!("/{p}");
                let c = clean(&rooted).into_owned();
                prop_assert!(c.starts_with('/'));
                prop_assert!(!has_dot_segment(&c), "{rooted:?} -> {c:?}");
                prop_assert!(segments_ok(&c), "{rooted:?} -> {c:?}");
                prop_assert_eq!(clean(&c), c.as_str());
            }

            #[test]
            fn entrypoint_path_is_idempotent_and_dot_free(p in path()) {
                let rooted = format!("/{p}");
                let c = entrypoint_path(&rooted, true).unwrap().into_owned();
                prop_assert!(!has_dot_segment(&c), "{rooted:?} -> {c:?}");
                prop_assert!(segments_ok(&c), "{rooted:?} -> {c:?}");
                prop_assert_eq!(entrypoint_path(&c, true).unwrap(), c.as_str());
                // A clean result always passes the strictest rewrite check.
                prop_assert_eq!(check_rewrite(&c, RewriteCheck::Clean), Ok(()));
            }

            #[test]
            fn rewrite_check_refuses_every_dot_segment(p in path()) {
                let n = normalize_escapes(&p).unwrap().into_owned();
                if has_dot_segment(&n) {
                    prop_assert!(check_rewrite(&p, RewriteCheck::Clean).is_err());
                    prop_assert!(check_rewrite(&p, RewriteCheck::NoDotSegments).is_err());
                }
            }

            #[test]
            fn normalize_is_idempotent(p in path()) {
                let n = normalize_escapes(&p).unwrap().into_owned();
                prop_assert_eq!(normalize_escapes(&n).unwrap(), n.as_str());
            }

            #[test]
            fn no_panic_on_any_string(s in ".{0,40}") {
                let _ = entrypoint_path(&s, true);
                let _ = clean(&s);
                let _ = check_rewrite(&s, RewriteCheck::Clean);
                let _ = EncodedCharacters::default().check(&s);
            }
        }
    }
}
