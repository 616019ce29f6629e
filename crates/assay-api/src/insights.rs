//! Insights: how changes fare by AI tool, team or workflow (`GET /v1/insights`,
//! `assay insights`, the dashboard's `/insights`, MCP `insights`).
//!
//! A *change* is one workflow on one commit: the executions of that workflow whose `commit`
//! tag (or CI commit) is that commit. Its tool, team and week are those of its first execution.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The answer of an insights query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Insights {
    /// Start of the window (unix milliseconds).
    pub since: i64,
    /// `tool`, `team` or `workflow`: what `groups` are.
    pub by: String,
    /// Executions that passed or failed in the window.
    pub executions: u32,
    /// Those without a commit (neither a `commit` tag nor a CI commit): not in any change.
    pub without_commit: u32,
    /// The window held more executions than are read at once; the oldest ones were counted.
    pub truncated: bool,
    /// Every change together.
    pub total: InsightGroup,
    /// One row per tool, team or workflow, most changes first.
    pub groups: Vec<InsightGroup>,
    /// Over time: per week (Monday, UTC) and group.
    pub weeks: Vec<InsightWeek>,
    /// The workflow label that marks a system-level workflow (`level=system`).
    pub system_label: String,
    /// Per team: AI-made commits and how many of them ran a system-level workflow.
    pub system_coverage: Vec<TeamCoverage>,
    /// Teams with AI-made commits none of which ran a system-level workflow.
    pub teams_without_system_runs: Vec<String>,
    /// Failed executions whose failure class was judged (the newest ones, at most 100).
    pub classified: u32,
}

/// The figures of one tool, team or workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsightGroup {
    /// The tool (`none`: no AI tool detected), team (`unowned`) or workflow.
    pub key: String,
    pub executions: u32,
    /// Workflow × commit pairs.
    pub changes: u32,
    /// Changes whose first execution passed.
    pub first_try_passed: u32,
    /// `first_try_passed / changes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_try_pass_rate: Option<f64>,
    /// Changes with a passed execution.
    pub green: u32,
    /// Mean number of executions up to and including the first pass, over green changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_until_green: Option<f64>,
    /// Changes never green on their commit whose workflow ran again on a later commit of the
    /// same branch: the change needed another commit.
    pub reworked: u32,
    /// `reworked / changes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rework_rate: Option<f64>,
    /// Judged failure classes (`regression`, `flaky`, `broken`, `infrastructure`, `new-test`)
    /// of its failed executions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failure_classes: BTreeMap<String, u32>,
}

/// One group in one week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsightWeek {
    /// The Monday the week starts (`YYYY-MM-DD`, UTC).
    pub week: String,
    pub key: String,
    pub changes: u32,
    pub first_try_passed: u32,
}

/// A team's AI-made commits and their system-level runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamCoverage {
    pub team: String,
    /// Distinct commits with an `ai.tool` tag.
    pub ai_commits: u32,
    /// Those with at least one execution of a system-level workflow.
    pub with_system_run: u32,
}
