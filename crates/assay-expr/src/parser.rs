//! Precedence-climbing parser that reproduces Testkube's grouping exactly.
//!
//! Testkube's quirks are kept on purpose, because a workflow must mean the same
//! thing in both engines:
//! - `&&` and `||` share one level and associate left: `a || b && c` is
//!   `(a || b) && c`;
//! - every operator associates left, `**` included;
//! - a unary minus takes everything after it: `-1 + 2` is `-(1 + 2)`;
//! - `?:` branches only hold comparisons and tighter operators, and `?:` is
//!   left-associative: `a ? b : c ? d : e` is `(a ? b : c) ? d : e`.
//!
//! Extensions over Testkube (which would reject these): list and object
//! literals with non-constant items, `expr[index]`, and `.*` after any value.

use crate::ast::{Arg, BinOp, Expr};
use crate::error::ExprError;
use crate::lexer::{Lexer, Tok, Token};

/// Deepest expression tree the parser accepts (parser recursion may go twice
/// as deep, for parentheses). Keeps the recursive parser, evaluator and
/// printer well inside 1 MiB of stack even in debug builds.
pub const MAX_DEPTH: usize = 128;

/// Name of the wildcard-map function that `a.*.b` desugars to (Testkube's).
pub(crate) const WILDCARD_FN: &str = "_wc";

pub(crate) struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    peeked: Option<Token>,
    depth: usize,
}

type Parsed = (Expr, usize);

enum Step {
    More(Parsed),
    Done(Parsed),
}

impl<'a> Parser<'a> {
    pub fn new(src: &'a str, pos: usize) -> Self {
        Parser {
            src,
            lexer: Lexer::new(src, pos),
            peeked: None,
            depth: 0,
        }
    }

