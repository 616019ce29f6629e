//! One [`Backend`] for the commands that work on history and definitions: the embedded store
//! on this machine ([`Embedded`], through `assay-service` and `assay-store`) or a server's API
//! through a context ([`Server`], through `assay-client`). A command opens one with
//! [`ConnArgs::backend`](crate::remote::ConnArgs::backend), asks it for data, and prints the
//! same way whichever it is; the choice between the two is made once, here, not in each command.
//!
//! Errors are already the user's messages (exit codes of design.md §5): a server's are named
//! by [`Remote::err`], the store's by `store_err`. The operations of `assay-service` return a
//! [`BackendError`] instead, so each command keeps its own hint for the service's refusals.
//!
//! The two implementations live in `embedded.rs` and `server.rs`.

mod embedded;
mod server;

pub use embedded::Embedded;
pub use server::Server;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use assay_api::agents::Agent;
use assay_api::analysis::Analysis;
use assay_api::gate::GateVerdict;
use assay_api::insights::Insights;
use assay_api::quarantine::{QuarantineEntry, QuarantineRequest};
use assay_service::ServiceError;
use assay_service::gate::{Gate, Target};
use assay_service::insights::By;
use assay_spec::load::ResourceKind;
use assay_store::testkube::TestWorkflowExecution;
use assay_store::{ApplyOutcome, DefinitionKind, ExecutionRef, ExecutionStatus, Store, UnixMs};
use futures::stream::BoxStream;

/// A boxed future, as the [`Backend`] methods return them (the trait stays object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The failure of an operation of `assay-service`: the service's own refusal (the command
/// words it, with its hint), or a message ready for the user.
#[derive(Debug)]
pub enum BackendError {
    Service(ServiceError),
    User(anyhow::Error),
}

impl BackendError {
    /// The user's message: the service's refusal worded by `service`.
    pub fn worded(self, service: impl FnOnce(ServiceError) -> anyhow::Error) -> anyhow::Error {
        match self {
            BackendError::Service(e) => service(e),
            BackendError::User(e) => e,
        }
    }
}

/// One stored workflow or template in a list; revision and time are known for the embedded
/// store only.
pub struct ListedDefinition {
    pub name: String,
    pub revision: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub updated: Option<UnixMs>,
    /// The document as JSON.
    pub doc: serde_json::Value,
}

/// One stored definition: its text when the backend keeps it (the store does; a server's API
/// answers JSON only), and the document as JSON.
pub struct DefinitionText {
    pub yaml: Option<String>,
    pub doc: serde_json::Value,
}

/// One revision of a stored definition.
pub struct Revision {
    pub revision: i64,
    pub stored: UnixMs,
    pub labels: BTreeMap<String, String>,
}

/// Which executions `assay get executions` lists, newest first.
pub struct ExecutionsWanted {
    pub workflow: Option<String>,
    pub statuses: Vec<ExecutionStatus>,
    pub tags: Vec<(String, String)>,
    /// Scheduled at or after this time.
    pub since: Option<UnixMs>,
    pub limit: u32,
}

/// What became of an abort request.
pub enum AbortOutcome {
    /// It was queued: aborted at once, it never runs.
    Aborted,
    /// It runs: whoever runs it stops it.
    Requested,
    /// It had already ended, with this status.
    Ended(String),
}

/// An execution's artifacts.
pub struct Artifacts {
    pub id: String,
    pub name: String,
    pub list: Vec<assay_api::Artifact>,
}

/// A quality gate to evaluate: the file's text (a server checks it again) and what was read
/// from it here.
pub struct GateCall<'a> {
    pub text: &'a str,
    pub gate: &'a Gate,
    pub target: &'a Target,
    pub execution: Option<&'a str>,
    pub commit: Option<&'a str>,
}

/// One log line, whatever the backend.
pub struct LogLine {
    /// RFC 3339.
    pub ts: String,
    pub step: String,
    pub text: String,
}

/// An execution's steps, for `assay logs`: `(ref, name)` in plan order.
pub struct LogSteps {
    pub id: String,
    pub name: String,
    pub steps: Vec<(String, Option<String>)>,
}

