//! One [`Backend`] for the commands that work on history and definitions: the embedded store
//! on this machine ([`Embedded`], through `assay-service` and `assay-store`) or a server's API
//! through a context ([`Server`], through `assay-client`). A command opens one with
//! [`ConnArgs::backend`](crate::remote::ConnArgs::backend), asks it for data, and prints the
//! same way whichever it is; the choice between the two is made once, here, not in each command.
//!
//! Errors are already the user's messages (exit codes of design.md §5): a server's are named
//! by [`Remote::err`], the store's by `store_err`. The operations of `assay-service` return a
//! [`BackendError`] instead, so each command keeps its own hint for the service's refusals.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use assay_api::agents::Agent;
use assay_api::analysis::Analysis;
use assay_api::gate::{GateRequest, GateVerdict};
use assay_api::insights::Insights;
use assay_api::quarantine::{QuarantineEntry, QuarantineRequest};
use assay_client::{ExecutionQuery, Followed};
use assay_service::ServiceError;
use assay_service::gate::{Gate, Target};
use assay_service::insights::{By, InsightsQuery};
use assay_spec::load::ResourceKind;
use assay_store::testkube::TestWorkflowExecution;
use assay_store::{
    ApplyOutcome, DefinitionKind, DeleteMode, ExecutionFilter, ExecutionRef, ExecutionStatus,
    LabelSelector, Store, UnixMs,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::cmd::history::{self, store_err};
use crate::error::UserError;
use crate::remote::{Remote, local_only};

/// A boxed future, as the [`Backend`] methods return them (the trait stays object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The failure of an operation of `assay-service`: the service's own refusal (the command
/// words it, with its hint), or a message ready for the user.
#[derive(Debug)]
pub enum BackendError {
    Service(ServiceError),
    User(anyhow::Error),
}

impl BackendError {
    /// The user's message: the service's refusal worded by `service`.
    pub fn worded(self, service: impl FnOnce(ServiceError) -> anyhow::Error) -> anyhow::Error {
        match self {
            BackendError::Service(e) => service(e),
            BackendError::User(e) => e,
        }
    }
}

/// One stored workflow or template in a list; revision and time are known for the embedded
/// store only.
pub struct ListedDefinition {
    pub name: String,
    pub revision: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub updated: Option<UnixMs>,
    /// The document as JSON.
    pub doc: serde_json::Value,
}

/// One stored definition: its text when the backend keeps it (the store does; a server's API
/// answers JSON only), and the document as JSON.
pub struct DefinitionText {
    pub yaml: Option<String>,
    pub doc: serde_json::Value,
}

/// One revision of a stored definition.
pub struct Revision {
    pub revision: i64,
    pub stored: UnixMs,
    pub labels: BTreeMap<String, String>,
}

/// Which executions `assay get executions` lists, newest first.
pub struct ExecutionsWanted {
    pub workflow: Option<String>,
    pub statuses: Vec<ExecutionStatus>,
    pub tags: Vec<(String, String)>,
    /// Scheduled at or after this time.
    pub since: Option<UnixMs>,
    pub limit: u32,
}

/// What became of an abort request.
pub enum AbortOutcome {
    /// It was queued: aborted at once, it never runs.
    Aborted,
    /// It runs: whoever runs it stops it.
    Requested,
    /// It had already ended, with this status.
    Ended(String),
}

/// An execution's artifacts.
pub struct Artifacts {
    pub id: String,
    pub name: String,
    pub list: Vec<assay_api::Artifact>,
}

/// A quality gate to evaluate: the file's text (a server checks it again) and what was read
/// from it here.
pub struct GateCall<'a> {
    pub text: &'a str,
    pub gate: &'a Gate,
    pub target: &'a Target,
    pub execution: Option<&'a str>,
    pub commit: Option<&'a str>,
}

/// One log line, whatever the backend.
pub struct LogLine {
    /// RFC 3339.
    pub ts: String,
    pub step: String,
    pub text: String,
}

/// An execution's steps, for `assay logs`: `(ref, name)` in plan order.
pub struct LogSteps {
    pub id: String,
    pub name: String,
    pub steps: Vec<(String, Option<String>)>,
}

/// Where a command's data lives: the embedded store, or a server through a context.
pub trait Backend: Send + Sync {
    /// The runner agents a server knows (`assay get agents`).
    fn list_agents(&self) -> BoxFuture<'_, anyhow::Result<Vec<Agent>>>;

