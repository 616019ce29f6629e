//! Testkube's `TestTrigger` (`tests.testkube.io/v1`) and `Webhook` (`executor.testkube.io/v1`)
//! documents, field for field as Testkube's `api/testtriggers/v1` and `api/executor/v1` define
//! them, every struct `deny_unknown_fields` like the workflow model.
//!
//! A `TestTrigger` reacts to Kubernetes events: Assay stores it, and it acts once a Kubernetes
//! runtime exists. A `Webhook` is acted on by `assay server`: it POSTs to `uri` when an
//! execution of a workflow matching `selector` starts or ends. Nested Kubernetes objects
//! (label selectors, probes, conditions, targets) are kept as free-form JSON.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::model::{ObjectMeta, Opaque};

mod check;

pub use check::validate_resource;

fn is_false(b: &bool) -> bool {
    !*b
}

/// The apiVersion of `TestTrigger` documents.
pub const TEST_TRIGGER_API_VERSION: &str = "tests.testkube.io/v1";
/// The apiVersion of `Webhook` documents.
pub const WEBHOOK_API_VERSION: &str = "executor.testkube.io/v1";

/// Testkube's `TestTrigger`: run workflows when a Kubernetes resource changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestTrigger {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: TestTriggerSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Opaque>,
}

/// `spec` of a `TestTrigger`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestTriggerSpec {
    /// A Kubernetes label selector of the events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Opaque>,
    /// `pod`, `deployment`, `statefulset`, `daemonset`, `service`, `ingress`, `event`,
    /// `configmap`, `content`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_ref: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_selector: Option<TestTriggerSelector>,
    /// `created`, `modified`, `deleted`, `git-push`, `deployment-image-update`, ...
    #[serde(default)]
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "match")]
    pub matches: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_spec: Option<Opaque>,
    /// HTTP probes that must all answer (status below 400) before the runs are queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_spec: Option<TestTriggerProbeSpec>,
    /// What a `resource: content` trigger watches: a git repository's branches, tags and paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_selector: Option<TestTriggerContentSelector>,
    /// `run` (the only action Testkube has).
    #[serde(default)]
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_parameters: Option<TestTriggerActionParameters>,
    /// `test`, `testsuite` or `testworkflow` (Assay runs workflows only).
    #[serde(default)]
    pub execution: String,
    #[serde(default)]
    pub test_selector: TestTriggerSelector,
    /// `allow`, `forbid` or `replace`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub concurrency_policy: String,
    /// A Go duration (`10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
}

/// Which Kubernetes objects a trigger watches or acts on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestTriggerSelector {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name_regex: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_regex: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<Opaque>,
}

/// Testkube's `probeSpec`: HTTP GETs that must all succeed, tried again every `delay` seconds
/// (default 1) for at most `timeout` seconds (default 60).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestTriggerProbeSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<TestTriggerProbe>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// One probe: `GET scheme://host:port/path` with `headers`. Without `host`, the event's pod
/// (its IP's DNS name) or service (`NAME.NAMESPACE.svc.cluster.local`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestTriggerProbe {
    /// `http` (default) or `https`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Default `/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: i32,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
}

/// Longest `probeSpec.timeout` Assay accepts, in seconds: a probe holds a task (and a
/// connection) of the server for that long.
pub const MAX_PROBE_TIMEOUT: i32 = 3600;

/// Testkube's `contentSelector`: the content a `resource: content` trigger watches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestTriggerContentSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<TestTriggerContentGit>,
}

/// A git repository a trigger polls (`contentSelector.git`), as Testkube's
/// `TestTriggerContentGitSpec` has it. Patterns are globs (`*` stays within a `/`-separated
/// part, `**` spans parts); an `*Ignore` list wins over its list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestTriggerContentGit {
    /// `https://`, `http://`, `ssh://`, `git://` or `user@host:path`.
    #[serde(default)]
    pub uri: String,
    /// Branches a `git-push` watches (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches_ignore: Vec<String>,
    /// Paths a change must touch (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths_ignore: Vec<String>,
    /// Tags a `git-tag-push` watches (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_ignore: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// A Kubernetes `EnvVarSource` (`secretKeyRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_from: Option<Opaque>,
    /// Refused: it would be stored, and shown, in the clear (use `tokenFrom`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_from: Option<Opaque>,
    /// Refused: it would be stored, and shown, in the clear (use `sshKeyFrom`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ssh_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_from: Option<Opaque>,
    /// `basic` (default: the token as a password) or `header` (`Authorization: Bearer`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_type: String,
    /// What a `git-pull-request` trigger watches of a repository's pull requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<TestTriggerContentGitPullRequest>,
}

/// `contentSelector.git.pullRequest`, as Testkube's `TestTriggerContentGitPullRequest` has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestTriggerContentGitPullRequest {
    /// The actions that fire ([`PR_ACTIONS`]; empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Base branches (globs) the pull request targets (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches_ignore: Vec<String>,
}

