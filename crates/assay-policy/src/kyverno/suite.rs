//! Kyverno CLI test suites (`kyverno-test.yaml`, `cli.kyverno.io/v1alpha1` `Test`) read as they
//! are: the policies and resources they name, the expected result per policy × rule × resource,
//! and the values file (`variables:`) or inline `values:`.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Environment, Policy, RuleResult, Status, evaluate, resource_id};
use crate::Error;
use crate::docs::{self, Document};

/// One expectation of a suite checked against what Assay computed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub policy: String,
    pub rule: String,
    /// `Kind/namespace/name`, or `Kind/name` without a namespace.
    pub resource: String,
    pub expected: Status,
    /// What the rule gave; `None` when the rule did not apply (Kyverno counts that as a pass).
    pub actual: Option<Status>,
    pub ok: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SuiteReport {
    pub path: PathBuf,
    pub name: String,
    pub checks: Vec<Check>,
}

impl SuiteReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

pub fn is_suite_file(p: &Path) -> bool {
    matches!(
        p.file_name().and_then(|n| n.to_str()),
        Some("kyverno-test.yaml" | "kyverno-test.yml")
    )
}

/// Every `kyverno-test.yaml` at or under `path` (hidden folders such as `.kyverno-test` included).
pub fn find_suites(path: &Path) -> Result<Vec<PathBuf>, Error> {
    Ok(docs::files_under(path)?
        .into_iter()
        .filter(|p| is_suite_file(p))
        .collect())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn invalid(path: &Path, message: impl Into<String>) -> Error {
    Error::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

#[derive(Default)]
struct Values {
    global: Map<String, Value>,
    /// policy → rule → values
    rules: HashMap<String, HashMap<String, Map<String, Value>>>,
    /// policy → resource name → values
    resources: HashMap<String, HashMap<String, Map<String, Value>>>,
    namespace_labels: HashMap<String, Map<String, Value>>,
}

fn read_values(spec: &Value) -> Values {
    let mut v = Values::default();
    if let Some(Value::Object(g)) = spec.get("globalValues") {
        v.global = g.clone();
    }
    for p in spec
        .get("policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for r in p
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(rn), Some(Value::Object(vals))) =
                (r.get("name").and_then(Value::as_str), r.get("values"))
            {
                v.rules
                    .entry(name.clone())
                    .or_default()
                    .insert(rn.to_string(), vals.clone());
            }
        }
        for r in p
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(rn), Some(Value::Object(vals))) =
                (r.get("name").and_then(Value::as_str), r.get("values"))
            {
                v.resources
                    .entry(name.clone())
                    .or_default()
                    .insert(rn.to_string(), vals.clone());
            }
        }
    }
    for ns in spec
        .get("namespaceSelector")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(n), Some(Value::Object(labels))) =
            (ns.get("name").and_then(Value::as_str), ns.get("labels"))
        {
            v.namespace_labels.insert(n.to_string(), labels.clone());
        }
    }
    v
}

