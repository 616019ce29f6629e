//! One YAML document: its `apiVersion` and `kind`, then the typed workflow or template.

use serde_json::Value;
use serde_saphyr::Spanned;

use crate::deserialize::{Ctx, deserialize_repaired};
use crate::diagnostic::Diagnostic;
use crate::located::{self, Node};
use crate::model::{Document, TestWorkflow, TestWorkflowTemplate};

use super::resource::load_resource;
use super::*;

pub(super) fn load_document(
    file: &str,
    text: &str,
    index: usize,
    root: &Spanned<Node>,
    loaded: &mut Loaded,
) {
    let (line, column) = located::position(root);
    let err = |line: usize, column: usize, msg: String| {
        Diagnostic::error(file, line, column, msg).in_document(index)
    };
    match &root.value {
        Node::Null => return, // `---` with nothing after it
        Node::Map(_) => {}
        other => {
            loaded.checked += 1;
            loaded.diagnostics.push(
                err(line, column, format!(
                    "a document must be a mapping with `apiVersion`, `kind`, `metadata` and `spec`, found {}",
                    node_kind(other)
                )),
            );
            return;
        }
    }
    let converted = located::to_json(root, text);
    let value = converted.value;
    let locations = converted.locations;

    let kind_name = match value.get("kind") {
        None | Some(Value::Null) => {
            loaded.checked += 1;
            loaded.diagnostics.push(
                err(line, column, "document has no `kind`".to_string())
                    .with_hint("add `kind: TestWorkflow` or `kind: TestWorkflowTemplate`"),
            );
            return;
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            let (l, c) = locations.locate("kind").unwrap_or((line, column));
            loaded.checked += 1;
            loaded.diagnostics.push(err(
                l,
                c,
                format!("`kind` must be a string, found {}", json_kind(other)),
            ));
            return;
        }
    };
    if let Some(kind) = ResourceKind::from_name(&kind_name) {
        loaded.checked += 1;
        let doc = RawDoc {
            file,
            text,
            index,
            line,
            column,
            value,
            locations,
            problems: &converted.problems,
        };
        load_resource(doc, kind, loaded);
        return;
    }
    let Some(kind) = Kind::from_name(&kind_name) else {
        // A near miss of our kinds (a letter or two off) is a typo, not some other Kubernetes
        // object; `TestWorkflowExecution` and friends are real kinds and are skipped.
        let typo_of = ["TestWorkflow", "TestWorkflowTemplate"]
            .into_iter()
            .find(|k| strsim::levenshtein(&kind_name.to_lowercase(), &k.to_lowercase()) <= 2);
        if let Some(close) = typo_of {
            let (l, c) = locations.locate("kind").unwrap_or((line, column));
            loaded.checked += 1;
            loaded.diagnostics.push(
                err(l, c, format!("unknown kind `{kind_name}`"))
                    .with_hint(format!("did you mean `{close}`?")),
            );
        }
        return;
    };
    loaded.checked += 1;

    for p in &converted.problems {
        let d = if p.warning {
            Diagnostic::warning(file, p.line, p.column, &p.message)
        } else {
            Diagnostic::error(file, p.line, p.column, &p.message)
        };
        loaded.diagnostics.push(
            d.with_hint_opt(p.hint.clone())
                .in_document(index)
                .at_path(&p.path),
        );
    }
    let tree_errors = converted.problems.iter().any(|p| !p.warning);

    let mut ok = !tree_errors;
    match value.get("apiVersion") {
        Some(Value::String(v)) if v == API_VERSION => {}
        None | Some(Value::Null) => {
            ok = false;
            loaded.diagnostics.push(
                err(line, column, "document has no `apiVersion`".to_string())
                    .with_hint(format!("add `apiVersion: {API_VERSION}`")),
            );
        }
        Some(other) => {
            ok = false;
            let (l, c) = locations.locate("apiVersion").unwrap_or((line, column));
            let shown = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_string);
            loaded.diagnostics.push(
                err(l, c, format!("unsupported apiVersion `{shown}`"))
                    .with_hint(format!("Assay reads `apiVersion: {API_VERSION}`"))
                    .at_path("apiVersion"),
            );
        }
    }

    let work = typed_input(&value);

    let ctx = Ctx {
        file,
        text,
        index,
        locations: &locations,
    };
    let document = match kind {
        Kind::TestWorkflow => {
            deserialize_repaired::<TestWorkflow>(&ctx, work, &mut loaded.diagnostics)
                .map(|(d, clean)| (Document::TestWorkflow(d), clean))
        }
        Kind::TestWorkflowTemplate => {
            deserialize_repaired::<TestWorkflowTemplate>(&ctx, work, &mut loaded.diagnostics)
                .map(|(d, clean)| (Document::TestWorkflowTemplate(d), clean))
        }
    };
    if let Some((document, clean)) = document {
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let doc = LoadedDocument {
            index,
            kind,
            name,
            document,
            raw: value,
            locations,
            line,
        };
        if clean && ok {
            loaded.documents.push(doc);
        } else {
            loaded.repaired.push(doc);
        }
    }
}

/// A document turned into JSON, before it is typed.
pub(super) struct RawDoc<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    pub(super) index: usize,
    pub(super) line: usize,
    pub(super) column: usize,
    pub(super) value: Value,
    pub(super) locations: Locations,
    pub(super) problems: &'a [located::TreeProblem],
}
