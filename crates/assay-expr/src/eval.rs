//! Partial and full evaluation.
//!
//! One resolver does both. In partial mode unknown variables, unknown
//! functions and run-time-only functions (`date`) stay in the tree and
//! everything else is folded; in final mode they are errors.
//!
//! Partial evaluation must never change the result: resolving with some
//! machines and then evaluating with the rest gives what evaluating with all
//! of them gives. Two rules keep that true:
//! - `any()` only folds when its leading arguments decide it (Testkube picks
//!   the first argument that happens to be known, which depends on *when*
//!   it is resolved);
//! - a failure inside code that may not run (a `?:` branch or the right of
//!   `&&`/`||` whose left side is still unknown) is not raised now: that node
//!   is left unfolded and fails at run time only if it is reached.

use serde_json::{Map, Value};

use crate::ast::{Arg, BinOp, Expr};
use crate::budget::Budget;
use crate::error::{ErrorKind, ExprError};
use crate::machine::{Lookup, Machine};
use crate::{ops, stdlib, value};

/// How deep evaluation may recurse (tree depth plus variable expansions,
/// `eval()` and `map()` nesting) before giving up.
pub const MAX_EVAL_DEPTH: usize = 256;

/// Depth charged for each nested `eval`/`map`/`filter` evaluation.
const NESTED_COST: usize = 16;

pub(crate) struct Resolver<'a> {
    pub machines: &'a [&'a dyn Machine],
    /// Final mode: everything must resolve.
    pub finalize: bool,
    /// Shared by every resolver of one evaluation (nested `map`s too).
    pub budget: &'a Budget,
}

#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    depth: usize,
    /// Inside code that may not run; see the module docs.
    guarded: bool,
}

impl Ctx {
    pub fn root() -> Self {
        Ctx {
            depth: 0,
            guarded: false,
        }
    }

    pub fn enter(self) -> Result<Ctx, ExprError> {
        if self.depth >= MAX_EVAL_DEPTH {
            return Err(ExprError::too_deep(format!(
                "expression evaluation nested too deeply (limit {MAX_EVAL_DEPTH})"
            )));
        }
        Ok(Ctx {
            depth: self.depth + 1,
            ..self
        })
    }

    /// Entering a nested evaluation (`eval`, `map`, `filter`) costs more than
    /// one level: its path through the standard library uses far more stack.
    pub fn enter_nested(self) -> Result<Ctx, ExprError> {
        let mut ctx = self;
        for _ in 0..NESTED_COST {
            ctx = ctx.enter()?;
        }
        Ok(ctx)
    }

    fn guarded(self) -> Ctx {
        Ctx {
            guarded: true,
            ..self
        }
    }
}

impl<'a> Resolver<'a> {
    /// Whether a failure at this point should leave the node in place.
    fn keeps_errors(&self, ctx: Ctx) -> bool {
        ctx.guarded && !self.finalize
    }

    /// Runs `f`; on failure either keeps `fallback` (guarded, partial mode) or
    /// returns the error.
    fn or_keep(
        &self,
        ctx: Ctx,
        result: Result<Expr, ExprError>,
        fallback: impl FnOnce() -> Expr,
    ) -> Result<Expr, ExprError> {
        match result {
            Err(e)
                if self.keeps_errors(ctx)
                    && !matches!(e.kind, ErrorKind::TooDeep | ErrorKind::Budget) =>
            {
                Ok(fallback())
            }
            other => other,
        }
    }

    /// Resolves one node. Each kind of node has its own function so that this
    /// recursive dispatcher keeps a small stack frame (deep trees recurse here).
    pub fn resolve(&self, e: &Expr, ctx: Ctx) -> Result<Expr, ExprError> {
        let ctx = ctx.enter()?;
        self.budget.steps(1)?;
        match e {
            Expr::Lit(v) => {
                self.budget.value(v)?;
                Ok(e.clone())
            }
            Expr::Var(name) => self.var(name, ctx),
            Expr::Prop(base, path) => self.prop(base, path, ctx),
            Expr::List(items) => self.list(items, ctx),
            Expr::Object(entries) => self.object(entries, ctx),
            Expr::Not(inner) => self.not(inner, ctx),
            Expr::Neg(inner) => self.neg(inner, ctx),
            Expr::Binary(op @ (BinOp::And | BinOp::Or), l, r) => self.logical(*op, l, r, ctx),
            Expr::Binary(op, l, r) => self.binary(*op, l, r, ctx),
            Expr::Cond(c, t, f) => self.cond(c, t, f, ctx),
            Expr::Call(name, args) => self.call(name, args, ctx),
        }
    }

