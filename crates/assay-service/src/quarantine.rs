//! Quarantine use cases: add, list and lift quarantines of tests (every front end adapts
//! these), and automatic quarantine of tests the flaky rule marks.

use assay_api::quarantine::{QuarantineEntry, QuarantineRequest};
use assay_reports::flaky::{FlakyPolicy, FlakyReason, Verdict};
use assay_store::testkube::rfc3339;
use assay_store::{NewQuarantine, Quarantine, StoreError, UnixMs, now_ms, parse_until};

use crate::{Service, ServiceError, ServiceResult};

/// How long an automatic quarantine lasts.
pub const AUTO_QUARANTINE_DAYS: i64 = 14;

/// An entry as every front end shows it, active at `now` or not.
pub fn entry(q: &Quarantine, now: UnixMs) -> QuarantineEntry {
    QuarantineEntry {
        test: q.test.clone(),
        workflow: q.workflow.clone(),
        reason: q.reason.clone(),
        until: q.until.map(rfc3339),
        active: q.is_active(now),
        created_at: rfc3339(q.created_at),
        created_by: q.created_by.clone(),
        rule: q.rule.clone(),
    }
}

fn invalid(e: StoreError) -> ServiceError {
    match e {
        StoreError::Invalid(m) => ServiceError::BadRequest(m),
        other => ServiceError::Store(other),
    }
}

impl Service {
    /// Quarantines a test as `who` asks (`who` is recorded as its author).
    pub async fn quarantine(
        &self,
        request: &QuarantineRequest,
        who: Option<&str>,
    ) -> ServiceResult<QuarantineEntry> {
        let until = match request.until.as_deref() {
            Some(text) => Some(parse_until(text).map_err(invalid)?),
            None => None,
        };
        let stored = self
            .store()
            .add_quarantine(&NewQuarantine {
                test: request.test.clone(),
                workflow: request.workflow.clone(),
                reason: request.reason.clone(),
                until,
                created_by: who.map(str::to_string),
                rule: None,
            })
            .await
            .map_err(invalid)?;
        Ok(entry(&stored, now_ms()))
    }

    /// Every entry in force (with `all`, expired ones too), by test.
    pub async fn quarantines(&self, all: bool) -> ServiceResult<Vec<QuarantineEntry>> {
        let now = now_ms();
        Ok(self
            .store()
            .list_quarantines(all)
            .await?
            .iter()
            .map(|q| entry(q, now))
            .collect())
    }

    /// Lifts the quarantine of `test` for `workflow` (`None`: the entry for every workflow).
    pub async fn unquarantine(&self, test: &str, workflow: Option<&str>) -> ServiceResult<()> {
        if self.store().remove_quarantine(test, workflow).await? {
            return Ok(());
        }
        let r#for = match workflow {
            Some(w) => format!("for workflow `{w}`"),
            None => "for every workflow".to_string(),
        };
        Err(ServiceError::NotFound(format!(
            "test `{test}` is not quarantined {for}; `assay quarantine list` shows the entries and the workflow each is for",
            r#for = r#for
        )))
    }

    /// Quarantines the tests of `workflow` that the flaky rule marks now (and that no entry
    /// covers yet) for [`AUTO_QUARANTINE_DAYS`], each with the rule and its evidence; returns
    /// the new entries.
    pub async fn auto_quarantine(&self, workflow: &str) -> ServiceResult<Vec<Quarantine>> {
        let now = now_ms();
        let policy = FlakyPolicy::default();
        let existing = self.store().active_quarantines(Some(workflow)).await?;
        let mut added = Vec::new();
        for test in self
            .store()
            .flaky_tests(Some(workflow), &policy, now)
            .await?
        {
            if !test.verdict.flaky
                || assay_store::covering(&existing, workflow, &test.key, &test.name, now).is_some()
            {
                continue;
            }
            let rule = flaky_rule(&test.verdict);
            let stored = self
                .store()
                .add_quarantine(&NewQuarantine {
                    test: test.key.clone(),
                    workflow: Some(workflow.to_string()),
                    reason: format!(
                        "automatic: marked flaky by the flaky rule (lifted after {AUTO_QUARANTINE_DAYS} days)"
                    ),
                    until: Some(now + AUTO_QUARANTINE_DAYS * 24 * 3600 * 1000),
                    created_by: Some("assay (auto-quarantine)".into()),
                    rule: Some(rule),
                })
                .await?;
            added.push(stored);
        }
        Ok(added)
    }
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
        .map(|t| format!(", last at {}", rfc3339(t)))
        .unwrap_or_default();
    format!(
        "flaky: {why} ({} failure(s) in {} run(s) in the window{at})",
        verdict.failures, verdict.runs
    )
}
