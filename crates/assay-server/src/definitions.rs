//! `/v1/test-workflows` and `/v1/test-workflow-templates`: create from YAML or JSON (checked
//! like `assay validate`, problems with line:col), get, list with a label selector, update,
//! delete. Documents are stored as YAML text with revisions; responses are their JSON.

use std::collections::HashMap;

use assay_api::ErrorBody;
use assay_service::{Checked, DocumentKind};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiResult;

/// Whether the body says it is YAML (JSON otherwise).
pub(crate) fn is_yaml(headers: &HeaderMap) -> bool {
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

/// Check a body as `assay validate` does (see [`assay_service::definitions::check`]).
pub(crate) fn check(kind: DocumentKind, headers: &HeaderMap, body: &Bytes) -> ApiResult<Checked> {
    Ok(assay_service::definitions::check(
        kind,
        body,
        is_yaml(headers),
    )?)
}

pub(crate) async fn list(
    state: &AppState,
    kind: DocumentKind,
    query: &HashMap<String, String>,
) -> ApiResult<Json<Vec<Value>>> {
    let selector = query.get("selector").map(String::as_str).unwrap_or("");
    // Only workflows and templates are searched by name (Testkube's `textSearch`).
    let text = match kind {
        DocumentKind::Workflow | DocumentKind::Template => query.get("textSearch"),
        DocumentKind::Webhook | DocumentKind::TestTrigger => None,
    };
    Ok(Json(
        state
            .service
            .definitions()
            .list(kind, selector, text.map(String::as_str))
            .await?,
    ))
}

pub(crate) async fn get(
    state: &AppState,
    kind: DocumentKind,
    name: &str,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.service.definitions().get(kind, name).await?))
}

pub(crate) async fn create(
    state: &AppState,
    kind: DocumentKind,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let doc = check(kind, headers, body)?;
    state.service.definitions().create(kind, &doc).await?;
    Ok((StatusCode::CREATED, Json(doc.raw)).into_response())
}

pub(crate) async fn update(
    state: &AppState,
    kind: DocumentKind,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Json<Value>> {
    let doc = check(kind, headers, body)?;
    state.service.definitions().update(kind, name, &doc).await?;
    Ok(Json(doc.raw))
}

pub(crate) async fn delete(
    state: &AppState,
    kind: DocumentKind,
    name: &str,
) -> ApiResult<StatusCode> {
    state.service.definitions().delete(kind, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

const WF: DocumentKind = DocumentKind::Workflow;
const TPL: DocumentKind = DocumentKind::Template;

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
