//! `get_execution_logs`, `list_artifacts`, `read_artifact`.

use std::fmt::Write;

use assay_store::{Execution, LogLine, StepResult};
use futures::StreamExt;
use regex::Regex;
use serde_json::json;

use super::Tools;
use crate::args::{ExecutionArgs, GetExecutionLogsArgs, ReadArtifactArgs};
use crate::error::{ToolError, ToolResult};
use crate::summary::{call, step_label};
use crate::text::{self, PAGE_LIMIT};

/// Lines shown when neither `tail` nor `grep` is given.
const DEFAULT_TAIL: usize = 100;
/// Artifacts listed at most.
const MAX_ARTIFACTS: usize = 200;
/// Default and largest `read_artifact` page.
const ARTIFACT_PAGE: usize = 16 * 1024;
const ARTIFACT_PAGE_MAX: usize = 64 * 1024;

impl Tools {
    /// `get_execution_logs`: one step's output (or every step's), tail or grep, bounded.
    pub async fn get_execution_logs(&self, args: GetExecutionLogsArgs) -> ToolResult {
        let exec = self.execution(&args.execution).await?;
        let pattern = match &args.grep {
            Some(p) => Some(Regex::new(p).map_err(|e| {
                ToolError::invalid(format!("`grep` is not a valid regular expression: {e}"))
                    .with_hint("escape special characters such as `(` `[` `.` with `\\`")
            })?),
            None => None,
        };
        let (lines, step, prefix) = match &args.step {
            Some(wanted) => {
                let step = find_step(&exec, wanted)?;
                let lines = self.store.read_logs(&exec.id, Some(&step.step_ref)).await?;
                (lines, Some(step), false)
            }
            None => (self.store.read_logs(&exec.id, None).await?, None, true),
        };
        let total = lines.len();
        let numbered: Vec<(usize, &LogLine)> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| pattern.as_ref().is_none_or(|p| p.is_match(&l.text)))
            .map(|(i, l)| (i + 1, l))
            .collect();
        let matching = numbered.len();
        let tail = match (args.tail, &pattern) {
            (Some(n), _) => n,
            (None, Some(_)) => usize::MAX,
            (None, None) => DEFAULT_TAIL,
        };
        let start = matching.saturating_sub(tail);
        // Fill the page from the end: the last lines are what a reader of a failure wants.
        let mut shown: Vec<String> = Vec::new();
        let mut used = 0;
        let mut full = false;
        for (n, l) in numbered[start..].iter().rev() {
            let line = if prefix {
                format!("{}:{n:>4}| {}", l.step, text::clean_line(&l.text))
            } else {
                format!("{n:>4}| {}", text::clean_line(&l.text))
            };
            if used + line.len() + 1 > PAGE_LIMIT - 400 {
                full = true;
                break;
            }
            used += line.len() + 1;
            shown.push(line);
        }
        shown.reverse();
        let mut out = String::new();
        let whose = match step {
            Some(s) => format!("step {}", step_label(s)),
            None => "all steps (step ref:line)".to_string(),
        };
        let _ = write!(out, "{} {whose}: ", exec.name);
        match &args.grep {
            Some(p) => {
                let _ = write!(out, "{matching} of {total} lines match `{p}`");
            }
            None => {
                let _ = write!(out, "{total} lines");
            }
        }
        let _ = writeln!(out, ", showing the last {}", shown.len());
        if shown.is_empty() {
            let _ = writeln!(out, "(nothing to show)");
        }
        for l in &shown {
            let _ = writeln!(out, "{l}");
        }
        let earlier = matching - shown.len();
        if earlier > 0 {
            let _ = writeln!(
                out,
                "({earlier} earlier lines not shown{}; narrow with `grep` or `tail`)",
                if full { ", the page is full" } else { "" }
            );
        }
        if !exec.status.is_terminal() {
            let _ = writeln!(
                out,
                "(the execution is still {}; call again for more)",
                exec.status
            );
        }
        Ok(out)
    }

    /// `list_artifacts`.
    pub async fn list_artifacts(&self, args: ExecutionArgs) -> ToolResult {
        let exec = self.execution(&args.execution).await?;
        let artifacts = self.store.list_artifacts(&exec.id).await?;
        if artifacts.is_empty() {
            return Ok(format!("{} has no artifacts\n", exec.name));
        }
        let mut out = format!(
            "{} artifacts of {} (path, bytes, step):\n",
            artifacts.len(),
            exec.name
        );
        for a in artifacts.iter().take(MAX_ARTIFACTS) {
            let _ = writeln!(
                out,
                "{}  {}  {}",
                a.path,
                a.size,
                a.step_ref.as_deref().unwrap_or("-")
            );
        }
        if artifacts.len() > MAX_ARTIFACTS {
            let _ = writeln!(out, "… and {} more", artifacts.len() - MAX_ARTIFACTS);
        }
        let _ = writeln!(
            out,
            "next: {}",
            call(
                "read_artifact",
                json!({"execution": exec.name, "path": artifacts[0].path})
            )
        );
        Ok(out)
    }

    /// `read_artifact`: a page of a text artifact.
    pub async fn read_artifact(&self, args: ReadArtifactArgs) -> ToolResult {
        let exec = self.execution(&args.execution).await?;
        let download = match self.store.open_artifact(&exec.id, &args.path).await {
            Ok(d) => d,
            Err(e) if e.is_not_found() => {
                let artifacts = self.store.list_artifacts(&exec.id).await?;
                let paths: Vec<&str> = artifacts.iter().map(|a| a.path.as_str()).collect();
                let mut hint = String::new();
                if let Some(c) = assay_spec::suggest::closest(&args.path, paths.iter().copied()) {
                    let _ = write!(hint, "did you mean `{c}`? ");
                }
                if paths.is_empty() {
                    hint.push_str("this execution has no artifacts");
                } else {
                    let _ = write!(
                        hint,
                        "{}",
                        call("list_artifacts", json!({"execution": exec.name}))
                    );
                }
                return Err(ToolError::not_found(format!(
                    "no artifact `{}` in {}",
                    args.path, exec.name
                ))
                .with_hint(hint));
            }
            Err(e) => return Err(e.into()),
        };
        let offset = args.offset.unwrap_or(0);
        let max = args
            .max_bytes
            .unwrap_or(ARTIFACT_PAGE)
            .clamp(1, ARTIFACT_PAGE_MAX);
        let size = download.size;
        let mut stream = download.stream;
        let mut seen: u64 = 0;
        let mut page: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let start = offset.saturating_sub(seen).min(chunk.len() as u64) as usize;
            seen += chunk.len() as u64;
            page.extend_from_slice(&chunk[start..]);
            if page.len() >= max {
                break;
            }
        }
        page.truncate(max);
        if page.contains(&0) {
            return Err(ToolError::invalid(format!(
                "`{}` is binary ({size} bytes); only text is shown",
                args.path
            )));
        }
        let text = match std::str::from_utf8(&page) {
            Ok(t) => t.to_string(),
            // A page may end inside a character: keep what is whole.
            Err(e) if e.error_len().is_none() => {
                String::from_utf8_lossy(&page[..e.valid_up_to()]).into_owned()
            }
            Err(_) => {
                return Err(ToolError::invalid(format!(
                    "`{}` is not UTF-8 text ({size} bytes); only text is shown",
                    args.path
                )));
            }
        };
        let end = offset + text.len() as u64;
        let mut out = format!(
            "{} of {} ({size} bytes), bytes {offset}-{end}:\n{text}",
            args.path, exec.name
        );
        if !out.ends_with('\n') {
            out.push('\n');
        }
        if end < size {
            let _ = writeln!(
                out,
                "(more: {})",
                call(
                    "read_artifact",
                    json!({"execution": exec.name, "path": args.path, "offset": end})
                )
            );
        }
        Ok(out)
    }
}

