//! A rule's `validate` block: `pattern`, `anyPattern`, `deny`, `foreach`, `cel`.

use serde_json::{Value, json};

use super::*;

pub(super) struct Validator<'a> {
    pub(super) name: &'a str,
    pub(super) message: &'a str,
    pub(super) env: &'a Environment,
}

impl Validator<'_> {
    /// One validation block (the rule's, or a foreach's for one element).
    pub(super) fn validate(
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
            if let Some(r) = unmet_preconditions(block, &ctx) {
                return Some(r);
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

pub(super) fn validate_cel(c: &Value, resource: &Value, ctx: &Value) -> Option<RuleResult> {
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

pub(super) fn cel_validations(list: &[Value], vars: &[(&str, &Value)]) -> Option<RuleResult> {
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
