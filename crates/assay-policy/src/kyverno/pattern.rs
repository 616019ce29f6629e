//! Kyverno's validation patterns: a resource matches a pattern tree key by key, with anchors
//! (`(k)` conditional, `<(k)` global, `=(k)` equality, `^(k)` existence, `X(k)` negation),
//! wildcards, and string operators (`>`, `<`, `>=`, `<=`, `!`, `|`, `&`, ranges `a-b`, `a!-b`)
//! that compare durations, then quantities, then text.
//!
//! A pattern error is either a *skip* (a conditional or global anchor did not hold, so the rule
//! does not apply) or a *failure*.

use serde_json::{Map, Value};
use std::sync::LazyLock;

use super::scalar::{
    as_text, contains_wildcard, number_text, parse_duration, parse_quantity, wildcard_match,
};

#[derive(Debug, Clone, PartialEq)]
pub struct PatternError {
    pub message: String,
    pub path: String,
    /// A conditional or global anchor did not hold: the rule does not apply.
    pub skip: bool,
    /// Made by an anchor handler (not by a nested map's combined skip).
    raw_anchor: bool,
}

impl PatternError {
    fn plain(path: &str, message: String) -> Self {
        PatternError {
            message,
            path: path.to_string(),
            skip: false,
            raw_anchor: false,
        }
    }
    fn anchor(path: &str, message: String, skip: bool) -> Self {
        PatternError {
            message,
            path: path.to_string(),
            skip,
            raw_anchor: true,
        }
    }
}

type Res = Result<(), PatternError>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Anchor {
    Condition,
    Global,
    Negation,
    Equality,
    Existence,
    Add,
}

static ANCHOR: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^([+<=X^])?\((.+)\)$").expect("anchor regex"));

fn parse_anchor(key: &str) -> Option<(Anchor, &str)> {
    let c = ANCHOR.captures(key.trim())?;
    let kind = match c.get(1).map(|m| m.as_str()) {
        None => Anchor::Condition,
        Some("<") => Anchor::Global,
        Some("X") => Anchor::Negation,
        Some("=") => Anchor::Equality,
        Some("^") => Anchor::Existence,
        Some(_) => Anchor::Add,
    };
    Some((kind, c.get(2)?.as_str()))
}

/// The key an anchored pattern key names (`=(image)` → `image`), or the key itself.
pub fn anchor_key(key: &str) -> &str {
    parse_anchor(key).map(|(_, k)| k).unwrap_or(key)
}

/// Matches `resource` against `pattern` from the root.
pub fn match_pattern(resource: &Value, pattern: &Value) -> Res {
    element(resource, pattern, "/")
}

fn element(resource: &Value, pattern: &Value, path: &str) -> Res {
    match pattern {
        Value::Object(p) => match resource {
            Value::Object(r) => validate_map(r, p, path),
            other => Err(PatternError::plain(
                path,
                format!(
                    "pattern and resource have different structures at path {path}: expected an object, found {}",
                    type_name(other)
                ),
            )),
        },
        Value::Array(p) => match resource {
            Value::Array(r) => validate_array(r, p, path),
            _ => Err(PatternError::plain(
                path,
                format!(
                    "validation rule failed at path {path}, resource does not satisfy the expected overlay pattern"
                ),
            )),
        },
        scalar => {
            let ok = match resource {
                Value::Array(items) => items.iter().all(|v| validate_value(v, scalar)),
                v => validate_value(v, scalar),
            };
            if ok {
                Ok(())
            } else {
                Err(PatternError::plain(
                    path,
                    format!(
                        "resource value '{}' does not match '{}' at path {path}",
                        show(resource),
                        show(scalar)
                    ),
                ))
            }
        }
    }
}

