//! The verdict tools: answers instead of logs. `why_failed` (class, rule, evidence, the diff
//! against the last pass), `test_history`, `compare_executions`,
//! `list_failures_since_last_pass`; each under 4 KB.

use std::fmt::Write;

use assay_service::{Service, ServiceError};
use serde_json::json;

use super::Tools;
use crate::args::{
    CompareExecutionsArgs, EvaluateGateArgs, InsightsArgs, ListFailuresSinceLastPassArgs,
    TestHistoryArgs, WhyFailedArgs,
};
use crate::error::{ToolError, ToolResult};
use crate::summary::{ago, call, duration};
use crate::text::{clip_line, clip_text};

/// An answer stays under this many bytes.
const MAX_ANSWER: usize = 3800;
/// Executions listed by `list_failures_since_last_pass`.
const MAX_SINCE: u32 = 20;

pub(super) fn service_err(e: ServiceError) -> ToolError {
    match e {
        ServiceError::Store(s) => s.into(),
        ServiceError::NotFound(m) => ToolError::not_found(m),
        ServiceError::BadRequest(m) => ToolError::invalid(m),
        other => ToolError::Internal(other.to_string()),
    }
}

impl Tools {
    /// `evaluate_gate`: a quality gate's verdict over an execution or a commit, as text.
    pub async fn evaluate_gate(&self, args: EvaluateGateArgs) -> ToolResult {
        use assay_service::gate::{Gate, Target, render_text};
        let gate = Gate::parse(&args.rules).map_err(|e| match e {
            ServiceError::Invalid { detail, problems } => {
                let place = problems
                    .first()
                    .filter(|p| p.line > 0)
                    .map(|p| format!(" (line {}, column {})", p.line, p.column))
                    .unwrap_or_default();
                ToolError::Invalid {
                    message: format!("{detail}{place}"),
                    hint: problems.into_iter().find_map(|p| p.hint),
                }
            }
            other => service_err(other),
        })?;
        let target = Target::from_request(args.execution.as_deref(), args.commit.as_deref())
            .map_err(service_err)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let v = self
            .service()
            .evaluate_gate(&gate, &target, now)
            .await
            .map_err(service_err)?;
        let mut out = clip_text(
            &render_text(&v),
            MAX_ANSWER - 300,
            "ask for fewer rules at a time",
        );
        if let Some(e) = v
            .rules
            .iter()
            .filter(|r| !r.passed)
            .flat_map(|r| r.evidence.iter())
            .find_map(|e| e.execution.as_ref())
        {
            let _ = write!(out, "next: {}", call("why_failed", json!({"execution": e})));
        }
        Ok(out)
    }

    pub(super) fn service(&self) -> Service {
        Service::new(self.store.clone())
    }

    /// `why_failed`: the analysis of one execution as text.
    pub async fn why_failed(&self, args: WhyFailedArgs) -> ToolResult {
        let a = self
            .service()
            .analyze(&args.execution)
            .await
            .map_err(service_err)?;
        let mut out = assay_analysis::render_text(&a, MAX_ANSWER - 300);
        let mut next = Vec::new();
        if let Some(t) = a.failing_tests.first() {
            next.push(call(
                "test_history",
                json!({"workflow": a.execution.workflow, "test": t.key}),
            ));
        }
        if let Some(d) = &a.since_last_pass {
            next.push(call(
                "compare_executions",
                json!({"before": d.last_pass.name, "after": a.execution.name}),
            ));
        }
        if let Some(s) = &a.failing_step {
            next.push(call(
                "get_execution_logs",
                json!({"execution": a.execution.name, "step": s.step_ref}),
            ));
        }
        if a.verdict.is_some() && !next.is_empty() {
            let _ = writeln!(out, "next: {}", next.join("; "));
        }
        Ok(out)
    }

