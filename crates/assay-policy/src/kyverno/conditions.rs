//! Kyverno conditions (`preconditions`, `deny.conditions`): `any`/`all` blocks (or the old plain
//! list) of `{key, operator, value, message}`, keys and values substituted first.

use serde_json::Value;

use super::jmes::{parse_semver, substitute};
use super::pattern::validate_value;
use super::scalar::{as_text, parse_duration, parse_quantity, wildcard_match};

/// Whether the conditions hold, and the messages of the conditions that decided it.
pub fn evaluate(conditions: &Value, data: &Value) -> Result<(bool, String), String> {
    match conditions {
        Value::Null => Ok((true, String::new())),
        Value::Array(list) => {
            let mut msgs = Vec::new();
            for c in list {
                let (ok, msg) = one(c, data)?;
                if !ok {
                    return Ok((false, msg));
                }
                push(&mut msgs, msg);
            }
            Ok((true, msgs.join(";")))
        }
        Value::Object(m) => {
            let mut true_msgs = Vec::new();
            let mut false_msgs = Vec::new();
            let mut any_ok = true;
            if let Some(any) = m.get("any").filter(|v| !v.is_null()) {
                let list = any.as_array().ok_or("`any` must be a list of conditions")?;
                any_ok = false;
                for c in list {
                    let (ok, msg) = one(c, data)?;
                    if ok {
                        any_ok = true;
                        push(&mut true_msgs, msg);
                        break;
                    }
                    push(&mut false_msgs, msg);
                }
            }
            let mut all_ok = true;
            if let Some(all) = m.get("all").filter(|v| !v.is_null()) {
                let list = all.as_array().ok_or("`all` must be a list of conditions")?;
                for c in list {
                    let (ok, msg) = one(c, data)?;
                    if !ok {
                        all_ok = false;
                        push(&mut false_msgs, msg);
                        break;
                    }
                    push(&mut true_msgs, msg);
                }
            }
            if any_ok && all_ok {
                Ok((true, true_msgs.join("; ")))
            } else {
                Ok((false, false_msgs.join("; ")))
            }
        }
        _ => Err("conditions must be a list or an object with `any`/`all`".into()),
    }
}

fn push(msgs: &mut Vec<String>, m: String) {
    if !m.is_empty() {
        msgs.push(m);
    }
}

fn one(c: &Value, data: &Value) -> Result<(bool, String), String> {
    let key = substitute(c.get("key").unwrap_or(&Value::Null), data)
        .map_err(|e| format!("failed to substitute variables in condition key: {e}"))?;
    let value = substitute(c.get("value").unwrap_or(&Value::Null), data)
        .map_err(|e| format!("failed to substitute variables in condition value: {e}"))?;
    let op = c.get("operator").and_then(Value::as_str).unwrap_or("");
    let message = c
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok((operate(op, &key, &value)?, message))
}

pub fn operate(op: &str, key: &Value, value: &Value) -> Result<bool, String> {
    Ok(match op.to_ascii_lowercase().as_str() {
        "equals" | "equal" => equals(key, value),
        "notequals" | "notequal" => !equals(key, value),
        "anyin" => any_in(key, value),
        "allin" => all_in(key, value),
        "anynotin" => any_not_in(key, value),
        "allnotin" => all_not_in(key, value),
        "in" => match key {
            Value::Array(_) => all_in(key, value),
            _ => any_in(key, value),
        },
        "notin" => match key {
            Value::Array(_) => !all_in(key, value),
            _ => !any_in(key, value),
        },
        "greaterthan" => numeric(key, value).is_some_and(|o| o.is_gt()),
        "greaterthanorequals" => numeric(key, value).is_some_and(|o| o.is_ge()),
        "lessthan" => numeric(key, value).is_some_and(|o| o.is_lt()),
        "lessthanorequals" => numeric(key, value).is_some_and(|o| o.is_le()),
        "durationgreaterthan" => durations(key, value).is_some_and(|o| o.is_gt()),
        "durationgreaterthanorequals" => durations(key, value).is_some_and(|o| o.is_ge()),
        "durationlessthan" => durations(key, value).is_some_and(|o| o.is_lt()),
        "durationlessthanorequals" => durations(key, value).is_some_and(|o| o.is_le()),
        other => return Err(format!("unknown condition operator `{other}`")),
    })
}

fn equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(b) => value.as_bool() == Some(*b),
        Value::Number(n) => {
            let k = n.as_f64();
            match value {
                Value::Number(v) => v.as_f64() == k,
                Value::String(s) => s.trim().parse::<f64>().ok() == k,
                _ => false,
            }
        }
        Value::String(k) => {
            if let (Some(a), Some(b)) = (
                parse_duration(k).filter(|_| k.chars().any(|c| c.is_ascii_alphabetic())),
                value.as_str().and_then(parse_duration),
            ) {
                return a == b;
            }
            if let Some(a) = parse_quantity(k)
                && let Value::String(v) = value
            {
                return parse_quantity(v) == Some(a);
            }
            match value {
                Value::String(v) => wildcard_match(v, k),
                _ => false,
            }
        }
        Value::Array(_) | Value::Object(_) => key == value,
        Value::Null => value.is_null(),
    }
}

/// Go's `fmt.Sprint` of a scalar.
fn sprint(v: &Value) -> String {
    as_text(v).unwrap_or_else(|| match v {
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    })
}

