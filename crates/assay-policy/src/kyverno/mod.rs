//! Kyverno policies evaluated offline: `ClusterPolicy`/`Policy` validate rules (`pattern`,
//! `anyPattern`, `deny.conditions`, `foreach`, `cel`, `preconditions`, `celPreconditions`,
//! `context` variables) with Kyverno's pod-controller rules generated from Pod rules, and
//! `ValidatingPolicy` (CEL). Semantics follow Kyverno's engine; what is not evaluated
//! (mutate, generate, verifyImages, podSecurity, cluster lookups) is reported as unsupported.
//!
//! The parts: this module loads policies and runs each rule; `matching.rs` decides whether a
//! rule's `match`/`exclude` takes a resource, `context.rs` builds the JSON a rule queries
//! (`request`, `images`, `context` entries), `validate.rs` checks a `validate` block,
//! `validating.rs` evaluates a `ValidatingPolicy`.

mod autogen;
pub mod cel;
pub mod conditions;
mod context;
pub mod jmes;
mod matching;
pub mod pattern;
pub mod scalar;
pub mod suite;
mod validate;
mod validating;

pub use context::image_info;
use context::*;
use matching::*;
use validate::*;
use validating::*;

use serde_json::{Map, Value};

/// A rule's verdict on one resource (Kyverno's report results).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Error,
    Skip,
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "pass" => Status::Pass,
            "fail" => Status::Fail,
            "warn" | "warning" => Status::Warn,
            "error" => Status::Error,
            "skip" => Status::Skip,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
            Status::Error => "error",
            Status::Skip => "skip",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleResult {
    pub rule: String,
    pub status: Status,
    pub message: String,
    /// Set when the rule uses something Assay does not evaluate (the feature's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

/// A loaded Kyverno policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub kind: String,
    pub namespace: Option<String>,
    /// The rules to evaluate, generated pod-controller rules included (empty for `ValidatingPolicy`).
    pub rules: Vec<Value>,
    pub spec: Value,
    /// `policies.kyverno.io/scored: "false"` turns failures into warnings.
    pub scored: bool,
    pub severity: Option<String>,
}

pub const POLICY_KINDS: [&str; 4] = [
    "ClusterPolicy",
    "Policy",
    "ValidatingPolicy",
    "NamespacedValidatingPolicy",
];

impl Policy {
    /// Reads one policy document; `None` if the document is not a Kyverno policy.
    pub fn from_value(doc: &Value) -> Result<Option<Policy>, String> {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !POLICY_KINDS.contains(&kind)
            || !(api.starts_with("kyverno.io/") || api.starts_with("policies.kyverno.io/"))
        {
            return Ok(None);
        }
        let meta = doc.get("metadata").cloned().unwrap_or(Value::Null);
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .ok_or("policy without metadata.name")?
            .to_string();
        let annotations = meta.get("annotations").cloned().unwrap_or(Value::Null);
        let scored = annotations
            .get("policies.kyverno.io/scored")
            .and_then(Value::as_str)
            != Some("false");
        let severity = annotations
            .get("policies.kyverno.io/severity")
            .and_then(Value::as_str)
            .map(str::to_string);
        let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
        let rules = if kind.ends_with("ValidatingPolicy") {
            Vec::new()
        } else {
            let rules = spec
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if rules.is_empty() {
                return Err(format!("policy {name}: spec.rules is empty"));
            }
            for (i, r) in rules.iter().enumerate() {
                if r.get("name").and_then(Value::as_str).is_none() {
                    return Err(format!("policy {name}: spec.rules[{i}] has no name"));
                }
            }
            autogen::compute_rules(&rules, &annotations)
        };
        Ok(Some(Policy {
            name,
            kind: kind.to_string(),
            namespace: meta
                .get("namespace")
                .and_then(Value::as_str)
                .map(str::to_string),
            rules,
            spec,
            scored,
            severity,
        }))
    }

    pub fn is_validating_policy(&self) -> bool {
        self.kind.ends_with("ValidatingPolicy")
    }
}

/// What a run knows beyond the resource: the admission operation and user-supplied variables.
#[derive(Debug, Clone)]
pub struct Environment {
    pub operation: String,
    /// Variables every rule sees (`request.operation: UPDATE` style keys are paths).
    pub values: Map<String, Value>,
    /// Variables per rule name.
    pub rule_values: std::collections::HashMap<String, Map<String, Value>>,
    /// Labels of namespaces by name (for `namespaceSelector`).
    pub namespace_labels: std::collections::HashMap<String, Map<String, Value>>,
}

impl Default for Environment {
    fn default() -> Self {
        Environment {
            operation: "CREATE".into(),
            values: Map::new(),
            rule_values: Default::default(),
            namespace_labels: Default::default(),
        }
    }
}

/// Metadata of a resource document.
pub fn resource_id(r: &Value) -> (String, String, String, String) {
    let s = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (
        s("/apiVersion"),
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name"),
    )
}

