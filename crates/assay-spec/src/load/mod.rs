//! Loading: YAML text in, typed documents and located diagnostics out.
//!
//! ```
//! let text = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\n\
//!             metadata: {name: hello}\nspec:\n  steps:\n  - shel: echo hi\n";
//! let loaded = assay_spec::load::load("hello.yaml", text);
//! assert_eq!(loaded.checked, 1);
//! assert!(loaded.documents.is_empty()); // the only document did not load
//! let first = loaded.diagnostics[0].to_string();
//! assert_eq!(first, "hello.yaml:6:5: unknown field `shel`\n  hint: did you mean `shell`?");
//! ```
//!
//! How it works, and what callers can rely on:
//!
//! - Each YAML document of a file is read on its own into a located tree (`located.rs`), turned
//!   into a [`serde_json::Value`] (kept as [`LoadedDocument::raw`]) plus a [`Locations`] table,
//!   and the typed [`Document`] is deserialized from that value with `serde_path_to_error`, so
//!   every serde error has a JSON path that maps back to a line and column.
//! - Every problem is reported, not just the first: after an error the offending node is removed
//!   or replaced with a neutral value and deserialization is tried again (at most
//!   [`MAX_ERRORS_PER_DOCUMENT`] times).
//! - `TestWorkflow` and `TestWorkflowTemplate` documents are checked into [`Loaded::documents`],
//!   `TestTrigger` and `Webhook` ones into [`Loaded::resources`]. Other kinds (Test,
//!   ConfigMap, ...) are skipped without a word and counted nowhere; a document without
//!   a `kind` is an error. An empty document (`---` and nothing) is not a document.
//! - A repeated mapping key keeps its last value with a warning, as Kubernetes does. YAML 1.1
//!   booleans (`yes`, `no`, `on`, `off`) are booleans, as in Kubernetes.
//! - Hostile input is bounded: at most [`MAX_INPUT_BYTES`] per file, nesting depth, node count
//!   and alias expansion limited by serde-saphyr's budget; each breach is one error.
//! - `null` behaves like an absent field (Go's `encoding/json` does the same), so `env:` with
//!   nothing after it is fine.
//!
//! The compiler reports problems by JSON path (`spec.steps[2].template.name`); turn one into a
//! position with [`Locations::locate`] on the document's `locations`.
//!
//! The parts: this module reads a file into YAML documents; `document.rs` checks one document
//! (`apiVersion`, `kind`) and types a workflow or template; `resource.rs` types a `TestTrigger`
//! or `Webhook`.

mod document;
mod resource;

use document::load_document;

use serde_json::Value;
use serde_saphyr::{DuplicateKeyPolicy, NonFiniteFloatPolicy, Spanned};

use crate::diagnostic::{self, Diagnostic};
use crate::located::Node;
use crate::model::Document;
use crate::triggers::{self, Resource};

pub use crate::located::Locations;

/// The only `apiVersion` Assay reads.
pub const API_VERSION: &str = "testworkflows.testkube.io/v1";

/// Largest file accepted. Kubernetes stores at most 1.5 MiB per object, so a real workflow file
/// is far below this; anything above is refused before parsing.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

/// Most problems reported for one document (and most retries of its deserialization).
pub const MAX_ERRORS_PER_DOCUMENT: usize = 50;

/// Deepest nesting of YAML collections accepted. The deepest document of the conformance corpus
/// nests 11 levels; 32 allows about 14 levels of nested steps, and keeps the recursive
/// deserializers within a 2 MiB thread stack even in debug builds.
pub const MAX_DEPTH: usize = 32;

/// Most YAML events replayed through aliases in one file (billion-laughs protection).
pub const MAX_ALIAS_REPLAY: usize = 100_000;

/// Which of the two document kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    TestWorkflow,
    TestWorkflowTemplate,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TestWorkflow => "TestWorkflow",
            Kind::TestWorkflowTemplate => "TestWorkflowTemplate",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        match name {
            "TestWorkflow" => Some(Kind::TestWorkflow),
            "TestWorkflowTemplate" => Some(Kind::TestWorkflowTemplate),
            _ => None,
        }
    }
}

