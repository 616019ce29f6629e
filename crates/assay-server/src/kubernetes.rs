//! `assay server --kubernetes`: CRD mode and the TestTrigger watcher, wired to the store and
//! the queue. `assay_kube` watches the cluster; this module applies what it reports.
//!
//! **CRD mode.** `TestWorkflow`, `TestWorkflowTemplate` and `TestTrigger` objects of the
//! namespace go through the same checks as `assay apply` (and the same size and nesting
//! limits): a valid object is stored (created, or a new revision), an invalid one is not and
//! the log says which object and why. What is stored from the cluster carries the annotation
//! [`SYNCED_FROM`]; only such definitions are deleted when their object goes (or is found gone
//! at a (re)list, after a restart or a reconnection). The cluster wins: an object whose name an
//! API-made definition already has replaces it (and from then on belongs to the cluster); an
//! API update of a synced definition lasts until the object changes again.
//!
//! **Triggers.** The stored TestTriggers (from the cluster or from `/v1/triggers`) go to
//! `assay_kube::triggers`. They are read again when the store signals a change of them
//! ([`assay_store::Store::watch_resources`]: written through this process, or through any
//! process on the same PostgreSQL) and, as a safety net for writers that send no signal (another
//! process on a SQLite file), every [`Options::trigger_reread`]; each that fires queues the
//! workflows its `testSelector` picks, with `runningContext {type: trigger, actor:
//! "testtrigger NAME"}`, the tag `testtrigger=NAME` (and its `actionParameters` tags,
//! config and target), honouring `concurrencyPolicy` (`forbid`: not while one it queued is queued or
//! running; `replace`: those are aborted first; `allow`, the default: always).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use assay_kube::Connection;
use assay_kube::crd::{CrdKind, SYNCED_FROM, SyncEvent};
use assay_kube::triggers::Fired;
use assay_runner::{RunError, RunRequest};
use assay_service::definitions::Definitions;
use assay_service::{DocumentKind, ServiceError};
use assay_spec::triggers::TestTrigger;
use assay_store::ExecutionStatus;
use assay_store::{ContextType, RunningContext};
use serde_json::Value;
use tokio::sync::watch;

use crate::AppState;

/// How `--kubernetes` acts, beyond the connection.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often the stored TestTriggers are read again without a signal.
    pub trigger_reread: Duration,
    /// Namespaces besides the connection's that TestTriggers may watch.
    pub trigger_namespaces: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            trigger_reread: Duration::from_secs(60),
            trigger_namespaces: Vec::new(),
        }
    }
}

fn document_kind(kind: CrdKind) -> DocumentKind {
    match kind {
        CrdKind::TestWorkflow => DocumentKind::Workflow,
        CrdKind::TestWorkflowTemplate => DocumentKind::Template,
        CrdKind::TestTrigger => DocumentKind::TestTrigger,
    }
}

/// Start CRD mode and the trigger watcher on `conn`; they run as long as the process.
pub fn spawn(state: AppState, conn: Connection, options: Options) {
    let definitions = Definitions::new(state.store.clone());
    let mut events = assay_kube::crd::spawn_sync(&conn);
    let namespace = conn.namespace.clone();
    let defs = definitions.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            apply(&defs, &namespace, event).await;
        }
    });

    let (triggers_tx, triggers_rx) = watch::channel(Vec::<TestTrigger>::new());
    let defs = definitions.clone();
    let reread = options.trigger_reread;
    // Watching before the first read: a change made while reading is read again.
    let mut changes = state
        .store
        .watch_resources(assay_spec::load::ResourceKind::TestTrigger);
    tokio::spawn(async move {
        loop {
            match stored_triggers(&defs).await {
                Ok(triggers) => {
                    let count = triggers.len();
                    let changed = triggers_tx.send_if_modified(|current| {
                        let changed = *current != triggers;
                        if changed {
                            *current = triggers;
                        }
                        changed
                    });
                    if changed {
                        tracing::info!(triggers = count, "the stored TestTriggers changed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the stored TestTriggers failed"),
            }
            if triggers_tx.is_closed() {
                return;
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(reread) => {}
            }
        }
    });
    let mut fired = assay_kube::triggers::spawn_watcher(
        &conn,
        options.trigger_namespaces.iter().cloned().collect(),
        triggers_rx,
    );
    tokio::spawn(async move {
        while let Some(f) = fired.recv().await {
            run(&state, &definitions, f).await;
        }
    });
}

async fn stored_triggers(defs: &Definitions) -> Result<Vec<TestTrigger>, ServiceError> {
    let mut out = Vec::new();
    for mut raw in defs.list(DocumentKind::TestTrigger, "", None).await? {
        // The model has no `kind` (the loader reads it to pick the model).
        if let Some(map) = raw.as_object_mut() {
            map.remove("kind");
        }
        match serde_json::from_value::<TestTrigger>(raw) {
            Ok(t) => out.push(t),
            Err(e) => tracing::warn!(error = %e, "a stored TestTrigger does not load"),
        }
    }
    Ok(out)
}

fn synced(doc: &Value) -> bool {
    doc.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(SYNCED_FROM))
}

