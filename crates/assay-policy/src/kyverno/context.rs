//! The JSON a rule queries: `request.object`, `images`, and the rule's `context` entries.

use serde_json::{Map, Value, json};

use super::*;

/// The JSON context rules query (`request.object`, `images`, ...).
pub(super) fn base_context(resource: &Value, env: &Environment, rule_name: &str) -> Value {
    let (api, kind, ns, name) = resource_id(resource);
    let (group, version) = match api.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api.clone()),
    };
    let mut ctx = json!({
        "request": {
            "operation": env.operation,
            "object": resource,
            "oldObject": null,
            "namespace": ns,
            "name": name,
            "kind": {"group": group, "version": version, "kind": kind},
            "userInfo": {"username": "", "groups": []},
            "roles": [],
            "clusterRoles": [],
        },
        "serviceAccountName": "",
        "serviceAccountNamespace": "",
        "images": images(resource),
    });
    let Value::Object(map) = &mut ctx else {
        return ctx;
    };
    for (k, v) in &env.values {
        set_path(map, k, v.clone());
    }
    if let Some(vals) = env.rule_values.get(rule_name).or_else(|| {
        rule_name
            .strip_prefix("autogen-cronjob-")
            .or(rule_name.strip_prefix("autogen-"))
            .and_then(|n| env.rule_values.get(n))
    }) {
        for (k, v) in vals {
            set_path(map, k, v.clone());
        }
    }
    ctx
}

/// Kyverno's `images` variable: every container image split into registry, path, name, tag, digest.
pub(super) fn images(resource: &Value) -> Value {
    let pod_spec = [
        "/spec/template/spec",
        "/spec/jobTemplate/spec/template/spec",
        "/spec",
    ]
    .iter()
    .find_map(|p| {
        resource
            .pointer(p)
            .filter(|s| s.get("containers").is_some())
    });
    let mut out = Map::new();
    let Some(spec) = pod_spec else {
        return Value::Object(out);
    };
    for field in ["containers", "initContainers", "ephemeralContainers"] {
        let Some(list) = spec.get(field).and_then(Value::as_array) else {
            continue;
        };
        let mut m = Map::new();
        for c in list {
            let (Some(name), Some(image)) = (
                c.get("name").and_then(Value::as_str),
                c.get("image").and_then(Value::as_str),
            ) else {
                continue;
            };
            m.insert(name.to_string(), image_info(image));
        }
        out.insert(field.to_string(), Value::Object(m));
    }
    Value::Object(out)
}

pub fn image_info(image: &str) -> Value {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, d.to_string()),
        None => (image, String::new()),
    };
    let (registry, path_tag) = match rest.split_once('/') {
        Some((first, r)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first.to_string(), r.to_string())
        }
        _ => ("docker.io".to_string(), rest.to_string()),
    };
    let (path, mut tag) = match path_tag.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p.to_string(), t.to_string()),
        _ => (path_tag.clone(), String::new()),
    };
    if tag.is_empty() && digest.is_empty() {
        tag = "latest".into();
    }
    let name = path.rsplit('/').next().unwrap_or(&path).to_string();
    let reference = if !digest.is_empty() {
        format!("{registry}/{path}@{digest}")
    } else {
        format!("{registry}/{path}:{tag}")
    };
    let reference_with_tag = if tag.is_empty() {
        format!("{registry}/{path}")
    } else {
        format!("{registry}/{path}:{tag}")
    };
    json!({"registry": registry, "path": path, "name": name, "tag": tag, "digest": digest,
           "reference": reference, "referenceWithTag": reference_with_tag})
}
pub(super) fn load_context(
    entries: Option<&Value>,
    ctx: &mut Value,
    env: &Environment,
    rule: &str,
) -> Option<RuleResult> {
    let provided = |n: &str| {
        env.values.contains_key(n)
            || env.rule_values.get(rule).is_some_and(|m| {
                m.contains_key(n) || m.keys().any(|k| k.starts_with(&format!("{n}.")))
            })
            || env.values.keys().any(|k| k.starts_with(&format!("{n}.")))
    };
    for entry in entries.and_then(Value::as_array).into_iter().flatten() {
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if provided(name) {
            continue;
        }
        if let Some(var) = entry.get("variable") {
            let mut value = match var.get("value") {
                Some(v) => match jmes::substitute(v, ctx) {
                    Ok(v) => v,
                    Err(e) => return result(Status::Error, format!("failed to load context: {e}")),
                },
                None => Value::Null,
            };
            if let Some(path) = var.get("jmesPath").and_then(Value::as_str) {
                let path = match jmes::substitute_str(path, ctx) {
                    Ok(Value::String(s)) => s,
                    Ok(_) | Err(_) => path.to_string(),
                };
                let source = if var.get("value").is_some() {
                    value.clone()
                } else {
                    ctx.clone()
                };
                value = jmes::query(&path, &source).unwrap_or(Value::Null);
            }
            if value.is_null()
                && let Some(d) = var.get("default")
            {
                value = jmes::substitute(d, ctx).unwrap_or_else(|_| d.clone());
            }
            if let Value::Object(m) = ctx {
                set_path(m, name, value);
            }
            continue;
        }
        for kind in ["configMap", "apiCall", "imageRegistry", "globalReference"] {
            if entry.get(kind).is_some() {
                return unsupported(&format!(
                    "context.{kind} (give the value in the test's values file)"
                ));
            }
        }
    }
    None
}

pub(super) fn join_non_empty(parts: &[&str], sep: &str) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(sep)
}
