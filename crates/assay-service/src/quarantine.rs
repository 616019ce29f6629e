//! Quarantine use cases: add, list and lift quarantines of tests (every front end adapts
//! these). Automatic quarantine is the store's (`Store::auto_quarantine`): the runner calls it.

use assay_api::quarantine::{QuarantineEntry, QuarantineRequest};
use assay_store::testkube::rfc3339;
use assay_store::{NewQuarantine, Quarantine, StoreError, UnixMs, now_ms, parse_until};

use crate::{Service, ServiceError, ServiceResult};

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
}
