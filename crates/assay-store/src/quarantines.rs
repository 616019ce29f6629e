//! Quarantined tests: a quarantined test still runs and reports, but a step whose only failing
//! tests are quarantined passes and says so (the engine asks, the runner answers with
//! [`covering`]). An entry names a test as `get tests` and `test_history` do (its key
//! `class::name`, or its bare name), for one workflow or for every workflow, with a required
//! reason, an optional expiry and, for automatic entries, the flaky rule that made it.

use assay_reports::flaky::{FlakyPolicy, FlakyReason, Verdict};
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::executions::retry_busy;
use crate::model::{UnixMs, now_ms};

/// The workflow label that turns automatic quarantine on (`"true"`): after each run, tests the
/// flaky rule marks are quarantined for [`AUTO_QUARANTINE_DAYS`] ([`Store::auto_quarantine`]).
pub const AUTO_QUARANTINE_LABEL: &str = "assay.io/auto-quarantine";
/// How long an automatic quarantine lasts.
pub const AUTO_QUARANTINE_DAYS: i64 = 14;

/// Longest test name or workflow name accepted.
pub const QUARANTINE_TEST_MAX: usize = 1024;
/// Longest reason (and rule) accepted.
pub const QUARANTINE_REASON_MAX: usize = 4096;

/// One quarantine entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quarantine {
    /// A test key (`class::name`) or a bare test name.
    pub test: String,
    /// The workflow it applies to; `None` for every workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    pub reason: String,
    /// When it stops applying (unix ms); `None` for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<UnixMs>,
    pub created_at: UnixMs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// For automatic entries: the flaky rule that fired, with its evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Quarantine {
    /// Whether the entry applies at `now` (it has no expiry, or expires later).
    pub fn is_active(&self, now: UnixMs) -> bool {
        self.until.is_none_or(|u| u > now)
    }

    /// Whether the entry names the test with `key` and `name` in `workflow` (activity is not
    /// checked: see [`covering`]).
    pub fn names(&self, workflow: &str, key: &str, name: &str) -> bool {
        self.workflow.as_deref().is_none_or(|w| w == workflow)
            && (self.test == key || self.test == name)
    }
}

/// The active entry of `quarantines` that covers the test `key`/`name` of `workflow` at `now`,
/// if any: the one rule every path (the step's verdict, the recorded cases, the gate) uses.
pub fn covering<'a>(
    quarantines: &'a [Quarantine],
    workflow: &str,
    key: &str,
    name: &str,
    now: UnixMs,
) -> Option<&'a Quarantine> {
    quarantines
        .iter()
        .find(|q| q.is_active(now) && q.names(workflow, key, name))
}

/// A quarantine to add (or replace: one entry per test and workflow).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewQuarantine {
    pub test: String,
    #[serde(default)]
    pub workflow: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub until: Option<UnixMs>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
}

/// Parses an expiry as users write it: RFC 3339 (`2026-12-24T18:00:00Z`) or a date
/// (`2026-12-24`, meaning 00:00 UTC that day). The error says what is accepted.
pub fn parse_until(text: &str) -> Result<UnixMs> {
    let t = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(at.timestamp_millis());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        && let Some(midnight) = day.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc().timestamp_millis());
    }
    Err(StoreError::Invalid(format!(
        "`{text}` is not a date: write RFC 3339 (2026-12-24T18:00:00Z) or YYYY-MM-DD (00:00 UTC that day)"
    )))
}

