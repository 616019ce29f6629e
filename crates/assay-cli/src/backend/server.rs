//! [`Backend`] over a server's API, through a context and `assay-client`.

use std::collections::BTreeMap;
use std::future::Future;

use assay_api::agents::Agent;
use assay_api::analysis::Analysis;
use assay_api::gate::{GateRequest, GateVerdict};
use assay_api::insights::Insights;
use assay_api::quarantine::{QuarantineEntry, QuarantineRequest};
use assay_client::{ExecutionQuery, Followed};
use assay_service::insights::By;
use assay_spec::load::ResourceKind;
use assay_store::testkube::TestWorkflowExecution;
use assay_store::{ApplyOutcome, DefinitionKind, ExecutionRef, Store, UnixMs};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::cmd::history::{self};
use crate::remote::{Remote, local_only};

use super::*;

/// A server, through a context.
pub struct Server {
    pub remote: Remote,
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
