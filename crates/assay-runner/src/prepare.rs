//! From a request to a [`Prepared`] execution: compile to check it (nothing is recorded for an
//! invalid one), create or take the execution, compile again with its identity, and gather what
//! the engine needs (work folder, secrets, hidden paths, runtime, launcher, quarantines).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use assay_api::agents::ExecutionTarget;
use assay_engine::RunOptions;
use assay_spec::resolve::PathError;
use assay_spec::status::ExecutionStatus;
use assay_spec::{CompileRequest, Strictness};
use assay_store::{
    ConfigValue, ExecutionRef, ExecutionSummary, LeaseOwner, NewExecution, Store, Taken,
};
use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::{
    Prepared, RunError, RunRequest, default_runtime, definition_yaml, end_now, launcher, ms,
    step_names,
};

/// Compile, then create the execution. Compile errors are returned before anything is stored.
pub async fn prepare(store: &Store, req: RunRequest) -> Result<Prepared, RunError> {
    let (new, creq_config) = record_for(&req, ExecutionStatus::Running)?;
    let execution = store.create_execution(new).await?;
    prepare_created(store, req, creq_config, execution).await
}

/// Compile to check the request, and give the record of an execution that waits in a queue
/// (`queued`, no owner). The caller stores it with [`Store::create_execution`] and later runs
/// it with [`prepare_queued`].
pub fn queued_execution(req: &RunRequest) -> Result<NewExecution, RunError> {
    let mut new = record_for(req, ExecutionStatus::Queued)?.0;
    if req.held {
        new.owner = Some(LeaseOwner::current());
    }
    Ok(new)
}