/// Where a command's data lives: the embedded store, or a server through a context.
pub trait Backend: Send + Sync {
    /// The runner agents a server knows (`assay get agents`).
    fn list_agents(&self) -> BoxFuture<'_, anyhow::Result<Vec<Agent>>>;

    /// Stored workflows or templates, optionally by label selector.
    fn list_definitions<'a>(
        &'a self,
        kind: DefinitionKind,
        selector: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedDefinition>>>;

    /// One stored definition (the latest revision, or `revision`).
    fn definition<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        revision: Option<i64>,
    ) -> BoxFuture<'a, anyhow::Result<DefinitionText>>;

    /// Every revision of a stored definition, oldest first (empty: not found).
    fn revisions<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Revision>>>;

    /// Store a workflow or template: what happened, and the revision when the backend says.
    fn apply<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        yaml: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<(ApplyOutcome, Option<i64>)>>;

    /// Store a `Webhook` or `TestTrigger`.
    fn apply_resource<'a>(
        &'a self,
        kind: ResourceKind,
        name: &'a str,
        yaml: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, anyhow::Result<ApplyOutcome>>;

    /// Delete a definition (`purge`: its revisions too); false when there was none.
    fn delete_definition<'a>(
        &'a self,
        kind: DefinitionKind,
        name: &'a str,
        purge: bool,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;

    /// Executions, newest first.
    fn list_executions(
        &self,
        wanted: ExecutionsWanted,
    ) -> BoxFuture<'_, anyhow::Result<Vec<TestWorkflowExecution>>>;

    /// One execution, in Testkube's shape.
    fn execution<'a>(
        &'a self,
        reference: &'a ExecutionRef,
    ) -> BoxFuture<'a, anyhow::Result<TestWorkflowExecution>>;

    /// Ask whoever runs an execution to abort it: its name, and what became of the request.
    fn abort<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<(String, AbortOutcome)>>;

    /// An execution's artifacts.
    fn artifacts<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, anyhow::Result<Artifacts>>;

    /// The bytes of one artifact of execution `id`.
    fn download<'a>(
        &'a self,
        id: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<BoxStream<'a, anyhow::Result<Vec<u8>>>>>;

    /// An execution's steps, for `assay logs`.
    fn log_steps<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, anyhow::Result<LogSteps>>;

    /// An execution's log lines in batches: stored ones step by step in plan order (`steps`),
    /// or (`follow`) every line as it comes until the execution ends. `only`: one step's.
    fn log_lines<'a>(
        &'a self,
        steps: &'a LogSteps,
        only: Option<&'a str>,
        follow: bool,
    ) -> BoxStream<'a, anyhow::Result<Vec<LogLine>>>;

    /// Why an execution failed.
    fn analysis<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Analysis, BackendError>>;

    /// How changes fare per AI tool, team or workflow; `since_text` is what the user gave.
    fn insights<'a>(
        &'a self,
        since_text: &'a str,
        since: UnixMs,
        by: By,
    ) -> BoxFuture<'a, Result<Insights, BackendError>>;

    /// A quality gate's verdict.
    fn evaluate_gate<'a>(
        &'a self,
        call: GateCall<'a>,
    ) -> BoxFuture<'a, Result<GateVerdict, BackendError>>;

    /// Quarantine a test (`by`: who, for the embedded store; a server knows the token's).
    fn quarantine<'a>(
        &'a self,
        request: &'a QuarantineRequest,
        by: &'a str,
    ) -> BoxFuture<'a, Result<QuarantineEntry, BackendError>>;

    /// The quarantined tests (`all`: expired ones too).
    fn quarantines(&self, all: bool) -> BoxFuture<'_, Result<Vec<QuarantineEntry>, BackendError>>;

    /// Lift a quarantine.
    fn unquarantine<'a>(
        &'a self,
        test: &'a str,
        workflow: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// The store on this machine, for what only it can answer (`what` names the command for
    /// the refusal through a server).
    fn store(&self, what: &str) -> anyhow::Result<&Store>;

    /// Let go of what the backend holds (the store's connections).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}
