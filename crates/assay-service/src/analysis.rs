//! Why did it fail: the history an analysis needs, read through indexed lookups, handed to the
//! pure rules of `assay-analysis`.

use std::collections::HashMap;

use assay_analysis::{Analysis, Baseline, Facts, HISTORY_DEPTH, MAX_FAILING_TESTS, MAX_SIMILAR};
use assay_store::{
    Execution, ExecutionFilter, ExecutionRef, ExecutionStatus, Store, StoredTestCase,
};

use crate::Service;
use crate::error::ServiceResult;

/// Executions since the last pass looked at, at most.
const SINCE_LAST_PASS: u32 = 200;
/// Log lines of a step read, at most (the last ones).
const LOG_LINES: usize = 5000;

async fn step_log(store: &Store, id: &str, step: Option<&str>) -> ServiceResult<Vec<String>> {
    let Some(step) = step else {
        return Ok(Vec::new());
    };
    let mut lines: Vec<String> = store
        .read_logs(id, Some(step))
        .await?
        .into_iter()
        .flat_map(|l| l.text.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    if lines.len() > LOG_LINES {
        lines.drain(..lines.len() - LOG_LINES);
    }
    Ok(lines)
}

impl Service {
    /// The analysis of one execution (by id or name): class, rule, evidence, diff against the
    /// last pass, failing tests with their history.
    pub async fn analyze(&self, reference: &str) -> ServiceResult<Analysis> {
        let store = &self.store;
        let exec: Execution = store.get_execution(&ExecutionRef::parse(reference)).await?;
        let failing_step = assay_store::blame::failed_step(&exec).cloned();
        let step_ref = failing_step.as_ref().map(|s| s.step_ref.clone());
        let log = step_log(store, &exec.id, step_ref.as_deref()).await?;
        let tests: Vec<StoredTestCase> = store
            .test_cases(&ExecutionRef::Id(exec.id.clone()), &[])
            .await?;

        let last_pass = store
            .list_executions(&ExecutionFilter {
                workflow: Some(exec.workflow.clone()),
                statuses: vec![ExecutionStatus::Passed],
                tags: Vec::new(),
                since: None,
                limit: Some(1),
                before_id: Some(exec.id.clone()),
            })
            .await?
            .into_iter()
            .next();
        let baseline = match &last_pass {
            Some(p) => {
                let e = store.get_execution(&ExecutionRef::Id(p.id.clone())).await?;
                let t = store
                    .test_cases(&ExecutionRef::Id(p.id.clone()), &[])
                    .await?;
                let l = step_log(store, &p.id, step_ref.as_deref()).await?;
                Some((e, t, l))
            }
            None => None,
        };
        let since_last_pass = store
            .executions_between(
                &exec.workflow,
                last_pass.as_ref().map(|p| p.id.as_str()),
                &exec.id,
                SINCE_LAST_PASS,
            )
            .await?;

        let mut histories = HashMap::new();
        let mut similar = HashMap::new();
        for t in assay_analysis::failing_cases(&tests)
            .into_iter()
            .take(MAX_FAILING_TESTS)
        {
            let runs = store
                .recent_test_runs(&exec.workflow, &t.key, &exec.id, HISTORY_DEPTH)
                .await?;
            histories.insert(t.key.clone(), runs);
            let text = t
                .case
                .message
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .or(t.case.output.as_deref());
            if let Some(sig) = text.and_then(assay_reports::signature)
                && !similar.contains_key(&sig)
            {
                let found = store
                    .similar_failures(&exec.workflow, &sig, &exec.id, MAX_SIMILAR)
                    .await?;
                similar.insert(sig, found);
            }
        }
        let facts = Facts {
            execution: &exec,
            failing_step: failing_step.as_ref(),
            step_log: &log,
            tests: &tests,
            last_pass: baseline.as_ref().map(|(e, t, l)| Baseline {
                execution: e,
                tests: t,
                step_log: l,
            }),
            since_last_pass: &since_last_pass,
            histories: &histories,
            similar: &similar,
        };
        Ok(assay_analysis::analyze(&facts))
    }
}

/// An id at or after every UUID: "up to now" for [`Store::executions_between`].
const LAST_ID: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";

/// Two executions compared ([`Service::compare`]).
#[derive(Debug, Clone)]
pub struct Comparison {
    pub before: assay_store::ExecutionSummary,
    pub after: assay_store::ExecutionSummary,
    pub diff: assay_analysis::Diff,
}

/// A workflow's failures since it last passed ([`Service::failures_since_last_pass`]).
#[derive(Debug, Clone)]
pub struct FailuresSinceLastPass {
    pub last_pass: Option<assay_store::ExecutionSummary>,
    /// Executions after the last pass, newest first (every status).
    pub since: Vec<assay_store::ExecutionSummary>,
    /// More executions than `since` holds.
    pub truncated: bool,
}

impl Service {
    /// What changed from execution `before` to execution `after`: commit, definition, config,
    /// tags, durations that jumped, tests that newly fail, new log lines of `after`'s failing
    /// step.
    pub async fn compare(&self, before: &str, after: &str) -> ServiceResult<Comparison> {
        let store = &self.store;
        let a = store.get_execution(&ExecutionRef::parse(before)).await?;
        let b = store.get_execution(&ExecutionRef::parse(after)).await?;
        let step = assay_store::blame::failed_step(&b).map(|s| s.step_ref.clone());
        let (la, lb) = (
            step_log(store, &a.id, step.as_deref()).await?,
            step_log(store, &b.id, step.as_deref()).await?,
        );
        let ta = store
            .test_cases(&ExecutionRef::Id(a.id.clone()), &[])
            .await?;
        let tb = store
            .test_cases(&ExecutionRef::Id(b.id.clone()), &[])
            .await?;
        let diff = assay_analysis::compare(
            &Baseline {
                execution: &a,
                tests: &ta,
                step_log: &la,
            },
            &Baseline {
                execution: &b,
                tests: &tb,
                step_log: &lb,
            },
        );
        Ok(Comparison {
            before: a.summary,
            after: b.summary,
            diff,
        })
    }

    /// The executions of `workflow` since its last pass, newest first, at most `limit`.
    pub async fn failures_since_last_pass(
        &self,
        workflow: &str,
        limit: u32,
    ) -> ServiceResult<FailuresSinceLastPass> {
        let store = &self.store;
        let last_pass = store
            .list_executions(&ExecutionFilter {
                workflow: Some(workflow.to_string()),
                statuses: vec![ExecutionStatus::Passed],
                limit: Some(1),
                ..ExecutionFilter::default()
            })
            .await?
            .into_iter()
            .next();
        let mut since = store
            .executions_between(
                workflow,
                last_pass.as_ref().map(|p| p.id.as_str()),
                LAST_ID,
                limit + 1,
            )
            .await?;
        let truncated = since.len() > limit as usize;
        since.truncate(limit as usize);
        if last_pass.is_none() && since.is_empty() {
            return Err(crate::ServiceError::NotFound(format!(
                "workflow `{workflow}` has no executions"
            )));
        }
        Ok(FailuresSinceLastPass {
            last_pass,
            since,
            truncated,
        })
    }

    /// The latest runs of one test of `workflow` (by key `class::name`, else bare name), newest
    /// first, at most `limit`.
    pub async fn test_history(
        &self,
        workflow: &str,
        test: &str,
        limit: u32,
    ) -> ServiceResult<Vec<assay_store::TestRun>> {
        let mut runs = self
            .store
            .recent_test_runs(workflow, test, LAST_ID, limit)
            .await?;
        if runs.is_empty() {
            runs = self.store.test_history(workflow, test).await?;
            runs.reverse();
            runs.truncate(limit as usize);
        }
        Ok(runs)
    }
}
