//! Runner agents (`assay agent`) under `/v1/agents`: plain HTTP + JSON, runner tokens.
//!
//! An agent connects out and long-polls `POST /v1/agents/{name}/claim`. A claim registers the
//! agent (its labels, runtime, host) and hands it the oldest queued execution whose execution
//! target it matches (with `--agents-only`, untargeted ones too): the execution's lease becomes
//! the agent's (`agent/NAME`, its session as token), the run is prepared here exactly as the
//! embedded runner prepares one (`assay_runner::prepare_claimed`), and the agent gets the plan
//! ([`AgentWork`]). What it sends back — events in order, artifact files — is recorded by the
//! runner's own recorder ([`assay_runner::remote::RemoteRun`]). Its heartbeat refreshes the
//! leases of its executions and tells it which to abort; when it stops heartbeating, the
//! periodic sweep ([`spawn_sweeper`], `Store::recover_abandoned`) marks its runs `aborted` once
//! the lease times out. Writes are accepted only from the session that holds an execution's
//! lease: an agent cannot touch another's executions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assay_api::ErrorBody;
use assay_api::agents::{
    Agent, AgentAbort, AgentAck, AgentChild, AgentEvents, AgentExecute, AgentHeartbeat,
    AgentHeartbeatReply, AgentHello, AgentWork, ExecutionTarget,
};
use assay_runner::remote::RemoteRun;
use assay_service::ServiceError;
use assay_store::{AgentInfo, LeaseOwner, Registration, agent_owner};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The longest a claim waits for work before answering 204 (under the request timeout).
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(20);

/// How often the sweep looks for executions whose owner (an agent, a process) is gone.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// The header that carries the agent's session on artifact uploads (JSON bodies carry it in
/// the body).
pub const SESSION_HEADER: &str = "x-assay-agent-session";

/// What the server keeps about agents in memory: the recordings of the runs they perform (a
/// server restart loses them; the agent is then told its runs are gone) and a signal for
/// waiting claims.
#[derive(Clone, Default)]
pub struct Agents {
    runs: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<RemoteRun>>>>>,
    /// What the `execute` steps of each handed-out run may start, and what they started.
    parents: Arc<Mutex<HashMap<String, Parent>>>,
    work: Arc<Notify>,
    agents_only: bool,
}

/// A run handed to an agent, as the parent of the executions its `execute` steps start.
struct Parent {
    /// Its execution target (children inherit it unless their workflow has its own).
    target: Option<ExecutionTarget>,
    /// Its plan's `execute` steps: the only workflows (and config) it may start.
    allowed: Vec<assay_spec::plan::PlanExecuteWorkflow>,
    /// How deep it is itself (1: started by a person, a schedule, a hook).
    depth: usize,
    /// The children queued so far, by (step, workflow, copy).
    children: HashMap<(String, String, u64), String>,
}

/// The most children one execution's `execute` steps may queue through an agent.
pub const MAX_CHILDREN: usize = 1000;

impl Agents {
    pub fn new(agents_only: bool) -> Self {
        Agents {
            agents_only,
            ..Agents::default()
        }
    }

    /// Whether untargeted runs go to agents too (`--agents-only`).
    pub fn agents_only(&self) -> bool {
        self.agents_only
    }

    /// Wake the waiting claims: work was queued.
    pub fn work_queued(&self) {
        self.work.notify_waiters();
    }

    fn run(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<RemoteRun>>> {
        self.runs.lock().expect("not poisoned").get(id).cloned()
    }

    /// Drop the recording of a run; the ids of the children it started.
    fn forget(&self, id: &str) -> Vec<String> {
        self.runs.lock().expect("not poisoned").remove(id);
        self.parents
            .lock()
            .expect("not poisoned")
            .remove(id)
            .map(|p| p.children.into_values().collect())
            .unwrap_or_default()
    }
}

/// Until the queue stops, mark abandoned executions (an agent that stopped heartbeating, a
/// process that died) every [`SWEEP_EVERY`], and drop their recordings.
pub fn spawn_sweeper(state: AppState) {
    tokio::spawn(async move {
        let stopped = state.queue.stopped();
        loop {
            tokio::select! {
                _ = stopped.cancelled() => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            match state.store.recover_abandoned().await {
                Ok(recovered) => {
                    for r in recovered {
                        tracing::warn!(execution = %r.name, reason = %r.reason, "recovered an abandoned execution");
                        let children = state.agents.forget(&r.id);
                        abort_children(&state, &r.id, children).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not look for abandoned executions"),
            }
        }
    });
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "`{name}` is not an agent name: use 1 to 63 letters, digits, `-`, `_` or `.`"
        )))
    }
}

