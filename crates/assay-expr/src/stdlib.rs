//! The standard functions, with Testkube's semantics.

use serde_json::Value;

use crate::ast::{Arg, Expr};
use crate::error::ExprError;
use crate::eval::{Ctx, Resolver, entry};
use crate::value::{self, ValueError, describe, number, to_float, to_int, to_string, truthy};
use crate::{date, paths, yaml};

/// Every function name the standard library defines (`_wc` is the internal
/// target of `a.*.b` wildcards).
pub const FUNCTIONS: &[&str] = &[
    "string",
    "list",
    "join",
    "split",
    "int",
    "float",
    "bool",
    "tojson",
    "json",
    "toyaml",
    "yaml",
    "shellquote",
    "shellparse",
    "trim",
    "len",
    "floor",
    "ceil",
    "round",
    "chunk",
    "at",
    "map",
    "filter",
    "entries",
    "range",
    "date",
    "any",
    "default",
    "eval",
    "relpath",
    "abspath",
    "makepath",
    "jq",
    "testSelector",
    "_wc",
];

/// Most items `range()` may produce, so that a typo cannot exhaust memory.
const MAX_RANGE: i64 = 1_000_000;

/// The closest standard function name, for "did you mean" hints.
pub fn suggest(name: &str) -> Option<&'static str> {
    FUNCTIONS
        .iter()
        .filter(|f| !f.starts_with('_'))
        .map(|f| (strsim::levenshtein(name, f), *f))
        .filter(|(d, f)| *d <= 2 && *d < f.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f)
}

/// Whether a call must wait for run time even with constant arguments: the
/// current date, and paths relative to the working directory.
pub fn is_runtime_only(name: &str, args: &[Value]) -> bool {
    let abs = |v: Option<&Value>| v.is_some_and(|v| to_string(v).starts_with('/'));
    match name {
        "date" => true,
        "relpath" => !(args.len() == 2 && abs(args.first()) && abs(args.get(1))),
        "abspath" => !(abs(args.first()) || args.len() == 2 && abs(args.get(1))),
        _ => false,
    }
}

fn err(message: impl Into<String>) -> ExprError {
    ExprError::eval(message)
}

fn arity(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), ExprError> {
    if (min..=max).contains(&args.len()) {
        return Ok(());
    }
    let want = match (min, max) {
        (a, b) if a == b => format!("{a} argument{}", if a == 1 { "" } else { "s" }),
        (a, b) => format!("{a}-{b} arguments"),
    };
    Err(err(format!(
        "`{name}` expects {want}, {} given",
        args.len()
    )))
}

fn lit(v: Value) -> Result<Expr, ExprError> {
    Ok(Expr::Lit(v))
}

/// Reads `container[key]` like Testkube's `at()`: list and string positions
/// (strings by character), object keys (a missing key is `null`).
pub fn at(container: &Value, key: &Value) -> Result<Value, ValueError> {
    match container {
        Value::Array(items) => {
            let k = to_int(key).map_err(|_| ValueError::IndexNotANumber {
                container: "list",
                key: describe(key),
            })?;
            usize::try_from(k)
                .ok()
                .and_then(|i| items.get(i).cloned())
                .ok_or(ValueError::OutOfBounds {
                    index: k,
                    length: items.len(),
                })
        }
        Value::Object(map) => Ok(map.get(&to_string(key)).cloned().unwrap_or(Value::Null)),
        Value::String(s) => {
            let k = to_int(key).map_err(|_| ValueError::IndexNotANumber {
                container: "string",
                key: describe(key),
            })?;
            usize::try_from(k)
                .ok()
                .and_then(|i| s.chars().nth(i))
                .map(|c| Value::String(c.to_string()))
                .ok_or_else(|| ValueError::OutOfBounds {
                    index: k,
                    length: s.chars().count(),
                })
        }
        other => Err(ValueError::NotIndexable(describe(other))),
    }
}

