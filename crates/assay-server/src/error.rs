//! The one error type of the handlers, rendered as `{"title","detail","status"}`.

use assay_api::{ErrorBody, Problem};
use assay_store::StoreError;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub problems: Vec<Problem>,
    /// On a 403: the role the request needs (`requiredRole` in the body).
    pub required_role: Option<&'static str>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            problems: Vec::new(),
            required_role: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail.to_string())
    }
}

pub fn body(status: StatusCode, detail: String, problems: Vec<Problem>) -> ErrorBody {
    ErrorBody {
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        detail,
        status: status.as_u16(),
        problems,
        required_role: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = body(self.status, self.detail, self.problems);
        error.required_role = self.required_role.map(str::to_string);
        let mut response = (self.status, Json(error)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::Invalid(_) => ApiError::bad_request(e.to_string()),
            other => ApiError::internal(format!("failed to {other}")),
        }
    }
}

impl From<assay_service::ServiceError> for ApiError {
    fn from(e: assay_service::ServiceError) -> Self {
        use assay_service::ServiceError as E;
        match e {
            E::Invalid { detail, problems } => ApiError {
                problems: problems.into_iter().map(problem).collect(),
                ..ApiError::bad_request(detail)
            },
            E::BadRequest(detail) => ApiError::bad_request(detail),
            E::NotFound(detail) => ApiError::not_found(detail),
            E::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, detail),
            e @ E::SensitiveNotRecorded { .. } => ApiError::bad_request(format!(
                "{e}; they cannot be given again through the API (rerun it with `assay rerun --secret KEY=VALUE` against the store)"
            )),
            E::Store(e) => e.into(),
            E::Internal(detail) => ApiError::internal(detail),
        }
    }
}

fn problem(p: assay_service::Problem) -> Problem {
    Problem {
        line: p.line,
        column: p.column,
        message: p.message,
        hint: p.hint,
        path: p.path,
    }
}

/// An error answer to a request whose body was sent closes the connection (`Connection: close`).
/// A request refused before its body is read (401, 403, 413, 415, …) leaves that body unread;
/// hyper then closes the connection after answering, and a client that reuses it for its next
/// request (keep-alive) finds it closed and gets no answer at all. Saying so in the answer makes
/// every client open a new connection instead.
pub async fn close_after_refused_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let sent_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    let status = response.status();
    if sent_body && (status.is_client_error() || status.is_server_error()) {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Turns every other error response (unknown route, wrong method, body too large, a rejected
/// extractor) into the same JSON shape, keeping its status and text.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    // HTML error pages are the dashboard's own.
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, inner) = response.into_parts();
    let text = axum::body::to_bytes(inner, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut out = (status, Json(body(status, detail, Vec::new()))).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