    #[inline(never)]
    fn prop(&self, base: &Expr, path: &[String], ctx: Ctx) -> Result<Expr, ExprError> {
        let base = self.resolve(base, ctx)?;
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        self.access(base, &path, ctx)
    }

    #[inline(never)]
    fn object(&self, entries: &[(String, Expr)], ctx: Ctx) -> Result<Expr, ExprError> {
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            out.push((k.clone(), self.resolve(v, ctx)?));
        }
        Ok(Expr::object(out))
    }

    #[inline(never)]
    fn not(&self, inner: &Expr, ctx: Ctx) -> Result<Expr, ExprError> {
        Ok(match self.resolve(inner, ctx)? {
            Expr::Lit(v) => Expr::Lit(Value::Bool(!value::truthy(&v))),
            other => Expr::negation(other),
        })
    }

    #[inline(never)]
    fn neg(&self, inner: &Expr, ctx: Ctx) -> Result<Expr, ExprError> {
        let inner = self.resolve(inner, ctx)?;
        let Expr::Lit(v) = &inner else {
            return Ok(Expr::negative(inner));
        };
        let result = ops::binary(BinOp::Sub, &Value::from(0), v)
            .map(Expr::Lit)
            .map_err(|m| ExprError::eval(format!("{m} in `-{inner}`")));
        self.or_keep(ctx, result, || Expr::Neg(Box::new(inner.clone())))
    }

    #[inline(never)]
    fn binary(&self, op: BinOp, l: &Expr, r: &Expr, ctx: Ctx) -> Result<Expr, ExprError> {
        let l = self.resolve(l, ctx)?;
        let r = self.resolve(r, ctx)?;
        let (Expr::Lit(lv), Expr::Lit(rv)) = (&l, &r) else {
            return Ok(Expr::binary(op, l, r));
        };
        let result = ops::binary(op, lv, rv).map(Expr::Lit).map_err(|m| {
            ExprError::eval(format!(
                "{m} in `{}`",
                Expr::binary(op, l.clone(), r.clone())
            ))
        });
        self.or_keep(ctx, result, || Expr::binary(op, l.clone(), r.clone()))
    }

    #[inline(never)]
    fn cond(&self, c: &Expr, t: &Expr, f: &Expr, ctx: Ctx) -> Result<Expr, ExprError> {
        let c = self.resolve(c, ctx)?;
        if let Expr::Lit(v) = &c {
            return self.resolve(if value::truthy(v) { t } else { f }, ctx);
        }
        let t = self.resolve(t, ctx.guarded())?;
        let f = self.resolve(f, ctx.guarded())?;
        // `x ? a : a` is `a` whatever `x` is.
        if t == f && t.is_static() {
            return Ok(t);
        }
        Ok(Expr::cond(c, t, f))
    }

    #[inline(never)]
    fn logical(&self, op: BinOp, l: &Expr, r: &Expr, ctx: Ctx) -> Result<Expr, ExprError> {
        let l = self.resolve(l, ctx)?;
        if let Expr::Lit(v) = &l {
            // `&&` yields the right side when the left is truthy, `||` when falsy.
            let go_right = value::truthy(v) == (op == BinOp::And);
            return if go_right {
                self.resolve(r, ctx)
            } else {
                Ok(l)
            };
        }
        let r = self.resolve(r, ctx.guarded())?;
        // With a boolean left side, a constant boolean right side decides:
        // `x && true` is `x`, `x && false` is `false` (Testkube does the same).
        if let Expr::Lit(Value::Bool(b)) = r
            && l.is_bool_typed()
        {
            let keep_left = b == (op == BinOp::And);
            return Ok(if keep_left {
                l
            } else {
                Expr::Lit(Value::Bool(b))
            });
        }
        Ok(Expr::binary(op, l, r))
    }

    fn lookup(&self, name: &str) -> Lookup {
        self.machines
            .iter()
            .map(|m| m.lookup(name))
            .find(|l| !matches!(l, Lookup::Unknown))
            .unwrap_or(Lookup::Unknown)
    }

    /// Resolves a dotted name: the whole name first, then shorter prefixes
    /// with the rest read as properties.
    #[inline(never)]
    fn var(&self, name: &str, ctx: Ctx) -> Result<Expr, ExprError> {
        let segments: Vec<&str> = name.split('.').collect();
        for n in (1..=segments.len()).rev() {
            let prefix = segments[..n].join(".");
            let base = match self.lookup(&prefix) {
                Lookup::Unknown => continue,
                Lookup::Value(v) => {
                    self.budget.value(&v)?;
                    Expr::Lit(v)
                }
                Lookup::Expr(e) => self
                    .resolve(&e, ctx)
                    .map_err(|e| e.context(format_args!("resolving `{prefix}`")))?,
            };
            return self.access(base, &segments[n..], ctx);
        }
        if self.finalize {
            Err(ExprError::unknown_variable(name))
        } else {
            Ok(Expr::Var(name.to_string()))
        }
    }

    /// Reads `path` as properties of `base`, like Testkube's `at()` per segment.
    fn access(&self, base: Expr, path: &[&str], ctx: Ctx) -> Result<Expr, ExprError> {
        if path.is_empty() {
            return Ok(base);
        }
        let owned = || path.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let Expr::Lit(v) = &base else {
            // Through the constructor, so that `(x).a` + `.b` stays one node.
            return Ok(path
                .iter()
                .fold(base, |e, seg| Expr::prop(e, seg.to_string())));
        };
        self.budget.value(v)?;
        let mut current = v.clone();
        for (i, seg) in path.iter().enumerate() {
            match stdlib::at(&current, &Value::String(seg.to_string())) {
                Ok(next) => current = next,
                Err(m) => {
                    let err =
                        ExprError::eval(format!("cannot read `{}`: {m}", path[..=i].join(".")));
                    return self.or_keep(ctx, Err(err), || {
                        Expr::Prop(Box::new(base.clone()), owned())
                    });
                }
            }
        }
        Ok(Expr::Lit(current))
    }

    /// A plain loop rather than an iterator chain: in debug builds every
    /// adaptor adds a stack frame on the recursion path.
    fn resolve_args(&self, args: &[Arg], ctx: Ctx) -> Result<Vec<Arg>, ExprError> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            out.push(Arg {
                expr: self.resolve(&a.expr, ctx)?,
                spread: a.spread,
            });
        }
        Ok(out)
    }

    #[inline(never)]
    fn list(&self, items: &[Arg], ctx: Ctx) -> Result<Expr, ExprError> {
        let items = self.resolve_args(items, ctx)?;
        if !items.iter().all(|a| a.expr.is_static()) {
            return Ok(Expr::List(items));
        }
        let result = expand(&items, self.budget).map(|v| Expr::Lit(Value::Array(v)));
        self.or_keep(ctx, result, || Expr::List(items.clone()))
    }

    #[inline(never)]
    fn call(&self, name: &str, args: &[Arg], ctx: Ctx) -> Result<Expr, ExprError> {
        let args = self.resolve_args(args, ctx)?;
        self.apply(name, args, ctx)
    }

    /// Calls a function on resolved arguments (kept out of `call` so that the
    /// recursion path stays lean).
    #[inline(never)]
    fn apply(&self, name: &str, args: Vec<Arg>, ctx: Ctx) -> Result<Expr, ExprError> {
        let keep = || Expr::Call(name.to_string(), args.clone());
        // Functions that can decide with some arguments still unknown.
        match name {
            "any" => return self.or_keep(ctx, any(&args), keep),
            "default" => return self.or_keep(ctx, default(&args), keep),
            "string" if !args.iter().all(|a| a.expr.is_static()) => {
                return Ok(simplify_string(args));
            }
            "bool" if args.len() == 1 && !args[0].spread && args[0].expr.is_bool_typed() => {
                return Ok(args[0].expr.clone());
            }
            _ => {}
        }
        if !args.iter().all(|a| a.expr.is_static()) {
            if matches!(name, "map" | "filter") && !self.finalize {
                return Ok(Expr::Call(
                    name.to_string(),
                    self.resolve_item_expr(args, ctx),
                ));
            }
            return Ok(keep());
        }
        let values = match expand(&args, self.budget) {
            Ok(v) => v,
            Err(e) => {
                return self.or_keep(ctx, Err(e.context(format_args!("calling `{name}`"))), keep);
            }
        };
        if !self.finalize && stdlib::is_runtime_only(name, &values) {
            return Ok(keep());
        }
        let result = match stdlib::call(self, name, &values, ctx) {
            Some(r) => r,
            None => match self.machines.iter().find_map(|m| m.call(name, &values)) {
                Some(Ok(v)) => {
                    self.budget.value(&v)?;
                    Ok(Expr::Lit(value::normalize(v)))
                }
                Some(Err(e)) => Err(e),
                None if self.finalize => {
                    return Err(ExprError::unknown_function(name, stdlib::suggest(name)));
                }
                None => return Ok(keep()),
            },
        };
        if let Ok(Expr::Lit(v)) = &result {
            self.budget.value(v)?;
        }
        let result = result.map_err(|e| {
            if matches!(e.kind, ErrorKind::Eval) {
                e.context(format_args!("calling `{}`", keep()))
            } else {
                e
            }
        });
        self.or_keep(ctx, result, keep)
    }

    /// `map(list, "expr")` with the list still unknown: what is known now
    /// must go into the expression string, or it would be missing when the
    /// list becomes known (at run time, without the compile-time machines).
    /// `_` names belong to the item and stay.
    pub(crate) fn resolve_item_expr(&self, mut args: Vec<Arg>, ctx: Ctx) -> Vec<Arg> {
        if let [
            _,
            Arg {
                expr: Expr::Lit(Value::String(src)),
                spread: false,
            },
        ] = args.as_slice()
            && let Ok(parsed) = crate::parse(src)
        {
            let shadow = Shadow(self.machines);
            let machines: [&dyn Machine; 1] = [&shadow];
            let inner = Resolver {
                machines: &machines,
                finalize: false,
                budget: self.budget,
            };
            if let Ok(resolved) = ctx
                .enter_nested()
                .and_then(|c| inner.resolve(&parsed, c.guarded()))
            {
                args[1].expr = Expr::string(resolved.to_string());
            }
        }
        args
    }

    /// Evaluates an expression string per item, as `map`/`filter` and
    /// wildcards do, with `_.value`, `_.index` and `_.key` set.
    pub fn with_item(
        &self,
        expr: &Expr,
        item: &Value,
        index: usize,
        key: Value,
        ctx: Ctx,
    ) -> Result<Expr, ExprError> {
        self.budget.value(item)?;
        let vars = crate::Vars::new()
            .with("_.value", item.clone())
            .with("_.index", index)
            .with("_.key", key);
        let mut machines: Vec<&dyn Machine> = Vec::with_capacity(self.machines.len() + 1);
        machines.push(&vars);
        machines.extend(self.machines.iter().copied());
        let inner = Resolver {
            machines: &machines,
            finalize: self.finalize,
            budget: self.budget,
        };
        inner.resolve(expr, ctx.enter_nested()?)
    }
}