    /// Stored workflows or templates, optionally by label selector.
    fn list_definitions<'a>(
        &'a self,
        kind: DefinitionKind,
        selector: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedDefinition>>>;

    /// One stored definition (the latest revision, or `revision`).
    fn definition<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        revision: Option<i64>,
    ) -> BoxFuture<'a, anyhow::Result<DefinitionText>>;

    /// Every revision of a stored definition, oldest first (empty: not found).
    fn revisions<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Revision>>>;

    /// Store a workflow or template: what happened, and the revision when the backend says.
    fn apply<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        yaml: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<(ApplyOutcome, Option<i64>)>>;

    /// Store a `Webhook` or `TestTrigger`.
    fn apply_resource<'a>(
        &'a self,
        kind: ResourceKind,
        name: &'a str,
        yaml: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<ApplyOutcome>>;

    /// Delete a definition (`purge`: its revisions too); false when there was none.
    fn delete_definition<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        purge: bool,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;

    /// Executions, newest first.
    fn list_executions(
        &self,
        wanted: ExecutionsWanted,
    ) -> BoxFuture<'_, anyhow::Result<Vec<TestWorkflowExecution>>>;

    /// One execution, in Testkube's shape.
    fn execution<'a>(
        &'a self,
        reference: &'a ExecutionRef,
    ) -> BoxFuture<'a, anyhow::Result<TestWorkflowExecution>>;

    /// Ask whoever runs an execution to abort it: its name, and what became of the request.
    fn abort<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<(String, AbortOutcome)>>;

    /// An execution's artifacts.
    fn artifacts<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, anyhow::Result<Artifacts>>;

    /// The bytes of one artifact of execution `id`.
    fn download<'a>(
        &'a self,
        id: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<BoxStream<'a, anyhow::Result<Vec<u8>>>>>;

    /// An execution's steps, for `assay logs`.
    fn log_steps<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, anyhow::Result<LogSteps>>;

    /// An execution's log lines in batches: stored ones step by step in plan order (`steps`),
    /// or (`follow`) every line as it comes until the execution ends. `only`: one step's.
    fn log_lines<'a>(
        &'a self,
        steps: &'a LogSteps,
        only: Option<&'a str>,
        follow: bool,
    ) -> BoxStream<'a, anyhow::Result<Vec<LogLine>>>;

    /// Why an execution failed.
    fn analysis<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Analysis, BackendError>>;

    /// How changes fare per AI tool, team or workflow; `since_text` is what the user gave.
    fn insights<'a>(
        &'a self,
        since_text: &'a str,
        since: UnixMs,
        by: By,
    ) -> BoxFuture<'a, Result<Insights, BackendError>>;

    /// A quality gate's verdict.
    fn evaluate_gate<'a>(
        &'a self,
        call: GateCall<'a>,
    ) -> BoxFuture<'a, Result<GateVerdict, BackendError>>;

    /// Quarantine a test (`by`: who, for the embedded store; a server knows the token's).
    fn quarantine<'a>(
        &'a self,
        request: &'a QuarantineRequest,
        by: &'a str,
    ) -> BoxFuture<'a, Result<QuarantineEntry, BackendError>>;

    /// The quarantined tests (`all`: expired ones too).
    fn quarantines(&self, all: bool) -> BoxFuture<'_, Result<Vec<QuarantineEntry>, BackendError>>;

    /// Lift a quarantine.
    fn unquarantine<'a>(
        &'a self,
        test: &'a str,
        workflow: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// The store on this machine, for what only it can answer (`what` names the command for
    /// the refusal through a server).
    fn store(&self, what: &str) -> anyhow::Result<&Store>;

    /// Let go of what the backend holds (the store's connections).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// The store on this machine.
pub struct Embedded {
    pub store: Store,
}

/// A server, through a context.
pub struct Server {
    pub remote: Remote,
}

fn service(store: &Store) -> assay_service::Service {
    assay_service::Service::new(store.clone())
}

