//! JMESPath for Kyverno: the `jmespath` crate's runtime with the functions of Kyverno's that
//! policies use most, and `{{ }}` variable substitution over a JSON document.

use jmespath::functions::{ArgumentType as A, CustomFunction, Signature};
use jmespath::{Context, ErrorReason, JmespathError, Rcvar, Runtime, RuntimeError, Variable};
use serde_json::Value;
use std::sync::LazyLock;

use super::scalar::{parse_duration, parse_quantity, wildcard_match};

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let mut rt = Runtime::new();
    rt.register_builtin_functions();
    register_kyverno_functions(&mut rt);
    rt
});

/// Evaluates a JMESPath query against `data`.
pub fn query(expression: &str, data: &Value) -> Result<Value, String> {
    let expr = RUNTIME.compile(expression.trim()).map_err(|e| {
        format!(
            "invalid JMESPath `{}`: {}",
            expression.trim(),
            first_line(&e.to_string())
        )
    })?;
    let result = expr.search(data).map_err(|e| {
        format!(
            "JMESPath query `{}` failed: {}",
            expression.trim(),
            first_line(&e.to_string())
        )
    })?;
    serde_json::to_value(&*result).map_err(|e| e.to_string())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

static VARIABLE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})").expect("variable regex")
});

/// Replaces `{{ query }}` in every string of `doc` (keys too). A string that is one variable
/// becomes the query's value with its type; otherwise the value is written into the text
/// (strings as they are, everything else as JSON). `\{{` escapes.
pub fn substitute(doc: &Value, data: &Value) -> Result<Value, String> {
    Ok(match doc {
        Value::String(s) => substitute_str(s, data)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| substitute(v, data))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let key = match substitute_str(k, data)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, substitute(v, data)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

pub fn substitute_str(s: &str, data: &Value) -> Result<Value, String> {
    if !s.contains("{{") {
        return Ok(Value::String(s.to_string()));
    }
    let mut text = s.to_string();
    // nested variables resolve inside out: repeat until none is left
    for _ in 0..16 {
        let found: Vec<String> = VARIABLE
            .captures_iter(&text)
            .map(|c| c[2].to_string())
            .collect();
        if found.is_empty() {
            break;
        }
        for var in found {
            let inner = var.trim_start_matches("{{").trim_end_matches("}}").trim();
            let (inner, shallow) = match inner.strip_prefix('-') {
                Some(rest) => (rest.trim(), true),
                None => (inner, false),
            };
            let value = query(inner, data)?;
            if text == var {
                return Ok(value);
            }
            let mut replacement = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if shallow {
                replacement = replacement.replace("{{", "\\{{");
            }
            text = text.replacen(&var, &replacement, 1);
        }
    }
    Ok(Value::String(text.replace("\\{{", "{{")))
}

fn rv(v: Value) -> Result<Rcvar, JmespathError> {
    Variable::from_serializable(v).map(Rcvar::new)
}

fn js(v: &Rcvar) -> Value {
    serde_json::to_value(&**v).unwrap_or(Value::Null)
}

fn err(ctx: &Context<'_>, msg: String) -> JmespathError {
    JmespathError::from_ctx(
        ctx,
        ErrorReason::Runtime(RuntimeError::InvalidReturnType {
            expected: msg,
            actual: String::new(),
            position: 0,
            invocation: 0,
        }),
    )
}

fn s(v: &Rcvar) -> String {
    match &**v {
        Variable::String(s) => s.clone(),
        other => serde_json::to_value(other)
            .map(|v| match v {
                Value::String(s) => s,
                v => v.to_string(),
            })
            .unwrap_or_default(),
    }
}

macro_rules! func {
    ($rt:expr, $name:expr, [$($arg:expr),*], $body:expr) => {
        $rt.register_function($name, Box::new(CustomFunction::new(Signature::new(vec![$($arg),*], None), Box::new($body))));
    };
}

fn number_or_quantity(v: &Value) -> Option<(f64, Kind)> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| (f, Kind::Number)),
        Value::String(s) => parse_duration(s)
            .filter(|_| s.chars().any(|c| c.is_ascii_alphabetic()))
            .map(|d| (d, Kind::Duration))
            .or_else(|| parse_quantity(s).map(|q| (q, Kind::Quantity))),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Number,
    Quantity,
    Duration,
}