/// Calls a standard function on constant arguments. `None` when the name is
/// not a standard function.
pub fn call(
    r: &Resolver<'_>,
    name: &str,
    args: &[Value],
    ctx: Ctx,
) -> Option<Result<Expr, ExprError>> {
    let a = args;
    let result = match name {
        "string" => lit(Value::String(a.iter().map(to_string).collect())),
        "list" => lit(Value::Array(a.to_vec())),
        "join" => join(a),
        "split" => split(r, a),
        "int" => arity(name, a, 1, 1).and_then(|_| {
            to_int(&a[0])
                .map(Value::from)
                .map(Expr::Lit)
                .map_err(ExprError::from)
        }),
        "float" => arity(name, a, 1, 1).and_then(|_| {
            to_float(&a[0])
                .and_then(number)
                .map(Expr::Lit)
                .map_err(ExprError::from)
        }),
        "bool" => arity(name, a, 1, 1).and_then(|_| lit(Value::Bool(truthy(&a[0])))),
        "tojson" => arity(name, a, 1, 1).and_then(|_| lit(Value::String(value::to_json(&a[0])))),
        "json" => arity(name, a, 1, 1).and_then(|_| parse_json(&a[0])),
        "toyaml" => arity(name, a, 1, 1).and_then(|_| lit(Value::String(yaml::to_yaml(&a[0])))),
        "yaml" => arity(name, a, 1, 1).and_then(|_| parse_yaml(&a[0])),
        "shellquote" => shellquote(a),
        "shellparse" => arity(name, a, 1, 1).and_then(|_| shellparse(&a[0])),
        "trim" => arity(name, a, 1, 1).and_then(|_| match &a[0] {
            Value::String(s) => lit(Value::String(s.trim().to_string())),
            other => Err(err(format!(
                "`trim` expects a string, not {}",
                describe(other)
            ))),
        }),
        "len" => arity(name, a, 1, 1).and_then(|_| len(&a[0])),
        "floor" => rounding(name, a, f64::floor),
        "ceil" => rounding(name, a, f64::ceil),
        // Go's math.Round, like Rust's, rounds half away from zero.
        "round" => rounding(name, a, f64::round),
        "chunk" => chunk(a),
        "at" => arity(name, a, 2, 2)
            .and_then(|_| at(&a[0], &a[1]).map(Expr::Lit).map_err(ExprError::from)),
        "map" | "_wc" => map(r, name, a, ctx),
        "filter" => filter(r, a, ctx),
        "entries" => arity(name, a, 1, 1).and_then(|_| entries(&a[0])),
        "range" => range(r, a),
        "date" => date(a),
        "eval" => arity(name, a, 1, 1).and_then(|_| {
            let src = to_string(&a[0]);
            let e = crate::parse(&src)
                .map_err(|e| e.context(format_args!("`eval` of {}", describe(&a[0]))))?;
            r.resolve(&e, ctx.enter_nested()?)
        }),
        "relpath" => relpath(a),
        "abspath" => abspath(a),
        "makepath" => arity(name, a, 2, 2).and_then(|_| {
            let (parent, child) = (to_string(&a[0]), to_string(&a[1]));
            lit(Value::String(
                if child.starts_with('/') || parent.is_empty() {
                    child
                } else {
                    paths::join(&parent, &child)
                },
            ))
        }),
        "jq" => Err(err("function `jq` is not supported")),
        "testSelector" => arity(name, a, 2, 2).and_then(|_| {
            crate::selector::render(&to_string(&a[0]), &a[1])
                .map(|s| Expr::Lit(Value::String(s)))
                .map_err(ExprError::from)
        }),
        _ => return None,
    };
    Some(result)
}

fn join(a: &[Value]) -> Result<Expr, ExprError> {
    arity("join", a, 1, 2)?;
    let sep = a.get(1).map_or_else(|| ",".to_string(), to_string);
    match &a[0] {
        Value::Null => lit(Value::Null),
        Value::Array(items) => lit(Value::String(
            items.iter().map(to_string).collect::<Vec<_>>().join(&sep),
        )),
        other => Err(err(format!(
            "`join` expects a list, not {}",
            describe(other)
        ))),
    }
}

