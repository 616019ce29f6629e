//! Turns expression text into tokens, one at a time.
//!
//! Tokens are produced on demand because a template's expression ends at the
//! first `}}` the parser cannot use, and the text after it is not expression
//! syntax (lexing ahead would reject `{{ x }} it's`).

use std::ops::Range;

use serde_json::Value;

use crate::ast::BinOp;
use crate::error::ExprError;
use crate::value;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A literal: number, string, `true`, `false` or `null`.
    Value(Value),
    /// An accessor such as `config.a.b` or `list.*.name`, whitespace removed.
    Ident(String),
    /// `.name` or `.*` after something that is not an identifier.
    Prop(String),
    Spread,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Question,
    Not,
    Op(BinOp),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Range<usize>,
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Operators, longest first so that `**` wins over `*` (Testkube's order).
const OPERATORS: &[(&str, BinOp)] = &[
    ("!=", BinOp::Ne),
    ("<>", BinOp::Ne),
    ("==", BinOp::Eq),
    (">=", BinOp::Ge),
    ("<=", BinOp::Le),
    ("&&", BinOp::And),
    ("**", BinOp::Pow),
    ("||", BinOp::Or),
    ("+", BinOp::Add),
    ("-", BinOp::Sub),
    ("*", BinOp::Mul),
    ("/", BinOp::Div),
    (">", BinOp::Gt),
    ("<", BinOp::Lt),
    ("=", BinOp::Eq),
    ("%", BinOp::Mod),
];

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, pos: usize) -> Self {
        Lexer { src, pos }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ExprError {
        ExprError::syntax(self.src, span, message)
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
    }

    /// Reads the next token; at the end of input returns [`Tok::Eof`].
    pub fn next_token(&mut self) -> Result<Token, ExprError> {
        self.skip_ws();
        let start = self.pos;
        let Some(&c) = self.bytes().get(start) else {
            return Ok(Token {
                tok: Tok::Eof,
                span: start..start,
            });
        };
        let single = |tok| Token {
            tok,
            span: start..start + 1,
        };
        let simple = match c {
            b',' => Some(Tok::Comma),
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b':' => Some(Tok::Colon),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            _ => None,
        };
        if let Some(tok) = simple {
            self.pos += 1;
            return Ok(single(tok));
        }
        let rest = self.rest();
        for (text, op) in OPERATORS {
            if rest.starts_with(text) {
                self.pos += text.len();
                return Ok(Token {
                    tok: Tok::Op(*op),
                    span: start..self.pos,
                });
            }
        }
        match c {
            b'?' => {
                self.pos += 1;
                return Ok(single(Tok::Question));
            }
            b'!' => {
                self.pos += 1;
                return Ok(single(Tok::Not));
            }
            _ => {}
        }
        if rest.starts_with("...") {
            self.pos += 3;
            return Ok(Token {
                tok: Tok::Spread,
                span: start..self.pos,
            });
        }
        for (word, value) in [
            ("null", Value::Null),
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
        ] {
            // Like Testkube, `nullable` or `true.x` are accessors, not keywords;
            // unlike Testkube, `null...` is a spread null, not a variable "null".
            let after = &rest.as_bytes()[word.len().min(rest.len())..];
            let accessor = after.first().is_some_and(|b| is_word(*b) || *b == b'.')
                && !after.starts_with(b"...");
            if rest.starts_with(word) && !accessor {
                self.pos += word.len();
                return Ok(Token {
                    tok: Tok::Value(value),
                    span: start..self.pos,
                });
            }
        }
        match c {
            b'\'' | b'"' => self.string(c),
            b'0'..=b'9' => self.number(),
            b'.' => self.property(),
            _ if is_word(c) => Ok(self.ident()),
            _ => {
                let ch = rest.chars().next().unwrap_or('?');
                Err(self.err(
                    start..start + ch.len_utf8(),
                    format!("unexpected character `{ch}`"),
                ))
            }
        }
    }

    /// Reads `word(.word|.*)*`, allowing whitespace around the dots as Testkube does.
    fn ident(&mut self) -> Token {
        let start = self.pos;
        let mut name = String::new();
        self.pos += self.word_len(self.pos);
        name.push_str(&self.src[start..self.pos]);
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.bytes().get(self.pos) != Some(&b'.') || self.rest().starts_with("...") {
                self.pos = save;
                break;
            }
            self.pos += 1;
            self.skip_ws();
            let len = self.word_len(self.pos);
            if len > 0 {
                name.push('.');
                name.push_str(&self.src[self.pos..self.pos + len]);
                self.pos += len;
            } else if self.bytes().get(self.pos) == Some(&b'*') {
                name.push_str(".*");
                self.pos += 1;
            } else {
                self.pos = save;
                break;
            }
        }
        Token {
            tok: Tok::Ident(name),
            span: start..self.pos,
        }
    }

    fn word_len(&self, from: usize) -> usize {
        self.bytes()[from..]
            .iter()
            .take_while(|b| is_word(**b))
            .count()
    }

    /// Reads `.name` or `.*` following a non-identifier (`[1].0`, `(x).y`).
    fn property(&mut self) -> Result<Token, ExprError> {
        let start = self.pos;
        self.pos += 1;
        self.skip_ws();
        let len = self.word_len(self.pos);
        let name = if len > 0 {
            self.src[self.pos..self.pos + len].to_string()
        } else if self.bytes().get(self.pos) == Some(&b'*') {
            "*".to_string()
        } else {
            return Err(self.err(start..start + 1, "unexpected `.`"));
        };
        self.pos += name.len();
        Ok(Token {
            tok: Tok::Prop(name),
            span: start..self.pos,
        })
    }

    /// Reads a JSON number. Integers that fit stay `i64`; others become floats
    /// (integral floats are stored as integers, see [`value::number`]).
    fn number(&mut self) -> Result<Token, ExprError> {
        let start = self.pos;
        let b = self.bytes();
        let mut end = start;
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        // JSON forbids leading zeros: `01` is the number 0 followed by 1.
        end = if b[end] == b'0' { end + 1 } else { digits(end) };
        let mut integer = true;
        if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end = digits(end + 1);
            integer = false;
        }
        if matches!(b.get(end), Some(b'e' | b'E')) {
            let mut i = end + 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !b.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(self.err(start..i, "invalid number exponent"));
            }
            end = digits(i);
            integer = false;
        }
        let text = &self.src[start..end];
        self.pos = end;
        let span = start..end;
        if integer && let Ok(i) = text.parse::<i64>() {
            return Ok(Token {
                tok: Tok::Value(Value::from(i)),
                span,
            });
        }
        let f: f64 = text
            .parse()
            .map_err(|_| self.err(span.clone(), format!("invalid number `{text}`")))?;
        let v = value::number(f)
            .map_err(|_| self.err(span.clone(), format!("number `{text}` is out of range")))?;
        Ok(Token {
            tok: Tok::Value(v),
            span,
        })
    }

    /// Reads a quoted string with JSON escapes; single-quoted strings also
    /// accept `\'`. Raw newlines and tabs are allowed, as in Testkube.
    fn string(&mut self, quote: u8) -> Result<Token, ExprError> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        loop {
            let Some((i, ch)) = chars.next() else {
                return Err(self.err(start..self.src.len(), "unterminated string"));
            };
            let at = start + 1 + i;
            match ch {
                c if c as u32 == quote as u32 => {
                    self.pos = at + 1;
                    return Ok(Token {
                        tok: Tok::Value(Value::String(out)),
                        span: start..self.pos,
                    });
                }
                '\\' => {
                    let Some((_, esc)) = chars.next() else {
                        return Err(self.err(start..self.src.len(), "unterminated string"));
                    };
                    match esc {
                        '\'' if quote == b'\'' => out.push('\''),
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let c = self.unicode_escape(&mut chars, at)?;
                            out.push(c);
                        }
                        other => {
                            return Err(self.err(
                                at..at + 1 + other.len_utf8(),
                                format!("invalid escape `\\{other}` in string"),
                            ));
                        }
                    }
                }
                '\n' | '\t' => out.push(ch),
                c if (c as u32) < 0x20 => {
                    return Err(self.err(at..at + 1, "invalid control character in string"));
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&self, chars: &mut std::str::CharIndices<'_>, at: usize) -> Result<u32, ExprError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = chars.next().and_then(|(_, c)| c.to_digit(16));
            let Some(d) = d else {
                return Err(self.err(at..at + 2, "invalid `\\u` escape in string"));
            };
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn unicode_escape(
        &self,
        chars: &mut std::str::CharIndices<'_>,
        at: usize,
    ) -> Result<char, ExprError> {
        let hi = self.hex4(chars, at)?;
        if (0xD800..0xDC00).contains(&hi) {
            // A high surrogate must be followed by `\uDC00`-`\uDFFF`; Go substitutes
            // U+FFFD for a lone surrogate, and so do we.
            let mut look = chars.clone();
            if let (Some((_, '\\')), Some((_, 'u'))) = (look.next(), look.next())
                && let Ok(lo) = self.hex4(&mut look, at)
                && (0xDC00..0xE000).contains(&lo)
            {
                *chars = look;
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            return Ok('\u{FFFD}');
        }
        Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lex(src: &str) -> Result<Vec<Tok>, ExprError> {
        let mut l = Lexer::new(src, 0);
        let mut out = vec![];
        loop {
            let t = l.next_token()?;
            if t.tok == Tok::Eof {
                return Ok(out);
            }
            out.push(t.tok);
        }
    }

    #[test]
    fn operators() {
        for (op, want) in OPERATORS {
            let toks = lex(&format!("a{op}b")).unwrap();
            assert_eq!(
                toks,
                vec![
                    Tok::Ident("a".into()),
                    Tok::Op(*want),
                    Tok::Ident("b".into())
                ],
                "{op}"
            );
        }
        assert_eq!(
            lex("!abc").unwrap(),
            vec![Tok::Not, Tok::Ident("abc".into())]
        );
    }

    #[test]
    fn accessors_and_wildcards() {
        assert_eq!(
            lex("a.b.c.*.d.e").unwrap(),
            vec![Tok::Ident("a.b.c.*.d.e".into())]
        );
        assert_eq!(
            lex("a.b.c.0.d.e").unwrap(),
            vec![Tok::Ident("a.b.c.0.d.e".into())]
        );
        assert_eq!(
            lex("a . b .* . c").unwrap(),
            vec![Tok::Ident("a.b.*.c".into())]
        );
        assert_eq!(
            lex("a...").unwrap(),
            vec![Tok::Ident("a".into()), Tok::Spread]
        );
        assert_eq!(
            lex("[1].0").unwrap(),
            vec![
                Tok::LBracket,
                Tok::Value(json!(1)),
                Tok::RBracket,
                Tok::Prop("0".into())
            ]
        );
        assert!(lex("abc.").is_err());
        assert_eq!(
            lex("nullable").unwrap(),
            vec![Tok::Ident("nullable".into())]
        );
        assert_eq!(
            lex("null + 4").unwrap(),
            vec![
                Tok::Value(json!(null)),
                Tok::Op(BinOp::Add),
                Tok::Value(json!(4))
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            lex("1 + 255").unwrap(),
            vec![
                Tok::Value(json!(1)),
                Tok::Op(BinOp::Add),
                Tok::Value(json!(255))
            ]
        );
        assert_eq!(lex("1.6").unwrap(), vec![Tok::Value(json!(1.6))]);
        assert_eq!(lex("1e2").unwrap(), vec![Tok::Value(json!(100))]);
        assert_eq!(lex("2.0").unwrap(), vec![Tok::Value(json!(2))]);
        assert!(lex("1e").is_err());
        assert!(lex("1e999").is_err());
        assert_eq!(
            lex("99999999999999999999").unwrap(),
            vec![Tok::Value(json!(1e20))]
        );
    }

    #[test]
    fn strings() {
        assert_eq!(
            lex(r#""a\"b\n\u00e9""#).unwrap(),
            vec![Tok::Value(json!("a\"b\né"))]
        );
        assert_eq!(
            lex(r"'foo\'bar'").unwrap(),
            vec![Tok::Value(json!("foo'bar"))]
        );
        assert_eq!(
            lex(r#"'foo"bar'"#).unwrap(),
            vec![Tok::Value(json!("foo\"bar"))]
        );
        assert_eq!(
            lex("'\nabc\n'").unwrap(),
            vec![Tok::Value(json!("\nabc\n"))]
        );
        assert_eq!(
            lex(r#""\ud83d\ude00""#).unwrap(),
            vec![Tok::Value(json!("😀"))]
        );
        let err = lex(r"'foobar\'").unwrap_err();
        assert!(err.message.contains("unterminated string"), "{err}");
        assert!(lex(r#""\q""#).is_err());
        assert!(lex("\"a\rb\"").is_err());
    }

    #[test]
    fn unknown_character_reports_column() {
        let err = lex("a # b").unwrap_err();
        assert_eq!(err.message, "unexpected character `#` at column 3");
        assert_eq!(err.span, Some(2..3));
    }
}
