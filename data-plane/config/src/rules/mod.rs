//! The Traefik v3 HTTP rule language: parser, AST, compiled matcher and evaluation.
//!
//! ```text
//! rule    := or
//! or      := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!" unary | "(" or ")" | matcher
//! matcher := Name "(" string ( "," string )* [","] ")"
//! string  := `raw` | "go string literal"
//! ```
//!
//! Precedence follows Go (`!` > `&&` > `||`). Matcher names are accepted as declared
//! (`PathPrefix`), all lowercase, ALL UPPERCASE or Title case (`Pathprefix`), like Traefik.
//! Errors carry the 1-based column (character offset) of the offending token.

mod compiled;
mod parser;
mod request;

use std::fmt;

pub use compiled::{compile, rule_host_names, rule_host_names_with_wildcards, CompiledRule};
pub use parser::{parse, parse_with};
pub use request::{
    canonical_host, host_key, host_without_port, parse_query, routing_path, RequestView,
};

/// Maximum nesting of parentheses and negations in a rule.
pub const MAX_NESTING: usize = 64;

/// A rule error: a message and the 1-based column (character offset) of the offending token.
/// Display: `unknown matcher "Hots" at column 1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct RuleError {
    /// What is wrong.
    pub message: String,
    /// 1-based character column.
    pub column: usize,
}

impl RuleError {
    pub(crate) fn new(message: impl Into<String>, column: usize) -> Self {
        RuleError {
            message: message.into(),
            column,
        }
    }
}

/// The v3 matchers (`httpFuncs` in Traefik).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatcherKind {
    /// `Host(domain)`
    Host,
    /// `HostRegexp(re)`
    HostRegexp,
    /// `Path(path)`
    Path,
    /// `PathPrefix(prefix)`
    PathPrefix,
    /// `PathRegexp(re)`
    PathRegexp,
    /// `Method(method)`
    Method,
    /// `Header(key, value)`
    Header,
    /// `HeaderRegexp(key, re)`
    HeaderRegexp,
    /// `Query(key[, value])`
    Query,
    /// `QueryRegexp(key[, re])`
    QueryRegexp,
    /// `ClientIP(ip or cidr)`
    ClientIP,
}

impl MatcherKind {
    /// All matchers.
    pub const ALL: [MatcherKind; 11] = [
        MatcherKind::Host,
        MatcherKind::HostRegexp,
        MatcherKind::Path,
        MatcherKind::PathPrefix,
        MatcherKind::PathRegexp,
        MatcherKind::Method,
        MatcherKind::Header,
        MatcherKind::HeaderRegexp,
        MatcherKind::Query,
        MatcherKind::QueryRegexp,
        MatcherKind::ClientIP,
    ];

    /// The declared name, e.g. `"PathPrefix"`.
    pub fn name(&self) -> &'static str {
        match self {
            MatcherKind::Host => "Host",
            MatcherKind::HostRegexp => "HostRegexp",
            MatcherKind::Path => "Path",
            MatcherKind::PathPrefix => "PathPrefix",
            MatcherKind::PathRegexp => "PathRegexp",
            MatcherKind::Method => "Method",
            MatcherKind::Header => "Header",
            MatcherKind::HeaderRegexp => "HeaderRegexp",
            MatcherKind::Query => "Query",
            MatcherKind::QueryRegexp => "QueryRegexp",
            MatcherKind::ClientIP => "ClientIP",
        }
    }

    /// Look a matcher up by name: as declared, all lowercase, ALL UPPERCASE or Title case.
    pub fn from_name(s: &str) -> Option<MatcherKind> {
        MatcherKind::ALL
            .into_iter()
            .find(|k| name_variant_of(s, k.name()))
    }

    /// Minimum and maximum number of arguments.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            MatcherKind::Header | MatcherKind::HeaderRegexp => (2, 2),
            MatcherKind::Query | MatcherKind::QueryRegexp => (1, 2),
            _ => (1, 1),
        }
    }
}

impl fmt::Display for MatcherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule language's set of matchers: the HTTP one ([`MatcherKind`]) or the TCP one
/// ([`crate::tcp::TcpMatcherKind`]). The parser is shared.
pub trait Vocabulary: Copy + fmt::Debug + PartialEq + Eq {
    /// Look a matcher up by name; `Err` is the message (e.g. `unknown matcher "Hots"`).
    fn lookup(name: &str) -> Result<Self, String>;
    /// The declared name.
    fn name(&self) -> &'static str;
    /// Minimum and maximum number of arguments.
    fn arity(&self) -> (usize, usize);
}

