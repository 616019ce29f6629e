//! `{{ }}` templates: text with embedded expressions.

use crate::ast::Expr;
use crate::error::ExprError;
use crate::lexer::Tok;
use crate::parser::Parser;
use crate::value;

/// Parses a template such as `"a {{ x }} b"` into a string expression
/// (`string("a ", x, " b")`); text without `{{` becomes a constant string.
///
/// As in Testkube, an expression ends at the first `}}` that is not inside a
/// string (or object literal), `{{ }}` is dropped, and a literal `{{` is
/// written `{{"{{"}}`. Constant parts are converted to strings right away.
pub fn parse_template(src: &str) -> Result<Expr, ExprError> {
    let mut parts: Vec<Expr> = Vec::new();
    let mut offset = 0;
    while let Some(i) = src[offset..].find("{{") {
        let open = offset + i;
        if i > 0 {
            parts.push(Expr::string(&src[offset..open]));
        }
        let (expr, stop) = Parser::new(src, open + 2).parse_embedded()?;
        match stop.tok {
            Tok::RBrace if src[stop.span.end..].starts_with('}') => offset = stop.span.end + 1,
            Tok::Eof => return Err(ExprError::syntax(src, open..open + 2, "unclosed `{{`")),
            _ => {
                return Err(ExprError::syntax(
                    src,
                    stop.span,
                    "expected `}}` to close the expression",
                ));
            }
        }
        if let Some(e) = expr {
            parts.push(stringify(e));
        }
    }
    if offset < src.len() {
        parts.push(Expr::string(&src[offset..]));
    }
    Ok(concat(parts))
}

/// Converts a constant part to its string right away, as Testkube's
/// `CastToString` does; computed parts are converted by `string()`.
fn stringify(e: Expr) -> Expr {
    match e {
        Expr::Lit(v) => Expr::string(value::to_string(&v)),
        e => e,
    }
}

/// Joins the parts into one flat `string(...)` call (which concatenates its
/// arguments' strings), so that a template with hundreds of interpolations
/// stays one level deep. A single part that is already a string stays as is.
fn concat(parts: Vec<Expr>) -> Expr {
    let mut merged: Vec<Expr> = Vec::new();
    for part in parts {
        if let (
            Some(Expr::Lit(serde_json::Value::String(prev))),
            Expr::Lit(serde_json::Value::String(s)),
        ) = (merged.last_mut(), &part)
        {
            prev.push_str(s);
            continue;
        }
        merged.push(part);
    }
    match merged.len() {
        0 => Expr::string(""),
        1 => match merged.pop() {
            Some(e) if e.is_string_typed() => e,
            Some(e) => Expr::call("string", vec![e]),
            None => Expr::string(""),
        },
        _ => Expr::call("string", merged),
    }
}
