//! `/v1/quarantines`: list (viewer), add and lift (admin) quarantined tests, over the service's
//! use cases. A quarantined test still runs and reports; a step failing only through
//! quarantined tests passes and says so.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use assay_api::ErrorBody;
use assay_api::quarantine::{QuarantineEntry, QuarantineRequest};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Expired entries too.
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RemoveQuery {
    /// The workflow the entry was made for; absent: the entry for every workflow.
    #[serde(default)]
    workflow: Option<String>,
}

/// The quarantined tests (in force; `all=true`: expired ones too).
#[utoipa::path(get, path = "/v1/quarantines", tag = "quarantines", params(ListQuery),
    responses((status = 200, body = Vec<QuarantineEntry>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_quarantines(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<QuarantineEntry>>> {
    Ok(Json(state.service.quarantines(query.all).await?))
}

/// Quarantine a test (replacing its entry for the same workflow); the token's name is recorded
/// as its author.
#[utoipa::path(post, path = "/v1/quarantines", tag = "quarantines",
    request_body = QuarantineRequest,
    responses((status = 201, body = QuarantineEntry), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn add_quarantine(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<QuarantineEntry>)> {
    let request: QuarantineRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not a quarantine request ({{\"test\", \"reason\", \"workflow\"?, \"until\"?}}): {e}"
        ))
    })?;
    let entry = state
        .service
        .quarantine(&request, Some(&caller.name))
        .await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Lift a test's quarantine.
#[utoipa::path(delete, path = "/v1/quarantines/{test}", tag = "quarantines",
    params(("test" = String, Path, description = "the test key or name"), RemoveQuery),
    responses((status = 204, description = "lifted"), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn remove_quarantine(
    State(state): State<AppState>,
    Path(test): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    state
        .service
        .unquarantine(&test, query.workflow.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
