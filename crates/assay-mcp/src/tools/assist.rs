//! The assistant tools: `ask` (a question in plain words over the history, answered by the
//! same grammar as `assay ask`) and `draft_workflow` (TestWorkflows for a repository the agent
//! describes by its file listing, as `assay init` drafts them for a folder). Both are
//! deterministic and offline; `draft_workflow` reads nothing from this machine's disk.

use std::collections::BTreeMap;
use std::fmt::Write;

use assay_assist::ask::{self, AskError, Vocabulary};
use assay_assist::{DraftOptions, Tool};

use super::Tools;
use super::verdicts::service_err;
use crate::args::{AskArgs, DraftWorkflowArgs};
use crate::error::{ToolError, ToolResult};
use crate::summary::ago;
use crate::text::clip_line;

/// An answer stays under this many bytes (the drafted YAML excepted: it is the answer).
const MAX_ANSWER: usize = 3800;
/// Rows listed by `ask` (the total is always given).
const MAX_ROWS: usize = 25;
/// The longest question `ask` parses.
const MAX_QUESTION: usize = 500;
/// The most paths `draft_workflow` takes.
const MAX_FILES: usize = assay_assist::detect::MAX_LISTED_FILES;
/// The most bytes of file contents `draft_workflow` takes, all files together.
const MAX_CONTENTS: usize = 1024 * 1024;
/// The longest path in a listing.
const MAX_PATH: usize = 1024;

impl Tools {
    /// `ask`: the structured query understood, then the matching executions, test results or
    /// flaky tests.
    pub async fn ask(&self, args: AskArgs) -> ToolResult {
        if args.question.len() > MAX_QUESTION {
            return Err(ToolError::invalid(format!(
                "the question is {} bytes, more than {MAX_QUESTION}: ask in fewer words",
                args.question.len()
            )));
        }
        let service = self.service();
        let vocab = Vocabulary {
            workflows: service.workflow_names().await.map_err(service_err)?,
        };
        let query = ask::parse(&args.question, chrono::Utc::now(), &vocab)
            .map_err(|e| ToolError::invalid(format!("{e} ({})", AskError::hint())))?;
        let answer = service.answer(&query).await.map_err(service_err)?;
        let mut out = format!("query: {query}\n");
        let mut shown = 0;
        for e in answer.executions.iter().take(MAX_ROWS) {
            let status = serde_json::to_value(e.status).unwrap_or_default();
            let line = format!(
                "{} {} {} {}",
                e.name,
                e.workflow,
                status.as_str().unwrap_or_default(),
                ago(e.scheduled_at)
            );
            if !push_line(&mut out, &line) {
                break;
            }
            shown += 1;
        }
        for c in answer.tests.iter().take(MAX_ROWS) {
            let status = serde_json::to_value(c.status).unwrap_or_default();
            let message = c.message.as_deref().unwrap_or_default();
            let line = format!(
                "{} {} in {} {}{}{}",
                status.as_str().unwrap_or_default(),
                c.key,
                c.execution,
                ago(c.scheduled_at),
                if message.is_empty() { "" } else { ": " },
                clip_line(message, 160)
            );
            if !push_line(&mut out, &line) {
                break;
            }
            shown += 1;
        }
        for f in answer.flaky.iter().take(MAX_ROWS) {
            let line = format!(
                "flaky {} in {}: {} failures in {} runs",
                f.key, f.workflow, f.failures, f.runs
            );
            if !push_line(&mut out, &line) {
                break;
            }
            shown += 1;
        }
        if answer.total == 0 {
            out.push_str("nothing matches\n");
        } else if shown < answer.total {
            let _ = writeln!(out, "{shown} of {} shown", answer.total);
        }
        Ok(out)
    }

    /// `draft_workflow`: the drafted TestWorkflows (multi-document YAML that `validate_workflow`
    /// accepts), what gave each tool away, and notes to act on.
    pub async fn draft_workflow(&self, args: DraftWorkflowArgs) -> ToolResult {
        if args.files.len() > MAX_FILES {
            return Err(ToolError::invalid(format!(
                "{} files listed, more than {MAX_FILES}: list the repository without dependencies and build output",
                args.files.len()
            )));
        }
        if let Some(long) = args.files.iter().find(|f| f.len() > MAX_PATH) {
            return Err(ToolError::invalid(format!(
                "a listed path is {} bytes, more than {MAX_PATH}: {}",
                long.len(),
                clip_line(long, 80)
            )));
        }
        let contents: BTreeMap<String, String> = args.contents.unwrap_or_default();
        let size: usize = contents.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_CONTENTS {
            return Err(ToolError::invalid(format!(
                "file contents are {size} bytes, more than {MAX_CONTENTS}: send only package.json, pyproject.toml, pytest.ini, setup.cfg, tox.ini, requirements*.txt and k6 scripts"
            )));
        }
        let mut tools = Vec::new();
        for t in args.tools.unwrap_or_default() {
            tools.push(Tool::parse(&t).ok_or_else(|| {
                let known: Vec<&str> = Tool::ALL.iter().map(|t| t.as_str()).collect();
                ToolError::invalid(format!("unknown tool `{t}`: one of {}", known.join(", ")))
            })?);
        }
        let shards = args.shards.unwrap_or(assay_assist::draft::DEFAULT_SHARDS);
        if !(1..=64).contains(&shards) {
            return Err(ToolError::invalid(format!(
                "shards is {shards}: between 1 and 64"
            )));
        }
        let root = args.repo.as_deref().unwrap_or(".");
        let name = args.name.as_deref().unwrap_or("project");
        let project = assay_assist::detect_listing(root, name, args.files, &contents);
        let drafts = assay_assist::draft(&project, &DraftOptions { shards, tools });
        if drafts.is_empty() {
            return Err(ToolError::invalid(format!(
                "no test tool found in the listing: {}",
                assay_assist::nothing_found_hint()
            )));
        }
        let yaml = assay_assist::render(&drafts);
        // A draft that does not validate is Assay's bug, never the caller's.
        let errors = assay_assist::check(&yaml);
        if !errors.is_empty() {
            let lines: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
            return Err(ToolError::Internal(format!(
                "the drafted workflows do not validate:\n{}",
                lines.join("\n")
            )));
        }
        let mut out = String::new();
        for d in &drafts {
            let found = project
                .get(d.tool)
                .map(|f| f.evidence.join(", "))
                .unwrap_or_default();
            let _ = writeln!(out, "found {}: {}", d.tool, clip_line(&found, 300));
            for note in &d.notes {
                let _ = writeln!(out, "  note: {note}");
            }
        }
        let names: Vec<&str> = drafts.iter().map(|d| d.name.as_str()).collect();
        let _ = writeln!(
            out,
            "drafted {} (valid; store with create_or_update_workflow, then run_workflow):\n---\n{yaml}",
            names.join(", ")
        );
        Ok(out)
    }
}

/// Adds `line` unless the answer would pass [`MAX_ANSWER`]; false when it did not fit.
fn push_line(out: &mut String, line: &str) -> bool {
    if out.len() + line.len() + 1 > MAX_ANSWER {
        return false;
    }
    out.push_str(line);
    out.push('\n');
    true
}