fn validate_map(resource: &Map<String, Value>, pattern: &Map<String, Value>, path: &str) -> Res {
    let expanded;
    let pattern = if pattern.contains_key("metadata")
        || pattern.keys().any(|k| anchor_key(k) == "metadata")
    {
        expanded = expand_metadata_wildcards(pattern, resource);
        &expanded
    } else {
        pattern
    };
    let mut anchors: Vec<(&String, &Value)> = Vec::new();
    let mut plain: Vec<(&String, &Value)> = Vec::new();
    for (k, v) in pattern {
        match parse_anchor(k) {
            Some((Anchor::Add, _)) | None => plain.push((k, v)),
            Some(_) => anchors.push((k, v)),
        }
    }
    anchors.sort_by(|a, b| a.0.cmp(b.0));
    let mut skips: Vec<PatternError> = Vec::new();
    let mut applied = 0;
    for (key, pat) in anchors {
        match handle(key, pat, resource, path) {
            Ok(()) => applied += 1,
            Err(e) if e.skip => skips.push(e),
            Err(e) => {
                if !skips.iter().any(|s| s.raw_anchor) {
                    return Err(e);
                }
            }
        }
    }
    if !skips.is_empty() && (applied == 0 || skips.iter().any(|s| s.raw_anchor)) {
        let message = skips
            .iter()
            .map(|s| s.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(PatternError {
            message,
            path: path.to_string(),
            skip: true,
            raw_anchor: false,
        });
    }
    // keys whose values hold anchors first (in reverse order, as Kyverno pushes them to the front)
    plain.sort_by(|a, b| a.0.cmp(b.0));
    let (mut front, back): (Vec<_>, Vec<_>) =
        plain.into_iter().partition(|(_, v)| has_nested_anchors(v));
    front.reverse();
    for (key, pat) in front.into_iter().chain(back) {
        handle(key, pat, resource, path)?;
    }
    Ok(())
}

fn handle(key: &str, pattern: &Value, resource: &Map<String, Value>, path: &str) -> Res {
    let Some((kind, name)) = parse_anchor(key).filter(|(k, _)| *k != Anchor::Add) else {
        let here = format!("{path}{key}/");
        let value = resource.get(key).unwrap_or(&Value::Null);
        if pattern.as_str() == Some("*") {
            return if value.is_null() {
                Err(PatternError::plain(path, format!("{path}{key} not found")))
            } else {
                Ok(())
            };
        }
        return element(value, pattern, &here);
    };
    let here = format!("{path}{name}/");
    let value = resource.get(name);
    match kind {
        Anchor::Negation => match value {
            Some(_) => Err(PatternError {
                message: format!("negation anchor matched in resource: {here} is not allowed"),
                path: here,
                skip: false,
                raw_anchor: true,
            }),
            None => Ok(()),
        },
        Anchor::Equality => match value {
            Some(v) => element(v, pattern, &here),
            None => Ok(()),
        },
        Anchor::Condition => match value {
            Some(v) => element(v, pattern, &here).map_err(|e| {
                PatternError::anchor(
                    &e.path,
                    format!("conditional anchor mismatch: {}", e.message),
                    true,
                )
            }),
            None => Err(PatternError::anchor(
                &here,
                "conditional anchor mismatch: conditional anchor key doesn't exist in the resource"
                    .into(),
                true,
            )),
        },
        Anchor::Global => match value {
            Some(v) => element(v, pattern, &here).map_err(|e| {
                PatternError::anchor(
                    &e.path,
                    format!("global anchor mismatch: {}", e.message),
                    true,
                )
            }),
            None => Ok(()),
        },
        Anchor::Existence => match value {
            None => Ok(()),
            Some(Value::Array(items)) => {
                let Value::Array(patterns) = pattern else {
                    return Err(PatternError::plain(
                        &here,
                        "existence anchor ^() needs a list pattern".into(),
                    ));
                };
                for p in patterns {
                    if !p.is_object() {
                        return Err(PatternError::plain(
                            &here,
                            "existence anchor ^() needs a list of objects".into(),
                        ));
                    }
                    if !items
                        .iter()
                        .enumerate()
                        .any(|(i, item)| element(item, p, &format!("{here}{i}/")).is_ok())
                    {
                        return Err(PatternError::plain(
                            &here,
                            format!("existence anchor validation failed at path {here}"),
                        ));
                    }
                }
                Ok(())
            }
            Some(_) => Err(PatternError::plain(
                &here,
                "existence anchor ^() can be used only on a list".into(),
            )),
        },
        Anchor::Add => unreachable_add(),
    }
}

#[allow(clippy::missing_const_for_fn)]
fn unreachable_add() -> Res {
    Ok(())
}

fn validate_array(resource: &[Value], pattern: &[Value], path: &str) -> Res {
    let Some(first) = pattern.first() else {
        return Err(PatternError::plain(path, "pattern array is empty".into()));
    };
    match first {
        Value::Object(_) => {
            let mut applied = 0;
            let mut skips = Vec::new();
            for (i, item) in resource.iter().enumerate() {
                match element(item, first, &format!("{path}{i}/")) {
                    Ok(()) => applied += 1,
                    Err(e) if e.skip => skips.push(e),
                    Err(e) => return Err(e),
                }
            }
            if applied == 0 && !skips.is_empty() {
                let message = skips
                    .iter()
                    .map(|s| s.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(PatternError {
                    message,
                    path: path.to_string(),
                    skip: true,
                    raw_anchor: false,
                });
            }
            Ok(())
        }
        Value::Array(_) => {
            if resource.len() < pattern.len() {
                return Err(PatternError::plain(
                    path,
                    format!(
                        "array length mismatch: resource has {}, pattern {}",
                        resource.len(),
                        pattern.len()
                    ),
                ));
            }
            let mut applied = 0;
            let mut skips = Vec::new();
            for (i, p) in pattern.iter().enumerate() {
                match element(&resource[i], p, &format!("{path}{i}/")) {
                    Ok(()) => applied += 1,
                    Err(e) if e.skip => skips.push(e),
                    Err(e) => return Err(e),
                }
            }
            if applied == 0 && !skips.is_empty() {
                return Err(PatternError {
                    message: skips[0].message.clone(),
                    path: path.into(),
                    skip: true,
                    raw_anchor: false,
                });
            }
            Ok(())
        }
        scalar => element(&Value::Array(resource.to_vec()), scalar, path),
    }
}

fn has_nested_anchors(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            matches!(parse_anchor(k), Some((a, _)) if a != Anchor::Add) || has_nested_anchors(v)
        }),
        Value::Array(a) => a.iter().any(has_nested_anchors),
        _ => false,
    }
}

