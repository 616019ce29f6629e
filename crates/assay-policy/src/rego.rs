//! Rego policies the way conftest runs them: every package's `deny`, `violation` and `warn`
//! rules (and `deny_*`, `violation_*`, `warn_*`) evaluated against one input document at a time,
//! through the `regorus` interpreter. A rule's value is a set of messages (strings, or objects
//! with `msg`); each message is a finding, and a rule with none passes.

use serde_json::Value;
use std::path::Path;

use crate::Error;
use crate::kyverno::Status;

pub struct RegoPolicies {
    engine: regorus::Engine,
    packages: Vec<String>,
}

/// One rule of one package on one input: passed, or failed/warned with its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct RegoResult {
    pub package: String,
    pub rule: String,
    pub status: Status,
    pub messages: Vec<String>,
}

impl RegoPolicies {
    pub fn new() -> Self {
        RegoPolicies {
            engine: regorus::Engine::new(),
            packages: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    pub fn add(&mut self, path: &Path, text: &str) -> Result<(), Error> {
        let package = self
            .engine
            .add_policy(path.display().to_string(), text.to_string())
            .map_err(|e| Error::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if !self.packages.contains(&package) {
            self.packages.push(package);
        }
        Ok(())
    }

    /// Evaluates every package against `input`.
    pub fn evaluate(&mut self, input: &Value) -> Result<Vec<RegoResult>, String> {
        let text = input.to_string();
        self.engine
            .set_input_json(&text)
            .map_err(|e| format!("input: {e}"))?;
        let mut out = Vec::new();
        for package in self.packages.clone() {
            let results = self
                .engine
                .eval_query(package.clone(), false)
                .map_err(|e| format!("{package}: {e}"))?;
            let value = results
                .result
                .first()
                .and_then(|r| r.expressions.first())
                .map(|e| serde_json::to_value(&e.value).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            let Value::Object(rules) = value else {
                continue;
            };
            let name = package
                .strip_prefix("data.")
                .unwrap_or(&package)
                .to_string();
            for (rule, v) in rules {
                let status = if rule == "deny"
                    || rule.starts_with("deny_")
                    || rule == "violation"
                    || rule.starts_with("violation_")
                {
                    Status::Fail
                } else if rule == "warn" || rule.starts_with("warn_") {
                    Status::Warn
                } else {
                    continue;
                };
                let messages = messages(&v);
                out.push(RegoResult {
                    package: name.clone(),
                    rule,
                    status: if messages.is_empty() {
                        Status::Pass
                    } else {
                        status
                    },
                    messages,
                });
            }
        }
        Ok(out)
    }
}

impl Default for RegoPolicies {
    fn default() -> Self {
        Self::new()
    }
}

fn messages(v: &Value) -> Vec<String> {
    let one = |m: &Value| match m {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("msg")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| m.to_string()),
        other => other.to_string(),
    };
    match v {
        Value::Array(a) => a.iter().map(one).collect(),
        Value::Bool(true) => vec!["denied".into()],
        Value::Bool(false) | Value::Null => vec![],
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        Value::Object(o) if o.is_empty() => vec![],
        other => vec![one(other)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conftest_style_rules() {
        let mut p = RegoPolicies::new();
        p.add(
            Path::new("k8s.rego"),
            r#"package main
import rego.v1
deny contains msg if {
  input.kind == "Deployment"
  not input.spec.template.spec.securityContext.runAsNonRoot
  msg := sprintf("%s must run as non-root", [input.metadata.name])
}
warn contains {"msg": "no team label"} if { not input.metadata.labels.team }
"#,
        )
        .unwrap();
        let r = p
            .evaluate(&json!({"kind": "Deployment", "metadata": {"name": "api"}, "spec": {}}))
            .unwrap();
        let deny = r.iter().find(|r| r.rule == "deny").unwrap();
        assert_eq!(deny.status, Status::Fail);
        assert_eq!(deny.messages, ["api must run as non-root"]);
        let warn = r.iter().find(|r| r.rule == "warn").unwrap();
        assert_eq!(
            (warn.status, warn.messages.as_slice()),
            (Status::Warn, &["no team label".to_string()][..])
        );
        let r = p
            .evaluate(
                &json!({"kind": "Deployment", "metadata": {"name": "api", "labels": {"team": "a"}},
                "spec": {"template": {"spec": {"securityContext": {"runAsNonRoot": true}}}}}),
            )
            .unwrap();
        assert!(r.iter().all(|r| r.status == Status::Pass), "{r:?}");
        assert!(
            p.add(Path::new("bad.rego"), "package x\ndeny contains msg if {")
                .is_err()
        );
    }
}