impl Backend for Embedded {
    fn list_agents(&self) -> BoxFuture<'_, anyhow::Result<Vec<Agent>>> {
        Box::pin(async move {
            service(&self.store).agents().await.map_err(|e| match e {
                ServiceError::Store(s) => store_err(s),
                other => anyhow::anyhow!("failed to list the agents: {other}"),
            })
        })
    }

    fn list_definitions<'a>(
        &'a self,
        kind: DefinitionKind,
        selector: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedDefinition>>> {
        Box::pin(async move {
            let selector = match selector {
                Some(s) => LabelSelector::parse(s).map_err(UserError::invalid)?,
                None => LabelSelector::default(),
            };
            let defs = self
                .store
                .list_definitions(kind, &selector)
                .await
                .map_err(store_err)?;
            defs.into_iter()
                .map(|d| {
                    Ok(ListedDefinition {
                        doc: definition_json(&d.yaml)?,
                        name: d.name,
                        revision: Some(d.revision),
                        labels: d.labels.into_iter().collect(),
                        updated: Some(d.created_at),
                    })
                })
                .collect()
        })
    }

    fn definition<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        revision: Option<i64>,
    ) -> BoxFuture<'a, anyhow::Result<DefinitionText>> {
        Box::pin(async move {
            let def = self
                .store
                .get_definition(kind, name, revision)
                .await
                .map_err(store_err)?;
            Ok(DefinitionText {
                doc: definition_json(&def.yaml)?,
                yaml: Some(def.yaml),
            })
        })
    }

    fn revisions<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Revision>>> {
        Box::pin(async move {
            Ok(self
                .store
                .definition_revisions(kind, name)
                .await
                .map_err(store_err)?
                .into_iter()
                .map(|d| Revision {
                    revision: d.revision,
                    stored: d.created_at,
                    labels: d.labels.into_iter().collect(),
                })
                .collect())
        })
    }

    fn apply<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        yaml: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<(ApplyOutcome, Option<i64>)>> {
        Box::pin(async move {
            let (outcome, revision) = self
                .store
                .apply(kind, name, yaml, labels)
                .await
                .map_err(store_err)?;
            Ok((outcome, Some(revision)))
        })
    }

    fn apply_resource<'a>(
        &'a self,
        kind: ResourceKind,
        name: &'a str,
        yaml: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<ApplyOutcome>> {
        Box::pin(async move {
            self.store
                .apply_resource(kind, name, yaml, labels)
                .await
                .map_err(store_err)
        })
    }

    fn delete_definition<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        purge: bool,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        let mode = if purge {
            DeleteMode::Hard
        } else {
            DeleteMode::Soft
        };
        Box::pin(async move {
            self.store
                .delete_definition(kind, name, mode)
                .await
                .map_err(store_err)
        })
    }

    fn list_executions(
        &self,
        wanted: ExecutionsWanted,
    ) -> BoxFuture<'_, anyhow::Result<Vec<TestWorkflowExecution>>> {
        Box::pin(async move {
            let filter = ExecutionFilter {
                workflow: wanted.workflow,
                statuses: wanted.statuses,
                tags: wanted.tags,
                since: wanted.since,
                limit: Some(wanted.limit),
                before_id: None,
            };
            let rows = self
                .store
                .list_executions(&filter)
                .await
                .map_err(store_err)?;
            Ok(rows.iter().map(TestWorkflowExecution::from).collect())
        })
    }

    fn execution<'a>(
        &'a self,
        reference: &'a ExecutionRef,
    ) -> BoxFuture<'a, anyhow::Result<TestWorkflowExecution>> {
        Box::pin(async move {
            Ok(TestWorkflowExecution::from(
                &self
                    .store
                    .get_execution(reference)
                    .await
                    .map_err(store_err)?,
            ))
        })
    }

    fn abort<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<(String, AbortOutcome)>> {
        Box::pin(async move {
            let e = history::find(&self.store, &ExecutionRef::parse(reference)).await?;
            // A queued execution (a server's, sharing this data dir) is aborted at once.
            let outcome =
                match assay_runner::abort(&self.store, &e.id, "aborted with `assay abort`")
                    .await
                    .map_err(store_err)?
                {
                    assay_runner::AbortOutcome::Aborted => AbortOutcome::Aborted,
                    assay_runner::AbortOutcome::Requested => AbortOutcome::Requested,
                    assay_runner::AbortOutcome::Finished => {
                        AbortOutcome::Ended(e.status.to_string())
                    }
                };
            Ok((e.name, outcome))
        })
    }

    fn artifacts<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, anyhow::Result<Artifacts>> {
        Box::pin(async move {
            let e = history::find(&self.store, &ExecutionRef::parse(reference)).await?;
            let list = self.store.list_artifacts(&e.id).await.map_err(store_err)?;
            Ok(Artifacts {
                id: e.id,
                name: e.name,
                list,
            })
        })
    }

    fn download<'a>(
        &'a self,
        id: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<BoxStream<'a, anyhow::Result<Vec<u8>>>>> {
        Box::pin(async move {
            Ok(self
                .store
                .open_artifact(id, path)
                .await
                .map_err(store_err)?
                .stream
                .map(|c| c.map(|b| b.to_vec()).map_err(store_err))
                .boxed())
        })
    }

    fn log_steps<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, anyhow::Result<LogSteps>> {
        Box::pin(async move {
            let e = history::find(&self.store, &ExecutionRef::parse(reference)).await?;
            let steps = self.store.steps(&e.id).await.map_err(store_err)?;
            Ok(LogSteps {
                id: e.id,
                name: e.name,
                steps: steps.into_iter().map(|s| (s.step_ref, s.name)).collect(),
            })
        })
    }

    fn log_lines<'a>(
        &'a self,
        steps: &'a LogSteps,
        only: Option<&'a str>,
        follow: bool,
    ) -> BoxStream<'a, anyhow::Result<Vec<LogLine>>> {
        let store = &self.store;
        if follow {
            return store
                .follow_logs(&steps.id, only, Duration::from_millis(250))
                .map(|batch| batch.map(from_store).map_err(store_err))
                .boxed();
        }
        // Step by step in plan order, each read to its end.
        async_stream_steps(store, &steps.id, only)
    }

    fn analysis<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Analysis, BackendError>> {
        Box::pin(async move {
            service(&self.store)
                .analyze(reference)
                .await
                .map_err(BackendError::Service)
        })
    }

    fn insights<'a>(
        &'a self,
        _since_text: &'a str,
        since: UnixMs,
        by: By,
    ) -> BoxFuture<'a, Result<Insights, BackendError>> {
        Box::pin(async move {
            service(&self.store)
                .insights(&InsightsQuery { since, by })
                .await
                .map_err(BackendError::Service)
        })
    }

    fn evaluate_gate<'a>(
        &'a self,
        call: GateCall<'a>,
    ) -> BoxFuture<'a, Result<GateVerdict, BackendError>> {
        Box::pin(async move {
            service(&self.store)
                .evaluate_gate(
                    call.gate,
                    call.target,
                    chrono::Utc::now().timestamp_millis(),
                )
                .await
                .map_err(BackendError::Service)
        })
    }

    fn quarantine<'a>(
        &'a self,
        request: &'a QuarantineRequest,
        by: &'a str,
    ) -> BoxFuture<'a, Result<QuarantineEntry, BackendError>> {
        Box::pin(async move {
            service(&self.store)
                .quarantine(request, Some(by))
                .await
                .map_err(BackendError::Service)
        })
    }

    fn quarantines(&self, all: bool) -> BoxFuture<'_, Result<Vec<QuarantineEntry>, BackendError>> {
        Box::pin(async move {
            service(&self.store)
                .quarantines(all)
                .await
                .map_err(BackendError::Service)
        })
    }

    fn unquarantine<'a>(
        &'a self,
        test: &'a str,
        workflow: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            service(&self.store)
                .unquarantine(test, workflow)
                .await
                .map_err(BackendError::Service)
        })
    }

    fn store(&self, _what: &str) -> anyhow::Result<&Store> {
        Ok(&self.store)
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.store.close().await })
    }
}

