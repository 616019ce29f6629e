//! A gate file: its rules, read with line and column for every error.

use serde::Deserialize;

use crate::error::{Problem, ServiceError, ServiceResult};

use super::*;

/// Kyverno's severities (`policies.kyverno.io/severity`), lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A gate file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gate {
    /// `QualityGate` when given: lets `assay validate` and other tools that read a folder of
    /// YAML tell a gate file from a workflow missing its `kind`.
    #[serde(default)]
    pub kind: Option<String>,
    /// A name for the verdict (and the badge).
    #[serde(default)]
    pub name: Option<String>,
    pub rules: Rules,
}

/// The `kind` a gate file may declare.
pub const GATE_KIND: &str = "QualityGate";

/// The rules; each is off unless given. Judged in this order.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rules {
    /// No test failed (policy and secret-scan results are judged by their own rules).
    #[serde(default)]
    pub no_failing_tests: bool,
    /// No policy violation of this severity or above.
    #[serde(default)]
    pub no_policy_violations: Option<PolicyRule>,
    /// No test that was not flaky before these executions is flaky with them.
    #[serde(default)]
    pub no_new_flaky_tests: bool,
    /// No secret found by a scan.
    #[serde(default)]
    pub no_secrets: bool,
    /// Passed tests ÷ (passed + failed) × 100, skipped left out, at least this.
    #[serde(default)]
    pub min_pass_rate: Option<PassRate>,
    /// The latest execution of each of these workflows passed.
    #[serde(default)]
    pub required_workflows: Vec<String>,
}

/// `noPolicyViolations`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyRule {
    /// Violations of this severity or above count (default `info`: every one).
    #[serde(default = "lowest")]
    pub severity: Severity,
    /// Whether violations of policies without a severity (Rego, Kyverno policies without the
    /// annotation) count; default yes, so nothing is ignored unless asked.
    #[serde(default = "yes")]
    pub count_unrated: bool,
}

pub(super) fn lowest() -> Severity {
    Severity::Info
}

pub(super) fn yes() -> bool {
    true
}

/// A percentage from 0 to 100, refused otherwise where it is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassRate(pub f64);

impl<'de> Deserialize<'de> for PassRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(0.0..=100.0).contains(&v) {
            return Err(serde::de::Error::custom(format!(
                "minPassRate must be a percentage from 0 to 100, not {v}"
            )));
        }
        Ok(PassRate(v))
    }
}

impl Gate {
    /// Read a gate file's text; errors carry line and column.
    pub fn parse(text: &str) -> ServiceResult<Gate> {
        if text.len() > MAX_GATE_BYTES {
            return Err(invalid(
                0,
                0,
                format!("the gate file is larger than {} KiB", MAX_GATE_BYTES / 1024),
                None,
            ));
        }
        if text.trim().is_empty() {
            return Err(invalid(
                1,
                1,
                "the gate file is empty".into(),
                Some(EXAMPLE),
            ));
        }
        let gate: Gate = serde_saphyr::from_str(text).map_err(|e| {
            let e = e.without_snippet();
            let (line, column) = e.location().map_or((0, 0), |l| {
                (l.line().max(1) as usize, l.column().max(1) as usize)
            });
            invalid(
                line,
                column,
                clean_message(&e.to_string()),
                Some(hint_for(&e.to_string())),
            )
        })?;
        if let Some(kind) = gate.kind.as_deref()
            && kind != GATE_KIND
        {
            return Err(invalid(
                1,
                1,
                format!("`kind: {kind}` is not a gate"),
                Some(format!("a gate file says `kind: {GATE_KIND}`, or no kind at all").as_str()),
            ));
        }
        let r = &gate.rules;
        if !r.no_failing_tests
            && r.no_policy_violations.is_none()
            && !r.no_new_flaky_tests
            && !r.no_secrets
            && r.min_pass_rate.is_none()
            && r.required_workflows.is_empty()
        {
            return Err(invalid(
                0,
                0,
                "the gate has no rules: every rule is off".into(),
                Some(EXAMPLE),
            ));
        }
        if let Some(w) = r.required_workflows.iter().find(|w| w.trim().is_empty()) {
            return Err(invalid(
                0,
                0,
                format!("requiredWorkflows has an empty name ({w:?})"),
                Some("name each workflow as `assay get workflows` lists it"),
            ));
        }
        Ok(gate)
    }

    /// Read the `rules` of a request: a gate file's text, or the same document as JSON.
    pub fn from_value(value: &serde_json::Value) -> ServiceResult<Gate> {
        match value {
            serde_json::Value::String(text) => Gate::parse(text),
            serde_json::Value::Object(_) => Gate::parse(&value.to_string()),
            _ => Err(ServiceError::BadRequest(
                "rules must be a gate file's text or a JSON object like {\"rules\": {\"noFailingTests\": true}}".into(),
            )),
        }
    }
}

pub(super) const EXAMPLE: &str = "a gate file looks like `rules: {noFailingTests: true, minPassRate: 95}`; the rules are noFailingTests, noPolicyViolations, noNewFlakyTests, noSecrets, minPassRate, requiredWorkflows";

pub(super) fn hint_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        EXAMPLE
    } else if message.contains("severity") || message.contains("variant") {
        "severities are info, low, medium, high, critical"
    } else {
        "see the README's Quality gates section for the format"
    }
}

/// serde-saphyr's message without its own position prefix (the problem carries it).
pub(super) fn clean_message(message: &str) -> String {
    let mut m = message
        .strip_prefix("error: ")
        .unwrap_or(message)
        .to_string();
    if let Some(i) = m.find(": ")
        && m[..i].starts_with("line ")
        && m[..i].contains(" column ")
    {
        m = m[i + 2..].to_string();
    }
    m.lines().next().unwrap_or_default().trim().to_string()
}

pub(super) fn invalid(
    line: usize,
    column: usize,
    message: String,
    hint: Option<&str>,
) -> ServiceError {
    ServiceError::Invalid {
        detail: format!("the gate file is not valid: {message}"),
        problems: vec![Problem {
            line,
            column,
            message,
            hint: hint.map(str::to_string),
            path: None,
        }],
    }
}
