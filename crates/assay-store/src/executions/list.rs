//! Listing and counting executions: the filter's SQL, and a page built by the database as one
//! JSON text.

use sqlx::AssertSqlSafe;

use crate::db::{Backend, RowExt};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::{ExecutionStatus, Store};

use super::read::{SummaryRecord, summary_json};
use super::{from_json, since_id};

impl Store {
    /// Executions matching `filter`, newest first. The database builds the whole page as one
    /// JSON text (see [`SummaryPage`]) and returns it as ONE row: sqlx hands each row of a
    /// SQLite query from its worker thread through a channel and converts it for the `Any`
    /// driver, which cost more than the query itself once per row.
    pub async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>> {
        self.list_page(filter).await?.summaries()
    }

    /// [`Store::list_executions`] as the database wrote it, for callers that turn the page into
    /// JSON again (the REST list) and need no [`ExecutionSummary`] values.
    pub async fn list_page(&self, filter: &ExecutionFilter) -> Result<SummaryPage> {
        let db = self.db();
        let (sql, binds) = page_sql(db.backend, filter);
        let row = bind_all(sqlx::query(AssertSqlSafe(sql)), binds)
            .fetch_one(&db.pool)
            .await
            .map_err(|e| db.err("list executions", e))?;
        Ok(SummaryPage(row.text("page")?))
    }

    /// [`Store::list_page`] of `filter` and [`Store::count_executions`] of `counted` in one
    /// statement (one trip to the database instead of two), when `counted` has neither tags
    /// nor `since` (it then reads `execution_counts`); otherwise the two calls.
    pub async fn list_and_count(
        &self,
        filter: &ExecutionFilter,
        counted: &ExecutionFilter,
    ) -> Result<(SummaryPage, StatusCounts)> {
        if !counted.tags.is_empty() || counted.since.is_some() {
            let page = self.list_page(filter).await?;
            return Ok((page, self.count_executions(counted).await?));
        }
        let db = self.db();
        let (page, binds) = page_sql(db.backend, filter);
        let (counts, binds) = counters_sql(counted, binds);
        let concat = match db.backend {
            Backend::Sqlite => "group_concat(status || '=' || n, ',')",
            Backend::Postgres => "string_agg(status || '=' || n, ',')",
        };
        let sql = format!(
            "SELECT ({page}) AS page, \
             (SELECT {concat} FROM ({counts} GROUP BY status) AS counted) AS counts"
        );
        let row = bind_all(sqlx::query(AssertSqlSafe(sql)), binds)
            .fetch_one(&db.pool)
            .await
            .map_err(|e| db.err("list executions", e))?;
        let mut totals = StatusCounts::default();
        for pair in row.opt_text("counts")?.iter().flat_map(|t| t.split(',')) {
            let (status, n) = pair
                .split_once('=')
                .ok_or_else(|| StoreError::decode("execution counts", pair))?;
            let status: ExecutionStatus = status
                .parse()
                .map_err(|e| StoreError::decode("execution status", e))?;
            let n: i64 = n
                .parse()
                .map_err(|e| StoreError::decode("execution count", e))?;
            totals.0.insert(status, n);
        }
        Ok((SummaryPage(row.text("page")?), totals))
    }

    /// How many executions match `filter` (its paging, `limit` and `before_id`, ignored), by
    /// status, no rows loaded. Filters by workflow and status only read the counters the
    /// database keeps per workflow and status (`execution_counts`, migration 0017: a few rows
    /// whatever the history's size); tags or `since` count the matching rows.
    pub async fn count_executions(&self, filter: &ExecutionFilter) -> Result<StatusCounts> {
        let (mut sql, binds) = if filter.tags.is_empty() && filter.since.is_none() {
            counters_sql(filter, Vec::new())
        } else {
            let (sql, binds, _) = filter_sql(filter, "SELECT status, COUNT(*) AS n");
            (sql, binds)
        };
        sql.push_str(" GROUP BY status");
        let db = self.db();
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), binds)
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("count executions", e))?;
        let mut counts = StatusCounts::default();
        for row in &rows {
            let status: ExecutionStatus = row
                .text("status")?
                .parse()
                .map_err(|e| StoreError::decode("execution status", e))?;
            counts.0.insert(status, row.int("n")?);
        }
        Ok(counts)
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for bind in binds {
        query = match bind {
            Bind::Text(t) => query.bind(t),
            Bind::Int(i) => query.bind(i),
        };
    }
    query
}

