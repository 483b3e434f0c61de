//! Compiled rules: regexps compiled, hosts normalised and IP networks parsed once, evaluated
//! per request.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;

use super::request::{canonical_host_cow, parse_query, routing_path, RequestView};
use super::{compile_regex, parse, Expr, Matcher, MatcherKind, RuleError};

/// One matcher, compiled. Strings are boxed (no spare capacity; 16 bytes instead of 24).
#[derive(Debug, Clone)]
enum Pred {
    HostAny,
    HostExact(Box<str>),
    /// Suffix including the leading dot: `.example.com`.
    HostWildcard(Box<str>),
    HostRegexp(Regex),
    Path(Box<str>),
    PathPrefix(Box<str>),
    PathRegexp(Regex),
    Method(Box<str>),
    Header(Box<str>, Box<str>),
    HeaderRegexp(Box<str>, Regex),
    Query(Box<str>, Option<Box<str>>),
    QueryRegexp(Box<str>, Regex),
    ClientIP(IpNet),
}

/// The compiled tree: the shape of the parsed [`Expr`], one [`Pred`] per matcher. Leaves hold
/// their predicate inline (one allocation per child node, none per leaf).
#[derive(Debug, Clone)]
enum Node {
    Leaf(Pred),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
}

/// A rule compiled for evaluation. Cheap to evaluate, `Send + Sync`, cloneable.
///
/// Memory: a proxy holds one per router (100k routers and more), so it keeps only the rule
/// text and the evaluation tree. The parsed [`Expr`] and the canonical text of each matcher
/// (needed only by [`CompiledRule::expr`] and [`CompiledRule::explain`], never per request)
/// are derived again from the text when asked for: the tree has the shape of the `Expr`.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    rule: Box<str>,
    root: Node,
}

/// Parse and compile a rule, checking every matcher's values (regexps compile, paths start with
/// `/`, hosts are ASCII with a valid wildcard, ClientIP is an IP or CIDR, methods are tokens).
pub fn compile(rule: &str) -> Result<CompiledRule, RuleError> {
    let expr = parse(rule)?;
    let root = compile_expr(&expr)?;
    Ok(CompiledRule {
        rule: Box::from(rule),
        root,
    })
}

