//! Traefik router rules (`Host(`a`) && PathPrefix(`/b`) || Path(`/c`)`): parsed, then flattened into
//! alternatives of (host, path) conditions, which is what a native route's `match` list holds.

use crate::error::Invalid;
use std::fmt;

/// A matcher call in a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Host(String),
    PathPrefix(String),
    Path(String),
}

/// A parsed rule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Matcher(Matcher),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// Why a rule could not be read, with the byte offset in the rule where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

/// The largest number of alternatives a rule may expand to; beyond it a rule is surely a mistake.
pub const MAX_ALTERNATIVES: usize = 64;
const MAX_DEPTH: usize = 32;

pub fn parse(rule: &str) -> Result<Expr, RuleError> {
    let mut p = Parser { text: rule, pos: 0, depth: 0 };
    let expr = p.or()?;
    p.skip_ws();
    if p.pos < rule.len() {
        return Err(p.err("unexpected text after the end of the rule"));
    }
    Ok(expr)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> RuleError {
        RuleError { offset: self.pos, message: message.into() }
    }
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }
    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.factor()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }
    fn factor(&mut self) -> Result<Expr, RuleError> {
        self.skip_ws();
        if self.rest().starts_with('!') {
            return Err(self.err("negation (`!`) is not supported by Dime"));
        }
        if self.eat("(") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.err("parentheses nested too deeply"));
            }
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.err("expected `)`"));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.matcher().map(Expr::Matcher)
    }
    fn matcher(&mut self) -> Result<Matcher, RuleError> {
        self.skip_ws();
        let start = self.pos;
        let len = self.rest().find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.err("expected a matcher such as Host(`example.com`)"));
        }
        let name = &self.text[start..start + len];
        self.pos += len;
        if !self.eat("(") {
            return Err(self.err(format!("expected `(` after `{name}`")));
        }
        let mut args = vec![self.string()?];
        while self.eat(",") {
            args.push(self.string()?);
        }
        if !self.eat(")") {
            return Err(self.err(format!("expected `)` to close `{name}(`")));
        }
        let at = RuleError { offset: start, message: String::new() };
        let make = |m: fn(String) -> Matcher| -> Result<Matcher, RuleError> {
            match <[String; 1]>::try_from(args.clone()) {
                Ok([arg]) => Ok(m(arg)),
                Err(_) => Err(RuleError {
                    message: format!("`{name}` takes exactly one argument (Traefik v3); combine several with `||`"),
                    ..at.clone()
                }),
            }
        };
        match name {
            "Host" => make(Matcher::Host),
            "PathPrefix" => make(Matcher::PathPrefix),
            "Path" => make(Matcher::Path),
            other => Err(RuleError {
                message: format!(
                    "unsupported matcher `{other}`: Dime reads the Traefik subset Host, PathPrefix, Path with && and ||"
                ),
                ..at
            }),
        }
    }
    fn string(&mut self) -> Result<String, RuleError> {
        self.skip_ws();
        let quote = match self.rest().chars().next() {
            Some(q @ ('`' | '"')) => q,
            _ => return Err(self.err("expected a string in backquotes, e.g. `example.com`")),
        };
        self.pos += 1;
        match self.rest().find(quote) {
            Some(end) => {
                let value = self.rest()[..end].to_owned();
                self.pos += end + 1;
                Ok(value)
            }
            None => Err(self.err("unterminated string")),
        }
    }
}

/// One alternative: the conditions that must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conjunction {
    pub host: Option<String>,
    pub path: Option<Matcher>,
}

/// Flattens an expression into alternatives (disjunctive normal form). Fails when an alternative asks for two
/// different hosts or two path conditions at once, which no single request could satisfy in a way Dime can
/// express, or when the rule expands to more than [`MAX_ALTERNATIVES`].
pub fn alternatives(expr: &Expr) -> Result<Vec<Conjunction>, Invalid> {
    match expr {
        Expr::Matcher(m) => Ok(vec![match m {
            Matcher::Host(h) => Conjunction { host: Some(h.clone()), path: None },
            path => Conjunction { host: None, path: Some(path.clone()) },
        }]),
        Expr::Or(a, b) => {
            let mut out = alternatives(a)?;
            out.extend(alternatives(b)?);
            if out.len() > MAX_ALTERNATIVES {
                return Err(format!("rule expands to more than {MAX_ALTERNATIVES} alternatives").into());
            }
            Ok(out)
        }
        Expr::And(a, b) => {
            let (left, right) = (alternatives(a)?, alternatives(b)?);
            if left.len() * right.len() > MAX_ALTERNATIVES {
                return Err(format!("rule expands to more than {MAX_ALTERNATIVES} alternatives").into());
            }
            let mut out = Vec::with_capacity(left.len() * right.len());
            for l in &left {
                for r in &right {
                    out.push(conjoin(l, r)?);
                }
            }
            Ok(out)
        }
    }
}

fn conjoin(a: &Conjunction, b: &Conjunction) -> Result<Conjunction, Invalid> {
    let host = match (&a.host, &b.host) {
        (Some(x), Some(y)) if !x.eq_ignore_ascii_case(y) => {
            return Err(format!("`Host(`{x}`) && Host(`{y}`)` can never match").into());
        }
        (Some(x), _) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    };
    let path = match (&a.path, &b.path) {
        (Some(_), Some(_)) => return Err("two path matchers joined by `&&` are not supported".into()),
        (Some(p), None) | (None, Some(p)) => Some(p.clone()),
        (None, None) => None,
    };
    Ok(Conjunction { host, path })
}

#[cfg(test)]
mod tests;
