//! Runs: [`Service::submit`] is the one way into a queue (the API, the dashboard, schedules,
//! hooks and MCP all submit through it), [`Service::rerun`] the one rule set for running an
//! execution again, [`Service::abort`] the one abort.
//!
//! The queue's insert ([`QueueSink::push`]) takes a [`Queued`], and only this module makes one:
//! from a run just recorded by `submit` (carrying the checked request, so nothing is parsed
//! again when it starts), or from a `queued` row another process recorded ([`Service::adopt`]).

use std::collections::BTreeMap;

use assay_runner::{AbortOutcome, RunError, RunRequest};
use assay_spec::model::TestWorkflow;
use assay_store::{ExecutionRef, ExecutionSummary, RunningContext, Store, StoreError, UnixMs};
use indexmap::IndexMap;
use serde_json::Value;

use crate::Service;
use crate::definitions;
use crate::error::{ServiceError, ServiceResult};

/// Where submitted runs go: a server's queue.
pub trait QueueSink: Send + Sync + 'static {
    /// Take the queued run (record nothing: it is recorded already).
    fn push(&self, ticket: Queued);
}

/// A run recorded `queued`, on its way to a queue. Made only by [`Service::submit`] and
/// [`Service::adopt`]: whatever enters the queue went through them.
pub struct Queued {
    id: String,
    workflow: String,
    /// The checked request, for a run submitted in this process.
    request: Option<Box<RunRequest>>,
    /// Submitted just now (not adopted from the store).
    new: bool,
}

/// Testkube's `spec.concurrency`: at most `max` executions of the group run at once; with
/// `cancel_in_progress` a new one aborts those running instead of waiting for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub key: String,
    pub max: usize,
    pub cancel_in_progress: bool,
}

fn group_of(workflow: &TestWorkflow) -> Option<Group> {
    let policy = workflow.spec.concurrency.as_ref()?;
    let key = if policy.group.is_empty() {
        format!("workflow/{}", workflow.metadata.name)
    } else {
        policy.group.clone()
    };
    Some(Group {
        key,
        max: policy.max.unwrap_or(1).max(1) as usize,
        cancel_in_progress: policy.cancel_in_progress,
    })
}

impl Queued {
    /// The execution's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether it was submitted just now, not adopted from the store (a queue tells
    /// observers of new runs only).
    pub fn is_new(&self) -> bool {
        self.new
    }

    /// Whether it waits for an agent (it has an execution target): a server's own runner
    /// leaves it alone. Adopted runs never are (adoption takes untargeted rows only).
    pub fn is_targeted(&self) -> bool {
        self.request
            .as_ref()
            .is_some_and(|r| assay_runner::effective_target(r).ok().flatten().is_some())
    }