fn arith(
    args: &[Rcvar],
    ctx: &mut Context<'_>,
    f: fn(f64, f64) -> f64,
) -> Result<Rcvar, JmespathError> {
    let a = js(&args[0]);
    let b = js(&args[1]);
    let (Some((x, kx)), Some((y, _))) = (number_or_quantity(&a), number_or_quantity(&b)) else {
        return Err(err(ctx, "numbers, quantities or durations".into()));
    };
    let r = f(x, y);
    match kx {
        Kind::Number => rv(serde_json::json!(r)),
        Kind::Quantity => rv(Value::String(format_number(r))),
        Kind::Duration => rv(Value::String(format!("{}s", format_number(r)))),
    }
}

fn format_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn register_kyverno_functions(rt: &mut Runtime) {
    func!(
        rt,
        "to_upper",
        [A::String],
        |a: &[Rcvar], _: &mut Context<'_>| rv(Value::String(s(&a[0]).to_uppercase()))
    );
    func!(
        rt,
        "to_lower",
        [A::String],
        |a: &[Rcvar], _: &mut Context<'_>| rv(Value::String(s(&a[0]).to_lowercase()))
    );
    func!(
        rt,
        "equal_fold",
        [A::String, A::String],
        |a: &[Rcvar], _: &mut Context<'_>| {
            rv(Value::Bool(
                s(&a[0]).to_lowercase() == s(&a[1]).to_lowercase(),
            ))
        }
    );
    func!(rt, "compare", [A::String, A::String], |a: &[Rcvar],
                                                  _: &mut Context<
        '_,
    >| {
        rv(serde_json::json!(s(&a[0]).cmp(&s(&a[1])) as i32))
    });
    func!(
        rt,
        "replace",
        [A::String, A::String, A::String, A::Number],
        |a: &[Rcvar], _: &mut Context<'_>| {
            let n = a[3].as_number().unwrap_or(-1.0);
            let text = s(&a[0]);
            let out = if n < 0.0 {
                text.replace(&s(&a[1]), &s(&a[2]))
            } else {
                text.replacen(&s(&a[1]), &s(&a[2]), n as usize)
            };
            rv(Value::String(out))
        }
    );
    func!(
        rt,
        "replace_all",
        [A::String, A::String, A::String],
        |a: &[Rcvar], _: &mut Context<'_>| {
            rv(Value::String(s(&a[0]).replace(&s(&a[1]), &s(&a[2]))))
        }
    );
    func!(
        rt,
        "trim",
        [A::String, A::String],
        |a: &[Rcvar], _: &mut Context<'_>| {
            let cut: Vec<char> = s(&a[1]).chars().collect();
            rv(Value::String(
                s(&a[0]).trim_matches(|c| cut.contains(&c)).to_string(),
            ))
        }
    );
    func!(
        rt,
        "trim_prefix",
        [A::String, A::String],
        |a: &[Rcvar], _: &mut Context<'_>| {
            let t = s(&a[0]);
            let p = s(&a[1]);
            rv(Value::String(
                t.strip_prefix(p.as_str()).unwrap_or(&t).to_string(),
            ))
        }
    );
    func!(rt, "split", [A::String, A::String], |a: &[Rcvar],
                                                _: &mut Context<
        '_,
    >| {
        let t = s(&a[0]);
        let sep = s(&a[1]);
        let parts: Vec<Value> = if sep.is_empty() {
            t.chars().map(|c| Value::String(c.to_string())).collect()
        } else {
            t.split(sep.as_str())
                .map(|p| Value::String(p.to_string()))
                .collect()
        };
        rv(Value::Array(parts))
    });
    func!(rt, "truncate", [A::String, A::Number], |a: &[Rcvar],
                                                   _: &mut Context<
        '_,
    >| {
        let n = a[1].as_number().unwrap_or(0.0).max(0.0) as usize;
        rv(Value::String(s(&a[0]).chars().take(n).collect()))
    });
    func!(
        rt,
        "regex_match",
        [A::String, A::Union(vec![A::String, A::Number])],
        |a: &[Rcvar], ctx: &mut Context<'_>| {
            let re = regex::Regex::new(&s(&a[0]))
                .map_err(|e| err(ctx, format!("a valid regular expression ({e})")))?;
            rv(Value::Bool(re.is_match(&s(&a[1]))))
        }
    );
    func!(
        rt,
        "regex_replace_all",
        [
            A::String,
            A::Union(vec![A::String, A::Number]),
            A::Union(vec![A::String, A::Number])
        ],
        |a: &[Rcvar], ctx: &mut Context<'_>| {
            let re = regex::Regex::new(&s(&a[0]))
                .map_err(|e| err(ctx, format!("a valid regular expression ({e})")))?;
            let repl = s(&a[2]);
            rv(Value::String(
                re.replace_all(&s(&a[1]), repl.as_str()).into_owned(),
            ))
        }
    );
    func!(
        rt,
        "regex_replace_all_literal",
        [
            A::String,
            A::Union(vec![A::String, A::Number]),
            A::Union(vec![A::String, A::Number])
        ],
        |a: &[Rcvar], ctx: &mut Context<'_>| {
            let re = regex::Regex::new(&s(&a[0]))
                .map_err(|e| err(ctx, format!("a valid regular expression ({e})")))?;
            rv(Value::String(
                re.replace_all(&s(&a[1]), regex::NoExpand(&s(&a[2])))
                    .into_owned(),
            ))
        }
    );
    func!(
        rt,
        "pattern_match",
        [A::String, A::Union(vec![A::String, A::Number])],
        |a: &[Rcvar], _: &mut Context<'_>| {
            rv(Value::Bool(wildcard_match(&s(&a[0]), &s(&a[1]))))
        }
    );
    func!(
        rt,
        "label_match",
        [A::Object, A::Object],
        |a: &[Rcvar], _: &mut Context<'_>| {
            let (sel, labels) = (js(&a[0]), js(&a[1]));
            let ok = sel.as_object().is_some_and(|sel| {
                sel.iter()
                    .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
            });
            rv(Value::Bool(ok))
        }
    );
    func!(
        rt,
        "to_boolean",
        [A::String],
        |a: &[Rcvar], ctx: &mut Context<'_>| {
            match s(&a[0]).to_lowercase().as_str() {
                "true" => rv(Value::Bool(true)),
                "false" => rv(Value::Bool(false)),
                other => Err(err(ctx, format!("`true` or `false`, not {other}"))),
            }
        }
    );
    func!(
        rt,
        "add",
        [A::Any, A::Any],
        |a: &[Rcvar], c: &mut Context<'_>| arith(a, c, |x, y| x + y)
    );
    func!(
        rt,
        "subtract",
        [A::Any, A::Any],
        |a: &[Rcvar], c: &mut Context<'_>| arith(a, c, |x, y| x - y)
    );
    func!(
        rt,
        "multiply",
        [A::Any, A::Any],
        |a: &[Rcvar], c: &mut Context<'_>| arith(a, c, |x, y| x * y)
    );
    func!(
        rt,
        "divide",
        [A::Any, A::Any],
        |a: &[Rcvar], ctx: &mut Context<'_>| {
            let (x, y) = (
                number_or_quantity(&js(&a[0])),
                number_or_quantity(&js(&a[1])),
            );
            match (x, y) {
                (Some(_), Some((0.0, _))) => Err(err(ctx, "a divisor that is not zero".into())),
                // a quantity divided by a quantity is a plain number
                (Some((x, _)), Some((y, _))) => rv(serde_json::json!(x / y)),
                _ => Err(err(ctx, "numbers, quantities or durations".into())),
            }
        }
    );
    func!(
        rt,
        "modulo",
        [A::Any, A::Any],
        |a: &[Rcvar], c: &mut Context<'_>| arith(a, c, |x, y| x % y)
    );
    func!(rt, "round", [A::Number, A::Number], |a: &[Rcvar],
                                                _: &mut Context<
        '_,
    >| {
        let p = 10f64.powi(a[1].as_number().unwrap_or(0.0) as i32);
        rv(serde_json::json!(
            (a[0].as_number().unwrap_or(0.0) * p).round() / p
        ))
    });
    func!(
        rt,
        "base64_decode",
        [A::String],
        |a: &[Rcvar], ctx: &mut Context<'_>| {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s(&a[0]).trim())
                .map_err(|e| err(ctx, format!("base64 ({e})")))?;
            rv(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        }
    );
    func!(
        rt,
        "base64_encode",
        [A::String],
        |a: &[Rcvar], _: &mut Context<'_>| {
            use base64::Engine;
            rv(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s(&a[0])),
            ))
        }
    );
    func!(
        rt,
        "parse_json",
        [A::String],
        |a: &[Rcvar], ctx: &mut Context<'_>| {
            let v: Value =
                serde_json::from_str(&s(&a[0])).map_err(|e| err(ctx, format!("JSON ({e})")))?;
            rv(v)
        }
    );
    func!(
        rt,
        "parse_yaml",
        [A::String],
        |a: &[Rcvar], ctx: &mut Context<'_>| {
            let v: Value =
                serde_saphyr::from_str(&s(&a[0])).map_err(|e| err(ctx, format!("YAML ({e})")))?;
            rv(v)
        }
    );
    func!(
        rt,
        "lookup",
        [
            A::Union(vec![A::Object, A::Array]),
            A::Union(vec![A::String, A::Number])
        ],
        |a: &[Rcvar], _: &mut Context<'_>| {
            let (coll, key) = (js(&a[0]), js(&a[1]));
            let v = match (&coll, &key) {
                (Value::Object(m), Value::String(k)) => m.get(k).cloned().unwrap_or(Value::Null),
                (Value::Array(v), Value::Number(n)) => n
                    .as_u64()
                    .and_then(|i| v.get(i as usize))
                    .cloned()
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            };
            rv(v)
        }
    );
    func!(
        rt,
        "items",
        [A::Union(vec![A::Object, A::Array]), A::String, A::String],
        |a: &[Rcvar], _: &mut Context<'_>| {
            let (k, v) = (s(&a[1]), s(&a[2]));
            let items: Vec<Value> = match js(&a[0]) {
                Value::Object(m) => m
                    .into_iter()
                    .map(|(key, val)| serde_json::json!({k.clone(): key, v.clone(): val}))
                    .collect(),
                Value::Array(arr) => arr
                    .into_iter()
                    .enumerate()
                    .map(|(i, val)| serde_json::json!({k.clone(): i, v.clone(): val}))
                    .collect(),
                _ => vec![],
            };
            rv(Value::Array(items))
        }
    );
    func!(
        rt,
        "object_from_lists",
        [A::Array, A::Array],
        |a: &[Rcvar], _: &mut Context<'_>| {
            let (keys, vals) = (js(&a[0]), js(&a[1]));
            let mut m = serde_json::Map::new();
            if let (Value::Array(keys), Value::Array(vals)) = (keys, vals) {
                for (i, k) in keys.iter().enumerate() {
                    if let Value::String(k) = k {
                        m.insert(k.clone(), vals.get(i).cloned().unwrap_or(Value::Null));
                    }
                }
            }
            rv(Value::Object(m))
        }
    );
    func!(
        rt,
        "semver_compare",
        [A::String, A::String],
        |a: &[Rcvar], _: &mut Context<'_>| {
            rv(Value::Bool(semver_satisfies(&s(&a[0]), &s(&a[1]))))
        }
    );
    func!(rt, "path_canonicalize", [A::String], |a: &[Rcvar],
                                                 _: &mut Context<
        '_,
    >| {
        rv(Value::String(canonical_path(&s(&a[0]))))
    });
    func!(
        rt,
        "sum",
        [A::Array],
        |a: &[Rcvar], ctx: &mut Context<'_>| {
            let Value::Array(items) = js(&a[0]) else {
                return rv(Value::Null);
            };
            let mut total = 0.0;
            let mut kind = Kind::Number;
            for item in &items {
                let Some((v, k)) = number_or_quantity(item) else {
                    return Err(err(ctx, "numbers, quantities or durations".into()));
                };
                total += v;
                kind = k;
            }
            match kind {
                Kind::Number => rv(serde_json::json!(total)),
                Kind::Quantity => rv(Value::String(format_number(total))),
                Kind::Duration => rv(Value::String(format!("{}s", format_number(total)))),
            }
        }
    );
}