/// The config values of `req` that are `sensitive` parameters of its workflow: the values
/// that are never stored, so a queued run must keep them in memory until it starts.
pub fn sensitive_config(req: &RunRequest) -> IndexMap<String, Value> {
    req.config
        .iter()
        .filter(|(k, _)| {
            req.workflow
                .spec
                .config
                .get(k.as_str())
                .is_some_and(|p| p.sensitive)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Take a queued execution (see [`queued_execution`]): claim it for this process and mark it
/// running in one write ([`Store::take_queued`]), then compile it once, with its identity.
/// `req` must be the request it was queued with (its workflow is the execution's definition;
/// it was checked when it was queued, so it is not compiled a second time to check it). `None`
/// when someone else holds it or it has ended (aborted while it waited).
pub async fn prepare_queued(
    store: &Store,
    id: &str,
    req: RunRequest,
) -> Result<Option<Prepared>, RunError> {
    let me = LeaseOwner::current();
    let execution = match store
        .take_queued(id, &me, req.held, ms(SystemTime::now()))
        .await?
    {
        Taken::Started(execution) => *execution,
        Taken::NotAvailable => return Ok(None),
        Taken::AbortRequested(reason) => {
            // Asked to abort by a process that could not take it (it was held here).
            end_now(store, id, ExecutionStatus::Aborted, reason).await?;
            return Ok(None);
        }
    };
    // A template that changed since it was queued (an adopted run is rebuilt with the stored
    // templates) fails the compile below, which records the run failed and says why.
    let config = compile_config(&req);
    prepare_created(store, req, config, execution)
        .await
        .map(Some)
}

/// Like [`prepare_queued`], once the caller holds the lease of the queued execution `id`
/// (for an agent, the server claimed it in the agent's name): honour an abort asked meanwhile,
/// mark it running and compile with its identity.
pub async fn prepare_claimed(
    store: &Store,
    id: &str,
    req: RunRequest,
) -> Result<Option<Prepared>, RunError> {
    if let Some(reason) = store.abort_requested(id).await? {
        // Asked to abort by a process that could not take it (it was held here).
        end_now(store, id, ExecutionStatus::Aborted, reason).await?;
        return Ok(None);
    }
    store.start_execution(id, ms(SystemTime::now())).await?;
    let config = match record_for(&req, ExecutionStatus::Queued) {
        Ok((_, config)) => config,
        Err(e) => {
            // It compiled when it was queued; a template changed meanwhile. Say so, not hang.
            let message = match &e {
                RunError::Invalid(errors) => format!("the workflow no longer compiles: {errors:?}"),
                other => other.to_string(),
            };
            end_now(store, id, ExecutionStatus::Failed, message).await?;
            return Err(e);
        }
    };
    let execution = store
        .find_execution(&ExecutionRef::Id(id.to_string()))
        .await?;
    prepare_created(store, req, config, execution)
        .await
        .map(Some)
}

/// The config values `req` compiles with: its own, and the secrets that give a sensitive
/// parameter of the same name its value.
fn compile_config(req: &RunRequest) -> IndexMap<String, Value> {
    let mut config = req.config.clone();
    for (k, v) in &req.secrets {
        if req.workflow.spec.config.get(k).is_some_and(|p| p.sensitive) && !config.contains_key(k) {
            config.insert(k.clone(), Value::String(v.clone()));
        }
    }
    config
}

/// The record of a new execution for `req` and the config values to compile with.
fn record_for(
    req: &RunRequest,
    status: ExecutionStatus,
) -> Result<(NewExecution, IndexMap<String, Value>), RunError> {
    let wf = &req.workflow;
    let config = compile_config(req);
    let mut creq = CompileRequest::new(wf, &req.templates);
    creq.config = config.clone();
    creq.strictness = Strictness::Require;
    let first = assay_spec::compile(&creq).map_err(RunError::Invalid)?;

    let definition = definition_yaml(wf)?;
    let mut tags = req.tags.clone();
    for (k, v) in &first.plan.tags {
        if !v.contains("{{") {
            tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    for (k, v) in &req.inferred_tags {
        tags.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let config_record: BTreeMap<String, ConfigValue> = first
        .plan
        .config
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                ConfigValue {
                    // Sensitive values have no value in a plan: nothing to leak here.
                    value: v.value.as_ref().map(assay_expr::stringify),
                    sensitive: v.sensitive,
                    ..ConfigValue::default()
                },
            )
        })
        .collect();
    let running = status == ExecutionStatus::Running;
    let target = effective_target(req)?
        .map(|t| serde_json::to_string(&t).map_err(|e| RunError::Internal(e.to_string())))
        .transpose()?;
    Ok((
        NewExecution {
            workflow: wf.metadata.name.clone(),
            definition,
            resolved: None,
            config: config_record,
            tags,
            running_context: req.running_context.clone(),
            status: Some(status),
            owner: running.then(LeaseOwner::current),
            scheduled_at: None,
            parent: req.parent.clone(),
            target,
        },
        config,
    ))
}

/// The target of a run: the request's, else the workflow's `spec.execution.target`; `None`
/// when it asks nothing (any runner).
pub fn effective_target(req: &RunRequest) -> Result<Option<ExecutionTarget>, RunError> {
    // `replicate` keys are label keys: an empty one could never be a label.
    let check_replicate = |t: &ExecutionTarget, path: &str| {
        if t.replicate.iter().all(|k| !k.trim().is_empty()) {
            Ok(())
        } else {
            Err(RunError::Invalid(vec![PathError {
                path: path.into(),
                message: "has an empty label key".into(),
                hint: Some("write `replicate: [LABEL, ...]`, e.g. `replicate: [name]`".into()),
            }]))
        }
    };
    if let Some(t) = &req.target {
        check_replicate(t, "target.replicate")?;
        return Ok((!t.is_empty()).then(|| t.clone()));
    }
    let Some(value) = req
        .workflow
        .spec
        .execution
        .as_ref()
        .and_then(|e| e.target.as_ref())
    else {
        return Ok(None);
    };
    let target: ExecutionTarget = serde_json::from_value(value.clone()).map_err(|e| {
        RunError::Invalid(vec![PathError {
            path: "spec.execution.target".into(),
            message: format!("is not an execution target: {e}"),
            hint: Some(
                "write `target: {match: {LABEL: [VALUE, ...]}, not: {...}, replicate: [LABEL]}`"
                    .into(),
            ),
        }])
    })?;
    check_replicate(&target, "spec.execution.target.replicate")?;
    Ok((!target.is_empty()).then_some(target))
}

/// Compile again with the identity of the created execution and set up the run.
async fn prepare_created(
    store: &Store,
    req: RunRequest,
    config: IndexMap<String, Value>,
    execution: ExecutionSummary,
) -> Result<Prepared, RunError> {
    let wf = &req.workflow;
    let tags = execution.tags.clone();
    let mut creq = CompileRequest::new(wf, &req.templates);
    creq.config = config;
    creq.strictness = Strictness::Require;
    // The real plan knows the execution (`execution.id`, `execution.number`, ...).
    let context = json!({
        "id": execution.id,
        "name": execution.name,
        "number": execution.number,
        "scheduledAt": assay_store::testkube::rfc3339(execution.scheduled_at),
        "tags": tags,
        "selectedTests": req.selected_tests,
    });
    creq.execution = Some(context.clone());
    if wf.balances_durations() {
        // `balance: durations`: shards spread by the durations of this workflow's last runs.
        creq.durations = store.shard_durations(&wf.metadata.name).await?;
    }
    // The execution is recorded already: what fails from here ends it as failed, with why.
    let fail = async |message: String| -> Result<Prepared, RunError> {
        end_now(
            store,
            &execution.id,
            ExecutionStatus::Failed,
            message.clone(),
        )
        .await?;
        Err(RunError::Internal(message))
    };
    let compiled = match assay_spec::compile(&creq) {
        Ok(c) => c,
        Err(e) => {
            return fail(format!(
                "the plan failed to compile with the execution's values: {e:?}"
            ))
            .await;
        }
    };
    let plan_json =
        serde_json::to_string(&compiled.plan).map_err(|e| RunError::Internal(e.to_string()))?;
    store.set_resolved(&execution.id, &plan_json).await?;

    let work_dir: PathBuf = match assay_engine::sandbox::host_work_root() {
        None => store.config().data_dir.join("work"),
        Some(Ok(root)) => root.clone(),
        Some(Err(e)) => return fail(e.to_string()).await,
    }
    .join(&execution.id);
    let mut opts = RunOptions::new(&work_dir);
    opts.secrets = compiled.secrets.into_iter().collect();
    opts.masked = req.secrets.values().cloned().collect();
    // Secrets and ConfigMaps the plan refers to (`valueFrom`, `envFrom`, ...): exactly those
    // are opened, and every value is masked like the others.
    let plan_value =
        serde_json::to_value(&compiled.plan).map_err(|e| RunError::Internal(e.to_string()))?;
    let names = assay_engine::refs::referenced_names(&plan_value);
    if !names.is_empty() {
        opts.named_secrets = store.named_secret_values(&names).await?;
    }
    let mut ctx = serde_json::Map::new();
    ctx.insert("execution".into(), context);
    ctx.insert(
        "workflow".into(),
        json!({"name": wf.metadata.name, "labels": wf.metadata.labels}),
    );
    opts.context = ctx;
    // Steps must not reach the server's secrets: its data folder (tokens, the SQLite file,
    // other executions' folders) is hidden from them, their own work folder excepted.
    opts.hidden = hidden_paths(store.config());
    let mut base_env = assay_engine::starting_env(&req.base_env);
    for (k, v) in &req.secrets {
        base_env.insert(k.clone(), v.clone());
    }
    opts.base_env = base_env;
    if let Some(runtime) = req.runtime.clone().or_else(default_runtime) {
        opts.runtime = runtime;
    }
    let mut chain = req.parents.clone();
    chain.push(wf.metadata.name.clone());
    opts.launcher = Some(Arc::new(launcher::StoreLauncher {
        store: store.clone(),
        parent_id: execution.id.clone(),
        parent_name: execution.name.clone(),
        chain,
        base_env: req.base_env.clone(),
        cancel: opts.cancel.clone(),
        runtime: opts.runtime.clone(),
    }));
    // Quarantined tests still run and report; a step failing only through them passes.
    let quarantines = store.active_quarantines(Some(&wf.metadata.name)).await?;
    opts.quarantined = quarantines.iter().map(|q| q.test.clone()).collect();
    let names = step_names(&compiled.plan);
    Ok(Prepared {
        store: store.clone(),
        execution,
        plan: compiled.plan,
        opts,
        names,
        secret_env: req.secrets.clone(),
        quarantines,
        auto_quarantine: wf
            .metadata
            .labels
            .get(assay_store::AUTO_QUARANTINE_LABEL)
            .is_some_and(|v| v == "true"),
    })
}

/// What steps must not see: the data folder, and a SQLite file or artifact folder kept
/// elsewhere.
fn hidden_paths(config: &assay_store::StoreConfig) -> Vec<PathBuf> {
    let mut paths = vec![config.data_dir.clone()];
    if let Some(db) = &config.database_url
        && let Some(rest) = db.strip_prefix("sqlite:")
    {
        let file = rest.trim_start_matches("//");
        let file = file.split('?').next().unwrap_or(file);
        if !file.is_empty() && !file.starts_with(':') {
            paths.push(PathBuf::from(file));
        }
    }
    if let Some(rest) = config
        .artifacts_url
        .as_deref()
        .and_then(|u| u.strip_prefix("file://"))
    {
        paths.push(PathBuf::from(rest));
    }
    paths
        .into_iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect()
}
