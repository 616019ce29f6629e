//! `run_workflow`, `wait_for_execution`, `list_executions`, `get_execution`,
//! `abort_execution`.

use std::fmt::Write;
use std::time::{Duration, Instant};

use assay_runner::{RunError, RunRequest};
use assay_spec::load::{Kind, LoadedDocument};
use assay_spec::model::{Document, TestWorkflow};
use assay_spec::resolve::PathError;
use assay_store::{DefinitionKind, Execution, ExecutionFilter, ExecutionRef, ExecutionStatus};
use serde_json::json;

use super::Tools;
use super::workflows::INLINE;
use crate::args::{
    AbortExecutionArgs, ExecutionArgs, ListExecutionsArgs, RunWorkflowArgs, StatusArg,
    WaitForExecutionArgs,
};
use crate::error::{ToolError, ToolResult};
use crate::summary::{self, Detail, ago, call, duration};
use crate::text::{self, PAGE_LIMIT};

/// How often a wait looks at the store for executions run by another process.
pub(super) const POLL: Duration = Duration::from_millis(250);
/// How long an abort waits for the run to be recorded as ended.
const ABORT_WAIT: Duration = Duration::from_secs(15);

impl Tools {
    /// `run_workflow`: run a stored workflow or inline YAML; wait for the verdict unless told
    /// not to.
    pub async fn run_workflow(&self, args: RunWorkflowArgs) -> ToolResult {
        let (workflow, doc, templates) = match (&args.yaml, &args.name) {
            (Some(yaml), name) => self.inline_workflow(yaml, name.as_deref()).await?,
            (None, Some(name)) => self.stored_workflow(name).await?,
            (None, None) => {
                return Err(
                    ToolError::invalid("pass `name` (a stored workflow) or `yaml`").with_hint(
                        format!(
                            "{} lists the stored workflows",
                            call("list_workflows", json!({}))
                        ),
                    ),
                );
            }
        };
        let mut req = RunRequest::new(workflow, templates);
        req.config = args.config.clone().into_iter().collect();
        req.tags = args.tags.clone();
        req.running_context = self.config.running_context.clone();
        let started = match &self.queue {
            // In a server: queued like every other run; the wait below reads the store.
            Some(queue) => queue.submit(req).await,
            None => assay_runner::prepare(&self.store, req)
                .await
                .map(|prepared| {
                    let exec = prepared.execution().clone();
                    self.runs.start(prepared);
                    exec
                }),
        };
        let exec = match started {
            Ok(exec) => exec,
            Err(RunError::Invalid(errors)) => return Err(compile_error(&doc, &errors)),
            Err(RunError::Store(e)) => return Err(e.into()),
            Err(RunError::Internal(e)) => return Err(ToolError::Internal(e)),
        };
        if args.wait == Some(false) {
            return Ok(format!(
                "started {} (workflow {}, id {})\nnext: {}",
                exec.name,
                exec.workflow,
                exec.id,
                call("wait_for_execution", json!({"execution": exec.name}))
            ));
        }
        let bound = self.wait_bound(args.timeout_seconds);
        self.wait_and_answer(&exec.id, bound).await
    }

    /// `wait_for_execution`.
    pub async fn wait_for_execution(&self, args: WaitForExecutionArgs) -> ToolResult {
        let exec = self.execution(&args.execution).await?;
        let bound = self.wait_bound(args.timeout_seconds);
        self.wait_and_answer(&exec.id, bound).await
    }

    /// `get_execution`.
    pub async fn get_execution(&self, args: ExecutionArgs) -> ToolResult {
        self.store.recover_abandoned().await?;
        let exec = self.execution(&args.execution).await?;
        self.answer(&exec, Detail::Full).await
    }

