//! Quality gates: rules over one execution or every execution of a commit (the `commit` tag),
//! each with its verdict and evidence. [`Gate::parse`] reads a gate file (errors with line and
//! column), [`evaluate`] judges [`Facts`] without I/O, and [`Service::evaluate_gate`] reads the
//! facts from the store.
//!
//! What is what, from the test cases the executions recorded: a case of the suite
//! [`POLICY_SUITE`] (`assay policy check --junit`) is a policy result, one of [`SECRET_SUITE`]
//! (`assay scan secrets --junit`, the `assay/scan-secrets/v1` template) a secret-scan result,
//! every other case a test (Kyverno test suites run by `assay policy test` included: a failed
//! expectation there is a failing test).

use std::collections::{BTreeMap, HashMap, HashSet};

use assay_api::gate::{Evidence, GateExecution, GateVerdict, MAX_EVIDENCE, RuleVerdict};
use assay_reports::CaseStatus;
use assay_reports::flaky::{self, FlakyPolicy, Verdict};
use assay_store::{
    ExecutionFilter, ExecutionRef, ExecutionStatus, ExecutionSummary, Quarantine, StoredTestCase,
    UnixMs, covering,
};
use serde::Deserialize;

use crate::Service;
use crate::error::{Problem, ServiceError, ServiceResult};

/// The suite of `assay policy check`'s test cases (`assay_policy::check::test_cases`).
pub const POLICY_SUITE: &str = "policy check";
/// The suite of `assay scan secrets`' test cases (`assay_scan::SUITE`).
pub const SECRET_SUITE: &str = "secret scan";
/// Executions of one commit judged, at most.
pub const MAX_EXECUTIONS: u32 = 200;
/// A test's earlier runs read to judge whether it was flaky before.
const FLAKY_HISTORY: u32 = 50;
/// Largest gate file accepted.
pub const MAX_GATE_BYTES: usize = 64 * 1024;

/// Kyverno's severities (`policies.kyverno.io/severity`), lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A gate file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gate {
    /// `QualityGate` when given: lets `assay validate` and other tools that read a folder of
    /// YAML tell a gate file from a workflow missing its `kind`.
    #[serde(default)]
    pub kind: Option<String>,
    /// A name for the verdict (and the badge).
    #[serde(default)]
    pub name: Option<String>,
    pub rules: Rules,
}

/// The `kind` a gate file may declare.
pub const GATE_KIND: &str = "QualityGate";

/// The rules; each is off unless given. Judged in this order.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rules {
    /// No test failed (policy and secret-scan results are judged by their own rules).
    #[serde(default)]
    pub no_failing_tests: bool,
    /// No policy violation of this severity or above.
    #[serde(default)]
    pub no_policy_violations: Option<PolicyRule>,
    /// No test that was not flaky before these executions is flaky with them.
    #[serde(default)]
    pub no_new_flaky_tests: bool,
    /// No secret found by a scan.
    #[serde(default)]
    pub no_secrets: bool,
    /// Passed tests ÷ (passed + failed) × 100, skipped left out, at least this.
    #[serde(default)]
    pub min_pass_rate: Option<PassRate>,
    /// The latest execution of each of these workflows passed.
    #[serde(default)]
    pub required_workflows: Vec<String>,
}

/// `noPolicyViolations`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyRule {
    /// Violations of this severity or above count (default `info`: every one).
    #[serde(default = "lowest")]
    pub severity: Severity,
    /// Whether violations of policies without a severity (Rego, Kyverno policies without the
    /// annotation) count; default yes, so nothing is ignored unless asked.
    #[serde(default = "yes")]
    pub count_unrated: bool,
}

fn lowest() -> Severity {
    Severity::Info
}

fn yes() -> bool {
    true
}

/// A percentage from 0 to 100, refused otherwise where it is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassRate(pub f64);

impl<'de> Deserialize<'de> for PassRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(0.0..=100.0).contains(&v) {
            return Err(serde::de::Error::custom(format!(
                "minPassRate must be a percentage from 0 to 100, not {v}"
            )));
        }
        Ok(PassRate(v))
    }
}

impl Gate {
    /// Read a gate file's text; errors carry line and column.
    pub fn parse(text: &str) -> ServiceResult<Gate> {
        if text.len() > MAX_GATE_BYTES {
            return Err(invalid(
                0,
                0,
                format!("the gate file is larger than {} KiB", MAX_GATE_BYTES / 1024),
                None,
            ));
        }
        if text.trim().is_empty() {
            return Err(invalid(
                1,
                1,
                "the gate file is empty".into(),
                Some(EXAMPLE),
            ));
        }
        let gate: Gate = serde_saphyr::from_str(text).map_err(|e| {
            let e = e.without_snippet();
            let (line, column) = e.location().map_or((0, 0), |l| {
                (l.line().max(1) as usize, l.column().max(1) as usize)
            });
            invalid(
                line,
                column,
                clean_message(&e.to_string()),
                Some(hint_for(&e.to_string())),
            )
        })?;
        if let Some(kind) = gate.kind.as_deref()
            && kind != GATE_KIND
        {
            return Err(invalid(
                1,
                1,
                format!("`kind: {kind}` is not a gate"),
                Some(format!("a gate file says `kind: {GATE_KIND}`, or no kind at all").as_str()),
            ));
        }
        let r = &gate.rules;
        if !r.no_failing_tests
            && r.no_policy_violations.is_none()
            && !r.no_new_flaky_tests
            && !r.no_secrets
            && r.min_pass_rate.is_none()
            && r.required_workflows.is_empty()
        {
            return Err(invalid(
                0,
                0,
                "the gate has no rules: every rule is off".into(),
                Some(EXAMPLE),
            ));
        }
        if let Some(w) = r.required_workflows.iter().find(|w| w.trim().is_empty()) {
            return Err(invalid(
                0,
                0,
                format!("requiredWorkflows has an empty name ({w:?})"),
                Some("name each workflow as `assay get workflows` lists it"),
            ));
        }
        Ok(gate)
    }

