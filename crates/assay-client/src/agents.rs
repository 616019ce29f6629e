//! The runner agent's calls (`/v1/agents`).

use std::time::Duration;

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;

use assay_api::agents::{
    Agent, AgentAck, AgentChild, AgentEvents, AgentExecute, AgentHeartbeat, AgentHeartbeatReply,
    AgentHello, AgentWork,
};

use crate::*;

impl Client {
    /// `GET /v1/agents`: the agents the server knows.
    pub async fn list_agents(&self) -> Result<Vec<Agent>, ClientError> {
        self.json(self.request(Method::GET, self.url(&["v1", "agents"])))
            .await
    }

    /// `POST /v1/agents/{name}/claim`: register and wait (up to `hello.wait_ms`, 20 s at most)
    /// for an execution to run; `None` when none came.
    pub async fn agent_claim(
        &self,
        name: &str,
        hello: &AgentHello,
    ) -> Result<Option<AgentWork>, ClientError> {
        let url = self.url(&["v1", "agents", name, "claim"]);
        let response = self
            .send(
                self.request(Method::POST, url)
                    .json(hello)
                    .timeout(Duration::from_secs(60)),
            )
            .await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        self.decode(response).await.map(Some)
    }

    /// `POST /v1/agents/{name}/heartbeat`.
    pub async fn agent_heartbeat(
        &self,
        name: &str,
        beat: &AgentHeartbeat,
    ) -> Result<AgentHeartbeatReply, ClientError> {
        let url = self.url(&["v1", "agents", name, "heartbeat"]);
        self.json(
            self.request(Method::POST, url)
                .json(beat)
                .timeout(Duration::from_secs(30)),
        )
        .await
    }

    /// `POST /v1/agents/{name}/executions/{id}/execute`: queue (once) a child of an `execute`
    /// step of the run `id` and say how it is doing, waiting up to `request.wait_ms` for its end.
    pub async fn agent_execute(
        &self,
        name: &str,
        id: &str,
        request: &AgentExecute,
    ) -> Result<AgentChild, ClientError> {
        let url = self.url(&["v1", "agents", name, "executions", id, "execute"]);
        self.json(
            self.request(Method::POST, url)
                .json(request)
                .timeout(Duration::from_secs(60)),
        )
        .await
    }

    /// `POST /v1/agents/{name}/executions/{id}/events`: a batch of a run's events, in order.
    pub async fn agent_events(
        &self,
        name: &str,
        id: &str,
        batch: &AgentEvents,
    ) -> Result<AgentAck, ClientError> {
        let url = self.url(&["v1", "agents", name, "executions", id, "events"]);
        self.json(
            self.request(Method::POST, url)
                .json(batch)
                .timeout(Duration::from_secs(60)),
        )
        .await
    }

    /// `PUT /v1/agents/{name}/executions/{id}/artifacts?step=…&path=…`: one artifact file of a
    /// run, streamed from `file`.
    pub async fn agent_artifact(
        &self,
        name: &str,
        id: &str,
        session: &str,
        step: &str,
        path: &str,
        file: tokio::fs::File,
    ) -> Result<AgentAck, ClientError> {
        let mut url = self.url(&["v1", "agents", name, "executions", id, "artifacts"]);
        url.query_pairs_mut()
            .append_pair("step", step)
            .append_pair("path", path);
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        self.json(
            self.request(Method::PUT, url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("x-assay-agent-session", session)
                .body(body),
        )
        .await
    }
}
