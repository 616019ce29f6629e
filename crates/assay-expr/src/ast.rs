//! The expression tree.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A binary operator. `&&` and `||` share one precedence level and, like all
/// operators, associate to the left (Testkube's parser does it this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `&&`: the left operand if it is falsy, otherwise the right one.
    And,
    /// `||`: the left operand if it is truthy, otherwise the right one.
    Or,
    /// `==` (also written `=`): compares the operands' string forms.
    Eq,
    /// `!=` (also written `<>`).
    Ne,
    /// `<` on numbers.
    Lt,
    /// `<=` on numbers.
    Le,
    /// `>` on numbers.
    Gt,
    /// `>=` on numbers.
    Ge,
    /// `+`: concatenation if either side is a string, else addition.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`, always a float division.
    Div,
    /// `%`, the remainder with the sign of the dividend.
    Mod,
    /// `**`.
    Pow,
}

impl BinOp {
    /// Binding strength as in Testkube's parser: higher binds tighter.
    pub fn precedence(self) -> i32 {
        match self {
            BinOp::And | BinOp::Or => 0,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 1,
            BinOp::Add | BinOp::Sub => 2,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 3,
            BinOp::Pow => 4,
        }
    }

    /// The operator's canonical spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
        }
    }

    pub(crate) fn is_comparison(self) -> bool {
        self.precedence() == 1
    }
}

/// A call argument or list item, optionally spread (`items...`).
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The argument's expression.
    pub expr: Expr,
    /// Whether the argument is followed by `...` (its list items are passed
    /// one by one; `null` spreads to nothing).
    pub spread: bool,
}

impl Arg {
    /// A plain (not spread) argument.
    pub fn plain(expr: Expr) -> Self {
        Arg {
            expr,
            spread: false,
        }
    }
}

/// A parsed (and possibly partially resolved) expression.
///
/// Build trees with the parser or with the constructor functions (`Expr::list`,
/// `Expr::negative`, …), which keep the tree in the canonical shape the parser
/// produces, so that printing and parsing again gives an equal tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant.
    Lit(Value),
    /// A variable, possibly dotted (`config.name`, `step.x.outputs.y`).
    Var(String),
    /// Property access on a computed value: `(expr).a.b`.
    Prop(Box<Expr>, Vec<String>),
    /// A list literal with at least one non-constant or spread item.
    List(Vec<Arg>),
    /// An object literal with at least one non-constant value.
    Object(Vec<(String, Expr)>),
    /// `!expr`.
    Not(Box<Expr>),
    /// `-expr`. Testkube parses everything after a unary minus as its operand,
    /// so `-1 + 2` is `-(1 + 2)`.
    Neg(Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `cond ? then : else`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(String, Vec<Arg>),
}

impl Expr {
    /// A constant string.
    pub fn string(s: impl Into<String>) -> Expr {
        Expr::Lit(Value::String(s.into()))
    }

    /// `-e`; a negated number literal folds into a negative literal, as the
    /// parser does for `-5`.
    pub fn negative(e: Expr) -> Expr {
        if let Expr::Lit(Value::Number(n)) = &e {
            if let Some(i) = n.as_i64()
                && let Some(neg) = i.checked_neg()
            {
                return Expr::Lit(Value::from(neg));
            }
            if let Some(f) = n.as_f64()
                && let Ok(v) = crate::value::number(-f)
            {
                return Expr::Lit(v);
            }
        }
        Expr::Neg(Box::new(e))
    }

    /// `!e`.
    pub fn negation(e: Expr) -> Expr {
        Expr::Not(Box::new(e))
    }

    /// `l op r`.
    pub fn binary(op: BinOp, l: Expr, r: Expr) -> Expr {
        Expr::Binary(op, Box::new(l), Box::new(r))
    }

    /// `c ? t : f`.
    pub fn cond(c: Expr, t: Expr, f: Expr) -> Expr {
        Expr::Cond(Box::new(c), Box::new(t), Box::new(f))
    }

    /// A call with plain arguments.
    pub fn call(name: impl Into<String>, args: Vec<Expr>) -> Expr {
        Expr::Call(name.into(), args.into_iter().map(Arg::plain).collect())
    }

    /// A list literal; constant when every item is constant and not spread.
    pub fn list(items: Vec<Arg>) -> Expr {
        if items.iter().all(|a| !a.spread && a.expr.is_static()) {
            Expr::Lit(Value::Array(
                items.into_iter().map(|a| a.expr.into_static()).collect(),
            ))
        } else {
            Expr::List(items)
        }
    }

    /// An object literal; constant when every value is constant.
    pub fn object(entries: Vec<(String, Expr)>) -> Expr {
        if entries.iter().all(|(_, e)| e.is_static()) {
            let mut map = Map::new();
            for (k, e) in entries {
                map.insert(k, e.into_static());
            }
            Expr::Lit(Value::Object(map))
        } else {
            Expr::Object(entries)
        }
    }

    /// `base.seg`; consecutive property accesses share one node.
    pub fn prop(base: Expr, seg: String) -> Expr {
        match base {
            Expr::Prop(b, mut path) => {
                path.push(seg);
                Expr::Prop(b, path)
            }
            other => Expr::Prop(Box::new(other), vec![seg]),
        }
    }

    /// The constant value, if the expression is one.
    pub fn as_static(&self) -> Option<&Value> {
        match self {
            Expr::Lit(v) => Some(v),
            _ => None,
        }
    }

