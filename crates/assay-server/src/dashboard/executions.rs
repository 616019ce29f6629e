//! `/executions` (filtered, paged by cursor) and `/executions/{id}` (result, steps, timeline,
//! logs, artifacts, test results), Abort and Rerun, and artifacts served for viewing.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use assay_analysis::Analysis;
use assay_reports::CaseStatus;
use assay_store::{
    ContextType, DefinitionKind, ExecutionFilter, ExecutionRef, ExecutionStatus, ExecutionSummary,
    LabelSelector, StepResult, TokenRole, now_ms,
};
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::workflows::{forbidden, store_error};
use super::{Nav, api_error_page, error_page, format, page_response, see_other};
use crate::AppState;
use crate::auth::Caller;

const PAGE_SIZE: u32 = 50;
/// Log lines shown per step (the newest); the whole log is a link away.
const LOG_LINES: usize = 2000;
/// Test cases shown (failures first).
const TEST_CASES: usize = 500;

const STATUSES: [&str; 7] = [
    "queued", "running", "paused", "passed", "failed", "aborted", "canceled",
];
const SINCE: [(&str, &str, i64); 4] = [
    ("1h", "last hour", 3_600_000),
    ("24h", "last 24 hours", 86_400_000),
    ("7d", "last 7 days", 7 * 86_400_000),
    ("30d", "last 30 days", 30 * 86_400_000),
];

pub(crate) struct ListRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub scheduled: String,
    pub ago: String,
    pub duration: String,
    pub tags: Vec<String>,
    pub context: String,
}

impl ListRow {
    fn new(e: &ExecutionSummary, now: i64) -> Self {
        ListRow {
            id: e.id.clone(),
            name: e.name.clone(),
            status: e.status.as_str().to_string(),
            scheduled: format::time(e.scheduled_at),
            ago: format::ago(e.scheduled_at, now),
            duration: duration(e),
            tags: e.tags.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            context: context(e),
        }
    }
}

/// Start to finish; so far, for one that runs.
fn duration(e: &ExecutionSummary) -> String {
    let end = match e.finished_at {
        Some(end) => end,
        None if !e.status.is_terminal() => now_ms(),
        None => e.status_at,
    };
    match e.started_at {
        Some(start) => format::duration(end - start),
        None => String::new(),
    }
}

fn context(e: &ExecutionSummary) -> String {
    let rc = &e.running_context;
    let kind = match rc.kind {
        ContextType::Cli => "cli",
        ContextType::Api => "api",
        ContextType::Schedule => "schedule",
        ContextType::Trigger => "trigger",
        ContextType::Ci => "ci",
    };
    let mut text = match &rc.actor {
        Some(actor) => format!("{kind} · {actor}"),
        None => kind.to_string(),
    };
    if let Some(ci) = &rc.ci {
        for part in [&ci.provider, &ci.branch, &ci.commit].into_iter().flatten() {
            text.push_str(" · ");
            text.push_str(part);
        }
    }
    text
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    workflow: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    before: String,
}

#[derive(Template)]
#[template(path = "dashboard/executions.html")]
struct ListPage {
    nav: Nav,
    rows: Vec<ListRow>,
    workflows: Vec<String>,
    statuses: Vec<&'static str>,
    since_options: Vec<(&'static str, &'static str)>,
    workflow: String,
    status: String,
    tag: String,
    since: String,
    /// Query string of the next (older) page, when there is one.
    older: Option<String>,
    paged: bool,
    error: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Response {
    let nav = Nav::new(&caller, state.auth, "executions");
    let mut error = None;
    let statuses: Vec<ExecutionStatus> = if q.status.is_empty() {
        Vec::new()
    } else {
        match q.status.parse() {
            Ok(s) => vec![s],
            Err(_) => {
                error = Some(format!("unknown status `{}`", q.status));
                Vec::new()
            }
        }
    };
    let mut tags = Vec::new();
    for pair in q.tag.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) => tags.push((k.trim().to_string(), v.trim().to_string())),
            None => error = Some(format!("tag `{pair}` is not key=value")),
        }
    }
    let now = now_ms();
    let since = SINCE
        .iter()
        .find(|(key, _, _)| *key == q.since)
        .map(|(_, _, ms)| now - ms);
    let filter = ExecutionFilter {
        workflow: Some(q.workflow.clone()).filter(|w| !w.is_empty()),
        statuses,
        tags,
        since,
        limit: Some(PAGE_SIZE + 1),
        before_id: Some(q.before.clone()).filter(|b| !b.is_empty()),
    };
    let every = LabelSelector::default();
    let (rows, defs) = futures::join!(
        state.store.list_executions(&filter),
        state
            .store
            .list_definitions(DefinitionKind::Workflow, &every)
    );
    let mut rows = match rows {
        Ok(r) => r,
        Err(e) => return store_error(nav, e),
    };
    let workflows = match defs {
        Ok(d) => d.into_iter().map(|d| d.name).collect(),
        Err(e) => return store_error(nav, e),
    };
    let older = if rows.len() > PAGE_SIZE as usize {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|last| {
            let mut parts = Vec::new();
            for (k, v) in [
                ("workflow", &q.workflow),
                ("status", &q.status),
                ("tag", &q.tag),
                ("since", &q.since),
            ] {
                if !v.is_empty() {
                    parts.push(format!("{k}={}", super::session::encode(v)));
                }
            }
            parts.push(format!("before={}", super::session::encode(&last.id)));
            parts.join("&")
        })
    } else {
        None
    };
    page_response(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        ListPage {
            nav,
            rows: rows.iter().map(|e| ListRow::new(e, now)).collect(),
            workflows,
            statuses: STATUSES.to_vec(),
            since_options: SINCE.iter().map(|(k, label, _)| (*k, *label)).collect(),
            paged: !q.before.is_empty(),
            workflow: q.workflow,
            status: q.status,
            tag: q.tag,
            since: q.since,
            older,
            error,
        },
    )
}

