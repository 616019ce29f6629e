//! Loose JSON typing: how a value turns into a string, a number or a boolean.
//!
//! These rules mirror Testkube's conversions, because workflows rely on them
//! (`"5" == 5` is true, `"off"` is falsy, a list interpolates as `a,b`).

use serde_json::{Map, Number, Value};

/// Why an operation on constant values failed: a conversion, an operator or an
/// index. The messages are the fragments that evaluation errors embed (`cannot
/// divide by zero in `a / 0``); `describe`d values are held as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// NaN or an infinity, which JSON cannot hold (Go's spelling of it).
    #[error("result is not a finite number ({0})")]
    NotFinite(String),
    /// The value (described) has no number form.
    #[error("cannot convert {0} to a number")]
    NotANumber(String),
    /// The value (described) has no integer form.
    #[error("cannot convert {0} to an integer")]
    NotAnInteger(String),
    /// `x / 0`.
    #[error("cannot divide by zero")]
    DivideByZero,
    /// `x % 0`.
    #[error("cannot modulo by zero")]
    ModuloByZero,
    /// A list or string indexed by something that is not a number (described).
    #[error("a {container} index must be a number, not {key}")]
    IndexNotANumber {
        /// `list` or `string`.
        container: &'static str,
        /// The key, described.
        key: String,
    },
    /// A list or string position past its end (or negative).
    #[error("index {index} is out of bounds (length {length})")]
    OutOfBounds {
        /// The position asked for.
        index: i64,
        /// The length of the list, or the characters of the string.
        length: usize,
    },
    /// Indexing a value (described) that is not a list, object or string.
    #[error("only lists, objects and strings can be indexed, not {0}")]
    NotIndexable(String),
}

impl From<ValueError> for crate::ExprError {
    fn from(e: ValueError) -> Self {
        crate::ExprError::eval(e.to_string())
    }
}

/// Largest magnitude at which an integral float still fits an `i64`.
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;

/// Converts any value to the string a template would show for it.
///
/// Strings stay as they are, `null` is empty, numbers print like Go's `%v`,
/// lists join their items' strings with `,`, and objects become JSON with
/// sorted keys (Go marshals maps in key order).
pub fn to_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_string(n),
        Value::Array(items) => items.iter().map(to_string).collect::<Vec<_>>().join(","),
        Value::Object(_) => to_json(value),
    }
}

/// Serializes a value as compact JSON with object keys sorted, as Go does.
pub fn to_json(value: &Value) -> String {
    // `sorted` only reorders keys, so serializing it cannot fail.
    serde_json::to_string(&sorted(value)).unwrap_or_default()
}

/// Returns a copy of the value with every object's keys in sorted order.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                out.insert(key.clone(), sorted(&map[key]));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn number_to_string(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    go_float(n.as_f64().unwrap_or(0.0))
}

/// Formats a float like Go's `fmt.Sprintf("%v", f)`: the shortest digits that
/// round-trip, in exponent form (`1e-05`, `1.5e+06`) when the decimal
/// exponent is below -4 or at least 6.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, e.g. `1.2345e6`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    // Go's %v (shortest `%g`) switches to exponent form below 1e-4 and from
    // 1e6 on; integral values never get here as they are stored as `i64`.
    if !(-4..6).contains(&exp) {
        let mut out = String::from(sign);
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
        return out;
    }
    let mut out = String::from(sign);
    if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

fn is_integral(f: f64) -> bool {
    f.fract() == 0.0
}

/// Builds a JSON number from a float, keeping integral values as `i64` so that
/// `4 / 2` prints as `2` (Testkube's Go floats print the same way).
///
/// Fails on NaN and infinities, which JSON cannot hold.
pub fn number(f: f64) -> Result<Value, ValueError> {
    if !f.is_finite() {
        return Err(ValueError::NotFinite(go_float(f)));
    }
    if is_integral(f) && (-I64_BOUND..I64_BOUND).contains(&f) {
        return Ok(Value::from(f as i64));
    }
    Ok(Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null))
}

/// Normalizes every number inside a value: integral floats become integers.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Number(n) if n.as_i64().is_none() => match n.as_f64() {
            Some(f) => number(f).unwrap_or(Value::Number(n)),
            None => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}