/// The statement giving the page of `filter` as one JSON array text in a column `page` (see
/// [`SummaryPage`]), with its binds.
fn page_sql(backend: Backend, filter: &ExecutionFilter) -> (String, Vec<Bind>) {
    let (mut sql, mut binds, order) =
        filter_sql(filter, &format!("SELECT {} AS r", summary_json(backend)));
    if let Some(before) = &filter.before_id {
        binds.push(Bind::Text(before.clone()));
        sql.push_str(&format!(" AND {order} < ${}", binds.len()));
    }
    let limit = filter.limit.unwrap_or(100).max(1) as i64;
    binds.push(Bind::Int(limit));
    sql.push_str(&format!(" ORDER BY {order} DESC LIMIT ${}", binds.len()));
    let concat = match backend {
        Backend::Sqlite => "group_concat(r, ',')",
        Backend::Postgres => "string_agg(r, ',')",
    };
    (
        format!("SELECT '[' || COALESCE({concat}, '') || ']' AS page FROM ({sql}) AS page_rows"),
        binds,
    )
}

/// A page of executions as the database wrote it: a JSON array with one array per execution,
/// its `SUMMARY_FIELDS` in order (no keys: the page is a third shorter and decodes faster).
#[derive(Debug, Clone)]
pub struct SummaryPage(String);

impl SummaryPage {
    /// The summaries, newest first.
    pub fn summaries(&self) -> Result<Vec<ExecutionSummary>> {
        let records: Vec<SummaryRecord> = from_json("executions list", &self.0)?;
        let mut page = records
            .into_iter()
            .map(SummaryRecord::into_summary)
            .collect::<Result<Vec<_>>>()?;
        // An aggregate's input order is the subquery's in practice, but no SQL standard says
        // so; the order key is the execution id in both forms of `filter_sql`.
        page.sort_unstable_by(|a, b| b.id.cmp(&a.id));
        Ok(page)
    }

    /// The page's executions one by one as the database wrote them, in the page's order (the
    /// REST list keeps entries of ended executions by their record: [`crate::testkube::ListCache`]).
    pub fn records(&self) -> Result<Vec<PageRecord<'_>>> {
        split_array(&self.0)
            .map(|texts| texts.into_iter().map(PageRecord).collect())
            .ok_or_else(|| StoreError::decode("executions list", "not a JSON array of arrays"))
    }
}

/// One execution of a [`SummaryPage`]: its stored summary columns as one JSON text. Two equal
/// texts are the same summary.
#[derive(Debug, Clone, Copy)]
pub struct PageRecord<'a>(&'a str);

impl<'a> PageRecord<'a> {
    /// The record's text.
    pub fn text(&self) -> &'a str {
        self.0
    }

    /// The summary the record holds.
    pub fn summary(&self) -> Result<ExecutionSummary> {
        from_json::<SummaryRecord>("executions list", self.0)?.into_summary()
    }
}

/// The texts of the elements of the JSON array `text`, or `None` when its brackets, strings
/// or nesting do not close. The elements themselves are checked where they are decoded.
/// Not serde_json's `Vec<&RawValue>` (feature `raw_value`): that parses and validates every
/// element on every request, and the REST list decodes only the elements its cache does not
/// hold (a held one was decoded, so checked, when it was kept); this only finds the commas
/// between elements (`memchr` through strings). Not measured against `RawValue`.
fn split_array(text: &str) -> Option<Vec<&str>> {
    let body = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let bytes = body.as_bytes();
    let mut elements = Vec::new();
    let (mut depth, mut start, mut at) = (0usize, 0, 0);
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                // To the closing quote, skipping escaped characters (most of a page is text).
                at += 1;
                loop {
                    at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
                    if bytes[at] == b'"' {
                        break;
                    }
                    at += 2;
                }
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => {
                elements.push(&body[start..at]);
                start = at + 1;
            }
            _ => {}
        }
        at += 1;
    }
    if depth != 0 {
        return None;
    }
    let last = &body[start..];
    if !elements.is_empty() || !last.trim().is_empty() {
        elements.push(last);
    }
    Some(elements)
}

