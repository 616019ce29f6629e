//! The rules, judging [`Facts`] without I/O: pure, the same facts give the same verdict.

use std::collections::HashMap;

use assay_api::gate::{Evidence, GateExecution, GateVerdict, MAX_EVIDENCE, RuleVerdict};
use assay_reports::CaseStatus;
use assay_reports::flaky::{self, Verdict};
use assay_store::{
    ExecutionStatus, ExecutionSummary, Quarantine, StoredTestCase, UnixMs, covering,
};

use super::*;

/// What the rules judge, handed in as data.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// `execution NAME` or `commit SHA`.
    pub target: String,
    /// The executions judged (the latest of each workflow), oldest first, with their cases.
    pub executions: Vec<JudgedExecution>,
    /// Tests whose flakiness was judged with and without these executions.
    pub flaky: Vec<FlakyFact>,
    /// The quarantines in force (a failure they cover, or that was recorded as quarantined,
    /// does not fail `noFailingTests`).
    pub quarantines: Vec<Quarantine>,
    /// When the gate is judged (unix ms): which quarantines are in force.
    pub now: UnixMs,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct JudgedExecution {
    pub summary: ExecutionSummary,
    pub cases: Vec<StoredTestCase>,
}

/// One test's flaky verdict over its history before the judged executions, and with them.
#[derive(Debug, Clone)]
pub struct FlakyFact {
    pub execution: String,
    pub key: String,
    pub before: Verdict,
    pub with: Verdict,
}

/// The kind of a recorded case, by its suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Test,
    Policy,
    Secret,
}

pub fn kind_of(case: &StoredTestCase) -> Kind {
    match case.case.suite.as_str() {
        POLICY_SUITE => Kind::Policy,
        SECRET_SUITE => Kind::Secret,
        _ => Kind::Test,
    }
}

/// The severity `assay policy check` writes at the start of a violation's message
/// (`[high] …`), if any.
pub fn severity_of(message: Option<&str>) -> Option<Severity> {
    let rest = message?.strip_prefix('[')?;
    let end = rest.find(']')?;
    Severity::parse(&rest[..end])
}

/// Each test's final case in an execution (a retried test's last run), in recorded order.
pub(super) fn final_cases(cases: &[StoredTestCase], kind: Kind) -> Vec<&StoredTestCase> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    let picked: Vec<&StoredTestCase> = cases.iter().filter(|c| kind_of(c) == kind).collect();
    for (i, c) in picked.iter().enumerate() {
        last.insert(c.key.as_str(), i);
    }
    picked
        .iter()
        .enumerate()
        .filter(|(i, c)| last.get(c.key.as_str()) == Some(i))
        .map(|(_, c)| *c)
        .collect()
}

pub(super) fn failing(c: &StoredTestCase) -> bool {
    matches!(c.case.status, CaseStatus::Failed | CaseStatus::Error)
}

pub(super) fn evidence(execution: &str, item: String, detail: Option<String>) -> Evidence {
    Evidence {
        execution: Some(execution.to_string()),
        item,
        detail: detail.map(|d| first_line(&d, 300)),
    }
}

pub(super) fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