fn check(new: &NewQuarantine, now: UnixMs) -> Result<()> {
    let invalid = |m: String| Err(StoreError::Invalid(m));
    if new.test.trim().is_empty() {
        return invalid("the test to quarantine is empty: name it by key (class::name) or by name, as `assay get tests` shows it".into());
    }
    if new.test.len() > QUARANTINE_TEST_MAX {
        return invalid(format!(
            "the test name is {} bytes; at most {QUARANTINE_TEST_MAX}",
            new.test.len()
        ));
    }
    if let Some(w) = &new.workflow {
        if w.trim().is_empty() {
            return invalid(
                "the workflow is empty: leave it out to quarantine the test in every workflow"
                    .into(),
            );
        }
        if w.len() > QUARANTINE_TEST_MAX {
            return invalid(format!(
                "the workflow name is {} bytes; at most {QUARANTINE_TEST_MAX}",
                w.len()
            ));
        }
    }
    if new.reason.trim().is_empty() {
        return invalid(
            "a quarantine needs a reason: say why the test is quarantined (a ticket, a cause)"
                .into(),
        );
    }
    for (what, text) in [("reason", Some(&new.reason)), ("rule", new.rule.as_ref())] {
        if let Some(text) = text
            && text.len() > QUARANTINE_REASON_MAX
        {
            return invalid(format!(
                "the {what} is {} bytes; at most {QUARANTINE_REASON_MAX}",
                text.len()
            ));
        }
    }
    if let Some(until) = new.until
        && until <= now
    {
        return invalid(format!(
            "the expiry {} is already past: give a time in the future",
            crate::testkube::rfc3339(until)
        ));
    }
    Ok(())
}

const COLUMNS: &str = "test, workflow, reason, until_at, created_at, created_by, rule";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Quarantine> {
    let workflow = row.text("workflow")?;
    Ok(Quarantine {
        test: row.text("test")?,
        workflow: (!workflow.is_empty()).then_some(workflow),
        reason: row.text("reason")?,
        until: row.opt_int("until_at")?,
        created_at: row.int("created_at")?,
        created_by: row.opt_text("created_by")?,
        rule: row.opt_text("rule")?,
    })
}

/// The rule an automatic quarantine records: which flaky rule fired, with its evidence.
pub fn flaky_rule(verdict: &Verdict) -> String {
    let why = match &verdict.reason {
        Some(FlakyReason::SameCommit { commit }) => {
            format!("passed and failed on the same commit {commit}")
        }
        Some(FlakyReason::PassedOnRetry) => "failed, then passed on a retry".to_string(),
        None => "flaky".to_string(),
    };
    let at = verdict
        .last_flake_at
        .map(|t| format!(", last at {}", crate::testkube::rfc3339(t)))
        .unwrap_or_default();
    format!(
        "flaky: {why} ({} failure(s) in {} run(s) in 14 days{at})",
        verdict.failures, verdict.runs
    )
}

impl Store {
    /// Quarantines the tests of `workflow` that the flaky rule marks now (passed and failed on
    /// one commit, or passed on a retry, within the default window) and no active entry covers
    /// yet, for [`AUTO_QUARANTINE_DAYS`], each with the rule and its evidence; the new entries.
    pub async fn auto_quarantine(&self, workflow: &str) -> Result<Vec<Quarantine>> {
        let now = now_ms();
        let existing = self.active_quarantines(Some(workflow)).await?;
        let mut added = Vec::new();
        for test in self
            .flaky_tests(Some(workflow), &FlakyPolicy::default(), now)
            .await?
        {
            if !test.verdict.flaky
                || covering(&existing, workflow, &test.key, &test.name, now).is_some()
            {
                continue;
            }
            added.push(
                self.add_quarantine(&NewQuarantine {
                    test: test.key.clone(),
                    workflow: Some(workflow.to_string()),
                    reason: format!(
                        "automatic: the flaky rule marked it (workflow label {AUTO_QUARANTINE_LABEL}); lifted after {AUTO_QUARANTINE_DAYS} days"
                    ),
                    until: Some(now + AUTO_QUARANTINE_DAYS * 24 * 3600 * 1000),
                    created_by: Some("assay auto-quarantine".into()),
                    rule: Some(flaky_rule(&test.verdict)),
                })
                .await?,
            );
        }
        Ok(added)
    }

