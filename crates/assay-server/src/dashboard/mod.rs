//! The web dashboard of `assay server`: server-rendered pages over the store.
//!
//! Pages are askama templates compiled into the binary (`templates/dashboard/`), the one CSS
//! file and the one small script are embedded with rust-embed (`assets/`): nothing is loaded
//! from elsewhere at run time. Everything but the live log stream works without JavaScript:
//! forms post and redirect, filters are GET forms.
//!
//! Who may do what is decided here too, on the server: [`session::require_login`] puts the
//! caller's [`Caller`] in every page request (a login cookie or a bearer token), and the POST
//! handlers that run, abort or rerun check for the runner role before calling the same code
//! paths as the REST API (`crate::executions`).

mod agents;
mod ansi;
mod charts;
mod executions;
mod format;
mod highlight;
mod insights;
mod session;
mod workflows;

use askama::Template;
use assay_store::TokenRole;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rust_embed::RustEmbed;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The dashboard's routes: pages behind the login check, `/login` and `/assets` outside it.
pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(workflows::index))
        .route("/workflows/{name}", get(workflows::show))
        .route("/workflows/{name}/run", post(workflows::run))
        .route("/executions", get(executions::list))
        .route("/insights", get(insights::show))
        .route("/agents", get(agents::list))
        .route("/executions/{id}", get(executions::show))
        .route("/executions/{id}/abort", post(executions::abort))
        .route("/executions/{id}/rerun", post(executions::rerun))
        .route(
            "/executions/{id}/artifacts/{*path}",
            get(executions::artifact),
        )
        .route("/badges/gate.svg", get(crate::gates::badge))
        .route("/logout", post(session::logout))
        .route_layer(from_fn_with_state(state, session::require_login));
    Router::new()
        .merge(pages)
        .route("/login", get(session::login_form).post(session::login))
        .route("/assets/{*path}", get(asset))
}

/// The files under `crates/assay-server/assets/`, in the binary.
#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Scripts only from this origin; styles inline too (bar widths in `style` attributes).
const PAGE_CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

async fn asset(Path(path): Path<String>) -> Response {
    match Assets::get(&path) {
        Some(file) => {
            let mime = mime_guess::from_path(&path).first_or_octet_stream();
            (
                [
                    (header::CONTENT_TYPE, mime.essence_str().to_string()),
                    (header::CACHE_CONTROL, "public, max-age=300".to_string()),
                ],
                file.data.into_owned(),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// What the page header needs: who is logged in and what they may do.
pub(crate) struct Nav {
    pub user: String,
    pub role: &'static str,
    pub can_run: bool,
    /// Whether logging out makes sense (auth is on).
    pub auth: bool,
    /// Which top-level page is current (`workflows`, `executions`, `insights`).
    pub active: &'static str,
}

impl Nav {
    /// For pages shown to nobody in particular (login, errors before login).
    pub fn none() -> Nav {
        Nav {
            user: String::new(),
            role: "",
            can_run: false,
            auth: false,
            active: "",
        }
    }

    pub fn new(caller: &Caller, auth: bool, active: &'static str) -> Nav {
        Nav {
            user: caller.name.clone(),
            role: caller.role.as_str(),
            can_run: caller.role >= TokenRole::Runner,
            auth,
            active,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage {
    nav: Nav,
    status: u16,
    title: String,
    detail: String,
    problems: Vec<String>,
}

/// An HTML error page with `status`.
pub(crate) fn error_page(
    nav: Option<Nav>,
    status: StatusCode,
    detail: impl Into<String>,
) -> Response {
    page_response(
        status,
        ErrorPage {
            nav: nav.unwrap_or_else(Nav::none),
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            detail: detail.into(),
            problems: Vec::new(),
        },
    )
}

/// An [`ApiError`] of the shared code paths as an HTML page.
pub(crate) fn api_error_page(nav: Option<Nav>, error: ApiError) -> Response {
    page_response(
        error.status,
        ErrorPage {
            nav: nav.unwrap_or_else(Nav::none),
            status: error.status.as_u16(),
            title: error
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            detail: error.detail,
            problems: error
                .problems
                .into_iter()
                .map(|p| match p.path {
                    Some(path) => format!("{path}: {}", p.message),
                    None => p.message,
                })
                .collect(),
        },
    )
}

/// A rendered page with the dashboard's headers.
pub(crate) fn page_response(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, html).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "failed to render a dashboard page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!doctype html><title>Error</title><p>failed to render this page</p>",
            )
                .into_response()
        }
    }
}

/// `303 See Other` to `location` (after a form post).
pub(crate) fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}