/// Converts a value to a float the way Testkube does: numbers directly,
/// `null` as zero, anything else through its string form.
pub fn to_float(value: &Value) -> Result<f64, ValueError> {
    match value {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        Value::Null => Ok(0.0),
        other => {
            let s = to_string(other);
            parse_float(&s).ok_or_else(|| ValueError::NotANumber(describe(other)))
        }
    }
}

/// Parses a float with the syntax Go's `strconv.ParseFloat` accepts for
/// decimal input (Rust's parser agrees on it, including `inf` and `nan`).
fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Converts a value to an integer: integers directly, otherwise through
/// [`to_float`] and truncation toward zero.
pub fn to_int(value: &Value) -> Result<i64, ValueError> {
    if let Value::Number(n) = value
        && let Some(i) = n.as_i64()
    {
        return Ok(i);
    }
    let f = to_float(value)?;
    if f.is_nan() {
        return Err(ValueError::NotAnInteger(describe(value)));
    }
    Ok(f as i64)
}

/// Testkube's truthiness: `null`, `false`, empty lists and objects, and the
/// strings `""`, `"false"`, `"0"` and `"off"` (numbers through their string
/// form, so `0` too) are false; everything else is true.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        other => {
            let s = to_string(other);
            !matches!(s.as_str(), "" | "false" | "0" | "off")
        }
    }
}

/// A short description of a value for error messages.
pub fn describe(value: &Value) -> String {
    let json = to_json(value);
    if json.chars().count() > 60 {
        let cut: String = json.chars().take(57).collect();
        format!("`{cut}...`")
    } else {
        format!("`{json}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_float_matches_percent_v() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1.877778), "1.877778");
        assert_eq!(go_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(go_float(1e-7), "1e-07");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(123456.5), "123456.5");
        assert_eq!(go_float(1234567.5), "1.2345675e+06");
        assert_eq!(go_float(-2.25), "-2.25");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(f64::NAN), "NaN");
    }

    #[test]
    fn to_string_rules() {
        assert_eq!(to_string(&json!(null)), "");
        assert_eq!(to_string(&json!(true)), "true");
        assert_eq!(to_string(&json!(5)), "5");
        assert_eq!(to_string(&json!(["a", 10, ["a", 4]])), "a,10,a,4");
        assert_eq!(
            to_string(&json!({"b": 1, "a": [1, 2]})),
            r#"{"a":[1,2],"b":1}"#
        );
        assert_eq!(to_string(&json!({})), "{}");
    }

    #[test]
    fn numbers_are_normalized() {
        assert_eq!(number(2.0).unwrap(), json!(2));
        assert_eq!(number(-0.0).unwrap(), json!(0));
        assert_eq!(number(0.5).unwrap(), json!(0.5));
        assert!(number(f64::INFINITY).is_err());
        assert_eq!(normalize(json!([1.0, {"a": 2.5}])), json!([1, {"a": 2.5}]));
    }

    #[test]
    fn conversions_follow_testkube() {
        assert_eq!(to_float(&json!("1.5")).unwrap(), 1.5);
        assert!(to_float(&json!("")).is_err());
        assert!(to_float(&json!("5 apples")).is_err());
        assert!(to_float(&json!(true)).is_err());
        assert_eq!(to_float(&json!(null)).unwrap(), 0.0);
        assert_eq!(to_int(&json!("1.5")).unwrap(), 1);
        assert_eq!(to_int(&json!(1.8)).unwrap(), 1);
        assert_eq!(to_int(&json!([7])).unwrap(), 7);
        for falsy in [
            json!(""),
            json!("0"),
            json!("off"),
            json!("false"),
            json!(0),
            json!(0.0),
            json!([]),
            json!({}),
            json!(null),
        ] {
            assert!(!truthy(&falsy), "{falsy} should be falsy");
        }
        for t in [
            json!("False"),
            json!("on"),
            json!("1"),
            json!(0.5),
            json!([0]),
            json!({"a": 1}),
            json!("x"),
        ] {
            assert!(truthy(&t), "{t} should be truthy");
        }
    }
}