    /// `list_executions`: newest first, one line each.
    pub async fn list_executions(&self, args: ListExecutionsArgs) -> ToolResult {
        self.store.recover_abandoned().await?;
        let limit = args.limit.unwrap_or(20).clamp(1, 100);
        let filter = ExecutionFilter {
            workflow: args.workflow.clone(),
            statuses: args.status.map(status).into_iter().collect(),
            limit: Some(limit),
            ..ExecutionFilter::default()
        };
        let list = self.store.list_executions(&filter).await?;
        if list.is_empty() {
            if let Some(w) = &args.workflow
                && self
                    .store
                    .get_definition(DefinitionKind::Workflow, w, None)
                    .await
                    .is_err()
                && self
                    .store
                    .list_executions(&ExecutionFilter {
                        workflow: Some(w.clone()),
                        limit: Some(1),
                        ..ExecutionFilter::default()
                    })
                    .await?
                    .is_empty()
            {
                return Err(ToolError::not_found(format!("no workflow `{w}` has run"))
                    .with_hint(self.workflow_names_hint(w).await?));
            }
            return Ok("no executions match\nnext: run_workflow {\"name\": …}\n".into());
        }
        let mut out = format!(
            "{} executions, newest first (name, status, duration, when, tags):\n",
            list.len()
        );
        for e in &list {
            let took = match (e.started_at, e.finished_at) {
                (Some(s), Some(f)) => duration(f - s),
                _ => "-".into(),
            };
            let mut line = format!("{}  {}  {took}  {}", e.name, e.status, ago(e.scheduled_at));
            if !e.tags.is_empty() {
                let tags: Vec<String> = e.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = write!(line, "  {}", tags.join(","));
            }
            let _ = writeln!(out, "{}", text::clip_line(&line, 300));
        }
        let _ = writeln!(
            out,
            "next: get_execution {{\"execution\": …}} for the steps and the failure"
        );
        Ok(text::clip_text(&out, PAGE_LIMIT, "lower `limit`"))
    }

    /// `abort_execution`: stop a running execution (in this process or another).
    pub async fn abort_execution(&self, args: AbortExecutionArgs) -> ToolResult {
        let exec = self.execution(&args.execution).await?;
        if exec.status.is_terminal() {
            return Ok(format!(
                "{} already ended: {}; nothing to abort\n",
                exec.name, exec.status
            ));
        }
        let reason = args
            .reason
            .clone()
            .unwrap_or_else(|| "aborted through MCP".to_string());
        // A queued run never starts; a run of this process stops at once; another process
        // sees the request in its poll.
        assay_runner::abort(&self.store, &exec.id, &reason).await?;
        self.runs.cancel(&exec.id);
        let answer = self.wait_and_answer(&exec.id, ABORT_WAIT).await?;
        Ok(format!("abort requested for {}\n{answer}", exec.name))
    }

