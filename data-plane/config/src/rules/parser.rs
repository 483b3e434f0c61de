//! Lexer and recursive-descent parser for v3 rules.

use std::marker::PhantomData;

use super::{Expr, Matcher, MatcherKind, RuleError, Vocabulary, MAX_NESTING};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    And,
    Or,
    Not,
    Other,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based column.
    col: usize,
    /// Source text of the token.
    text: String,
}

impl Token {
    fn describe(&self) -> String {
        match self.tok {
            Tok::Eof => "end of rule".to_string(),
            _ => {
                let t: String = self.text.chars().take(40).collect();
                let t = if self.text.chars().count() > 40 {
                    format!("{t}…")
                } else {
                    t
                };
                format!("token {t:?}")
            }
        }
    }

    fn unexpected(&self, expected: &str) -> RuleError {
        RuleError::new(
            format!("unexpected {}, expected {expected}", self.describe()),
            self.col,
        )
    }
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    peeked: Option<Token>,
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

impl Lexer {
    fn new(s: &str) -> Self {
        Lexer {
            chars: s.chars().collect(),
            pos: 0,
            peeked: None,
        }
    }

    fn peek(&mut self) -> Result<&Token, RuleError> {
        if self.peeked.is_none() {
            let t = self.lex()?;
            self.peeked = Some(t);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            None => Err(RuleError::new("internal lexer error", self.pos + 1)),
        }
    }

    fn next(&mut self) -> Result<Token, RuleError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn text(&self, start: usize) -> String {
        self.chars[start..self.pos].iter().collect()
    }

    fn lex(&mut self) -> Result<Token, RuleError> {
        while self.pos < self.chars.len() && is_ws(self.chars[self.pos]) {
            self.pos += 1;
        }
        let start = self.pos;
        let col = start + 1;
        let Some(&c) = self.chars.get(self.pos) else {
            return Ok(Token {
                tok: Tok::Eof,
                col,
                text: String::new(),
            });
        };
        self.pos += 1;
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '!' => Tok::Not,
            '&' | '|' => {
                if self.chars.get(self.pos) == Some(&c) {
                    self.pos += 1;
                    if c == '&' {
                        Tok::And
                    } else {
                        Tok::Or
                    }
                } else {
                    return Err(RuleError::new(format!("unexpected token \"{c}\""), col));
                }
            }
            '`' => {
                let s = self.pos;
                while self.pos < self.chars.len() && self.chars[self.pos] != '`' {
                    self.pos += 1;
                }
                if self.pos >= self.chars.len() {
                    return Err(RuleError::new("unterminated string", col));
                }
                let v: String = self.chars[s..self.pos].iter().collect();
                self.pos += 1;
                Tok::Str(v)
            }
            '"' => Tok::Str(self.lex_go_string(col)?),
            '\'' => {
                return Err(RuleError::new(
                    "single-quoted strings are not supported; use backticks or double quotes",
                    col,
                ))
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while self.pos < self.chars.len()
                    && (self.chars[self.pos].is_ascii_alphanumeric() || self.chars[self.pos] == '_')
                {
                    self.pos += 1;
                }
                Tok::Ident(self.text(start))
            }
            c if c.is_alphanumeric() => {
                while self.pos < self.chars.len()
                    && (self.chars[self.pos].is_alphanumeric() || self.chars[self.pos] == '_')
                {
                    self.pos += 1;
                }
                Tok::Other
            }
            _ => Tok::Other,
        };
        Ok(Token {
            tok,
            col,
            text: self.text(start),
        })
    }

