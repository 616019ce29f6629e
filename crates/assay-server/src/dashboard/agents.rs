//! `/agents`: the runner agents connected to this server (`assay agent`), as `/v1/agents`
//! lists them — whether each is connected, its runtime and labels, what it runs now.

use askama::Template;
use assay_api::agents::Agent;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::workflows::store_error;
use super::{Nav, error_page, page_response};
use crate::AppState;
use crate::auth::Caller;

#[derive(Template)]
#[template(path = "dashboard/agents.html")]
struct AgentsPage {
    nav: Nav,
    agents: Vec<Agent>,
    connected: usize,
}

pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    let nav = Nav::new(&caller, state.auth, "agents");
    match crate::agents::agents(&state).await {
        Ok(mut agents) => {
            // Connected first, then by name.
            agents.sort_by(|a, b| b.connected.cmp(&a.connected).then(a.name.cmp(&b.name)));
            let connected = agents.iter().filter(|a| a.connected).count();
            page_response(
                StatusCode::OK,
                AgentsPage {
                    nav,
                    agents,
                    connected,
                },
            )
        }
        Err(assay_service::ServiceError::Store(e)) => store_error(nav, e),
        Err(e) => error_page(
            Some(nav),
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to list the agents: {e}"),
        ),
    }
}