/// Apply one change of the cluster to the store.
pub async fn apply(defs: &Definitions, namespace: &str, event: SyncEvent) {
    match event {
        SyncEvent::Applied {
            kind,
            name,
            mut object,
        } => {
            assay_kube::crd::strip_cluster_fields(&mut object, namespace);
            let doc_kind = document_kind(kind);
            let body = serde_json::to_vec(&object).unwrap_or_default();
            let checked = match assay_service::definitions::check(doc_kind, &body, false) {
                Ok(c) => c,
                Err(e) => {
                    let first = match &e {
                        ServiceError::Invalid { problems, .. } => problems
                            .first()
                            .map(|p| format!("{}: {}", p.path.as_deref().unwrap_or(""), p.message))
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    tracing::warn!(kind = kind.as_str(), %namespace, %name, error = %e, first = %first,
                        "a Kubernetes object is not valid: not stored (fix it and apply it again)");
                    return;
                }
            };
            if checked.name != name {
                tracing::warn!(kind = kind.as_str(), %namespace, %name, "the object's name does not check: not stored");
                return;
            }
            let result = match defs.create(doc_kind, &checked).await {
                Err(ServiceError::Conflict(_)) => defs.update(doc_kind, &name, &checked).await,
                other => other,
            };
            match result {
                Ok(()) => {
                    tracing::info!(kind = kind.as_str(), %namespace, %name, "synced from Kubernetes")
                }
                Err(e) => tracing::warn!(kind = kind.as_str(), %namespace, %name, error = %e,
                    "storing a Kubernetes object failed"),
            }
        }
        SyncEvent::Deleted { kind, name } => delete_synced(defs, namespace, kind, &name).await,
        SyncEvent::Listed { kind, names } => {
            let doc_kind = document_kind(kind);
            let stored = match defs.list(doc_kind, "", None).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(kind = kind.as_str(), error = %e, "listing stored definitions failed");
                    return;
                }
            };
            let gone: BTreeSet<String> = stored
                .iter()
                .filter(|d| synced(d))
                .filter_map(|d| d.pointer("/metadata/name")?.as_str().map(str::to_string))
                .filter(|n| !names.contains(n))
                .collect();
            for name in gone {
                delete_synced(defs, namespace, kind, &name).await;
            }
        }
    }
}

async fn delete_synced(defs: &Definitions, namespace: &str, kind: CrdKind, name: &str) {
    let doc_kind = document_kind(kind);
    match defs.get(doc_kind, name).await {
        Ok(doc) if synced(&doc) => match defs.delete(doc_kind, name).await {
            Ok(()) => {
                tracing::info!(kind = kind.as_str(), %namespace, %name, "deleted: its Kubernetes object is gone")
            }
            Err(e) => {
                tracing::warn!(kind = kind.as_str(), %name, error = %e, "deleting a synced definition failed")
            }
        },
        Ok(_) => tracing::info!(kind = kind.as_str(), %name,
            "a Kubernetes object was deleted; the definition of that name was made through the API and stays"),
        Err(_) => {}
    }
}

/// Whether a stored workflow (its JSON) is one the trigger's `testSelector` picks.
fn picked(trigger: &TestTrigger, workflow: &Value) -> bool {
    let sel = &trigger.spec.test_selector;
    let name = workflow
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !sel.name.is_empty() && sel.name != name {
        return false;
    }
    if !sel.name_regex.is_empty()
        && !regex::Regex::new(&sel.name_regex).is_ok_and(|re| re.is_match(name))
    {
        return false;
    }
    if let Some(ls) = &sel.label_selector {
        let labels: BTreeMap<String, String> = workflow
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if !assay_kube::triggers::label_selector_matches(ls, &labels) {
            return false;
        }
    }
    !(sel.name.is_empty() && sel.name_regex.is_empty() && sel.label_selector.is_none())
}

/// The tag every execution a trigger queues carries.
pub const TRIGGER_TAG: &str = "testtrigger";

