//! The TCP rule language (Traefik v3 `pkg/muxer/tcp`): `HostSNI`, `HostSNIRegexp`, `ClientIP`
//! and `ALPN`, combined with `&&`, `||`, `!` and parentheses (the HTTP rule syntax, parsed by
//! [`crate::rules::parse_with`]). HTTP matchers in a TCP rule are refused with a message that
//! says so.
//!
//! Matching is Traefik's: the SNI is compared case-insensitively without a trailing dot;
//! `HostSNI(`*.example.com`)` matches one label; `HostSNI(`*`)` matches every connection, with
//! or without SNI (the catch-all, the only `HostSNI` a non-TLS connection can match);
//! `HostSNIRegexp` matches the SNI as sent (lower case, per RFC 6066); `ALPN(p)` matches when
//! the client offered `p`; `ClientIP` takes an IP or a CIDR range.
//!
//! Priority is the rule's length, except `HostSNI(`*`)` alone, which is -1 (evaluated last).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;

use crate::rules::{compile_regex, name_variant_of, parse_with, Expr, MatcherKind, RuleError};
use crate::rules::{Matcher, Vocabulary};

/// The TCP matchers (`tcpFuncs` in Traefik).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpMatcherKind {
    /// `HostSNI(host)`
    HostSni,
    /// `HostSNIRegexp(re)`
    HostSniRegexp,
    /// `ClientIP(ip or cidr)`
    ClientIp,
    /// `ALPN(protocol)`
    Alpn,
}

impl TcpMatcherKind {
    /// Every TCP matcher.
    pub const ALL: [TcpMatcherKind; 4] = [
        TcpMatcherKind::HostSni,
        TcpMatcherKind::HostSniRegexp,
        TcpMatcherKind::ClientIp,
        TcpMatcherKind::Alpn,
    ];
}

impl Vocabulary for TcpMatcherKind {
    fn lookup(name: &str) -> Result<Self, String> {
        if let Some(k) = TcpMatcherKind::ALL
            .into_iter()
            .find(|k| name_variant_of(name, k.name()))
        {
            return Ok(k);
        }
        match MatcherKind::from_name(name) {
            Some(h) => Err(format!(
                "HTTP matcher {:?} cannot be used in a TCP rule (TCP matchers: HostSNI, HostSNIRegexp, ClientIP, ALPN)",
                h.name()
            )),
            None => Err(format!("unknown TCP matcher {name:?}")),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            TcpMatcherKind::HostSni => "HostSNI",
            TcpMatcherKind::HostSniRegexp => "HostSNIRegexp",
            TcpMatcherKind::ClientIp => "ClientIP",
            TcpMatcherKind::Alpn => "ALPN",
        }
    }

    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
}

impl fmt::Display for TcpMatcherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a TCP rule sees of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnView<'a> {
    /// The SNI of a TLS ClientHello (`None`: no TLS, or no SNI).
    pub sni: Option<&'a str>,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The ALPN protocols the client offered.
    pub alpn: &'a [String],
}

#[derive(Debug, Clone)]
enum Pred {
    /// Matches everything (`HostSNI(`*`)`).
    Any,
    /// Lower-case host, maybe `*.`-prefixed.
    Sni(String),
    SniRegexp(Regex),
    ClientIp(IpNet),
    Alpn(String),
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(Pred, String),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
}

/// A compiled TCP rule.
#[derive(Debug, Clone)]
pub struct TcpRule {
    rule: String,
    node: Node,
    catch_all: bool,
    hosts: Vec<String>,
}

/// The priority of a TCP rule without an explicit one: its length in characters, or -1 for
/// `HostSNI(`*`)` alone (Traefik's `GetRulePriority`).
pub fn default_priority(rule: &str) -> i64 {
    match parse_with::<TcpMatcherKind>(rule) {
        Ok(e) if is_catch_all(&e) => -1,
        _ => crate::rules::default_priority(rule),
    }
}

fn is_catch_all(e: &Expr<TcpMatcherKind>) -> bool {
    matches!(e, Expr::Matcher(m) if m.kind == TcpMatcherKind::HostSni && m.args.first().is_some_and(|a| a == "*"))
}

/// Traefik's `hostOrIP`: `^(\*\.)?[[:word:]\.\-\:]+$`.
fn valid_host_sni(h: &str) -> bool {
    let body = h.strip_prefix("*.").unwrap_or(h);
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'))
}

fn compile_matcher(m: &Matcher<TcpMatcherKind>) -> Result<Pred, RuleError> {
    let arg = m.args.first().map(String::as_str).unwrap_or_default();
    let err = |msg: String| RuleError::new(msg, m.column);
    Ok(match m.kind {
        TcpMatcherKind::HostSni => {
            if arg == "*" {
                Pred::Any
            } else if !valid_host_sni(arg) {
                return Err(err(format!(
                    "HostSNI: {arg:?} is not a valid host name or IP address"
                )));
            } else {
                Pred::Sni(arg.trim_end_matches('.').to_ascii_lowercase())
            }
        }
        TcpMatcherKind::HostSniRegexp => {
            if !arg.is_ascii() {
                return Err(err(format!("HostSNIRegexp: {arg:?} is not ASCII")));
            }
            Pred::SniRegexp(compile_regex(arg).map_err(|e| err(format!("HostSNIRegexp: {e}")))?)
        }
        TcpMatcherKind::ClientIp => {
            let v = arg.trim();
            if let Ok(ip) = v.parse::<IpAddr>() {
                Pred::ClientIp(IpNet::from(ip.to_canonical()))
            } else if let Ok(net) = v.parse::<IpNet>() {
                Pred::ClientIp(net)
            } else {
                return Err(err(format!("ClientIP: invalid IP address or CIDR {arg:?}")));
            }
        }
        TcpMatcherKind::Alpn => {
            if arg == "acme-tls/1" {
                return Err(err(
                    "ALPN: \"acme-tls/1\" is reserved for ACME challenges".to_string()
                ));
            }
            Pred::Alpn(arg.to_string())
        }
    })
}

