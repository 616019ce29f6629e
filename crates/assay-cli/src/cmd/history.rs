//! Shared pieces of the history commands (`get`, `logs`, `artifacts`, `abort`, `prune`,
//! `apply`, `delete`): output formats, tables, time formatting and store error mapping.

use std::io::Write;

use assay_store::testkube::{TestWorkflowExecution, TestWorkflowStepResult};
use assay_store::{ExecutionRef, Store, StoreError, UnixMs, now_ms};
use serde::Serialize;

use crate::error::UserError;

/// `-o table|json|yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Map a store error: "not found" is the user's (exit 2), the rest is internal (exit 3).
pub fn store_err(e: StoreError) -> anyhow::Error {
    if e.is_not_found() || matches!(e, StoreError::Invalid(_) | StoreError::Config(_)) {
        let msg = e.to_string();
        return UserError::invalid(msg).into();
    }
    anyhow::anyhow!("failed to {e}")
}

/// Print a document on stdout as JSON or YAML.
pub fn print_doc<T: Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json | Format::Table => {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)?;
        }
        Format::Yaml => {
            let json = serde_json::to_value(value)?;
            write!(out, "{}", serde_saphyr::to_string(&json)?)?;
        }
    }
    Ok(())
}

/// A plain table (no colours, no box drawing: the same on a TTY, in a pipe and with NO_COLOR).
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    t
}

/// Print a table on stdout, trimming the padding the preset leaves at line ends.
pub fn print_table(t: &comfy_table::Table) {
    let mut out = std::io::stdout().lock();
    for line in t.to_string().lines() {
        let _ = writeln!(out, "{}", line.trim_end().trim_start_matches(' '));
    }
}

/// `3m ago`, `2h ago`, `5d ago` (the one formatter: `assay_store::format`).
pub fn ago(ms: UnixMs) -> String {
    assay_store::format::ago(ms, now_ms())
}

pub use assay_store::format::duration;

/// `2h`, `30m`, `45s`, `7d` → milliseconds.
pub fn parse_age(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30m, 2h or 7d"))?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" | "" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(format!("`{text}` has an unknown unit; use s, m, h, d or w")),
    };
    Ok(n * unit_ms)
}

/// `key=value`.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{text}` is not key=value")),
    }
}

/// An execution addressed by id or name, or by `--workflow W --number N`.
pub fn execution_ref(
    reference: Option<&str>,
    workflow: Option<&str>,
    number: Option<i64>,
) -> anyhow::Result<ExecutionRef> {
    match (reference, workflow, number) {
        (Some(r), None, None) => Ok(ExecutionRef::parse(r)),
        (None, Some(w), Some(n)) => Ok(ExecutionRef::Number {
            workflow: w.to_string(),
            number: n,
        }),
        _ => Err(UserError::invalid(
            "name an execution by ID, by NAME, or by --workflow W --number N",
        )
        .with_hint("`assay get executions` lists them")
        .into()),
    }
}

/// An execution reference as the API takes it in a path (an id or `workflow-number`).
pub fn ref_text(reference: &ExecutionRef) -> String {
    match reference {
        ExecutionRef::Id(id) => id.clone(),
        ExecutionRef::Name(name) => name.clone(),
        ExecutionRef::Number { workflow, number } => format!("{workflow}-{number}"),
    }
}

/// Unix milliseconds of an RFC 3339 time of Testkube's shape.
pub fn ms(text: Option<&str>) -> Option<UnixMs> {
    chrono::DateTime::parse_from_rfc3339(text?)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// An execution's steps in plan order (its `signature`), with their names and results.
pub fn steps_in_order(
    e: &TestWorkflowExecution,
) -> Vec<(String, Option<String>, &TestWorkflowStepResult)> {
    if e.signature.is_empty() {
        return e
            .result
            .steps
            .iter()
            .map(|(r, s)| (r.clone(), None, s))
            .collect();
    }
    e.signature
        .iter()
        .filter_map(|sig| {
            e.result
                .steps
                .get(&sig.step_ref)
                .map(|s| (sig.step_ref.clone(), sig.name.clone(), s))
        })
        .collect()
}

/// Step names by ref (steps without a name are absent).
pub fn step_names(e: &TestWorkflowExecution) -> std::collections::HashMap<String, String> {
    e.signature
        .iter()
        .filter_map(|s| s.name.clone().map(|n| (s.step_ref.clone(), n)))
        .collect()
}

/// Resolve an execution reference to its summary.
pub async fn find(
    store: &Store,
    reference: &ExecutionRef,
) -> anyhow::Result<assay_store::ExecutionSummary> {
    store.find_execution(reference).await.map_err(store_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("2h"), Ok(7_200_000));
        assert_eq!(parse_age("30m"), Ok(1_800_000));
        assert!(parse_age("2x").is_err());
        assert!(parse_age("h").is_err());
    }
}
