//! `toyaml()`: a small block-style YAML emitter for JSON values.
//!
//! It follows the look of Go's yaml.v3 (which Testkube uses): four-space
//! indentation, keys in sorted order, plain scalars where they read back as
//! the same string, double quotes otherwise.

use serde_json::Value;

use crate::value;

/// Serializes a value as a YAML document ending in a newline.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => mapping(v, 0, false, &mut out),
        Value::Array(a) if !a.is_empty() => sequence(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn sorted_entries(v: &Value) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = v
        .as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

/// Writes mapping entries at `indent`; with `inline_first` the first entry
/// continues the current line (after `- `).
fn mapping(v: &Value, indent: usize, inline_first: bool, out: &mut String) {
    for (i, (k, val)) in sorted_entries(v).into_iter().enumerate() {
        if i > 0 || !inline_first {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&string(k));
        out.push(':');
        match val {
            Value::Object(_) if is_block(val) => {
                out.push('\n');
                mapping(val, indent + 4, false, out);
            }
            Value::Array(items) if is_block(val) => {
                out.push('\n');
                sequence(items, indent + 4, out);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn sequence(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        sequence_item(item, indent + 2, out);
    }
}

/// An item whose first line continues after `- `, nested content at `indent`.
fn sequence_item(item: &Value, indent: usize, out: &mut String) {
    match item {
        Value::Object(_) if is_block(item) => mapping(item, indent, true, out),
        Value::Array(inner) if is_block(item) => {
            for (i, x) in inner.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                out.push_str("- ");
                sequence_item(x, indent + 2, out);
            }
        }
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => value::to_string(v),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Words that YAML 1.1 or 1.2 readers take for something other than a string.
const RESERVED: &[&str] = &[
    "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", "<<",
];

fn string(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// Conservative: anything that might be read as another type, or that needs
/// escaping, is quoted.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if RESERVED.contains(&s.to_ascii_lowercase().as_str()) || s.starts_with(".") {
        return false;
    }
    if first.is_ascii_digit() || "-?:,[]{}#&*!|>'\"%@`+ ".contains(first) {
        return false;
    }
    if s.ends_with([' ', ':']) || s.contains(": ") || s.contains(" #") {
        return false;
    }
    s.chars().all(|c| !c.is_control() && c != '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_yaml_v3_layout() {
        assert_eq!(
            to_yaml(&json!({"foo": {"bar": "baz"}})),
            "foo:\n    bar: baz\n"
        );
        assert_eq!(
            to_yaml(&json!({"b": 1, "a": ["x", "z"]})),
            "a:\n    - x\n    - z\nb: 1\n"
        );
        assert_eq!(to_yaml(&json!("abc")), "abc\n");
        assert_eq!(
            to_yaml(&json!([{"a": 1, "b": 2}, [1, 2]])),
            "- a: 1\n  b: 2\n- - 1\n  - 2\n"
        );
    }

    #[test]
    fn round_trips_through_a_yaml_reader() {
        let values = [
            json!({"s": ["", "true", "no", "1.5", "a: b", "#x", "multi\nline", " pad ", "ok text", "-", "@at", "~"]}),
            json!([[["deep"]], {}, [], null, 0.25, -3, {"k": {"l": [{"m": null}]}}]),
            json!({"weird key: x": 1, "": 2, "null": 3}),
        ];
        for v in values {
            let text = to_yaml(&v);
            let back: Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, v, "{text}");
        }
    }
}
