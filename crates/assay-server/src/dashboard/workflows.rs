//! `/` (every workflow with its latest status, pass rate and trend) and `/workflows/{name}`
//! (definition, history, schedule, flaky tests), and the Run form behind both.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use askama::Template;
use assay_reports::flaky::FlakyPolicy;
use assay_spec::model::{ParameterType, TestWorkflow};
use assay_store::{
    DefinitionKind, FlakyTest, LabelSelector, RunPoint, StoreError, TokenRole, now_ms,
};
use axum::Form;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::charts::{self, DayRate};
use super::{Nav, api_error_page, error_page, format, highlight, page_response, see_other};
use crate::AppState;
use crate::auth::Caller;

/// Executions behind the list's trend and pass rate.
const TREND_RUNS: u32 = 30;
/// Executions behind a workflow page's charts.
const HISTORY_RUNS: u32 = 200;
/// Bars in a workflow page's history chart.
const HISTORY_BARS: usize = 60;

/// One typed field of a Run form.
pub(crate) struct Field {
    pub name: String,
    pub label: String,
    pub description: String,
    /// `text`, `number`, `checkbox`, `password`.
    pub input: &'static str,
    /// `step` of a number field (`1` for integers, `any` for numbers).
    pub step: &'static str,
    pub value: String,
    pub checked: bool,
    pub options: Vec<String>,
    pub required: bool,
}

