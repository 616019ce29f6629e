//! Stored documents: workflows, templates, and the other kinds by collection.

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use assay_api::DefinitionKind;

use crate::*;

impl Client {
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
}