pub(super) fn verdict(
    rule: &str,
    passed: bool,
    summary: String,
    mut evidence: Vec<Evidence>,
) -> RuleVerdict {
    evidence.truncate(MAX_EVIDENCE);
    RuleVerdict {
        rule: rule.to_string(),
        passed,
        summary,
        evidence,
    }
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Judge `facts` by `gate`: pure, the same facts give the same verdict.
pub fn evaluate(gate: &Gate, facts: &Facts) -> GateVerdict {
    let r = &gate.rules;
    let mut rules = Vec::new();
    let mut notes = facts.notes.clone();
    let unfinished: Vec<&str> = facts
        .executions
        .iter()
        .filter(|e| !e.summary.status.is_terminal())
        .map(|e| e.summary.name.as_str())
        .collect();
    if !unfinished.is_empty() {
        notes.push(format!(
            "not finished, so their results may be incomplete: {}",
            unfinished.join(", ")
        ));
    }

    if r.no_failing_tests {
        rules.push(no_failing_tests(facts, &mut notes));
    }
    if let Some(p) = &r.no_policy_violations {
        rules.push(no_policy_violations(p, facts));
    }
    if r.no_new_flaky_tests {
        rules.push(no_new_flaky_tests(facts));
    }
    if r.no_secrets {
        rules.push(no_secrets(facts));
    }
    if let Some(rate) = r.min_pass_rate {
        rules.push(min_pass_rate(rate.0, facts));
    }
    if !r.required_workflows.is_empty() {
        rules.push(required_workflows(&r.required_workflows, facts));
    }
    GateVerdict {
        gate: gate.name.clone(),
        passed: rules.iter().all(|v| v.passed),
        target: facts.target.clone(),
        executions: facts
            .executions
            .iter()
            .map(|e| GateExecution {
                id: e.summary.id.clone(),
                name: e.summary.name.clone(),
                workflow: e.summary.workflow.clone(),
                status: e.summary.status.as_str().to_string(),
            })
            .collect(),
        rules,
        notes,
    }
}

pub(super) fn no_failing_tests(facts: &Facts, notes: &mut Vec<String>) -> RuleVerdict {
    let (mut total, mut ignored) = (0, 0);
    let mut ev = Vec::new();
    let mut count = 0;
    for e in &facts.executions {
        for c in final_cases(&e.cases, Kind::Test) {
            total += 1;
            if !failing(c) {
                continue;
            }
            let quarantine = covering(
                &facts.quarantines,
                &e.summary.workflow,
                &c.key,
                &c.case.name,
                facts.now,
            );
            if c.quarantined || quarantine.is_some() {
                ignored += 1;
                notes.push(format!(
                    "quarantined, not counted: {} ({}){}",
                    c.key,
                    e.summary.name,
                    quarantine
                        .map(|q| format!(": {}", q.reason))
                        .unwrap_or_default()
                ));
                continue;
            }
            count += 1;
            ev.push(evidence(
                &e.summary.name,
                c.key.clone(),
                c.case.message.clone().or_else(|| c.case.output.clone()),
            ));
        }
    }
    let mut summary = if count == 0 {
        format!("{} ran, none failing", plural(total, "test", "tests"))
    } else {
        format!("{} of {total} failing", plural(count, "test", "tests"))
    };
    if ignored > 0 {
        summary.push_str(&format!(
            " ({} not counted)",
            plural(ignored, "quarantined failure", "quarantined failures")
        ));
    }
    verdict("noFailingTests", count == 0, summary, ev)
}

pub(super) fn no_policy_violations(rule: &PolicyRule, facts: &Facts) -> RuleVerdict {
    let (mut results, mut below) = (0, 0);
    let mut ev = Vec::new();
    for e in &facts.executions {
        for c in final_cases(&e.cases, Kind::Policy) {
            results += 1;
            if !failing(c) {
                continue;
            }
            let severity = severity_of(c.case.message.as_deref());
            let counts = match severity {
                Some(s) => s >= rule.severity,
                None => rule.count_unrated,
            };
            if !counts {
                below += 1;
                continue;
            }
            let policy = c.case.class.clone().unwrap_or_default();
            ev.push(evidence(
                &e.summary.name,
                format!("{policy} {}", c.case.name),
                Some(format!(
                    "{}: {}",
                    severity.map_or("unrated", Severity::as_str),
                    c.case.message.as_deref().unwrap_or("violation")
                )),
            ));
        }
    }
    let count = ev.len();
    let mut summary = if count == 0 {
        format!(
            "no violation of severity {} or above in {}",
            rule.severity.as_str(),
            plural(results, "policy result", "policy results")
        )
    } else {
        format!(
            "{} of severity {} or above",
            plural(count, "violation", "violations"),
            rule.severity.as_str()
        )
    };
    if below > 0 {
        summary.push_str(&format!(", {below} below it not counted"));
    }
    if results == 0 {
        summary.push_str(" (no policy check recorded)");
    }
    let name = format!("noPolicyViolations (severity ≥ {})", rule.severity.as_str());
    verdict(&name, count == 0, summary, ev)
}

pub(super) fn no_new_flaky_tests(facts: &Facts) -> RuleVerdict {
    let ev: Vec<Evidence> = facts
        .flaky
        .iter()
        .filter(|f| f.with.flaky && !f.before.flaky)
        .map(|f| {
            let why = match &f.with.reason {
                Some(flaky::FlakyReason::SameCommit { commit }) => {
                    format!("passed and failed on commit {commit}")
                }
                Some(flaky::FlakyReason::PassedOnRetry) => "passed on a retry".to_string(),
                None => "flaky".to_string(),
            };
            evidence(&f.execution, f.key.clone(), Some(why))
        })
        .collect();
    let already = facts
        .flaky
        .iter()
        .filter(|f| f.with.flaky && f.before.flaky)
        .count();
    let count = ev.len();
    let mut summary = if count == 0 {
        "no test became flaky".to_string()
    } else {
        format!("{} became flaky", plural(count, "test", "tests"))
    };
    if already > 0 {
        summary.push_str(&format!(
            " ({} flaky before, not new)",
            plural(already, "test was", "tests were")
        ));
    }
    verdict("noNewFlakyTests", count == 0, summary, ev)
}

pub(super) fn no_secrets(facts: &Facts) -> RuleVerdict {
    let (mut scanned, mut ev) = (false, Vec::new());
    for e in &facts.executions {
        for c in final_cases(&e.cases, Kind::Secret) {
            scanned = true;
            if failing(c) {
                let rule = c.case.class.clone().unwrap_or_default();
                ev.push(evidence(
                    &e.summary.name,
                    format!("{rule} {}", c.case.name),
                    c.case.message.clone(),
                ));
            }
        }
    }
    let count = ev.len();
    let summary = match (count, scanned) {
        (0, true) => "no secret found".to_string(),
        (0, false) => "no secret found (no secret scan recorded)".to_string(),
        _ => format!("{} found", plural(count, "secret", "secrets")),
    };
    verdict("noSecrets", count == 0, summary, ev)
}

pub(super) fn min_pass_rate(min: f64, facts: &Facts) -> RuleVerdict {
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut ev = Vec::new();
    for e in &facts.executions {
        for c in final_cases(&e.cases, Kind::Test) {
            match c.case.status {
                CaseStatus::Passed => passed += 1,
                CaseStatus::Failed | CaseStatus::Error => {
                    failed += 1;
                    ev.push(evidence(
                        &e.summary.name,
                        c.key.clone(),
                        c.case.message.clone(),
                    ));
                }
                CaseStatus::Skipped => {}
            }
        }
    }
    let counted = passed + failed;
    let name = format!("minPassRate ({}%)", trim_number(min));
    if counted == 0 {
        return verdict(
            &name,
            false,
            "no test passed or failed, so there is no pass rate".into(),
            Vec::new(),
        );
    }
    let rate = passed as f64 * 100.0 / counted as f64;
    let ok = rate >= min;
    let summary = format!(
        "{}% passed ({passed} of {counted}; skipped tests left out)",
        trim_number((rate * 10.0).floor() / 10.0)
    );
    verdict(&name, ok, summary, if ok { Vec::new() } else { ev })
}

pub(super) fn trim_number(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

pub(super) fn required_workflows(names: &[String], facts: &Facts) -> RuleVerdict {
    let mut ev = Vec::new();
    let mut ok = 0;
    for name in names {
        // The latest execution of the workflow (executions are oldest first).
        match facts
            .executions
            .iter()
            .rev()
            .find(|e| &e.summary.workflow == name)
        {
            Some(e) if e.summary.status == ExecutionStatus::Passed => ok += 1,
            Some(e) => ev.push(evidence(
                &e.summary.name,
                name.clone(),
                Some(e.summary.status.as_str().to_string()),
            )),
            None => ev.push(Evidence {
                execution: None,
                item: name.clone(),
                detail: Some(format!("not run for {}", facts.target)),
            }),
        }
    }
    let summary = if ev.is_empty() {
        format!(
            "{} passed",
            plural(ok, "required workflow", "required workflows")
        )
    } else {
        format!("{} of {} did not pass", ev.len(), names.len())
    };
    verdict("requiredWorkflows", ev.is_empty(), summary, ev)
}
