//! The Assay server: Testkube-compatible REST under `/v1`, live notifications as Server-Sent
//! Events, bearer tokens with roles, and a queue that hands executions to a runner.
//!
//! The server holds no state of its own that matters: executions (queued ones included), logs,
//! tokens and definitions live in the store, so a restart loses nothing and a follower reads
//! what the runner persisted. Work goes to runners through [`queue::Dispatch`] (in-process for
//! now); the server never starts test processes itself.

pub mod agents;
pub mod auth;
mod dashboard;
mod definitions;
pub mod error;
mod executions;
pub mod gates;
pub mod git_triggers;
pub mod guard;
mod hooks;
mod insights;
pub mod kubernetes;
pub mod metrics;
pub mod notify;
mod quarantines;
pub mod queue;
pub mod schedule;
pub mod serve;
pub mod triggers;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
pub use serve::HttpLimits;

/// The port `assay server` listens on unless told otherwise (8088: free in Testkube's and
/// Kubernetes' usual ranges, easy to remember next to 8080).
pub const DEFAULT_PORT: u16 = 8088;

/// Requests bodies above this size are refused with 413 (workflows are a few KiB).
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// A `/v1` request that has not produced its response head in this time is answered 408 (a
/// client that stalls mid-upload, a stuck database). Streams are not cut: notifications and
/// artifact downloads send their head at once, and the limit ends there.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Hand runs without an execution target to agents too, instead of running them in this
    /// process (`--agents-only`). Runs with a target always wait for a matching agent.
    pub agents_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_concurrent: 4,
            auth: true,
            agents_only: false,
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

/// What every handler shares. Cheap to clone: one reference count (axum clones the state
/// for every request and every middleware layer; cloning each of [`Shared`]'s handles was
/// about 5% of a list request's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles behind an [`AppState`].
pub struct Shared {
    pub store: Store,
    /// The use cases (every run is submitted through it, into [`AppState::queue`]).
    pub service: assay_service::Service,
    pub queue: Queue,
    pub metrics: metrics::Metrics,
    pub auth: bool,
    /// Outbound webhooks: told when executions are queued (runs report through the dispatch).
    pub webhooks: webhooks::Webhooks,
    /// One shared poller per execution followed over notifications.
    pub hubs: notify::Hubs,
    /// Per-hook limit of deliveries that fail verification.
    pub unsigned_hooks: hooks::UnsignedLimiter,
    /// Runs handed to agents, and the signal that wakes their claims.
    pub agents: agents::Agents,
    /// Gates saved by name for badges ([`Server::with_gates`]).
    pub gates: gates::SavedGates,
    /// The REST list's entries of ended executions, by their stored record.
    pub list_cache: assay_store::testkube::ListCache,
}

/// Where the service's submitted runs go: counted, handed to the queue, and reported to
/// outbound webhooks as `queued` (adopted ones were counted and reported when submitted).
struct Submitted {
    queue: Queue,
    metrics: metrics::Metrics,
    webhooks: webhooks::Webhooks,
    agents: agents::Agents,
}

impl assay_service::QueueSink for Submitted {
    fn push(&self, ticket: assay_service::Queued) {
        if self.agents.agents_only() || ticket.is_targeted() {
            // It waits `queued` in the store for an agent's claim, not in this queue.
            if ticket.is_new() {
                self.metrics.queued(ticket.workflow());
                self.webhooks.queued(ticket.id());
            }
            self.agents.work_queued();
            return;
        }
        if ticket.is_new() {
            let id = ticket.id().to_string();
            self.metrics.queued(ticket.workflow());
            self.queue.push(ticket);
            self.webhooks.queued(&id);
        } else {
            self.queue.push(ticket);
        }
    }
}

