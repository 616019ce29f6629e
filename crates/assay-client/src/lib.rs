//! A typed client of `assay server`'s REST API over reqwest: one method per endpoint the CLI
//! uses, answers as the wire types of `assay-api`, and every error response as the server's
//! `{"title","detail","status"}` body ([`ClientError::Api`]).
//!
//! Live notifications ([`Client::follow`]) are Server-Sent Events read with a small parser;
//! a dropped connection is resumed with `Last-Event-ID`, so no line is lost or repeated.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use assay_api::agents::{
    Agent, AgentAck, AgentChild, AgentEvents, AgentExecute, AgentHeartbeat, AgentHeartbeatReply,
    AgentHello, AgentWork,
};
use assay_api::{
    AbortResponse, Artifact, DefinitionKind, ErrorBody, ExecutionRequest, ExecutionsPage, Health,
    Notification, TestWorkflowExecution,
};

/// What can go wrong talking to a server. Messages are lowercase fragments that read after
/// "failed to".
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is not usable.
    #[error("use `{url}` as a server URL: {reason}")]
    BadUrl { url: String, reason: String },
    /// No answer: connection refused, DNS, TLS, timeout, or the connection dropped.
    #[error("reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an error status and its error body.
    #[error("{} ({} {})", .body.detail, .body.status, .body.title)]
    Api { body: ErrorBody },
    /// The server answered something this client does not understand.
    #[error("read the answer of {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { body } => Some(body.status),
            _ => None,
        }
    }
}

/// The innermost cause of an error, which says most (`Connection refused (os error 111)`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if e.to_string() == text {
        text
    } else {
        format!("{}: {text}", short_reqwest(e))
    }
}

fn short_reqwest(e: &(dyn std::error::Error + 'static)) -> String {
    match e.downcast_ref::<reqwest::Error>() {
        Some(r) if r.is_connect() => "cannot connect".into(),
        Some(r) if r.is_timeout() => "timed out".into(),
        Some(r) if r.is_body() || r.is_decode() => "the connection broke".into(),
        _ => e.to_string(),
    }
}

/// A filter of `GET /v1/test-workflow-executions`.
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery {
    pub workflow: Option<String>,
    /// Any of these statuses (`passed`, `failed`, …).
    pub statuses: Vec<String>,
    /// Every one of these tags.
    pub tags: Vec<(String, String)>,
    /// At most this many (1–1000).
    pub page_size: Option<u32>,
    /// `next` of the previous page.
    pub before: Option<String>,
}

/// One artifact being downloaded.
pub struct Download {
    /// Its size in bytes, when the server said.
    pub size: Option<u64>,
    pub stream: BoxStream<'static, Result<Bytes, ClientError>>,
}

/// One Server-Sent Event as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    pub id: Option<String>,
    /// `log`, `result` or `error` (`message` when the server named none).
    pub event: String,
    pub data: String,
}

/// One notification of [`Client::follow`].
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// A log line (`ref`, `log`).
    Log(Notification),
    /// The whole result after a change of status (`result`).
    Result(Notification),
}

