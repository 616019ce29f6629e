//! Printing expressions back to source: bare (`Display`) and as templates.
//!
//! The printed form parses back to an equal tree, with Testkube-compatible
//! syntax and only the parentheses that grouping needs (plus a few that make
//! a unary minus or a nested `?:` readable).

use std::fmt::{self, Write};

use serde_json::Value;

use crate::ast::{Arg, BinOp, Expr};
use crate::value;

/// Where an expression is printed, which decides whether it needs parentheses.
#[derive(Clone, Copy)]
enum Ctx {
    /// Top level, call argument, list item, inside brackets: anything goes.
    Free,
    BinLeft(i32),
    BinRight(i32),
    CondCond,
    CondBranch,
    NotOperand,
    NegOperand,
    PropBase,
}

fn is_negative_number(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.as_f64().is_some_and(|f| f < 0.0) || n.as_i64().is_some_and(|i| i < 0)
        }
        _ => false,
    }
}

fn needs_parens(e: &Expr, ctx: Ctx) -> bool {
    if matches!(ctx, Ctx::Free) {
        return false;
    }
    match e {
        // A unary minus swallows everything after it, so it is only safe last;
        // under another minus it needs nothing (`--x`).
        Expr::Neg(_) => !matches!(ctx, Ctx::NegOperand),
        Expr::Lit(v) if is_negative_number(v) => !matches!(ctx, Ctx::NegOperand),
        // `?:` is left-associative, so a conditional may be another's condition.
        Expr::Cond(..) => !matches!(ctx, Ctx::CondCond),
        Expr::Lit(v) => {
            matches!(ctx, Ctx::PropBase)
                && !matches!(v, Value::String(_) | Value::Array(_) | Value::Object(_))
        }
        // `a.b` followed by `.c` would lex as the single accessor `a.b.c`.
        Expr::Var(_) | Expr::Not(_) => matches!(ctx, Ctx::PropBase),
        Expr::Binary(op, ..) => {
            let p = op.precedence();
            match ctx {
                Ctx::Free | Ctx::CondCond => false,
                Ctx::BinLeft(outer) => p < outer,
                Ctx::BinRight(outer) => p <= outer,
                // Branches are parsed at Testkube's priority 0: `&&`/`||` end them.
                Ctx::CondBranch => p <= 0,
                // `-(a + b)` reads better than the equivalent `-a + b`.
                Ctx::NotOperand | Ctx::NegOperand | Ctx::PropBase => true,
            }
        }
        Expr::Prop(..) | Expr::Call(..) | Expr::List(_) | Expr::Object(_) => false,
    }
}

fn write_expr(e: &Expr, ctx: Ctx, out: &mut dyn Write) -> fmt::Result {
    if needs_parens(e, ctx) {
        out.write_char('(')?;
        write_expr(e, Ctx::Free, out)?;
        return out.write_char(')');
    }
    match e {
        Expr::Lit(v) => out.write_str(&serde_json::to_string(v).map_err(|_| fmt::Error)?),
        Expr::Var(name) => out.write_str(name),
        Expr::Prop(base, path) => {
            write_expr(base, Ctx::PropBase, out)?;
            for seg in path {
                out.write_char('.')?;
                out.write_str(seg)?;
            }
            Ok(())
        }
        Expr::List(items) => {
            out.write_char('[')?;
            write_args(items, out)?;
            out.write_char(']')
        }
        Expr::Object(entries) => {
            out.write_char('{')?;
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                out.write_str(&serde_json::to_string(k).map_err(|_| fmt::Error)?)?;
                out.write_str(": ")?;
                write_expr(v, Ctx::Free, out)?;
            }
            out.write_char('}')
        }
        Expr::Not(inner) => {
            out.write_char('!')?;
            write_expr(inner, Ctx::NotOperand, out)
        }
        Expr::Neg(inner) => {
            out.write_char('-')?;
            write_expr(inner, Ctx::NegOperand, out)
        }
        Expr::Binary(op, l, r) => {
            let p = op.precedence();
            write_expr(l, Ctx::BinLeft(p), out)?;
            write!(out, " {} ", op.symbol())?;
            write_expr(r, Ctx::BinRight(p), out)
        }
        Expr::Cond(c, t, f) => {
            write_expr(c, Ctx::CondCond, out)?;
            out.write_str(" ? ")?;
            write_expr(t, Ctx::CondBranch, out)?;
            out.write_str(" : ")?;
            write_expr(f, Ctx::CondBranch, out)
        }
        Expr::Call(name, args) => {
            out.write_str(name)?;
            out.write_char('(')?;
            write_args(args, out)?;
            out.write_char(')')
        }
    }
}

fn write_args(args: &[Arg], out: &mut dyn Write) -> fmt::Result {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        write_expr(&a.expr, Ctx::Free, out)?;
        if a.spread {
            out.write_str("...")?;
        }
    }
    Ok(())
}

impl fmt::Display for Expr {
    /// Prints a bare expression that parses back to an equal tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_expr(self, Ctx::Free, f)
    }
}

enum Segment {
    Text(String),
    Expr(String),
}

fn template_segments(e: &Expr, out: &mut Vec<Segment>) {
    match e {
        Expr::Lit(v) => match out.last_mut() {
            Some(Segment::Text(t)) => t.push_str(&value::to_string(v)),
            _ => out.push(Segment::Text(value::to_string(v))),
        },
        // `l + r` where one side is a string concatenates both sides' strings.
        Expr::Binary(BinOp::Add, l, r) if e.is_string_typed() => {
            template_segments(l, out);
            template_segments(r, out);
        }
        Expr::Call(name, args) if name == "string" && args.iter().all(|a| !a.spread) => {
            for a in args {
                template_segments(&a.expr, out);
            }
        }
        other => out.push(Segment::Expr(other.to_string())),
    }
}

/// Escapes literal template text: `{{` would open an expression, and so would
/// a trailing `{` right before one (`{` + `{{x}}`).
fn escape_text(text: &str, before_expr: bool, out: &mut String) {
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        out.push_str(r#"{{"{{"}}"#);
        rest = &rest[i + 2..];
    }
    if before_expr && let Some(stripped) = rest.strip_suffix('{') {
        out.push_str(stripped);
        out.push_str(r#"{{"{"}}"#);
    } else {
        out.push_str(rest);
    }
}

impl Expr {
    /// Prints the expression as a template string: constant text as itself,
    /// computed parts as `{{expr}}` (`"a " + string(x)` → `a {{x}}`).
    ///
    /// [`crate::parse_template`] reads the result back to an expression with
    /// the same value. This is how a partially resolved string field is stored.
    pub fn to_template_string(&self) -> String {
        let mut segments = Vec::new();
        template_segments(self, &mut segments);
        let mut out = String::new();
        for (i, seg) in segments.iter().enumerate() {
            match seg {
                Segment::Text(t) => {
                    let before_expr = matches!(segments.get(i + 1), Some(Segment::Expr(_)));
                    escape_text(t, before_expr, &mut out);
                }
                Segment::Expr(e) => {
                    out.push_str("{{");
                    out.push_str(e);
                    out.push_str("}}");
                }
            }
        }
        out
    }
}
