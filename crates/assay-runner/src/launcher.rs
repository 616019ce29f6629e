//! `execute` of stored workflows: each copy an `execute` step asks for is loaded from the
//! store, prepared and run as its own recorded execution, started by the parent.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use assay_engine::{LaunchError, LaunchRequest, Launched, WorkflowLauncher};
use assay_store::{ContextType, ParentExecution, RunningContext, Store};
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

/// Why the workflow `name` an `execute` step asks for cannot start with the config it gives.
pub fn does_not_compile(name: &str, errors: &[assay_spec::resolve::PathError]) -> String {
    format!(
        "the workflow `{name}` does not compile with this config: {}",
        errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

impl WorkflowLauncher for StoreLauncher {
    fn launch(
        &self,
        request: LaunchRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Launched, LaunchError>> + Send + '_>> {
        Box::pin(self.launch_one(request))
    }
}

impl StoreLauncher {
    async fn launch_one(&self, request: LaunchRequest) -> Result<Launched, LaunchError> {
        let name = request.workflow.name.as_str();
        if name.is_empty() {
            return Err(
                "execute by label selector is not supported by the local runtime: name the workflow"
                    .to_string()
                    .into(),
            );
        }
        if self.chain.len() >= MAX_EXECUTE_DEPTH {
            return Err(format!(
                "`{name}` would be executed {} levels deep ({} -> {name}), more than the limit of {MAX_EXECUTE_DEPTH}: does a workflow execute itself without a condition that ends it?",
                self.chain.len() + 1,
                self.chain.join(" -> ")
            )
            .into());
        }
        let workflow = match crate::stored::workflow(&self.store, name).await {
            Ok(w) => w,
            Err(e) if e.is_not_found() => {
                return Err(format!(
                    "there is no stored workflow named `{name}` (store it with `assay apply`)"
                )
                .into());
            }
            Err(crate::stored::StoredError::DoesNotLoad { .. }) => {
                return Err(format!("the stored workflow `{name}` no longer loads").into());
            }
            Err(e) => return Err(format!("failed to load the workflow `{name}`: {e}").into()),
        };
        let templates = crate::stored::templates(&self.store)
            .await
            .map_err(|e| LaunchError::from(format!("failed to load the stored templates: {e}")))?;
        let mut req = RunRequest::new(workflow, templates);
        req.config = request.workflow.config.clone();
        // Testkube's actor of an `execute` child: the parent execution.
        req.running_context = RunningContext {
            kind: ContextType::Api,
            actor: Some(self.parent_name.clone()),
            ci: None,
            execution_id: Some(self.parent_id.clone()),
        };
        req.base_env = self.base_env.clone();
        req.parents = self.chain.clone();
        req.parent = Some(ParentExecution {
            id: self.parent_id.clone(),
            name: self.parent_name.clone(),
            step_ref: request.reference.clone(),
        });
        req.runtime = Some(self.runtime.clone());
        let prepared = prepare(&self.store, req).await.map_err(|e| {
            LaunchError::from(match e {
                RunError::Invalid(errors) => does_not_compile(name, &errors),
                e => format!("failed to start `{name}`: {e}"),
            })
        })?;
        let execution = prepared.execution.name.clone();
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
        let fail = |message: String| LaunchError {
            execution: Some(execution.clone()),
            message,
        };
        let finished = run
            .await
            .map_err(|e| fail(format!("crashed: {e}")))?
            .map_err(|e| fail(format!("failed to run: {e}")))?;
        Ok(Launched {
            name: finished.execution.summary.name.clone(),
            status: finished.execution.summary.status,
        })
    }
}
