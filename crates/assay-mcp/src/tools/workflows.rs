//! `list_workflows`, `get_workflow`, `validate_workflow`, `create_or_update_workflow`.

use std::collections::BTreeMap;
use std::fmt::Write;

use assay_spec::diagnostic::{self, Diagnostic};
use assay_spec::load::{Kind, Loaded};
use assay_spec::model::Document;
use assay_spec::{CompileRequest, Strictness, TemplateSet};
use assay_store::{ApplyOutcome, DefinitionKind, ExecutionFilter, LabelSelector};
use serde_json::json;

use super::{Tools, render_diagnostics};
use crate::args::{
    CreateOrUpdateWorkflowArgs, GetWorkflowArgs, ListWorkflowsArgs, ValidateWorkflowArgs,
};
use crate::error::{ToolError, ToolResult};
use crate::summary::{ago, call};
use crate::text::{self, PAGE_LIMIT};

/// The name YAML text is given in diagnostics.
pub(super) const INLINE: &str = "workflow.yaml";

/// YAML text checked like `assay validate` does: structure, semantics, then a compile of each
/// valid workflow against the stored templates and those in the text.
pub(super) struct Checked {
    pub loaded: Loaded,
    pub templates: TemplateSet,
}

impl Checked {
    fn errors(&self) -> usize {
        self.loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .count()
    }
}

impl Tools {
    pub(super) async fn check_text(&self, yaml: &str) -> ToolResult<Checked> {
        let mut loaded = assay_spec::validate::check_bytes(INLINE, yaml.as_bytes());
        let mut templates = self.stored_templates().await?;
        for doc in &loaded.documents {
            if loaded.is_valid(doc.index)
                && let Document::TestWorkflowTemplate(t) = &doc.document
            {
                templates.insert(t.clone());
            }
        }
        let mut extra: Vec<Diagnostic> = Vec::new();
        // Every workflow, repaired ones too: one answer lists the problems of every phase.
        for doc in loaded.documents.iter().chain(&loaded.repaired) {
            let Document::TestWorkflow(wf) = &doc.document else {
                continue;
            };
            let mut req = CompileRequest::new(wf, &templates);
            req.strictness = Strictness::Lenient;
            if let Err(errors) = assay_spec::compile(&req) {
                for e in errors {
                    let (line, column) = doc.locations.locate(&e.path).unwrap_or((doc.line, 1));
                    extra.push(
                        Diagnostic::error(INLINE, line, column, e.message)
                            .with_hint_opt(e.hint)
                            .in_document(doc.index)
                            .at_path(e.path),
                    );
                }
            }
        }
        for d in extra {
            if !diagnostic::is_follow_on(&loaded.diagnostics, &d) {
                loaded.diagnostics.push(d);
            }
        }
        diagnostic::sort(&mut loaded.diagnostics);
        Ok(Checked { loaded, templates })
    }

    /// `list_workflows`: stored workflows with their revision and last execution, then the
    /// templates' names.
    pub async fn list_workflows(&self, args: ListWorkflowsArgs) -> ToolResult {
        let selector = match &args.selector {
            Some(s) => LabelSelector::parse(s).map_err(|e| {
                ToolError::invalid(e).with_hint("use `key=value,key!=value,key,!key`")
            })?,
            None => LabelSelector::default(),
        };
        let defs = self
            .store
            .list_definitions(DefinitionKind::Workflow, &selector)
            .await?;
        let templates = self
            .store
            .list_definitions(DefinitionKind::Template, &selector)
            .await?;
        let mut out = String::new();
        if defs.is_empty() {
            let _ = writeln!(out, "no stored workflows");
        } else {
            let _ = writeln!(
                out,
                "{} workflow{} (name, revision, labels, last execution):",
                defs.len(),
                if defs.len() == 1 { "" } else { "s" }
            );
        }
        for def in defs.iter().take(100) {
            let last = self
                .store
                .list_executions(&ExecutionFilter {
                    workflow: Some(def.name.clone()),
                    limit: Some(1),
                    ..ExecutionFilter::default()
                })
                .await?;
            let mut line = format!("{}  rev {}", def.name, def.revision);
            if !def.labels.is_empty() {
                let labels: Vec<String> =
                    def.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = write!(line, "  labels {}", labels.join(","));
            }
            match last.first() {
                Some(e) => {
                    let _ = write!(line, "  last: {} {} {}", e.name, e.status, ago(e.status_at));
                }
                None => line.push_str("  never run"),
            }
            let _ = writeln!(out, "{line}");
        }
        if defs.len() > 100 {
            let _ = writeln!(
                out,
                "… and {} more; narrow with `selector`",
                defs.len() - 100
            );
        }
        if !templates.is_empty() {
            let names: Vec<&str> = templates.iter().take(50).map(|t| t.name.as_str()).collect();
            let _ = writeln!(out, "templates: {}", names.join(", "));
        }
        if defs.is_empty() {
            let _ = writeln!(
                out,
                "next: create_or_update_workflow {{\"yaml\": …}} to store one, or run_workflow {{\"yaml\": …}} to run YAML without storing it"
            );
        } else {
            let _ = writeln!(
                out,
                "next: {}; get_workflow {{\"name\": …}} for the YAML",
                call("run_workflow", json!({"name": defs[0].name, "wait": true}))
            );
        }
        Ok(text::clip_text(
            &out,
            PAGE_LIMIT,
            "narrow the list with `selector`",
        ))
    }

