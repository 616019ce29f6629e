//! The tool layer: one method per MCP tool, taking its arguments and answering text for an
//! agent. Nothing here knows about MCP or a transport: the stdio transport (`crate::mcp`) and
//! a later HTTP transport call the same methods.

mod assist;
mod executions;
mod files;
mod overview;
mod quarantine;
mod results;
mod schema;
mod verdicts;
mod workflows;

use std::fmt::Write;
use std::time::Duration;

use assay_spec::TemplateSet;
use assay_spec::diagnostic::Diagnostic;
use assay_store::{
    ContextType, DefinitionKind, Execution, ExecutionFilter, ExecutionRef, LabelSelector,
    RunningContext, Store,
};
use serde_json::json;

use crate::error::{ToolError, ToolResult};
use crate::runs::Runs;
use crate::summary::call;

/// Where `run_workflow` sends a run when the tools live in a server: the server's queue, so
/// that runs started by agents wait for `--max-concurrent` slots and concurrency groups like
/// every other run. Without one (`assay mcp` on stdio) runs start at once in this process.
pub trait RunQueue: Send + Sync + 'static {
    /// Record `request` as a queued execution and hand it to the queue; the execution as
    /// recorded.
    fn submit(
        &self,
        request: assay_runner::RunRequest,
    ) -> futures::future::BoxFuture<
        'static,
        Result<assay_store::ExecutionSummary, assay_runner::RunError>,
    >;
}

/// Settings of the tool layer.
#[derive(Debug, Clone)]
pub struct ToolsConfig {
    /// How long `run_workflow`/`wait_for_execution` wait when the caller does not say.
    pub default_wait: Duration,
    /// The longest wait a caller may ask for.
    pub max_wait: Duration,
    /// Recorded as the running context of executions started through the tools.
    pub running_context: RunningContext,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            default_wait: Duration::from_secs(300),
            max_wait: Duration::from_secs(3600),
            running_context: RunningContext {
                kind: ContextType::Api,
                actor: Some("mcp".into()),
                ci: None,
                execution_id: None,
            },
        }
    }
}

/// The MCP tools over one store, running workflows on this machine.
#[derive(Clone)]
pub struct Tools {
    store: Store,
    runs: Runs,
    config: ToolsConfig,
    queue: Option<std::sync::Arc<dyn RunQueue>>,
}

impl Tools {
    /// Tools over `store`. Call [`Tools::shutdown`] before the process exits.
    pub fn new(store: Store, config: ToolsConfig) -> Self {
        Self {
            store,
            runs: Runs::default(),
            config,
            queue: None,
        }
    }

    /// Send runs to `queue` instead of starting them in this process ([`RunQueue`]).
    pub fn with_queue(mut self, queue: std::sync::Arc<dyn RunQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The store the tools read and write.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Abort the runs this process started and wait up to `grace` for them to be recorded.
    pub async fn shutdown(&self, grace: Duration) {
        self.runs.shutdown(grace).await;
    }

    fn wait_bound(&self, seconds: Option<u64>) -> Duration {
        match seconds {
            Some(s) => Duration::from_secs(s).min(self.config.max_wait),
            None => self.config.default_wait,
        }
    }

    /// Find an execution by name or id; when it does not exist, say which ones do.
    async fn execution(&self, reference: &str) -> ToolResult<Execution> {
        let r = ExecutionRef::parse(reference.trim());
        match self.store.get_execution(&r).await {
            Ok(e) => Ok(e),
            Err(e) if e.is_not_found() => {
                let recent = self
                    .store
                    .list_executions(&ExecutionFilter {
                        limit: Some(10),
                        ..ExecutionFilter::default()
                    })
                    .await?;
                let names: Vec<&str> = recent.iter().map(|e| e.name.as_str()).collect();
                let mut hint = String::new();
                if let Some(c) = assay_spec::suggest::closest(reference, names.iter().copied()) {
                    let _ = write!(hint, "did you mean `{c}`? ");
                }
                if names.is_empty() {
                    hint.push_str("there are no executions yet; start one with run_workflow");
                } else {
                    let _ = write!(
                        hint,
                        "newest executions: {}; more with {}",
                        names.join(", "),
                        call("list_executions", json!({}))
                    );
                }
                Err(ToolError::not_found(format!("no execution `{reference}`")).with_hint(hint))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every stored template, for compiling.
    async fn stored_templates(&self) -> ToolResult<TemplateSet> {
        Ok(assay_runner::stored::templates(&self.store).await?)
    }

    /// Names of stored workflows, with a did-you-mean for `wanted`, as a hint.
    async fn workflow_names_hint(&self, wanted: &str) -> ToolResult<String> {
        let defs = self
            .store
            .list_definitions(DefinitionKind::Workflow, &LabelSelector::default())
            .await?;
        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        let mut hint = String::new();
        if let Some(c) = assay_spec::suggest::closest(wanted, names.iter().copied()) {
            let _ = write!(hint, "did you mean `{c}`? ");
        }
        if names.is_empty() {
            hint.push_str(
                "no workflows are stored; store one with create_or_update_workflow, or pass `yaml` to run_workflow",
            );
        } else {
            let shown: Vec<&str> = names.iter().take(30).copied().collect();
            let _ = write!(hint, "stored workflows: {}", shown.join(", "));
            if names.len() > shown.len() {
                let _ = write!(hint, " (and {} more)", names.len() - shown.len());
            }
        }
        Ok(hint)
    }
}

/// Diagnostics as `line:col: message` lines (with the document when there are several), at
/// most 30.
fn render_diagnostics(diagnostics: &[Diagnostic], several_documents: bool) -> String {
    let mut out = String::new();
    for d in diagnostics.iter().take(30) {
        let severity = if d.is_error() { "" } else { "warning: " };
        if let (true, Some(doc)) = (several_documents, d.document) {
            let _ = write!(out, "document {}, ", doc + 1);
        }
        let _ = writeln!(
            out,
            "line {}, column {}: {severity}{}",
            d.line.max(1),
            d.column.max(1),
            crate::text::clip_line(&d.message, 400)
        );
        if let Some(h) = &d.hint {
            let _ = writeln!(out, "  hint: {}", crate::text::clip_line(h, 300));
        }
    }
    if diagnostics.len() > 30 {
        let _ = writeln!(out, "… and {} more", diagnostics.len() - 30);
    }
    out
}