/// Kinds that are stored and acted on by the server, not compiled: Testkube's `TestTrigger`
/// and `Webhook`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    TestTrigger,
    Webhook,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::TestTrigger => "TestTrigger",
            ResourceKind::Webhook => "Webhook",
        }
    }

    /// The one `apiVersion` Assay reads for this kind.
    pub fn api_version(self) -> &'static str {
        match self {
            ResourceKind::TestTrigger => triggers::TEST_TRIGGER_API_VERSION,
            ResourceKind::Webhook => triggers::WEBHOOK_API_VERSION,
        }
    }

    fn from_name(name: &str) -> Option<ResourceKind> {
        match name {
            "TestTrigger" => Some(ResourceKind::TestTrigger),
            "Webhook" => Some(ResourceKind::Webhook),
            _ => None,
        }
    }
}

/// One `TestTrigger` or `Webhook` document that loaded into the typed model.
#[derive(Debug, Clone)]
pub struct LoadedResource {
    /// Index of the YAML document in its file (0-based, counting every document).
    pub index: usize,
    pub kind: ResourceKind,
    /// `metadata.name` (may be empty; validation reports that).
    pub name: String,
    pub resource: Resource,
    /// The document as JSON, exactly as written.
    pub raw: Value,
    /// Where every JSON path of `raw` is in the file.
    pub locations: Locations,
    /// 1-based line where the document starts.
    pub line: usize,
}

/// One document that loaded into the typed model.
#[derive(Debug, Clone)]
pub struct LoadedDocument {
    /// Index of the YAML document in its file (0-based, counting every document).
    pub index: usize,
    pub kind: Kind,
    /// `metadata.name` (may be empty; validation reports that).
    pub name: String,
    pub document: Document,
    /// The document as JSON, exactly as written (including `kind`, and `null`s).
    pub raw: Value,
    /// Where every JSON path of `raw` is in the file.
    pub locations: Locations,
    /// 1-based line where the document starts.
    pub line: usize,
}