/// A JSON body of the agent protocol; 400 saying what is wrong otherwise.
fn parse<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not {what}: {e}")))
}

fn conflict(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, detail)
}

/// The agents, with their labels, when each was last seen and what each runs now.
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    responses((status = 200, body = Vec<Agent>),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_agents(State(state): State<AppState>) -> ApiResult<Json<Vec<Agent>>> {
    Ok(Json(agents(&state).await?))
}

/// The agents as `/v1/agents` and the dashboard's agents page show them.
pub(crate) async fn agents(state: &AppState) -> Result<Vec<Agent>, ServiceError> {
    assay_service::Service::new(state.store.clone())
        .agents()
        .await
}

/// Register (or refresh) the agent and wait for an execution it may run: 200 with the work,
/// 204 when none came within the wait.
#[utoipa::path(post, path = "/v1/agents/{name}/claim", tag = "agents",
    params(("name" = String, Path, description = "the agent's name")),
    request_body = AgentHello,
    responses((status = 200, description = "an execution to run", body = AgentWork),
              (status = 204, description = "no work within the wait"),
              (status = 400, body = ErrorBody), (status = 409, description = "another live agent process uses this name", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn claim(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    check_name(&name)?;
    let hello: AgentHello = parse(&body, "an agent's hello")?;
    if hello.session.trim().is_empty() {
        return Err(ApiError::bad_request("the claim has no `session`"));
    }
    let info = AgentInfo {
        session: hello.session.clone(),
        labels: hello.labels.clone(),
        runtime: hello.runtime.clone(),
        host: hello.host.clone(),
        version: hello.version.clone(),
        pid: hello.pid,
    };
    if let Registration::Taken { last_seen_at } = state.store.register_agent(&name, &info).await? {
        let ago = (assay_store::now_ms() - last_seen_at).max(0) / 1000;
        return Err(conflict(format!(
            "agent name `{name}` is used by another agent process (seen {ago}s ago): give each agent its own --name"
        )));
    }
    let wait = Duration::from_millis(hello.wait_ms.unwrap_or(0)).min(MAX_CLAIM_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before looking, so a run queued now wakes us.
        let notified = state.agents.work.notified();
        if let Some(work) = try_claim(&state, &name, &info).await? {
            return Ok(Json(work).into_response());
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = notified => {}
            // Runs queued by another server on the same database send no signal here.
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
        let _ = state.store.touch_agent(&name, &info.session).await;
    }
    let _ = state.store.touch_agent(&name, &info.session).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Take the oldest queued execution the agent may run, prepare it and keep its recording.
async fn try_claim(state: &AppState, name: &str, info: &AgentInfo) -> ApiResult<Option<AgentWork>> {
    let me = LeaseOwner::current();
    let owner = agent_owner(name, &info.session, info.pid);
    let candidates = state
        .store
        .claimable(&me, !state.agents.agents_only())
        .await?;
    for candidate in candidates {
        let target: Option<ExecutionTarget> = match &candidate.target {
            Some(text) => match serde_json::from_str(text) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(id = %candidate.id, error = %e, "unreadable execution target");
                    continue;
                }
            },
            None => None,
        };
        if target
            .as_ref()
            .is_some_and(|t| !t.matches(name, &info.labels))
        {
            continue;
        }
        if !state
            .store
            .claim_for_agent(&candidate.id, &owner, &me)
            .await?
        {
            continue;
        }
        let id = candidate.id;
        let request = match state.service.queued_request(&id).await {
            Ok(r) => r,
            Err(e) => {
                fail(state, &id, e.to_string()).await;
                continue;
            }
        };
        match assay_runner::prepare_claimed(&state.store, &id, request).await {
            Ok(Some(prepared)) => {
                let mut allowed = Vec::new();
                executes(&prepared.plan().root, &mut allowed);
                let depth = depth_of(state, prepared.execution()).await;
                state.agents.parents.lock().expect("not poisoned").insert(
                    id.clone(),
                    Parent {
                        target: target.clone(),
                        allowed,
                        depth,
                        children: HashMap::new(),
                    },
                );
                let (work, run) = prepared.into_remote().map_err(ApiError::internal)?;
                state
                    .agents
                    .runs
                    .lock()
                    .expect("not poisoned")
                    .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(run)));
                tracing::info!(execution = %work.name, agent = %name, "handed to an agent");
                return Ok(Some(work));
            }
            // Aborted while it waited: recorded so already.
            Ok(None) => continue,
            Err(e) => {
                fail(state, &id, format!("failed to prepare the run: {e}")).await;
                continue;
            }
        }
    }
    Ok(None)
}

async fn fail(state: &AppState, id: &str, message: String) {
    if let Ok(s) = state
        .store
        .find_execution(&assay_store::ExecutionRef::Id(id.to_string()))
        .await
        && !s.status.is_terminal()
    {
        let _ = state
            .store
            .finish_execution(
                id,
                assay_store::Finish {
                    status: assay_store::ExecutionStatus::Failed,
                    error_message: Some(message),
                    at: assay_store::now_ms(),
                },
            )
            .await;
    }
}

/// The agent is alive: refresh the leases of the executions it runs; answer which to abort
/// and which it has lost.
#[utoipa::path(post, path = "/v1/agents/{name}/heartbeat", tag = "agents",
    params(("name" = String, Path)),
    request_body = AgentHeartbeat,
    responses((status = 200, body = AgentHeartbeatReply), (status = 400, body = ErrorBody),
              (status = 409, description = "this session does not hold the name", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<AgentHeartbeatReply>> {
    check_name(&name)?;
    let beat: AgentHeartbeat = parse(&body, "a heartbeat")?;
    if !state.store.touch_agent(&name, &beat.session).await? {
        return Err(conflict(format!(
            "this agent session does not hold the name `{name}`: claim again to register"
        )));
    }
    let owner = agent_owner(&name, &beat.session, 0);
    let mut reply = AgentHeartbeatReply::default();
    for id in beat.running {
        if !state.store.heartbeat_as(&id, &owner).await? {
            state.agents.forget(&id);
            reply.lost.push(id);
            continue;
        }
        if let Some(reason) = state.store.abort_requested(&id).await? {
            reply.abort.push(AgentAbort { id, reason });
        }
    }
    Ok(Json(reply))
}

/// The run's recording, when `session` of agent `name` holds the execution's lease.
async fn owned_run(
    state: &AppState,
    name: &str,
    id: &str,
    session: &str,
) -> ApiResult<Arc<tokio::sync::Mutex<RemoteRun>>> {
    check_name(name)?;
    let owner = agent_owner(name, session, 0);
    if !state.store.holds_lease(id, &owner).await? {
        return Err(conflict(format!(
            "execution `{id}` is not run by this agent session (it ended, was declared abandoned, or is another agent's)"
        )));
    }
    state.agents.run(id).ok_or_else(|| {
        conflict(format!(
            "this server keeps no recording of execution `{id}` (it restarted since the run was handed out)"
        ))
    })
}

/// Events of a run, in order (the agent sends the next batch after this answer).
#[utoipa::path(post, path = "/v1/agents/{name}/executions/{id}/events", tag = "agents",
    params(("name" = String, Path), ("id" = String, Path)),
    request_body = AgentEvents,
    responses((status = 200, body = AgentAck), (status = 400, body = ErrorBody),
              (status = 409, description = "the execution is not this session's", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<AgentAck>> {
    let batch: AgentEvents = parse(&body, "a batch of events")?;
    let run = owned_run(&state, &name, &id, &batch.session).await?;
    let mut run = run.lock().await;
    let recorded = batch.events.len() as u64;
    let aborted = batch.events.iter().any(|e| {
        matches!(e, assay_api::agents::AgentEvent::ExecutionFinished { status, .. } if !matches!(status, assay_store::ExecutionStatus::Passed | assay_store::ExecutionStatus::Failed))
    });
    let problems = run.record(batch.events).await.map_err(ApiError::internal)?;
    if run.is_finished() {
        drop(run);
        let children = state.agents.forget(&id);
        // An aborted run aborts what its `execute` steps started (as a run of the server's own
        // does); `async` children of a run that ended otherwise go on.
        if aborted {
            abort_children(&state, &id, children).await;
        }
    }
    Ok(Json(AgentAck { recorded, problems }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ArtifactQuery {
    /// The ref of the step whose `artifacts` matched the file.
    step: String,
    /// Its path relative to the artifacts' working directory, `/`-separated.
    path: String,
}

/// An artifact file of a run (the raw bytes), sent before the events that follow it.
#[utoipa::path(put, path = "/v1/agents/{name}/executions/{id}/artifacts", tag = "agents",
    params(("name" = String, Path), ("id" = String, Path), ArtifactQuery,
           ("x-assay-agent-session" = String, Header, description = "the agent's session")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = AgentAck), (status = 400, body = ErrorBody),
              (status = 409, description = "the execution is not this session's", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn artifact(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Query(query): Query<ArtifactQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AgentAck>> {
    let session = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if session.is_empty() {
        return Err(ApiError::bad_request(format!(
            "an artifact upload needs the agent's session in the `{SESSION_HEADER}` header"
        )));
    }
    let run = owned_run(&state, &name, &id, &session).await?;
    // Received into a file of this execution's own upload folder, recorded, then removed.
    let dir = state
        .store
        .config()
        .data_dir
        .join("agent-uploads")
        .join(&id);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let file_path = dir.join(uuid::Uuid::new_v4().simple().to_string());
    let received = async {
        let mut file = tokio::fs::File::create(&file_path).await?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok::<_, std::io::Error>(())
    }
    .await;
    let result = match received {
        Ok(()) => {
            let mut run = run.lock().await;
            run.artifact(&query.step, &query.path, &file_path)
                .await
                .map_err(ApiError::internal)
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "the artifact upload broke off: {e}"
        ))),
    };
    let _ = tokio::fs::remove_file(&file_path).await;
    let _ = tokio::fs::remove_dir(&dir).await;
    let problems = result?;
    Ok(Json(AgentAck {
        recorded: 1,
        problems,
    }))
}

/// Every workflow an `execute` step of `step` (and below, parallel workers included) names.
fn executes(
    step: &assay_spec::plan::PlanStep,
    out: &mut Vec<assay_spec::plan::PlanExecuteWorkflow>,
) {
    if let Some(execute) = &step.execute {
        out.extend(execute.workflows.iter().cloned());
    }
    if let Some(parallel) = &step.parallel {
        for worker in parallel.workers.iter().flatten() {
            executes(&worker.root, out);
        }
        if let Some(worker) = &parallel.worker {
            executes(&worker.root, out);
        }
    }
    for child in &step.steps {
        executes(child, out);
    }
}

/// How deep `execution` is in a chain of `execute` steps (1: nobody's child).
async fn depth_of(state: &AppState, execution: &assay_store::ExecutionSummary) -> usize {
    let mut depth = 1;
    let mut parent = execution.parent.clone();
    while let Some(p) = parent {
        depth += 1;
        if depth > assay_runner::MAX_EXECUTE_DEPTH {
            break;
        }
        parent = state
            .store
            .find_execution(&assay_store::ExecutionRef::Id(p.id))
            .await
            .ok()
            .and_then(|e| e.parent);
    }
    depth
}

/// Abort the children of `parent` that have not ended.
async fn abort_children(state: &AppState, parent: &str, children: Vec<String>) {
    for child in children {
        let reason = format!("its parent execution `{parent}` ended");
        if let Err(e) = assay_runner::abort(&state.store, &child, &reason).await {
            tracing::warn!(%child, error = %e, "could not abort a child of an ended run");
        }
    }
}

/// Whether `request` is one of the `allowed` copies: a workflow an `execute` step names, with
/// config keys that step gives and, where the step wrote a literal value, that value.
fn permitted(allowed: &[assay_spec::plan::PlanExecuteWorkflow], request: &AgentExecute) -> bool {
    allowed.iter().any(|w| {
        w.name == request.workflow
            && request
                .config
                .iter()
                .all(|(key, value)| match w.config.get(key) {
                    None => false,
                    Some(serde_json::Value::String(text)) if text.contains("{{") => true,
                    Some(written) => written == value,
                })
    })
}

/// Queue (once) the child an `execute` step of the agent's run asks for, and say how it is
/// doing; with `waitMs`, wait up to that long for it to end first.
#[utoipa::path(post, path = "/v1/agents/{name}/executions/{id}/execute", tag = "agents",
    params(("name" = String, Path), ("id" = String, Path)),
    request_body = AgentExecute,
    responses((status = 200, body = AgentChild), (status = 400, body = ErrorBody),
              (status = 403, description = "the run's plan does not execute this workflow with this config", body = ErrorBody),
              (status = 409, description = "the execution is not this session's", body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn execute(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<AgentChild>> {
    let request: AgentExecute = parse(&body, "an execute request")?;
    owned_run(&state, &name, &id, &request.session).await?;
    let key = (
        request.step.clone(),
        request.workflow.clone(),
        request.index,
    );
    let known = {
        let parents = state.agents.parents.lock().expect("not poisoned");
        let parent = parents.get(&id).ok_or_else(|| {
            conflict(format!(
                "this server keeps no record of execution `{id}` (it restarted since the run was handed out)"
            ))
        })?;
        match parent.children.get(&key) {
            Some(child) => Ok(child.clone()),
            None => Err((
                parent.target.clone(),
                permitted(&parent.allowed, &request),
                parent.depth,
                parent.children.len(),
            )),
        }
    };
    let child = match known {
        Ok(child) => child,
        Err((target, allowed, depth, count)) => {
            if !allowed {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "execution `{id}` has no `execute` step that runs workflow `{}` with these config values: an agent may start only what its run's plan names",
                        request.workflow
                    ),
                ));
            }
            if depth >= assay_runner::MAX_EXECUTE_DEPTH {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "`{}` would be executed {} levels deep, more than the limit of {}: does a workflow execute itself without a condition that ends it?",
                        request.workflow,
                        depth + 1,
                        assay_runner::MAX_EXECUTE_DEPTH
                    ),
                ));
            }
            if count >= MAX_CHILDREN {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "execution `{id}` has started {MAX_CHILDREN} executions, the most one run may start"
                    ),
                ));
            }
            queue_child(&state, &id, &request, target).await?
        }
    };
    let wait = Duration::from_millis(request.wait_ms.unwrap_or(0)).min(MAX_CLAIM_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let summary = state
            .store
            .find_execution(&assay_store::ExecutionRef::Id(child.clone()))
            .await?;
        if summary.status.is_terminal() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(AgentChild {
                id: summary.id,
                name: summary.name,
                status: summary.status,
                error: summary.error_message,
            }));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Queue the child `request` names, as the parent's `execute` step would on the server.
async fn queue_child(
    state: &AppState,
    parent_id: &str,
    request: &AgentExecute,
    parent_target: Option<ExecutionTarget>,
) -> ApiResult<String> {
    let name = request.workflow.as_str();
    let parent = state
        .store
        .find_execution(&assay_store::ExecutionRef::Id(parent_id.to_string()))
        .await?;
    let workflow = assay_runner::stored::workflow(&state.store, name)
        .await
        .map_err(|e| {
            if e.is_not_found() {
                ApiError::bad_request(format!(
                    "there is no stored workflow named `{name}` (store it with `assay apply`)"
                ))
            } else {
                ApiError::internal(format!("failed to load the workflow `{name}`: {e}"))
            }
        })?;
    let templates = assay_runner::stored::templates(&state.store)
        .await
        .map_err(ApiError::internal)?;
    let mut run = assay_runner::RunRequest::new(workflow, templates);
    run.config = request
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    run.running_context = assay_store::RunningContext {
        kind: assay_store::ContextType::Api,
        actor: Some(parent.name.clone()),
        ci: None,
        execution_id: Some(parent.id.clone()),
    };
    run.parent = Some(assay_store::ParentExecution {
        id: parent.id.clone(),
        name: parent.name.clone(),
        step_ref: request.step.clone(),
    });
    // Where the parent runs, unless the child's workflow says where it runs; a child runs once
    // (`replicate` applies to runs people and schedules ask for).
    let own =
        assay_runner::effective_target(&run).map_err(|e| ApiError::bad_request(e.to_string()))?;
    run.target = match own {
        Some(mut t) => {
            t.replicate.clear();
            Some(t)
        }
        None => parent_target.map(|mut t| {
            t.replicate.clear();
            t
        }),
    };
    let summary = state.service.submit(run, None).await.map_err(|e| match e {
        assay_runner::RunError::Invalid(errors) => {
            ApiError::bad_request(assay_runner::does_not_compile(name, &errors))
        }
        e => ApiError::internal(e),
    })?;
    let key = (
        request.step.clone(),
        request.workflow.clone(),
        request.index,
    );
    let kept = match state
        .agents
        .parents
        .lock()
        .expect("not poisoned")
        .get_mut(parent_id)
    {
        Some(p) => {
            p.children.insert(key, summary.id.clone());
            true
        }
        None => false,
    };
    if !kept {
        // The parent ended meanwhile: its child must not outlive it.
        abort_children(state, parent_id, vec![summary.id.clone()]).await;
    }
    tracing::info!(execution = %summary.name, parent = %parent.name, "queued for an agent's execute step");
    Ok(summary.id)
}
