//! `get_workflow_schema`: the fields of a TestWorkflow, TestWorkflowTemplate or TestTrigger, from
//! the CRDs Assay ships (`deploy/kubernetes/crds/`, checked against Testkube's real workflows by
//! `crates/assay-cli/tests/deploy.rs`), as one line per field, agent-sized: a `path` zooms into
//! a part (`spec.steps`).

use std::fmt::Write;

use serde_json::Value;

use super::Tools;
use crate::args::WorkflowSchemaArgs;
use crate::error::{ToolError, ToolResult};

const WORKFLOW: &str = include_str!("../../../../deploy/kubernetes/crds/testworkflows.yaml");
const TEMPLATE: &str =
    include_str!("../../../../deploy/kubernetes/crds/testworkflowtemplates.yaml");
const TRIGGER: &str = include_str!("../../../../deploy/kubernetes/crds/testtriggers.yaml");

/// An answer stays under this many bytes.
const MAX_ANSWER: usize = 6000;
/// Levels shown below the path.
const DEPTH: usize = 3;

impl Tools {
    /// `get_workflow_schema`.
    pub async fn get_workflow_schema(&self, args: WorkflowSchemaArgs) -> ToolResult {
        let kind = args.kind.as_deref().unwrap_or("TestWorkflow");
        let crd = match kind {
            "TestWorkflow" => WORKFLOW,
            "TestWorkflowTemplate" => TEMPLATE,
            "TestTrigger" => TRIGGER,
            other => {
                return Err(ToolError::invalid(format!(
                    "unknown kind `{other}`: TestWorkflow, TestWorkflowTemplate or TestTrigger"
                )));
            }
        };
        let doc: Value = serde_saphyr::from_str(crd)
            .map_err(|e| ToolError::Internal(format!("the shipped {kind} schema: {e}")))?;
        let mut node = &doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let path = args.path.as_deref().unwrap_or("").trim_matches('.');
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let part = part.trim_end_matches("[]");
            node = step_into(node, part).ok_or_else(|| {
                let here: Vec<&str> = fields(node).map(|(k, _)| k.as_str()).collect();
                ToolError::invalid(format!(
                    "no field `{part}` in `{path}`; fields here: {}",
                    here.join(", ")
                ))
            })?;
        }
        let mut out = format!(
            "{kind} (apiVersion {}){}\n",
            if kind == "TestTrigger" {
                "tests.testkube.io/v1"
            } else {
                "testworkflows.testkube.io/v1"
            },
            if path.is_empty() {
                String::new()
            } else {
                format!(", at {path}")
            }
        );
        let mut cut = false;
        describe(
            node,
            if path.is_empty() { "" } else { path },
            0,
            &mut out,
            &mut cut,
        );
        if cut {
            out.push_str("… (more: ask for a `path`, e.g. spec.steps)\n");
        }
        Ok(out)
    }
}

/// The object's properties, or an array's items' properties.
fn fields(node: &Value) -> impl Iterator<Item = (&String, &Value)> {
    let node = if node["type"] == "array" {
        &node["items"]
    } else {
        node
    };
    node["properties"].as_object().into_iter().flatten()
}

fn step_into<'a>(node: &'a Value, field: &str) -> Option<&'a Value> {
    let node = if node["type"] == "array" {
        &node["items"]
    } else {
        node
    };
    node["properties"].get(field)
}

fn type_of(node: &Value) -> String {
    match node["type"].as_str() {
        Some("array") => format!("{}[]", type_of(&node["items"])),
        Some(t) => t.to_string(),
        None if node["x-kubernetes-int-or-string"] == true => "int-or-string".into(),
        None => "any".into(),
    }
}

fn describe(node: &Value, path: &str, depth: usize, out: &mut String, cut: &mut bool) {
    for (name, child) in fields(node) {
        let here = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let mut line = format!("{here}: {}", type_of(child));
        if let Some(d) = child["description"].as_str() {
            let d = d.lines().next().unwrap_or_default();
            let _ = write!(line, " — {}", crate::text::clip_line(d, 100));
        }
        if child["x-kubernetes-preserve-unknown-fields"] == true {
            line.push_str(" (open)");
        }
        if out.len() + line.len() + 1 > MAX_ANSWER {
            *cut = true;
            return;
        }
        out.push_str(&line);
        out.push('\n');
        if depth + 1 < DEPTH {
            describe(child, &here, depth + 1, out, cut);
        }
    }
}
