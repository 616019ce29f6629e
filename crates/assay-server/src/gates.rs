//! Quality gates over HTTP: `POST /v1/gates/evaluate` (rules in the body; a viewer may call it,
//! it only reads) and the badge of a gate saved on the server (`assay server --gate NAME=FILE`),
//! `GET /badges/gate.svg?gate=NAME&commit=SHA` (or `execution=ID`), on the dashboard's login.
//!
//! The badge never reads a file named by the request: the query names a gate the server's
//! operator loaded at start, looked up by name in memory; an unknown name is a 404.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use assay_api::ErrorBody;
use assay_api::gate::{GateRequest, GateVerdict};
use assay_service::gate::{Gate, Target};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The gates saved on the server by name (`assay server --gate NAME=FILE`).
#[derive(Clone, Default)]
pub struct SavedGates(Arc<RwLock<BTreeMap<String, Gate>>>);

impl SavedGates {
    pub fn set(&self, gates: BTreeMap<String, Gate>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = gates;
    }

    fn get(&self, name: &str) -> Option<Gate> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn names(&self) -> Vec<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Judge an execution, or every execution tagged `commit=SHA` (the latest of each workflow), by
/// a gate's rules: each rule's verdict with its evidence. The answer is 200 whether the gate
/// passes or not (`passed` says); a bad gate document is a 400 with each problem's line and
/// column.
#[utoipa::path(post, path = "/v1/gates/evaluate", tag = "gates", request_body = GateRequest,
    responses((status = 200, body = GateVerdict), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 415, body = ErrorBody)))]
pub async fn evaluate(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<Json<GateVerdict>> {
    let request: GateRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not a gate request ({{\"rules\": …, \"execution\" or \"commit\": …}}): {e}"
        ))
    })?;
    let gate = Gate::from_value(&request.rules)?;
    let target = Target::from_request(request.execution.as_deref(), request.commit.as_deref())?;
    Ok(Json(
        state
            .service
            .evaluate_gate(&gate, &target, now_ms())
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct BadgeQuery {
    gate: String,
    #[serde(default)]
    commit: Option<String>,
    #[serde(default)]
    execution: Option<String>,
}

/// `GET /badges/gate.svg?gate=NAME&commit=SHA`: a saved gate's verdict as an SVG badge
/// (`passed` green, `failed` red, `no runs` grey when nothing is tagged with the commit).
pub async fn badge(
    State(state): State<AppState>,
    Query(q): Query<BadgeQuery>,
) -> Result<Response, ApiError> {
    let Some(gate) = state.gates.get(&q.gate) else {
        let known = state.gates.names();
        return Err(ApiError::not_found(if known.is_empty() {
            format!(
                "no gate named {:?}: this server has no saved gates (start it with --gate NAME=FILE)",
                q.gate
            )
        } else {
            format!(
                "no gate named {:?}; saved gates: {}",
                q.gate,
                known.join(", ")
            )
        }));
    };
    for v in [&q.commit, &q.execution].into_iter().flatten() {
        if v.len() > 200 {
            return Err(ApiError::bad_request("commit or execution is too long"));
        }
    }
    let target = Target::from_request(q.execution.as_deref(), q.commit.as_deref())?;
    let (text, colour) = match state.service.evaluate_gate(&gate, &target, now_ms()).await {
        Ok(v) if v.passed => ("passed", "#2e7d32"),
        Ok(_) => ("failed", "#c62828"),
        Err(assay_service::ServiceError::NotFound(_)) => ("no runs", "#757575"),
        Err(assay_service::ServiceError::Store(e)) if e.is_not_found() => ("no runs", "#757575"),
        Err(e) => return Err(e.into()),
    };
    let label = format!("gate {}", gate.name.as_deref().unwrap_or(&q.gate));
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        svg(&label, text, colour),
    )
        .into_response())
}

/// A flat two-part badge; both texts are escaped.
fn svg(label: &str, value: &str, colour: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    // About 7 px per character of an 11 px sans-serif font, 10 px of padding each side.
    let lw = 20 + 7 * label.chars().count();
    let vw = 20 + 7 * value.chars().count();
    let (label, value) = (esc(label), esc(value));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{colour}"/><g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{vx}" y="14">{value}</text></g></svg>"##,
        w = lw + vw,
        lx = lw / 2,
        vx = lw + vw / 2,
    )
}