    /// Wait until the execution ends or `bound` passes, then answer with its verdict.
    async fn wait_and_answer(&self, id: &str, bound: Duration) -> ToolResult {
        let deadline = Instant::now() + bound;
        if let Some(mut done) = self.runs.done(id) {
            let _ = tokio::time::timeout(bound, done.wait_for(|d| *d)).await;
        }
        let reference = ExecutionRef::Id(id.to_string());
        let mut checks = 0u32;
        loop {
            let summary = self.store.find_execution(&reference).await?;
            if summary.status.is_terminal() || Instant::now() >= deadline {
                break;
            }
            checks += 1;
            if checks.is_multiple_of(20) {
                // A run in a process that died never ends by itself.
                self.store.recover_abandoned().await?;
            }
            tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        let exec = self.store.get_execution(&reference).await?;
        let mut answer = self.answer(&exec, Detail::Verdict).await?;
        if !exec.status.is_terminal() {
            answer.insert_str(
                0,
                &format!(
                    "still running after waiting {}s; the run goes on\n",
                    bound.as_secs()
                ),
            );
        }
        Ok(answer)
    }

    /// Render an execution, reading the failed step's output when there is one.
    async fn answer(&self, exec: &Execution, detail: Detail) -> ToolResult {
        let lines = match summary::failed_step(exec) {
            Some(step) => Some(
                self.store
                    .read_logs(&exec.id, Some(&step.step_ref))
                    .await?
                    .into_iter()
                    .map(|l| l.text)
                    .collect::<Vec<_>>(),
            ),
            None => None,
        };
        Ok(summary::render(exec, detail, lines.as_deref()))
    }

    async fn stored_workflow(
        &self,
        name: &str,
    ) -> ToolResult<(
        TestWorkflow,
        Option<LoadedDocument>,
        assay_spec::TemplateSet,
    )> {
        let def = match self
            .store
            .get_definition(DefinitionKind::Workflow, name, None)
            .await
        {
            Ok(d) => d,
            Err(e) if e.is_not_found() => {
                return Err(ToolError::not_found(format!("no stored workflow `{name}`"))
                    .with_hint(self.workflow_names_hint(name).await?));
            }
            Err(e) => return Err(e.into()),
        };
        let loaded = assay_spec::validate::check_bytes(INLINE, def.yaml.as_bytes());
        let doc = loaded
            .documents
            .iter()
            .find(|d| d.kind == Kind::TestWorkflow && loaded.is_valid(d.index))
            .ok_or_else(|| {
                ToolError::invalid(format!(
                    "stored workflow `{name}` (revision {}) is no longer valid",
                    def.revision
                ))
                .with_hint(format!(
                    "{} shows its problems; store a fixed one with create_or_update_workflow",
                    call("validate_workflow", json!({"yaml": "<its YAML>"}))
                ))
            })?;
        let Document::TestWorkflow(wf) = &doc.document else {
            return Err(ToolError::Internal(
                "a workflow document holds no workflow".into(),
            ));
        };
        Ok((
            wf.clone(),
            Some(doc.clone()),
            self.stored_templates().await?,
        ))
    }

    async fn inline_workflow(
        &self,
        yaml: &str,
        name: Option<&str>,
    ) -> ToolResult<(
        TestWorkflow,
        Option<LoadedDocument>,
        assay_spec::TemplateSet,
    )> {
        let checked = self.check_text(yaml).await?;
        let loaded = &checked.loaded;
        if loaded.has_errors() {
            let problems =
                super::render_diagnostics(&loaded.diagnostics, loaded.documents.len() > 1);
            return Err(ToolError::invalid(format!(
                "the YAML is not valid, nothing was run:\n{}",
                problems.trim_end()
            ))
            .with_hint("fix these lines and call again"));
        }
        let workflows: Vec<&LoadedDocument> = loaded
            .documents
            .iter()
            .filter(|d| d.kind == Kind::TestWorkflow)
            .collect();
        let names: Vec<&str> = workflows.iter().map(|d| d.name.as_str()).collect();
        let doc = match (name, workflows.as_slice()) {
            (Some(n), _) => workflows
                .iter()
                .find(|d| d.name == n)
                .copied()
                .ok_or_else(|| {
                    ToolError::not_found(format!("the YAML holds no workflow `{n}`"))
                        .with_hint(format!("it holds: {}", names.join(", ")))
                })?,
            (None, [one]) => *one,
            (None, []) => {
                return Err(ToolError::invalid("the YAML holds no TestWorkflow")
                    .with_hint("pass a document with `kind: TestWorkflow`"));
            }
            (None, _) => {
                return Err(ToolError::invalid(format!(
                    "the YAML holds {} workflows",
                    workflows.len()
                ))
                .with_hint(format!("pick one with `name`: {}", names.join(", "))));
            }
        };
        let Document::TestWorkflow(wf) = &doc.document else {
            return Err(ToolError::Internal(
                "a workflow document holds no workflow".into(),
            ));
        };
        Ok((wf.clone(), Some(doc.clone()), checked.templates))
    }
}

fn status(s: StatusArg) -> ExecutionStatus {
    match s {
        StatusArg::Queued => ExecutionStatus::Queued,
        StatusArg::Running => ExecutionStatus::Running,
        StatusArg::Paused => ExecutionStatus::Paused,
        StatusArg::Passed => ExecutionStatus::Passed,
        StatusArg::Failed => ExecutionStatus::Failed,
        StatusArg::Aborted => ExecutionStatus::Aborted,
        StatusArg::Canceled => ExecutionStatus::Canceled,
    }
}

/// Compile errors (missing config values, bad values) located in the YAML when possible.
fn compile_error(doc: &Option<LoadedDocument>, errors: &[PathError]) -> ToolError {
    let mut out = String::from("the workflow does not compile, nothing was run:\n");
    for e in errors.iter().take(30) {
        match doc.as_ref().and_then(|d| d.locations.locate(&e.path)) {
            Some((line, col)) => {
                let _ = write!(out, "line {line}, column {col}: ");
            }
            None if !e.path.is_empty() => {
                let _ = write!(out, "{}: ", e.path);
            }
            None => {}
        }
        let _ = writeln!(out, "{}", text::clip_line(&e.message, 400));
        if let Some(h) = &e.hint {
            let _ = writeln!(out, "  hint: {}", text::clip_line(h, 300));
        }
    }
    ToolError::invalid(out.trim_end().to_string())
        .with_hint("fix the workflow, or pass the missing values in `config`")
}
