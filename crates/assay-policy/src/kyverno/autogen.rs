//! Kyverno's rule generation for pod controllers: a rule written for Pods also checks the pod
//! templates of Deployments, DaemonSets, Jobs, StatefulSets, ReplicaSets, ReplicationControllers
//! (`autogen-<rule>`) and CronJobs (`autogen-cronjob-<rule>`), unless the policy's
//! `pod-policies.kyverno.io/autogen-controllers` annotation says otherwise.

use serde_json::{Value, json};

const CONTROLLERS: [&str; 6] = [
    "DaemonSet",
    "Deployment",
    "Job",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
];

fn kinds_of(block: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(b) = block else { return out };
    let mut push = |rd: Option<&Value>| {
        if let Some(k) = rd.and_then(|r| r.get("kinds")).and_then(Value::as_array) {
            out.extend(k.iter().filter_map(|v| v.as_str().map(short_kind)));
        }
    };
    push(b.get("resources"));
    for key in ["any", "all"] {
        for f in b.get(key).and_then(Value::as_array).into_iter().flatten() {
            push(f.get("resources"));
        }
    }
    out
}

fn short_kind(k: &str) -> String {
    k.rsplit('/').next().unwrap_or(k).to_string()
}

/// Whether a resource description allows generation; sets `needed` when it names Pods or controllers.
fn supports(rd: Option<&Value>, needed: &mut bool) -> bool {
    let Some(rd) = rd else { return true };
    let has = |k: &str| {
        rd.get(k)
            .is_some_and(|v| !v.is_null() && v != &json!([]) && v != &json!(""))
    };
    if has("name") || has("names") || has("selector") || has("annotations") {
        return false;
    }
    let kinds: Vec<String> = rd
        .get("kinds")
        .and_then(Value::as_array)
        .map(|k| {
            k.iter()
                .filter_map(|v| v.as_str().map(short_kind))
                .collect()
        })
        .unwrap_or_default();
    if kinds.len() > 1 && kinds.iter().any(|k| k == "Pod") {
        return false;
    }
    if kinds
        .iter()
        .any(|k| k == "Pod" || k == "CronJob" || CONTROLLERS.contains(&k.as_str()))
    {
        *needed = true;
    }
    true
}

fn block_supports(b: Option<&Value>, needed: &mut bool) -> bool {
    let Some(b) = b else { return true };
    if !supports(b.get("resources"), needed) {
        return false;
    }
    for key in ["any", "all"] {
        for f in b.get(key).and_then(Value::as_array).into_iter().flatten() {
            if !supports(f.get("resources"), needed) {
                return false;
            }
        }
    }
    true
}

fn can_autogen(rules: &[Value]) -> bool {
    let mut needed = false;
    for r in rules {
        if r.get("generate").is_some() {
            return false;
        }
        if r.pointer("/mutate/patchesJson6902").is_some() {
            return false;
        }
        if !block_supports(r.get("match"), &mut needed)
            || !block_supports(r.get("exclude"), &mut needed)
        {
            return false;
        }
    }
    needed
}

pub fn compute_rules(rules: &[Value], annotations: &Value) -> Vec<Value> {
    let apply = can_autogen(rules);
    let controllers: Vec<String> = if !apply {
        return rules.to_vec();
    } else {
        match annotations
            .get("pod-policies.kyverno.io/autogen-controllers")
            .and_then(Value::as_str)
        {
            Some("none") => return rules.to_vec(),
            Some("all") | None => CONTROLLERS
                .iter()
                .map(|s| s.to_string())
                .chain(["CronJob".to_string()])
                .collect(),
            Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        }
    };
    let plain: Vec<String> = controllers
        .iter()
        .filter(|c| CONTROLLERS.contains(&c.as_str()))
        .cloned()
        .collect();
    let cronjob = controllers.iter().any(|c| c == "CronJob");
    let mut out: Vec<Value> = rules
        .iter()
        .filter(|r| !name(r).starts_with("autogen-"))
        .cloned()
        .collect();
    for r in rules {
        let Some(base) = for_controllers(r, &plain) else {
            if cronjob && !plain.is_empty() {
                continue;
            }
            // with CronJob only, Kyverno still builds the controller rule as the CronJob rule's base
            if cronjob
                && let Some(base) = for_controllers(r, &["Deployment".to_string()])
                && let Some(c) = generate(
                    &base,
                    &format!("autogen-cronjob-{}", name(r)),
                    "jobTemplate",
                    &["CronJob".to_string()],
                    true,
                )
            {
                out.push(convert(c, Shift::CronJob));
            }
            continue;
        };
        if !plain.is_empty() {
            out.push(convert(base.clone(), Shift::Pod));
        }
        if cronjob
            && let Some(c) = generate(
                &base,
                &format!("autogen-cronjob-{}", name(r)),
                "jobTemplate",
                &["CronJob".to_string()],
                true,
            )
        {
            out.push(convert(c, Shift::CronJob));
        }
    }
    out
}

