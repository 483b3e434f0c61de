//! `buffering` (Traefik's, over `vulcand/oxy` `buffer`): the whole request body is read
//! before the request is sent on (413 when it is over `maxRequestBodyBytes`, at once when
//! `Content-Length` says so), and the whole response body before it is answered (500 when it
//! is over `maxResponseBodyBytes`); 0 or unset: [`UNSET_LIMIT`]. With `retryExpression` the buffered
//! request is sent again while the expression holds for the last attempt (at most 10
//! attempts, as oxy): `IsNetworkError()` (502/504), `Attempts()`, `ResponseCode()`, compared
//! with integer literals and joined with `&&`, `||`, `!` and parentheses.
//!
//! Difference from Traefik: bodies are held in memory up to the maximum;
//! `memRequestBodyBytes`/`memResponseBodyBytes` (Traefik's spill-to-disk thresholds) are
//! validated and kept, but nothing is written to disk. So an unset (or 0) maximum is not "no
//! limit" as in Traefik (which spills to disk past the memory threshold) but [`UNSET_LIMIT`]:
//! without it one client streaming an endless body would grow the proxy's memory until it dies.

use super::{CompiledMiddleware, FieldError, FieldErrors};
use crate::error::quote;
use crate::model::Buffering;

/// The body limit when `maxRequestBodyBytes` / `maxResponseBodyBytes` is unset or 0 (bodies
/// are held in memory; see the module doc).
pub const UNSET_LIMIT: u64 = 64 * 1024 * 1024;

/// Most attempts a `retryExpression` gives (oxy's `DefaultMaxRetryAttempts`).
pub const MAX_ATTEMPTS: u32 = 10;

/// A compiled `buffering`.
#[derive(Debug, Clone)]
pub struct CompiledBuffering {
    /// Largest request body ([`UNSET_LIMIT`] when the config sets none); `None`: no limit.
    pub max_request: Option<u64>,
    /// Largest response body ([`UNSET_LIMIT`] when the config sets none); `None`: no limit.
    pub max_response: Option<u64>,
    /// When to retry.
    pub retry: Option<RetryExpr>,
}

/// What a retry expression sees of the last attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// Attempts made so far (1 after the first).
    pub attempts: u32,
    /// Its status (502/504 for network errors).
    pub response_code: u16,
}

/// A parsed `retryExpression`.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryExpr {
    /// `IsNetworkError()`
    NetworkError,
    /// `Attempts() <op> n` / `ResponseCode() <op> n`
    Cmp(IntFn, Op, i64),
    /// `!e`
    Not(Box<RetryExpr>),
    /// `a && b`
    And(Box<RetryExpr>, Box<RetryExpr>),
    /// `a || b`
    Or(Box<RetryExpr>, Box<RetryExpr>),
}

/// Integer functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntFn {
    /// `Attempts()`
    Attempts,
    /// `ResponseCode()`
    ResponseCode,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
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