/// The stored logs of an execution, step by step in plan order (`only`: one step's).
fn async_stream_steps<'a>(
    store: &'a Store,
    id: &'a str,
    only: Option<&'a str>,
) -> BoxStream<'a, anyhow::Result<Vec<LogLine>>> {
    futures::stream::once(async move {
        match only {
            Some(r) => Ok(vec![r.to_string()]),
            None => store.log_steps_in_order(id).await.map_err(store_err),
        }
    })
    .map(move |refs| -> BoxStream<'a, anyhow::Result<Vec<LogLine>>> {
        match refs {
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            Ok(refs) => futures::stream::iter(refs)
                .flat_map(move |r| step_log(store, id, r))
                .boxed(),
        }
    })
    .flatten()
    .boxed()
}

/// One step's stored log, in batches, to its end.
fn step_log<'a>(
    store: &'a Store,
    id: &'a str,
    step: String,
) -> BoxStream<'a, anyhow::Result<Vec<LogLine>>> {
    let reader = store.log_reader(id, &step, 0);
    futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.read_available().await {
            Err(e) => Some((Err(store_err(e)), None)),
            Ok(batch) if !batch.is_empty() => Some((Ok(from_store(batch)), Some(reader))),
            Ok(_) => match reader.read_to_end().await {
                Err(e) => Some((Err(store_err(e)), None)),
                Ok(rest) => Some((Ok(from_store(rest)), None)),
            },
        }
    })
    .boxed()
}

