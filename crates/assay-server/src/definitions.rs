//! `/v1/test-workflows` and `/v1/test-workflow-templates`: create from YAML or JSON (checked
//! like `assay validate`, problems with line:col), get, list with a label selector, update,
//! delete. Documents are stored as YAML text with revisions; responses are their JSON.

use std::collections::{BTreeMap, HashMap};

use assay_api::{ErrorBody, Problem};
use assay_spec::load::Kind;
use assay_store::{ApplyOutcome, Definition, DefinitionKind, DeleteMode, LabelSelector};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The JSON of a stored definition.
fn to_json(def: &Definition) -> ApiResult<Value> {
    let loaded = assay_spec::load::load(&def.name, &def.yaml);
    loaded
        .documents
        .into_iter()
        .next()
        .map(|d| d.raw)
        .ok_or_else(|| {
            ApiError::internal(format!(
                "stored {} `{}` does not load",
                def.kind.noun(),
                def.name
            ))
        })
}

fn kind_of(kind: DefinitionKind) -> Kind {
    match kind {
        DefinitionKind::Workflow => Kind::TestWorkflow,
        DefinitionKind::Template => Kind::TestWorkflowTemplate,
    }
}

/// A checked document from a request body: its name, labels and the YAML text to store.
struct Submitted {
    name: String,
    labels: BTreeMap<String, String>,
    yaml: String,
    raw: Value,
}

fn is_yaml(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|v| v.ends_with("yaml") || v == "text/plain")
}

/// Check a body as `assay validate` does. JSON is YAML too, so both go through the same
/// loader and problems point into the text that was sent.
fn check(kind: DefinitionKind, headers: &HeaderMap, body: &Bytes) -> ApiResult<Submitted> {
    let yaml_body = is_yaml(headers);
    if !yaml_body && serde_json::from_slice::<Value>(body).is_err() {
        return Err(ApiError::bad_request(
            "the body is not JSON; send YAML with `Content-Type: text/yaml`",
        ));
    }
    let loaded = assay_spec::validate::check_bytes("request body", body);
    if loaded.has_errors() {
        let problems: Vec<Problem> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == assay_spec::diagnostic::Severity::Error)
            .map(|d| Problem {
                line: d.line,
                column: d.column,
                message: d.message.clone(),
                hint: d.hint.clone(),
                path: d.path.clone(),
            })
            .collect();
        let first = problems
            .first()
            .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
            .unwrap_or_default();
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            detail: format!(
                "the {} is not valid ({} problem(s)); first: {first}",
                kind.noun(),
                problems.len()
            ),
            problems,
        });
    }
    let [doc] = loaded.documents.as_slice() else {
        return Err(ApiError::bad_request(format!(
            "send exactly one document (found {})",
            loaded.documents.len()
        )));
    };
    if doc.kind != kind_of(kind) {
        return Err(ApiError::bad_request(format!(
            "this endpoint takes a {:?}, not a {:?}",
            kind_of(kind),
            doc.kind
        )));
    }
    let labels = match &doc.document {
        assay_spec::model::Document::TestWorkflow(w) => &w.metadata.labels,
        assay_spec::model::Document::TestWorkflowTemplate(t) => &t.metadata.labels,
    }
    .iter()
    .map(|(k, v)| (k.clone(), v.clone()))
    .collect();
    let yaml = if yaml_body {
        String::from_utf8_lossy(body).into_owned()
    } else {
        serde_saphyr::to_string(&doc.raw).map_err(ApiError::internal)?
    };
    Ok(Submitted {
        name: doc.name.clone(),
        labels,
        yaml,
        raw: doc.raw.clone(),
    })
}

async fn list(
    state: &AppState,
    kind: DefinitionKind,
    query: &HashMap<String, String>,
) -> ApiResult<Json<Vec<Value>>> {
    let selector = LabelSelector::parse(query.get("selector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let text = query.get("textSearch").map(|t| t.to_lowercase());
    let mut out = Vec::new();
    for def in state.store.list_definitions(kind, &selector).await? {
        if let Some(t) = &text
            && !def.name.to_lowercase().contains(t)
        {
            continue;
        }
        out.push(to_json(&def)?);
    }
    Ok(Json(out))
}

async fn get(state: &AppState, kind: DefinitionKind, name: &str) -> ApiResult<Json<Value>> {
    let def = state.store.get_definition(kind, name, None).await?;
    Ok(Json(to_json(&def)?))
}

async fn create(
    state: &AppState,
    kind: DefinitionKind,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let doc = check(kind, headers, body)?;
    match state.store.get_definition(kind, &doc.name, None).await {
        Ok(_) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "{} `{}` exists already; update it with PUT",
                    kind.noun(),
                    doc.name
                ),
            ));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    state
        .store
        .apply(kind, &doc.name, &doc.yaml, &doc.labels)
        .await?;
    Ok((StatusCode::CREATED, Json(doc.raw)).into_response())
}

