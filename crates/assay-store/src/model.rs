//! Records the store keeps, as the engine, the server and the CLI see them. Wire shapes
//! (Testkube's execution JSON) live in [`crate::testkube`].

use std::collections::BTreeMap;

use assay_spec::status::{ExecutionStatus, StepStatus};
use serde::{Deserialize, Serialize};

// Wire types that the store keeps as they are (defined in `assay-api`, which depends on no
// Assay crate).
pub use assay_api::execution::{
    Artifact, ChildExecution, CiContext, ConfigValue, ContextType, DefinitionKind, Output,
    ParentExecution, Report, RunningContext,
};

/// Unix time in milliseconds: the store's one time representation.
pub type UnixMs = i64;

/// Current time in unix milliseconds.
pub fn now_ms() -> UnixMs {
    chrono::Utc::now().timestamp_millis()
}

/// Tags: key/value pairs, queryable.
pub type Tags = BTreeMap<String, String>;

/// What the caller knows when it records a new execution.
#[derive(Debug, Clone, Default)]
pub struct NewExecution {
    /// Workflow name; the execution is named `"{workflow}-{number}"`.
    pub workflow: String,
    /// The submitted definition (YAML text) as it was run.
    pub definition: String,
    /// The compiled plan as JSON text, opaque to the store. May be set later with
    /// [`crate::Store::set_resolved`].
    pub resolved: Option<String>,
    pub config: BTreeMap<String, ConfigValue>,
    pub tags: Tags,
    pub running_context: RunningContext,
    /// `Queued` (server queue) or `Running` (started in this process right away).
    pub status: Option<ExecutionStatus>,
    /// Whether the calling process owns (runs) the execution now: it then holds a lease that
    /// readers check before they declare the execution abandoned. `None` = no owner yet.
    pub owner: Option<crate::lease::LeaseOwner>,
    /// When it was scheduled; `None` = now. For imports of older history (and tests).
    pub scheduled_at: Option<UnixMs>,
    /// The execution and step whose `execute` started this one.
    pub parent: Option<ParentExecution>,
    /// Testkube's execution target as JSON text (which agents may run it); `None`: any runner.
    pub target: Option<String>,
}

/// One step's result, keyed by its ref.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// Step ref (Testkube's step id in `result.steps`).
    #[serde(rename = "ref")]
    pub step_ref: String,
    /// Human name of the step, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Order of the step in the plan (for printing).
    pub position: i64,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<UnixMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time_ms: Option<i64>,
    /// The failed tests (keys) of the step's reports that were quarantined: the step failed
    /// only through them, so it passed (see [`crate::covering`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined_failures: Vec<String>,
}

impl StepResult {
    /// A step in `status` with nothing else known yet.
    pub fn new(step_ref: impl Into<String>, position: i64, status: StepStatus) -> Self {
        Self {
            step_ref: step_ref.into(),
            name: None,
            position,
            status,
            exit_code: None,
            started_at: None,
            finished_at: None,
            error_message: None,
            peak_memory_bytes: None,
            cpu_time_ms: None,
            quarantined_failures: Vec::new(),
        }
    }
}

/// The list view of an execution: everything but definitions, steps, outputs and artifacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSummary {
    pub id: String,
    pub name: String,
    pub number: i64,
    pub workflow: String,
    pub status: ExecutionStatus,
    pub scheduled_at: UnixMs,
    pub started_at: Option<UnixMs>,
    pub finished_at: Option<UnixMs>,
    pub status_at: UnixMs,
    pub tags: Tags,
    pub config: BTreeMap<String, ConfigValue>,
    pub running_context: RunningContext,
    pub error_message: Option<String>,
    pub abort_requested: bool,
    /// Problems met while recording the execution (an artifact or report that could not be
    /// stored). They never change its status: the run keeps its verdict, its logs and every
    /// artifact that could be stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_errors: Vec<String>,
    /// The execution and step whose `execute` started this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentExecution>,
}

/// Everything recorded about one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    /// The submitted definition (YAML).
    pub definition: String,
    /// The compiled plan (JSON text, opaque here).
    pub resolved: Option<String>,
    /// Steps in plan order.
    pub steps: Vec<StepResult>,
    pub outputs: Vec<Output>,
    pub reports: Vec<Report>,
    pub artifacts: Vec<Artifact>,
    /// The executions this one's `execute` steps started, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildExecution>,
}

impl std::ops::Deref for Execution {
    type Target = ExecutionSummary;
    fn deref(&self) -> &ExecutionSummary {
        &self.summary
    }
}

/// How a user addresses an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionRef {
    /// The UUID.
    Id(String),
    /// `"{workflow}-{number}"`.
    Name(String),
    /// Workflow and number.
    Number { workflow: String, number: i64 },
}

impl ExecutionRef {
    /// An id when the text is a UUID, else a name.
    pub fn parse(text: &str) -> Self {
        match uuid::Uuid::parse_str(text) {
            Ok(id) => ExecutionRef::Id(id.hyphenated().to_string()),
            Err(_) => ExecutionRef::Name(text.to_string()),
        }
    }
}

impl std::fmt::Display for ExecutionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecutionRef::Id(id) => write!(f, "execution `{id}`"),
            ExecutionRef::Name(name) => write!(f, "execution `{name}`"),
            ExecutionRef::Number { workflow, number } => {
                write!(f, "execution #{number} of workflow `{workflow}`")
            }
        }
    }
}