/// Runs one suite file.
pub fn run_suite(path: &Path) -> Result<SuiteReport, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let test: Value = serde_saphyr::from_str(&text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if test
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Test")
    {
        return Err(invalid(path, "not a Kyverno CLI test (kind must be Test)"));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = test
        .pointer("/metadata/name")
        .or_else(|| test.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    let mut policies: Vec<Policy> = Vec::new();
    // policies of kinds Assay does not evaluate (MutatingPolicy, GeneratingPolicy, ...), by name
    let mut other_kinds: HashMap<String, String> = HashMap::new();
    for p in strings(test.get("policies")) {
        if p.starts_with("http://") || p.starts_with("https://") {
            return Err(invalid(
                path,
                format!("policy {p}: remote policies are not fetched; give a local file"),
            ));
        }
        for d in docs::read_path(&dir.join(&p))? {
            match Policy::from_value(&d.value) {
                Ok(Some(pol)) => policies.push(pol),
                Ok(None) => {
                    let kind = d
                        .value
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if let Some(n) = d.value.pointer("/metadata/name").and_then(Value::as_str) {
                        other_kinds.insert(n.to_string(), kind.to_string());
                    }
                }
                Err(e) => return Err(invalid(&d.source, e)),
            }
        }
    }
    let mut resources: Vec<Document> = Vec::new();
    for r in strings(test.get("resources")) {
        resources.extend(docs::read_path(&dir.join(&r))?);
    }
    let mut values = Values::default();
    if let Some(file) = test.get("variables").and_then(Value::as_str) {
        let vpath = dir.join(file);
        let vtext = std::fs::read_to_string(&vpath).map_err(|e| Error::Read {
            path: vpath.clone(),
            source: e,
        })?;
        let spec: Value = serde_saphyr::from_str(&vtext).map_err(|e| Error::Parse {
            path: vpath,
            message: e.to_string(),
        })?;
        values = read_values(&spec);
    } else if let Some(spec) = test.get("values") {
        values = read_values(spec);
    }

    let mut cache: HashMap<(usize, usize, String), Vec<RuleResult>> = HashMap::new();
    let mut checks = Vec::new();
    for (i, expect) in test
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let policy_ref = expect
            .get("policy")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let policy_name = policy_ref.rsplit('/').next().unwrap_or(policy_ref);
        let rule = expect
            .get("rule")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = expect
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let status_text = expect
            .get("result")
            .or_else(|| expect.get("status"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let expected = Status::parse(status_text).ok_or_else(|| {
            invalid(
                path,
                format!(
                    "results[{i}]: result `{status_text}` is not pass, fail, warn, error or skip"
                ),
            )
        })?;
        let operation = expect
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("CREATE")
            .to_ascii_uppercase();
        let mut names = strings(expect.get("resources"));
        if let Some(r) = expect.get("resource").and_then(Value::as_str) {
            names.push(r.to_string());
        }
        let Some(pi) = policies.iter().position(|p| p.name == policy_name) else {
            let other = other_kinds.get(policy_name).filter(|k| !k.is_empty());
            for n in &names {
                checks.push(Check {
                    policy: policy_name.into(),
                    rule: rule.clone(),
                    resource: n.clone(),
                    expected,
                    actual: None,
                    ok: false,
                    message: match other {
                        Some(k) => format!("{k} is not evaluated by Assay"),
                        None => format!("policy {policy_name} not found in the suite's policies"),
                    },
                    unsupported: other.cloned(),
                });
            }
            continue;
        };
        let policy = &policies[pi];
        for n in &names {
            let (want_ns, want_name) = match n.split_once('/') {
                Some((ns, nm)) => (Some(ns), nm),
                None => (None, n.as_str()),
            };
            let mut found: Vec<usize> = resources
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    let (_, _, ns, nm) = resource_id(&d.value);
                    nm == want_name && want_ns.is_none_or(|w| w == ns)
                })
                .map(|(i, _)| i)
                .collect();
            if found.len() > 1 && !kind.is_empty() {
                let same_kind: Vec<usize> = found
                    .iter()
                    .copied()
                    .filter(|&i| resource_id(&resources[i].value).1 == kind)
                    .collect();
                if !same_kind.is_empty() {
                    found = same_kind;
                }
            }
            if found.is_empty() {
                checks.push(Check {
                    policy: policy.name.clone(),
                    rule: rule.clone(),
                    resource: n.clone(),
                    expected,
                    actual: None,
                    ok: false,
                    message: "resource not found in the suite's resources".into(),
                    unsupported: None,
                });
                continue;
            }
            for ri in found {
                let doc = &resources[ri];
                let (_, rkind, rns, rname) = resource_id(&doc.value);
                let results = cache.entry((pi, ri, operation.clone())).or_insert_with(|| {
                    let mut env = Environment {
                        operation: operation.clone(),
                        ..Environment::default()
                    };
                    env.values = values.global.clone();
                    if let Some(per) = values
                        .resources
                        .get(&policy.name)
                        .and_then(|m| m.get(&rname))
                    {
                        env.values.extend(per.clone());
                    }
                    if let Some(r) = values.rules.get(&policy.name) {
                        env.rule_values = r.clone();
                    }
                    env.namespace_labels = values.namespace_labels.clone();
                    evaluate(policy, &doc.value, &env)
                });
                let relevant: Vec<&RuleResult> = results
                    .iter()
                    .filter(|r| {
                        rule.is_empty()
                            || policy.is_validating_policy()
                            || r.rule == rule
                            || r.rule == format!("autogen-{rule}")
                            || r.rule == format!("autogen-cronjob-{rule}")
                    })
                    .collect();
                let resource = if rns.is_empty() {
                    format!("{rkind}/{rname}")
                } else {
                    format!("{rkind}/{rns}/{rname}")
                };
                if relevant.is_empty() {
                    checks.push(Check {
                        policy: policy.name.clone(),
                        rule: rule.clone(),
                        resource,
                        expected,
                        actual: None,
                        ok: true,
                        message: "excluded: the rule does not apply to this resource".into(),
                        unsupported: None,
                    });
                    continue;
                }
                for r in relevant {
                    checks.push(Check {
                        policy: policy.name.clone(),
                        rule: if r.rule.is_empty() {
                            rule.clone()
                        } else {
                            r.rule.clone()
                        },
                        resource: resource.clone(),
                        expected,
                        actual: Some(r.status),
                        ok: r.unsupported.is_none() && r.status == expected,
                        message: r.message.clone(),
                        unsupported: r.unsupported.clone(),
                    });
                }
            }
        }
    }
    Ok(SuiteReport {
        path: path.to_path_buf(),
        name,
        checks,
    })
}

/// Each check as a test case: suite `policy <suite name>`, class the policy, name
/// `rule resource`, so policy checks land in the same history, JUnit and views as tests.
pub fn test_cases(reports: &[SuiteReport]) -> Vec<assay_reports::TestCase> {
    use assay_reports::{CaseStatus, TestCase};
    let mut out = Vec::new();
    for r in reports {
        for c in &r.checks {
            let got = c.actual.map_or("excluded".to_string(), |s| s.to_string());
            let status = if c.ok {
                CaseStatus::Passed
            } else if c.unsupported.is_some() {
                CaseStatus::Skipped
            } else {
                CaseStatus::Failed
            };
            out.push(TestCase {
                suite: format!(
                    "policy {}",
                    if r.name.is_empty() {
                        r.path.display().to_string()
                    } else {
                        r.name.clone()
                    }
                ),
                class: Some(c.policy.clone()),
                name: format!("{} {}", c.rule, c.resource),
                file: Some(r.path.display().to_string()),
                status,
                duration_ms: None,
                message: (!c.ok)
                    .then(|| format!("expected {}, got {got}: {}", c.expected, c.message)),
                output: None,
                failed_reruns: 0,
            });
        }
    }
    out
}