fn from_store(lines: Vec<assay_store::LogLine>) -> Vec<LogLine> {
    lines
        .into_iter()
        .map(|l| LogLine {
            ts: assay_store::testkube::rfc3339(l.ts),
            step: l.step,
            text: l.text,
        })
        .collect()
}

/// The stored YAML as a JSON document.
fn definition_json(yaml: &str) -> anyhow::Result<serde_json::Value> {
    Ok(serde_saphyr::from_str::<serde_json::Value>(yaml)?)
}

impl Server {
    fn user<T>(&self, r: Result<T, assay_client::ClientError>) -> Result<T, BackendError> {
        r.map_err(|e| BackendError::User(self.remote.err(e)))
    }

    /// Store one document on the server: created when new, else replaced — unless the
    /// server's copy is the same document already. `get`, `update` and `create` are the
    /// collection's calls.
    async fn put_document<G, U, C>(
        &self,
        yaml: &str,
        get: G,
        update: U,
        create: C,
    ) -> anyhow::Result<ApplyOutcome>
    where
        G: Future<Output = Result<serde_json::Value, assay_client::ClientError>>,
        U: Future<Output = Result<serde_json::Value, assay_client::ClientError>>,
        C: Future<Output = Result<serde_json::Value, assay_client::ClientError>>,
    {
        let r = &self.remote;
        match get.await {
            Ok(current) => {
                let new: serde_json::Value = serde_saphyr::from_str(yaml)?;
                if new == current {
                    return Ok(ApplyOutcome::Unchanged);
                }
                update.await.map_err(|e| r.err(e))?;
                Ok(ApplyOutcome::Updated)
            }
            Err(e) if e.status() == Some(404) => {
                create.await.map_err(|e| r.err(e))?;
                Ok(ApplyOutcome::Created)
            }
            Err(e) => Err(r.err(e)),
        }
    }
}