    /// `get_workflow`: the stored YAML of a workflow (or template).
    pub async fn get_workflow(&self, args: GetWorkflowArgs) -> ToolResult {
        let mut found = None;
        for kind in [DefinitionKind::Workflow, DefinitionKind::Template] {
            match self
                .store
                .get_definition(kind, &args.name, args.revision)
                .await
            {
                Ok(d) => {
                    found = Some(d);
                    break;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some(def) = found else {
            let what = match args.revision {
                Some(r) => format!("no revision {r} of a workflow or template `{}`", args.name),
                None => format!("no stored workflow or template `{}`", args.name),
            };
            return Err(
                ToolError::not_found(what).with_hint(self.workflow_names_hint(&args.name).await?)
            );
        };
        let header = format!(
            "# {} `{}`, revision {} (stored {})\n",
            def.kind.noun(),
            def.name,
            def.revision,
            ago(def.created_at)
        );
        Ok(text::clip_text(
            &format!("{header}{}", def.yaml),
            4 * PAGE_LIMIT,
            "the definition is larger than an answer may be",
        ))
    }

    /// `validate_workflow`: every problem of the text with its line and column.
    pub async fn validate_workflow(&self, args: ValidateWorkflowArgs) -> ToolResult {
        let checked = self.check_text(&args.yaml).await?;
        let loaded = &checked.loaded;
        let several = loaded.documents.len() > 1;
        let errors = checked.errors();
        let mut out = String::new();
        if errors == 0 {
            let docs: Vec<String> = loaded
                .documents
                .iter()
                .map(|d| format!("{} `{}`", d.kind.as_str(), d.name))
                .collect();
            let _ = writeln!(out, "valid: {}", docs.join(", "));
            out.push_str(&render_diagnostics(&loaded.diagnostics, several));
            let _ = writeln!(
                out,
                "next: create_or_update_workflow to store it, or run_workflow {{\"yaml\": …}} to run it"
            );
        } else {
            let _ = writeln!(
                out,
                "invalid: {errors} problem{}",
                if errors == 1 { "" } else { "s" }
            );
            out.push_str(&render_diagnostics(&loaded.diagnostics, several));
            let _ = writeln!(out, "next: fix these lines and validate again");
        }
        Ok(out)
    }

    /// `create_or_update_workflow`: validate, then store each document as a new revision.
    pub async fn create_or_update_workflow(&self, args: CreateOrUpdateWorkflowArgs) -> ToolResult {
        let checked = self.check_text(&args.yaml).await?;
        let loaded = &checked.loaded;
        let errors = checked.errors();
        if errors > 0 {
            return Err(ToolError::invalid(format!(
                "the YAML is not valid, nothing was stored ({errors} problem{}):\n{}",
                if errors == 1 { "" } else { "s" },
                render_diagnostics(&loaded.diagnostics, loaded.documents.len() > 1).trim_end()
            ))
            .with_hint(
                "fix these lines and call again; validate_workflow checks without storing",
            ));
        }
        if loaded.documents.is_empty() {
            return Err(ToolError::invalid("the YAML holds no document")
                .with_hint("pass a TestWorkflow (apiVersion: testworkflows.testkube.io/v1)"));
        }
        let single = loaded.documents.len() == 1;
        let mut out = String::new();
        let mut first_workflow = None;
        for doc in &loaded.documents {
            let kind = match doc.kind {
                Kind::TestWorkflow => DefinitionKind::Workflow,
                Kind::TestWorkflowTemplate => DefinitionKind::Template,
            };
            // One document keeps the caller's text (comments included); several are stored
            // one by one, each as its own YAML.
            let yaml = if single {
                args.yaml.clone()
            } else {
                serde_saphyr::to_string(&doc.raw)
                    .map_err(|e| ToolError::Internal(format!("failed to write YAML: {e}")))?
            };
            let labels: BTreeMap<String, String> = match &doc.document {
                Document::TestWorkflow(w) => &w.metadata.labels,
                Document::TestWorkflowTemplate(t) => &t.metadata.labels,
            }
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
            let (outcome, revision) = self.store.apply(kind, &doc.name, &yaml, &labels).await?;
            let what = match outcome {
                ApplyOutcome::Created => "created",
                ApplyOutcome::Updated => "updated",
                ApplyOutcome::Unchanged => "unchanged (same text as the latest revision)",
            };
            let _ = writeln!(
                out,
                "{} `{}`: {what}, revision {revision}",
                kind.noun(),
                doc.name
            );
            if kind == DefinitionKind::Workflow && first_workflow.is_none() {
                first_workflow = Some(doc.name.clone());
            }
        }
        if let Some(name) = first_workflow {
            let _ = writeln!(
                out,
                "next: {}",
                call("run_workflow", json!({"name": name, "wait": true}))
            );
        }
        Ok(out)
    }
}
