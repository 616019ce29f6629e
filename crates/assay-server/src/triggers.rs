//! What every kind of TestTrigger shares once it fires: the stored triggers, read again when
//! the store signals a change of them ([`spawn_stored`]), and the runs a fired trigger queues
//! ([`run`]: its `testSelector`, `actionParameters`, `concurrencyPolicy`). The Kubernetes
//! watcher (`kubernetes.rs`) and the git informer (`git_triggers.rs`) both end here.

use std::collections::BTreeMap;
use std::time::Duration;

use assay_runner::{RunError, RunRequest};
use assay_service::definitions::Definitions;
use assay_service::{DocumentKind, ServiceError};
use assay_spec::triggers::TestTrigger;
use assay_store::ExecutionStatus;
use assay_store::{ContextType, RunningContext};
use serde_json::Value;
use tokio::sync::watch;

use crate::AppState;

/// The stored TestTriggers, as a watch channel: read again when the store signals a change of
/// them ([`assay_store::Store::watch_resources`]: written through this process, or through any
/// process on the same PostgreSQL) and, for writers that send no signal (another process on a
/// SQLite file), every `reread`.
pub fn spawn_stored(state: &AppState, reread: Duration) -> watch::Receiver<Vec<TestTrigger>> {
    let (triggers_tx, triggers_rx) = watch::channel(Vec::<TestTrigger>::new());
    let defs = Definitions::new(state.store.clone());
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
    triggers_rx
}

pub async fn stored_triggers(defs: &Definitions) -> Result<Vec<TestTrigger>, ServiceError> {
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

/// What a fired trigger's `jsonpath=` and `{{ }}` values resolve against
/// ([`assay_spec::trigger_values`]).
#[derive(Debug, Clone, Default)]
pub struct EventData {
    /// The object that changed (`actionParameters.config` and `tags`); `null` for git triggers.
    pub object: Value,
    /// Testkube's shape of the watcher event (`actionParameters.target`).
    pub event: Value,
}

/// Queue what a fired trigger runs. `what` says what fired it (for the log); `event_config`
/// are values of the event (Testkube's `TESTKUBE_GIT_*`, ...) given to each workflow that
/// declares a config parameter of that name, under the trigger's own `actionParameters.config`
/// (whose values resolve against `data`).
pub async fn run(
    state: &AppState,
    defs: &Definitions,
    t: &TestTrigger,
    what: &str,
    event_config: &BTreeMap<String, String>,
    data: &EventData,
) -> usize {
    let name = t.metadata.name.clone();
    let params = t.spec.action_parameters.clone().unwrap_or_default();
    // Testkube's `actionParameters.target` is an execution target: the runs wait for an agent
    // that matches, as a run request's `target` does. Read first: a trigger that cannot run
    // replaces nothing.
    let target = match params.target.as_ref().map(|raw| {
        let mut raw = raw.clone();
        assay_spec::trigger_values::resolve_strings(&mut raw, &data.event)
            .map_err(|e| e.to_string())?;
        serde_json::from_value::<assay_api::agents::ExecutionTarget>(raw).map_err(|e| e.to_string())
    }) {
        None => None,
        Some(Ok(target)) => Some(target),
        Some(Err(e)) => {
            tracing::warn!(trigger = %name, error = %e,
                "the TestTrigger's actionParameters.target does not resolve to an execution target; not running");
            return 0;
        }
    };
    // `jsonpath=` and `{{ }}` values come from the event's object. One that does not resolve
    // is left out, as Testkube does (the workflow's default applies), and the log says so.
    let resolved = |field: &str, values: &indexmap::IndexMap<String, String>| {
        values
            .iter()
            .filter_map(|(k, v)| {
                match assay_spec::trigger_values::resolve(v, &data.object) {
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
            return 0;
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
            return 0;
        }
    };
    let templates = match assay_service::definitions::templates(&state.store).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(trigger = %name, error = %e, "reading templates failed");
            return 0;
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
        let declared = event_config
            .iter()
            .filter(|(k, _)| workflow.spec.config.contains_key(*k))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Vec<_>>();
        let mut run = RunRequest::new(workflow, templates.clone());
        run.config = declared
            .into_iter()
            .chain(
                config
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
            )
            .collect();
        let mut tags: BTreeMap<String, String> = trigger_tags.iter().cloned().collect();
        tags.insert(TRIGGER_TAG.to_string(), name.clone());
        run.tags = tags;
        // A git trigger's run is of a commit: recorded like `assay run` records the checkout's.
        if let Some(commit) = event_config.get(crate::git_triggers::GIT_COMMIT) {
            use assay_runner::provenance::{TAG_BRANCH, TAG_COMMIT};
            run.inferred_tags
                .insert(TAG_COMMIT.to_string(), commit.clone());
            if let Some(branch) = event_config.get(crate::git_triggers::GIT_BRANCH) {
                run.inferred_tags
                    .insert(TAG_BRANCH.to_string(), branch.clone());
            }
        }
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
                    event = %what, "TestTrigger queued a run");
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
    started
}