    /// Calls `f` on this node and every node below it, depth first, and on
    /// the expressions of `map`/`filter` strings (`map(x, "f(_.value)")`),
    /// which are parsed for the purpose. For checks such as unknown names.
    pub fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        // Bounded: parsing limits depth, and nested strings are parsed once each.
        f(self);
        match self {
            Expr::Lit(_) | Expr::Var(_) => {}
            Expr::Prop(base, _) => base.visit(f),
            Expr::List(items) => items.iter().for_each(|a| a.expr.visit(f)),
            Expr::Object(entries) => entries.iter().for_each(|(_, e)| e.visit(f)),
            Expr::Not(e) | Expr::Neg(e) => e.visit(f),
            Expr::Binary(_, l, r) => {
                l.visit(f);
                r.visit(f);
            }
            Expr::Cond(c, t, e) => {
                c.visit(f);
                t.visit(f);
                e.visit(f);
            }
            Expr::Call(name, args) => {
                args.iter().for_each(|a| a.expr.visit(f));
                if matches!(name.as_str(), "map" | "filter")
                    && let Some(Expr::Lit(Value::String(src))) = args.get(1).map(|a| &a.expr)
                    && let Ok(inner) = crate::parse(src)
                {
                    inner.visit(f);
                }
            }
        }
    }

    /// Whether the expression is a constant.
    pub fn is_static(&self) -> bool {
        matches!(self, Expr::Lit(_))
    }

    fn into_static(self) -> Value {
        match self {
            Expr::Lit(v) => v,
            _ => Value::Null,
        }
    }

    /// Names of the variables the expression reads (like Testkube's
    /// `Accessors()`), e.g. to tell which run-time values a plan needs.
    pub fn variables(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.walk(&mut |e| {
            if let Expr::Var(name) = e {
                out.insert(name.clone());
            }
        });
        out
    }

    /// Names of the functions the expression calls.
    pub fn functions(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.walk(&mut |e| {
            if let Expr::Call(name, _) = e {
                out.insert(name.clone());
            }
        });
        out
    }

    fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Lit(_) | Expr::Var(_) => {}
            Expr::Prop(b, _) | Expr::Not(b) | Expr::Neg(b) => b.walk(f),
            Expr::List(items) | Expr::Call(_, items) => items.iter().for_each(|a| a.expr.walk(f)),
            Expr::Object(entries) => entries.iter().for_each(|(_, e)| e.walk(f)),
            Expr::Binary(_, l, r) => {
                l.walk(f);
                r.walk(f);
            }
            Expr::Cond(c, t, e) => {
                c.walk(f);
                t.walk(f);
                e.walk(f);
            }
        }
    }

    /// Whether the expression certainly yields a boolean (or fails), which
    /// makes `x && true` → `x` sound.
    pub(crate) fn is_bool_typed(&self) -> bool {
        match self {
            Expr::Lit(v) => v.is_boolean(),
            Expr::Not(_) => true,
            Expr::Binary(op, l, r) => {
                op.is_comparison()
                    || matches!(op, BinOp::And | BinOp::Or)
                        && l.is_bool_typed()
                        && r.is_bool_typed()
            }
            Expr::Cond(_, t, f) => t.is_bool_typed() && f.is_bool_typed(),
            Expr::Call(name, _) => name == "bool",
            _ => false,
        }
    }

    /// Whether the expression certainly yields a string (or fails), which
    /// makes `string(x)` → `x` sound and lets templates print `a{{x}}`.
    pub(crate) fn is_string_typed(&self) -> bool {
        match self {
            Expr::Lit(v) => v.is_string(),
            Expr::Binary(BinOp::Add, l, r) => l.is_string_typed() || r.is_string_typed(),
            Expr::Cond(_, t, f) => t.is_string_typed() && f.is_string_typed(),
            Expr::Call(name, _) => matches!(
                name.as_str(),
                "string"
                    | "trim"
                    | "shellquote"
                    | "tojson"
                    | "toyaml"
                    | "date"
                    | "relpath"
                    | "abspath"
                    | "makepath"
                    | "testSelector"
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn constructors_fold_constants() {
        assert_eq!(
            Expr::list(vec![Arg::plain(Expr::Lit(json!(1)))]),
            Expr::Lit(json!([1]))
        );
        assert!(matches!(
            Expr::list(vec![Arg {
                expr: Expr::Lit(json!([1])),
                spread: true
            }]),
            Expr::List(_)
        ));
        assert_eq!(
            Expr::object(vec![("a".into(), Expr::Lit(json!(1)))]),
            Expr::Lit(json!({"a": 1}))
        );
        assert_eq!(Expr::negative(Expr::Lit(json!(5))), Expr::Lit(json!(-5)));
        assert_eq!(
            Expr::negative(Expr::Lit(json!(0.5))),
            Expr::Lit(json!(-0.5))
        );
        assert!(matches!(
            Expr::negative(Expr::Lit(json!("5"))),
            Expr::Neg(_)
        ));
    }

    #[test]
    fn collects_variables_and_functions() {
        let e = crate::parse("calling(something, 5 * (other + 3), !another)").unwrap();
        assert_eq!(
            e.variables().into_iter().collect::<Vec<_>>(),
            ["another", "other", "something"]
        );
        let e = crate::parse("calling(something(), 45 + 2 + 10 + string(abc * a(c)))").unwrap();
        assert_eq!(
            e.functions().into_iter().collect::<Vec<_>>(),
            ["a", "calling", "something", "string"]
        );
    }
}