fn build(e: &Expr<TcpMatcherKind>) -> Result<Node, RuleError> {
    Ok(match e {
        Expr::Matcher(m) => Node::Leaf(compile_matcher(m)?, m.to_string()),
        Expr::And(a, b) => Node::And(Box::new(build(a)?), Box::new(build(b)?)),
        Expr::Or(a, b) => Node::Or(Box::new(build(a)?), Box::new(build(b)?)),
        Expr::Not(a) => Node::Not(Box::new(build(a)?)),
    })
}

/// Compile a TCP rule (syntax, matcher names, values).
pub fn compile(rule: &str) -> Result<TcpRule, RuleError> {
    let expr = parse_with::<TcpMatcherKind>(rule)?;
    let node = build(&expr)?;
    let hosts = expr
        .matchers()
        .into_iter()
        .filter(|m| m.kind == TcpMatcherKind::HostSni)
        .filter_map(|m| m.args.first().cloned())
        .collect();
    Ok(TcpRule {
        rule: rule.to_string(),
        catch_all: is_catch_all(&expr),
        node,
        hosts,
    })
}

/// Traefik's `DomainMatchHostExpression` on a canonical (lower-case, no trailing dot) name.
fn host_matches(sni: &str, host: &str) -> bool {
    match host.strip_prefix("*.") {
        Some(parent) => sni
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest.eq_ignore_ascii_case(parent)),
        None => sni.eq_ignore_ascii_case(host),
    }
}

impl Pred {
    fn eval(&self, c: &ConnView<'_>) -> bool {
        match self {
            Pred::Any => true,
            Pred::Sni(h) => c
                .sni
                .filter(|s| !s.is_empty())
                .is_some_and(|s| host_matches(s.trim_end_matches('.'), h)),
            Pred::SniRegexp(re) => re.is_match(c.sni.unwrap_or_default()),
            Pred::ClientIp(net) => net.contains(&c.client_ip.to_canonical()),
            Pred::Alpn(p) => c.alpn.iter().any(|x| x == p),
        }
    }
}

impl Node {
    fn eval(&self, c: &ConnView<'_>) -> bool {
        match self {
            Node::Leaf(p, _) => p.eval(c),
            Node::And(a, b) => a.eval(c) && b.eval(c),
            Node::Or(a, b) => a.eval(c) || b.eval(c),
            Node::Not(a) => !a.eval(c),
        }
    }

    fn explain(&self, c: &ConnView<'_>, failed: &mut Vec<String>) -> bool {
        match self {
            Node::Leaf(p, text) => {
                let ok = p.eval(c);
                if !ok {
                    failed.push(text.clone());
                }
                ok
            }
            Node::And(a, b) => a.explain(c, failed) && b.explain(c, failed),
            Node::Or(a, b) => {
                let mut fa = Vec::new();
                if a.explain(c, &mut fa) {
                    return true;
                }
                let mut fb = Vec::new();
                if b.explain(c, &mut fb) {
                    return true;
                }
                failed.extend(fa);
                failed.extend(fb);
                false
            }
            Node::Not(a) => {
                let ok = !a.eval(c);
                if !ok {
                    failed.push(format!("!({})", leaf_text(a)));
                }
                ok
            }
        }
    }
}

fn leaf_text(n: &Node) -> String {
    match n {
        Node::Leaf(_, t) => t.clone(),
        Node::And(a, b) => format!("{} && {}", leaf_text(a), leaf_text(b)),
        Node::Or(a, b) => format!("{} || {}", leaf_text(a), leaf_text(b)),
        Node::Not(a) => format!("!{}", leaf_text(a)),
    }
}

impl TcpRule {
    /// The rule as written.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Whether the connection matches.
    pub fn matches(&self, c: &ConnView<'_>) -> bool {
        self.node.eval(c)
    }

    /// Whether it matches, and the matchers that failed when it does not.
    pub fn explain(&self, c: &ConnView<'_>) -> (bool, Vec<String>) {
        let mut failed = Vec::new();
        let ok = self.node.explain(c, &mut failed);
        (ok, if ok { Vec::new() } else { failed })
    }

    /// Exactly `HostSNI(`*`)`.
    pub fn is_catch_all(&self) -> bool {
        self.catch_all
    }

    /// The arguments of the rule's `HostSNI` matchers, as written.
    pub fn host_sni(&self) -> &[String] {
        &self.hosts
    }

    /// Whether any `HostSNI` matcher names a host (not `*`): such a rule needs TLS (Traefik).
    pub fn names_a_host(&self) -> bool {
        self.hosts.iter().any(|h| h != "*")
    }
}