/// Wildcard keys under `metadata.labels`/`metadata.annotations` of a pattern name the resource's
/// key they match (so `app.kubernetes.io/*: "?*"` checks the label that is there).
fn expand_metadata_wildcards(
    pattern: &Map<String, Value>,
    resource: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = pattern.clone();
    let Some(meta_key) = pattern
        .keys()
        .find(|k| anchor_key(k) == "metadata")
        .cloned()
    else {
        return out;
    };
    let Some(Value::Object(res_meta)) = resource.get("metadata") else {
        return out;
    };
    let Some(Value::Object(pat_meta)) = out.get_mut(&meta_key) else {
        return out;
    };
    for tag in ["labels", "annotations"] {
        let Some(tag_key) = pat_meta.keys().find(|k| anchor_key(k) == tag).cloned() else {
            continue;
        };
        let Some(Value::Object(res_tag)) = res_meta.get(tag) else {
            continue;
        };
        let Some(Value::Object(pat_tag)) = pat_meta.get(&tag_key) else {
            continue;
        };
        let mut replaced = Map::new();
        for (k, v) in pat_tag {
            let (anchor, name) = match parse_anchor(k) {
                Some((a, name)) => (Some((a, k.find('(').unwrap_or(0))), name),
                None => (None, k.as_str()),
            };
            if !contains_wildcard(name) {
                replaced.insert(k.clone(), v.clone());
                continue;
            }
            let mut keys: Vec<&String> = res_tag.keys().collect();
            keys.sort();
            let found = keys
                .into_iter()
                .find(|rk| wildcard_match(name, rk))
                .cloned()
                .unwrap_or_else(|| name.to_string());
            let new_key = match anchor {
                Some((_, open)) => format!("{}({found})", &k[..open]),
                None => found,
            };
            replaced.insert(new_key, v.clone());
        }
        pat_meta.insert(tag_key, Value::Object(replaced));
    }
    out
}

