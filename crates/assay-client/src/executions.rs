//! Runs and history: queue, rerun, list, get, analyse, gate, insights, abort, logs, artifacts.

use futures::StreamExt;
use reqwest::Method;

use assay_api::{AbortResponse, Artifact, ExecutionRequest, ExecutionsPage, TestWorkflowExecution};

use crate::*;

impl Client {
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
}
