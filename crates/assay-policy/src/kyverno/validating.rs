//! `ValidatingPolicy` (CEL): match constraints, match conditions, variables, validations.

use serde_json::{Value, json};

use super::*;

/// `ValidatingPolicy`: `matchConstraints.resourceRules`, `matchConditions`, `variables`, `validations`.
pub(super) fn validating_policy(
    policy: &Policy,
    resource: &Value,
    env: &Environment,
) -> Option<RuleResult> {
    let spec = &policy.spec;
    let (api, kind, _, _) = resource_id(resource);
    let (group, version) = match api.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api.clone()),
    };
    let plural = plural_of(&kind);
    let matches_rule = |r: &Value| {
        let has = |field: &str, want: &str| {
            r.get(field).and_then(Value::as_array).is_some_and(|l| {
                l.iter()
                    .any(|v| v.as_str().is_some_and(|s| s == "*" || s == want))
            })
        };
        has("apiGroups", &group) && has("apiVersions", &version) && has("resources", &plural) && {
            r.get("operations")
                .and_then(Value::as_array)
                .is_none_or(|l| {
                    l.iter().any(|v| {
                        v.as_str()
                            .is_some_and(|s| s == "*" || s.eq_ignore_ascii_case(&env.operation))
                    })
                })
        }
    };
    let rules = spec
        .pointer("/matchConstraints/resourceRules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !rules.iter().any(matches_rule) {
        return None;
    }
    let ctx = base_context(resource, env, "");
    let request = ctx.get("request").cloned().unwrap_or(Value::Null);
    let null = Value::Null;
    let base: Vec<(&str, &Value)> = vec![
        ("object", resource),
        ("oldObject", &null),
        ("request", &request),
        ("namespaceObject", &null),
    ];
    for mc in spec
        .get("matchConditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let expr = mc
            .get("expression")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match cel::eval(expr, &base) {
            Ok(Value::Bool(true)) => {}
            Ok(_) => return result(Status::Skip, "match conditions not met"),
            Err(e) => return result(Status::Error, e),
        }
    }
    let vars = match spec.get("variables").and_then(Value::as_array) {
        Some(defs) => match cel::eval_variables(defs, &base) {
            Ok(v) => v,
            Err(e) => return result(Status::Error, e),
        },
        None => json!({}),
    };
    let mut all = base.clone();
    all.push(("variables", &vars));
    let mut r = cel_validations(
        spec.get("validations")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
        &all,
    )?;
    if r.status == Status::Fail && !policy.scored {
        r.status = Status::Warn;
    }
    Some(r)
}

pub(super) fn plural_of(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('y') && !k.ends_with("ey") {
        format!("{}ies", &k[..k.len() - 1])
    } else if k.ends_with('s') || k.ends_with("ch") || k.ends_with('x') {
        format!("{k}es")
    } else {
        format!("{k}s")
    }
}
