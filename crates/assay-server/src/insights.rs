//! `GET /v1/insights`: how changes fare per AI tool, team or workflow (a viewer may read it).

use std::collections::HashMap;

use assay_service::insights::{By, DEFAULT_DAYS, InsightsQuery, parse_since};
use axum::Json;
use axum::extract::{Query, State};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use assay_api::ErrorBody;

/// First-try pass rate, runs until green, rework rate and failure classes per AI tool (`ai.tool`
/// tag), team (`team` tag, else the workflow's `team` label) or workflow, per week; and the teams
/// whose AI-made commits ran no workflow labelled `level: system`. A change is one workflow on
/// one commit (`commit` tag or CI commit).
#[utoipa::path(get, path = "/v1/insights", tag = "insights",
    params(("since" = Option<String>, Query, nullable = false, description = "`30d` (default), `12h`, `2w` or `YYYY-MM-DD`",
            pattern = r"^([0-9]{1,5}[hdw]|(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]))$"),
           ("by" = Option<String>, Query, nullable = false, description = "`tool` (default), `team` or `workflow`",
            pattern = "^(tool|team|workflow)$")),
    responses((status = 200, body = assay_api::insights::Insights), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn insights(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<assay_api::insights::Insights>> {
    Ok(Json(read(&state, &q).await?))
}

/// The insights a query string asks for (the dashboard's page too).
pub(crate) async fn read(
    state: &AppState,
    q: &HashMap<String, String>,
) -> Result<assay_api::insights::Insights, ApiError> {
    if let Some(unknown) = q.keys().find(|k| *k != "since" && *k != "by") {
        return Err(ApiError::bad_request(format!(
            "unknown parameter `{unknown}`: insights take `since` and `by`"
        )));
    }
    let now = assay_store::now_ms();
    let since = match q.get("since") {
        Some(s) => parse_since(s, now)?,
        None => now - DEFAULT_DAYS * 86_400_000,
    };
    let by = match q.get("by") {
        Some(b) => By::parse(b)?,
        None => By::Tool,
    };
    Ok(state.service.insights(&InsightsQuery { since, by }).await?)
}