/// The machines with the item variables (`_`, `_.value`, …) hidden.
struct Shadow<'a>(&'a [&'a dyn Machine]);

impl Machine for Shadow<'_> {
    fn lookup(&self, name: &str) -> Lookup {
        if name == "_" || name.starts_with("_.") {
            return Lookup::Unknown;
        }
        self.0
            .iter()
            .map(|m| m.lookup(name))
            .find(|l| !matches!(l, Lookup::Unknown))
            .unwrap_or(Lookup::Unknown)
    }

    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, ExprError>> {
        self.0.iter().find_map(|m| m.call(name, args))
    }
}

/// Expands spread arguments of constant arguments: `null` spreads to nothing,
/// a list to its items, anything else is an error.
fn expand(args: &[Arg], budget: &Budget) -> Result<Vec<Value>, ExprError> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        if let Some(v) = a.expr.as_static() {
            budget.value(v)?;
        }
        let v = a.expr.as_static().cloned().unwrap_or(Value::Null);
        if !a.spread {
            out.push(v);
            continue;
        }
        match v {
            Value::Null => {}
            Value::Array(items) => out.extend(items),
            other => {
                return Err(ExprError::eval(format!(
                    "spread operator (...) used on {}, which is not a list",
                    value::describe(&other)
                )));
            }
        }
    }
    Ok(out)
}