impl Backend for Server {
    fn list_agents(&self) -> BoxFuture<'_, anyhow::Result<Vec<Agent>>> {
        let r = &self.remote;
        Box::pin(async move { r.client.list_agents().await.map_err(|e| r.err(e)) })
    }

    fn list_definitions<'a>(
        &'a self,
        kind: DefinitionKind,
        selector: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedDefinition>>> {
        let r = &self.remote;
        Box::pin(async move {
            let docs = r
                .client
                .list_definitions(kind, selector)
                .await
                .map_err(|e| r.err(e))?;
            Ok(docs
                .into_iter()
                .map(|d| ListedDefinition {
                    name: d["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    revision: None,
                    labels: d["metadata"]["labels"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_string())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    updated: None,
                    doc: d,
                })
                .collect())
        })
    }

    fn definition<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        revision: Option<i64>,
    ) -> BoxFuture<'a, anyhow::Result<DefinitionText>> {
        let r = &self.remote;
        Box::pin(async move {
            if revision.is_some() {
                return Err(revisions_local_only(r));
            }
            // The server keeps the text, but its API answers JSON: comments are not shown.
            let doc = r
                .client
                .get_definition(kind, name)
                .await
                .map_err(|e| r.err(e))?;
            Ok(DefinitionText { yaml: None, doc })
        })
    }

    fn revisions<'a>(
        &'a self,
        _kind: DefinitionKind,
        _name: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Revision>>> {
        Box::pin(async move { Err(revisions_local_only(&self.remote)) })
    }

    fn apply<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        yaml: &'a str,
        _labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<(ApplyOutcome, Option<i64>)>> {
        let c = &self.remote.client;
        Box::pin(async move {
            // The API does not say revisions; the store keeps one per change either way.
            let outcome = self
                .put_document(
                    yaml,
                    c.get_definition(kind, name),
                    c.update_definition(kind, name, yaml),
                    c.create_definition(kind, yaml),
                )
                .await?;
            Ok((outcome, None))
        })
    }

    fn apply_resource<'a>(
        &'a self,
        kind: ResourceKind,
        name: &'a str,
        yaml: &'a str,
        _labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<ApplyOutcome>> {
        let c = &self.remote.client;
        let collection = match kind {
            ResourceKind::Webhook => "webhooks",
            ResourceKind::TestTrigger => "triggers",
        };
        Box::pin(async move {
            self.put_document(
                yaml,
                c.get_resource(collection, name),
                c.update_resource(collection, name, yaml),
                c.create_resource(collection, yaml),
            )
            .await
        })
    }

    fn delete_definition<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        purge: bool,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        let r = &self.remote;
        Box::pin(async move {
            if purge {
                return Err(local_only("`--purge`", r));
            }
            match r.client.delete_definition(kind, name).await {
                Ok(()) => Ok(true),
                Err(e) if e.status() == Some(404) => Ok(false),
                Err(e) => Err(r.err(e)),
            }
        })
    }

    /// Page by page up to the limit; `since` is applied here (the API has no such filter),
    /// stopping at the first older one since pages are newest first.
    fn list_executions(
        &self,
        wanted: ExecutionsWanted,
    ) -> BoxFuture<'_, anyhow::Result<Vec<TestWorkflowExecution>>> {
        let r = &self.remote;
        Box::pin(async move {
            let mut query = ExecutionQuery {
                workflow: wanted.workflow,
                statuses: wanted.statuses.iter().map(|s| s.to_string()).collect(),
                tags: wanted.tags,
                page_size: Some(wanted.limit.clamp(1, 1000)),
                before: None,
            };
            let mut out = Vec::new();
            loop {
                let page = r
                    .client
                    .list_executions(&query)
                    .await
                    .map_err(|e| r.err(e))?;
                for e in page.results {
                    if let Some(since) = wanted.since
                        && history::ms(Some(&e.scheduled_at)).is_some_and(|at| at < since)
                    {
                        return Ok(out);
                    }
                    out.push(e);
                    if out.len() >= wanted.limit as usize {
                        return Ok(out);
                    }
                }
                match page.next {
                    Some(next) => query.before = Some(next),
                    None => return Ok(out),
                }
            }
        })
    }

    fn execution<'a>(
        &'a self,
        reference: &'a ExecutionRef,
    ) -> BoxFuture<'a, anyhow::Result<TestWorkflowExecution>> {
        let r = &self.remote;
        Box::pin(async move {
            r.client
                .get_execution(&history::ref_text(reference))
                .await
                .map_err(|e| r.err(e))
        })
    }

    fn abort<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<(String, AbortOutcome)>> {
        let r = &self.remote;
        Box::pin(async move {
            let e = r
                .client
                .get_execution(reference)
                .await
                .map_err(|e| r.err(e))?;
            let answer = r.client.abort(&e.id).await.map_err(|e| r.err(e))?;
            let outcome = match answer.outcome.as_str() {
                "aborted" => AbortOutcome::Aborted,
                "requested" => AbortOutcome::Requested,
                _ => {
                    let now = r.client.get_execution(&e.id).await.map_err(|e| r.err(e))?;
                    AbortOutcome::Ended(now.result.status.to_string())
                }
            };
            Ok((e.name, outcome))
        })
    }

    fn artifacts<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, anyhow::Result<Artifacts>> {
        let r = &self.remote;
        Box::pin(async move {
            let e = r
                .client
                .get_execution(reference)
                .await
                .map_err(|e| r.err(e))?;
            let list = r.client.list_artifacts(&e.id).await.map_err(|e| r.err(e))?;
            Ok(Artifacts {
                id: e.id,
                name: e.name,
                list,
            })
        })
    }

    fn download<'a>(
        &'a self,
        id: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<BoxStream<'a, anyhow::Result<Vec<u8>>>>> {
        let r = &self.remote;
        Box::pin(async move {
            let download = r
                .client
                .download_artifact(id, path)
                .await
                .map_err(|e| r.err(e))?;
            Ok(download
                .stream
                .map(move |c| c.map(|b| b.to_vec()).map_err(|e| r.err(e)))
                .boxed())
        })
    }

    fn log_steps<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, anyhow::Result<LogSteps>> {
        let r = &self.remote;
        Box::pin(async move {
            let e = r
                .client
                .get_execution(reference)
                .await
                .map_err(|err| r.err(err))?;
            let steps = history::steps_in_order(&e)
                .into_iter()
                .map(|(r, n, _)| (r, n))
                .collect();
            Ok(LogSteps {
                id: e.id,
                name: e.name,
                steps,
            })
        })
    }

    /// Through the server's notification stream: it replays what is stored, then sends the
    /// current result, then follows live. Without `follow` the replay is the answer, put
    /// step by step in plan order as from the store; with it every line goes on as it comes.
    fn log_lines<'a>(
        &'a self,
        steps: &'a LogSteps,
        only: Option<&'a str>,
        follow: bool,
    ) -> BoxStream<'a, anyhow::Result<Vec<LogLine>>> {
        let r = &self.remote;
        let lines = r
            .client
            .follow(&steps.id, 10)
            .map(move |item| item.map_err(|err| r.err(err)))
            .take_while(move |item| {
                let more = follow || !matches!(item, Ok(Followed::Result(_)));
                async move { more }
            })
            .filter_map(move |item| async move {
                match item {
                    Err(e) => Some(Err(e)),
                    Ok(Followed::Result(_)) => None,
                    Ok(Followed::Log(n)) => {
                        let step = n.step_ref.unwrap_or_default();
                        if only.is_some_and(|o| o != step) {
                            return None;
                        }
                        let mut text = n.log.unwrap_or_default();
                        if text.ends_with('\n') {
                            text.pop();
                        }
                        Some(Ok(LogLine {
                            ts: n.ts,
                            step,
                            text,
                        }))
                    }
                }
            });
        if follow {
            return lines.map(|l| l.map(|l| vec![l])).boxed();
        }
        let position: BTreeMap<&str, usize> = steps
            .steps
            .iter()
            .enumerate()
            .map(|(i, (r, _))| (r.as_str(), i))
            .collect();
        futures::stream::once(async move {
            let mut replay: Vec<LogLine> = lines
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<anyhow::Result<_>>()?;
            // Stable: lines of one step keep their order.
            replay.sort_by_key(|l| position.get(l.step.as_str()).copied().unwrap_or(usize::MAX));
            Ok(replay)
        })
        .boxed()
    }

    fn analysis<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Analysis, BackendError>> {
        Box::pin(async move { self.user(self.remote.client.analysis(reference).await) })
    }

    fn insights<'a>(
        &'a self,
        since_text: &'a str,
        _since: UnixMs,
        by: By,
    ) -> BoxFuture<'a, Result<Insights, BackendError>> {
        Box::pin(
            async move { self.user(self.remote.client.insights(since_text, by.as_str()).await) },
        )
    }

    fn evaluate_gate<'a>(
        &'a self,
        call: GateCall<'a>,
    ) -> BoxFuture<'a, Result<GateVerdict, BackendError>> {
        Box::pin(async move {
            let request = GateRequest {
                rules: serde_json::Value::String(call.text.to_string()),
                execution: call.execution.map(str::to_string),
                commit: call.commit.map(str::to_string),
            };
            self.user(self.remote.client.evaluate_gate(&request).await)
        })
    }

    fn quarantine<'a>(
        &'a self,
        request: &'a QuarantineRequest,
        _by: &'a str,
    ) -> BoxFuture<'a, Result<QuarantineEntry, BackendError>> {
        Box::pin(async move { self.user(self.remote.client.add_quarantine(request).await) })
    }

    fn quarantines(&self, all: bool) -> BoxFuture<'_, Result<Vec<QuarantineEntry>, BackendError>> {
        Box::pin(async move { self.user(self.remote.client.list_quarantines(all).await) })
    }

    fn unquarantine<'a>(
        &'a self,
        test: &'a str,
        workflow: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(
            async move { self.user(self.remote.client.remove_quarantine(test, workflow).await) },
        )
    }

    fn store(&self, what: &str) -> anyhow::Result<&Store> {
        Err(local_only(what, &self.remote))
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

fn revisions_local_only(r: &Remote) -> anyhow::Error {
    local_only(
        "the revisions of a definition (`-o table`, `--revision`)",
        r,
    )
}