/// The events of `resource: content` triggers that Assay watches.
pub const GIT_EVENTS: &[&str] = &["git-push", "git-tag-push", "git-pull-request"];

/// The pull request actions a `git-pull-request` trigger tells apart (Testkube's).
pub const PR_ACTIONS: &[&str] = &["opened", "synchronize", "reopened", "closed"];

/// Config and tags a trigger passes to the workflows it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestTriggerActionParameters {
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub config: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tags: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Opaque>,
}

/// Testkube's `Webhook`: a POST to `uri` on execution events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Webhook {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: WebhookSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Opaque>,
}

/// `spec` of a `Webhook`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookSpec {
    /// Where to POST (a template in Assay's payload template language).
    #[serde(default)]
    pub uri: String,
    /// Event types ([`WEBHOOK_EVENTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Label selector over the workflow's labels (`team=qa,tier!=slow`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Send `{FIELD: "<the event JSON as a string>"}` instead of the event JSON.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload_object_field: String,
    /// The body, as a template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload_template: String,
    /// A `WebhookTemplate` resource's name (not supported by Assay).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload_template_reference: String,
    /// Request headers; values are templates.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// Deprecated in Testkube and unused there; accepted and ignored.
    #[serde(default, skip_serializing_if = "is_false")]
    pub on_state_change: bool,
    /// Values for the templates: `value` in the open, or `secret` (read from the server's
    /// environment, never shown).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub config: IndexMap<String, WebhookConfigValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<WebhookParameterSchema>,
    /// A `WebhookTemplate` to include (not supported by Assay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_template_ref: Option<WebhookTemplateRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Opaque>,
}

/// One `config` value of a webhook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookConfigValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
}

/// Testkube's reference to a Kubernetes secret's key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl SecretRef {
    /// The environment variable Assay reads this secret from: `NAME_KEY` upper-cased, every
    /// character other than a letter or digit turned into `_` (`{name: slack, key: token}` →
    /// `SLACK_TOKEN`).
    pub fn env_var(&self) -> String {
        format!("{}_{}", self.name, self.key)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// A declared webhook parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookParameterSchema {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub example: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pattern: String,
}

/// A reference to a `WebhookTemplate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookTemplateRef {
    pub name: String,
}

/// The workflow event types of Testkube's `EventType` that Assay's server sends. The test and
/// test suite ones (`start-test`, ...) are Testkube's legacy kinds, which Assay does not run.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "queue-testworkflow",
    "start-testworkflow",
    "end-testworkflow-success",
    "end-testworkflow-failed",
    "end-testworkflow-aborted",
    "end-testworkflow-canceled",
    "end-testworkflow-not-passed",
    "become-testworkflow-up",
    "become-testworkflow-down",
    "become-testworkflow-failed",
    "become-testworkflow-aborted",
    "become-testworkflow-canceled",
    "become-testworkflow-not-passed",
];

/// Testkube's `TestTriggerEvent` values.
pub const TEST_TRIGGER_EVENTS: &[&str] = &[
    "created",
    "modified",
    "deleted",
    "git-push",
    "git-tag-push",
    "git-pull-request",
    "deployment-scale-update",
    "deployment-image-update",
    "deployment-env-update",
    "deployment-containers-modified",
    "deployment-generation-modified",
    "deployment-resource-modified",
    "event-start-test",
    "event-end-test-success",
    "event-end-test-failed",
    "event-end-test-aborted",
    "event-end-test-timeout",
    "event-start-testsuite",
    "event-end-testsuite-success",
    "event-end-testsuite-failed",
    "event-end-testsuite-aborted",
    "event-end-testsuite-timeout",
    "event-queue-testworkflow",
    "event-start-testworkflow",
    "event-end-testworkflow-success",
    "event-end-testworkflow-failed",
    "event-end-testworkflow-aborted",
    "event-end-testworkflow-canceled",
    "event-end-testworkflow-not-passed",
    "event-created",
    "event-updated",
    "event-deleted",
];

/// Testkube's `TestTriggerResource` values.
pub const TEST_TRIGGER_RESOURCES: &[&str] = &[
    "pod",
    "deployment",
    "statefulset",
    "daemonset",
    "service",
    "ingress",
    "event",
    "configmap",
    "content",
];

/// A `TestTrigger` or a `Webhook`: documents that are stored, not compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    TestTrigger(Box<TestTrigger>),
    Webhook(Box<Webhook>),
}

impl Resource {
    /// The document's labels.
    pub fn labels(&self) -> &IndexMap<String, String> {
        match self {
            Resource::TestTrigger(t) => &t.metadata.labels,
            Resource::Webhook(w) => &w.metadata.labels,
        }
    }
}