/// A client of one server with one token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `base` (`http://host:8088`), sending `token` as a bearer
    /// token. Nothing is sent until a method is called.
    pub fn new(base: &str, token: Option<String>) -> Result<Client, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: base.to_string(),
            reason: reason.to_string(),
        };
        let mut url = Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("it must start with http:// or https://"));
        }
        if url.cannot_be_a_base() || url.host_str().is_none() {
            return Err(bad("it has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it must not have a query or a fragment"));
        }
        // A base path (a server behind a proxy prefix) keeps its segments.
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        if let Some(t) = &token
            && HeaderValue::from_str(&format!("Bearer {t}")).is_err()
        {
            return Err(bad("the token has characters a header cannot carry"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("assay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(&root_cause(&e)))?;
        Ok(Client {
            http,
            base: url,
            token,
        })
    }

    /// The server's base URL, as given (without a trailing slash).
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base` + the segments, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        // Each segment percent-encoded here: the URL parser drops tabs and newlines (as
        // browsers do), so `a\nb.txt` pushed as a segment would name `ab.txt`.
        let mut url = self.base.clone();
        let mut path = url.path().trim_end_matches('/').to_string();
        for s in segments {
            path.push('/');
            path.push_str(&escape_segment(s));
        }
        url.set_path(&path);
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
            None => req,
        }
    }

    /// Send; an error status becomes [`ClientError::Api`] with the server's body.
    async fn send(&self, req: RequestBuilder) -> Result<Response, ClientError> {
        let req = req.build().map_err(|e| ClientError::Protocol {
            url: self.base_url().to_string(),
            reason: root_cause(&e),
        })?;
        let url = req.url().clone();
        let response = self
            .http
            .execute(req)
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base_url().to_string(),
                reason: root_cause(&e),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| ErrorBody {
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            detail: {
                let t = text.trim();
                if t.is_empty() {
                    format!("{} answered {status}", url.path())
                } else {
                    t.chars().take(300).collect()
                }
            },
            status: status.as_u16(),
            problems: Vec::new(),
            required_role: None,
        });
        Err(ClientError::Api { body })
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, ClientError> {
        let response = self.send(req).await?;
        let url = response.url().path().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base_url().to_string(),
                reason: root_cause(&e),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            url: format!("{}{url}", self.base_url()),
            reason: e.to_string(),
        })
    }

    /// `GET /health` (no token needed).
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.json(self.request(Method::GET, self.url(&["health"])))
            .await
    }

    fn definitions_path(kind: DefinitionKind) -> &'static str {
        match kind {
            DefinitionKind::Workflow => "test-workflows",
            DefinitionKind::Template => "test-workflow-templates",
        }
    }

    /// `GET /v1/test-workflows` or `/v1/test-workflow-templates`: the stored documents as
    /// JSON, optionally by label selector.
    pub async fn list_definitions(
        &self,
        kind: DefinitionKind,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ClientError> {
        let mut url = self.url(&["v1", Self::definitions_path(kind)]);
        if let Some(s) = selector {
            url.query_pairs_mut().append_pair("selector", s);
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// One stored workflow or template as JSON.
    pub async fn get_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
    ) -> Result<Value, ClientError> {
        let url = self.url(&["v1", Self::definitions_path(kind), name]);
        self.json(self.request(Method::GET, url)).await
    }

    /// One stored `Webhook` or `TestTrigger` as JSON; `collection` is `webhooks` or `triggers`.
    pub async fn get_resource(&self, collection: &str, name: &str) -> Result<Value, ClientError> {
        let url = self.url(&["v1", collection, name]);
        self.json(self.request(Method::GET, url)).await
    }

    /// Store a new `Webhook` or `TestTrigger` from its YAML text (409 when it exists).
    pub async fn create_resource(
        &self,
        collection: &str,
        yaml: &str,
    ) -> Result<Value, ClientError> {
        let url = self.url(&["v1", collection]);
        let req = self
            .request(Method::POST, url)
            .header(CONTENT_TYPE, "text/yaml")
            .body(yaml.to_string());
        self.json(req).await
    }

    /// Replace a stored `Webhook` or `TestTrigger` with this YAML text.
    pub async fn update_resource(
        &self,
        collection: &str,
        name: &str,
        yaml: &str,
    ) -> Result<Value, ClientError> {
        let url = self.url(&["v1", collection, name]);
        let req = self
            .request(Method::PUT, url)
            .header(CONTENT_TYPE, "text/yaml")
            .body(yaml.to_string());
        self.json(req).await
    }

    /// Store a new workflow or template from its YAML text (409 when it exists).
    pub async fn create_definition(
        &self,
        kind: DefinitionKind,
        yaml: &str,
    ) -> Result<Value, ClientError> {
        let url = self.url(&["v1", Self::definitions_path(kind)]);
        let req = self
            .request(Method::POST, url)
            .header(CONTENT_TYPE, "text/yaml")
            .body(yaml.to_string());
        self.json(req).await
    }

    /// Replace a stored workflow or template with this YAML text (a new revision).
    pub async fn update_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
        yaml: &str,
    ) -> Result<Value, ClientError> {
        let url = self.url(&["v1", Self::definitions_path(kind), name]);
        let req = self
            .request(Method::PUT, url)
            .header(CONTENT_TYPE, "text/yaml")
            .body(yaml.to_string());
        self.json(req).await
    }

    /// Delete a stored workflow or template (its executions stay).
    pub async fn delete_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
    ) -> Result<(), ClientError> {
        let url = self.url(&["v1", Self::definitions_path(kind), name]);
        self.send(self.request(Method::DELETE, url)).await?;
        Ok(())
    }

    /// `POST /v1/test-workflows/{name}/executions`: queue a run of a stored workflow.
    pub async fn run_workflow(
        &self,
        name: &str,
        request: &ExecutionRequest,
    ) -> Result<TestWorkflowExecution, ClientError> {
        let url = self.url(&["v1", "test-workflows", name, "executions"]);
        self.json(self.request(Method::POST, url).json(request))
            .await
    }

    /// `GET /v1/quarantines` (`all`: expired entries too).
    pub async fn list_quarantines(
        &self,
        all: bool,
    ) -> Result<Vec<assay_api::quarantine::QuarantineEntry>, ClientError> {
        let mut url = self.url(&["v1", "quarantines"]);
        if all {
            url.query_pairs_mut().append_pair("all", "true");
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// `POST /v1/quarantines`: quarantine a test (admin).
    pub async fn add_quarantine(
        &self,
        request: &assay_api::quarantine::QuarantineRequest,
    ) -> Result<assay_api::quarantine::QuarantineEntry, ClientError> {
        let url = self.url(&["v1", "quarantines"]);
        self.json(self.request(Method::POST, url).json(request))
            .await
    }

    /// `DELETE /v1/quarantines/{test}?workflow=W`: lift a quarantine (admin).
    pub async fn remove_quarantine(
        &self,
        test: &str,
        workflow: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut url = self.url(&["v1", "quarantines", test]);
        if let Some(w) = workflow {
            url.query_pairs_mut().append_pair("workflow", w);
        }
        self.send(self.request(Method::DELETE, url)).await?;
        Ok(())
    }

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
        let path = response.url().path().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base_url().to_string(),
                reason: root_cause(&e),
            })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Protocol {
                url: format!("{}{path}", self.base_url()),
                reason: e.to_string(),
            })
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

    /// `POST /v1/test-workflow-executions/{id}/rerun`.
    pub async fn rerun(&self, id: &str) -> Result<TestWorkflowExecution, ClientError> {
        let url = self.url(&["v1", "test-workflow-executions", id, "rerun"]);
        self.json(self.request(Method::POST, url)).await
    }

    /// One page of executions, newest first.
    pub async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<ExecutionsPage, ClientError> {
        let mut url = self.url(&["v1", "test-workflow-executions"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(w) = &query.workflow {
                q.append_pair("workflow", w);
            }
            if !query.statuses.is_empty() {
                q.append_pair("status", &query.statuses.join(","));
            }
            if !query.tags.is_empty() {
                let tags: Vec<String> =
                    query.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                q.append_pair("tag", &tags.join(","));
            }
            if let Some(n) = query.page_size {
                q.append_pair("pageSize", &n.to_string());
            }
            if let Some(b) = &query.before {
                q.append_pair("before", b);
            }
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// One execution (by id or `workflow-number`) with its steps.
    pub async fn get_execution(&self, id: &str) -> Result<TestWorkflowExecution, ClientError> {
        let url = self.url(&["v1", "test-workflow-executions", id]);
        self.json(self.request(Method::GET, url)).await
    }

    /// Why an execution failed (`GET /v1/test-workflow-executions/{id}/analysis`).
    pub async fn analysis(&self, id: &str) -> Result<assay_api::analysis::Analysis, ClientError> {
        let url = self.url(&["v1", "test-workflow-executions", id, "analysis"]);
        self.json(self.request(Method::GET, url)).await
    }

    /// Judge an execution or a commit by a gate's rules (`POST /v1/gates/evaluate`).
    pub async fn evaluate_gate(
        &self,
        request: &assay_api::gate::GateRequest,
    ) -> Result<assay_api::gate::GateVerdict, ClientError> {
        let url = self.url(&["v1", "gates", "evaluate"]);
        self.json(self.request(Method::POST, url).json(request))
            .await
    }

    /// How changes fare by AI tool, team or workflow (`GET /v1/insights?since=…&by=…`).
    pub async fn insights(
        &self,
        since: &str,
        by: &str,
    ) -> Result<assay_api::insights::Insights, ClientError> {
        let mut url = self.url(&["v1", "insights"]);
        url.query_pairs_mut()
            .append_pair("since", since)
            .append_pair("by", by);
        self.json(self.request(Method::GET, url)).await
    }

    /// `POST /v1/test-workflow-executions/{id}/abort`.
    pub async fn abort(&self, id: &str) -> Result<AbortResponse, ClientError> {
        let url = self.url(&["v1", "test-workflow-executions", id, "abort"]);
        self.json(self.request(Method::POST, url)).await
    }

    /// The stored log as text (one step with `step`).
    pub async fn logs(&self, id: &str, step: Option<&str>) -> Result<String, ClientError> {
        let mut url = self.url(&["v1", "test-workflow-executions", id, "logs"]);
        if let Some(s) = step {
            url.query_pairs_mut().append_pair("step", s);
        }
        let response = self.send(self.request(Method::GET, url)).await?;
        response.text().await.map_err(|e| ClientError::Unreachable {
            url: self.base_url().to_string(),
            reason: root_cause(&e),
        })
    }

    /// The artifacts of an execution.
    pub async fn list_artifacts(&self, id: &str) -> Result<Vec<Artifact>, ClientError> {
        let url = self.url(&["v1", "test-workflow-executions", id, "artifacts"]);
        self.json(self.request(Method::GET, url)).await
    }

    /// Start downloading one artifact (its path `/`-separated, as listed).
    pub async fn download_artifact(&self, id: &str, path: &str) -> Result<Download, ClientError> {
        let mut segments = vec!["v1", "test-workflow-executions", id, "artifacts"];
        segments.extend(path.split('/'));
        let response = self
            .send(self.request(Method::GET, self.url(&segments)))
            .await?;
        let size = response.content_length();
        let base = self.base_url().to_string();
        let stream = response
            .bytes_stream()
            .map(move |chunk| {
                chunk.map_err(|e| ClientError::Unreachable {
                    url: base.clone(),
                    reason: root_cause(&e),
                })
            })
            .boxed();
        Ok(Download { size, stream })
    }

    /// `GET /v1/test-workflow-executions/{id}/notifications` once: the raw events, resuming
    /// after `last_event_id`. The stream ends when the execution ends (or the connection
    /// drops: then it ends with an error).
    pub async fn notifications(
        &self,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Result<BoxStream<'static, Result<ServerEvent, ClientError>>, ClientError> {
        let url = self.url(&["v1", "test-workflow-executions", id, "notifications"]);
        let mut req = self
            .request(Method::GET, url)
            .header("accept", "text/event-stream");
        if let Some(last) = last_event_id {
            req = req.header("last-event-id", last);
        }
        let response = self.send(req).await?;
        let base = self.base_url().to_string();
        let bytes = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| ClientError::Unreachable {
                url: base.clone(),
                reason: root_cause(&e),
            })
        });
        Ok(sse_events(bytes).boxed())
    }

    /// Follow an execution's notifications until it ends: what is stored first, then live.
    /// A connection that drops is opened again with `Last-Event-ID` (up to `retries` times in
    /// a row), so every line comes exactly once.
    pub fn follow(
        &self,
        id: &str,
        retries: u32,
    ) -> impl Stream<Item = Result<Followed, ClientError>> + Send + 'static {
        struct State {
            client: Client,
            id: String,
            last_id: Option<String>,
            current: Option<BoxStream<'static, Result<ServerEvent, ClientError>>>,
            failures: u32,
            retries: u32,
            ended: bool,
            done: bool,
        }
        let state = State {
            client: self.clone(),
            id: id.to_string(),
            last_id: None,
            current: None,
            failures: 0,
            retries,
            ended: false,
            done: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if s.done {
                    return None;
                }
                let Some(stream) = s.current.as_mut() else {
                    match s.client.notifications(&s.id, s.last_id.as_deref()).await {
                        Ok(stream) => s.current = Some(stream),
                        Err(e @ ClientError::Unreachable { .. }) if s.failures < s.retries => {
                            s.failures += 1;
                            tokio::time::sleep(backoff(s.failures)).await;
                            let _ = e;
                        }
                        Err(e) => {
                            s.done = true;
                            return Some((Err(e), s));
                        }
                    }
                    continue;
                };
                match stream.next().await {
                    Some(Ok(event)) => {
                        s.failures = 0;
                        if event.id.is_some() {
                            s.last_id = event.id.clone();
                        }
                        let parse = |data: &str| {
                            serde_json::from_str::<Notification>(data).map_err(|e| {
                                ClientError::Protocol {
                                    url: s.client.base_url().to_string(),
                                    reason: format!("a notification: {e}"),
                                }
                            })
                        };
                        let item = match event.event.as_str() {
                            "log" => parse(&event.data).map(Followed::Log),
                            "result" => parse(&event.data).map(|n| {
                                s.ended = n.result.as_ref().is_some_and(|r| r.status.is_terminal());
                                Followed::Result(n)
                            }),
                            "error" => {
                                let reason = serde_json::from_str::<Value>(&event.data)
                                    .ok()
                                    .and_then(|v| v["error"].as_str().map(str::to_string))
                                    .unwrap_or(event.data.clone());
                                s.done = true;
                                Err(ClientError::Protocol {
                                    url: s.client.base_url().to_string(),
                                    reason: format!("the server stopped the stream: {reason}"),
                                })
                            }
                            _ => continue,
                        };
                        if item.is_err() {
                            s.done = true;
                        }
                        return Some((item, s));
                    }
                    Some(Err(e)) => {
                        s.current = None;
                        if s.failures >= s.retries {
                            s.done = true;
                            return Some((Err(e), s));
                        }
                        s.failures += 1;
                        tokio::time::sleep(backoff(s.failures)).await;
                    }
                    None => {
                        s.current = None;
                        if s.ended {
                            return None;
                        }
                        // The stream closed before the execution ended (a server restart):
                        // resume where it stopped.
                        if s.failures >= s.retries {
                            s.done = true;
                            return Some((
                                Err(ClientError::Unreachable {
                                    url: s.client.base_url().to_string(),
                                    reason: "the notification stream kept closing".into(),
                                }),
                                s,
                            ));
                        }
                        s.failures += 1;
                        tokio::time::sleep(backoff(s.failures)).await;
                    }
                }
            }
        })
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250 * u64::from(failures.min(8)))
}

/// Parse a byte stream of `text/event-stream` into events (comments and retry lines dropped).
pub fn sse_events<S>(bytes: S) -> impl Stream<Item = Result<ServerEvent, ClientError>>
where
    S: Stream<Item = Result<Bytes, ClientError>> + Unpin,
{
    struct Parser<S> {
        bytes: S,
        buffer: Vec<u8>,
        /// Blocks before this index are parsed already (a chunk holds many events: dropping
        /// them one by one from the front would copy the rest each time).
        start: usize,
        finished: bool,
    }
    futures::stream::unfold(
        Parser {
            bytes,
            buffer: Vec::new(),
            start: 0,
            finished: false,
        },
        |mut p| async move {
            loop {
                if let Some(block) = next_block(&p.buffer, &mut p.start) {
                    if let Some(event) = parse_block(&block) {
                        return Some((Ok(event), p));
                    }
                    continue;
                }
                if p.finished {
                    return None;
                }
                p.buffer.drain(..p.start);
                p.start = 0;
                match p.bytes.next().await {
                    Some(Ok(chunk)) => p.buffer.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        p.finished = true;
                        p.buffer.clear();
                        return Some((Err(e), p));
                    }
                    None => {
                        // An unterminated last block is incomplete: drop it.
                        p.finished = true;
                        p.buffer.clear();
                    }
                }
            }
        },
    )
}

/// A path segment percent-encoded: everything but unreserved characters (RFC 3986).
fn escape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Take one complete block (up to a blank line) off the front of `buffer`.
#[cfg(test)]
fn take_block(buffer: &mut Vec<u8>) -> Option<String> {
    let mut start = 0;
    let block = next_block(buffer, &mut start)?;
    buffer.drain(..start);
    Some(block)
}

/// The complete block (up to a blank line) at `buffer[*start..]`, if there is one; `start`
/// moves past it.
fn next_block(buffer: &[u8], start: &mut usize) -> Option<String> {
    let text = &buffer[*start..];
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\n' {
            let rest = &text[i + 1..];
            let blank = if rest.first() == Some(&b'\n') {
                Some(i + 2)
            } else if rest.starts_with(b"\r\n") {
                Some(i + 3)
            } else {
                None
            };
            if let Some(end) = blank {
                let block = String::from_utf8_lossy(&text[..i]).into_owned();
                *start += end;
                return Some(block);
            }
        }
        i += 1;
    }
    None
}

fn parse_block(block: &str) -> Option<ServerEvent> {
    let mut id = None;
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = Some(value.to_string()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() && event.is_none() {
        return None;
    }
    Some(ServerEvent {
        id,
        event: event.unwrap_or_else(|| "message".into()),
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_on_blank_lines() {
        let mut buf =
            b": keep-alive\n\nevent: log\nid: 3;a=10\ndata: {\"x\":1}\n\nevent: res".to_vec();
        assert_eq!(take_block(&mut buf).as_deref(), Some(": keep-alive"));
        let block = take_block(&mut buf).unwrap();
        assert_eq!(
            parse_block(&block),
            Some(ServerEvent {
                id: Some("3;a=10".into()),
                event: "log".into(),
                data: "{\"x\":1}".into(),
            })
        );
        assert_eq!(take_block(&mut buf), None);
        assert_eq!(buf, b"event: res");
        assert_eq!(parse_block(": comment"), None);
    }

    #[test]
    fn urls_encode_each_segment() {
        let c = Client::new("http://127.0.0.1:8088/prefix", None).unwrap();
        assert_eq!(
            c.url(&["v1", "test-workflows", "a b/c"]).as_str(),
            "http://127.0.0.1:8088/prefix/v1/test-workflows/a%20b%2Fc"
        );
        assert_eq!(c.base_url(), "http://127.0.0.1:8088/prefix");
        assert!(Client::new("ftp://x", None).is_err());
        assert!(Client::new("not a url", None).is_err());
    }
}
