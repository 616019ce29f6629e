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