/// One resource value against one scalar (or object) pattern.
pub fn validate_value(value: &Value, pattern: &Value) -> bool {
    match pattern {
        Value::Bool(b) => value.as_bool() == Some(*b),
        Value::Number(n) => {
            let p = n.as_f64().unwrap_or(f64::NAN);
            match value {
                Value::Number(v) => v.as_f64() == Some(p),
                Value::String(s) => s.trim().parse::<f64>().ok() == Some(p),
                _ => false,
            }
        }
        Value::Null => match value {
            Value::Null => true,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Bool(b) => !b,
            _ => false,
        },
        Value::Object(_) => value.is_object(),
        Value::String(p) => validate_string_patterns(value, p),
        Value::Array(_) => false,
    }
}

fn validate_string_patterns(value: &Value, pattern: &str) -> bool {
    if value.as_str() == Some(pattern) {
        return true;
    }
    pattern.split('|').any(|alt| {
        alt.trim()
            .split('&')
            .all(|cond| validate_string_pattern(value, cond.trim()))
    })
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Equal,
    MoreEqual,
    LessEqual,
    NotEqual,
    More,
    Less,
}

static IN_RANGE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)-([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)$")
        .expect("range regex")
});
static NOT_IN_RANGE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)!-([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)$")
        .expect("range regex")
});

fn validate_string_pattern(value: &Value, pattern: &str) -> bool {
    let (op, rest) = if pattern.len() < 2 {
        (Op::Equal, pattern)
    } else if let Some(r) = pattern.strip_prefix(">=") {
        (Op::MoreEqual, r)
    } else if let Some(r) = pattern.strip_prefix("<=") {
        (Op::LessEqual, r)
    } else if let Some(r) = pattern.strip_prefix('>') {
        (Op::More, r)
    } else if let Some(r) = pattern.strip_prefix('<') {
        (Op::Less, r)
    } else if let Some(r) = pattern.strip_prefix('!') {
        (Op::NotEqual, r)
    } else if let Some(c) = NOT_IN_RANGE.captures(pattern) {
        return validate_string_pattern(value, &format!("< {}", &c[1]))
            || validate_string_pattern(value, &format!("> {}", &c[2]));
    } else if let Some(c) = IN_RANGE.captures(pattern) {
        return validate_string_pattern(value, &format!(">= {}", &c[1]))
            && validate_string_pattern(value, &format!("<= {}", &c[2]));
    } else {
        (Op::Equal, pattern)
    };
    let rest = rest.trim();
    if let Some(r) = compare_by(value, rest, op, parse_duration) {
        return r;
    }
    if let Some(r) = compare_by(value, rest, op, parse_quantity) {
        return r;
    }
    match op {
        Op::Equal | Op::NotEqual => {
            let text = match value {
                Value::Null | Value::Array(_) | Value::Object(_) => return false,
                v => as_text(v).unwrap_or_default(),
            };
            wildcard_match(rest, &text) == (op == Op::Equal)
        }
        _ => false,
    }
}

