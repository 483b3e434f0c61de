//! Traefik's circuit-breaker expressions (`vulcand/oxy` `cbreaker` over `vulcand/predicate`,
//! which parses them as Go expressions): metric functions compared with a literal, joined
//! with `&&` and `||`, in parentheses as needed, e.g.
//! `NetworkErrorRatio() > 0.30 || ResponseCodeRatio(500, 600, 0, 600) > 0.25`.
//!
//! The same expressions are accepted and refused as by Traefik:
//! * functions: `NetworkErrorRatio()` and `ResponseCodeRatio(from, to, dividedByFrom,
//!   dividedByTo)` (ratios, compared with a float literal such as `0.5` or `1.0`),
//!   `LatencyAtQuantileMS(quantile)` (a float argument; whole milliseconds, compared with an
//!   integer literal) and `RequestThreshold()` (requests in the window, an integer);
//! * a comparison has the function on its left and a literal of the function's type on its
//!   right (`NetworkErrorRatio() > 1` is refused, as Go's typed predicate refuses it);
//! * `==`, `!=`, `<`, `<=`, `>`, `>=`, `&&`, `||` with Go's precedence; `!`, arithmetic,
//!   negative literals, identifiers and a bare function are refused.

use std::fmt;

use thiserror::Error;

/// Why an expression is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ExprError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError(msg.into()))
}

/// A metric of the breaker's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Share of responses that were network errors (502, 504).
    NetworkErrorRatio,
    /// Responses with a status in `[from, to)` over those in `[by_from, by_to)`.
    ResponseCodeRatio {
        /// Numerator range start (inclusive).
        from: i64,
        /// Numerator range end (exclusive).
        to: i64,
        /// Denominator range start (inclusive).
        by_from: i64,
        /// Denominator range end (exclusive).
        by_to: i64,
    },
    /// Latency at this quantile (0-100), whole milliseconds.
    LatencyAtQuantileMs(f64),
    /// Requests in the window.
    RequestThreshold,
}

impl Metric {
    fn is_float(&self) -> bool {
        matches!(
            self,
            Metric::NetworkErrorRatio | Metric::ResponseCodeRatio { .. }
        )
    }
}

/// What the expression reads (the breaker's metrics window).
pub trait Metrics {
    /// Share of network errors, 0 without requests.
    fn network_error_ratio(&self) -> f64;
    /// Status ratio, 0 when the denominator is 0.
    fn response_code_ratio(&self, from: i64, to: i64, by_from: i64, by_to: i64) -> f64;
    /// Latency at a quantile, in microseconds (0 without requests).
    fn latency_at_quantile_us(&self, q: f64) -> u64;
    /// Requests in the window.
    fn total(&self) -> u64;
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn test<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// Both.
    And(Box<Predicate>, Box<Predicate>),
    /// Either.
    Or(Box<Predicate>, Box<Predicate>),
    /// A float metric compared with a constant.
    Float(Metric, CmpOp, f64),
    /// An integer metric compared with a constant.
    Int(Metric, CmpOp, i64),
}

impl Predicate {
    /// Evaluate on a metrics window.
    pub fn eval(&self, m: &dyn Metrics) -> bool {
        match self {
            Predicate::And(a, b) => a.eval(m) && b.eval(m),
            Predicate::Or(a, b) => a.eval(m) || b.eval(m),
            Predicate::Float(metric, op, v) => op.test(float_value(*metric, m), *v),
            Predicate::Int(metric, op, v) => op.test(int_value(*metric, m), *v),
        }
    }
}

fn float_value(metric: Metric, m: &dyn Metrics) -> f64 {
    match metric {
        Metric::NetworkErrorRatio => m.network_error_ratio(),
        Metric::ResponseCodeRatio {
            from,
            to,
            by_from,
            by_to,
        } => m.response_code_ratio(from, to, by_from, by_to),
        _ => 0.0,
    }
}

fn int_value(metric: Metric, m: &dyn Metrics) -> i64 {
    match metric {
        Metric::LatencyAtQuantileMs(q) => {
            i64::try_from(m.latency_at_quantile_us(q) / 1000).unwrap_or(i64::MAX)
        }
        Metric::RequestThreshold => i64::try_from(m.total()).unwrap_or(i64::MAX),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(String),
    Float(String),
    Str,
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) | Tok::Int(s) | Tok::Float(s) => write!(f, "{s}"),
            Tok::Str => write!(f, "string literal"),
            Tok::Op(o) => write!(f, "{o}"),
            Tok::LParen => write!(f, "("),
            Tok::RParen => write!(f, ")"),
            Tok::Comma => write!(f, ","),
        }
    }
}

