//! `/v1/webhooks`: the CRUD of Webhook documents (and the shared create/update of the
//! hook documents) and the delivery log.

use assay_api::ErrorBody;
use assay_service::DocumentKind;
use assay_spec::load::ResourceKind;
use assay_store::WebhookAttempt;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// When a stored `TestTrigger` acts, as an HTTP `Warning` (how Kubernetes' API tells kubectl)
/// and in `assay apply`'s output.
pub const TRIGGER_NOTE: &str = "TestTrigger stored; a git `content` trigger is polled by every `assay server` on this store, the others act on Kubernetes events where `assay server --kubernetes` watches its namespace";

fn with_note(kind: DocumentKind, mut response: Response) -> Response {
    if kind == DocumentKind::TestTrigger
        && let Ok(v) = HeaderValue::from_str(&format!("299 - \"{TRIGGER_NOTE}\""))
    {
        response.headers_mut().insert(header::WARNING, v);
    }
    response
}

pub(crate) async fn create_resource(
    state: &AppState,
    kind: DocumentKind,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let response = crate::definitions::create(state, kind, headers, body).await?;
    Ok(with_note(kind, response))
}

pub(crate) async fn update_resource(
    state: &AppState,
    kind: DocumentKind,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let response = crate::definitions::update(state, kind, name, headers, body).await?;
    Ok(with_note(kind, response.into_response()))
}

const WH: DocumentKind = DocumentKind::Webhook;

/// List webhooks, optionally by label selector.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    params(("selector" = Option<String>, Query, nullable = false, pattern = r"^ *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?(, *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?)*$", description = "label selector (the store's grammar, as for workflows)")),
    responses((status = 200, description = "Webhook documents", body = Vec<Object>),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<Vec<Value>>> {
    crate::definitions::list(&s, WH, &q).await
}

/// Create a webhook from YAML (`Content-Type: text/yaml`) or JSON.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body(content = Object, content_type = "application/json", description = "a Webhook (YAML with text/yaml)"),
    responses((status = 201, description = "the stored Webhook", body = Object),
              (status = 400, description = "invalid, with problems and line:col", body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    create_resource(&s, WH, &headers, &body).await
}

/// One webhook, as applied.
#[utoipa::path(get, path = "/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_webhook(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    crate::definitions::get(&s, WH, &name).await
}

/// Replace a webhook.
#[utoipa::path(put, path = "/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_webhook(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    update_resource(&s, WH, &name, &headers, &body).await
}

/// Delete a webhook (its delivery log stays).
#[utoipa::path(delete, path = "/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete_webhook(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    crate::definitions::delete(&s, WH, &name).await
}

/// The webhook's delivery log, newest attempt first: event, attempt number, status code, error,
/// time, URL and payload with secrets masked, header values masked.
#[utoipa::path(get, path = "/v1/webhooks/{name}/deliveries", tag = "webhooks",
    params(("name" = String, Path), ("limit" = Option<i64>, Query, nullable = false, description = "at most this many (default 100, at most 1000)")),
    responses((status = 200, description = "attempts, newest first", body = Vec<Object>),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn webhook_deliveries(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<Vec<WebhookAttempt>>> {
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("limit `{l}` is not a number")))?,
        None => 100,
    };
    let attempts = s.store.list_webhook_attempts(&name, limit).await?;
    if attempts.is_empty() {
        // An unknown webhook is a 404; a known one without deliveries an empty list.
        s.store.get_resource(ResourceKind::Webhook, &name).await?;
    }
    Ok(Json(attempts))
}