    /// Its workflow's name (empty for an adopted run until [`Queued::group`] read it).
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The concurrency group of the run, from the definition it was queued with (an empty group
    /// is the workflow's own; `max` defaults to 1). An adopted run's definition is read from the
    /// store, once.
    pub async fn group(&mut self, store: &Store) -> Option<Group> {
        if self.request.is_none()
            && let Ok(request) = stored_request(store, &self.id).await
        {
            self.workflow = request.workflow.metadata.name.clone();
            self.request = Some(Box::new(request));
        }
        self.request.as_ref().and_then(|r| group_of(&r.workflow))
    }

    /// The request to run it with: the checked one, or rebuilt from the store; with the
    /// sensitive values this process holds for it (taken out of memory here).
    pub async fn into_request(self, store: &Store) -> Result<RunRequest, QueuedRequestError> {
        let held = crate::held::take(&self.id);
        let mut request = match self.request {
            Some(r) => *r,
            None => stored_request(store, &self.id).await?,
        };
        if let Some(values) = held {
            request.config.extend(values);
            request.held = true;
        }
        Ok(request)
    }
}

/// Why a queued execution's run request could not be rebuilt from the store. Its message is
/// what the execution records as its error.
#[derive(Debug, thiserror::Error)]
pub enum QueuedRequestError {
    #[error("failed to read the queued execution: {0}")]
    ReadExecution(#[source] StoreError),
    #[error("the stored definition does not load: {problems}")]
    DoesNotLoad { problems: String },
    #[error(transparent)]
    Definition(definitions::StoredError),
    #[error("failed to read templates: {0}")]
    Templates(#[source] StoreError),
}

/// The run request of a queued execution, rebuilt from what the store holds: its definition,
/// config values and tags, and the stored templates as they are now.
async fn stored_request(store: &Store, id: &str) -> Result<RunRequest, QueuedRequestError> {
    let execution = store
        .get_execution(&ExecutionRef::Id(id.to_string()))
        .await
        .map_err(QueuedRequestError::ReadExecution)?;
    let workflow = definitions::workflow_from_yaml("stored definition", &execution.definition)
        .map_err(|e| match e {
            definitions::StoredError::DoesNotLoad { problems, .. } => {
                QueuedRequestError::DoesNotLoad { problems }
            }
            e => QueuedRequestError::Definition(e),
        })?;
    let templates = definitions::templates(store)
        .await
        .map_err(QueuedRequestError::Templates)?;
    let mut request = RunRequest::new(workflow, templates);
    request.config = execution
        .config
        .iter()
        .filter_map(|(k, v)| v.value.clone().map(|v| (k.clone(), Value::String(v))))
        .collect();
    request.tags = execution.tags.clone();
    request.running_context = execution.running_context.clone();
    Ok(request)
}

/// Every `queued` execution in the store without an execution target (those wait for an
/// agent), oldest first.
pub async fn queued_in_store(store: &Store) -> Result<Vec<String>, StoreError> {
    store.queued_untargeted().await
}

/// How a run starts, besides its workflow.
#[derive(Debug, Clone, Default)]
pub struct Start {
    pub config: IndexMap<String, Value>,
    pub tags: BTreeMap<String, String>,
    pub running_context: RunningContext,
    /// When it was due (a schedule's tick); now when `None`.
    pub scheduled_at: Option<UnixMs>,
    /// Testkube's execution target given with the run (overrides the workflow's).
    pub target: Option<assay_api::agents::ExecutionTarget>,
}

/// The tag shared by the executions one run request made through `replicate` (a random id):
/// `assay get executions --tag replicate-group=ID` lists them together.
pub const REPLICATE_GROUP_TAG: &str = "replicate-group";

/// The tag naming the label values a replicated execution was made for (`KEY:VALUE`, `;` between
/// keys).
pub const REPLICA_TAG: &str = "replica";

/// What [`Service::abort`] did to which execution.
#[derive(Debug, Clone)]
pub struct Aborted {
    pub execution: ExecutionSummary,
    pub outcome: AbortOutcome,
}

/// Tag keys must be usable in a tag filter (`key=value,…`).
pub fn check_tags(tags: &BTreeMap<String, String>) -> ServiceResult<()> {
    match tags.keys().find(|k| k.is_empty() || k.contains([',', '='])) {
        Some(bad) => Err(ServiceError::BadRequest(format!(
            "tag key `{bad}` is empty or has `,` or `=` (tag filters are `key=value,…`)"
        ))),
        None => Ok(()),
    }
}

/// The config values to run `execution` again with `workflow`: its recorded values of the
/// parameters `workflow` still declares (others would be refused), sensitive ones left out
/// (never recorded). Refused when a sensitive value it used is needed again — a sensitive
/// parameter without a default — and not in `secrets`. The rule of every rerun (CLI and server).
pub fn rerun_config(
    execution: &ExecutionSummary,
    workflow: &TestWorkflow,
    secrets: &[(String, String)],
) -> ServiceResult<IndexMap<String, String>> {
    let missing: Vec<&str> = execution
        .config
        .iter()
        .filter(|(k, v)| v.sensitive && !secrets.iter().any(|(s, _)| s == *k))
        .map(|(k, _)| k.as_str())
        .collect();
    if !missing.is_empty()
        && workflow
            .spec
            .config
            .iter()
            .any(|(k, p)| p.sensitive && p.default.is_none() && missing.contains(&k.as_str()))
    {
        return Err(ServiceError::SensitiveNotRecorded {
            execution: execution.name.clone(),
            keys: missing.iter().map(|k| k.to_string()).collect(),
        });
    }
    Ok(execution
        .config
        .iter()
        .filter(|(k, v)| !v.sensitive && workflow.spec.config.contains_key(*k))
        .filter_map(|(k, v)| v.value.clone().map(|value| (k.clone(), value)))
        .collect())
}

impl Service {
    /// Check `run` (it must compile with its values), record it `queued` and hand it to the
    /// queue: the one way into the queue. Its sensitive config values are held in this process's
    /// memory until it starts (see [`crate::held`]).
    ///
    /// A target with `replicate` (Testkube's) is queued once per distinct value of its label
    /// keys among the connected agents it matches, each copy
    /// targeted at its value and tagged with [`REPLICATE_GROUP_TAG`]; the first is returned.
    pub async fn submit(
        &self,
        run: RunRequest,
        scheduled_at: Option<UnixMs>,
    ) -> Result<ExecutionSummary, RunError> {
        let mut copies = self.replicas(run).await?.into_iter();
        let first = copies
            .next()
            .ok_or_else(|| RunError::Internal("nothing to queue".into()))?;
        let summary = self.submit_one(first, scheduled_at).await?;
        for copy in copies {
            self.submit_one(copy, scheduled_at).await?;
        }
        Ok(summary)
    }

    /// The requests `run` is queued as: itself, or with `replicate` one per distinct value
    /// combination of the replicate keys among the connected agents the target matches. When
    /// no connected agent matches, one copy without `replicate` waits for a matching agent.
    async fn replicas(&self, mut run: RunRequest) -> Result<Vec<RunRequest>, RunError> {
        let Some(target) = assay_runner::effective_target(&run)? else {
            return Ok(vec![run]);
        };
        if target.replicate.is_empty() {
            return Ok(vec![run]);
        }
        let now = assay_store::now_ms();
        let timeout = self.store.lease_timeout().as_millis() as i64;
        let agents: Vec<_> = self
            .store
            .list_agents()
            .await?
            .into_iter()
            .filter(|a| now - a.last_seen_at <= timeout)
            .collect();
        let replicas = target.replicas(agents.iter().map(|a| (a.name.as_str(), &a.labels)));
        if replicas.is_empty() {
            let mut waiting = target;
            waiting.replicate.clear();
            run.target = Some(waiting);
            return Ok(vec![run]);
        }
        let group = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        Ok(replicas
            .into_iter()
            .map(|(target, values)| {
                let mut copy = run.clone();
                copy.target = Some(target);
                copy.tags
                    .insert(REPLICATE_GROUP_TAG.to_string(), group.clone());
                copy.tags.insert(
                    REPLICA_TAG.to_string(),
                    values
                        .iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect::<Vec<_>>()
                        .join(";"),
                );
                copy
            })
            .collect())
    }

    async fn submit_one(
        &self,
        run: RunRequest,
        scheduled_at: Option<UnixMs>,
    ) -> Result<ExecutionSummary, RunError> {
        let Some(queue) = &self.queue else {
            return Err(RunError::Internal(
                "this service has no queue to submit runs to".into(),
            ));
        };
        let sensitive = assay_runner::sensitive_config(&run);
        let mut run = run;
        run.held = !sensitive.is_empty();
        let mut new = assay_runner::queued_execution(&run)?;
        new.scheduled_at = scheduled_at;
        let summary = self.store.create_execution(new).await?;
        if !sensitive.is_empty() {
            let heartbeat = self.store.spawn_heartbeat(&summary.id);
            crate::held::hold(&summary.id, sensitive.clone(), heartbeat);
            // Held in memory, not in the ticket: the ticket's request must not outlive them.
            run.config.retain(|k, _| !sensitive.contains_key(k));
            run.held = false;
        }
        queue.push(Queued {
            id: summary.id.clone(),
            workflow: summary.workflow.clone(),
            request: Some(Box::new(run)),
            new: true,
        });
        Ok(summary)
    }

    /// [`Service::submit`] a run of `workflow` with the stored templates.
    pub async fn start(
        &self,
        workflow: TestWorkflow,
        start: Start,
    ) -> ServiceResult<ExecutionSummary> {
        let templates = definitions::templates(&self.store).await?;
        let mut run = RunRequest::new(workflow, templates);
        run.config = start.config;
        run.tags = start.tags;
        run.running_context = start.running_context;
        run.target = start.target;
        Ok(self.submit(run, start.scheduled_at).await?)
    }

    /// Run the stored workflow `name` (tags given with a run must be usable in tag filters).
    pub async fn run_stored(&self, name: &str, start: Start) -> ServiceResult<ExecutionSummary> {
        check_tags(&start.tags)?;
        let workflow = definitions::workflow(&self.store, name)
            .await
            .map_err(|e| match e {
                definitions::StoredError::DoesNotLoad { .. } => {
                    ServiceError::Internal(format!("stored workflow `{name}` does not load"))
                }
                e => e.into(),
            })?;
        self.start(workflow, start).await
    }

    /// Run an execution again with the same config values and tags ([`rerun_config`]): the
    /// workflow as stored now, or the definition the execution ran when the workflow was
    /// deleted since. `secrets` are the sensitive values given again.
    pub async fn rerun(
        &self,
        reference: &str,
        secrets: &[(String, String)],
        running_context: RunningContext,
    ) -> ServiceResult<ExecutionSummary> {
        let old = self
            .store
            .get_execution(&ExecutionRef::parse(reference))
            .await?;
        let workflow = match definitions::workflow(&self.store, &old.workflow).await {
            Ok(w) => w,
            Err(e) if e.is_not_found() => definitions::workflow_from_yaml(
                &format!("definition of {}", old.name),
                &old.definition,
            )
            .map_err(|_| {
                ServiceError::Internal(format!("the definition of `{}` does not load", old.name))
            })?,
            Err(definitions::StoredError::DoesNotLoad { .. }) => {
                return Err(ServiceError::Internal(format!(
                    "stored workflow `{}` does not load",
                    old.workflow
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let mut config: IndexMap<String, Value> = rerun_config(&old, &workflow, secrets)?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        for (k, v) in secrets {
            if workflow.spec.config.get(k).is_some_and(|p| p.sensitive) {
                config.insert(k.clone(), Value::String(v.clone()));
            }
        }
        self.start(
            workflow,
            Start {
                config,
                tags: old.tags.clone(),
                running_context,
                scheduled_at: None,
                target: None,
            },
        )
        .await
    }

    /// Abort an execution wherever it is (see [`assay_runner::abort`]).
    pub async fn abort(&self, reference: &str, reason: &str) -> ServiceResult<Aborted> {
        let execution = self
            .store
            .find_execution(&ExecutionRef::parse(reference))
            .await?;
        let outcome = assay_runner::abort(&self.store, &execution.id, reason).await?;
        Ok(Aborted { execution, outcome })
    }

    /// The request to run the queued execution `id` with, for a runner outside the queue (an
    /// agent the caller has just handed it to): rebuilt from the store, with the sensitive
    /// values this process holds for it (taken out of memory here).
    pub async fn queued_request(&self, id: &str) -> Result<RunRequest, QueuedRequestError> {
        Queued {
            id: id.to_string(),
            workflow: String::new(),
            request: None,
            new: false,
        }
        .into_request(&self.store)
        .await
    }

    /// Hand every `queued` execution of the store to the queue (at start, and every few seconds:
    /// servers sharing a database share the queue this way). Returns how many.
    pub async fn adopt(&self) -> Result<usize, StoreError> {
        let Some(queue) = &self.queue else {
            return Ok(0);
        };
        let ids = queued_in_store(&self.store).await?;
        let n = ids.len();
        for id in ids {
            queue.push(Queued {
                id,
                workflow: String::new(),
                request: None,
                new: false,
            });
        }
        Ok(n)
    }
}

/// A queue sink that is also told of each submit, for tests and wrappers.
impl<F: Fn(Queued) + Send + Sync + 'static> QueueSink for F {
    fn push(&self, ticket: Queued) {
        self(ticket)
    }
}