/// A step by ref, or by name (exact, then ignoring case).
fn find_step<'e>(exec: &'e Execution, wanted: &str) -> ToolResult<&'e StepResult> {
    let wanted = wanted.trim();
    let steps = &exec.steps;
    if let Some(s) = steps.iter().find(|s| s.step_ref == wanted) {
        return Ok(s);
    }
    if let Some(s) = steps.iter().find(|s| s.name.as_deref() == Some(wanted)) {
        return Ok(s);
    }
    let lower = wanted.to_lowercase();
    if let Some(s) = steps
        .iter()
        .find(|s| s.name.as_deref().is_some_and(|n| n.to_lowercase() == lower))
    {
        return Ok(s);
    }
    let mut candidates: Vec<&str> = steps.iter().map(|s| s.step_ref.as_str()).collect();
    candidates.extend(steps.iter().filter_map(|s| s.name.as_deref()));
    let mut hint = String::new();
    if let Some(c) = assay_spec::suggest::closest(wanted, candidates.iter().copied()) {
        let _ = write!(hint, "did you mean `{c}`? ");
    }
    let listed: Vec<String> = steps
        .iter()
        .filter(|s| s.step_ref != "root")
        .take(40)
        .map(step_label)
        .collect();
    let _ = write!(hint, "steps: {}", listed.join("; "));
    Err(ToolError::not_found(format!("no step `{wanted}` in {}", exec.name)).with_hint(hint))
}