pub(crate) struct StepRow {
    pub step_ref: String,
    pub name: String,
    pub depth: usize,
    pub status: String,
    pub exit_code: String,
    pub duration: String,
    pub error: String,
    /// Timeline bar: offset and width in percent of the execution's span.
    pub left: String,
    pub width: String,
}

pub(crate) struct LogSection {
    pub step_ref: String,
    pub title: String,
    /// Each line as styled segments (its ANSI colours as classes).
    pub lines: Vec<Vec<super::ansi::Segment>>,
    pub hidden: usize,
}

pub(crate) struct ArtifactRow {
    pub path: String,
    pub url: String,
    pub size: String,
    pub viewable: bool,
}

pub(crate) struct CaseRow {
    pub name: String,
    pub suite: String,
    pub status: String,
    pub duration: String,
    pub message: String,
    /// It failed while quarantined.
    pub quarantined: bool,
}

#[derive(Template)]
#[template(path = "dashboard/execution.html")]
struct ExecutionPage {
    nav: Nav,
    id: String,
    name: String,
    workflow: String,
    status: String,
    live: bool,
    scheduled: String,
    duration: String,
    context: String,
    error: String,
    /// Failed tests that did not fail the execution: they are quarantined.
    quarantined: Vec<String>,
    abort_requested: bool,
    tags: Vec<(String, String)>,
    config: Vec<(String, String)>,
    steps: Vec<StepRow>,
    logs: Vec<LogSection>,
    filter: String,
    artifacts: Vec<ArtifactRow>,
    cases: Vec<CaseRow>,
    cases_total: usize,
    cases_failed: usize,
    /// The execution whose `execute` step started this one: (name, id).
    parent: Option<(String, String)>,
    /// The executions this one's `execute` steps started.
    children: Vec<ChildRow>,
    /// Why it failed (`assay explain`), for an execution that ended failed.
    analysis: Option<AnalysisPanel>,
}

/// The "Why it failed" panel: the analysis of `GET …/analysis`, as the page shows it.
struct AnalysisPanel {
    class: String,
    rule: String,
    summary: String,
    evidence: Vec<String>,
    /// The failing step's ref, title, and the log lines that matter.
    step: Option<(String, String)>,
    lines: Vec<String>,
    tests: Vec<FailingTestRow>,
    more_tests: u32,
    /// The last passing execution: (name, id), and what changed since.
    last_pass: Option<(String, String)>,
    changes: Vec<String>,
    failures_since_last_pass: u32,
}

struct FailingTestRow {
    key: String,
    class: String,
    age: u32,
    first_bad: String,
    similar: u32,
    message: String,
}

