//! Reading one execution: find it by reference, its full record, its children and steps, and a
//! summary from a row or a page's JSON.

use std::collections::BTreeMap;

use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db::{Backend, RowExt};
use crate::error::{Result, StoreError};
use crate::model::*;

use super::{SUMMARY_COLUMNS, from_json, parse_step_status};

impl Store {
    /// Find an execution by id, name or workflow + number.
    pub async fn find_execution(&self, reference: &ExecutionRef) -> Result<ExecutionSummary> {
        let db = self.db();
        let query = match reference {
            ExecutionRef::Id(id) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {SUMMARY_COLUMNS} FROM executions WHERE id = $1"
            )))
            .bind(id.clone()),
            ExecutionRef::Name(name) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {SUMMARY_COLUMNS} FROM executions WHERE name = $1"
            )))
            .bind(name.clone()),
            ExecutionRef::Number { workflow, number } => sqlx::query(AssertSqlSafe(format!(
                "SELECT {SUMMARY_COLUMNS} FROM executions WHERE workflow = $1 AND number = $2"
            )))
            .bind(workflow.clone())
            .bind(*number),
        };
        let row = query
            .fetch_optional(&db.pool)
            .await
            .map_err(|e| db.err("read the execution", e))?
            .ok_or_else(|| StoreError::not_found(reference.to_string()))?;
        summary_from_row(&row)
    }

    /// Everything recorded about one execution.
    pub async fn get_execution(&self, reference: &ExecutionRef) -> Result<Execution> {
        let summary = self.find_execution(reference).await?;
        let db = self.db();
        let id = summary.id.clone();
        let err = |e| db.err("read the execution", e);
        let row = sqlx::query("SELECT definition, resolved FROM executions WHERE id = $1")
            .bind(&id)
            .fetch_one(&db.pool)
            .await
            .map_err(err)?;
        let definition = row.text("definition")?;
        let resolved = row.opt_text("resolved")?;
        let steps = self.steps(&id).await?;
        let outputs = sqlx::query(
            "SELECT step_ref, name, value FROM outputs WHERE execution_id = $1 ORDER BY seq",
        )
        .bind(&id)
        .fetch_all(&db.pool)
        .await
        .map_err(err)?
        .iter()
        .map(|r| {
            Ok(Output {
                step_ref: r.opt_text("step_ref")?,
                name: r.text("name")?,
                value: from_json("output value", &r.text("value")?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let reports = sqlx::query(
            "SELECT step_ref, kind, file, data FROM reports WHERE execution_id = $1 ORDER BY seq",
        )
        .bind(&id)
        .fetch_all(&db.pool)
        .await
        .map_err(err)?
        .iter()
        .map(|r| {
            Ok(Report {
                step_ref: r.opt_text("step_ref")?,
                kind: r.text("kind")?,
                file: r.opt_text("file")?,
                data: from_json("report data", &r.text("data")?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let artifacts = self.list_artifacts(&id).await?;
        let children = self.children(&id).await?;
        Ok(Execution {
            summary,
            definition,
            resolved,
            steps,
            outputs,
            reports,
            artifacts,
            children,
        })
    }

    /// The executions that `execute` steps of execution `id` started, oldest first.
    pub async fn children(&self, id: &str) -> Result<Vec<ChildExecution>> {
        let db = self.db();
        sqlx::query(
            "SELECT id, name, workflow, number, status, parent_step FROM executions \
             WHERE parent_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read the executions it started", e))?
        .iter()
        .map(|r| {
            Ok(ChildExecution {
                id: r.text("id")?,
                name: r.text("name")?,
                workflow: r.text("workflow")?,
                number: r.int("number")?,
                status: r
                    .text("status")?
                    .parse()
                    .map_err(|e| StoreError::decode("execution status", e))?,
                step_ref: r.opt_text("parent_step")?.unwrap_or_default(),
            })
        })
        .collect()
    }

    /// Step results of an execution in plan order.
    pub async fn steps(&self, id: &str) -> Result<Vec<StepResult>> {
        let db = self.db();
        sqlx::query(
            "SELECT ref, position, name, status, exit_code, started_at, finished_at, \
             error_message, peak_memory_bytes, cpu_time_ms, quarantined_failures \
             FROM step_results \
             WHERE execution_id = $1 ORDER BY position, ref",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read step results", e))?
        .iter()
        .map(|r| {
            Ok(StepResult {
                step_ref: r.text("ref")?,
                position: r.int("position")?,
                name: r.opt_text("name")?,
                status: parse_step_status(&r.text("status")?)?,
                exit_code: r.opt_int("exit_code")?,
                started_at: r.opt_int("started_at")?,
                finished_at: r.opt_int("finished_at")?,
                error_message: r.opt_text("error_message")?,
                peak_memory_bytes: r.opt_int("peak_memory_bytes")?,
                cpu_time_ms: r.opt_int("cpu_time_ms")?,
                quarantined_failures: match r.opt_text("quarantined_failures")? {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|e| StoreError::decode("quarantined failures", e))?,
                    None => Vec::new(),
                },
            })
        })
        .collect()
    }
}

/// How a summary column is written into a page's JSON.
#[derive(Clone, Copy)]
enum Field {
    /// A string (or NULL), quoted.
    Text,
    /// An integer (or NULL).
    Int,
    /// JSON text (or NULL), embedded as it is stored.
    Json,
}

/// The columns of an [`ExecutionSummary`] in the order of `SUMMARY_COLUMNS` (and of the fields
/// of [`SummaryRecord`], which reads them by position), with their kind.
const SUMMARY_FIELDS: [(&str, Field); 18] = [
    ("id", Field::Text),
    ("name", Field::Text),
    ("workflow", Field::Text),
    ("number", Field::Int),
    ("status", Field::Text),
    ("scheduled_at", Field::Int),
    ("started_at", Field::Int),
    ("finished_at", Field::Int),
    ("status_at", Field::Int),
    ("tags", Field::Json),
    ("config", Field::Json),
    ("running_context", Field::Json),
    ("error_message", Field::Text),
    ("abort_requested_at", Field::Int),
    ("record_errors", Field::Json),
    ("parent_id", Field::Text),
    ("parent_name", Field::Text),
    ("parent_step", Field::Text),
];

/// A SQL expression making one JSON array text of an execution row's summary columns, by
/// concatenation: SQLite's `json_object` with `json()` of the JSON columns parsed those again for
/// every row (a stored JSON column is written as it is; it was written by serde_json and is
/// decoded by it again in [`SummaryRecord`]). On SQLite one `concat()` of all the pieces: a chain
/// of `||` made (and allocated) a longer intermediate string per piece, 36 per execution.
pub(super) fn summary_json(backend: Backend) -> String {
    let items: Vec<String> = SUMMARY_FIELDS
        .iter()
        .map(|(column, kind)| match (backend, kind) {
            (Backend::Sqlite, Field::Text) => format!("json_quote({column})"),
            (Backend::Postgres, Field::Text) => {
                format!("COALESCE(CAST(to_json({column}) AS text), 'null')")
            }
            (_, Field::Int) => format!("COALESCE(CAST({column} AS TEXT), 'null')"),
            (_, Field::Json) => format!("COALESCE({column}, 'null')"),
        })
        .collect();
    match backend {
        Backend::Sqlite => format!("concat('[', {}, ']')", items.join(", ',', ")),
        Backend::Postgres => format!("'[' || {} || ']'", items.join(" || ',' || ")),
    }
}

/// The stored columns of one execution's summary, read from a row or from `summary_json` (by
/// position: keep the fields in the order of `SUMMARY_FIELDS`).
#[derive(serde::Deserialize)]
pub(super) struct SummaryRecord {
    id: String,
    name: String,
    workflow: String,
    number: i64,
    status: String,
    scheduled_at: UnixMs,
    started_at: Option<UnixMs>,
    finished_at: Option<UnixMs>,
    status_at: UnixMs,
    tags: Tags,
    config: BTreeMap<String, ConfigValue>,
    running_context: RunningContext,
    error_message: Option<String>,
    abort_requested_at: Option<UnixMs>,
    record_errors: Option<Vec<String>>,
    parent_id: Option<String>,
    parent_name: Option<String>,
    parent_step: Option<String>,
}

impl SummaryRecord {
    pub(super) fn into_summary(self) -> Result<ExecutionSummary> {
        Ok(ExecutionSummary {
            status: self
                .status
                .parse()
                .map_err(|e| StoreError::decode("execution status", e))?,
            id: self.id,
            name: self.name,
            number: self.number,
            workflow: self.workflow,
            scheduled_at: self.scheduled_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            status_at: self.status_at,
            tags: self.tags,
            config: self.config,
            running_context: self.running_context,
            error_message: self.error_message,
            abort_requested: self.abort_requested_at.is_some(),
            record_errors: self.record_errors.unwrap_or_default(),
            parent: match (self.parent_id, self.parent_name) {
                (Some(id), Some(name)) => Some(ParentExecution {
                    id,
                    name,
                    step_ref: self.parent_step.unwrap_or_default(),
                }),
                _ => None,
            },
        })
    }
}

pub(crate) fn summary_from_row(row: &AnyRow) -> Result<ExecutionSummary> {
    SummaryRecord {
        id: row.text("id")?,
        name: row.text("name")?,
        workflow: row.text("workflow")?,
        number: row.int("number")?,
        status: row.text("status")?,
        scheduled_at: row.int("scheduled_at")?,
        started_at: row.opt_int("started_at")?,
        finished_at: row.opt_int("finished_at")?,
        status_at: row.int("status_at")?,
        tags: from_json("tags", &row.text("tags")?)?,
        config: from_json("config", &row.text("config")?)?,
        running_context: from_json("running context", &row.text("running_context")?)?,
        error_message: row.opt_text("error_message")?,
        abort_requested_at: row.opt_int("abort_requested_at")?,
        record_errors: match row.opt_text("record_errors")? {
            Some(text) => Some(from_json("record errors", &text)?),
            None => None,
        },
        parent_id: row.opt_text("parent_id")?,
        parent_name: row.opt_text("parent_name")?,
        parent_step: row.opt_text("parent_step")?,
    }
    .into_summary()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_fields_are_the_summary_columns() {
        let names: Vec<&str> = SUMMARY_FIELDS.iter().map(|(name, _)| *name).collect();
        let columns: Vec<&str> = SUMMARY_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(names, columns);
    }
}
