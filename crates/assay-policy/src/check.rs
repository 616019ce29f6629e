//! `assay policy check`: Kyverno policies and Rego files against plain input documents
//! (Kubernetes manifests, rendered Kustomize or Helm output, Terraform plan JSON, any
//! JSON/YAML). One finding per policy rule × input document.

use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::docs::{self, Document};
use crate::kyverno::{self, Environment, Policy, Status};
use crate::rego::RegoPolicies;

#[derive(Default)]
pub struct PolicySet {
    pub kyverno: Vec<Policy>,
    pub rego: RegoPolicies,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// `kyverno` or `rego`.
    pub engine: &'static str,
    pub policy: String,
    pub rule: String,
    /// `Kind/namespace/name` for Kubernetes objects, else `file#document`.
    pub resource: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// Loads `.rego` files as Rego and every Kyverno policy document of the YAML/JSON files.
pub fn load_policies(paths: &[PathBuf]) -> Result<PolicySet, Error> {
    let mut set = PolicySet::default();
    for p in paths {
        let mut files = rego_files(p)?;
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| Error::Read {
                path: f.clone(),
                source: e,
            })?;
            set.rego.add(&f, &text)?;
        }
        for d in docs::read_path(p)? {
            if let Some(pol) = Policy::from_value(&d.value).map_err(|m| Error::Invalid {
                path: d.source.clone(),
                message: m,
            })? {
                set.kyverno.push(pol);
            }
        }
    }
    if set.kyverno.is_empty() && set.rego.is_empty() {
        let shown = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::Invalid {
            path: paths.first().cloned().unwrap_or_default(),
            message: format!("no Kyverno policy and no .rego file in {shown}"),
        });
    }
    Ok(set)
}

fn rego_files(p: &Path) -> Result<Vec<PathBuf>, Error> {
    let meta = std::fs::metadata(p).map_err(|e| Error::Read {
        path: p.to_path_buf(),
        source: e,
    })?;
    if meta.is_file() {
        return Ok(if p.extension().is_some_and(|e| e == "rego") {
            vec![p.to_path_buf()]
        } else {
            vec![]
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::Read {
            path: dir.clone(),
            source: e,
        })? {
            let entry = entry.map_err(|e| Error::Read {
                path: dir.clone(),
                source: e,
            })?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rego")
                && !path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.ends_with("_test"))
            {
                out.push(path);
            }
        }
    }
    Ok(out)
}

fn label(d: &Document) -> String {
    let (_, kind, ns, name) = kyverno::resource_id(&d.value);
    if !kind.is_empty() && !name.is_empty() {
        if ns.is_empty() {
            format!("{kind}/{name}")
        } else {
            format!("{kind}/{ns}/{name}")
        }
    } else {
        format!("{}#{}", d.source.display(), d.index)
    }
}

/// Evaluates every policy against every input document.
pub fn check(set: &mut PolicySet, inputs: &[Document]) -> Result<Vec<Finding>, Error> {
    let env = Environment::default();
    let mut out = Vec::new();
    for d in inputs {
        let resource = label(d);
        if d.value.get("kind").and_then(Value::as_str).is_some() {
            for p in &set.kyverno {
                for r in kyverno::evaluate(p, &d.value, &env) {
                    out.push(Finding {
                        engine: "kyverno",
                        policy: p.name.clone(),
                        rule: if r.rule.is_empty() {
                            p.name.clone()
                        } else {
                            r.rule
                        },
                        resource: resource.clone(),
                        status: r.status,
                        message: r.message,
                        severity: p.severity.clone(),
                    });
                }
            }
        }
        if !set.rego.is_empty() {
            let results = set.rego.evaluate(&d.value).map_err(|m| Error::Invalid {
                path: d.source.clone(),
                message: m,
            })?;
            for r in results {
                out.push(Finding {
                    engine: "rego",
                    policy: r.package,
                    rule: r.rule,
                    resource: resource.clone(),
                    status: r.status,
                    message: r.messages.join("; "),
                    severity: None,
                });
            }
        }
    }
    Ok(out)
}

/// Each finding as a test case (suite `policy check`, class the policy, name `rule resource`);
/// a warning passes with its message kept, a skip is skipped.
/// A failed or erring finding's message starts with its policy's severity in brackets
/// (`[high] validation error: …`) when the policy has one (`policies.kyverno.io/severity`).
pub fn test_cases(findings: &[Finding]) -> Vec<assay_reports::TestCase> {
    use assay_reports::{CaseStatus, TestCase};
    findings
        .iter()
        .map(|f| TestCase {
            suite: "policy check".into(),
            class: Some(f.policy.clone()),
            name: format!("{} {}", f.rule, f.resource),
            file: None,
            status: match f.status {
                Status::Pass | Status::Warn => CaseStatus::Passed,
                Status::Fail => CaseStatus::Failed,
                Status::Error => CaseStatus::Error,
                Status::Skip => CaseStatus::Skipped,
            },
            duration_ms: None,
            message: (!f.message.is_empty() && f.status != Status::Pass).then(|| {
                // A violation starts with its policy's severity (`[high] …`): quality gates
                // (`assay gate`, noPolicyViolations) read it back from the stored case.
                match (&f.severity, f.status) {
                    (Some(sev), Status::Fail | Status::Error) => {
                        format!("[{}] {}", sev.trim().to_ascii_lowercase(), f.message)
                    }
                    _ => f.message.clone(),
                }
            }),
            output: None,
            failed_reruns: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(status: Status, severity: Option<&str>) -> Finding {
        Finding {
            engine: "kyverno",
            policy: "p".into(),
            rule: "r".into(),
            resource: "Pod/x".into(),
            status,
            message: "validation error".into(),
            severity: severity.map(str::to_string),
        }
    }

    #[test]
    fn a_violation_names_its_severity_first_and_nothing_else_does() {
        let cases = test_cases(&[
            finding(Status::Fail, Some("High")),
            finding(Status::Fail, None),
            finding(Status::Warn, Some("low")),
        ]);
        assert_eq!(cases[0].message.as_deref(), Some("[high] validation error"));
        assert_eq!(cases[1].message.as_deref(), Some("validation error"));
        assert_eq!(cases[2].message.as_deref(), Some("validation error"));
    }
}