    /// Read the `rules` of a request: a gate file's text, or the same document as JSON.
    pub fn from_value(value: &serde_json::Value) -> ServiceResult<Gate> {
        match value {
            serde_json::Value::String(text) => Gate::parse(text),
            serde_json::Value::Object(_) => Gate::parse(&value.to_string()),
            _ => Err(ServiceError::BadRequest(
                "rules must be a gate file's text or a JSON object like {\"rules\": {\"noFailingTests\": true}}".into(),
            )),
        }
    }
}

const EXAMPLE: &str = "a gate file looks like `rules: {noFailingTests: true, minPassRate: 95}`; the rules are noFailingTests, noPolicyViolations, noNewFlakyTests, noSecrets, minPassRate, requiredWorkflows";

fn hint_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        EXAMPLE
    } else if message.contains("severity") || message.contains("variant") {
        "severities are info, low, medium, high, critical"
    } else {
        "see the README's Quality gates section for the format"
    }
}

/// serde-saphyr's message without its own position prefix (the problem carries it).
fn clean_message(message: &str) -> String {
    let mut m = message
        .strip_prefix("error: ")
        .unwrap_or(message)
        .to_string();
    if let Some(i) = m.find(": ")
        && m[..i].starts_with("line ")
        && m[..i].contains(" column ")
    {
        m = m[i + 2..].to_string();
    }
    m.lines().next().unwrap_or_default().trim().to_string()
}

fn invalid(line: usize, column: usize, message: String, hint: Option<&str>) -> ServiceError {
    ServiceError::Invalid {
        detail: format!("the gate file is not valid: {message}"),
        problems: vec![Problem {
            line,
            column,
            message,
            hint: hint.map(str::to_string),
            path: None,
        }],
    }
}

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
fn final_cases(cases: &[StoredTestCase], kind: Kind) -> Vec<&StoredTestCase> {
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

fn failing(c: &StoredTestCase) -> bool {
    matches!(c.case.status, CaseStatus::Failed | CaseStatus::Error)
}

fn evidence(execution: &str, item: String, detail: Option<String>) -> Evidence {
    Evidence {
        execution: Some(execution.to_string()),
        item,
        detail: detail.map(|d| first_line(&d, 300)),
    }
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

fn verdict(rule: &str, passed: bool, summary: String, mut evidence: Vec<Evidence>) -> RuleVerdict {
    evidence.truncate(MAX_EVIDENCE);
    RuleVerdict {
        rule: rule.to_string(),
        passed,
        summary,
        evidence,
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
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

fn no_failing_tests(facts: &Facts, notes: &mut Vec<String>) -> RuleVerdict {
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

fn no_policy_violations(rule: &PolicyRule, facts: &Facts) -> RuleVerdict {
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

fn no_new_flaky_tests(facts: &Facts) -> RuleVerdict {
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

fn no_secrets(facts: &Facts) -> RuleVerdict {
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

fn min_pass_rate(min: f64, facts: &Facts) -> RuleVerdict {
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

fn trim_number(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn required_workflows(names: &[String], facts: &Facts) -> RuleVerdict {
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

/// The verdict as text (`assay gate`, MCP `evaluate_gate`): what was judged, a line per rule
/// (`PASS`/`FAIL`, the rule, what it found) with its evidence indented below, the notes, and the
/// gate's verdict last.
pub fn render_text(v: &GateVerdict) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let executions: Vec<String> = v
        .executions
        .iter()
        .map(|e| format!("{} {}", e.name, e.status))
        .collect();
    let _ = writeln!(
        out,
        "gate {}on {}: {}",
        v.gate
            .as_deref()
            .map(|g| format!("{g} "))
            .unwrap_or_default(),
        v.target,
        executions.join(", ")
    );
    for r in &v.rules {
        let mark = if r.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "{mark}  {}: {}", r.rule, r.summary);
        for e in &r.evidence {
            let _ = write!(out, "        {}", e.item);
            if let Some(x) = &e.execution {
                let _ = write!(out, " ({x})");
            }
            if let Some(d) = &e.detail {
                let _ = write!(out, ": {d}");
            }
            out.push('\n');
        }
    }
    for n in &v.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let failed = v.rules.iter().filter(|r| !r.passed).count();
    if failed == 0 {
        let _ = writeln!(out, "gate passed: {} rules passed", v.rules.len());
    } else {
        let _ = writeln!(
            out,
            "gate failed: {failed} of {} rules failed",
            v.rules.len()
        );
    }
    out
}

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

#[cfg(test)]
mod tests;
