//! Executions: run a stored workflow (queued, then dispatched), list, get, abort, logs as text,
//! artifacts.

use std::collections::{BTreeMap, HashMap};

use assay_api::{
    AbortResponse, ErrorBody, ExecutionRequest, ExecutionsPage, ExecutionsTotals,
    TestWorkflowExecution,
};
use assay_runner::{RunError, RunRequest};
use assay_service::{HistoryQuery, Start};
use assay_store::{
    Artifact, ContextType, DefinitionKind, ExecutionFilter, ExecutionRef, ExecutionStatus,
    RunningContext,
};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Run a stored workflow: the execution is recorded `queued` and handed to the queue.
#[utoipa::path(post, path = "/v1/test-workflows/{name}/executions", tag = "executions",
    params(("name" = String, Path)),
    request_body(content = ExecutionRequest, description = "config values and tags (optional)"),
    responses((status = 200, description = "the queued execution", body = Object),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn run_workflow(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<TestWorkflowExecution>> {
    let request: ExecutionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ExecutionRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("the body is not an execution request: {e}"))
        })?
    };
    let summary = state
        .service
        .run_stored(
            &name,
            Start {
                config: request.config.into_iter().collect(),
                tags: request.tags,
                running_context: api_context(caller.name),
                scheduled_at: None,
                target: request.target,
            },
        )
        .await?;
    Ok(Json(TestWorkflowExecution::from(&summary)))
}

/// The running context of a caller of the API: `api`, the token's name as actor.
fn api_context(actor: String) -> RunningContext {
    RunningContext {
        kind: ContextType::Api,
        actor: Some(actor),
        ci: None,
        execution_id: None,
    }
}

/// MCP's `run_workflow` inside the server goes through [`assay_service::Service::submit`], so
/// agents' runs wait their turn in the queue like everyone's.
pub(crate) struct McpQueue(pub assay_service::Service);

impl assay_mcp::RunQueue for McpQueue {
    fn submit(
        &self,
        request: RunRequest,
    ) -> futures::future::BoxFuture<'static, Result<assay_store::ExecutionSummary, RunError>> {
        let service = self.0.clone();
        Box::pin(async move { service.submit(request, None).await })
    }
}