impl AnalysisPanel {
    fn new(a: Analysis) -> Option<Self> {
        let v = a.verdict?;
        Some(AnalysisPanel {
            class: v.class.as_str().to_string(),
            rule: v.rule,
            summary: v.summary,
            evidence: v.evidence,
            step: a.failing_step.as_ref().map(|s| {
                let title = s.name.clone().unwrap_or_else(|| s.step_ref.clone());
                (s.step_ref.clone(), title)
            }),
            lines: a.failing_step.map(|s| s.lines).unwrap_or_default(),
            tests: a
                .failing_tests
                .into_iter()
                .map(|t| FailingTestRow {
                    first_bad: match (t.first_bad_execution, t.first_bad_commit) {
                        (Some(e), Some(c)) => format!("{e} (commit {c})"),
                        (Some(e), None) => e,
                        (None, Some(c)) => format!("commit {c}"),
                        (None, None) => String::new(),
                    },
                    key: t.key,
                    class: t.class.as_str().to_string(),
                    age: t.failure_age,
                    similar: t.similar_count,
                    message: t.message.unwrap_or_default(),
                })
                .collect(),
            more_tests: a.more_failing_tests,
            last_pass: a
                .since_last_pass
                .as_ref()
                .map(|d| (d.last_pass.name.clone(), d.last_pass.id.clone())),
            changes: a
                .since_last_pass
                .as_ref()
                .map(assay_analysis::describe)
                .unwrap_or_default(),
            failures_since_last_pass: a.failures_since_last_pass,
        })
    }
}

/// An execution an `execute` step started, as its parent's page lists it.
struct ChildRow {
    id: String,
    name: String,
    workflow: String,
    status: String,
    step: String,
}