fn name(r: &Value) -> &str {
    r.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn for_controllers(rule: &Value, controllers: &[String]) -> Option<Value> {
    if name(rule).starts_with("autogen-") || controllers.is_empty() {
        return None;
    }
    let match_kinds = kinds_of(rule.get("match"));
    let exclude_kinds = kinds_of(rule.get("exclude"));
    if !match_kinds.iter().any(|k| k == "Pod")
        || (!exclude_kinds.is_empty() && !exclude_kinds.iter().any(|k| k == "Pod"))
    {
        return None;
    }
    let mut sorted = controllers.to_vec();
    sorted.sort();
    generate(
        rule,
        &truncate(format!("autogen-{}", name(rule))),
        "template",
        &sorted,
        false,
    )
}

fn truncate(mut s: String) -> String {
    if s.len() > 63 {
        s.truncate(63);
    }
    s
}

fn gvk(kind: &str) -> String {
    match kind {
        "Job" | "CronJob" => format!("batch/v1/{kind}"),
        "ReplicationController" => format!("v1/{kind}"),
        k => format!("apps/v1/{k}"),
    }
}

fn replace_kinds(block: &mut Value, kinds: &[String], every_filter: bool) {
    let new: Vec<Value> = kinds.iter().map(|k| Value::String(gvk(k))).collect();
    let mut done = false;
    for key in ["any", "all"] {
        if let Some(list) = block
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .filter(|l| !l.is_empty())
        {
            for f in list.iter_mut() {
                let has_pod = kinds_of(Some(
                    &json!({"resources": f.get("resources").cloned().unwrap_or(Value::Null)}),
                ))
                .iter()
                .any(|k| k == "Pod");
                if (every_filter || has_pod)
                    && let Some(rd) = f.get_mut("resources").and_then(Value::as_object_mut)
                {
                    rd.insert("kinds".into(), Value::Array(new.clone()));
                }
            }
            done = true;
            break;
        }
    }
    if !done && let Some(rd) = block.get_mut("resources").and_then(Value::as_object_mut) {
        rd.insert("kinds".into(), Value::Array(new));
    }
}

fn generate(
    rule: &Value,
    new_name: &str,
    tpl_key: &str,
    kinds: &[String],
    cronjob: bool,
) -> Option<Value> {
    let mut r = rule.clone();
    let obj = r.as_object_mut()?;
    obj.insert("name".into(), Value::String(truncate(new_name.to_string())));
    if let Some(m) = obj.get_mut("match") {
        replace_kinds(m, kinds, cronjob);
    }
    if let Some(x) = obj.get_mut("exclude") {
        let has_kinds = !kinds_of(Some(x)).is_empty();
        if has_kinds {
            replace_kinds(x, kinds, cronjob);
        }
    }
    let validate = obj.get("validate").cloned()?;
    let mut newv = serde_json::Map::new();
    for keep in [
        "message",
        "failureAction",
        "failureActionOverrides",
        "allowExistingViolations",
    ] {
        if let Some(v) = validate.get(keep) {
            newv.insert(keep.into(), v.clone());
        }
    }
    if let Some(p) = validate.get("pattern") {
        newv.insert("pattern".into(), json!({"spec": {tpl_key: p}}));
    } else if let Some(d) = validate.get("deny") {
        newv.insert("deny".into(), d.clone());
    } else if let Some(p) = validate.get("podSecurity") {
        newv.insert("podSecurity".into(), p.clone());
    } else if let Some(Value::Array(list)) = validate.get("anyPattern") {
        newv.insert(
            "anyPattern".into(),
            Value::Array(list.iter().map(|p| json!({"spec": {tpl_key: p}})).collect()),
        );
    } else if let Some(f) = validate.get("foreach") {
        newv.insert("foreach".into(), f.clone());
    } else if validate.get("cel").is_some() {
        newv = validate.as_object().cloned().unwrap_or_default();
    } else {
        return None;
    }
    obj.insert("validate".into(), Value::Object(newv));
    Some(r)
}

#[derive(Clone, Copy)]
enum Shift {
    Pod,
    CronJob,
}

/// Kyverno rewrites references to the Pod's fields into the template's, as text over the rule.
fn convert(rule: Value, shift: Shift) -> Value {
    let cel = rule.pointer("/validate/cel").is_some();
    let text = rule.to_string();
    let (obj, old) = match (shift, cel) {
        (Shift::Pod, false) => (
            (
                "request.object.spec",
                "request.object.spec.template.spec",
                "request.object.metadata",
                "request.object.spec.template.metadata",
            ),
            (
                "request.oldObject.spec",
                "request.oldObject.spec.template.spec",
                "request.oldObject.metadata",
                "request.oldObject.spec.template.metadata",
            ),
        ),
        (Shift::Pod, true) => (
            (
                "object.spec",
                "object.spec.template.spec",
                "object.metadata",
                "object.spec.template.metadata",
            ),
            (
                "oldObject.spec",
                "oldObject.spec.template.spec",
                "oldObject.metadata",
                "oldObject.spec.template.metadata",
            ),
        ),
        (Shift::CronJob, false) => (
            (
                "request.object.spec",
                "request.object.spec.jobTemplate.spec.template.spec",
                "request.object.metadata",
                "request.object.spec.jobTemplate.spec.template.metadata",
            ),
            (
                "request.oldObject.spec",
                "request.oldObject.spec.jobTemplate.spec.template.spec",
                "request.oldObject.metadata",
                "request.oldObject.spec.jobTemplate.spec.template.metadata",
            ),
        ),
        (Shift::CronJob, true) => (
            (
                "object.spec",
                "object.spec.jobTemplate.spec.template.spec",
                "object.metadata",
                "object.spec.jobTemplate.spec.template.metadata",
            ),
            (
                "oldObject.spec",
                "oldObject.spec.jobTemplate.spec.template.spec",
                "oldObject.metadata",
                "oldObject.spec.jobTemplate.spec.template.metadata",
            ),
        ),
    };
    let text = text
        .replace(obj.0, obj.1)
        .replace(old.0, old.1)
        .replace(obj.2, obj.3)
        .replace(old.2, old.3);
    serde_json::from_str(&text).unwrap_or(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_rule_gets_controller_and_cronjob_rules() {
        let rules = vec![
            json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"message": "m", "pattern": {"spec": {"x": "1"}}}}),
        ];
        let out = compute_rules(&rules, &Value::Null);
        let names: Vec<&str> = out.iter().map(name).collect();
        assert_eq!(names, ["r", "autogen-r", "autogen-cronjob-r"]);
        assert_eq!(
            out[1]["validate"]["pattern"],
            json!({"spec": {"template": {"spec": {"x": "1"}}}})
        );
        assert_eq!(
            out[2]["validate"]["pattern"],
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"x": "1"}}}}}})
        );
        assert_eq!(
            out[2]["match"]["any"][0]["resources"]["kinds"],
            json!(["batch/v1/CronJob"])
        );
        let none = compute_rules(
            &rules,
            &json!({"pod-policies.kyverno.io/autogen-controllers": "none"}),
        );
        assert_eq!(none.len(), 1);
    }

    #[test]
    fn deny_variables_shift_to_the_template() {
        let rules = vec![
            json!({"name": "r", "match": {"resources": {"kinds": ["Pod"]}},
            "validate": {"deny": {"conditions": [{"key": "{{ request.object.spec.hostPID }}", "operator": "Equals", "value": true}]}}}),
        ];
        let out = compute_rules(&rules, &Value::Null);
        assert_eq!(
            out[1]["validate"]["deny"]["conditions"][0]["key"],
            "{{ request.object.spec.template.spec.hostPID }}"
        );
        assert_eq!(
            out[2]["validate"]["deny"]["conditions"][0]["key"],
            "{{ request.object.spec.jobTemplate.spec.template.spec.hostPID }}"
        );
    }
}
