//! The tools Testkube's MCP server has beside the core loop: `get_workflow_metrics` (pass rate
//! and durations of a workflow's recent executions), `wait_for_executions` (several at once),
//! `list_labels` (the labels of stored workflows, to filter by) and `build_dashboard_url`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::Instant;

use assay_store::{DefinitionKind, ExecutionRef, ExecutionStatus, LabelSelector};

use super::Tools;
use crate::args::{BuildDashboardUrlArgs, WaitForExecutionsArgs, WorkflowMetricsArgs};
use crate::error::{ToolError, ToolResult};
use crate::summary::{call, duration};

/// The most executions `wait_for_executions` takes.
const MAX_WAITED: usize = 20;

impl Tools {
    /// `get_workflow_metrics`: pass rate, statuses and durations of the last executions.
    pub async fn get_workflow_metrics(&self, args: WorkflowMetricsArgs) -> ToolResult {
        let last = args.last.unwrap_or(50).clamp(1, 500);
        let runs = self.store.recent_runs(&args.workflow, last).await?;
        if runs.is_empty() {
            return Err(ToolError::not_found(format!(
                "no execution of `{}`: next: list_workflows, then run_workflow",
                args.workflow
            )));
        }
        let ended: Vec<_> = runs.iter().filter(|r| r.status.is_terminal()).collect();
        let passed = ended
            .iter()
            .filter(|r| r.status == ExecutionStatus::Passed)
            .count();
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &runs {
            *by_status.entry(r.status.as_str()).or_default() += 1;
        }
        let mut durations: Vec<i64> = ended.iter().map(|r| r.duration_ms()).collect();
        durations.sort_unstable();
        let pick = |q: f64| {
            durations
                .get(((durations.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        let mut out = format!(
            "{}: last {} executions ({} ended)\n",
            args.workflow,
            runs.len(),
            ended.len()
        );
        if !ended.is_empty() {
            let _ = writeln!(
                out,
                "pass rate: {:.0}% ({passed} of {} ended)",
                passed as f64 * 100.0 / ended.len() as f64,
                ended.len()
            );
            let _ = writeln!(
                out,
                "duration: p50 {}, p95 {}, max {}",
                duration(pick(0.5)),
                duration(pick(0.95)),
                duration(*durations.last().unwrap_or(&0))
            );
        }
        let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let _ = writeln!(out, "statuses: {}", statuses.join(", "));
        // Newest first, as a strip: P passed, F failed, A aborted, … .
        let strip: String = runs
            .iter()
            .take(50)
            .map(|r| match r.status {
                ExecutionStatus::Passed => 'P',
                ExecutionStatus::Failed => 'F',
                ExecutionStatus::Aborted => 'A',
                ExecutionStatus::Running => 'R',
                ExecutionStatus::Queued => 'Q',
                _ => '?',
            })
            .collect();
        let _ = writeln!(out, "newest first: {strip}");
        if let Some(f) = runs.iter().find(|r| r.status == ExecutionStatus::Failed) {
            let _ = writeln!(
                out,
                "next: {}",
                call("why_failed", serde_json::json!({"execution": f.name}))
            );
        }
        Ok(out)
    }

    /// `wait_for_executions`: waits until every one has ended (or the time is up), then one
    /// line each.
    pub async fn wait_for_executions(&self, args: WaitForExecutionsArgs) -> ToolResult {
        if args.executions.is_empty() || args.executions.len() > MAX_WAITED {
            return Err(ToolError::invalid(format!(
                "name 1 to {MAX_WAITED} executions ({} given)",
                args.executions.len()
            )));
        }
        let mut ids = Vec::new();
        for e in &args.executions {
            ids.push(self.execution(e).await?.id.clone());
        }
        let bound = self.wait_bound(args.timeout_seconds);
        let deadline = Instant::now() + bound;
        let mut checks = 0u32;
        let summaries = loop {
            let mut all = Vec::new();
            for id in &ids {
                all.push(
                    self.store
                        .find_execution(&ExecutionRef::Id(id.clone()))
                        .await?,
                );
            }
            if all.iter().all(|s| s.status.is_terminal()) || Instant::now() >= deadline {
                break all;
            }
            checks += 1;
            if checks.is_multiple_of(20) {
                self.store.recover_abandoned().await?;
            }
            tokio::time::sleep(
                super::executions::POLL.min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        };
        let running = summaries.iter().filter(|s| !s.status.is_terminal()).count();
        let mut out = if running > 0 {
            format!(
                "{running} of {} still running after waiting {}s; they go on\n",
                summaries.len(),
                bound.as_secs()
            )
        } else {
            format!("all {} ended\n", summaries.len())
        };
        for s in &summaries {
            let _ = writeln!(out, "{} ({}) {}", s.name, s.workflow, s.status.as_str());
        }
        if let Some(f) = summaries
            .iter()
            .find(|s| s.status == ExecutionStatus::Failed)
        {
            let _ = writeln!(
                out,
                "next: {}",
                call("why_failed", serde_json::json!({"execution": f.name}))
            );
        }
        Ok(out)
    }

    /// `list_labels`: every label key of the stored workflows with its values.
    pub async fn list_labels(&self) -> ToolResult {
        let defs = self
            .store
            .list_definitions(DefinitionKind::Workflow, &LabelSelector::default())
            .await?;
        let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for d in &defs {
            for (k, v) in &d.labels {
                labels.entry(k.clone()).or_default().insert(v.clone());
            }
        }
        if labels.is_empty() {
            return Ok(format!(
                "no labels on the {} stored workflows (metadata.labels)\n",
                defs.len()
            ));
        }
        let mut out = String::new();
        for (k, values) in &labels {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let _ = writeln!(out, "{k}: {}", values.join(", "));
        }
        let _ = writeln!(
            out,
            "filter with list_workflows {{\"selector\": \"KEY=VALUE\"}}"
        );
        Ok(out)
    }

    /// `build_dashboard_url`: the dashboard page of an execution or a workflow, on `base` (the
    /// server the caller reached, over HTTP) or as a path (on stdio).
    pub async fn build_dashboard_url(
        &self,
        args: BuildDashboardUrlArgs,
        base: Option<String>,
    ) -> ToolResult {
        let path = match (&args.execution, &args.workflow) {
            (Some(e), None) => format!("/executions/{}", self.execution(e).await?.id),
            (None, Some(w)) => {
                self.store
                    .get_definition(DefinitionKind::Workflow, w, None)
                    .await?;
                format!("/workflows/{}", path_segment(w))
            }
            (None, None) if args.page.as_deref().is_some() => match args.page.as_deref() {
                Some("workflows") => "/".to_string(),
                Some(p @ ("executions" | "agents" | "insights")) => format!("/{p}"),
                Some(other) => {
                    return Err(ToolError::invalid(format!(
                        "unknown page `{other}`: one of workflows, executions, agents, insights"
                    )));
                }
                None => unreachable!(),
            },
            _ => {
                return Err(ToolError::invalid(
                    "give one of `execution`, `workflow` or `page`",
                ));
            }
        };
        Ok(match base {
            Some(base) => format!("{base}{path}\n"),
            None => format!(
                "{path}\n(the path on the dashboard of `assay server`; this MCP session is on stdio, with no dashboard)\n"
            ),
        })
    }
}

/// A workflow name in a URL path: names are DNS labels, anything else is percent-encoded.
fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