const OPS: &[&str] = &[
    "&&", "||", "==", "!=", "<=", ">=", "<<", ">>", "&^", "<", ">", "!", "+", "-", "*", "/", "%",
    "&", "|", "^",
];

fn tokenize(s: &str) -> Result<Vec<Tok>, ExprError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(s[start..i].to_string()));
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            let mut float = false;
            while i < b.len() {
                let d = b[i];
                if d.is_ascii_alphanumeric() || d == b'_' {
                    if (d == b'e' || d == b'E') && !s[start..i].starts_with("0x") {
                        float = true;
                        if matches!(b.get(i + 1), Some(b'+' | b'-')) {
                            i += 1;
                        }
                    }
                    i += 1;
                } else if d == b'.' {
                    float = true;
                    i += 1;
                } else {
                    break;
                }
            }
            let lit = s[start..i].to_string();
            out.push(if float {
                Tok::Float(lit)
            } else {
                Tok::Int(lit)
            });
            continue;
        }
        match c {
            b'(' => out.push(Tok::LParen),
            b')' => out.push(Tok::RParen),
            b',' => out.push(Tok::Comma),
            b'"' | b'`' | b'\'' => {
                let end = s[i + 1..]
                    .find(char::from(c))
                    .ok_or_else(|| ExprError("string literal not terminated".into()))?;
                i += end + 2;
                out.push(Tok::Str);
                continue;
            }
            _ => match OPS.iter().find(|o| s[i..].starts_with(**o)) {
                Some(o) => {
                    out.push(Tok::Op(o));
                    i += o.len();
                    continue;
                }
                None => {
                    let ch = s[i..].chars().next().unwrap_or('?');
                    return err(format!("unexpected character {ch:?}"));
                }
            },
        }
        i += 1;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Syntax tree (Go's expression grammar, the subset that tokenizes above)

#[derive(Debug)]
enum Ast {
    Int(String),
    Float(String),
    Str,
    Ident(String),
    Call(String, Vec<Ast>),
    Unary(&'static str),
    Binary(&'static str, Box<Ast>, Box<Ast>),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn precedence(op: &str) -> u8 {
    match op {
        "||" => 1,
        "&&" => 2,
        "==" | "!=" | "<" | "<=" | ">" | ">=" => 3,
        "+" | "-" | "|" | "^" => 4,
        _ => 5,
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn binary(&mut self, min: u8, depth: usize) -> Result<Ast, ExprError> {
        let mut left = self.unary(depth)?;
        while let Some(Tok::Op(op)) = self.peek() {
            let op = *op;
            let p = precedence(op);
            if p < min || op == "!" {
                break;
            }
            self.pos += 1;
            let right = self.binary(p + 1, depth)?;
            left = Ast::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Ast, ExprError> {
        if depth > 100 {
            return err("expression nested too deeply");
        }
        match self.next() {
            Some(Tok::Op(op @ ("!" | "-" | "+" | "^" | "*" | "&"))) => {
                self.unary(depth + 1)?;
                Ok(Ast::Unary(op))
            }
            Some(Tok::LParen) => {
                let e = self.binary(1, depth + 1)?;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    Some(t) => err(format!("expected ')', found {t}")),
                    None => err("expected ')', found end of expression"),
                }
            }
            Some(Tok::Int(s)) => Ok(Ast::Int(s)),
            Some(Tok::Float(s)) => Ok(Ast::Float(s)),
            Some(Tok::Str) => Ok(Ast::Str),
            Some(Tok::Ident(name)) => {
                if self.peek() != Some(&Tok::LParen) {
                    return Ok(Ast::Ident(name));
                }
                self.pos += 1;
                let mut args = Vec::new();
                if self.peek() == Some(&Tok::RParen) {
                    self.pos += 1;
                    return Ok(Ast::Call(name, args));
                }
                loop {
                    args.push(self.binary(1, depth + 1)?);
                    match self.next() {
                        Some(Tok::Comma) if self.peek() == Some(&Tok::RParen) => {
                            self.pos += 1;
                            break;
                        }
                        Some(Tok::Comma) => {}
                        Some(Tok::RParen) => break,
                        Some(t) => return err(format!("expected ',' or ')', found {t}")),
                        None => return err("expected ')', found end of expression"),
                    }
                }
                Ok(Ast::Call(name, args))
            }
            Some(t) => err(format!("expected operand, found {t}")),
            None => err("expected operand, found end of expression"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Typing (what `vulcand/predicate` and oxy's operators accept)

enum Val {
    Int(i64),
    Float(f64),
    Str,
    Metric(Metric),
    Pred(Predicate),
}

impl Val {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Int(_) => "an integer",
            Val::Float(_) => "a float",
            Val::Str => "a string",
            Val::Metric(m) if m.is_float() => "a float metric",
            Val::Metric(_) => "an integer metric",
            Val::Pred(_) => "a condition",
        }
    }
}

fn int_lit(s: &str) -> Result<i64, ExprError> {
    // Go's strconv.Atoi: decimal digits only (hex, octal prefixes and underscores fail).
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return err(format!("failed to parse argument: {s}"));
    }
    s.parse()
        .map_err(|_| ExprError(format!("failed to parse argument: {s}: out of range")))
}

fn float_lit(s: &str) -> Result<f64, ExprError> {
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    match s.parse::<f64>() {
        Ok(v) if ok && v.is_finite() => Ok(v),
        _ => err(format!("failed to parse argument: {s}")),
    }
}

fn typed(ast: &Ast) -> Result<Val, ExprError> {
    Ok(match ast {
        Ast::Int(s) => Val::Int(int_lit(s)?),
        Ast::Float(s) => Val::Float(float_lit(s)?),
        Ast::Str => Val::Str,
        Ast::Ident(name) => return err(format!("{name} is not defined")),
        Ast::Unary(op) => return err(format!("operator {op} is not supported")),
        Ast::Call(name, args) => Val::Metric(call(name, args)?),
        Ast::Binary(op, a, b) => {
            let (a, b) = (typed(a)?, typed(b)?);
            Val::Pred(join(op, a, b)?)
        }
    })
}

fn call(name: &str, args: &[Ast]) -> Result<Metric, ExprError> {
    let want = match name {
        "NetworkErrorRatio" | "RequestThreshold" => 0,
        "LatencyAtQuantileMS" => 1,
        "ResponseCodeRatio" => 4,
        _ => return err(format!("unsupported function: {name}")),
    };
    if args.len() != want {
        return err(format!(
            "{name} takes {want} argument{}, got {}",
            if want == 1 { "" } else { "s" },
            args.len()
        ));
    }
    let vals = args.iter().map(typed).collect::<Result<Vec<_>, _>>()?;
    Ok(match name {
        "NetworkErrorRatio" => Metric::NetworkErrorRatio,
        "RequestThreshold" => Metric::RequestThreshold,
        "LatencyAtQuantileMS" => match &vals[0] {
            Val::Float(q) => Metric::LatencyAtQuantileMs(*q),
            v => {
                return err(format!(
                    "LatencyAtQuantileMS takes a float quantile (e.g. 50.0), got {}",
                    v.type_name()
                ))
            }
        },
        _ => {
            let mut ints = [0i64; 4];
            for (slot, v) in ints.iter_mut().zip(&vals) {
                match v {
                    Val::Int(i) => *slot = *i,
                    v => {
                        return err(format!(
                            "ResponseCodeRatio takes integer status codes, got {}",
                            v.type_name()
                        ))
                    }
                }
            }
            Metric::ResponseCodeRatio {
                from: ints[0],
                to: ints[1],
                by_from: ints[2],
                by_to: ints[3],
            }
        }
    })
}

fn join(op: &str, a: Val, b: Val) -> Result<Predicate, ExprError> {
    let cmp = match op {
        "&&" | "||" => {
            return match (a, b) {
                (Val::Pred(a), Val::Pred(b)) if op == "&&" => {
                    Ok(Predicate::And(Box::new(a), Box::new(b)))
                }
                (Val::Pred(a), Val::Pred(b)) => Ok(Predicate::Or(Box::new(a), Box::new(b))),
                (a, b) => err(format!(
                    "{op} joins conditions, got {} and {}",
                    a.type_name(),
                    b.type_name()
                )),
            }
        }
        "==" => CmpOp::Eq,
        "!=" => CmpOp::Ne,
        "<" => CmpOp::Lt,
        "<=" => CmpOp::Le,
        ">" => CmpOp::Gt,
        ">=" => CmpOp::Ge,
        _ => return err(format!("operator {op} is not supported")),
    };
    match (a, b) {
        (Val::Metric(m), Val::Float(v)) if m.is_float() => Ok(Predicate::Float(m, cmp, v)),
        (Val::Metric(m), Val::Int(v)) if !m.is_float() => Ok(Predicate::Int(m, cmp, v)),
        (Val::Metric(m), v) => err(format!(
            "{op}: {} compares with {} literal, got {}",
            if m.is_float() {
                "a ratio"
            } else {
                "an integer metric"
            },
            if m.is_float() {
                "a float (e.g. 0.5)"
            } else {
                "an integer"
            },
            v.type_name()
        )),
        (a, _) => err(format!(
            "{op}: the left side must be a metric function, got {}",
            a.type_name()
        )),
    }
}

/// Most operators in an expression (the tree is walked recursively).
pub const MAX_OPERATORS: usize = 256;

/// Parse and type an expression.
pub fn parse(input: &str) -> Result<Predicate, ExprError> {
    let toks = tokenize(input)?;
    if toks.is_empty() {
        return err("the expression is empty");
    }
    if toks.iter().filter(|t| matches!(t, Tok::Op(_))).count() > MAX_OPERATORS {
        return err(format!("too many operators (at most {MAX_OPERATORS})"));
    }
    let mut p = Parser { toks, pos: 0 };
    let ast = p.binary(1, 0)?;
    if let Some(t) = p.peek() {
        return err(format!("unexpected {t} after the expression"));
    }
    match typed(&ast)? {
        Val::Pred(p) => Ok(p),
        v => err(format!("expected a condition, got {}", v.type_name())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A fixed window.
    #[derive(Default)]
    struct Fixed {
        net: f64,
        codes: Vec<(i64, u64)>,
        latency_us: u64,
        total: u64,
    }

    impl Metrics for Fixed {
        fn network_error_ratio(&self) -> f64 {
            self.net
        }
        fn response_code_ratio(&self, from: i64, to: i64, by_from: i64, by_to: i64) -> f64 {
            let count = |a: i64, b: i64| -> u64 {
                self.codes
                    .iter()
                    .filter(|(c, _)| *c >= a && *c < b)
                    .map(|(_, n)| n)
                    .sum()
            };
            let d = count(by_from, by_to);
            if d == 0 {
                0.0
            } else {
                count(from, to) as f64 / d as f64
            }
        }
        fn latency_at_quantile_us(&self, _q: f64) -> u64 {
            self.latency_us
        }
        fn total(&self) -> u64 {
            self.total
        }
    }

    // oxy cbreaker/predicates_test.go: Test_parseExpression_tripped
    #[test]
    fn oxy_tripped_cases() {
        let net = |r| Fixed {
            net: r,
            ..Fixed::default()
        };
        let lat = |ms: u64| Fixed {
            latency_us: ms * 1000,
            ..Fixed::default()
        };
        let codes = |c: Vec<(i64, u64)>| Fixed {
            codes: c,
            ..Fixed::default()
        };
        let cases: Vec<(&str, Fixed, bool)> = vec![
            ("NetworkErrorRatio() > 0.5", net(0.6), true),
            ("NetworkErrorRatio() < 0.5", net(0.6), false),
            ("LatencyAtQuantileMS(50.0) > 50", lat(51), true),
            ("LatencyAtQuantileMS(50.0) < 50", lat(51), false),
            (
                "ResponseCodeRatio(500, 600, 0, 600) > 0.5",
                codes(vec![(200, 5), (500, 6)]),
                true,
            ),
            (
                "ResponseCodeRatio(500, 600, 0, 600) > 0.5",
                codes(vec![(200, 5), (500, 4)]),
                false,
            ),
            // quantile not defined
            ("LatencyAtQuantileMS(40.0) > 50", net(0.6), false),
            // Traefik's documented examples
            (
                "ResponseCodeRatio(500, 600, 0, 600) > 0.30 || NetworkErrorRatio() > 0.10",
                net(0.2),
                true,
            ),
            (
                "NetworkErrorRatio() > 0.30 && LatencyAtQuantileMS(50.0) > 100",
                net(0.5),
                false,
            ),
            (
                "(NetworkErrorRatio() > 0.9 || NetworkErrorRatio() <= 0.5) && RequestThreshold() >= 0",
                net(0.5),
                true,
            ),
            ("RequestThreshold() == 0", Fixed::default(), true),
            ("NetworkErrorRatio() != 0.6", net(0.6), false),
            ("NetworkErrorRatio() >= 0.6", net(0.6), true),
            ("NetworkErrorRatio() >= 1e-1", net(0.6), true),
        ];
        for (e, m, want) in cases {
            let p = parse(e).unwrap_or_else(|err| panic!("{e}: {err}"));
            assert_eq!(p.eval(&m), want, "{e}");
        }
    }

    #[test]
    fn precedence_is_gos() {
        // && binds tighter than ||.
        let p =
            parse("RequestThreshold() > 5 || RequestThreshold() > 1 && NetworkErrorRatio() > 0.5")
                .unwrap();
        let m = Fixed {
            total: 10,
            ..Fixed::default()
        };
        assert!(p.eval(&m));
        assert!(matches!(p, Predicate::Or(..)));
    }

    #[test]
    fn refused_as_by_traefik() {
        for (e, msg) in [
            ("", "the expression is empty"),
            ("   ", "the expression is empty"),
            (
                "NetworkErrorRatio()",
                "expected a condition, got a float metric",
            ),
            (
                "NetworkErrorRatio() > 1",
                "compares with a float (e.g. 0.5) literal, got an integer",
            ),
            ("LatencyAtQuantileMS(50.0) > 0.5", "got a float"),
            ("LatencyAtQuantileMS(50) > 50", "takes a float quantile"),
            (
                "ResponseCodeRatio(500.0, 600, 0, 600) > 0.5",
                "integer status codes",
            ),
            (
                "ResponseCodeRatio(500, 600) > 0.5",
                "takes 4 arguments, got 2",
            ),
            ("NetworkErrorRatio(1) > 0.5", "takes 0 arguments, got 1"),
            ("Foo() > 0.5", "unsupported function: Foo"),
            ("networkErrorRatio() > 0.5", "unsupported function"),
            (
                "0.5 < NetworkErrorRatio()",
                "left side must be a metric function",
            ),
            (
                "!(NetworkErrorRatio() > 0.5)",
                "operator ! is not supported",
            ),
            ("NetworkErrorRatio() > -0.5", "operator - is not supported"),
            (
                "NetworkErrorRatio() + 1 > 0.5",
                "operator + is not supported",
            ),
            (
                "NetworkErrorRatio() > 0.5 &&",
                "expected operand, found end",
            ),
            ("NetworkErrorRatio() > 0.5 )", "unexpected ) after"),
            ("(NetworkErrorRatio() > 0.5", "expected ')'"),
            ("NetworkErrorRatio() > 0.5 && 1", "joins conditions"),
            (
                "NetworkErrorRatio() > 0.5 > 0.1",
                "left side must be a metric",
            ),
            ("NetworkErrorRatio() > x", "x is not defined"),
            ("NetworkErrorRatio() > \"0.5\"", "got a string"),
            (
                "RequestThreshold() > 0x10",
                "failed to parse argument: 0x10",
            ),
            ("RequestThreshold() > 99999999999999999999", "out of range"),
            ("NetworkErrorRatio() > 0.5 ; x", "unexpected character ';'"),
            ("NetworkErrorRatio() = 0.5", "unexpected character '='"),
        ] {
            match parse(e) {
                Ok(p) => panic!("{e:?} was accepted: {p:?}"),
                Err(got) => assert!(got.0.contains(msg), "{e:?}: {got} (expected {msg:?})"),
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let e = format!(
            "{}NetworkErrorRatio() > 0.5{}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        assert!(parse(&e).unwrap_err().0.contains("nested too deeply"));
        let e = vec!["NetworkErrorRatio() > 0.5"; 128].join(" && ");
        assert!(parse(&e).is_ok());
        let e = vec!["NetworkErrorRatio() > 0.5"; 2000].join(" && ");
        assert!(parse(&e).unwrap_err().0.contains("too many operators"));
    }
}