fn compile_expr(e: &Expr) -> Result<Node, RuleError> {
    Ok(match e {
        Expr::Matcher(m) => Node::Leaf(compile_matcher(m)?),
        Expr::And(a, b) => Node::And(Box::new(compile_expr(a)?), Box::new(compile_expr(b)?)),
        Expr::Or(a, b) => Node::Or(Box::new(compile_expr(a)?), Box::new(compile_expr(b)?)),
        Expr::Not(a) => Node::Not(Box::new(compile_expr(a)?)),
    })
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Normalise a Host rule value: lowercase, one trailing dot removed.
fn normalize_rule_host(h: &str) -> Box<str> {
    let mut h = h.to_ascii_lowercase();
    if h.len() > 1 && h.ends_with('.') {
        h.pop();
    }
    h.into_boxed_str()
}

fn compile_matcher(m: &Matcher) -> Result<Pred, RuleError> {
    let name = m.kind.name();
    let err = |msg: String| RuleError::new(format!("{name}: {msg}"), m.column);
    let arg = |i: usize| m.args.get(i).map(String::as_str).unwrap_or_default();
    let re = |s: &str| compile_regex(s).map_err(|e| err(format!("invalid regexp {s:?}: {e}")));
    Ok(match m.kind {
        MatcherKind::Host => {
            let h = arg(0);
            if !h.is_ascii() {
                return Err(err(format!(
                    "invalid value {h:?}: non-ASCII characters are not allowed (use punycode)"
                )));
            }
            if h == "*" {
                Pred::HostAny
            } else if h.contains('*') {
                match h.strip_prefix("*.") {
                    Some(rest) if !rest.is_empty() && !rest.contains('*') && rest != "." => {
                        Pred::HostWildcard(format!(".{}", normalize_rule_host(rest)).into())
                    }
                    _ => {
                        return Err(err(format!(
                            "invalid value {h:?}: \"*\" is only allowed as the whole first label (e.g. \"*.example.com\")"
                        )))
                    }
                }
            } else {
                Pred::HostExact(normalize_rule_host(h))
            }
        }
        MatcherKind::HostRegexp => Pred::HostRegexp(re(arg(0))?),
        MatcherKind::Path | MatcherKind::PathPrefix => {
            let p = arg(0);
            if !p.starts_with('/') {
                return Err(err(format!("path {p:?} must start with \"/\"")));
            }
            if m.kind == MatcherKind::Path {
                Pred::Path(p.into())
            } else {
                Pred::PathPrefix(p.into())
            }
        }
        MatcherKind::PathRegexp => Pred::PathRegexp(re(arg(0))?),
        MatcherKind::Method => {
            let meth = arg(0);
            if !meth.chars().all(is_tchar) {
                return Err(err(format!("invalid method {meth:?}")));
            }
            Pred::Method(meth.to_ascii_uppercase().into())
        }
        MatcherKind::Header => Pred::Header(arg(0).into(), arg(1).into()),
        MatcherKind::HeaderRegexp => Pred::HeaderRegexp(arg(0).into(), re(arg(1))?),
        MatcherKind::Query => Pred::Query(arg(0).into(), m.args.get(1).map(|v| v.as_str().into())),
        MatcherKind::QueryRegexp => match m.args.get(1) {
            Some(r) => Pred::QueryRegexp(arg(0).into(), re(r)?),
            None => Pred::Query(arg(0).into(), None),
        },
        MatcherKind::ClientIP => {
            let v = arg(0).trim();
            let net = if let Ok(ip) = v.parse::<IpAddr>() {
                let ip = unmap(ip);
                IpNet::from(ip)
            } else if let Ok(net) = v.parse::<IpNet>() {
                net
            } else {
                return Err(err(format!("invalid IP address or CIDR {:?}", arg(0))));
            };
            Pred::ClientIP(net)
        }
    })
}

/// IPv4-mapped IPv6 addresses are compared as IPv4 (like Go's `net.IP`).
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Per-request derived values, computed at most once per evaluation.
struct Ctx<'r, 'a> {
    req: &'r RequestView<'a>,
    /// The canonical host, borrowed from the request unless it had to be lowercased.
    host: OnceCell<Cow<'a, str>>,
    path: OnceCell<Option<Cow<'a, str>>>,
    query: OnceCell<Vec<(String, String)>>,
}

impl<'a> Ctx<'_, 'a> {
    fn host(&self) -> &str {
        self.host.get_or_init(|| canonical_host_cow(self.req.host))
    }

    fn path(&self) -> Option<&str> {
        self.path
            .get_or_init(|| routing_path(self.req.path).ok())
            .as_deref()
    }

    fn query(&self) -> &[(String, String)] {
        self.query
            .get_or_init(|| self.req.query.map(parse_query).unwrap_or_default())
    }

    fn header_values<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'a str> + 's {
        // Go moves the Host header out of the header map, so header matchers never see it.
        self.req
            .headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key) && !k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.trim_matches([' ', '\t']))
    }

    fn eval(&self, p: &Pred) -> bool {
        match p {
            Pred::HostAny => true,
            Pred::HostExact(h) => {
                let rh = self.host();
                if rh.is_empty() {
                    return false;
                }
                rh.strip_suffix('.').unwrap_or(rh) == &**h
            }
            Pred::HostWildcard(suffix) => {
                let rh = self.host();
                let rh = rh.strip_suffix('.').unwrap_or(rh);
                match rh.strip_suffix(&**suffix) {
                    Some(label) => !label.is_empty() && !label.contains('.'),
                    None => false,
                }
            }
            Pred::HostRegexp(re) => re.is_match(self.host()),
            Pred::Path(p) => self.path() == Some(&**p),
            Pred::PathPrefix(p) => self.path().is_some_and(|rp| rp.starts_with(&**p)),
            Pred::PathRegexp(re) => self.path().is_some_and(|rp| re.is_match(rp)),
            Pred::Method(m) => self.req.method == &**m,
            Pred::Header(k, v) => self.header_values(k).any(|hv| hv == &**v),
            Pred::HeaderRegexp(k, re) => self.header_values(k).any(|hv| re.is_match(hv)),
            Pred::Query(k, v) => {
                let want = v.as_deref().unwrap_or("");
                self.query()
                    .iter()
                    .any(|(qk, qv)| **qk == **k && qv == want)
            }
            Pred::QueryRegexp(k, re) => self
                .query()
                .iter()
                .any(|(qk, qv)| **qk == **k && re.is_match(qv)),
            Pred::ClientIP(net) => self
                .req
                .client_ip
                .is_some_and(|ip| net.contains(&unmap(ip))),
        }
    }

    fn eval_node(&self, n: &Node) -> bool {
        match n {
            Node::Leaf(p) => self.eval(p),
            Node::And(a, b) => self.eval_node(a) && self.eval_node(b),
            Node::Or(a, b) => self.eval_node(a) || self.eval_node(b),
            Node::Not(a) => !self.eval_node(a),
        }
    }

    /// Evaluate every leaf (no short-circuit), recording leaves whose effective value (after
    /// the negations above them) is false, by their canonical text in `e` (the parsed rule the
    /// tree `n` was compiled from, same shape).
    fn explain_node(&self, n: &Node, e: &Expr, negated: bool, failed: &mut Vec<String>) -> bool {
        match (n, e) {
            (Node::Leaf(p), Expr::Matcher(m)) => {
                let v = self.eval(p);
                if v == negated {
                    failed.push(if negated {
                        format!("!{m}")
                    } else {
                        m.to_string()
                    });
                }
                v
            }
            (Node::And(a, b), Expr::And(ea, eb)) => {
                let x = self.explain_node(a, ea, negated, failed);
                let y = self.explain_node(b, eb, negated, failed);
                x && y
            }
            (Node::Or(a, b), Expr::Or(ea, eb)) => {
                let x = self.explain_node(a, ea, negated, failed);
                let y = self.explain_node(b, eb, negated, failed);
                x || y
            }
            (Node::Not(a), Expr::Not(ea)) => !self.explain_node(a, ea, !negated, failed),
            // Unreachable (the tree is compiled from this very `Expr`); stay exact on the
            // verdict rather than panic.
            _ => self.eval_node(n),
        }
    }
}

