//! Bearer tokens with roles. Every `/v1` and `/mcp` request passes here: no token or an unknown one is
//! 401, a role too weak for the request is 403. What a request needs is decided here in one
//! place, from its method and path, so that no handler can forget to check.

use std::path::{Path, PathBuf};

use assay_store::{Store, TokenRole};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::{AppState, ServerError};

/// Who is calling, as handlers see it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: TokenRole,
}

/// The file in the data dir where the first admin token is kept for the local CLI.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The role a request needs: reads (and validating a document) are for viewers; running,
/// rerunning, aborting and retagging executions for runners;
/// everything else (workflows, templates, tokens) for admins.
///
/// MCP (`/mcp`) only needs a viewer here: each tool call is checked by the MCP layer against
/// the role this middleware puts in the request's extensions.
pub fn required_role(method: &Method, path: &str) -> TokenRole {
    if path == "/mcp" || path.starts_with("/mcp/") {
        return TokenRole::Viewer;
    }
    if method == Method::GET || method == Method::HEAD {
        return TokenRole::Viewer;
    }
    // Checking a document stores nothing (Testkube validates with PUT on the collection).
    if method == Method::PUT
        && (path == "/v1/test-workflows" || path == "/v1/test-workflow-templates")
    {
        return TokenRole::Viewer;
    }
    // Judging a gate reads executions and stores nothing.
    if method == Method::POST && path == "/v1/gates/evaluate" {
        return TokenRole::Viewer;
    }
    let tags = method == Method::PATCH
        && path.starts_with("/v1/test-workflow-executions/")
        && path.ends_with("/tags");
    if tags {
        return TokenRole::Runner;
    }
    // Agents (`assay agent`) claim, heartbeat and send results with runner tokens.
    if path.starts_with("/v1/agents/") && (method == Method::POST || method == Method::PUT) {
        return TokenRole::Runner;
    }
    let run = path.starts_with("/v1/test-workflows/") && path.ends_with("/executions");
    let abort = path.starts_with("/v1/test-workflow-executions/")
        && (path.ends_with("/abort") || path.ends_with("/rerun"));
    if method == Method::POST && (run || abort) {
        TokenRole::Runner
    } else {
        TokenRole::Admin
    }
}

/// `POST /v1/hooks/{name}`: authenticated by the hook's HMAC signature or GitLab token, not by
/// a bearer token (GitHub and GitLab cannot send one). Nothing else under `/v1/hooks` is.
pub fn is_hook_delivery(method: &Method, path: &str) -> bool {
    method == Method::POST
        && path
            .strip_prefix("/v1/hooks/")
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // A hook delivery proves itself with its signature (checked by `hooks::receive`).
    if is_hook_delivery(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    // The API description is public: a client needs it to learn how to authenticate.
    if !state.auth || request.uri().path() == "/v1/openapi.json" {
        request.extensions_mut().insert(Caller {
            name: "anonymous".into(),
            role: TokenRole::Admin,
        });
        request.extensions_mut().insert(TokenRole::Admin);
        return next.run(request).await;
    }
    // The dashboard's login cookie (SameSite=Strict) too, so that its live log stream works.
    let token = request_token(request.headers());
    let Some(token) = token else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this request needs `Authorization: Bearer TOKEN` (create one with `assay token create`)",
        )
        .into_response();
    };
    let info = match state.store.authenticate(&token).await {
        Ok(Some(info)) => info,
        Ok(None) => {
            return ApiError::new(StatusCode::UNAUTHORIZED, "unknown or revoked token")
                .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let needed = required_role(request.method(), request.uri().path());
    if info.role < needed {
        return ApiError {
            required_role: Some(needed.as_str()),
            ..ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token `{}` has role `{}`; this request needs `{}`",
                    info.name,
                    info.role.as_str(),
                    needed.as_str()
                ),
            )
        }
        .into_response();
    }
    // The bare role too, for the MCP layer (which knows no `Caller`).
    request.extensions_mut().insert(info.role);
    request.extensions_mut().insert(Caller {
        name: info.name,
        role: info.role,
    });
    next.run(request).await
}

/// The cookie the dashboard's login form sets: the token itself, HttpOnly and SameSite=Strict.
pub const TOKEN_COOKIE: &str = "assay_token";

/// The token a request carries: `Authorization: Bearer TOKEN`, else the `assay_token` cookie.
pub fn request_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .or_else(|| cookie_token(headers))
}

/// The token in the `assay_token` cookie, if the request has one.
pub fn cookie_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == TOKEN_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// On the first start (no token at all), create an admin token and keep it in
/// `<data-dir>/admin.token` (mode 0600) for the local CLI. Returns the new token, to be shown
/// once; `None` when tokens exist already.
pub async fn bootstrap_admin(
    store: &Store,
    data_dir: &Path,
) -> Result<Option<(String, PathBuf)>, ServerError> {
    if !store.list_tokens().await?.is_empty() {
        return Ok(None);
    }
    let (_, secret) = store.create_token("admin", TokenRole::Admin).await?;
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_private(&path, &format!("{secret}\n")).map_err(|e| ServerError::Io(path.clone(), e))?;
    Ok(Some((secret, path)))
}

/// Write a file only its owner can read.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}
