//! [`Backend`] over the store on this machine, through `assay-service`.

use std::collections::BTreeMap;
use std::time::Duration;

use assay_api::agents::Agent;
use assay_api::analysis::Analysis;
use assay_api::gate::GateVerdict;
use assay_api::insights::Insights;
use assay_api::quarantine::{QuarantineEntry, QuarantineRequest};
use assay_service::ServiceError;
use assay_service::insights::{By, InsightsQuery};
use assay_spec::load::ResourceKind;
use assay_store::testkube::TestWorkflowExecution;
use assay_store::{
    ApplyOutcome, DefinitionKind, DeleteMode, ExecutionFilter, ExecutionRef, LabelSelector, Store,
    UnixMs,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::cmd::history::{self, store_err};
use crate::error::UserError;

use super::*;

/// The store on this machine.
pub struct Embedded {
    pub store: Store,
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
