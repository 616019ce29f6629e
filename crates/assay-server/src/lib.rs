//! The Assay server: Testkube-compatible REST under `/v1`, live notifications as Server-Sent
//! Events, bearer tokens with roles, and a queue that hands executions to a runner.
//!
//! The server holds no state of its own that matters: executions (queued ones included), logs,
//! tokens and definitions live in the store, so a restart loses nothing and a follower reads
//! what the runner persisted. Work goes to runners through [`queue::Dispatch`] (in-process for
//! now); the server never starts test processes itself.

pub mod auth;
mod definitions;
pub mod error;
mod executions;
pub mod metrics;
pub mod notify;
pub mod queue;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use assay_api::{Health, TestWorkflowExecution};
use assay_store::Store;
use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{ADMIN_TOKEN_FILE, bootstrap_admin};
pub use queue::{Dispatch, LocalDispatch, Queue};

/// The port `assay server` listens on unless told otherwise (8088: free in Testkube's and
/// Kubernetes' usual ranges, easy to remember next to 8080).
pub const DEFAULT_PORT: u16 = 8088;

/// Requests bodies above this size are refused with 413 (workflows are a few KiB).
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] assay_store::StoreError),
    #[error("write {path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many executions run at once; the rest wait `queued`.
    pub max_concurrent: usize,
    /// Whether `/v1` needs tokens. Turning it off is only allowed on loopback ([`check_no_auth`]).
    pub auth: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_concurrent: 4,
            auth: true,
        }
    }
}

/// `--no-auth` is refused unless every address the server listens on is loopback.
pub fn check_no_auth(listen: &SocketAddr) -> Result<(), ServerError> {
    if listen.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServerError::Config(format!(
            "--no-auth is only allowed when listening on loopback (127.0.0.1 or ::1), not {listen}"
        )))
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: Queue,
    pub metrics: metrics::Metrics,
    pub auth: bool,
}

/// A started server: its routes and the queue behind them.
pub struct Server {
    pub state: AppState,
}

impl Server {
    /// Recover executions that were running when a previous server died (marked `aborted`
    /// with the reason), start the dispatcher, and queue again what was queued.
    pub async fn start(
        store: Store,
        options: Options,
        dispatch: Arc<dyn Dispatch>,
    ) -> Result<Server, ServerError> {
        for r in store.recover_abandoned().await? {
            tracing::info!(execution = %r.name, reason = %r.reason, "recovered an abandoned execution");
        }
        let metrics = metrics::Metrics::new();
        let queue = Queue::start(
            store.clone(),
            dispatch,
            options.max_concurrent,
            metrics.clone(),
        );
        for id in queue::queued_in_store(&store).await? {
            queue.push(id);
        }
        Ok(Server {
            state: AppState {
                store,
                queue,
                metrics,
                auth: options.auth,
            },
        })
    }

    /// The axum app.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// Serve on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Assay API", description = "Testkube-compatible continuous-testing API. Every /v1 request needs `Authorization: Bearer TOKEN`."),
    paths(executions::download_artifact),
    components(schemas(assay_api::ErrorBody, assay_api::Problem, assay_api::Notification)),
    modifiers(&Security),
    security(("bearer" = []))
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole OpenAPI document (3.1), generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            definitions::list_workflows,
            definitions::create_workflow
        ))
        .routes(routes!(
            definitions::get_workflow,
            definitions::update_workflow,
            definitions::delete_workflow
        ))
        .routes(routes!(
            definitions::list_templates,
            definitions::create_template
        ))
        .routes(routes!(
            definitions::get_template,
            definitions::update_template,
            definitions::delete_template
        ))
        .routes(routes!(
            executions::run_workflow,
            executions::list_workflow_executions
        ))
        .routes(routes!(executions::rerun_execution))
        .routes(routes!(executions::workflow_metrics))
        .routes(routes!(executions::list_executions))
        .routes(routes!(executions::get_execution))
        .routes(routes!(executions::abort_execution))
        .routes(routes!(executions::execution_logs))
        .routes(routes!(executions::list_artifacts))
        .routes(routes!(notify::notifications))
        // Artifact paths have slashes: a catch-all segment (documented through ApiDoc).
        .route(
            "/v1/test-workflow-executions/{id}/artifacts/{*path}",
            get(executions::download_artifact),
        )
}

/// The axum app over `state`.
pub fn router(state: AppState) -> axum::Router {
    let (v1, doc) = api_router().split_for_parts();
    let v1 = v1.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ));
    // Swagger UI also serves the document at /v1/openapi.json, outside the token check: a
    // client needs the description to learn how to authenticate.
    axum::Router::new()
        .merge(v1)
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/v1/openapi.json", doc))
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state
            .metrics
            .render(state.queue.depth(), state.queue.running()),
    )
}

/// Keep the type in the public API (it is the body of most execution responses).
pub type Execution = TestWorkflowExecution;