impl Vocabulary for MatcherKind {
    fn lookup(name: &str) -> Result<Self, String> {
        MatcherKind::from_name(name).ok_or_else(|| format!("unknown matcher {name:?}"))
    }
    fn name(&self) -> &'static str {
        MatcherKind::name(self)
    }
    fn arity(&self) -> (usize, usize) {
        MatcherKind::arity(self)
    }
}

/// Whether `s` is `name` as declared, all lowercase, ALL UPPERCASE or Title case (Traefik's
/// accepted spellings of a matcher name).
pub(crate) fn name_variant_of(s: &str, n: &str) -> bool {
    if s == n || s == n.to_lowercase() || s == n.to_uppercase() {
        return true;
    }
    let mut title = String::with_capacity(n.len());
    for (i, c) in n.chars().enumerate() {
        if i == 0 {
            title.extend(c.to_uppercase());
        } else {
            title.extend(c.to_lowercase());
        }
    }
    s == title
}

/// One matcher call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher<K = MatcherKind> {
    /// Which matcher.
    pub kind: K,
    /// Its (unquoted) arguments.
    pub args: Vec<String>,
    /// 1-based column of the matcher name in the rule.
    pub column: usize,
}

impl<K: Vocabulary> fmt::Display for Matcher<K> {
    /// Canonical source form, e.g. ``Host(`a.com`)``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.kind.name())?;
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if a.contains('`') {
                write!(f, "{}", go_quote(a))?;
            } else {
                write!(f, "`{a}`")?;
            }
        }
        f.write_str(")")
    }
}

/// Quote a string as a Go double-quoted literal.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr<K = MatcherKind> {
    /// A matcher call.
    Matcher(Matcher<K>),
    /// `a && b`
    And(Box<Expr<K>>, Box<Expr<K>>),
    /// `a || b`
    Or(Box<Expr<K>>, Box<Expr<K>>),
    /// `!a`
    Not(Box<Expr<K>>),
}

impl<K> Expr<K> {
    /// Visit every matcher, left to right.
    pub fn matchers(&self) -> Vec<&Matcher<K>> {
        let mut out = Vec::new();
        fn walk<'e, K>(e: &'e Expr<K>, out: &mut Vec<&'e Matcher<K>>) {
            match e {
                Expr::Matcher(m) => out.push(m),
                Expr::And(a, b) | Expr::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) => walk(a, out),
            }
        }
        walk(self, &mut out);
        out
    }
}

impl<K: Vocabulary> fmt::Display for Expr<K> {
    /// Canonical source form with minimal parentheses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Matcher(m) => m.fmt(f),
            Expr::Or(a, b) => write!(f, "{a} || {b}"),
            Expr::And(a, b) => {
                for (i, side) in [a, b].into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(" && ")?;
                    }
                    if matches!(**side, Expr::Or(..)) {
                        write!(f, "({side})")?;
                    } else {
                        write!(f, "{side}")?;
                    }
                }
                Ok(())
            }
            Expr::Not(a) => {
                if matches!(**a, Expr::Matcher(_) | Expr::Not(_)) {
                    write!(f, "!{a}")
                } else {
                    write!(f, "!({a})")
                }
            }
        }
    }
}

/// Traefik's default priority: the length of the rule (here counted in characters).
pub fn default_priority(rule: &str) -> i64 {
    i64::try_from(rule.chars().count()).unwrap_or(i64::MAX)
}

/// Summarise a `regex` error on one line (the crate's syntax errors span several lines with a
/// caret diagram; keep only the `error: ...` part).
pub fn regex_error_summary(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: ").map(str::to_string))
            .unwrap_or_else(|| {
                s.lines()
                    .last()
                    .unwrap_or("syntax error")
                    .trim()
                    .to_string()
            }),
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled regexp exceeds the size limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// Compile a regexp with the limits used everywhere in Switchyard, returning a one-line error.
pub fn compile_regex(re: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(re).map_err(|e| regex_error_summary(&e))
}