#[derive(Deserialize, Default)]
pub struct ShowQuery {
    #[serde(default)]
    q: String,
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Response {
    let nav = Nav::new(&caller, state.auth, "executions");
    let execution = match state.store.get_execution(&ExecutionRef::parse(&id)).await {
        Ok(e) => e,
        Err(e) => return store_error(nav, e),
    };
    let id = execution.id.clone();
    let reference = ExecutionRef::Id(id.clone());
    let (logs, cases) = futures::join!(
        state.store.read_logs(&id, None),
        state.store.test_cases(&reference, &[])
    );
    let logs = match logs {
        Ok(l) => l,
        Err(e) => return store_error(nav, e),
    };
    let mut cases = match cases {
        Ok(c) => c,
        Err(e) => return store_error(nav, e),
    };
    let rank = |s: CaseStatus| match s {
        CaseStatus::Failed | CaseStatus::Error => 0,
        CaseStatus::Skipped => 2,
        CaseStatus::Passed => 1,
    };
    cases.sort_by_key(|c| rank(c.case.status));
    let cases_failed = cases.iter().filter(|c| rank(c.case.status) == 0).count();

    let depths = execution
        .resolved
        .as_deref()
        .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
        .map(|plan| plan_depths(&plan))
        .unwrap_or_default();
    let start = execution
        .started_at
        .or_else(|| execution.steps.iter().filter_map(|s| s.started_at).min())
        .unwrap_or(execution.scheduled_at);
    let now = now_ms();
    let end = execution
        .finished_at
        .or_else(|| {
            (!execution.status.is_terminal())
                .then_some(now)
                .or(Some(execution.status_at))
        })
        .unwrap_or(now)
        .max(start + 1);
    let span = (end - start) as f64;
    let names: HashMap<&str, String> = execution
        .steps
        .iter()
        .map(|s| (s.step_ref.as_str(), step_title(s)))
        .collect();
    let steps: Vec<StepRow> = execution
        .steps
        .iter()
        .map(|s| {
            let (left, width) = match s.started_at {
                Some(a) => {
                    let b = s.finished_at.unwrap_or(end);
                    let left = ((a - start) as f64 / span * 100.0).clamp(0.0, 100.0);
                    let width = ((b - a) as f64 / span * 100.0).clamp(0.5, 100.0 - left);
                    (format!("{left:.2}"), format!("{width:.2}"))
                }
                None => (String::new(), String::new()),
            };
            StepRow {
                step_ref: s.step_ref.clone(),
                name: step_title(s),
                depth: depths.get(&s.step_ref).copied().unwrap_or(0),
                status: s.status.as_str().to_string(),
                exit_code: s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                duration: match (s.started_at, s.finished_at) {
                    (Some(a), Some(b)) => format::duration(b - a),
                    (Some(a), None) if !execution.status.is_terminal() => format::duration(now - a),
                    _ => String::new(),
                },
                error: s.error_message.clone().unwrap_or_default(),
                left,
                width,
            }
        })
        .collect();

    let needle = query.q.to_lowercase();
    let mut sections: Vec<LogSection> = Vec::new();
    let mut by_step: BTreeMap<String, usize> = BTreeMap::new();
    for line in logs {
        let idx = *by_step.entry(line.step.clone()).or_insert_with(|| {
            sections.push(LogSection {
                title: names
                    .get(line.step.as_str())
                    .cloned()
                    .unwrap_or_else(|| line.step.clone()),
                step_ref: line.step.clone(),
                lines: Vec::new(),
                hidden: 0,
            });
            sections.len() - 1
        });
        let text = line.text.trim_end_matches(['\n', '\r']);
        if needle.is_empty() || super::ansi::plain(text).to_lowercase().contains(&needle) {
            sections[idx].lines.push(super::ansi::segments(text));
        }
    }
    for section in &mut sections {
        if section.lines.len() > LOG_LINES {
            section.hidden = section.lines.len() - LOG_LINES;
            section.lines.drain(..section.hidden);
        }
    }

    // Why it failed: the same analysis as `GET …/analysis` and `assay explain`. A page that
    // cannot make it still shows everything else.
    let analysis = if execution.status.is_terminal() && assay_analysis::failed(execution.status) {
        match state.service.analyze(&id).await {
            Ok(a) => AnalysisPanel::new(a),
            Err(e) => {
                tracing::warn!(execution = %id, "dashboard: no analysis: {e}");
                None
            }
        }
    } else {
        None
    };

    let artifacts = execution
        .artifacts
        .iter()
        .map(|a| ArtifactRow {
            url: format!("/executions/{}/artifacts/{}", id, format::path_url(&a.path)),
            viewable: viewable(&a.path),
            size: format::size(a.size),
            path: a.path.clone(),
        })
        .collect();
    let cases_total = cases.len();
    let cases = cases
        .into_iter()
        .take(TEST_CASES)
        .map(|c| CaseRow {
            name: match &c.case.class {
                Some(class) => format!("{class}::{}", c.case.name),
                None => c.case.name.clone(),
            },
            suite: c.case.suite.clone(),
            status: c.case.status.as_str().to_string(),
            duration: c
                .case
                .duration_ms
                .map(|d| format::duration(d as i64))
                .unwrap_or_default(),
            message: c.case.message.clone().unwrap_or_default(),
            quarantined: c.quarantined,
        })
        .collect();
    page_response(
        StatusCode::OK,
        ExecutionPage {
            nav,
            name: execution.name.clone(),
            workflow: execution.workflow.clone(),
            status: execution.status.as_str().to_string(),
            live: !execution.status.is_terminal(),
            scheduled: format::time(execution.scheduled_at),
            duration: duration(&execution),
            context: context(&execution),
            error: execution.error_message.clone().unwrap_or_default(),
            quarantined: execution
                .steps
                .iter()
                .flat_map(|s| s.quarantined_failures.iter().cloned())
                .collect(),
            abort_requested: execution.abort_requested,
            tags: execution
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            config: execution
                .config
                .iter()
                .map(|(k, v)| {
                    let shown = if v.sensitive {
                        "••••••".to_string()
                    } else {
                        v.value
                            .clone()
                            .or_else(|| v.default_value.clone().map(|d| format!("{d} (default)")))
                            .unwrap_or_default()
                    };
                    (k.clone(), shown)
                })
                .collect(),
            steps,
            logs: sections,
            filter: query.q,
            artifacts,
            cases,
            cases_total,
            cases_failed,
            parent: execution
                .parent
                .as_ref()
                .map(|p| (p.name.clone(), p.id.clone())),
            children: execution
                .children
                .iter()
                .map(|c| ChildRow {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    workflow: c.workflow.clone(),
                    status: c.status.as_str().to_string(),
                    step: names
                        .get(c.step_ref.as_str())
                        .cloned()
                        .unwrap_or_else(|| c.step_ref.clone()),
                })
                .collect(),
            analysis,
            id,
        },
    )
}

fn step_title(s: &StepResult) -> String {
    s.name.clone().unwrap_or_else(|| s.step_ref.clone())
}

/// The nesting depth of each step ref in the plan (parallel workers' refs are
/// `<parallel>/<index>/<ref>`).
fn plan_depths(plan: &serde_json::Value) -> HashMap<String, usize> {
    fn walk(
        node: &serde_json::Value,
        prefix: &str,
        depth: usize,
        out: &mut HashMap<String, usize>,
    ) {
        let Some(obj) = node.as_object() else { return };
        let own = obj
            .get("ref")
            .and_then(|r| r.as_str())
            .map(|r| format!("{prefix}{r}"));
        if let Some(r) = &own {
            out.entry(r.clone()).or_insert(depth);
        }
        for key in ["services", "steps", "setup", "after"] {
            if let Some(children) = obj.get(key).and_then(|c| c.as_array()) {
                for child in children {
                    walk(child, prefix, depth + 1, out);
                }
            }
        }
        if let (Some(r), Some(workers)) = (
            &own,
            obj.get("parallel")
                .and_then(|p| p.get("workers"))
                .and_then(|w| w.as_array()),
        ) {
            for (i, worker) in workers.iter().enumerate() {
                let index = worker
                    .get("index")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(i as u64);
                if let Some(root) = worker.get("root") {
                    walk(root, &format!("{r}/{index}/"), depth + 1, out);
                }
            }
        }
    }
    let mut out = HashMap::new();
    if let Some(root) = plan.get("root") {
        walk(root, "", 0, &mut out);
    }
    out
}

/// Whether the browser can show this artifact itself (text, images, HTML reports).
fn viewable(path: &str) -> bool {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    matches!(mime.type_().as_str(), "text" | "image")
        || matches!(
            mime.essence_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-yaml"
        )
        || path.ends_with(".log")
        || path.ends_with(".yaml")
        || path.ends_with(".yml")
}

/// Abort, through the REST API's own code path.
pub async fn abort(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let nav = Nav::new(&caller, state.auth, "executions");
    if caller.role < TokenRole::Runner {
        return forbidden(nav, &caller);
    }
    match crate::executions::abort_execution(State(state), Extension(caller), Path(id)).await {
        Ok(r) => see_other(&format!("/executions/{}", r.0.id)),
        Err(e) => api_error_page(Some(nav), e),
    }
}

/// Rerun, through the REST API's own code path; goes to the new execution.
pub async fn rerun(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let nav = Nav::new(&caller, state.auth, "executions");
    if caller.role < TokenRole::Runner {
        return forbidden(nav, &caller);
    }
    match crate::executions::rerun_execution(State(state), Extension(caller), Path(id)).await {
        Ok(e) => see_other(&format!("/executions/{}", e.0.id)),
        Err(e) => api_error_page(Some(nav), e),
    }
}

#[derive(Deserialize, Default)]
pub struct ArtifactQuery {
    #[serde(default)]
    download: Option<String>,
}

/// An artifact, inline (text, images, HTML) or as a download. Every artifact is served with
/// `Content-Security-Policy: sandbox`: an HTML report runs in an opaque origin and cannot
/// script the dashboard.
pub async fn artifact(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<ArtifactQuery>,
) -> Response {
    let nav = Nav::new(&caller, state.auth, "executions");
    let summary = match state.store.find_execution(&ExecutionRef::parse(&id)).await {
        Ok(s) => s,
        Err(e) => return store_error(nav, e),
    };
    let download = match state.store.open_artifact(&summary.id, &path).await {
        Ok(d) => d,
        Err(e) if e.is_not_found() => {
            return error_page(Some(nav), StatusCode::NOT_FOUND, e.to_string());
        }
        Err(e) => {
            return error_page(Some(nav), StatusCode::BAD_REQUEST, format!("failed to {e}"));
        }
    };
    let inline = q.download.is_none() && viewable(&path);
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    let essence = mime.essence_str();
    let content_type = if !inline {
        "application/octet-stream".to_string()
    } else if essence.starts_with("image/") {
        essence.to_string()
    } else if essence.starts_with("text/")
        || essence.starts_with("application/") && essence != "application/octet-stream"
    {
        format!("{essence}; charset=utf-8")
    } else {
        "text/plain; charset=utf-8".to_string()
    };
    let disposition =
        crate::executions::content_disposition(if inline { "inline" } else { "attachment" }, &path);
    let stream = download.stream.map(|r| r.map_err(std::io::Error::other));
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, &content_type);
    set(header::CONTENT_LENGTH, &download.size.to_string());
    set(header::CONTENT_SECURITY_POLICY, "sandbox");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depths_follow_the_plan() {
        let plan = serde_json::json!({"root": {"ref": "root", "steps": [
            {"ref": "group", "steps": [{"ref": "inner"}]},
            {"ref": "par", "parallel": {"workers": [
                {"index": 0, "root": {"ref": "root", "steps": [{"ref": "_1"}]}}
            ]}}
        ]}});
        let d = plan_depths(&plan);
        assert_eq!(d["root"], 0);
        assert_eq!(d["group"], 1);
        assert_eq!(d["inner"], 2);
        assert_eq!(d["par/0/root"], 2);
        assert_eq!(d["par/0/_1"], 3);
    }

    #[test]
    fn what_is_viewable() {
        assert!(viewable("report/index.html"));
        assert!(viewable("out.txt"));
        assert!(viewable("shot.png"));
        assert!(viewable("run.log"));
        assert!(!viewable("bundle.tar.gz"));
    }
}
