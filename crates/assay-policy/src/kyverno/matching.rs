//! Whether a rule's `match` / `exclude` blocks take a resource: kinds, names, namespaces,
//! selectors, operations, user info.

use serde_json::{Map, Value};

use scalar::wildcard_match;

use super::*;

pub(super) fn rule_matches(rule: &Value, resource: &Value, env: &Environment) -> bool {
    let Some(m) = rule.get("match") else {
        return false;
    };
    if !match_block(m, resource, env) {
        return false;
    }
    match rule.get("exclude") {
        Some(x) if !x.is_null() && x.as_object().is_some_and(|o| !o.is_empty()) => {
            !match_block(x, resource, env)
        }
        _ => true,
    }
}

pub(super) fn match_block(block: &Value, resource: &Value, env: &Environment) -> bool {
    if let Some(any) = block
        .get("any")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        return any.iter().any(|f| filter_matches(f, resource, env));
    }
    if let Some(all) = block
        .get("all")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        return all.iter().all(|f| filter_matches(f, resource, env));
    }
    filter_matches(block, resource, env)
}

pub(super) fn filter_matches(filter: &Value, resource: &Value, env: &Environment) -> bool {
    for who in ["subjects", "roles", "clusterRoles"] {
        if filter
            .get(who)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            return false;
        }
    }
    let Some(rd) = filter.get("resources") else {
        return false;
    };
    description_matches(rd, resource, env)
}

pub(super) fn strs(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

pub(super) fn description_matches(rd: &Value, resource: &Value, env: &Environment) -> bool {
    let (api, kind, ns, name) = resource_id(resource);
    let kinds = strs(rd.get("kinds"));
    if !kinds.is_empty() && !kinds.iter().any(|k| kind_matches(k, &api, &kind)) {
        return false;
    }
    let mut names = strs(rd.get("names"));
    names.extend(strs(rd.get("name")));
    if !names.is_empty() && !names.iter().any(|n| wildcard_match(n, &name)) {
        return false;
    }
    let namespaces = strs(rd.get("namespaces"));
    let ns_for_match = if kind == "Namespace" {
        name.clone()
    } else {
        ns.clone()
    };
    if !namespaces.is_empty() && !namespaces.iter().any(|n| wildcard_match(n, &ns_for_match)) {
        return false;
    }
    let ops = strs(rd.get("operations"));
    if !ops.is_empty() && !ops.iter().any(|o| o.eq_ignore_ascii_case(&env.operation)) {
        return false;
    }
    if let Some(Value::Object(ann)) = rd.get("annotations") {
        let have = resource
            .pointer("/metadata/annotations")
            .and_then(Value::as_object);
        let ok = ann.iter().all(|(k, v)| {
            have.is_some_and(|h| {
                h.iter().any(|(hk, hv)| {
                    wildcard_match(k, hk)
                        && wildcard_match(
                            v.as_str().unwrap_or_default(),
                            hv.as_str().unwrap_or_default(),
                        )
                })
            })
        });
        if !ok {
            return false;
        }
    }
    if let Some(sel) = rd.get("selector").filter(|s| !s.is_null()) {
        let labels = resource
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if !selector_matches(sel, &labels) {
            return false;
        }
    }
    if let Some(sel) = rd.get("namespaceSelector").filter(|s| !s.is_null()) {
        let labels = env.namespace_labels.get(&ns).cloned().unwrap_or_default();
        if !selector_matches(sel, &labels) {
            return false;
        }
    }
    true
}

pub(super) fn kind_matches(pattern: &str, api: &str, kind: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let pattern = pattern.split_once('/').map_or(pattern, |_| pattern);
    let parts: Vec<&str> = pattern.split('/').collect();
    // Kind, Kind/subresource, version/Kind, group/version/Kind
    let (want_api, want_kind) = match parts.as_slice() {
        [k] => (None, *k),
        [a, b] if b.chars().next().is_some_and(char::is_uppercase) => (Some(a.to_string()), *b),
        [k, _sub] => (None, *k),
        [g, v, k, ..] => (Some(format!("{g}/{v}")), *k),
        _ => return false,
    };
    if !wildcard_match(want_kind, kind) {
        return false;
    }
    match want_api {
        None => true,
        Some(a) => {
            let (g, v) = a.split_once('/').map_or(("", a.as_str()), |(g, v)| (g, v));
            let (rg, rv) = api.split_once('/').unwrap_or(("", api));
            if a.contains('/') {
                wildcard_match(g, rg) && wildcard_match(v, rv)
            } else {
                wildcard_match(v, rv)
            }
        }
    }
}

pub(super) fn selector_matches(sel: &Value, labels: &Map<String, Value>) -> bool {
    if let Some(Value::Object(ml)) = sel.get("matchLabels") {
        for (k, v) in ml {
            let want = v.as_str().unwrap_or_default();
            let ok = labels.iter().any(|(lk, lv)| {
                wildcard_match(k, lk) && wildcard_match(want, lv.as_str().unwrap_or_default())
            });
            if !ok {
                return false;
            }
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values = strs(e.get("values"));
        let have = labels.get(key).and_then(Value::as_str);
        let ok = match e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" => have.is_some_and(|h| values.iter().any(|v| v == h)),
            "NotIn" => have.is_none_or(|h| !values.iter().any(|v| v == h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}
