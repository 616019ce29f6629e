//! Run-time expression values: what `passed`, `env.X`, `step.<id>.outputs.<key>`,
//! `services.<name>.<index>.ip`, sensitive `config.NAME` and the execution context mean while
//! the plan runs.

use std::collections::BTreeMap;

use assay_expr::{Lookup, Machine};
use assay_spec::status::StepStatus;
use indexmap::IndexMap;
use serde_json::{Map, Value, json};

/// What an expression sees of the steps that ran before, by step id.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepFacts {
    pub status: Option<StepStatus>,
    pub outputs: IndexMap<String, String>,
    /// `step.<id>.results`, as steps see the path.
    pub results: String,
}

/// The variables of one evaluation.
pub(crate) struct RunMachine<'a> {
    /// Whether everything required before this point succeeded (Testkube's `passed`).
    pub passed: bool,
    /// The step's own status, for `retry.until` (`self.*`, and `passed` meaning the step).
    pub own_status: Option<StepStatus>,
    /// The current step's id, for `step.results`.
    pub own_id: Option<&'a str>,
    pub env: &'a BTreeMap<String, String>,
    pub steps: &'a IndexMap<String, StepFacts>,
    pub services: &'a IndexMap<String, Vec<String>>,
    pub secrets: &'a BTreeMap<String, String>,
    pub context: &'a Map<String, Value>,
    /// Working directory on the host, for `glob()`.
    pub glob_base: Option<&'a std::path::Path>,
}

fn val(v: impl Into<Value>) -> Lookup {
    Lookup::Value(v.into())
}

fn succeeded(s: StepStatus) -> bool {
    matches!(s, StepStatus::Passed | StepStatus::Skipped)
}

impl Machine for RunMachine<'_> {
    fn lookup(&self, name: &str) -> Lookup {
        // With `own_status`, bare status words describe the step itself (Testkube resolves
        // `retry.until` with the step's own status first).
        let status_passed = match self.own_status {
            Some(s) => s == StepStatus::Passed,
            None => self.passed,
        };
        match name {
            "always" => return val(true),
            "never" => return val(false),
            "passed" | "success" => return val(status_passed),
            "failed" | "error" => return val(!status_passed),
            "status" => {
                return match self.own_status {
                    Some(s) => val(s.as_str()),
                    None => val(if self.passed { "passed" } else { "failed" }),
                };
            }
            "self.status" => return self.own_status.map_or(Lookup::Unknown, |s| val(s.as_str())),
            "self.passed" | "self.success" => {
                return self
                    .own_status
                    .map_or(Lookup::Unknown, |s| val(s == StepStatus::Passed));
            }
            "self.failed" | "self.error" => {
                return self
                    .own_status
                    .map_or(Lookup::Unknown, |s| val(!succeeded(s)));
            }
            "env" => {
                return val(Value::Object(
                    self.env
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                ));
            }
            "step.results" => {
                return match self.own_id.and_then(|id| self.steps.get(id)) {
                    Some(f) => val(f.results.clone()),
                    None => Lookup::Unknown,
                };
            }
            "step" => return val(self.steps_value()),
            "services" => return val(self.services_value()),
            _ => {}
        }
        if let Some(key) = name.strip_prefix("env.") {
            // Testkube: an unset variable is the empty string.
            return val(self.env.get(key).cloned().unwrap_or_default());
        }
        if let Some(key) = name.strip_prefix("config.")
            && let Some(v) = self.secrets.get(key)
        {
            return val(v.clone());
        }
        if let Some(rest) = name.strip_prefix("services.") {
            let parts: Vec<&str> = rest.split('.').collect();
            if let [svc, index, "ip"] = parts.as_slice()
                && let Some(ips) = self.services.get(*svc)
                && let Some(ip) = index.parse::<usize>().ok().and_then(|i| ips.get(i))
            {
                return val(ip.clone());
            }
        }
        if let Some(rest) = name.strip_prefix("step.") {
            let (id, tail) = rest.split_once('.').unwrap_or((rest, ""));
            if let Some(f) = self.steps.get(id)
                && let Some(key) = tail.strip_prefix("outputs.")
            {
                return match f.outputs.get(key) {
                    Some(v) => val(v.clone()),
                    None => val(Value::Null),
                };
            }
        }
        let top = name.split('.').next().unwrap_or(name);
        if top == name
            && let Some(v) = self.context.get(name)
        {
            return val(v.clone());
        }
        Lookup::Unknown
    }

    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if name != "glob" {
            return None;
        }
        let base = self.glob_base?;
        Some(glob(base, args))
    }
}

impl RunMachine<'_> {
    fn steps_value(&self) -> Value {
        let mut out = Map::new();
        for (id, f) in self.steps {
            out.insert(
                id.clone(),
                json!({
                    "status": f.status.map(|s| s.as_str()),
                    "passed": f.status.map(|s| s == StepStatus::Passed),
                    // Testkube's `failed`: neither passed nor skipped.
                    "failed": f.status.map(|s| s != StepStatus::Passed && s != StepStatus::Skipped),
                    "outputs": f.outputs,
                    "results": f.results,
                }),
            );
        }
        Value::Object(out)
    }

    fn services_value(&self) -> Value {
        let mut out = Map::new();
        for (name, ips) in self.services {
            let list: Vec<Value> = ips.iter().map(|ip| json!({ "ip": ip })).collect();
            out.insert(name.clone(), Value::Array(list));
        }
        Value::Object(out)
    }
}

/// `glob(pattern, ...)`: files under the working directory matching any pattern, as paths
/// relative to it (patterns starting with `!` exclude).
fn glob(base: &std::path::Path, args: &[Value]) -> Result<Value, String> {
    let mut include = globset::GlobSetBuilder::new();
    let mut exclude = globset::GlobSetBuilder::new();
    for a in args {
        let items: Vec<String> = match a {
            Value::Array(items) => items.iter().map(assay_expr::stringify).collect(),
            v => vec![assay_expr::stringify(v)],
        };
        for p in items {
            let (set, p) = match p.strip_prefix('!') {
                Some(p) => (&mut exclude, p.to_string()),
                None => (&mut include, p),
            };
            let p = p.trim_start_matches("./").to_string();
            set.add(globset::Glob::new(&p).map_err(|e| e.to_string())?);
        }
    }
    let include = include.build().map_err(|e| e.to_string())?;
    let exclude = exclude.build().map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    crate::artifacts::walk(base, &mut |rel, _| {
        if include.is_match(rel) && !exclude.is_match(rel) {
            files.push(Value::String(rel.to_string()));
        }
    });
    files.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    Ok(Value::Array(files))
}