fn compare_by(
    value: &Value,
    pattern: &str,
    op: Op,
    parse: fn(&str) -> Option<f64>,
) -> Option<bool> {
    let p = parse(pattern)?;
    let text = match value {
        Value::Null => "0".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{:.6}", n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => number_text(n),
        _ => return None,
    };
    let v = parse(&text)?;
    Some(match op {
        Op::Equal => v == p,
        Op::NotEqual => v != p,
        Op::More => v > p,
        Op::Less => v < p,
        Op::MoreEqual => v >= p,
        Op::LessEqual => v <= p,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(resource: Value, pattern: Value) -> Result<(), bool> {
        match_pattern(&resource, &pattern).map_err(|e| e.skip)
    }

    #[test]
    fn equality_anchor_and_operators() {
        let p =
            json!({"spec": {"containers": [{"=(securityContext)": {"=(privileged)": "false"}}]}});
        assert_eq!(
            check(json!({"spec": {"containers": [{"name": "a"}]}}), p.clone()),
            Ok(())
        );
        assert_eq!(
            check(
                json!({"spec": {"containers": [{"securityContext": {"privileged": true}}]}}),
                p.clone()
            ),
            Err(false)
        );
        assert_eq!(
            check(
                json!({"spec": {"containers": [{"securityContext": {"privileged": false}}]}}),
                p
            ),
            Ok(())
        );
        assert!(validate_value(&json!("2Gi"), &json!("<= 4Gi")));
        assert!(!validate_value(&json!("8Gi"), &json!("<= 4Gi")));
        assert!(validate_value(&json!(5), &json!(">3 & <10")));
        assert!(validate_value(&json!("nginx:1.2"), &json!("!*:latest")));
        assert!(!validate_value(&json!("nginx:latest"), &json!("!*:latest")));
        assert!(validate_value(&json!(8080), &json!("1024-65535")));
        assert!(validate_value(&json!(80), &json!("1024!-65535")));
        assert!(validate_value(&json!("a"), &json!("a | b")));
        assert!(!validate_value(&Value::Null, &json!("?*")));
    }

    #[test]
    fn conditional_anchor_skips_and_negation_fails() {
        let p = json!({"spec": {"(hostNetwork)": true, "containers": [{"name": "x"}]}});
        assert_eq!(
            check(json!({"spec": {"containers": [{"name": "y"}]}}), p.clone()),
            Err(true)
        );
        assert_eq!(
            check(
                json!({"spec": {"hostNetwork": true, "containers": [{"name": "y"}]}}),
                p
            ),
            Err(false)
        );
        let n = json!({"spec": {"X(hostPID)": "null"}});
        assert_eq!(
            check(json!({"spec": {"hostPID": false}}), n.clone()),
            Err(false)
        );
        assert_eq!(check(json!({"spec": {}}), n), Ok(()));
    }

    #[test]
    fn array_of_maps_with_conditional_anchor_in_elements() {
        let p =
            json!({"spec": {"containers": [{"(image)": "*:latest", "imagePullPolicy": "Always"}]}});
        assert_eq!(
            check(
                json!({"spec": {"containers": [{"image": "a:1"}]}}),
                p.clone()
            ),
            Err(true)
        );
        assert_eq!(
            check(
                json!({"spec": {"containers": [{"image": "a:1"}, {"image": "a:latest", "imagePullPolicy": "Always"}]}}),
                p.clone()
            ),
            Ok(())
        );
        assert_eq!(
            check(
                json!({"spec": {"containers": [{"image": "a:latest", "imagePullPolicy": "Never"}]}}),
                p
            ),
            Err(false)
        );
    }

    #[test]
    fn existence_and_wildcard_metadata() {
        let p = json!({"spec": {"^(containers)": [{"name": "sidecar"}]}});
        assert_eq!(
            check(
                json!({"spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]}}),
                p.clone()
            ),
            Ok(())
        );
        assert_eq!(
            check(json!({"spec": {"containers": [{"name": "app"}]}}), p),
            Err(false)
        );
        let m = json!({"metadata": {"labels": {"app.kubernetes.io/*": "?*"}}});
        assert_eq!(
            check(
                json!({"metadata": {"labels": {"app.kubernetes.io/name": "x"}}}),
                m.clone()
            ),
            Ok(())
        );
        assert_eq!(
            check(json!({"metadata": {"labels": {"other": "x"}}}), m),
            Err(false)
        );
    }
}
