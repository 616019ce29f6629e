//! Test cases parsed from an execution's JUnit reports: per-execution lists, per-test history
//! and flaky detection over that history.

use std::collections::{BTreeMap, BTreeSet};

use assay_reports::flaky::{self, FlakyPolicy, Outcome, Run, Verdict};
use assay_reports::{CaseStatus, TestCase};
use assay_shard::{Durations, source_of};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::executions::retry_busy;
use crate::model::{ExecutionRef, UnixMs, now_ms};
use crate::quarantines::{Quarantine, covering};

/// Where a batch of cases came from.
#[derive(Debug, Clone, Default)]
pub struct CaseSource {
    /// The step whose artifact the report is.
    pub step_ref: Option<String>,
    /// The report's path among the execution's artifacts.
    pub report_file: Option<String>,
    /// The commit the execution ran on (`commit` tag, else the CI commit).
    pub commit: Option<String>,
    /// The quarantines in force for the run: a failed case one of them covers is recorded
    /// `quarantined` (it keeps its status, so history and flaky detection stay true).
    pub quarantines: Vec<Quarantine>,
}

/// A test case as stored with its execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredTestCase {
    #[serde(flatten)]
    pub case: TestCase,
    pub key: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub step_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_file: Option<String>,
    /// The same test already ran earlier in this execution (its step was retried).
    pub retry: bool,
    /// It failed while an active quarantine covered it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantined: bool,
}

/// One execution's result for one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRun {
    pub execution_id: String,
    pub execution_name: String,
    pub workflow: String,
    pub key: String,
    pub name: String,
    pub status: CaseStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub failed_reruns: u32,
    pub retry: bool,
    pub recorded_at: UnixMs,
    /// It failed while an active quarantine covered it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantined: bool,
}

impl TestRun {
    /// The runs flaky detection sees: a pass after failed reruns is a failure then a pass on a
    /// retry.
    pub fn observations(&self) -> Vec<Run> {
        let outcome = match self.status {
            CaseStatus::Passed => Outcome::Passed,
            CaseStatus::Failed | CaseStatus::Error => Outcome::Failed,
            CaseStatus::Skipped => Outcome::Skipped,
        };
        let run = |outcome, retry| Run {
            at: self.recorded_at,
            commit: self.commit.clone(),
            outcome,
            retry,
        };
        if outcome == Outcome::Passed && self.failed_reruns > 0 {
            vec![run(Outcome::Failed, self.retry), run(Outcome::Passed, true)]
        } else {
            vec![run(outcome, self.retry)]
        }
    }
}

/// A test judged flaky (or not) over its recent history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlakyTest {
    pub workflow: String,
    pub key: String,
    pub name: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

pub(crate) const RUN_COLUMNS: &str = "t.execution_id, e.name AS execution_name, t.workflow, t.test_key, \
    t.name, t.status, t.duration_ms, t.commit_sha, t.message, t.failed_reruns, t.retry, \
    t.recorded_at, t.quarantined";