/// The set a condition value stands for: a list, a scalar, or a string holding a JSON list.
fn value_set(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(a) => Some(a.iter().map(sprint).collect()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(a)) => Some(a.iter().map(sprint).collect()),
            Ok(_) if s.trim_start().starts_with(['{', '[']) => None,
            _ => Some(vec![s.clone()]),
        },
        Value::Number(_) | Value::Bool(_) => Some(vec![sprint(value)]),
        _ => None,
    }
}

fn is_range(value: &Value) -> bool {
    static RANGE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)-([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)$")
            .expect("range")
    });
    value.as_str().is_some_and(|s| RANGE.is_match(s))
}

fn contains(set: &[String], k: &str) -> bool {
    set.iter()
        .any(|v| wildcard_match(v, k) || wildcard_match(k, v))
}

fn key_list(key: &Value) -> Option<Vec<String>> {
    match key {
        Value::Array(a) => Some(a.iter().map(sprint).collect()),
        Value::String(_) | Value::Number(_) | Value::Bool(_) => None,
        _ => Some(vec![]),
    }
}

fn scalar_in(key: &str, value: &Value) -> bool {
    if let Value::String(s) = value {
        if wildcard_match(s, key) {
            return true;
        }
        if is_range(value) {
            return validate_value(&Value::String(key.into()), value);
        }
    }
    value_set(value).is_some_and(|set| contains(&set, key))
}

fn any_in(key: &Value, value: &Value) -> bool {
    match key_list(key) {
        None => scalar_in(&sprint(key), value),
        Some(keys) => {
            if is_range(value) {
                return keys
                    .iter()
                    .any(|k| validate_value(&Value::String(k.clone()), value));
            }
            value_set(value).is_some_and(|set| keys.iter().any(|k| contains(&set, k)))
        }
    }
}

fn all_in(key: &Value, value: &Value) -> bool {
    match key_list(key) {
        None => scalar_in(&sprint(key), value),
        Some(keys) => {
            if is_range(value) {
                return keys
                    .iter()
                    .all(|k| validate_value(&Value::String(k.clone()), value));
            }
            value_set(value).is_some_and(|set| keys.iter().all(|k| contains(&set, k)))
        }
    }
}

fn any_not_in(key: &Value, value: &Value) -> bool {
    match key_list(key) {
        None => !scalar_in(&sprint(key), value),
        Some(keys) => {
            if is_range(value) {
                return keys
                    .iter()
                    .any(|k| !validate_value(&Value::String(k.clone()), value));
            }
            value_set(value).is_some_and(|set| keys.iter().any(|k| !contains(&set, k)))
        }
    }
}

fn all_not_in(key: &Value, value: &Value) -> bool {
    match key_list(key) {
        None => !scalar_in(&sprint(key), value),
        Some(keys) => {
            if is_range(value) {
                return keys
                    .iter()
                    .all(|k| !validate_value(&Value::String(k.clone()), value));
            }
            value_set(value).is_some_and(|set| keys.iter().all(|k| !contains(&set, k)))
        }
    }
}

fn numeric(key: &Value, value: &Value) -> Option<std::cmp::Ordering> {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    if let (Some(a), Some(b)) = (num(key), num(value)) {
        return a.partial_cmp(&b);
    }
    let (Some(ks), Some(vs)) = (as_text(key), as_text(value)) else {
        return None;
    };
    if let (Some(a), Some(b)) = (parse_duration(&ks), parse_duration(&vs)) {
        return a.partial_cmp(&b);
    }
    if let (Some(a), Some(b)) = (parse_quantity(&ks), parse_quantity(&vs)) {
        return a.partial_cmp(&b);
    }
    if let (Some(a), Some(b)) = (parse_semver(&ks), parse_semver(&vs)) {
        return Some(a.cmp(&b));
    }
    None
}

fn durations(key: &Value, value: &Value) -> Option<std::cmp::Ordering> {
    let d = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_duration(s),
        _ => None,
    };
    d(key)?.partial_cmp(&d(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operators() {
        assert!(operate("Equals", &json!("nginx:1"), &json!("nginx:*")).unwrap());
        assert!(operate("AnyIn", &json!(["a", "b"]), &json!(["b", "c"])).unwrap());
        assert!(!operate("AllIn", &json!(["a", "b"]), &json!(["b", "c"])).unwrap());
        assert!(operate("AllNotIn", &json!(["x"]), &json!(["b", "c"])).unwrap());
        assert!(operate("AnyNotIn", &json!(["b", "x"]), &json!(["b", "c"])).unwrap());
        assert!(operate("AnyIn", &json!("CREATE"), &json!(["CREATE", "UPDATE"])).unwrap());
        assert!(operate("GreaterThan", &json!("2Gi"), &json!("1Gi")).unwrap());
        assert!(operate("LessThan", &json!(3), &json!("5")).unwrap());
        assert!(operate("AnyIn", &json!([8080]), &json!("1024-65535")).unwrap());
        assert!(operate("DurationGreaterThan", &json!("2h"), &json!("90m")).unwrap());
        assert!(operate("Bogus", &json!(1), &json!(1)).is_err());
    }

    #[test]
    fn any_all_blocks() {
        let data = json!({"request": {"operation": "CREATE"}});
        let c = json!({"any": [{"key": "{{ request.operation }}", "operator": "Equals", "value": "DELETE", "message": "no"},
                               {"key": "{{ request.operation }}", "operator": "Equals", "value": "CREATE", "message": "yes"}]});
        assert_eq!(evaluate(&c, &data).unwrap(), (true, "yes".into()));
        let c = json!({"all": [{"key": "{{ request.operation }}", "operator": "NotEquals", "value": "CREATE", "message": "was create"}]});
        assert_eq!(evaluate(&c, &data).unwrap(), (false, "was create".into()));
    }
}