/// A started server: its routes and the queue behind them.
pub struct Server {
    pub state: AppState,
    /// The MCP tools behind `/mcp` (their runs are this process's: stop them on shutdown).
    pub mcp_tools: Arc<assay_mcp::Tools>,
    /// Host names the server answers besides loopback ones ([`Server::with_allowed_hosts`]).
    allowed_hosts: Vec<String>,
    /// Timeouts and the connection limit ([`Server::with_http_limits`]).
    limits: HttpLimits,
    /// [`REQUEST_TIMEOUT`] unless changed with [`Server::with_request_timeout`].
    request_timeout: Duration,
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
        let webhooks = webhooks::Webhooks::start(store.clone(), metrics.clone(), None);
        let dispatch = webhooks.wrap(dispatch);
        let queue = Queue::start(
            store.clone(),
            dispatch,
            options.max_concurrent,
            metrics.clone(),
        );
        let agents = agents::Agents::new(options.agents_only);
        let service = assay_service::Service::new(store.clone()).with_queue(Arc::new(Submitted {
            queue: queue.clone(),
            metrics: metrics.clone(),
            webhooks: webhooks.clone(),
            agents: agents.clone(),
        }));
        service.adopt().await?;
        // Executions queued later by other servers on the same database are picked up too.
        queue::spawn_adopter(service.clone(), queue.clone());
        let state = AppState(Arc::new(Shared {
            store,
            service,
            queue,
            metrics,
            auth: options.auth,
            webhooks,
            hubs: notify::Hubs::default(),
            unsigned_hooks: hooks::UnsignedLimiter::default(),
            agents,
            gates: gates::SavedGates::default(),
            list_cache: Default::default(),
        }));
        // Runs of agents that stopped heartbeating end `aborted` once their lease expires.
        agents::spawn_sweeper(state.clone());
        // Runs started by agents over /mcp go through the queue too.
        let mcp_tools = Arc::new(
            assay_mcp::Tools::new(state.store.clone(), assay_mcp::ToolsConfig::default())
                .with_queue(Arc::new(executions::McpQueue(state.service.clone()))),
        );
        // Schedules fire until the queue stops (a stopping server takes no more work).
        schedule::spawn(state.clone(), state.queue.stopped());
        Ok(Server {
            state,
            mcp_tools,
            allowed_hosts: Vec::new(),
            limits: HttpLimits::default(),
            request_timeout: REQUEST_TIMEOUT,
        })
    }

    /// Answer requests for these host names (or `host:port`) too (`--allowed-host`); loopback
    /// names are always accepted. On a loopback listener every other name is refused with 421
    /// (against DNS rebinding); on another listener, once names are given, only those are
    /// answered. `/mcp` checks the same list.
    pub fn with_allowed_hosts(mut self, hosts: Vec<String>) -> Self {
        self.allowed_hosts = hosts;
        self
    }

    /// How often a followed execution is looked at in the store without a change signal
    /// (`None`: only on signals); by default [`notify::FALLBACK_SQLITE`] or
    /// [`notify::FALLBACK_POSTGRES`].
    pub fn with_follow_fallback(self, every: Option<Duration>) -> Self {
        self.state.hubs.set_fallback(every);
        self
    }

    /// Timeouts and the connection limit of [`Server::serve`] ([`HttpLimits`]).
    pub fn with_http_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Gates saved by name (`--gate NAME=FILE`): the badge `/badges/gate.svg?gate=NAME&…`
    /// judges by them. Only these, looked up by name; a request never names a file.
    pub fn with_gates(
        self,
        gates: std::collections::BTreeMap<String, assay_service::gate::Gate>,
    ) -> Self {
        self.state.gates.set(gates);
        self
    }

    /// Answer `/v1` requests that take longer than `timeout` with 408 ([`REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The axum app: [`router`] plus MCP over streamable HTTP at `/mcp`, behind the same
    /// token check (each tool call then checks the caller's role), all behind the
    /// [`guard`] (Host, Origin, content type). Without a listen address the Host check holds
    /// only the names given with [`Server::with_allowed_hosts`]; [`Server::serve`] knows it.
    pub fn router(&self) -> axum::Router {
        self.router_for(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    /// [`Server::router`] for a server listening on `listen`.
    fn router_for(&self, listen: std::net::IpAddr) -> axum::Router {
        let mcp = assay_mcp::http_router(self.mcp_tools.clone(), &self.allowed_hosts).layer(
            axum::middleware::from_fn_with_state(self.state.clone(), auth::authenticate),
        );
        let policy = Arc::new(guard::HostPolicy::new(listen, &self.allowed_hosts));
        app(self.state.clone(), Some(mcp), self.request_timeout)
            .layer(axum::middleware::from_fn_with_state(policy, guard::check))
            .layer(axum::middleware::from_fn(error::close_after_refused_body))
    }

    /// Serve on `listener` until `shutdown` resolves, with the [`HttpLimits`].
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listen = listener.local_addr()?.ip();
        let app = self.router_for(listen);
        serve::serve(listener, app, self.limits.clone(), shutdown).await
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Assay API", description = "Testkube-compatible continuous-testing API. Every /v1 request needs `Authorization: Bearer TOKEN`."),
    paths(executions::download_artifact),
    components(schemas(assay_api::ErrorBody, assay_api::Problem, assay_api::Notification, assay_api::NotificationEvent)),
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
            definitions::create_workflow,
            definitions::validate_workflow
        ))
        .routes(routes!(
            definitions::get_workflow,
            definitions::update_workflow,
            definitions::delete_workflow
        ))
        .routes(routes!(
            definitions::list_templates,
            definitions::create_template,
            definitions::validate_template
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
        .routes(routes!(executions::workflow_tags))
        .routes(routes!(executions::update_tags))
        .routes(routes!(executions::list_executions))
        .routes(routes!(executions::get_execution))
        .routes(routes!(executions::execution_analysis))
        .routes(routes!(insights::insights))
        .routes(routes!(executions::abort_execution))
        .routes(routes!(gates::evaluate))
        .routes(routes!(executions::execution_logs))
        .routes(routes!(executions::list_artifacts))
        .routes(routes!(notify::notifications))
        .routes(routes!(hooks::list_hooks))
        .routes(routes!(
            hooks::get_hook,
            hooks::put_hook,
            hooks::delete_hook,
            hooks::receive
        ))
        .routes(routes!(hooks::hook_deliveries))
        .routes(routes!(hooks::list_triggers, hooks::create_trigger))
        .routes(routes!(
            hooks::get_trigger,
            hooks::update_trigger,
            hooks::delete_trigger
        ))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::webhook_deliveries))
        .routes(routes!(
            quarantines::list_quarantines,
            quarantines::add_quarantine
        ))
        .routes(routes!(quarantines::remove_quarantine))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::claim))
        .routes(routes!(agents::heartbeat))
        .routes(routes!(agents::events))
        .routes(routes!(agents::artifact))
        .routes(routes!(agents::execute))
        // Artifact paths have slashes: a catch-all segment (documented through ApiDoc).
        .route(
            "/v1/test-workflow-executions/{id}/artifacts/{*path}",
            get(executions::download_artifact),
        )
}

/// The axum app over `state` (without `/mcp`: that needs the tools of a [`Server`]).
pub fn router(state: AppState) -> axum::Router {
    app(state, None, REQUEST_TIMEOUT)
}

/// The app, with `mcp` (already behind the auth middleware) served at `/mcp`; the error and
/// body-limit layers cover it too.
fn app(state: AppState, mcp: Option<axum::Router>, timeout: Duration) -> axum::Router {
    let (v1, doc) = api_router().split_for_parts();
    let v1 = v1
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    // Swagger UI also serves the document at /v1/openapi.json, outside the token check: a
    // client needs the description to learn how to authenticate.
    let mut app = axum::Router::new()
        .merge(v1)
        .merge(dashboard::router(state.clone()));
    if let Some(mcp) = mcp {
        app = app.route_service("/mcp", mcp);
    }
    app.merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/v1/openapi.json", doc))
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(error::close_after_refused_body))
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
