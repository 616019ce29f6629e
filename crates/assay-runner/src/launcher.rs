//! `execute` of stored workflows: each copy an `execute` step asks for is loaded from the
//! store, prepared and run as its own recorded execution, started by the parent.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use assay_engine::{LaunchRequest, WorkflowLauncher};
use assay_spec::status::ExecutionStatus;
use assay_store::{ContextType, RunningContext, Store};
use tokio_util::sync::CancellationToken;

use crate::{RunError, RunRequest, prepare};

/// How deep `execute` may nest (a workflow that executes one that executes ...). A workflow
/// that executes itself without a condition that ends it stops here with a clear error.
pub const MAX_EXECUTE_DEPTH: usize = 8;

/// Runs `execute` steps of one execution over the store it is recorded in.
pub(crate) struct StoreLauncher {
    pub store: Store,
    /// The executing (parent) execution's id and name (`<workflow>-<number>`).
    pub parent_id: String,
    pub parent_name: String,
    /// Names of the workflows from the outermost execution down to the parent.
    pub chain: Vec<String>,
    pub base_env: BTreeMap<String, String>,
    /// The parent's token: aborting the parent aborts what it started.
    pub cancel: CancellationToken,
    /// The parent's runtime: children run where their parent runs.
    pub runtime: Arc<dyn assay_engine::Runtime>,
}

impl WorkflowLauncher for StoreLauncher {
    fn launch(
        &self,
        request: LaunchRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ExecutionStatus, String>> + Send + '_>> {
        Box::pin(self.launch_one(request))
    }
}

impl StoreLauncher {
    async fn launch_one(&self, request: LaunchRequest) -> Result<ExecutionStatus, String> {
        let name = request.workflow.name.as_str();
        if name.is_empty() {
            return Err("execute by label selector is not supported by the local runtime: name the workflow".into());
        }
        if self.chain.len() >= MAX_EXECUTE_DEPTH {
            return Err(format!(
                "`{name}` would be executed {} levels deep ({} -> {name}), more than the limit of {MAX_EXECUTE_DEPTH}: does a workflow execute itself without a condition that ends it?",
                self.chain.len() + 1,
                self.chain.join(" -> ")
            ));
        }
        let workflow = match crate::stored::workflow(&self.store, name).await {
            Ok(w) => w,
            Err(e) if e.is_not_found() => {
                return Err(format!(
                    "there is no stored workflow named `{name}` (store it with `assay apply`)"
                ));
            }
            Err(crate::stored::StoredError::DoesNotLoad { .. }) => {
                return Err(format!("the stored workflow `{name}` no longer loads"));
            }
            Err(e) => return Err(format!("failed to load the workflow `{name}`: {e}")),
        };
        let templates = crate::stored::templates(&self.store)
            .await
            .map_err(|e| format!("failed to load the stored templates: {e}"))?;
        let mut req = RunRequest::new(workflow, templates);
        req.config = request.workflow.config.clone();
        req.running_context = RunningContext {
            kind: ContextType::Api,
            actor: Some(format!(
                "execution {} ({}), step {}",
                self.parent_name, self.parent_id, request.reference
            )),
            ci: None,
        };
        req.base_env = self.base_env.clone();
        req.parents = self.chain.clone();
        req.runtime = Some(self.runtime.clone());
        let prepared = prepare(&self.store, req).await.map_err(|e| match e {
            RunError::Invalid(errors) => format!(
                "the workflow `{name}` does not compile with this config: {}",
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            e => format!("failed to start `{name}`: {e}"),
        })?;
        // Its own task: the child is recorded to its end even when the parent stops waiting.
        let child = prepared.cancel_token();
        let parent = self.cancel.clone();
        let run = tokio::spawn(async move {
            let forward = async {
                parent.cancelled().await;
                child.cancel();
                std::future::pending::<()>().await
            };
            tokio::select! {
                finished = prepared.run(|_| {}) => finished,
                _ = forward => unreachable!("pending never ends"),
            }
        });
        let finished = run
            .await
            .map_err(|e| format!("the execution of `{name}` crashed: {e}"))?
            .map_err(|e| format!("the execution of `{name}` failed to run: {e}"))?;
        Ok(finished.execution.status)
    }
}