async fn update(
    state: &AppState,
    kind: DefinitionKind,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Json<Value>> {
    let doc = check(kind, headers, body)?;
    if doc.name != name {
        return Err(ApiError::bad_request(format!(
            "the document is named `{}`, the path `{name}`",
            doc.name
        )));
    }
    state.store.get_definition(kind, name, None).await?;
    let (outcome, _) = state
        .store
        .apply(kind, name, &doc.yaml, &doc.labels)
        .await?;
    debug_assert!(outcome != ApplyOutcome::Created);
    Ok(Json(doc.raw))
}

async fn delete(state: &AppState, kind: DefinitionKind, name: &str) -> ApiResult<StatusCode> {
    if state
        .store
        .delete_definition(kind, name, DeleteMode::Soft)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{} `{name}` not found",
            kind.noun()
        )))
    }
}

const WF: DefinitionKind = DefinitionKind::Workflow;
const TPL: DefinitionKind = DefinitionKind::Template;

/// List workflows, optionally by label selector (`selector=team=qa,tier!=slow`) and name text.
#[utoipa::path(get, path = "/v1/test-workflows", tag = "workflows",
    params(("selector" = Option<String>, Query, nullable = false, pattern = r"^ *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?(, *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?)*$", description = "label selector: `key=value`, `key!=value`, `key`, `!key`, comma-separated"),
           ("textSearch" = Option<String>, Query, nullable = false, description = "part of the name")),
    responses((status = 200, description = "TestWorkflow documents", body = Vec<Object>),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_workflows(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Value>>> {
    list(&s, WF, &q).await
}

/// Create a workflow from YAML (`Content-Type: text/yaml`) or JSON.
#[utoipa::path(post, path = "/v1/test-workflows", tag = "workflows",
    request_body(content = Object, content_type = "application/json", description = "a TestWorkflow (YAML with text/yaml)"),
    responses((status = 201, description = "the stored TestWorkflow", body = Object),
              (status = 400, description = "invalid, with problems and line:col", body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_workflow(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    create(&s, WF, &headers, &body).await
}

/// One workflow.
#[utoipa::path(get, path = "/v1/test-workflows/{name}", tag = "workflows",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_workflow(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    get(&s, WF, &name).await
}

/// Replace a workflow (a new revision).
#[utoipa::path(put, path = "/v1/test-workflows/{name}", tag = "workflows",
    params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_workflow(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    update(&s, WF, &name, &headers, &body).await
}

/// Delete a workflow (its executions stay).
#[utoipa::path(delete, path = "/v1/test-workflows/{name}", tag = "workflows",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete_workflow(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    delete(&s, WF, &name).await
}

/// List templates, optionally by label selector and name text.
#[utoipa::path(get, path = "/v1/test-workflow-templates", tag = "templates",
    params(("selector" = Option<String>, Query, nullable = false, pattern = r"^ *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?(, *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?)*$", description = "label selector: `key=value`, `key!=value`, `key`, `!key`, comma-separated"), ("textSearch" = Option<String>, Query, nullable = false)),
    responses((status = 200, body = Vec<Object>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_templates(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Value>>> {
    list(&s, TPL, &q).await
}

/// Create a template from YAML or JSON.
#[utoipa::path(post, path = "/v1/test-workflow-templates", tag = "templates",
    request_body(content = Object, content_type = "application/json"),
    responses((status = 201, body = Object), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_template(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    create(&s, TPL, &headers, &body).await
}

/// One template.
#[utoipa::path(get, path = "/v1/test-workflow-templates/{name}", tag = "templates",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_template(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    get(&s, TPL, &name).await
}

/// Replace a template.
#[utoipa::path(put, path = "/v1/test-workflow-templates/{name}", tag = "templates",
    params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_template(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    update(&s, TPL, &name, &headers, &body).await
}

/// Delete a template.
#[utoipa::path(delete, path = "/v1/test-workflow-templates/{name}", tag = "templates",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete_template(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    delete(&s, TPL, &name).await
}

/// Check a workflow without storing it (Testkube's `PUT /v1/test-workflows`): 204 when it is
/// valid, 400 with each problem and its line:col when not.
#[utoipa::path(put, path = "/v1/test-workflows", tag = "workflows",
    request_body(content = Object, content_type = "application/json", description = "a TestWorkflow (YAML with text/yaml)"),
    responses((status = 204, description = "valid"),
              (status = 400, description = "invalid, with problems and line:col", body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn validate_workflow(headers: HeaderMap, body: Bytes) -> ApiResult<StatusCode> {
    check(WF, &headers, &body).map(|_| StatusCode::NO_CONTENT)
}

/// Check a template without storing it (Testkube's `PUT /v1/test-workflow-templates`).
#[utoipa::path(put, path = "/v1/test-workflow-templates", tag = "templates",
    request_body(content = Object, content_type = "application/json", description = "a TestWorkflowTemplate (YAML with text/yaml)"),
    responses((status = 204, description = "valid"),
              (status = 400, description = "invalid, with problems and line:col", body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn validate_template(headers: HeaderMap, body: Bytes) -> ApiResult<StatusCode> {
    check(TPL, &headers, &body).map(|_| StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    /// The selector pattern in the API description is the store's grammar (the attribute needs
    /// a literal, so it is written twice and compared here).
    #[test]
    fn selector_pattern_is_the_stores() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        for path in ["/v1/test-workflows", "/v1/test-workflow-templates"] {
            let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
            let selector = params.iter().find(|p| p["name"] == "selector").unwrap();
            assert_eq!(
                selector["schema"]["pattern"],
                assay_store::LABEL_SELECTOR_PATTERN,
                "{path}"
            );
        }
    }
}