    /// A Go interpreted string literal; the opening quote is consumed.
    fn lex_go_string(&mut self, col: usize) -> Result<String, RuleError> {
        let mut out = String::new();
        loop {
            let Some(&c) = self.chars.get(self.pos) else {
                return Err(RuleError::new("unterminated string", col));
            };
            let ccol = self.pos + 1;
            self.pos += 1;
            match c {
                '"' => return Ok(out),
                '\n' => return Err(RuleError::new("newline in string", ccol)),
                '\\' => {
                    let Some(&e) = self.chars.get(self.pos) else {
                        return Err(RuleError::new("unterminated string", col));
                    };
                    self.pos += 1;
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'a' => out.push('\u{07}'),
                        'b' => out.push('\u{08}'),
                        'f' => out.push('\u{0c}'),
                        'v' => out.push('\u{0b}'),
                        'x' | 'u' | 'U' => {
                            let n = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let digits: String = self.chars.iter().skip(self.pos).take(n).collect();
                            if digits.chars().count() != n
                                || !digits.chars().all(|d| d.is_ascii_hexdigit())
                            {
                                return Err(RuleError::new(
                                    format!("invalid escape sequence \"\\{e}{digits}\" in string"),
                                    ccol,
                                ));
                            }
                            self.pos += n;
                            let v = u32::from_str_radix(&digits, 16).unwrap_or(u32::MAX);
                            let ch = if e == 'x' && v > 0x7f {
                                None
                            } else {
                                char::from_u32(v)
                            };
                            match ch {
                                Some(ch) => out.push(ch),
                                None => {
                                    return Err(RuleError::new(
                                        format!(
                                            "invalid escape sequence \"\\{e}{digits}\" in string"
                                        ),
                                        ccol,
                                    ))
                                }
                            }
                        }
                        '0'..='7' => {
                            let digits: String =
                                self.chars.iter().skip(self.pos - 1).take(3).collect();
                            let ok = digits.chars().count() == 3
                                && digits.chars().all(|d| ('0'..='7').contains(&d));
                            let v = if ok {
                                u32::from_str_radix(&digits, 8).unwrap_or(u32::MAX)
                            } else {
                                u32::MAX
                            };
                            match char::from_u32(v).filter(|_| v <= 0x7f) {
                                Some(ch) => {
                                    self.pos += 2;
                                    out.push(ch);
                                }
                                None => {
                                    return Err(RuleError::new(
                                        format!("invalid escape sequence \"\\{digits}\" in string"),
                                        ccol,
                                    ))
                                }
                            }
                        }
                        other => {
                            return Err(RuleError::new(
                                format!("invalid escape sequence \"\\{other}\" in string"),
                                ccol,
                            ))
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }
}

struct Parser<K> {
    lx: Lexer,
    vocabulary: PhantomData<K>,
}

/// Parse a v3 rule into its AST, checking syntax, matcher names, arity and empty arguments.
/// Value checks (regexps, paths, hosts, IPs) happen in [`super::compile`].
pub fn parse(rule: &str) -> Result<Expr, RuleError> {
    parse_with::<MatcherKind>(rule)
}

/// [`parse`] with another set of matchers (the TCP rule language uses the same syntax).
pub fn parse_with<K: Vocabulary>(rule: &str) -> Result<Expr<K>, RuleError> {
    let mut p = Parser::<K> {
        lx: Lexer::new(rule),
        vocabulary: PhantomData,
    };
    let e = p.parse_or(0)?;
    let t = p.lx.next()?;
    if t.tok != Tok::Eof {
        return Err(t.unexpected("\"&&\", \"||\" or end of rule"));
    }
    Ok(e)
}

/// Build a balanced tree so long `a && b && c ...` chains stay shallow (the operators are
/// associative and evaluation order is preserved left to right).
fn balanced<K>(mut items: Vec<Expr<K>>, and: bool) -> Expr<K> {
    if items.len() == 1 {
        if let Some(e) = items.pop() {
            return e;
        }
    }
    let right = items.split_off(items.len() / 2);
    let l = Box::new(balanced(items, and));
    let r = Box::new(balanced(right, and));
    if and {
        Expr::And(l, r)
    } else {
        Expr::Or(l, r)
    }
}

impl<K: Vocabulary> Parser<K> {
    fn parse_or(&mut self, depth: usize) -> Result<Expr<K>, RuleError> {
        let mut items = vec![self.parse_and(depth)?];
        while self.lx.peek()?.tok == Tok::Or {
            self.lx.next()?;
            items.push(self.parse_and(depth)?);
        }
        Ok(balanced(items, false))
    }

    fn parse_and(&mut self, depth: usize) -> Result<Expr<K>, RuleError> {
        let mut items = vec![self.parse_unary(depth)?];
        while self.lx.peek()?.tok == Tok::And {
            self.lx.next()?;
            items.push(self.parse_unary(depth)?);
        }
        Ok(balanced(items, true))
    }

    fn parse_unary(&mut self, depth: usize) -> Result<Expr<K>, RuleError> {
        let t = self.lx.next()?;
        match t.tok {
            Tok::Not | Tok::LParen if depth >= MAX_NESTING => Err(RuleError::new(
                format!("rule is nested too deeply (more than {MAX_NESTING} levels)"),
                t.col,
            )),
            Tok::Not => Ok(Expr::Not(Box::new(self.parse_unary(depth + 1)?))),
            Tok::LParen => {
                let e = self.parse_or(depth + 1)?;
                let close = self.lx.next()?;
                if close.tok != Tok::RParen {
                    return Err(close.unexpected("\")\""));
                }
                Ok(e)
            }
            Tok::Ident(ref name) => {
                let kind = K::lookup(name).map_err(|m| RuleError::new(m, t.col))?;
                self.parse_call(kind, t.col)
            }
            _ => Err(t.unexpected("a matcher")),
        }
    }

    fn parse_call(&mut self, kind: K, col: usize) -> Result<Expr<K>, RuleError> {
        let open = self.lx.next()?;
        if open.tok != Tok::LParen {
            return Err(open.unexpected("\"(\""));
        }
        let mut args: Vec<(String, usize)> = Vec::new();
        if self.lx.peek()?.tok == Tok::RParen {
            self.lx.next()?;
        } else {
            loop {
                let a = self.lx.next()?;
                match a.tok {
                    Tok::Str(s) => args.push((s, a.col)),
                    _ => {
                        return Err(
                            a.unexpected("a string argument (in backticks or double quotes)")
                        )
                    }
                }
                let sep = self.lx.next()?;
                match sep.tok {
                    Tok::RParen => break,
                    Tok::Comma => {
                        if self.lx.peek()?.tok == Tok::RParen {
                            self.lx.next()?;
                            break;
                        }
                    }
                    _ => return Err(sep.unexpected("\",\" or \")\"")),
                }
            }
        }
        let (min, max) = kind.arity();
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                format!("{min} argument{}", if min == 1 { "" } else { "s" })
            } else {
                format!("{min} or {max} arguments")
            };
            return Err(RuleError::new(
                format!("{}: expected {expected}, got {}", kind.name(), args.len()),
                col,
            ));
        }
        if let Some((_, acol)) = args.iter().find(|(a, _)| a.is_empty()) {
            return Err(RuleError::new(
                format!("{}: empty argument", kind.name()),
                *acol,
            ));
        }
        Ok(Expr::Matcher(Matcher {
            kind,
            args: args.into_iter().map(|(a, _)| a).collect(),
            column: col,
        }))
    }
}