/// Queue what a fired trigger runs.
async fn run(state: &AppState, defs: &Definitions, fired: Fired) {
    let t = &fired.trigger;
    let name = t.metadata.name.clone();
    let params = t.spec.action_parameters.clone().unwrap_or_default();
    // Testkube's `actionParameters.target` is an execution target: the runs wait for an agent
    // that matches, as a run request's `target` does. Read first: a trigger that cannot run
    // replaces nothing.
    let target = match params.target.as_ref().map(|raw| {
        let mut raw = raw.clone();
        assay_spec::trigger_values::resolve_strings(&mut raw, &fired.event.testkube_event())
            .map_err(|e| e.to_string())?;
        serde_json::from_value::<assay_api::agents::ExecutionTarget>(raw).map_err(|e| e.to_string())
    }) {
        None => None,
        Some(Ok(target)) => Some(target),
        Some(Err(e)) => {
            tracing::warn!(trigger = %name, error = %e,
                "the TestTrigger's actionParameters.target does not resolve to an execution target; not running");
            return;
        }
    };
    // `jsonpath=` and `{{ }}` values come from the event's object. One that does not resolve
    // is left out, as Testkube does (the workflow's default applies), and the log says so.
    let resolved = |field: &str, values: &indexmap::IndexMap<String, String>| {
        values
            .iter()
            .filter_map(|(k, v)| {
                match assay_spec::trigger_values::resolve(v, &fired.event.object) {
                    Ok(v) => Some((k.clone(), v)),
                    Err(e) => {
                        tracing::warn!(trigger = %name, key = %k, error = %e,
                            "a {field} value of the TestTrigger does not resolve from the event's object; left out");
                        None
                    }
                }
            })
            .collect::<Vec<(String, String)>>()
    };
    let config = resolved("config", &params.config);
    let trigger_tags = resolved("tag", &params.tags);
    let policy = t.spec.concurrency_policy.as_str();
    if policy == "forbid" || policy == "replace" {
        let query = assay_service::history::HistoryQuery {
            statuses: vec![ExecutionStatus::Queued, ExecutionStatus::Running],
            tags: vec![(TRIGGER_TAG.to_string(), name.clone())],
            ..Default::default()
        };
        let active = match state.service.list_executions(&query).await {
            Ok(page) => page.results,
            Err(e) => {
                tracing::warn!(trigger = %name, error = %e, "reading the trigger's executions failed");
                Vec::new()
            }
        };
        if !active.is_empty() && policy == "forbid" {
            tracing::info!(trigger = %name, active = active.len(),
                "concurrencyPolicy forbid: executions it started are still active; not running");
            return;
        }
        for e in &active {
            let reason =
                format!("replaced: TestTrigger {name} fired again (concurrencyPolicy replace)");
            if let Err(err) = state.service.abort(&e.id, &reason).await {
                tracing::warn!(trigger = %name, execution = %e.name, error = %err, "aborting failed");
            }
        }
    }
    let workflows = match defs.list(DocumentKind::Workflow, "", None).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(trigger = %name, error = %e, "listing workflows failed");
            return;
        }
    };
    let templates = match assay_service::definitions::templates(&state.store).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(trigger = %name, error = %e, "reading templates failed");
            return;
        }
    };
    let mut started = 0;
    for raw in workflows.iter().filter(|w| picked(t, w)) {
        let wf_name = raw
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let workflow = match assay_service::definitions::workflow(&state.store, &wf_name).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(trigger = %name, workflow = %wf_name, error = %e, "the workflow does not load");
                continue;
            }
        };
        let mut run = RunRequest::new(workflow, templates.clone());
        run.config = config
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut tags: BTreeMap<String, String> = trigger_tags.iter().cloned().collect();
        tags.insert(TRIGGER_TAG.to_string(), name.clone());
        run.tags = tags;
        run.target = target.clone();
        run.running_context = RunningContext {
            kind: ContextType::Trigger,
            actor: Some(format!("testtrigger {name}")),
            ci: None,
            execution_id: None,
        };
        match state.service.submit(run, None).await {
            Ok(summary) => {
                started += 1;
                tracing::info!(trigger = %name, workflow = %wf_name, execution = %summary.name,
                    event = fired.event.event, object = %fired.event.name, "TestTrigger queued a run");
            }
            Err(RunError::Store(e)) => {
                tracing::warn!(trigger = %name, workflow = %wf_name, error = %e, "queueing failed")
            }
            Err(e) => {
                tracing::warn!(trigger = %name, workflow = %wf_name, error = %e, "the run was refused")
            }
        }
    }
    if started == 0 {
        tracing::warn!(trigger = %name, "the TestTrigger fired but its testSelector picks no stored workflow");
    }
}