fn split(r: &Resolver<'_>, a: &[Value]) -> Result<Expr, ExprError> {
    arity("split", a, 1, 2)?;
    let s = to_string(&a[0]);
    let sep = a.get(1).map_or_else(|| ",".to_string(), to_string);
    // Each part is a value of its own: count them before making them.
    let parts = if sep.is_empty() {
        s.chars().count()
    } else {
        s.matches(sep.as_str()).count() + 1
    };
    r.budget.items(parts as u64, 0)?;
    // Go splits around an empty separator into single characters.
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_string()))
            .collect()
    };
    lit(Value::Array(parts))
}

fn parse_json(v: &Value) -> Result<Expr, ExprError> {
    let Value::String(s) = v else {
        return Err(err(format!("`json` expects a string, not {}", describe(v))));
    };
    serde_json::from_str::<Value>(s)
        .map(|v| Expr::Lit(value::normalize(v)))
        .map_err(|e| err(format!("`json` could not parse its argument: {e}")))
}

fn parse_yaml(v: &Value) -> Result<Expr, ExprError> {
    let Value::String(s) = v else {
        return Err(err(format!("`yaml` expects a string, not {}", describe(v))));
    };
    serde_saphyr::from_str::<Value>(s)
        .map(|v| Expr::Lit(value::normalize(v)))
        .map_err(|e| err(format!("`yaml` could not parse its argument: {e}")))
}

fn shellquote(a: &[Value]) -> Result<Expr, ExprError> {
    let mut words = Vec::with_capacity(a.len());
    for v in a {
        let s = to_string(v);
        let quoted = shlex::try_quote(&s)
            .map_err(|e| err(format!("`shellquote` cannot quote {}: {e}", describe(v))))?;
        words.push(quoted.into_owned());
    }
    lit(Value::String(words.join(" ")))
}

fn shellparse(v: &Value) -> Result<Expr, ExprError> {
    let s = to_string(v);
    let words = shlex::split(&s).ok_or_else(|| {
        err(format!(
            "`shellparse` cannot parse {}: unbalanced quotes",
            describe(v)
        ))
    })?;
    lit(Value::Array(words.into_iter().map(Value::String).collect()))
}

fn len(v: &Value) -> Result<Expr, ExprError> {
    let n = match v {
        Value::Array(items) => items.len(),
        // Go's len() counts bytes.
        Value::String(s) => s.len(),
        Value::Object(map) => map.len(),
        other => {
            return Err(err(format!(
                "`len` expects a string, list or object, not {}",
                describe(other)
            )));
        }
    };
    lit(Value::from(n))
}

fn rounding(name: &str, a: &[Value], f: fn(f64) -> f64) -> Result<Expr, ExprError> {
    arity(name, a, 1, 1)?;
    let x = to_float(&a[0]).map_err(|m| err(format!("`{name}` expects a number: {m}")))?;
    number(f(x)).map(Expr::Lit).map_err(ExprError::from)
}

/// A list argument; `null` counts as the empty list, as in Testkube.
fn list_arg<'v>(name: &str, v: &'v Value) -> Result<std::borrow::Cow<'v, [Value]>, ExprError> {
    match v {
        Value::Array(items) => Ok(std::borrow::Cow::Borrowed(items)),
        Value::Null => Ok(std::borrow::Cow::Owned(Vec::new())),
        other => Err(err(format!(
            "`{name}` expects a list, not {}",
            describe(other)
        ))),
    }
}

fn chunk(a: &[Value]) -> Result<Expr, ExprError> {
    arity("chunk", a, 2, 2)?;
    let items = list_arg("chunk", &a[0])?;
    let size = to_int(&a[1]).map_err(|m| err(format!("`chunk` expects a chunk size: {m}")))?;
    if size < 1 {
        return Err(err(format!(
            "`chunk` expects a chunk size of at least 1, not {size}"
        )));
    }
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    lit(Value::Array(
        items
            .chunks(size)
            .map(|c| Value::Array(c.to_vec()))
            .collect(),
    ))
}