    /// `insights`: how changes fare per AI tool, team or workflow, as text.
    pub async fn insights(&self, args: InsightsArgs) -> ToolResult {
        use assay_service::insights::{self, By, DEFAULT_DAYS, InsightsQuery};
        let now = assay_store::now_ms();
        let since = match args.since.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => insights::parse_since(s, now).map_err(service_err)?,
            None => now - DEFAULT_DAYS * 86_400_000,
        };
        let by = match args.by.as_deref().filter(|s| !s.is_empty()) {
            Some(b) => By::parse(b).map_err(service_err)?,
            None => By::Tool,
        };
        let answer = self
            .service()
            .insights(&InsightsQuery { since, by })
            .await
            .map_err(service_err)?;
        // Agent-sized: the groups with most changes, then fewer until it fits.
        let mut groups = 15;
        loop {
            let out = insights::render_text(&answer, groups);
            if out.len() <= MAX_ANSWER || groups <= 1 {
                return Ok(clip_text(
                    &out,
                    MAX_ANSWER,
                    "ask with `by` or a shorter `since`",
                ));
            }
            groups /= 2;
        }
    }

    /// `test_history`: one test's latest runs, newest first.
    pub async fn test_history(&self, args: TestHistoryArgs) -> ToolResult {
        let limit = args.limit.unwrap_or(20).clamp(1, 100);
        let runs = self
            .service()
            .test_history(&args.workflow, &args.test, limit)
            .await
            .map_err(service_err)?;
        if runs.is_empty() {
            return Err(ToolError::not_found(format!(
                "no recorded runs of test `{}` in workflow `{}`",
                args.test, args.workflow
            ))
            .with_hint(call(
                "get_test_results",
                json!({"execution": format!("{}-1", args.workflow)}),
            )));
        }
        let failed = runs
            .iter()
            .filter(|r| {
                matches!(
                    r.status,
                    assay_reports::CaseStatus::Failed | assay_reports::CaseStatus::Error
                )
            })
            .count();
        let mut out = format!(
            "{} in {}: {} runs shown (newest first), {} failed\n",
            runs[0].key,
            args.workflow,
            runs.len(),
            failed
        );
        for r in &runs {
            let mut line = format!("{} {}", r.execution_name, r.status);
            if r.retry || r.failed_reruns > 0 {
                line.push_str(" (retried)");
            }
            if let Some(c) = &r.commit {
                let _ = write!(line, " commit {c}");
            }
            if let Some(d) = r.duration_ms {
                let _ = write!(line, " {}", duration(d as i64));
            }
            let _ = write!(line, " {}", ago(r.recorded_at));
            if r.status != assay_reports::CaseStatus::Passed
                && let Some(m) = &r.message
            {
                let _ = write!(line, ": {}", clip_line(m.lines().next().unwrap_or(""), 160));
            }
            let _ = writeln!(out, "{line}");
        }
        Ok(clip_text(
            &out,
            MAX_ANSWER,
            "ask for fewer runs with `limit`",
        ))
    }

    /// `compare_executions`: what changed from one execution to another.
    pub async fn compare_executions(&self, args: CompareExecutionsArgs) -> ToolResult {
        let c = self
            .service()
            .compare(&args.before, &args.after)
            .await
            .map_err(service_err)?;
        let mut out = format!(
            "{} ({}) -> {} ({})\n",
            c.before.name, c.before.status, c.after.name, c.after.status
        );
        let d = &c.diff;
        let mut any = false;
        for line in assay_analysis::describe(d) {
            let _ = writeln!(out, "- {line}");
            any = true;
        }
        for t in &d.newly_failing {
            let _ = writeln!(out, "- newly failing: {t}");
            any = true;
        }
        for t in &d.tags {
            let _ = writeln!(
                out,
                "- tag {}: {} -> {}",
                t.name,
                t.before.as_deref().unwrap_or("(unset)"),
                t.after.as_deref().unwrap_or("(unset)")
            );
            any = true;
        }
        for l in d.new_log_lines.iter().skip(3) {
            let _ = writeln!(out, "- new log line {l}");
        }
        if !any {
            out.push_str("- same commit, definition, config and tags\n");
        }
        Ok(clip_text(
            &out,
            MAX_ANSWER,
            "read the logs with get_execution_logs",
        ))
    }

    /// `list_failures_since_last_pass`: the executions of a workflow since it last passed.
    pub async fn list_failures_since_last_pass(
        &self,
        args: ListFailuresSinceLastPassArgs,
    ) -> ToolResult {
        let f = self
            .service()
            .failures_since_last_pass(&args.workflow, MAX_SINCE)
            .await
            .map_err(service_err)?;
        let mut out = match &f.last_pass {
            Some(p) => format!(
                "{}: last passed in {} ({}{}); {} execution{} since{}\n",
                args.workflow,
                p.name,
                ago(p.scheduled_at),
                assay_analysis::commit_of(p)
                    .map(|c| format!(", commit {c}"))
                    .unwrap_or_default(),
                f.since.len(),
                if f.since.len() == 1 { "" } else { "s" },
                if f.truncated { " (newest shown)" } else { "" }
            ),
            None => format!(
                "{}: never passed; {} execution{} shown\n",
                args.workflow,
                f.since.len(),
                if f.since.len() == 1 { "" } else { "s" }
            ),
        };
        for e in &f.since {
            let mut line = format!("{} {}", e.name, e.status);
            if let Some(c) = assay_analysis::commit_of(e) {
                let _ = write!(line, " commit {c}");
            }
            let _ = write!(line, " {}", ago(e.scheduled_at));
            if let Some(m) = &e.error_message {
                let _ = write!(line, ": {}", clip_line(m, 160));
            }
            let _ = writeln!(out, "{line}");
        }
        if let Some(first) = f
            .since
            .iter()
            .rev()
            .find(|e| assay_analysis::failed(e.status))
        {
            let _ = writeln!(
                out,
                "first failure: {}\nnext: {}",
                first.name,
                call("why_failed", json!({"execution": first.name}))
            );
        }
        Ok(clip_text(
            &out,
            MAX_ANSWER,
            "see the rest with list_executions",
        ))
    }
}