impl RetryExpr {
    /// Evaluate on the last attempt.
    pub fn eval(&self, a: &Attempt) -> bool {
        match self {
            RetryExpr::NetworkError => matches!(a.response_code, 502 | 504),
            RetryExpr::Cmp(f, op, n) => {
                let v = match f {
                    IntFn::Attempts => i64::from(a.attempts),
                    IntFn::ResponseCode => i64::from(a.response_code),
                };
                match op {
                    Op::Eq => v == *n,
                    Op::Ne => v != *n,
                    Op::Lt => v < *n,
                    Op::Le => v <= *n,
                    Op::Gt => v > *n,
                    Op::Ge => v >= *n,
                }
            }
            RetryExpr::Not(e) => !e.eval(a),
            RetryExpr::And(x, y) => x.eval(a) && y.eval(a),
            RetryExpr::Or(x, y) => x.eval(a) || y.eval(a),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    LParen,
    RParen,
    And,
    Or,
    Not,
    Op(Op),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let two = s.get(i..i + 2).unwrap_or("");
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            _ if two == "&&" => {
                out.push(Tok::And);
                i += 2;
            }
            _ if two == "||" => {
                out.push(Tok::Or);
                i += 2;
            }
            _ if two == "==" || two == "!=" || two == "<=" || two == ">=" => {
                out.push(Tok::Op(match two {
                    "==" => Op::Eq,
                    "!=" => Op::Ne,
                    "<=" => Op::Le,
                    _ => Op::Ge,
                }));
                i += 2;
            }
            b'<' => {
                out.push(Tok::Op(Op::Lt));
                i += 1;
            }
            b'>' => {
                out.push(Tok::Op(Op::Gt));
                i += 1;
            }
            b'!' => {
                out.push(Tok::Not);
                i += 1;
            }
            b'0'..=b'9' => {
                let st = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n = s[st..i]
                    .parse()
                    .map_err(|_| format!("number {} is too large", &s[st..i]))?;
                out.push(Tok::Int(n));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Ident(s[st..i].to_string()));
            }
            _ => return Err(format!("unexpected {}", quote(&s[i..i + 1]))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
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
    fn or(&mut self) -> Result<RetryExpr, String> {
        let mut l = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            l = RetryExpr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<RetryExpr, String> {
        let mut l = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            l = RetryExpr::And(Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<RetryExpr, String> {
        match self.next() {
            Some(Tok::Not) => Ok(RetryExpr::Not(Box::new(self.unary()?))),
            Some(Tok::LParen) => {
                let e = self.or()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    _ => Err("missing `)`".into()),
                }
            }
            Some(Tok::Ident(name)) => {
                if self.next() != Some(Tok::LParen) || self.next() != Some(Tok::RParen) {
                    return Err(format!("{name} must be called with no arguments: {name}()"));
                }
                let f = match name.as_str() {
                    "IsNetworkError" => return Ok(RetryExpr::NetworkError),
                    "Attempts" => IntFn::Attempts,
                    "ResponseCode" => IntFn::ResponseCode,
                    other => {
                        return Err(format!(
                            "unsupported function {}, expected IsNetworkError(), Attempts() or ResponseCode()",
                            quote(other)
                        ))
                    }
                };
                let op = match self.next() {
                    Some(Tok::Op(op)) => op,
                    _ => return Err(format!("{name}() must be compared with an integer")),
                };
                match self.next() {
                    Some(Tok::Int(n)) => Ok(RetryExpr::Cmp(f, op, n)),
                    _ => Err(format!("{name}() must be compared with an integer")),
                }
            }
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("unexpected end of expression".into()),
        }
    }
}

/// Parse a `retryExpression`.
pub fn parse_retry(s: &str) -> Result<RetryExpr, String> {
    if s.trim().is_empty() {
        return Err("the expression is empty".into());
    }
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected {:?}", p.toks[p.pos]));
    }
    Ok(e)
}

/// Compile.
pub fn compile(b: &Buffering) -> Result<CompiledMiddleware, FieldErrors> {
    let mut errs = Vec::new();
    let mut limit = |field: &str, v: Option<i64>| -> Option<u64> {
        match v {
            Some(n) if n < 0 => {
                errs.push(FieldError::new(
                    format!("buffering.{field}"),
                    format!("must not be negative (got {n})"),
                ));
                None
            }
            Some(n) if n > 0 => Some(n as u64),
            _ => None,
        }
    };
    let max_request = limit("maxRequestBodyBytes", b.max_request_body_bytes);
    let _ = limit("memRequestBodyBytes", b.mem_request_body_bytes);
    let max_response = limit("maxResponseBodyBytes", b.max_response_body_bytes);
    let _ = limit("memResponseBodyBytes", b.mem_response_body_bytes);
    let retry = match b.retry_expression.as_deref() {
        None | Some("") => None,
        Some(s) => match parse_retry(s) {
            Ok(e) => Some(e),
            Err(m) => {
                errs.push(FieldError::new(
                    "buffering.retryExpression",
                    format!("invalid expression {}: {m}", quote(s)),
                ));
                None
            }
        },
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledMiddleware::Buffering(Box::new(CompiledBuffering {
        max_request: Some(max_request.unwrap_or(UNSET_LIMIT)),
        max_response: Some(max_response.unwrap_or(UNSET_LIMIT)),
        retry,
    })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn at(attempts: u32, code: u16) -> Attempt {
        Attempt {
            attempts,
            response_code: code,
        }
    }

    #[test]
    fn retry_expressions() {
        let e = parse_retry("IsNetworkError() && Attempts() < 2").unwrap();
        assert!(e.eval(&at(1, 502)));
        assert!(!e.eval(&at(2, 502)));
        assert!(!e.eval(&at(1, 200)));
        let e = parse_retry("ResponseCode() == 503 || (IsNetworkError() && !(Attempts() >= 3))")
            .unwrap();
        assert!(e.eval(&at(5, 503)));
        assert!(e.eval(&at(2, 504)));
        assert!(!e.eval(&at(3, 504)));
        for bad in [
            "",
            "Attempts()",
            "Attempts() < x",
            "Foo() < 1",
            "IsNetworkError(",
            "IsNetworkError() &&",
            "Attempts() < 1 1",
            "Attempts() ~ 1",
        ] {
            assert!(parse_retry(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn limits() {
        let b = Buffering {
            max_request_body_bytes: Some(-1),
            ..Buffering::default()
        };
        let e = compile(&b).unwrap_err();
        assert_eq!(e[0].field, "buffering.maxRequestBodyBytes");
        let b = Buffering {
            max_request_body_bytes: Some(0),
            max_response_body_bytes: Some(10),
            ..Buffering::default()
        };
        match compile(&b).unwrap() {
            CompiledMiddleware::Buffering(c) => {
                assert_eq!(c.max_request, Some(UNSET_LIMIT));
                assert_eq!(c.max_response, Some(10));
            }
            other => panic!("{other:?}"),
        }
    }
}