/// `map(list, "expr")` and wildcards: the expression per item, with
/// `_.value`, `_.index` and `_.key`. Wildcards also walk object values (an
/// extension: Testkube only maps lists).
fn map(r: &Resolver<'_>, name: &str, a: &[Value], ctx: Ctx) -> Result<Expr, ExprError> {
    arity(name, a, 2, 2)?;
    let items: Vec<(Value, Value)> = match (&a[0], name) {
        (Value::Object(m), "_wc") => m
            .iter()
            .map(|(k, v)| (Value::String(k.clone()), v.clone()))
            .collect(),
        (v, _) => list_arg(name, v)?
            .iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i), v.clone()))
            .collect(),
    };
    let src = to_string(&a[1]);
    let expr = crate::parse(&src)
        .map_err(|e| e.context(format_args!("`{name}` expression {}", describe(&a[1]))))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, (key, item)) in items.into_iter().enumerate() {
        let e = r
            .with_item(&expr, &item, i, key, ctx)
            .map_err(|e| e.context(format_args!("`{name}` item {i}")))?;
        out.push(Arg::plain(e));
    }
    Ok(Expr::list(out))
}

fn filter(r: &Resolver<'_>, a: &[Value], ctx: Ctx) -> Result<Expr, ExprError> {
    arity("filter", a, 2, 2)?;
    let items = list_arg("filter", &a[0])?;
    let src = to_string(&a[1]);
    let expr = crate::parse(&src)
        .map_err(|e| e.context(format_args!("`filter` expression {}", describe(&a[1]))))?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let keep = r
            .with_item(&expr, item, i, Value::from(i), ctx)
            .map_err(|e| e.context(format_args!("`filter` item {i}")))?;
        match keep {
            Expr::Lit(v) => {
                if truthy(&v) {
                    out.push(item.clone());
                }
            }
            // Depends on something unknown yet: decide at run time.
            _ => {
                let args = vec![
                    Arg::plain(Expr::Lit(a[0].clone())),
                    Arg::plain(Expr::Lit(a[1].clone())),
                ];
                return Ok(Expr::Call("filter".into(), r.resolve_item_expr(args, ctx)));
            }
        }
    }
    lit(Value::Array(out))
}

fn entries(v: &Value) -> Result<Expr, ExprError> {
    let list = match v {
        Value::Object(m) => m.iter().map(|(k, v)| entry(k, v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| entry(&i.to_string(), v))
            .collect(),
        Value::Null => Vec::new(),
        other => {
            return Err(err(format!(
                "`entries` expects an object, not {}",
                describe(other)
            )));
        }
    };
    lit(Value::Array(list))
}

fn range(r: &Resolver<'_>, a: &[Value]) -> Result<Expr, ExprError> {
    arity("range", a, 1, 2)?;
    let int = |v: &Value| to_int(v).map_err(|m| err(format!("`range` expects integers: {m}")));
    let (start, end) = if a.len() == 1 {
        (0, int(&a[0])?)
    } else {
        (int(&a[0])?, int(&a[1])?)
    };
    let count = end.saturating_sub(start).max(0);
    if count > MAX_RANGE {
        return Err(err(format!(
            "`range` would produce {count} items, more than the limit of {MAX_RANGE}"
        )));
    }
    r.budget.items(count as u64, 0)?;
    lit(Value::Array(
        (0..count).map(|i| Value::from(start + i)).collect(),
    ))
}

fn date(a: &[Value]) -> Result<Expr, ExprError> {
    arity("date", a, 0, 1)?;
    let layout = a
        .first()
        .map_or_else(|| date::RFC3339_MILLIS.to_string(), to_string);
    lit(Value::String(date::format_now(&layout)))
}

fn cwd() -> String {
    std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into())
}

fn relpath(a: &[Value]) -> Result<Expr, ExprError> {
    arity("relpath", a, 1, 2)?;
    let cwd = cwd();
    let target = paths::abs(&to_string(&a[0]), &cwd);
    let base = paths::abs(&a.get(1).map_or_else(|| cwd.clone(), to_string), &cwd);
    paths::rel(&base, &target)
        .map(|p| Expr::Lit(Value::String(p)))
        .map_err(ExprError::from)
}

fn abspath(a: &[Value]) -> Result<Expr, ExprError> {
    arity("abspath", a, 1, 2)?;
    let cwd = cwd();
    let base = paths::abs(&a.get(1).map_or_else(|| cwd.clone(), to_string), &cwd);
    lit(Value::String(paths::abs(&to_string(&a[0]), &base)))
}