fn canonical_path(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if abs {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

pub fn parse_semver(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim().trim_start_matches('v');
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
    let patch = it.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
    Some((major, minor, patch))
}

/// `semver_compare(version, ">=1.2.0 <2.0.0")`-style ranges: space-separated comparators that
/// must all hold; `||` between alternatives.
fn semver_satisfies(version: &str, range: &str) -> bool {
    let Some(v) = parse_semver(version) else {
        return false;
    };
    range.split("||").any(|alt| {
        alt.split_whitespace().all(|c| {
            let (op, rest) = ["<=", ">=", "!=", "<", ">", "="]
                .iter()
                .find_map(|op| c.strip_prefix(op).map(|r| (*op, r)))
                .unwrap_or(("=", c));
            let Some(w) = parse_semver(rest) else {
                return false;
            };
            match op {
                "<=" => v <= w,
                ">=" => v >= w,
                "!=" => v != w,
                "<" => v < w,
                ">" => v > w,
                _ => v == w,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn substitution_keeps_types_and_interpolates() {
        let data = json!({"request": {"object": {"metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"replicas": 3}}}});
        assert_eq!(
            substitute_str("{{ request.object.spec.replicas }}", &data).unwrap(),
            json!(3)
        );
        assert_eq!(
            substitute_str("name is {{request.object.metadata.name}}!", &data).unwrap(),
            json!("name is web!")
        );
        assert_eq!(
            substitute_str("{{ request.object.metadata.labels }}", &data).unwrap(),
            json!({"a": "1"})
        );
        assert_eq!(
            substitute_str("\\{{ literal }}", &data).unwrap(),
            json!("{{ literal }}")
        );
        assert_eq!(
            substitute_str("{{ to_upper(request.object.metadata.name) }}", &data).unwrap(),
            json!("WEB")
        );
        assert_eq!(
            substitute_str("{{ split('a/b', '/') | [1] }}", &data).unwrap(),
            json!("b")
        );
        assert_eq!(
            substitute_str(
                "{{ regex_match('^w', request.object.metadata.name) }}",
                &data
            )
            .unwrap(),
            json!(true)
        );
        assert!(substitute_str("{{ request.object.[ }}", &data).is_err());
    }

    #[test]
    fn arithmetic_on_quantities_and_semver() {
        assert_eq!(
            query("divide('2Gi', '1Gi')", &json!({})).unwrap(),
            json!(2.0)
        );
        assert_eq!(query("add(`1`, `2`)", &json!({})).unwrap(), json!(3.0));
        assert_eq!(
            query("semver_compare('1.5.0', '>=1.2.0 <2.0.0')", &json!({})).unwrap(),
            json!(true)
        );
        assert_eq!(
            query("path_canonicalize('/a/../etc//x')", &json!({})).unwrap(),
            json!("/etc/x")
        );
    }
}