/// `any(a, b, ...)`: the first argument (the first item of a spread list,
/// skipping empty ones), or `null`. Stays unresolved while an unknown
/// argument comes first.
fn any(args: &[Arg]) -> Result<Expr, ExprError> {
    for a in args {
        let Expr::Lit(v) = &a.expr else {
            return Ok(Expr::Call("any".into(), args.to_vec()));
        };
        if !a.spread {
            return Ok(Expr::Lit(v.clone()));
        }
        match v {
            Value::Null => {}
            Value::Array(items) => {
                if let Some(first) = items.first() {
                    return Ok(Expr::Lit(first.clone()));
                }
            }
            other => {
                return Err(ExprError::eval(format!(
                    "spread operator (...) used on {}, which is not a list",
                    value::describe(other)
                )));
            }
        }
    }
    Ok(Expr::Lit(Value::Null))
}

/// A partially known `string(...)`: nested `string()` calls are flattened,
/// constants turned into text and merged, and a single string-typed argument
/// stands alone. Keeps resolved templates short (`string("a1b", env.X)`).
fn simplify_string(args: Vec<Arg>) -> Expr {
    let mut out: Vec<Arg> = Vec::with_capacity(args.len());
    let mut pending = args;
    pending.reverse();
    while let Some(a) = pending.pop() {
        match a.expr {
            Expr::Call(name, inner) if name == "string" && !a.spread => {
                pending.extend(inner.into_iter().rev())
            }
            Expr::Lit(v) if !a.spread => {
                let text = value::to_string(&v);
                if let Some(Arg {
                    expr: Expr::Lit(Value::String(prev)),
                    spread: false,
                }) = out.last_mut()
                {
                    prev.push_str(&text);
                } else {
                    out.push(Arg::plain(Expr::Lit(Value::String(text))));
                }
            }
            expr => out.push(Arg {
                expr,
                spread: a.spread,
            }),
        }
    }
    out.retain(|a| a.expr.as_static().is_none_or(|v| v.as_str() != Some("")));
    match out.as_slice() {
        [] => Expr::string(""),
        [one] if !one.spread && one.expr.is_string_typed() => out.remove(0).expr,
        _ => Expr::Call("string".into(), out),
    }
}

/// `default(value, fallback)`: `value` unless it is `null` or `""`.
fn default(args: &[Arg]) -> Result<Expr, ExprError> {
    if args.len() != 2 || args.iter().any(|a| a.spread) {
        return Err(ExprError::eval(format!(
            "`default` expects 2 arguments, {} given",
            args.len()
        )));
    }
    match &args[0].expr {
        Expr::Lit(Value::Null) => Ok(args[1].expr.clone()),
        Expr::Lit(Value::String(s)) if s.is_empty() => Ok(args[1].expr.clone()),
        Expr::Lit(v) => Ok(Expr::Lit(v.clone())),
        _ => Ok(Expr::Call("default".into(), args.to_vec())),
    }
}

/// Builds an object value; used by `entries`.
pub(crate) fn entry(key: &str, value: &Value) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), Value::String(key.to_string()));
    m.insert("value".into(), value.clone());
    Value::Object(m)
}