/// Filters of [`crate::Store::list_executions`]; all given conditions must hold.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub workflow: Option<String>,
    /// Any of these statuses (empty = all).
    pub statuses: Vec<ExecutionStatus>,
    /// Every one of these tags.
    pub tags: Vec<(String, String)>,
    /// Scheduled at or after this time.
    pub since: Option<UnixMs>,
    /// At most this many (newest first); `None` = 100.
    pub limit: Option<u32>,
    /// Only executions scheduled before this one (by id), for paging.
    pub before_id: Option<String>,
}

/// Numbers of executions by status ([`crate::Store::count_executions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts(pub std::collections::HashMap<ExecutionStatus, i64>);

impl StatusCounts {
    /// How many are in `status`.
    pub fn get(&self, status: ExecutionStatus) -> i64 {
        self.0.get(&status).copied().unwrap_or(0)
    }

    /// How many in all.
    pub fn total(&self) -> i64 {
        self.0.values().sum()
    }
}

/// What the owner reports when an execution ends.
#[derive(Debug, Clone)]
pub struct Finish {
    pub status: ExecutionStatus,
    pub error_message: Option<String>,
    pub at: UnixMs,
}

/// What [`crate::Store::take_queued`] did.
#[derive(Debug, Clone)]
pub enum Taken {
    /// Claimed and marked running: the execution as it is now.
    Started(Box<ExecutionSummary>),
    /// Claimed, but an abort was asked for while it waited (the reason): not started.
    AbortRequested(String),
    /// Someone else holds it, or it is not waiting any more (aborted, ended).
    NotAvailable,
}

/// A stored definition at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    pub kind: DefinitionKind,
    pub name: String,
    pub revision: i64,
    pub yaml: String,
    pub labels: BTreeMap<String, String>,
    /// When this revision was stored.
    pub created_at: UnixMs,
}

/// What [`crate::Store::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    /// First revision of a new (or deleted and re-applied) definition.
    Created,
    /// A new revision because the content or labels changed.
    Updated,
    /// Same content and labels as the latest revision: nothing stored.
    Unchanged,
}

/// How to delete a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// Hide it from get/list; revisions stay for the record and numbering continues on re-apply.
    Soft,
    /// Remove the definition and all its revisions.
    Hard,
}

/// One clause of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// Kubernetes-style equality label selector: `a=b,c!=d,e,!f`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

/// The label selectors [`LabelSelector::parse`] accepts, as a regular expression (for API
/// descriptions): comma-separated clauses, spaces around the parts allowed.
pub const LABEL_SELECTOR_PATTERN: &str = r"^ *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?(, *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?)*$";

/// A label key as Kubernetes writes them (`app`, `example.com/tier`): starts with a letter or
/// digit, then letters, digits, `-_./`.
fn is_label_key(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

/// A label value: letters, digits, `-_.`, possibly empty.
fn is_label_value(v: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl LabelSelector {
    /// Parse `key=value`, `key==value`, `key!=value`, `key`, `!key`, comma-separated (the
    /// grammar of [`LABEL_SELECTOR_PATTERN`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in text
            .split(',')
            .map(|p| p.trim_matches(' '))
            .filter(|p| !p.is_empty())
        {
            let req = if let Some((k, v)) = part.split_once("!=") {
                LabelRequirement::NotEquals(k.trim_matches(' ').into(), v.trim_matches(' ').into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                LabelRequirement::Equals(k.trim_matches(' ').into(), v.trim_matches(' ').into())
            } else if let Some(k) = part.strip_prefix('!') {
                LabelRequirement::NotExists(k.trim_matches(' ').into())
            } else {
                LabelRequirement::Exists(part.into())
            };
            let (key, value) = match &req {
                LabelRequirement::Equals(k, v) | LabelRequirement::NotEquals(k, v) => (k, Some(v)),
                LabelRequirement::Exists(k) | LabelRequirement::NotExists(k) => (k, None),
            };
            if key.is_empty() {
                return Err(format!("label selector `{part}` has no key"));
            }
            if !is_label_key(key) {
                return Err(format!(
                    "label selector `{part}`: `{key}` is not a label key (letters, digits, `-_./`)"
                ));
            }
            if let Some(v) = value.filter(|v| !is_label_value(v)) {
                return Err(format!(
                    "label selector `{part}`: `{v}` is not a label value (letters, digits, `-_.`)"
                ));
            }
            out.push(req);
        }
        Ok(LabelSelector(out))
    }

    /// Whether the labels satisfy every clause.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|req| match req {
            LabelRequirement::Equals(k, v) => labels.get(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => labels.get(k) != Some(v),
            LabelRequirement::Exists(k) => labels.contains_key(k),
            LabelRequirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// What [`crate::Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    pub executions: u64,
    /// Hook deliveries and outbound webhook attempts older than the age rule.
    pub deliveries: u64,
}

/// What [`crate::Store::recover_abandoned`] did to one execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovered {
    pub id: String,
    pub name: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selector_parses_and_matches() {
        let sel = LabelSelector::parse("team=qa, tier!=slow,smoke,!wip").unwrap();
        let mut labels = BTreeMap::new();
        labels.insert("team".to_string(), "qa".to_string());
        labels.insert("smoke".to_string(), String::new());
        assert!(sel.matches(&labels));
        labels.insert("wip".into(), "1".into());
        assert!(!sel.matches(&labels));
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn execution_ref_recognises_uuids() {
        assert!(matches!(
            ExecutionRef::parse("0190a0b0-0000-7000-8000-000000000000"),
            ExecutionRef::Id(_)
        ));
        assert_eq!(
            ExecutionRef::parse("smoke-3"),
            ExecutionRef::Name("smoke-3".into())
        );
    }
}