    fn peek(&mut self) -> Result<&Token, ExprError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().expect("peeked was just filled"))
    }

    fn bump(&mut self) -> Result<Token, ExprError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }

    fn error(&self, token: &Token, message: impl Into<String>) -> ExprError {
        ExprError::syntax(self.src, token.span.clone(), message)
    }

    fn unexpected(&self, token: &Token) -> ExprError {
        self.error(token, format!("unexpected {}", describe(&token.tok)))
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<Token, ExprError> {
        let token = self.bump()?;
        if token.tok == want {
            Ok(token)
        } else {
            Err(self.error(
                &token,
                format!("expected {what}, found {}", describe(&token.tok)),
            ))
        }
    }

    fn too_deep(&self, token: &Token) -> ExprError {
        let mut e = self.error(
            token,
            format!("expression nested too deeply (limit {MAX_DEPTH})"),
        );
        e.kind = crate::ErrorKind::TooDeep;
        e
    }

    /// Parses a whole bare expression; empty input is `null`, as in Testkube.
    pub fn parse_all(mut self) -> Result<Expr, ExprError> {
        if self.peek()?.tok == Tok::Eof {
            return Ok(Expr::Lit(serde_json::Value::Null));
        }
        let (e, _) = self.expr(-1)?;
        let next = self.bump()?;
        if next.tok != Tok::Eof {
            return Err(self.unexpected(&next));
        }
        Ok(e)
    }

    /// Parses one expression and returns it with the byte offset of the token
    /// that stopped it (used by templates to find the closing `}}`).
    /// `None` means the expression was empty.
    pub fn parse_embedded(mut self) -> Result<(Option<Expr>, Token), ExprError> {
        if self.peek()?.tok == Tok::RBrace {
            let t = self.bump()?;
            return Ok((None, t));
        }
        let (e, _) = self.expr(-1)?;
        let next = self.bump()?;
        Ok((Some(e), next))
    }

    /// Parses operators binding tighter than `min` (Testkube's priority:
    /// -1 takes everything, 0 stops at `&&`/`||`/`?`).
    ///
    /// The work is spread over small non-inlined functions: these recurse once
    /// per nesting level, and one large function would put a large stack frame
    /// on every level.
    fn expr(&mut self, min: i32) -> Result<Parsed, ExprError> {
        // Parentheses recurse without deepening the tree, and printing adds
        // them, so recursion gets twice the tree's allowance.
        self.depth += 1;
        if self.depth > 2 * MAX_DEPTH {
            return Err(self.too_deep_here());
        }
        let mut cur = self.segment()?;
        if cur.1 > MAX_DEPTH {
            return Err(self.too_deep_here());
        }
        loop {
            match self.infix(cur, min)? {
                Step::More(next) => cur = next,
                Step::Done(done) => {
                    self.depth -= 1;
                    return Ok(done);
                }
            }
        }
    }

    #[inline(never)]
    fn too_deep_here(&mut self) -> ExprError {
        match self.peek() {
            Ok(t) => {
                let t = t.clone();
                self.too_deep(&t)
            }
            Err(e) => e,
        }
    }

    /// Applies one infix or postfix operator to `cur`, if the next token is one
    /// that binds tighter than `min`.
    #[inline(never)]
    fn infix(&mut self, cur: Parsed, min: i32) -> Result<Step, ExprError> {
        let (e, d) = cur;
        let next = match &self.peek()?.tok {
            Tok::Question if min < 0 => self.conditional(e, d)?,
            Tok::Op(op) if min < op.precedence() => {
                let op = *op;
                self.bump()?;
                let (r, dr) = self.expr(op.precedence())?;
                (Expr::binary(op, e, r), 1 + d.max(dr))
            }
            Tok::Prop(_) => self.property(e, d)?,
            Tok::LBracket => {
                // `a[k]` is sugar for `at(a, k)`, which Testkube can read.
                self.bump()?;
                let (k, dk) = self.expr(-1)?;
                self.expect(Tok::RBracket, "`]`")?;
                (Expr::call("at", vec![e, k]), 1 + d.max(dk))
            }
            _ => return Ok(Step::Done((e, d))),
        };
        if next.1 > MAX_DEPTH {
            return Err(self.too_deep_here());
        }
        Ok(Step::More(next))
    }

    #[inline(never)]
    fn conditional(&mut self, c: Expr, d: usize) -> Result<Parsed, ExprError> {
        self.bump()?;
        let (t, dt) = self.expr(0)?;
        self.expect(Tok::Colon, "`:` of the conditional")?;
        let (f, df) = self.expr(0)?;
        Ok((Expr::cond(c, t, f), 1 + d.max(dt).max(df)))
    }

    #[inline(never)]
    fn property(&mut self, e: Expr, d: usize) -> Result<Parsed, ExprError> {
        let Tok::Prop(name) = self.bump()?.tok else {
            unreachable!("property() is only called on a `.name` token");
        };
        if name != "*" {
            let d = if matches!(e, Expr::Prop(..)) {
                d
            } else {
                d + 1
            };
            return Ok((Expr::prop(e, name), d));
        }
        let mut suffix = String::new();
        while let Tok::Prop(seg) = &self.peek()?.tok
            && seg != "*"
        {
            suffix.push('.');
            suffix.push_str(seg);
            self.bump()?;
        }
        Ok((wildcard(e, &suffix), d + 1))
    }

    /// Every arm is a tail call: this function sits on the recursion path
    /// once per nesting level, so it holds as little as possible.
    #[inline(never)]
    fn segment(&mut self) -> Result<Parsed, ExprError> {
        let token = self.bump()?;
        match token.tok {
            Tok::LParen => self.paren(),
            Tok::Value(v) => Ok((Expr::Lit(v), 1)),
            Tok::LBracket => self.list(),
            Tok::LBrace => self.object(),
            Tok::Not => self.prefix(false),
            Tok::Op(BinOp::Sub) => self.prefix(true),
            Tok::Ident(name) => self.ident(name),
            _ => Err(self.unexpected(&token)),
        }
    }

    #[inline(never)]
    fn paren(&mut self) -> Result<Parsed, ExprError> {
        let inner = self.expr(-1)?;
        self.expect(Tok::RParen, "`)`")?;
        Ok(inner)
    }

    /// `!x` binds tighter than any operator; `-x` takes the rest (Testkube).
    #[inline(never)]
    fn prefix(&mut self, minus: bool) -> Result<Parsed, ExprError> {
        let (e, d) = self.expr(if minus { -1 } else { i32::MAX })?;
        Ok((
            if minus {
                Expr::negative(e)
            } else {
                Expr::negation(e)
            },
            d + 1,
        ))
    }

    #[inline(never)]
    fn ident(&mut self, name: String) -> Result<Parsed, ExprError> {
        if self.eat(&Tok::LParen)? {
            let (args, d) = self.args(Tok::RParen, "`,` or `)`")?;
            Ok((Expr::Call(name, args), d + 1))
        } else {
            Ok(accessor(&name))
        }
    }

    /// Comma-separated arguments up to `close`, each optionally spread.
    #[inline(never)]
    fn args(&mut self, close: Tok, what: &'static str) -> Result<(Vec<Arg>, usize), ExprError> {
        let mut args = Vec::new();
        let mut depth = 0;
        if self.eat(&close)? {
            return Ok((args, depth));
        }
        loop {
            let (expr, d) = self.expr(-1)?;
            depth = depth.max(d);
            let spread = self.eat(&Tok::Spread)?;
            args.push(Arg { expr, spread });
            if self.eat(&close)? {
                return Ok((args, depth));
            }
            if !self.eat(&Tok::Comma)? {
                return Err(self.expected_here(what));
            }
        }
    }

    /// Consumes the next token if it is `want`.
    #[inline(never)]
    fn eat(&mut self, want: &Tok) -> Result<bool, ExprError> {
        if &self.peek()?.tok == want {
            self.bump()?;
            return Ok(true);
        }
        Ok(false)
    }

    #[cold]
    #[inline(never)]
    fn expected_here(&mut self, what: &str) -> ExprError {
        match self.bump() {
            Ok(token) => self.error(
                &token,
                format!("expected {what}, found {}", describe(&token.tok)),
            ),
            Err(e) => e,
        }
    }

    #[inline(never)]
    fn list(&mut self) -> Result<Parsed, ExprError> {
        let (items, d) = self.args(Tok::RBracket, "`,` or `]`")?;
        Ok((Expr::list(items), d + 1))
    }

    fn object(&mut self) -> Result<Parsed, ExprError> {
        let mut entries = Vec::new();
        let mut depth = 0;
        if self.peek()?.tok == Tok::RBrace {
            self.bump()?;
            return Ok((Expr::object(entries), 1));
        }
        loop {
            let key = self.bump()?;
            let Tok::Value(serde_json::Value::String(k)) = key.tok else {
                return Err(self.error(
                    &key,
                    format!("expected a string key, found {}", describe(&key.tok)),
                ));
            };
            self.expect(Tok::Colon, "`:` after the object key")?;
            let (v, d) = self.expr(-1)?;
            depth = depth.max(d);
            entries.push((k, v));
            let token = self.bump()?;
            match token.tok {
                Tok::RBrace => return Ok((Expr::object(entries), depth + 1)),
                Tok::Comma => {}
                ref other => {
                    return Err(self.error(
                        &token,
                        format!("expected `,` or `}}`, found {}", describe(other)),
                    ));
                }
            }
        }
    }
}

/// `a.b.*.c` becomes `_wc(a.b, "_.value.c")`, exactly as Testkube compiles it.
fn accessor(name: &str) -> Parsed {
    let mut parts = name.split(".*");
    let mut e = Expr::Var(parts.next().unwrap_or_default().to_string());
    let mut d = 1;
    for part in parts {
        e = wildcard(e, part);
        d += 1;
    }
    (e, d)
}

fn wildcard(base: Expr, suffix: &str) -> Expr {
    Expr::call(
        WILDCARD_FN,
        vec![base, Expr::string(format!("_.value{suffix}"))],
    )
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Value(v) => format!("`{v}`"),
        Tok::Ident(name) => format!("`{name}`"),
        Tok::Prop(name) => format!("`.{name}`"),
        Tok::Spread => "`...`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::LBrace => "`{`".into(),
        Tok::RBrace => "`}`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Colon => "`:`".into(),
        Tok::Question => "`?`".into(),
        Tok::Not => "`!`".into(),
        Tok::Op(op) => format!("`{}`", op.symbol()),
        Tok::Eof => "end of expression".into(),
    }
}