impl CompiledRule {
    /// The rule text as given.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The parsed AST (parsed again from the rule text: not kept, see the type's docs).
    pub fn expr(&self) -> Expr {
        // The text parsed when it was compiled; a matcher without arguments stands for the
        // impossible error.
        parse(&self.rule).unwrap_or_else(|_| {
            Expr::Matcher(Matcher {
                kind: MatcherKind::Host,
                args: Vec::new(),
                column: 0,
            })
        })
    }

    /// Whether a `Header` or `HeaderRegexp` matcher occurs in the rule (the proxy then
    /// builds the request's header list for routing).
    pub fn reads_headers(&self) -> bool {
        fn walk(n: &Node) -> bool {
            match n {
                Node::Leaf(p) => matches!(p, Pred::Header(..) | Pred::HeaderRegexp(..)),
                Node::And(a, b) | Node::Or(a, b) => walk(a) || walk(b),
                Node::Not(a) => walk(a),
            }
        }
        walk(&self.root)
    }

    /// Traefik's default priority for this rule.
    pub fn default_priority(&self) -> i64 {
        super::default_priority(&self.rule)
    }

    fn ctx<'r, 'a>(req: &'r RequestView<'a>) -> Ctx<'r, 'a> {
        Ctx {
            req,
            host: OnceCell::new(),
            path: OnceCell::new(),
            query: OnceCell::new(),
        }
    }

    /// Whether the request matches. A path with a malformed `%` escape matches no path
    /// matcher (the proxy should answer 400 before routing; see [`super::routing_path`]).
    pub fn matches(&self, req: &RequestView) -> bool {
        Self::ctx(req).eval_node(&self.root)
    }

    /// For explain: the result and the leaf predicates that were false (their canonical source
    /// text, e.g. ``Host(`a.com`)``; a negated leaf that was true is listed as
    /// ``!Path(`/x`)``), in rule order.
    pub fn explain(&self, req: &RequestView) -> (bool, Vec<String>) {
        let mut failed = Vec::new();
        let ctx = Self::ctx(req);
        let v = ctx.explain_node(&self.root, &self.expr(), false, &mut failed);
        (v, failed)
    }

    /// Hosts this rule can only match, for indexing by host: `Some(list)` of lowercase exact
    /// hosts (no trailing dot) or `*.suffix` wildcards when every match requires one of them;
    /// `None` when the rule can match any host (negations, HostRegexp, no Host, ``Host(`*`)``).
    /// Look requests up with [`super::host_key`].
    pub fn host_constraint(&self) -> Option<Vec<String>> {
        let mut v = constraint(&self.root)?;
        v.sort();
        v.dedup();
        Some(v)
    }
}

/// The exact host names a rule's `Host(...)` matchers name (lowercase, sorted, deduplicated,
/// wildcards and regexps left out): the names a router with `tls.certResolver` and no
/// `tls.domains` gets a certificate for. Empty when the rule does not parse or names none.
pub fn rule_host_names(rule: &str) -> Vec<String> {
    let Ok(c) = compile(rule) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect_hosts(&c.root, &mut out);
    out.sort();
    out.dedup();
    out
}

/// [`rule_host_names`] plus the one-label wildcards of `Host(`*.example.com`)` matchers
/// (`*.example.com`): the names a DNS-01 resolver orders for a router without `tls.domains`.
pub fn rule_host_names_with_wildcards(rule: &str) -> Vec<String> {
    let Ok(c) = compile(rule) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect_hosts_inner(&c.root, &mut out, true);
    out.sort();
    out.dedup();
    out
}

fn collect_hosts(n: &Node, out: &mut Vec<String>) {
    collect_hosts_inner(n, out, false)
}

fn collect_hosts_inner(n: &Node, out: &mut Vec<String>, wildcards: bool) {
    match n {
        Node::Leaf(p) => match p {
            Pred::HostExact(h) => out.push(h.to_string()),
            Pred::HostWildcard(s) if wildcards => out.push(format!("*{s}")),
            _ => {}
        },
        Node::And(a, b) | Node::Or(a, b) => {
            collect_hosts_inner(a, out, wildcards);
            collect_hosts_inner(b, out, wildcards);
        }
        Node::Not(_) => {}
    }
}

fn constraint(n: &Node) -> Option<Vec<String>> {
    match n {
        Node::Leaf(p) => match p {
            Pred::HostExact(h) => Some(vec![h.to_string()]),
            Pred::HostWildcard(s) => Some(vec![format!("*{s}")]),
            _ => None,
        },
        Node::And(a, b) => constraint(a).or_else(|| constraint(b)),
        Node::Or(a, b) => {
            let mut x = constraint(a)?;
            x.extend(constraint(b)?);
            Some(x)
        }
        Node::Not(_) => None,
    }
}
