//! Quality gates (`assay gate`, `POST /v1/gates/evaluate`, MCP `evaluate_gate`, the gate badge):
//! rules over one execution or over every execution of a commit, each with its verdict and the
//! evidence that decided it (tests, policy results, secret findings, workflows).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/gates/evaluate`: the rules (a gate file's text, or the same document as JSON) and
/// what they judge, either one execution or every execution tagged `commit=SHA`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateRequest {
    /// The gate document: YAML text as in a `gate.yaml` file, or the same as a JSON object.
    #[schema(value_type = Object)]
    pub rules: serde_json::Value,
    /// An execution id or name (`workflow-N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    /// A commit: every execution tagged `commit=SHA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The verdict of a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateVerdict {
    /// The gate's `name`, when its file gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// Every rule passed.
    pub passed: bool,
    /// What was judged: `execution NAME` or `commit SHA`.
    pub target: String,
    /// The executions judged (for a commit: the latest of each workflow), oldest first.
    pub executions: Vec<GateExecution>,
    /// One verdict per rule given, in a fixed order: noFailingTests, noPolicyViolations,
    /// noNewFlakyTests, noSecrets, minPassRate, requiredWorkflows.
    pub rules: Vec<RuleVerdict>,
    /// Things the reader should know about how the verdict was reached (what was not
    /// considered, what was capped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// An execution a gate judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateExecution {
    pub id: String,
    pub name: String,
    pub workflow: String,
    /// Testkube's status (`passed`, `failed`, …).
    pub status: String,
}

/// The verdict of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleVerdict {
    /// The rule as written in the file (`noFailingTests`, `minPassRate`, …).
    pub rule: String,
    pub passed: bool,
    /// One line: what the rule found (`2 failing tests of 14`).
    pub summary: String,
    /// What decided it: the failing tests, violations, findings or workflows, at most
    /// [`MAX_EVIDENCE`] (the summary gives the full count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

/// Evidence items kept per rule, at most.
pub const MAX_EVIDENCE: usize = 20;

/// One test, policy result, finding or workflow behind a rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The execution it comes from (its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    /// What it names: a test key, `policy rule resource`, `file:line` of a finding, a workflow.
    pub item: String,
    /// Why it counts (the failure message, the severity, the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