impl Store {
    /// Record a batch of test cases of execution `id` in one transaction. Call it as often as
    /// needed for one report: sequence numbers continue.
    pub async fn add_test_cases(
        &self,
        id: &str,
        workflow: &str,
        source: &CaseSource,
        cases: &[TestCase],
    ) -> Result<()> {
        if cases.is_empty() {
            return Ok(());
        }
        let db = self.db();
        let at = now_ms();
        retry_busy(|| async {
            let mut tx = db.begin_write().await?;
            let next: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(seq), 0) FROM test_cases WHERE execution_id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            for (i, case) in cases.iter().enumerate() {
                let key = case.key();
                let seen: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM test_cases WHERE execution_id = $1 AND test_key = $2 LIMIT 1",
                )
                .bind(id)
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO test_cases (execution_id, seq, workflow, step_ref, report_file, \
                     test_key, suite, class, name, file, status, duration_ms, message, output, \
                     failed_reruns, retry, commit_sha, recorded_at, signature, quarantined) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19, $20)",
                )
                .bind(id)
                .bind(next + 1 + i as i64)
                .bind(workflow)
                .bind(source.step_ref.clone())
                .bind(source.report_file.clone())
                .bind(&key)
                .bind(&case.suite)
                .bind(case.class.clone())
                .bind(&case.name)
                .bind(case.file.clone())
                .bind(case.status.as_str())
                .bind(case.duration_ms.map(|d| d as i64))
                .bind(case.message.clone())
                .bind(case.output.clone())
                .bind(i64::from(case.failed_reruns))
                .bind(i64::from(seen.is_some()))
                .bind(source.commit.clone())
                .bind(at)
                .bind(failure_signature(case))
                .bind(i64::from(
                    matches!(case.status, CaseStatus::Failed | CaseStatus::Error)
                        && covering(&source.quarantines, workflow, &key, &case.name, at).is_some(),
                ))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })
        .await
        .map_err(|e| db.err("record test cases", e))
    }

    /// The test cases of one execution in report order, optionally only those in `statuses`.
    pub async fn test_cases(
        &self,
        reference: &ExecutionRef,
        statuses: &[CaseStatus],
    ) -> Result<Vec<StoredTestCase>> {
        let exec = self.find_execution(reference).await?;
        let db = self.db();
        let rows = sqlx::query(
            "SELECT step_ref, report_file, test_key, suite, class, name, file, status, \
             duration_ms, message, output, failed_reruns, retry, quarantined FROM test_cases \
             WHERE execution_id = $1 ORDER BY seq",
        )
        .bind(&exec.id)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read test cases", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let case = TestCase {
                suite: row.text("suite")?,
                class: row.opt_text("class")?,
                name: row.text("name")?,
                file: row.opt_text("file")?,
                status: status(&row)?,
                duration_ms: row.opt_int("duration_ms")?.map(|d| d.max(0) as u64),
                message: row.opt_text("message")?,
                output: row.opt_text("output")?,
                failed_reruns: row.int("failed_reruns")?.clamp(0, u32::MAX.into()) as u32,
            };
            if statuses.is_empty() || statuses.contains(&case.status) {
                out.push(StoredTestCase {
                    case,
                    key: row.text("test_key")?,
                    step_ref: row.opt_text("step_ref")?,
                    report_file: row.opt_text("report_file")?,
                    retry: row.int("retry")? != 0,
                    quarantined: row.int("quarantined")? != 0,
                });
            }
        }
        Ok(out)
    }

    /// Every recorded run of one test of `workflow`, oldest first. `test` is a key
    /// (`class::name`) or a bare name.
    pub async fn test_history(&self, workflow: &str, test: &str) -> Result<Vec<TestRun>> {
        let db = self.db();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM test_cases t JOIN executions e ON e.id = t.execution_id \
             WHERE t.workflow = $1 AND (t.test_key = $2 OR t.name = $2) \
             ORDER BY t.recorded_at, t.execution_id, t.seq"
        )))
        .bind(workflow)
        .bind(test)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read a test's history", e))?;
        rows.iter().map(run_from_row).collect()
    }

    /// Durations (ms) of each test of `workflow` in its most recent run, by key: the input of
    /// duration-aware sharding.
    pub async fn test_durations(&self, workflow: &str) -> Result<BTreeMap<String, u64>> {
        let db = self.db();
        let rows = sqlx::query(
            "SELECT test_key, name, file, duration_ms FROM test_cases WHERE workflow = $1 \
             AND duration_ms IS NOT NULL ORDER BY recorded_at, seq",
        )
        .bind(workflow)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read test durations", e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let d = row.int("duration_ms")?.max(0) as u64;
            out.insert(row.text("test_key")?, d);
        }
        Ok(out)
    }

    /// Durations (ms) of `workflow`'s shard items from its most recent runs: each test by key
    /// and by bare name (its latest duration), and each place tests live
    /// ([`assay_shard::source_of`]: a file, a dotted module or class, a package) as
    /// the sum of its cases' durations in the latest execution that ran it (step retries not
    /// counted twice). The input of `balance: durations`.
    pub async fn shard_durations(&self, workflow: &str) -> Result<Durations> {
        let db = self.db();
        let rows = sqlx::query(
            "SELECT execution_id, test_key, suite, class, name, file, retry, duration_ms \
             FROM test_cases WHERE workflow = $1 AND duration_ms IS NOT NULL \
             ORDER BY recorded_at, seq",
        )
        .bind(workflow)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read shard durations", e))?;
        let mut keys = BTreeMap::new();
        let mut names = BTreeMap::new();
        let mut sources: BTreeMap<String, (String, u64)> = BTreeMap::new();
        for row in rows {
            let d = row.int("duration_ms")?.max(0) as u64;
            keys.insert(row.text("test_key")?, d);
            let name = row.text("name")?;
            let file = row.opt_text("file")?;
            let class = row.opt_text("class")?;
            let suite = row.text("suite")?;
            if let Some(source) = source_of(file.as_deref(), class.as_deref(), &name, &suite) {
                let execution = row.text("execution_id")?;
                let entry = sources
                    .entry(source)
                    .or_insert_with(|| (execution.clone(), 0));
                if entry.0 != execution {
                    *entry = (execution, 0);
                }
                if row.int("retry")? == 0 {
                    entry.1 += d;
                }
            }
            names.insert(name, d);
        }
        let mut tests = names;
        tests.extend(keys);
        Ok(Durations {
            tests,
            sources: sources.into_iter().map(|(s, (_, d))| (s, d)).collect(),
        })
    }

    /// The keys of the tests of `id`'s workflow that other executions recorded before `id`'s
    /// first case, leaving out executions on `id`'s commit (the same commit run again still has
    /// the same new tests); `None` when there is no such history (the workflow's first commit:
    /// nothing can be called new). What `--repeat-new` compares an execution with.
    pub async fn known_test_keys(&self, id: &str) -> Result<Option<BTreeSet<String>>> {
        let db = self.db();
        let own = sqlx::query(
            "SELECT workflow, commit_sha, recorded_at FROM test_cases WHERE execution_id = $1 \
             ORDER BY seq LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| db.err("read an execution's test cases", e))?;
        let Some(own) = own else {
            return Ok(None);
        };
        let workflow = own.text("workflow")?;
        let commit = own.opt_text("commit_sha")?;
        let first_at = own.int("recorded_at")?;
        let rows = sqlx::query(
            "SELECT DISTINCT test_key, commit_sha FROM test_cases WHERE workflow = $1 \
             AND execution_id <> $2 AND recorded_at <= $3",
        )
        .bind(&workflow)
        .bind(id)
        .bind(first_at)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read the tests known before an execution", e))?;
        let mut keys = BTreeSet::new();
        for row in rows {
            let other = row.opt_text("commit_sha")?;
            if commit.is_none() || other != commit {
                keys.insert(row.text("test_key")?);
            }
        }
        Ok((!keys.is_empty()).then_some(keys))
    }

    /// Judge every test that failed or was rerun within the policy's window (optionally of one
    /// workflow) at `now`; flaky ones first, then by key. Broken tests come back `broken`, not
    /// `flaky`.
    pub async fn flaky_tests(
        &self,
        workflow: Option<&str>,
        policy: &FlakyPolicy,
        now: UnixMs,
    ) -> Result<Vec<FlakyTest>> {
        let db = self.db();
        let since = now - policy.window_ms;
        let workflow_filter = if workflow.is_some() {
            " AND t.workflow = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM test_cases t JOIN executions e ON e.id = t.execution_id \
             WHERE t.recorded_at >= $1{workflow_filter} AND EXISTS (SELECT 1 FROM test_cases c \
             WHERE c.workflow = t.workflow AND c.test_key = t.test_key AND c.recorded_at >= $1 \
             AND (c.status IN ('failed', 'error') OR c.failed_reruns > 0)) \
             ORDER BY t.workflow, t.test_key, t.recorded_at, t.seq"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(since);
        if let Some(w) = workflow {
            query = query.bind(w.to_string());
        }
        let rows = query
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("read test history for flaky detection", e))?;
        let mut grouped: BTreeMap<(String, String), (String, Vec<Run>)> = BTreeMap::new();
        for row in &rows {
            let run = run_from_row(row)?;
            let entry = grouped
                .entry((run.workflow.clone(), run.key.clone()))
                .or_insert_with(|| (run.name.clone(), Vec::new()));
            entry.1.extend(run.observations());
        }
        let mut out: Vec<FlakyTest> = grouped
            .into_iter()
            .map(|((workflow, key), (name, runs))| FlakyTest {
                workflow,
                key,
                name,
                verdict: flaky::assess(&runs, policy, now),
            })
            .collect();
        out.sort_by(|a, b| {
            b.verdict
                .flaky
                .cmp(&a.verdict.flaky)
                .then_with(|| a.workflow.cmp(&b.workflow))
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(out)
    }
}

/// The error signature a failed case is found by ([`Store::similar_failures`]); none for others.
fn failure_signature(case: &TestCase) -> Option<String> {
    matches!(case.status, CaseStatus::Failed | CaseStatus::Error)
        .then(|| {
            let text = case
                .message
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .or(case.output.as_deref())?;
            assay_reports::signature(text)
        })
        .flatten()
}

fn status(row: &AnyRow) -> Result<CaseStatus> {
    let text = row.text("status")?;
    CaseStatus::parse(&text).ok_or_else(|| StoreError::decode("test case status", text))
}

pub(crate) fn run_from_row(row: &AnyRow) -> Result<TestRun> {
    Ok(TestRun {
        execution_id: row.text("execution_id")?,
        execution_name: row.text("execution_name")?,
        workflow: row.text("workflow")?,
        key: row.text("test_key")?,
        name: row.text("name")?,
        status: status(row)?,
        duration_ms: row.opt_int("duration_ms")?.map(|d| d.max(0) as u64),
        commit: row.opt_text("commit_sha")?,
        message: row.opt_text("message")?,
        failed_reruns: row.int("failed_reruns")?.clamp(0, u32::MAX.into()) as u32,
        retry: row.int("retry")? != 0,
        recorded_at: row.int("recorded_at")?,
        quarantined: row.int("quarantined")? != 0,
    })
}