/// The Run form of a workflow: one field per `spec.config` parameter.
pub(crate) fn fields(workflow: &TestWorkflow) -> Vec<Field> {
    workflow
        .spec
        .config
        .iter()
        .map(|(name, schema)| {
            let kind = schema.kind.unwrap_or_default();
            let default = schema.default.as_ref().map(|d| match d {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let (input, step) = match kind {
                _ if schema.sensitive => ("password", ""),
                ParameterType::Boolean => ("checkbox", ""),
                ParameterType::Integer => ("number", "1"),
                ParameterType::Number => ("number", "any"),
                ParameterType::String => ("text", ""),
            };
            Field {
                name: format!("config.{name}"),
                label: name.clone(),
                description: schema.description.clone(),
                input,
                step,
                checked: kind == ParameterType::Boolean
                    && default.as_deref().is_some_and(|d| d == "true"),
                // Sensitive defaults are not shown; an empty field keeps the default.
                value: if schema.sensitive {
                    String::new()
                } else {
                    default.clone().unwrap_or_default()
                },
                options: schema.r#enum.clone(),
                required: default.is_none() && kind != ParameterType::Boolean,
            }
        })
        .collect()
}

pub(crate) fn load(yaml: &str, name: &str) -> Option<TestWorkflow> {
    assay_service::definitions::workflow_from_yaml(&format!("stored workflow {name}"), yaml).ok()
}

/// Stored workflows parsed once per text: the list page would otherwise parse every workflow
/// on every visit. Keyed by name and a hash of the text, so a new revision parses anew;
/// bounded by clearing.
fn load_cached(yaml: &str, name: &str) -> Option<Arc<TestWorkflow>> {
    type Cache = Mutex<HashMap<(String, u64, usize), Option<Arc<TestWorkflow>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    yaml.hash(&mut hasher);
    let key = (name.to_string(), hasher.finish(), yaml.len());
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    let parsed = load(yaml, name).map(Arc::new);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= 1024 {
        map.clear();
    }
    map.insert(key, parsed.clone());
    parsed
}

pub(crate) struct Row {
    pub name: String,
    pub description: String,
    pub labels: Vec<(String, String)>,
    pub status: String,
    pub last_run: String,
    pub last_run_ago: String,
    pub latest_id: String,
    pub pass_rate: String,
    pub sparkline: String,
    pub fields: Vec<Field>,
}

#[derive(Template)]
#[template(path = "dashboard/workflows.html")]
struct IndexPage {
    nav: Nav,
    rows: Vec<Row>,
    q: String,
    label: String,
    total: usize,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct IndexQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    label: String,
}

pub async fn index(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<IndexQuery>,
) -> Response {
    let nav = Nav::new(&caller, state.auth, "workflows");
    let (selector, error) = match LabelSelector::parse(&query.label) {
        Ok(s) => (s, None),
        Err(e) => (LabelSelector::default(), Some(e)),
    };
    let definitions = match state
        .store
        .list_definitions(DefinitionKind::Workflow, &selector)
        .await
    {
        Ok(d) => d,
        Err(e) => return store_error(nav, e),
    };
    let total = definitions.len();
    let needle = query.q.trim().to_lowercase();
    let now = now_ms();
    let mut pending = Vec::new();
    for def in definitions {
        let workflow = load_cached(&def.yaml, &def.name);
        let description = workflow
            .as_ref()
            .map(|w| w.description.clone())
            .unwrap_or_default();
        if !needle.is_empty()
            && !def.name.to_lowercase().contains(&needle)
            && !description.to_lowercase().contains(&needle)
        {
            continue;
        }
        pending.push((def, workflow, description));
    }
    let names: Vec<String> = pending.iter().map(|(d, _, _)| d.name.clone()).collect();
    let mut recent = match state.store.recent_runs_of(&names, TREND_RUNS).await {
        Ok(r) => r,
        Err(e) => return store_error(nav, e),
    };
    let mut rows = Vec::with_capacity(pending.len());
    for (def, workflow, description) in pending {
        let runs = recent.remove(&def.name).unwrap_or_default();
        let latest = runs.first();
        rows.push(Row {
            name: def.name.clone(),
            description,
            labels: def.labels.into_iter().collect(),
            status: latest
                .map(|r| r.status.as_str().to_string())
                .unwrap_or_default(),
            last_run: latest
                .map(|r| format::time(r.scheduled_at))
                .unwrap_or_default(),
            last_run_ago: latest
                .map(|r| format::ago(r.scheduled_at, now))
                .unwrap_or_default(),
            latest_id: latest.map(|r| r.id.clone()).unwrap_or_default(),
            pass_rate: charts::pass_rate(&runs)
                .map(|p| format!("{p}%"))
                .unwrap_or_else(|| "–".into()),
            sparkline: charts::sparkline(&runs),
            fields: workflow.as_deref().map(fields).unwrap_or_default(),
        });
    }
    page_response(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        IndexPage {
            nav,
            rows,
            q: query.q,
            label: query.label,
            total,
            error,
        },
    )
}

pub(crate) struct Flaky {
    pub name: String,
    pub key: String,
    pub runs: u32,
    pub failures: u32,
    pub flaky: bool,
    pub broken: bool,
}

impl From<&FlakyTest> for Flaky {
    fn from(t: &FlakyTest) -> Self {
        Flaky {
            name: t.name.clone(),
            key: t.key.clone(),
            runs: t.verdict.runs,
            failures: t.verdict.failures,
            flaky: t.verdict.flaky,
            broken: t.verdict.broken,
        }
    }
}

pub(crate) struct Schedule {
    pub cron: String,
    pub timezone: String,
}

#[derive(Template)]
#[template(path = "dashboard/workflow.html")]
struct WorkflowPage {
    nav: Nav,
    name: String,
    description: String,
    revision: i64,
    labels: Vec<(String, String)>,
    yaml: String,
    history: String,
    runs: usize,
    pass_rate: String,
    days: Vec<DayRate>,
    rate_chart: String,
    schedules: Vec<Schedule>,
    flakiest: Vec<Flaky>,
    failing: Vec<Flaky>,
    fields: Vec<Field>,
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    let nav = Nav::new(&caller, state.auth, "workflows");
    let def = match state
        .store
        .get_definition(DefinitionKind::Workflow, &name, None)
        .await
    {
        Ok(d) => d,
        Err(e) => return store_error(nav, e),
    };
    let workflow = load(&def.yaml, &name);
    let policy = FlakyPolicy::default();
    let (runs, flaky) = futures::join!(
        state.store.recent_runs(&name, HISTORY_RUNS),
        state.store.flaky_tests(Some(&name), &policy, now_ms())
    );
    let runs = match runs {
        Ok(r) => r,
        Err(e) => return store_error(nav, e),
    };
    let flaky = match flaky {
        Ok(f) => f,
        Err(e) => return store_error(nav, e),
    };
    let flakiest: Vec<Flaky> = flaky
        .iter()
        .filter(|t| t.verdict.flaky)
        .take(10)
        .map(Flaky::from)
        .collect();
    let mut failing: Vec<&FlakyTest> = flaky.iter().filter(|t| t.verdict.failures > 0).collect();
    failing.sort_by(|a, b| {
        b.verdict
            .failures
            .cmp(&a.verdict.failures)
            .then_with(|| a.key.cmp(&b.key))
    });
    let days = charts::pass_rate_by_day(&runs);
    let bars: Vec<RunPoint> = runs.iter().take(HISTORY_BARS).cloned().collect();
    page_response(
        StatusCode::OK,
        WorkflowPage {
            nav,
            description: workflow
                .as_ref()
                .map(|w| w.description.clone())
                .unwrap_or_default(),
            revision: def.revision,
            labels: def.labels.into_iter().collect(),
            yaml: highlight::yaml(&def.yaml),
            history: charts::history_bars(&bars),
            runs: runs.len(),
            pass_rate: charts::pass_rate(&runs)
                .map(|p| format!("{p}%"))
                .unwrap_or_else(|| "–".into()),
            rate_chart: charts::pass_rate_bars(&days),
            days,
            schedules: workflow
                .as_ref()
                .map(|w| {
                    w.spec
                        .events
                        .iter()
                        .filter_map(|e| e.cronjob.as_ref())
                        .map(|c| Schedule {
                            cron: c.cron.clone(),
                            timezone: c.timezone.clone().unwrap_or_else(|| "UTC".into()),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            flakiest,
            failing: failing.into_iter().take(10).map(Flaky::from).collect(),
            fields: workflow.as_ref().map(fields).unwrap_or_default(),
            name,
        },
    )
}

pub(crate) fn store_error(nav: Nav, e: StoreError) -> Response {
    if e.is_not_found() {
        error_page(Some(nav), StatusCode::NOT_FOUND, e.to_string())
    } else {
        error_page(
            Some(nav),
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to {e}"),
        )
    }
}

/// The Run form: typed config values and optional tags, then the REST API's own run path
/// (compile check, `queued`, the queue).
pub async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let nav = Nav::new(&caller, state.auth, "workflows");
    if caller.role < TokenRole::Runner {
        return forbidden(nav, &caller);
    }
    let def = match state
        .store
        .get_definition(DefinitionKind::Workflow, &name, None)
        .await
    {
        Ok(d) => d,
        Err(e) => return store_error(nav, e),
    };
    let Some(workflow) = load(&def.yaml, &name) else {
        return error_page(
            Some(nav),
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored workflow `{name}` does not load"),
        );
    };
    let get = |field: &str| {
        form.iter()
            .rev()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    };
    let mut config = serde_json::Map::new();
    for (key, schema) in &workflow.spec.config {
        let raw = get(&format!("config.{key}"));
        let kind = schema.kind.unwrap_or_default();
        let value = match kind {
            ParameterType::Boolean => {
                serde_json::Value::Bool(raw.is_some_and(|v| v == "true" || v == "on"))
            }
            _ => {
                let text = raw.unwrap_or("").trim();
                if text.is_empty() && (schema.default.is_some() || schema.sensitive) {
                    continue;
                }
                match kind {
                    ParameterType::Integer => match text.parse::<i64>() {
                        Ok(i) => i.into(),
                        Err(_) => {
                            return error_page(
                                Some(nav),
                                StatusCode::BAD_REQUEST,
                                format!("config `{key}`: `{text}` is not an integer"),
                            );
                        }
                    },
                    ParameterType::Number => {
                        match text
                            .parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                        {
                            Some(n) => serde_json::Value::Number(n),
                            None => {
                                return error_page(
                                    Some(nav),
                                    StatusCode::BAD_REQUEST,
                                    format!("config `{key}`: `{text}` is not a number"),
                                );
                            }
                        }
                    }
                    _ => serde_json::Value::String(raw.unwrap_or("").to_string()),
                }
            }
        };
        config.insert(key.clone(), value);
    }
    let mut tags = BTreeMap::new();
    for pair in get("tags").unwrap_or("").split(',').map(str::trim) {
        if pair.is_empty() {
            continue;
        }
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                tags.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => {
                return error_page(
                    Some(nav),
                    StatusCode::BAD_REQUEST,
                    format!("tag `{pair}` is not key=value"),
                );
            }
        }
    }
    let body = serde_json::json!({ "config": config, "tags": tags }).to_string();
    match crate::executions::run_workflow(
        State(state),
        Extension(caller),
        Path(name),
        Bytes::from(body),
    )
    .await
    {
        Ok(execution) => see_other(&format!("/executions/{}", execution.0.id)),
        Err(e) => api_error_page(Some(nav), e),
    }
}

pub(crate) fn forbidden(nav: Nav, caller: &Caller) -> Response {
    error_page(
        Some(nav),
        StatusCode::FORBIDDEN,
        format!(
            "token `{}` has role `{}`; this needs `runner`",
            caller.name,
            caller.role.as_str()
        ),
    )
}