/// Everything [`load`] found in one file.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The checked documents that loaded into the typed model, in file order.
    pub documents: Vec<LoadedDocument>,
    /// Documents with errors that loaded once their bad parts were left out: checked further
    /// (semantics, the compiler) so that one pass reports every problem, never stored or run.
    pub repaired: Vec<LoadedDocument>,
    /// The checked `TestTrigger` and `Webhook` documents that loaded, in file order.
    pub resources: Vec<LoadedResource>,
    /// How many documents were checked: TestWorkflow / TestWorkflowTemplate / TestTrigger /
    /// Webhook documents, documents without a `kind`, and 1 for a file that could not be read as
    /// YAML at all.
    pub checked: usize,
    /// Problems in file order; warnings included.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// How many checked documents have at least one error (a file-level error counts as one).
    pub fn invalid(&self) -> usize {
        let mut docs: Vec<Option<usize>> = self
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.document)
            .collect();
        docs.sort_unstable();
        docs.dedup();
        docs.len().min(self.checked)
    }

    /// Whether the document with this index has no errors.
    pub fn is_valid(&self, index: usize) -> bool {
        !self
            .diagnostics
            .iter()
            .any(|d| d.is_error() && (d.document == Some(index) || d.document.is_none()))
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Load raw bytes: like [`load`], but invalid UTF-8 is one located error instead of a panic.
pub fn load_bytes(file: &str, bytes: &[u8]) -> Loaded {
    match std::str::from_utf8(bytes) {
        Ok(text) => load(file, text),
        Err(err) => {
            let valid = &bytes[..err.valid_up_to()];
            // Safe: the prefix up to `valid_up_to` is valid UTF-8 by definition.
            let prefix = std::str::from_utf8(valid).unwrap_or_default();
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            file_error(
                file,
                line,
                column,
                format!(
                    "not valid UTF-8 (byte {} is not part of a UTF-8 character)",
                    err.valid_up_to()
                ),
                Some("save the file as UTF-8".to_string()),
            )
        }
    }
}

/// Load every document of one file. `file` is only used in diagnostics. Never panics, whatever
/// the input.
pub fn load(file: &str, text: &str) -> Loaded {
    if text.len() > MAX_INPUT_BYTES {
        return file_error(
            file,
            1,
            1,
            format!(
                "file is too large ({:.1} MiB; the limit is {} MiB)",
                text.len() as f64 / (1024.0 * 1024.0),
                MAX_INPUT_BYTES / (1024 * 1024)
            ),
            Some("Kubernetes stores at most 1.5 MiB per object; split the file".to_string()),
        );
    }
    let roots: Vec<Spanned<Node>> =
        match serde_saphyr::from_str_multiple_with_options(text, yaml_options()) {
            Ok(roots) => roots,
            Err(err) => return yaml_error(file, text, &err),
        };

    let mut loaded = Loaded::default();
    for (index, root) in roots.iter().enumerate() {
        load_document(file, text, index, root, &mut loaded);
    }
    diagnostic::sort(&mut loaded.diagnostics);
    loaded
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    options.budget = Some(budget);
    // Anchors and aliases are rare in workflows; a bomb stops after this much replay.
    let mut aliases = serde_saphyr::options::AliasLimits::default();
    aliases.max_total_replayed_events = MAX_ALIAS_REPLAY;
    options.alias_limits = aliases;
    // Duplicates reach the located tree, which keeps the last and warns (Kubernetes' behaviour).
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    // `.inf`/`.nan` have no JSON form; keep them as the strings they were written as.
    options.non_finite_float_policy = NonFiniteFloatPolicy::AsString;
    options.with_snippet = false;
    // Kubernetes reads YAML 1.1: `mode: 0755` is octal 493, as file modes are written.
    options.legacy_octal_numbers = true;
    options
}

fn file_error(
    file: &str,
    line: usize,
    column: usize,
    message: String,
    hint: Option<String>,
) -> Loaded {
    Loaded {
        checked: 1,
        diagnostics: vec![Diagnostic::error(file, line, column, message).with_hint_opt(hint)],
        ..Loaded::default()
    }
}

/// One error for a file that is not YAML (or breaks a limit).
fn yaml_error(file: &str, text: &str, err: &serde_saphyr::Error) -> Loaded {
    let err = err.without_snippet();
    let (line, column) = err.location().map_or((1, 1), |l| {
        (l.line().max(1) as usize, l.column().max(1) as usize)
    });
    let mut message = err.to_string();
    // serde-saphyr prefixes "line N column M: "; we print the position ourselves.
    if let Some(rest) = message.strip_prefix("error: ") {
        message = rest.to_string();
    }
    if let Some(i) = message.find(": ")
        && message[..i].starts_with("line ")
        && message[..i].contains(" column ")
    {
        message = message[i + 2..].to_string();
    }
    let mut message = message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    // Some parser messages end with the position again; we already print it in front.
    if let Some(i) = message.rfind(" at line ")
        && message[i..].contains(", column ")
    {
        message.truncate(i);
    }
    let (message, hint) = explain_yaml_error(text, message);
    file_error(file, line, column, message, hint)
}

/// Limits get their own wording; anything else is "not valid YAML".
fn explain_yaml_error(text: &str, message: String) -> (String, Option<String>) {
    let lower = message.to_lowercase();
    if lower.contains("recursion limit") || lower.contains("depth") {
        return (
            format!("YAML nested deeper than {MAX_DEPTH} levels"),
            Some("real workflows nest far less; flatten the document".to_string()),
        );
    }
    if lower.contains("alias") && (lower.contains("limit") || lower.contains("budget")) {
        return (
            format!(
                "YAML aliases expand too much (more than {MAX_ALIAS_REPLAY} replayed nodes; an alias bomb?)"
            ),
            Some("use fewer aliases, or write the repeated parts out".to_string()),
        );
    }
    if lower.contains("budget") || lower.contains("limit exceeded") {
        let what = lower
            .split("budget breached: ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("size")
            .to_string();
        return (
            format!("YAML too large: too many {what}"),
            Some("split the file; Kubernetes stores at most 1.5 MiB per object".to_string()),
        );
    }
    let hint = looks_like_helm(text)
        .then(|| "is this a Helm template? render it with `helm template` first".to_string());
    (format!("not valid YAML: {message}"), hint)
}

/// Helm/Go-template markers at the start of a line or as a whole value.
fn looks_like_helm(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim_start();
        t.starts_with("{{-")
            || t.starts_with("{{ .Values")
            || t.starts_with("{{ include")
            || t.starts_with("{{ if")
            || t.starts_with("{{ end")
    }) || text.contains(".Values.")
}

fn node_kind(node: &Node) -> &'static str {
    match node {
        Node::Null => "nothing",
        Node::Bool(_) => "a boolean",
        Node::Int(_) | Node::UInt(_) | Node::Float(_) => "a number",
        Node::Str(_) => "a string",
        Node::Seq(_) => "a list",
        Node::Map(_) => "a mapping",
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A document as its typed model reads it: without `kind` (the enum variant says it) and
/// without nulls (they mean "absent").
fn typed_input(value: &Value) -> Value {
    let mut work = value.clone();
    if let Value::Object(map) = &mut work {
        map.shift_remove("kind");
    }
    strip_nulls(&mut work);
    work
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
