//! Which step failed a run: the one rule the CLI summary, MCP answers and the server's JSON
//! (`failedStep`, read by remote runs) share.
//!
//! The blamed step is the first innermost failing step in plan order that counts for the
//! verdict: a failing `optional` step (or one inside an optional group) never fails its parent,
//! so it is not the story even when it failed first.

use std::collections::HashMap;

use assay_spec::plan::{Plan, PlanStep};

use crate::{Execution, StepResult, StepStatus};

pub(crate) fn failing(status: StepStatus) -> bool {
    matches!(
        status,
        StepStatus::Failed | StepStatus::Timeout | StepStatus::Aborted
    )
}

/// Step refs of a plan in plan order with their depth (workers' steps under
/// `<ref>/<index>/`).
pub fn plan_order(plan: &Plan) -> Vec<(String, usize)> {
    fn walk(step: &PlanStep, prefix: &str, depth: usize, out: &mut Vec<(String, usize)>) {
        out.push((format!("{prefix}{}", step.reference), depth));
        for child in &step.steps {
            walk(child, prefix, depth + 1, out);
        }
        if let Some(p) = &step.parallel
            && let Some(workers) = &p.workers
        {
            for w in workers {
                let pre = format!("{prefix}{}/{}/", step.reference, w.instance.index);
                walk(&w.root, &pre, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&plan.root, "", 0, &mut out);
    out
}

/// The innermost failing steps that count for the verdict, in plan order. An optional step
/// and everything below it never count: its failure does not fail its parent.
fn innermost_failing(plan: &Plan, results: &HashMap<&str, &StepResult>) -> Vec<String> {
    fn walk(
        step: &PlanStep,
        prefix: &str,
        results: &HashMap<&str, &StepResult>,
        out: &mut Vec<String>,
    ) -> bool {
        if step.optional {
            return false;
        }
        let me = format!("{prefix}{}", step.reference);
        let mut below = false;
        for child in &step.steps {
            below |= walk(child, prefix, results, out);
        }
        if let Some(p) = &step.parallel
            && let Some(workers) = &p.workers
        {
            for w in workers {
                let pre = format!("{prefix}{}/{}/", step.reference, w.instance.index);
                below |= walk(&w.root, &pre, results, out);
            }
        }
        let own = results.get(me.as_str()).is_some_and(|r| failing(r.status));
        if own && !below {
            out.push(me);
        }
        own || below
    }
    let mut out = Vec::new();
    walk(&plan.root, "", results, &mut out);
    out
}

/// The step to blame for a failed execution: the first innermost failing step in plan order
/// that is not optional (without a plan: the first failing step with an exit code, else the
/// last failing one).
pub fn failed_step(exec: &Execution) -> Option<&StepResult> {
    let results: HashMap<&str, &StepResult> = exec
        .steps
        .iter()
        .map(|s| (s.step_ref.as_str(), s))
        .collect();
    if let Some(plan) = plan_of(exec)
        && let Some(r) = innermost_failing(&plan, &results).first()
    {
        return results.get(r.as_str()).copied();
    }
    let mut candidates: Vec<&StepResult> = exec
        .steps
        .iter()
        .filter(|s| failing(s.status) && s.step_ref != "root")
        .collect();
    candidates.sort_by_key(|s| s.position);
    candidates
        .iter()
        .find(|s| s.exit_code.is_some_and(|c| c != 0))
        .or(candidates.last())
        .copied()
}

/// The execution's compiled plan, when it was recorded.
pub fn plan_of(exec: &Execution) -> Option<Plan> {
    serde_json::from_str(exec.resolved.as_deref()?).ok()
}
