//! Kyverno policies evaluated offline: `ClusterPolicy`/`Policy` validate rules (`pattern`,
//! `anyPattern`, `deny.conditions`, `foreach`, `cel`, `preconditions`, `celPreconditions`,
//! `context` variables) with Kyverno's pod-controller rules generated from Pod rules, and
//! `ValidatingPolicy` (CEL). Semantics follow Kyverno's engine; what is not evaluated
//! (mutate, generate, verifyImages, podSecurity, cluster lookups) is reported as unsupported.

mod autogen;
pub mod cel;
pub mod conditions;
pub mod jmes;
pub mod pattern;
pub mod scalar;
pub mod suite;

use serde_json::{Map, Value, json};

use scalar::wildcard_match;

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

/// The JSON context rules query (`request.object`, `images`, ...).
fn base_context(resource: &Value, env: &Environment, rule_name: &str) -> Value {
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
fn images(resource: &Value) -> Value {
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
    match conditions::evaluate(rule.get("preconditions").unwrap_or(&Value::Null), &ctx) {
        Err(e) => {
            return result(
                Status::Error,
                format!("failed to evaluate preconditions: {e}"),
            );
        }
        Ok((false, msg)) => {
            return result(
                Status::Skip,
                join_non_empty(&["preconditions not met", &msg], "; "),
            );
        }
        Ok((true, _)) => {}
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

fn load_context(
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

fn join_non_empty(parts: &[&str], sep: &str) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(sep)
}

struct Validator<'a> {
    name: &'a str,
    message: &'a str,
    env: &'a Environment,
}

impl Validator<'_> {
    /// One validation block (the rule's, or a foreach's for one element).
    fn validate(
        &self,
        block: &Value,
        ctx: &Value,
        resource: &Value,
        nesting: usize,
    ) -> Option<RuleResult> {
        if nesting > 0 {
            let mut ctx = ctx.clone();
            if let Some(r) = load_context(block.get("context"), &mut ctx, self.env, self.name) {
                return Some(r);
            }
            match conditions::evaluate(block.get("preconditions").unwrap_or(&Value::Null), &ctx) {
                Err(e) => {
                    return result(
                        Status::Error,
                        format!("failed to evaluate preconditions: {e}"),
                    );
                }
                Ok((false, msg)) => {
                    return result(
                        Status::Skip,
                        join_non_empty(&["preconditions not met", &msg], "; "),
                    );
                }
                Ok((true, _)) => {}
            }
            return self.validate_body(block, &ctx, resource, nesting);
        }
        self.validate_body(block, ctx, resource, nesting)
    }

    fn validate_body(
        &self,
        block: &Value,
        ctx: &Value,
        resource: &Value,
        nesting: usize,
    ) -> Option<RuleResult> {
        if let Some(deny) = block.get("deny") {
            let conds = deny.get("conditions").unwrap_or(&Value::Null);
            return match conditions::evaluate(conds, ctx) {
                Err(e) => result(
                    Status::Error,
                    format!("failed to check deny conditions: {e}"),
                ),
                Ok((true, msg)) => result(Status::Fail, self.deny_message(&msg, ctx)),
                Ok((false, _)) => result(
                    Status::Pass,
                    format!("validation rule '{}' passed.", self.name),
                ),
            };
        }
        let target = ctx.get("__element_target").unwrap_or(resource);
        if let Some(p) = block.get("pattern") {
            let p = match jmes::substitute(p, ctx) {
                Ok(p) => p,
                Err(e) => {
                    return result(Status::Error, format!("variable substitution failed: {e}"));
                }
            };
            return match pattern::match_pattern(target, &p) {
                Ok(()) => result(
                    Status::Pass,
                    format!("validation rule '{}' passed.", self.name),
                ),
                Err(e) if e.skip => result(Status::Skip, e.message),
                Err(e) => result(Status::Fail, self.error_message(&e.path, ctx)),
            };
        }
        if let Some(any) = block.get("anyPattern") {
            let any = match jmes::substitute(any, ctx) {
                Ok(p) => p,
                Err(e) => {
                    return result(Status::Error, format!("variable substitution failed: {e}"));
                }
            };
            let Some(list) = any.as_array() else {
                return result(
                    Status::Error,
                    "failed to deserialize anyPattern, expected type array",
                );
            };
            let mut failed = Vec::new();
            let mut skipped = Vec::new();
            for (i, p) in list.iter().enumerate() {
                match pattern::match_pattern(target, p) {
                    Ok(()) => {
                        return result(
                            Status::Pass,
                            format!("validation rule '{}' anyPattern[{i}] passed.", self.name),
                        );
                    }
                    Err(e) if e.skip => {
                        skipped.push(format!("rule {}[{i}] skipped: {}", self.name, e.message))
                    }
                    Err(e) => {
                        failed.push(format!("rule {}[{i}] failed at path {}", self.name, e.path))
                    }
                }
            }
            if failed.is_empty() && !skipped.is_empty() {
                return result(Status::Skip, skipped.join(" "));
            }
            let errs = failed.join(" ");
            let msg = if self.message.is_empty() {
                format!("validation error: {errs}")
            } else {
                let m = self.substituted_message(ctx);
                if m.ends_with('.') {
                    format!("validation error: {m} {errs}")
                } else {
                    format!("validation error: {m}. {errs}")
                }
            };
            return result(Status::Fail, msg);
        }
        if let Some(list) = block.get("foreach").and_then(Value::as_array) {
            return self.foreach(list, ctx, resource, nesting);
        }
        if nesting == 0 {
            return result(
                Status::Error,
                "invalid validation rule: podSecurity, cel, patterns, or deny expected",
            );
        }
        None
    }

    fn foreach(
        &self,
        list: &[Value],
        ctx: &Value,
        resource: &Value,
        nesting: usize,
    ) -> Option<RuleResult> {
        let mut applied = 0;
        let mut list_error = None;
        for fe in list {
            let expr = fe.get("list").and_then(Value::as_str).unwrap_or_default();
            let expr = match jmes::substitute_str(expr, ctx) {
                Ok(Value::String(s)) => s,
                _ => expr.to_string(),
            };
            let elements = match jmes::query(&expr, ctx) {
                Ok(Value::Array(a)) => a,
                Ok(Value::Null) => continue,
                Ok(other) => vec![other],
                Err(e) => {
                    list_error = Some(e);
                    continue;
                }
            };
            let element_scope = fe.get("elementScope").and_then(Value::as_bool);
            for (i, el) in elements.iter().enumerate() {
                if el.is_null() {
                    continue;
                }
                let mut c = ctx.clone();
                if let Value::Object(m) = &mut c {
                    m.insert("element".into(), el.clone());
                    m.insert("elementIndex".into(), json!(i));
                    m.insert(format!("element{nesting}"), el.clone());
                    m.insert(format!("elementIndex{nesting}"), json!(i));
                    if element_scope != Some(false) && el.is_object() {
                        m.insert("__element_target".into(), el.clone());
                    } else {
                        m.remove("__element_target");
                    }
                }
                let Some(r) = self.validate(fe, &c, resource, nesting + 1) else {
                    continue;
                };
                match r.status {
                    Status::Skip => continue,
                    Status::Pass => applied += 1,
                    Status::Error if r.message.contains("failed to evaluate preconditions") => {
                        continue;
                    }
                    status => {
                        if r.unsupported.is_some() {
                            return Some(r);
                        }
                        return result(status, format!("validation failure: {}", r.message));
                    }
                }
            }
        }
        if applied == 0 {
            return list_error.map(|e| RuleResult {
                rule: String::new(),
                status: Status::Error,
                message: format!("failed to evaluate list: {e}"),
                unsupported: None,
            });
        }
        result(Status::Pass, "rule passed")
    }

    fn substituted_message(&self, ctx: &Value) -> String {
        match jmes::substitute_str(self.message, ctx) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => self.message.to_string(),
        }
    }

    fn deny_message(&self, msg: &str, ctx: &Value) -> String {
        if self.message.is_empty() && msg.is_empty() {
            return format!("validation error: rule {} failed", self.name);
        }
        let joined = join_non_empty(&[self.message, msg], "; ");
        match jmes::substitute_str(&joined, ctx) {
            Ok(Value::String(s)) => s,
            _ => msg.to_string(),
        }
    }

    fn error_message(&self, path: &str, ctx: &Value) -> String {
        if self.message.is_empty() {
            return format!("validation error: rule {} failed at path {path}", self.name);
        }
        let mut m = self.substituted_message(ctx);
        if !m.ends_with('.') {
            m.push('.');
        }
        format!(
            "validation error: {m} rule {} failed at path {path}",
            self.name
        )
    }
}