/// `SELECT status, n FROM execution_counts WHERE …` for the workflow and statuses of `filter`
/// (without a `GROUP BY`), with its binds. Statuses with no execution are left out, as a
/// count of the rows would.
fn counters_sql(filter: &ExecutionFilter, mut binds: Vec<Bind>) -> (String, Vec<Bind>) {
    // PostgreSQL's SUM of a BIGINT is a NUMERIC, which the `Any` driver cannot read.
    let mut sql =
        "SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM execution_counts WHERE n > 0".to_string();
    if let Some(workflow) = &filter.workflow {
        binds.push(Bind::Text(workflow.clone()));
        sql.push_str(&format!(" AND workflow = ${}", binds.len()));
    }
    if !filter.statuses.is_empty() {
        let ps: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| {
                binds.push(Bind::Text(s.as_str().into()));
                format!("${}", binds.len())
            })
            .collect();
        sql.push_str(&format!(" AND status IN ({})", ps.join(", ")));
    }
    (sql, binds)
}

/// `{select} FROM … WHERE …` for the conditions of `filter` but its paging, with its binds and
/// the id column to order and page by.
fn filter_sql(filter: &ExecutionFilter, select: &str) -> (String, Vec<Bind>, &'static str) {
    let mut binds: Vec<Bind> = Vec::new();
    let next = |binds: &mut Vec<Bind>, value: Bind| {
        binds.push(value);
        format!("${}", binds.len())
    };
    // With tags, the first tag's index drives the query in id order (a tag can match a large
    // share of all executions; `id IN (subquery)` would collect all of them first).
    let (mut sql, order) = match filter.tags.first() {
        Some((key, value)) => {
            let k = next(&mut binds, Bind::Text(key.clone()));
            let v = next(&mut binds, Bind::Text(value.clone()));
            (
                format!(
                    "{select} FROM execution_tags t0 \
                     JOIN executions ON executions.id = t0.execution_id \
                     WHERE t0.key = {k} AND t0.value = {v}"
                ),
                "t0.execution_id",
            )
        }
        None => (format!("{select} FROM executions WHERE 1 = 1"), "id"),
    };
    if let Some(workflow) = &filter.workflow {
        let p = next(&mut binds, Bind::Text(workflow.clone()));
        sql.push_str(&format!(" AND workflow = {p}"));
    }
    if !filter.statuses.is_empty() {
        let ps: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| next(&mut binds, Bind::Text(s.as_str().into())))
            .collect();
        sql.push_str(&format!(" AND status IN ({})", ps.join(", ")));
    }
    if let Some(since) = filter.since {
        let p = next(&mut binds, Bind::Text(since_id(since)));
        sql.push_str(&format!(" AND {order} >= {p}"));
    }
    for (key, value) in filter.tags.iter().skip(1) {
        let k = next(&mut binds, Bind::Text(key.clone()));
        let v = next(&mut binds, Bind::Text(value.clone()));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM execution_tags t WHERE t.execution_id = executions.id \
             AND t.key = {k} AND t.value = {v})"
        ));
    }
    (sql, binds, order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_array_gives_each_element() {
        let text = r#"[["a,]\\\"[",{"k":[1,2]},null],["b"],[]]"#;
        assert_eq!(
            split_array(text).unwrap(),
            [r#"["a,]\\\"[",{"k":[1,2]},null]"#, r#"["b"]"#, "[]"]
        );
        assert_eq!(split_array("[]").unwrap(), Vec::<&str>::new());
        for bad in [
            "",
            "[",
            "[[]",
            r#"[["a]]"#,
            r#"[["a\"]]"#,
            r#"[["\]"#,
            "[]]",
            "[[]]]",
        ] {
            assert_eq!(split_array(bad), None, "{bad}");
        }
    }
}
