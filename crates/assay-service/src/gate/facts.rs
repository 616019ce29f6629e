//! What a gate judges ([`Target`]) and the facts read for it from the store.

use std::collections::{BTreeMap, HashSet};

use assay_api::gate::GateVerdict;
use assay_reports::flaky::{self, FlakyPolicy};
use assay_store::{ExecutionFilter, ExecutionRef, ExecutionSummary, UnixMs};

use crate::Service;
use crate::error::{ServiceError, ServiceResult};

use super::*;

/// What a gate judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One execution (id or name).
    Execution(String),
    /// Every execution tagged `commit=SHA` (the latest of each workflow for results).
    Commit(String),
}

impl Target {
    /// From a request that gives one of the two.
    pub fn from_request(execution: Option<&str>, commit: Option<&str>) -> ServiceResult<Target> {
        match (
            execution.filter(|s| !s.trim().is_empty()),
            commit.filter(|s| !s.trim().is_empty()),
        ) {
            (Some(e), None) => Ok(Target::Execution(e.to_string())),
            (None, Some(c)) => Ok(Target::Commit(c.to_string())),
            (Some(_), Some(_)) => Err(ServiceError::BadRequest(
                "give an execution or a commit, not both".into(),
            )),
            (None, None) => Err(ServiceError::BadRequest(
                "give an execution (id or name) or a commit to judge".into(),
            )),
        }
    }
}

impl Service {
    /// Judge `target` by `gate` at time `now`: reads the executions, their test cases and the
    /// history flakiness is judged on, then [`evaluate`]s.
    pub async fn evaluate_gate(
        &self,
        gate: &Gate,
        target: &Target,
        now: UnixMs,
    ) -> ServiceResult<GateVerdict> {
        let store = &self.store;
        let (label, mut all) = match target {
            Target::Execution(reference) => {
                let exec = store
                    .find_execution(&ExecutionRef::parse(reference))
                    .await?;
                (format!("execution {}", exec.name), vec![exec])
            }
            Target::Commit(sha) => {
                let list = store
                    .list_executions(&ExecutionFilter {
                        tags: vec![("commit".into(), sha.clone())],
                        limit: Some(MAX_EXECUTIONS),
                        ..ExecutionFilter::default()
                    })
                    .await?;
                if list.is_empty() {
                    return Err(ServiceError::NotFound(format!(
                        "no execution is tagged commit={sha}"
                    )));
                }
                (format!("commit {sha}"), list)
            }
        };
        // Oldest first.
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let mut notes = Vec::new();
        if all.len() as u32 >= MAX_EXECUTIONS {
            notes.push(format!(
                "only the latest {MAX_EXECUTIONS} executions of the commit were read"
            ));
        }
        // Results: the latest execution of each workflow (a rerun supersedes a failure).
        let mut latest: BTreeMap<&str, &ExecutionSummary> = BTreeMap::new();
        for e in &all {
            latest.insert(e.workflow.as_str(), e);
        }
        let mut judged: Vec<JudgedExecution> = Vec::new();
        for e in &all {
            if latest.get(e.workflow.as_str()).map(|l| &l.id) != Some(&e.id) {
                notes.push(format!(
                    "{} superseded by {} (the latest of {})",
                    e.name,
                    latest[e.workflow.as_str()].name,
                    e.workflow
                ));
                continue;
            }
            let cases = store
                .test_cases(&ExecutionRef::Id(e.id.clone()), &[])
                .await?;
            judged.push(JudgedExecution {
                summary: e.clone(),
                cases,
            });
        }

        let mut flaky_facts = Vec::new();
        if gate.rules.no_new_flaky_tests {
            flaky_facts = self.flaky_facts(&all, now).await?;
        }
        let facts = Facts {
            target: label,
            executions: judged,
            flaky: flaky_facts,
            quarantines: store.active_quarantines(None).await?,
            now,
            notes,
        };
        Ok(evaluate(gate, &facts))
    }

    /// For each test of `executions` that the store judges flaky or that failed in them: its
    /// verdict on the history before the first of them, and with them.
    async fn flaky_facts(
        &self,
        executions: &[ExecutionSummary],
        now: UnixMs,
    ) -> ServiceResult<Vec<FlakyFact>> {
        let store = &self.store;
        let policy = FlakyPolicy::default();
        let ids: HashSet<&str> = executions.iter().map(|e| e.id.as_str()).collect();
        let mut by_workflow: BTreeMap<&str, Vec<&ExecutionSummary>> = BTreeMap::new();
        for e in executions {
            by_workflow.entry(e.workflow.as_str()).or_default().push(e);
        }
        let mut out = Vec::new();
        for (workflow, execs) in by_workflow {
            let (first, last) = (execs[0], execs[execs.len() - 1]);
            // Candidates: tests of these executions with a failure or a rerun in the window.
            let candidates = store
                .flaky_tests(Some(workflow), &policy, now)
                .await?
                .into_iter()
                .map(|f| f.key)
                .collect::<HashSet<_>>();
            let mut seen = HashSet::new();
            for e in &execs {
                let cases = store
                    .test_cases(&ExecutionRef::Id(e.id.clone()), &[])
                    .await?;
                for c in cases {
                    if kind_of(&c) != Kind::Test
                        || !candidates.contains(&c.key)
                        || !seen.insert(c.key.clone())
                    {
                        continue;
                    }
                    let runs = store
                        .recent_test_runs(workflow, &c.key, &last.id, FLAKY_HISTORY)
                        .await?;
                    let with: Vec<_> = runs.iter().flat_map(|r| r.observations()).collect();
                    let before: Vec<_> = runs
                        .iter()
                        .filter(|r| {
                            !ids.contains(r.execution_id.as_str()) && r.execution_id < first.id
                        })
                        .flat_map(|r| r.observations())
                        .collect();
                    out.push(FlakyFact {
                        execution: e.name.clone(),
                        key: c.key.clone(),
                        before: flaky::assess(&before, &policy, now),
                        with: flaky::assess(&with, &policy, now),
                    });
                }
            }
        }
        Ok(out)
    }
}
