//! Run-time expression values: what `passed`, `env.X`, `step.<id>.outputs.<key>`,
//! `services.<name>.<index>.ip`, sensitive `config.NAME` and the execution context mean while
//! the plan runs.

use std::collections::BTreeMap;

use assay_expr::{Lookup, Machine};
use assay_spec::status::StepStatus;
use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::layout::Layout;

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
    /// What `glob()` sees: the working directory as steps see it, and the execution's
    /// folders. `None` where Testkube has no file system machine.
    pub files: Option<(&'a str, &'a Layout)>,
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

    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, assay_expr::ExprError>> {
        if name != "glob" {
            return None;
        }
        let (cwd, layout) = self.files?;
        Some(
            glob(cwd, &|p| layout.to_host(p), args)
                .map_err(|e| assay_expr::ExprError::eval(e.to_string())),
        )
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

/// Why `glob()` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GlobError {
    #[error("`{pattern}` is not a valid pattern: {source}")]
    Pattern {
        pattern: String,
        source: globset::Error,
    },
    #[error("glob() needs at least one pattern that does not start with `!`")]
    OnlyExclusions,
    #[error(transparent)]
    Set(#[from] globset::Error),
}

/// `glob(pattern, ...)`, as Testkube's file system machine has it: the files matching any
/// pattern, as absolute paths as steps see them (`/data/repo/tests/test_a.py`). Relative
/// patterns are relative to the working directory `cwd`; `*` stays within one folder, `**`
/// crosses folders; patterns starting with `!` exclude. Sorted, each file once.
pub(crate) fn glob(
    cwd: &str,
    to_host: &dyn Fn(&str) -> std::path::PathBuf,
    args: &[Value],
) -> Result<Value, GlobError> {
    let mut include = globset::GlobSetBuilder::new();
    let mut exclude = globset::GlobSetBuilder::new();
    let mut roots: Vec<String> = Vec::new();
    for a in args {
        let items: Vec<String> = match a {
            Value::Array(items) => items.iter().map(assay_expr::stringify).collect(),
            v => vec![assay_expr::stringify(v)],
        };
        for p in items {
            let (negative, p) = match p.strip_prefix('!') {
                Some(p) => (true, p.to_string()),
                None => (false, p),
            };
            let abs = clean(&crate::layout::join(cwd, &p));
            let glob = globset::GlobBuilder::new(&abs)
                .literal_separator(true)
                .build()
                .map_err(|source| GlobError::Pattern {
                    pattern: p.clone(),
                    source,
                })?;
            if negative {
                exclude.add(glob);
            } else {
                include.add(glob);
                roots.push(crate::artifacts::split_pattern(&abs).0);
            }
        }
    }
    if roots.is_empty() {
        return Err(GlobError::OnlyExclusions);
    }
    let include = include.build()?;
    let exclude = exclude.build()?;
    // Walk each literal base folder once; one inside another is walked with it.
    roots.sort();
    roots.dedup();
    let outer: Vec<String> = roots
        .iter()
        .filter(|r| {
            !roots
                .iter()
                .any(|o| o != *r && (o == "/" || r.starts_with(&format!("{o}/"))))
        })
        .cloned()
        .collect();
    let mut files = std::collections::BTreeSet::new();
    let mut consider = |path: String| {
        if include.is_match(&path) && !exclude.is_match(&path) {
            files.insert(path);
        }
    };
    for root in outer {
        let root = if root.is_empty() {
            "/".to_string()
        } else {
            root
        };
        let host = to_host(&root);
        if host.is_file() {
            consider(root);
            continue;
        }
        crate::artifacts::walk(&host, &mut |rel, _| {
            consider(format!("{}/{rel}", root.trim_end_matches('/')));
        });
    }
    Ok(Value::Array(files.into_iter().map(Value::String).collect()))
}

/// An absolute `/`-separated path without `.`, `..` or repeated separators.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path, names: &[&str]) {
        for n in names {
            let p = dir.join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, n).unwrap();
        }
    }

    fn run(dir: &std::path::Path, cwd: &str, args: Value) -> Value {
        let map = |p: &str| match p.strip_prefix("/data") {
            Some(rest) => dir.join(rest.trim_start_matches('/')),
            None => std::path::PathBuf::from(p),
        };
        let args = match args {
            Value::Array(a) => a,
            v => vec![v],
        };
        glob(cwd, &map, &args).unwrap()
    }

    #[test]
    fn glob_is_relative_to_the_working_directory_and_absolute_out() {
        let dir = tempfile::tempdir().unwrap();
        files(
            dir.path(),
            &[
                "repo/tests/test_a.py",
                "repo/tests/sub/test_b.py",
                "repo/tests/helper.py",
                "tests/test_elsewhere.py",
            ],
        );
        assert_eq!(
            run(dir.path(), "/data/repo", json!("tests/test_*.py")),
            json!(["/data/repo/tests/test_a.py"])
        );
        assert_eq!(
            run(dir.path(), "/data/repo", json!("tests/**/test_*.py")),
            json!([
                "/data/repo/tests/sub/test_b.py",
                "/data/repo/tests/test_a.py"
            ])
        );
        assert_eq!(
            run(
                dir.path(),
                "/data/repo/tests",
                json!(["./**/*.py", "!**/helper.py", "../../tests/*.py"])
            ),
            json!([
                "/data/repo/tests/sub/test_b.py",
                "/data/repo/tests/test_a.py",
                "/data/tests/test_elsewhere.py"
            ])
        );
        assert_eq!(
            run(dir.path(), "/", json!("/data/repo/tests/test_a.py")),
            json!(["/data/repo/tests/test_a.py"])
        );
        assert_eq!(run(dir.path(), "/data", json!("nothing/*.py")), json!([]));
    }
}