/// Evaluates every rule of `policy` that matches `resource`. Rules that do not match give no
/// result (Kyverno: the resource is excluded from that rule).
pub fn evaluate(policy: &Policy, resource: &Value, env: &Environment) -> Vec<RuleResult> {
    let (_, _, ns, _) = resource_id(resource);
    if (policy.kind == "Policy" || policy.kind.starts_with("Namespaced"))
        && let Some(pns) = &policy.namespace
        && !ns.is_empty()
        && &ns != pns
    {
        return vec![];
    }
    if policy.is_validating_policy() {
        return validating_policy(policy, resource, env)
            .into_iter()
            .collect();
    }
    let mut out = Vec::new();
    for rule in &policy.rules {
        let name = rule
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !rule_matches(rule, resource, env) {
            continue;
        }
        let mut result = match evaluate_rule(rule, resource, env) {
            Some(r) => r,
            None => continue,
        };
        if result.status == Status::Fail && !policy.scored {
            result.status = Status::Warn;
        }
        result.rule = name;
        out.push(result);
    }
    out
}

fn unsupported(feature: &str) -> Option<RuleResult> {
    Some(RuleResult {
        rule: String::new(),
        status: Status::Error,
        message: format!("{feature} is not evaluated by Assay"),
        unsupported: Some(feature.to_string()),
    })
}

/// The result of a rule or `foreach` block whose `preconditions` do not hold (`skip`) or
/// cannot be evaluated (`error`); `None` when they hold (or there are none).
fn unmet_preconditions(block: &Value, ctx: &Value) -> Option<RuleResult> {
    match conditions::evaluate(block.get("preconditions").unwrap_or(&Value::Null), ctx) {
        Err(e) => result(
            Status::Error,
            format!("failed to evaluate preconditions: {e}"),
        ),
        Ok((false, msg)) => result(
            Status::Skip,
            join_non_empty(&["preconditions not met", &msg], "; "),
        ),
        Ok((true, _)) => None,
    }
}

fn result(status: Status, message: impl Into<String>) -> Option<RuleResult> {
    Some(RuleResult {
        rule: String::new(),
        status,
        message: message.into(),
        unsupported: None,
    })
}

fn set_path(map: &mut Map<String, Value>, dotted: &str, value: Value) {
    let mut parts = dotted.split('.').peekable();
    let mut cur = map;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), value);
            return;
        }
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        cur = next;
    }
}

fn evaluate_rule(rule: &Value, resource: &Value, env: &Environment) -> Option<RuleResult> {
    let name = rule.get("name").and_then(Value::as_str).unwrap_or_default();
    let Some(validate) = rule.get("validate") else {
        for kind in ["mutate", "generate", "verifyImages"] {
            if rule.get(kind).is_some() {
                return unsupported(&format!("{kind} rules"));
            }
        }
        return None;
    };
    let mut ctx = base_context(resource, env, name);
    if let Some(r) = load_context(rule.get("context"), &mut ctx, env, name) {
        return Some(r);
    }
    if let Some(pre) = rule.get("celPreconditions").and_then(Value::as_array) {
        for p in pre {
            let expr = p
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let request = ctx.get("request").cloned().unwrap_or(Value::Null);
            match cel::eval(
                expr,
                &[
                    ("object", resource),
                    ("oldObject", &Value::Null),
                    ("request", &request),
                ],
            ) {
                Ok(Value::Bool(true)) => {}
                Ok(_) => return result(Status::Skip, "cel preconditions not met"),
                Err(e) => {
                    return result(
                        Status::Error,
                        format!("failed to evaluate cel preconditions: {e}"),
                    );
                }
            }
        }
    }
    if let Some(r) = unmet_preconditions(rule, &ctx) {
        return Some(r);
    }
    if validate.get("podSecurity").is_some() {
        return unsupported("validate.podSecurity");
    }
    if validate.get("manifests").is_some() {
        return unsupported("validate.manifests");
    }
    if let Some(c) = validate.get("cel") {
        return validate_cel(c, resource, &ctx);
    }
    let v = Validator {
        name,
        message: validate
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        env,
    };
    v.validate(validate, &ctx, resource, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_parts() {
        let i = image_info("nginx");
        assert_eq!(i["registry"], "docker.io");
        assert_eq!(i["tag"], "latest");
        let i = image_info("ghcr.io/org/app:1.2@sha256:abc");
        assert_eq!(i["registry"], "ghcr.io");
        assert_eq!(i["path"], "org/app");
        assert_eq!(i["tag"], "1.2");
        assert_eq!(i["digest"], "sha256:abc");
        let i = image_info("localhost:5000/app");
        assert_eq!(i["registry"], "localhost:5000");
        assert_eq!(i["name"], "app");
    }

    #[test]
    fn kinds() {
        assert!(kind_matches("Pod", "v1", "Pod"));
        assert!(kind_matches("apps/v1/Deployment", "apps/v1", "Deployment"));
        assert!(!kind_matches(
            "apps/v1/Deployment",
            "apps/v1",
            "StatefulSet"
        ));
        assert!(kind_matches("v1/Pod", "v1", "Pod"));
        assert!(kind_matches("Pod/ephemeralcontainers", "v1", "Pod"));
        assert!(kind_matches(
            "networking.k8s.io/v1/Ingress",
            "networking.k8s.io/v1",
            "Ingress"
        ));
    }
}