    /// Quarantines a test (replacing the entry for the same test and workflow, if any) and
    /// returns the stored entry. Bad input (empty test or reason, past expiry) changes nothing.
    pub async fn add_quarantine(&self, new: &NewQuarantine) -> Result<Quarantine> {
        let now = now_ms();
        check(new, now)?;
        let entry = Quarantine {
            test: new.test.trim().to_string(),
            workflow: new.workflow.as_ref().map(|w| w.trim().to_string()),
            reason: new.reason.trim().to_string(),
            until: new.until,
            created_at: now,
            created_by: new.created_by.clone(),
            rule: new.rule.clone(),
        };
        let db = self.db();
        retry_busy(|| async {
            sqlx::query(
                "INSERT INTO quarantines (test, workflow, reason, until_at, created_at, \
                 created_by, rule) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (test, workflow) DO UPDATE SET reason = excluded.reason, \
                 until_at = excluded.until_at, created_at = excluded.created_at, \
                 created_by = excluded.created_by, rule = excluded.rule",
            )
            .bind(&entry.test)
            .bind(entry.workflow.clone().unwrap_or_default())
            .bind(&entry.reason)
            .bind(entry.until)
            .bind(entry.created_at)
            .bind(entry.created_by.clone())
            .bind(entry.rule.clone())
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("store the quarantine", e))?;
        Ok(entry)
    }

    /// Every entry by test then workflow; expired ones only with `include_expired`.
    pub async fn list_quarantines(&self, include_expired: bool) -> Result<Vec<Quarantine>> {
        let db = self.db();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM quarantines WHERE $1 = 1 OR until_at IS NULL OR until_at > $2 \
             ORDER BY test, workflow"
        )))
        .bind(i64::from(include_expired))
        .bind(now_ms())
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list quarantines", e))?;
        rows.iter().map(from_row).collect()
    }

    /// The entries in force now for `workflow` (its own and those for every workflow); with
    /// `None`, every entry in force. Match test cases against them with [`covering`].
    pub async fn active_quarantines(&self, workflow: Option<&str>) -> Result<Vec<Quarantine>> {
        let db = self.db();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM quarantines WHERE (until_at IS NULL OR until_at > $1) \
             AND ($2 = '' OR workflow = '' OR workflow = $2) ORDER BY test, workflow"
        )))
        .bind(now_ms())
        .bind(workflow.unwrap_or_default().to_string())
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read quarantines", e))?;
        rows.iter().map(from_row).collect()
    }

    /// Lifts the quarantine of `test` for `workflow` (`None`: the entry for every workflow);
    /// `false` when there was none.
    pub async fn remove_quarantine(&self, test: &str, workflow: Option<&str>) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query("DELETE FROM quarantines WHERE test = $1 AND workflow = $2")
                .bind(test.trim())
                .bind(workflow.unwrap_or_default().trim().to_string())
                .execute(&db.writer)
                .await
        })
        .await
        .map_err(|e| db.err("remove the quarantine", e))?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_documented() {
        assert_eq!(parse_until("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_until("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(parse_until("1970-01-01T01:00:00+01:00").unwrap(), 0);
        let e = parse_until("next week").unwrap_err().to_string();
        assert!(e.contains("`next week` is not a date"), "{e}");
        assert!(e.contains("YYYY-MM-DD"), "{e}");
        assert!(parse_until("2026-02-30").is_err());
    }

    #[test]
    fn covering_honours_workflow_name_and_expiry() {
        let q = |test: &str, workflow: Option<&str>, until| Quarantine {
            test: test.into(),
            workflow: workflow.map(Into::into),
            reason: "r".into(),
            until,
            created_at: 0,
            created_by: None,
            rule: None,
        };
        let list = [
            q("tests.test_a::test_x", Some("wf"), None),
            q("test_y", None, Some(100)),
        ];
        assert!(covering(&list, "wf", "tests.test_a::test_x", "test_x", 0).is_some());
        assert!(covering(&list, "other", "tests.test_a::test_x", "test_x", 0).is_none());
        assert!(covering(&list, "other", "m::test_y", "test_y", 99).is_some());
        assert!(covering(&list, "other", "m::test_y", "test_y", 100).is_none());
        assert!(covering(&list, "wf", "m::test_z", "test_z", 0).is_none());
    }
}