/// Run an execution again with the same config values and tags: the workflow as stored now,
/// or the definition the execution ran when the workflow was deleted since. Config values of
/// parameters the workflow no longer declares are dropped; sensitive values were never stored,
/// so a sensitive parameter without a default refuses the rerun (the CLI's rules).
#[utoipa::path(post, path = "/v1/test-workflow-executions/{id}/rerun", tag = "executions",
    params(("id" = String, Path)),
    responses((status = 200, description = "the new, queued execution", body = Object),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn rerun_execution(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<TestWorkflowExecution>> {
    let summary = state
        .service
        .rerun(&id, &[], api_context(caller.name))
        .await?;
    Ok(Json(TestWorkflowExecution::from(&summary)))
}

/// The executions of one workflow (Testkube's path; same filters and paging as
/// `/v1/test-workflow-executions`).
#[utoipa::path(get, path = "/v1/test-workflows/{name}/executions", tag = "executions",
    params(("name" = String, Path), ("status" = Option<String>, Query, nullable = false, pattern = r"^(queued|running|paused|passed|failed|aborted|canceled)?(,(queued|running|paused|passed|failed|aborted|canceled)?)*$", description = "statuses, comma-separated; any may match"),
           ("tag" = Option<String>, Query, nullable = false, pattern = r"^([^,]*=[^,]*)?(,([^,]*=[^,]*)?)*$", description = "`key=value`, comma-separated; all must match"), ("pageSize" = Option<u32>, Query, nullable = false, minimum = 1, maximum = 1000),
           ("before" = Option<String>, Query, nullable = false)),
    responses((status = 200, body = ExecutionsPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_workflow_executions(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    q.insert("workflow".into(), name);
    list_executions(State(state), Query(q)).await
}

/// List executions, newest first: filters `workflow`, `status` (comma-separated), `tag`
/// (`k=v`, comma-separated); paging with `pageSize` (default 100, at most 1000) and `before`.
#[utoipa::path(get, path = "/v1/test-workflow-executions", tag = "executions",
    params(("workflow" = Option<String>, Query, nullable = false), ("status" = Option<String>, Query, nullable = false, pattern = r"^(queued|running|paused|passed|failed|aborted|canceled)?(,(queued|running|paused|passed|failed|aborted|canceled)?)*$", description = "statuses, comma-separated; any may match"),
           ("tag" = Option<String>, Query, nullable = false, pattern = r"^([^,]*=[^,]*)?(,([^,]*=[^,]*)?)*$", description = "`key=value`, comma-separated; all must match"), ("pageSize" = Option<u32>, Query, nullable = false, minimum = 1, maximum = 1000),
           ("before" = Option<String>, Query, nullable = false, description = "`next` of the previous page")),
    responses((status = 200, body = ExecutionsPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_executions(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let query = HistoryQuery::parse(
        q.get("workflow").cloned(),
        q.get("status").map(String::as_str),
        q.get("tag").map(String::as_str),
        q.get("pageSize").map(String::as_str),
        q.get("before").cloned(),
    )?;
    let (page, totals, filtered) = state.service.execution_page_records(&query).await?;
    let mut entries = state.list_cache.entries(&page, assay_store::now_ms())?;
    let next = assay_service::history::cut_page(&mut entries, query.page_size, |e| e.id());
    // An `ExecutionsPage` as serde writes one (same fields, order and omissions: the API test
    // reads a page back and writes it again to the same text), with the entries' text as the
    // cache has it (no `TestWorkflowExecution` values in between).
    let write =
        |e: serde_json::Error| ApiError::internal(format_args!("could not write the page: {e}"));
    let mut json =
        Vec::with_capacity(512 + entries.iter().map(|e| e.json().len() + 1).sum::<usize>());
    json.extend_from_slice(br#"{"totals":"#);
    serde_json::to_writer(&mut json, &testkube_totals(&totals)).map_err(write)?;
    json.extend_from_slice(br#","filtered":"#);
    serde_json::to_writer(&mut json, &testkube_totals(&filtered)).map_err(write)?;
    json.extend_from_slice(br#","results":["#);
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(entry.json());
    }
    json.push(b']');
    if let Some(next) = &next {
        json.extend_from_slice(br#","next":"#);
        serde_json::to_writer(&mut json, next).map_err(write)?;
    }
    json.push(b'}');
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(json),
    )
        .into_response())
}

/// Counts by status in Testkube's buckets: aborted and canceled count as failed.
fn testkube_totals(counts: &assay_store::StatusCounts) -> ExecutionsTotals {
    ExecutionsTotals {
        results: counts.total(),
        passed: counts.get(ExecutionStatus::Passed),
        failed: counts.get(ExecutionStatus::Failed)
            + counts.get(ExecutionStatus::Aborted)
            + counts.get(ExecutionStatus::Canceled),
        queued: counts.get(ExecutionStatus::Queued),
        running: counts.get(ExecutionStatus::Running),
        paused: counts.get(ExecutionStatus::Paused),
    }
}

/// One execution with its step results, outputs, reports and artifacts (by id or name).
#[utoipa::path(get, path = "/v1/test-workflow-executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "id or `workflow-number`")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_execution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TestWorkflowExecution>> {
    let execution = state.store.get_execution(&ExecutionRef::parse(&id)).await?;
    Ok(Json(TestWorkflowExecution::from(&execution)))
}

/// Why an execution failed: the class (`regression`, `flaky`, `broken`, `infrastructure`,
/// `new-test`) with the rule that fired and its evidence, the failing step and the lines that
/// matter, the diff against the last passing execution of the workflow, and each failing test's
/// failure age, first bad commit and similar earlier failures. Deterministic and offline.
#[utoipa::path(get, path = "/v1/test-workflow-executions/{id}/analysis", tag = "executions",
    params(("id" = String, Path, description = "id or `workflow-number`")),
    responses((status = 200, body = assay_api::analysis::Analysis), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn execution_analysis(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<assay_api::analysis::Analysis>> {
    Ok(Json(state.service.analyze(&id).await?))
}

/// Abort: a queued execution is aborted at once and never runs; a running one is stopped by
/// its runner within about a second.
#[utoipa::path(post, path = "/v1/test-workflow-executions/{id}/abort", tag = "executions",
    params(("id" = String, Path)),
    responses((status = 200, body = AbortResponse), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn abort_execution(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<AbortResponse>> {
    let reason = format!("aborted through the API by `{}`", caller.name);
    let aborted = state.service.abort(&id, &reason).await?;
    let summary = aborted.execution;
    let id = summary.id.clone();
    let outcome = match aborted.outcome {
        assay_runner::AbortOutcome::Aborted => {
            state
                .metrics
                .finished(&summary.workflow, ExecutionStatus::Aborted, None);
            "aborted"
        }
        assay_runner::AbortOutcome::Requested => "requested",
        assay_runner::AbortOutcome::Finished => "finished",
    };
    Ok(Json(AbortResponse {
        id,
        outcome: outcome.into(),
    }))
}

/// The stored log as text, step by step in plan order (or one step with `step`).
#[utoipa::path(get, path = "/v1/test-workflow-executions/{id}/logs", tag = "executions",
    params(("id" = String, Path), ("step" = Option<String>, Query, description = "a step ref")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn execution_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let summary = state
        .store
        .find_execution(&ExecutionRef::parse(&id))
        .await?;
    let lines = state
        .store
        .read_logs(&summary.id, q.get("step").map(String::as_str))
        .await?;
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.text);
        if !line.text.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The artifacts of an execution.
#[utoipa::path(get, path = "/v1/test-workflow-executions/{id}/artifacts", tag = "executions",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_artifacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Artifact>>> {
    let summary = state
        .store
        .find_execution(&ExecutionRef::parse(&id))
        .await?;
    Ok(Json(state.store.list_artifacts(&summary.id).await?))
}

/// Download one artifact.
#[utoipa::path(get, path = "/v1/test-workflow-executions/{id}/artifacts/{path}", tag = "executions",
    params(("id" = String, Path), ("path" = String, Path, description = "artifact path, `/`-separated")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn download_artifact(
    State(state): State<AppState>,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let summary = state
        .store
        .find_execution(&ExecutionRef::parse(&id))
        .await?;
    let download = state.store.open_artifact(&summary.id, &path).await?;
    let stream = download.stream.map(|r| r.map_err(std::io::Error::other));
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, download.size.into()),
            (
                header::CONTENT_DISPOSITION,
                content_disposition("attachment", &path),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `attachment` (or `inline`) with the last segment of `path` as the file name, valid whatever
/// the name holds (RFC 6266): `filename` is an ASCII stand-in (anything but printable ASCII,
/// `"` and `\\` become `_`), `filename*` the exact name in UTF-8, percent-encoded (RFC 8187).
/// An artifact named with a newline made the header invalid: a 500 for every download of it.
pub(crate) fn content_disposition(kind: &str, path: &str) -> axum::http::HeaderValue {
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("artifact");
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    axum::http::HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| axum::http::HeaderValue::from_static("attachment"))
}

/// The nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Pass rate and duration percentiles over the newest ended executions (`limit`, default 100,
/// at most 1000).
#[utoipa::path(get, path = "/v1/test-workflows/{name}/metrics", tag = "workflows",
    params(("name" = String, Path), ("limit" = Option<u32>, Query, nullable = false, minimum = 1, maximum = 1000)),
    responses((status = 200, body = assay_api::WorkflowMetrics), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn workflow_metrics(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<assay_api::WorkflowMetrics>> {
    use assay_store::testkube::{go_duration, rfc3339};
    let limit: u32 = match q.get("limit") {
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be a number from 1 to 1000"))?,
        None => 100,
    };
    state
        .store
        .get_definition(DefinitionKind::Workflow, &name, None)
        .await?;
    let ended = state
        .store
        .list_executions(&ExecutionFilter {
            workflow: Some(name),
            statuses: vec![
                ExecutionStatus::Passed,
                ExecutionStatus::Failed,
                ExecutionStatus::Aborted,
                ExecutionStatus::Canceled,
            ],
            limit: Some(limit),
            ..ExecutionFilter::default()
        })
        .await?;
    let executions: Vec<assay_api::ExecutionMetric> = ended
        .iter()
        .map(|e| {
            let start = e.started_at.unwrap_or(e.scheduled_at);
            let ms = (e.finished_at.unwrap_or(e.status_at) - start).max(0);
            assay_api::ExecutionMetric {
                execution_id: e.id.clone(),
                name: e.name.clone(),
                status: e.status,
                duration: go_duration(ms),
                duration_ms: ms,
                start_time: rfc3339(start),
            }
        })
        .collect();
    let mut durations: Vec<i64> = executions.iter().map(|e| e.duration_ms).collect();
    durations.sort_unstable();
    let passed = executions
        .iter()
        .filter(|e| e.status == ExecutionStatus::Passed)
        .count();
    let total = executions.len();
    let (p50, p90, p99) = (
        percentile(&durations, 50.0),
        percentile(&durations, 90.0),
        percentile(&durations, 99.0),
    );
    Ok(Json(assay_api::WorkflowMetrics {
        pass_fail_ratio: if total == 0 {
            0.0
        } else {
            (passed as f64 * 10000.0 / total as f64).round() / 100.0
        },
        execution_duration_p50: go_duration(p50),
        execution_duration_p50ms: p50,
        execution_duration_p90: go_duration(p90),
        execution_duration_p90ms: p90,
        execution_duration_p99: go_duration(p99),
        execution_duration_p99ms: p99,
        total_executions: total,
        failed_executions: total - passed,
        executions,
    }))
}

/// Replace the tags of an execution (Testkube's `PATCH …/tags`; an empty body clears them).
#[utoipa::path(patch, path = "/v1/test-workflow-executions/{id}/tags", tag = "executions",
    params(("id" = String, Path, description = "execution id or name")),
    request_body(content = assay_api::TagMap, description = "the new tags"),
    responses((status = 204, description = "tags replaced"), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_tags(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let tags: BTreeMap<String, String> = if body.iter().all(u8::is_ascii_whitespace) {
        BTreeMap::new()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be a JSON object of string tags: {e}"
            ))
        })?
    };
    assay_service::check_tags(&tags)?;
    let summary = state
        .store
        .find_execution(&ExecutionRef::parse(&id))
        .await?;
    state.store.set_tags(&summary.id, &tags).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every tag key used by a workflow's executions, with its values (Testkube's shape).
#[utoipa::path(get, path = "/v1/test-workflows/{name}/tags", tag = "workflows",
    params(("name" = String, Path)),
    responses((status = 200, body = BTreeMap<String, Vec<String>>), (status = 401, body = ErrorBody)))]
pub async fn workflow_tags(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<BTreeMap<String, Vec<String>>>> {
    Ok(Json(state.store.tag_values(Some(&name)).await?))
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