fn validate_cel(c: &Value, resource: &Value, ctx: &Value) -> Option<RuleResult> {
    if c.get("paramKind").is_some() || c.get("paramRef").is_some() {
        return unsupported("validate.cel params");
    }
    let request = ctx.get("request").cloned().unwrap_or(Value::Null);
    let ns_object = Value::Null;
    let base: Vec<(&str, &Value)> = vec![
        ("object", resource),
        ("oldObject", &Value::Null),
        ("request", &request),
        ("namespaceObject", &ns_object),
    ];
    let vars = match c.get("variables").and_then(Value::as_array) {
        Some(defs) => match cel::eval_variables(defs, &base) {
            Ok(v) => v,
            Err(e) => return result(Status::Error, e),
        },
        None => json!({}),
    };
    let mut all = base.clone();
    all.push(("variables", &vars));
    cel_validations(
        c.get("expressions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
        &all,
    )
}

fn cel_validations(list: &[Value], vars: &[(&str, &Value)]) -> Option<RuleResult> {
    for v in list {
        let expr = v
            .get("expression")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match cel::eval(expr, vars) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => {
                let msg = v
                    .get("messageExpression")
                    .and_then(Value::as_str)
                    .and_then(|m| cel::eval(m, vars).ok())
                    .and_then(|m| m.as_str().map(str::to_string))
                    .or_else(|| v.get("message").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| format!("failed expression: {expr}"));
                return result(Status::Fail, msg);
            }
            Ok(other) => {
                return result(
                    Status::Error,
                    format!("CEL `{expr}` gave {other}, not a boolean"),
                );
            }
            Err(e) => return result(Status::Error, e),
        }
    }
    result(Status::Pass, "")
}

/// `ValidatingPolicy`: `matchConstraints.resourceRules`, `matchConditions`, `variables`, `validations`.
fn validating_policy(policy: &Policy, resource: &Value, env: &Environment) -> Option<RuleResult> {
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

fn plural_of(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('y') && !k.ends_with("ey") {
        format!("{}ies", &k[..k.len() - 1])
    } else if k.ends_with('s') || k.ends_with("ch") || k.ends_with('x') {
        format!("{k}es")
    } else {
        format!("{k}s")
    }
}

// ---- match / exclude ----

fn rule_matches(rule: &Value, resource: &Value, env: &Environment) -> bool {
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

fn match_block(block: &Value, resource: &Value, env: &Environment) -> bool {
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

fn filter_matches(filter: &Value, resource: &Value, env: &Environment) -> bool {
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

fn strs(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

fn description_matches(rd: &Value, resource: &Value, env: &Environment) -> bool {
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

fn kind_matches(pattern: &str, api: &str, kind: &str) -> bool {
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

fn selector_matches(sel: &Value, labels: &Map<String, Value>) -> bool {
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
