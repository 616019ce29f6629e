//! Every rule, passing and failing, on facts made here; and the gate file's errors.

use super::*;
use assay_api::gate::RuleVerdict;
use assay_reports::flaky::{FlakyReason, Verdict};
use assay_reports::{CaseStatus, TestCase};
use assay_store::{ExecutionStatus, ExecutionSummary, Quarantine, StoredTestCase};

use crate::error::{Problem, ServiceError};

fn case(
    suite: &str,
    class: &str,
    name: &str,
    status: CaseStatus,
    message: Option<&str>,
) -> StoredTestCase {
    let case = TestCase {
        suite: suite.into(),
        class: Some(class.into()),
        name: name.into(),
        file: None,
        status,
        duration_ms: None,
        message: message.map(str::to_string),
        output: None,
        failed_reruns: 0,
    };
    StoredTestCase {
        key: case.key(),
        case,
        step_ref: None,
        report_file: None,
        retry: false,
        quarantined: false,
    }
}

fn test(name: &str, status: CaseStatus) -> StoredTestCase {
    case(
        "pytest",
        "tests.test_app",
        name,
        status,
        (status == CaseStatus::Failed).then_some("assert 1 == 2"),
    )
}

fn exec(
    name: &str,
    workflow: &str,
    status: ExecutionStatus,
    cases: Vec<StoredTestCase>,
) -> JudgedExecution {
    let json = serde_json::json!({
        "id": format!("0000-{name}"), "name": name, "number": 1, "workflow": workflow,
        "status": status.as_str(), "scheduledAt": 0, "startedAt": null, "finishedAt": null,
        "statusAt": 0, "tags": {}, "config": {}, "runningContext": {},
        "errorMessage": null, "abortRequested": false,
    });
    let summary: ExecutionSummary = serde_json::from_value(json).expect("summary");
    JudgedExecution { summary, cases }
}

fn facts(executions: Vec<JudgedExecution>) -> Facts {
    Facts {
        target: "commit abc".into(),
        executions,
        ..Facts::default()
    }
}

fn gate(yaml: &str) -> Gate {
    Gate::parse(yaml).unwrap_or_else(|e| panic!("{yaml}: {e:?}"))
}

fn only(v: &GateVerdict) -> &RuleVerdict {
    assert_eq!(v.rules.len(), 1, "{v:#?}");
    &v.rules[0]
}

#[test]
fn no_failing_tests_passes_and_fails() {
    let g = gate("rules:\n  noFailingTests: true\n");
    let ok = evaluate(
        &g,
        &facts(vec![exec(
            "t-1",
            "t",
            ExecutionStatus::Passed,
            vec![
                test("a", CaseStatus::Passed),
                test("b", CaseStatus::Skipped),
            ],
        )]),
    );
    assert!(ok.passed);
    assert_eq!(only(&ok).summary, "2 tests ran, none failing");

    let bad = evaluate(
        &g,
        &facts(vec![exec(
            "t-1",
            "t",
            ExecutionStatus::Failed,
            vec![test("a", CaseStatus::Passed), test("b", CaseStatus::Failed)],
        )]),
    );
    assert!(!bad.passed);
    let r = only(&bad);
    assert_eq!(r.summary, "1 test of 2 failing");
    assert_eq!(r.evidence[0].item, "tests.test_app::b");
    assert_eq!(r.evidence[0].execution.as_deref(), Some("t-1"));
    assert_eq!(r.evidence[0].detail.as_deref(), Some("assert 1 == 2"));
}

#[test]
fn no_failing_tests_ignores_policy_and_secret_results_and_takes_a_retried_tests_last_run() {
    let g = gate("rules: {noFailingTests: true}");
    let mut retried = test("a", CaseStatus::Passed);
    retried.retry = true;
    let v = evaluate(
        &g,
        &facts(vec![exec(
            "t-1",
            "t",
            ExecutionStatus::Failed,
            vec![
                test("a", CaseStatus::Failed),
                retried,
                case(
                    POLICY_SUITE,
                    "pol",
                    "rule Pod/x",
                    CaseStatus::Failed,
                    Some("[low] bad"),
                ),
                case(
                    SECRET_SUITE,
                    "github-token",
                    "a.py:1",
                    CaseStatus::Failed,
                    Some("token"),
                ),
            ],
        )]),
    );
    assert!(v.passed, "{v:#?}");
}

#[test]
fn quarantined_failures_do_not_count_and_are_said() {
    let g = gate("rules: {noFailingTests: true}");
    let failing = || {
        vec![exec(
            "t-1",
            "t",
            ExecutionStatus::Failed,
            vec![test("b", CaseStatus::Failed), test("c", CaseStatus::Passed)],
        )]
    };
    let mut f = facts(failing());
    f.now = 1_000;
    let quarantine = |until| Quarantine {
        test: "tests.test_app::b".into(),
        workflow: Some("t".into()),
        reason: "flaky on CI, #12".into(),
        until,
        created_at: 0,
        created_by: None,
        rule: None,
    };
    // In force now: not counted, and named in the notes with its reason.
    f.quarantines = vec![quarantine(None)];
    let v = evaluate(&g, &f);
    assert!(v.passed, "{v:#?}");
    assert_eq!(
        only(&v).summary,
        "2 tests ran, none failing (1 quarantined failure not counted)"
    );
    assert!(
        v.notes.contains(
            &"quarantined, not counted: tests.test_app::b (t-1): flaky on CI, #12".to_string()
        ),
        "{v:#?}"
    );

    // Expired, or for another workflow: counted.
    f.quarantines = vec![quarantine(Some(500))];
    assert!(!evaluate(&g, &f).passed);
    let mut other = quarantine(None);
    other.workflow = Some("other".into());
    f.quarantines = vec![other];
    assert!(!evaluate(&g, &f).passed);

    // Recorded as quarantined when it ran: not counted either.
    let mut f = facts(failing());
    f.executions[0].cases[0].quarantined = true;
    assert!(evaluate(&g, &f).passed);
}

#[test]
fn policy_violations_count_from_the_severity_up() {
    let cases = vec![
        case(
            POLICY_SUITE,
            "require-pinned-images",
            "pinned-tag Deployment/web",
            CaseStatus::Failed,
            Some("[medium] image uses latest"),
        ),
        case(
            POLICY_SUITE,
            "require-labels",
            "team Deployment/web",
            CaseStatus::Failed,
            Some("[low] no team label"),
        ),
        case(
            POLICY_SUITE,
            "require-limits",
            "limits Deployment/web",
            CaseStatus::Passed,
            None,
        ),
    ];
    let f = facts(vec![exec("p-1", "p", ExecutionStatus::Failed, cases)]);

    let v = evaluate(&gate("rules: {noPolicyViolations: {severity: high}}"), &f);
    assert!(v.passed, "{v:#?}");
    assert_eq!(only(&v).rule, "noPolicyViolations (severity ≥ high)");
    assert_eq!(
        only(&v).summary,
        "no violation of severity high or above in 3 policy results, 2 below it not counted"
    );

    let v = evaluate(&gate("rules: {noPolicyViolations: {severity: medium}}"), &f);
    assert!(!v.passed);
    let r = only(&v);
    assert_eq!(
        r.summary,
        "1 violation of severity medium or above, 1 below it not counted"
    );
    assert_eq!(
        r.evidence[0].item,
        "require-pinned-images pinned-tag Deployment/web"
    );
    assert_eq!(
        r.evidence[0].detail.as_deref(),
        Some("medium: [medium] image uses latest")
    );

    let v = evaluate(&gate("rules: {noPolicyViolations: {}}"), &f);
    assert_eq!(only(&v).evidence.len(), 2);
}

#[test]
fn unrated_policy_violations_count_unless_told() {
    let f = facts(vec![exec(
        "p-1",
        "p",
        ExecutionStatus::Failed,
        vec![case(
            POLICY_SUITE,
            "terraform.s3",
            "deny plan.json#1",
            CaseStatus::Failed,
            Some("bucket is public"),
        )],
    )]);
    let v = evaluate(
        &gate("rules: {noPolicyViolations: {severity: critical}}"),
        &f,
    );
    assert!(!v.passed);
    assert_eq!(
        only(&v).evidence[0].detail.as_deref(),
        Some("unrated: bucket is public")
    );
    let v = evaluate(
        &gate("rules: {noPolicyViolations: {severity: critical, countUnrated: false}}"),
        &f,
    );
    assert!(v.passed);
}

#[test]
fn no_secrets_passes_and_fails() {
    let g = gate("rules: {noSecrets: true}");
    let clean = facts(vec![exec(
        "s-1",
        "s",
        ExecutionStatus::Passed,
        vec![case(
            SECRET_SUITE,
            "github-token",
            "no findings",
            CaseStatus::Passed,
            None,
        )],
    )]);
    let v = evaluate(&g, &clean);
    assert!(v.passed);
    assert_eq!(only(&v).summary, "no secret found");
    let v = evaluate(&g, &facts(vec![]));
    assert_eq!(
        only(&v).summary,
        "no secret found (no secret scan recorded)"
    );

    let dirty = facts(vec![exec(
        "s-1",
        "s",
        ExecutionStatus::Failed,
        vec![case(
            SECRET_SUITE,
            "github-token",
            "app/config.py:3",
            CaseStatus::Failed,
            Some("GitHub token: TOKEN = '*****'"),
        )],
    )]);
    let v = evaluate(&g, &dirty);
    assert!(!v.passed);
    assert_eq!(only(&v).evidence[0].item, "github-token app/config.py:3");
    assert_eq!(
        only(&v).evidence[0].detail.as_deref(),
        Some("GitHub token: TOKEN = '*****'")
    );
}

fn verdict_of(flaky: bool, reason: Option<FlakyReason>) -> Verdict {
    Verdict {
        flaky,
        broken: false,
        reason,
        last_flake_at: None,
        passes_since: 0,
        runs: 2,
        failures: 1,
    }
}

#[test]
fn no_new_flaky_tests_fails_only_on_new_ones() {
    let g = gate("rules: {noNewFlakyTests: true}");
    let mut f = facts(vec![]);
    f.flaky = vec![FlakyFact {
        execution: "t-2".into(),
        key: "tests::old".into(),
        before: verdict_of(true, Some(FlakyReason::PassedOnRetry)),
        with: verdict_of(true, Some(FlakyReason::PassedOnRetry)),
    }];
    let v = evaluate(&g, &f);
    assert!(v.passed);
    assert_eq!(
        only(&v).summary,
        "no test became flaky (1 test was flaky before, not new)"
    );

    f.flaky.push(FlakyFact {
        execution: "t-2".into(),
        key: "tests::new".into(),
        before: verdict_of(false, None),
        with: verdict_of(
            true,
            Some(FlakyReason::SameCommit {
                commit: "abc".into(),
            }),
        ),
    });
    let v = evaluate(&g, &f);
    assert!(!v.passed);
    assert_eq!(only(&v).evidence[0].item, "tests::new");
    assert_eq!(
        only(&v).evidence[0].detail.as_deref(),
        Some("passed and failed on commit abc")
    );
}

#[test]
fn min_pass_rate_passes_and_fails() {
    let cases: Vec<_> = (0..19)
        .map(|i| test(&format!("ok{i}"), CaseStatus::Passed))
        .chain([
            test("bad", CaseStatus::Failed),
            test("skip", CaseStatus::Skipped),
        ])
        .collect();
    let f = facts(vec![exec("t-1", "t", ExecutionStatus::Failed, cases)]);
    let v = evaluate(&gate("rules: {minPassRate: 95}"), &f);
    assert!(v.passed, "{v:#?}");
    assert_eq!(only(&v).rule, "minPassRate (95%)");
    assert_eq!(
        only(&v).summary,
        "95% passed (19 of 20; skipped tests left out)"
    );
    assert!(only(&v).evidence.is_empty());

    let v = evaluate(&gate("rules: {minPassRate: 99.5}"), &f);
    assert!(!v.passed);
    assert_eq!(only(&v).evidence[0].item, "tests.test_app::bad");

    let v = evaluate(&gate("rules: {minPassRate: 50}"), &facts(vec![]));
    assert!(!v.passed, "no tests is no pass rate");
}

#[test]
fn required_workflows_take_the_latest_execution() {
    let g = gate("rules:\n  requiredWorkflows: [unit, manifests, e2e]\n");
    let f = facts(vec![
        exec("unit-1", "unit", ExecutionStatus::Failed, vec![]),
        exec("unit-2", "unit", ExecutionStatus::Passed, vec![]),
        exec("manifests-1", "manifests", ExecutionStatus::Failed, vec![]),
    ]);
    let v = evaluate(&g, &f);
    assert!(!v.passed);
    let r = only(&v);
    assert_eq!(r.summary, "2 of 3 did not pass");
    assert_eq!(r.evidence[0].item, "manifests");
    assert_eq!(r.evidence[0].detail.as_deref(), Some("failed"));
    assert_eq!(r.evidence[1].item, "e2e");
    assert_eq!(
        r.evidence[1].detail.as_deref(),
        Some("not run for commit abc")
    );

    let v = evaluate(&gate("rules: {requiredWorkflows: [unit]}"), &f);
    assert!(v.passed);
    assert_eq!(only(&v).summary, "1 required workflow passed");
}

#[test]
fn the_gate_passes_only_when_every_rule_does_and_judges_the_rules_in_a_fixed_order() {
    let g = gate(
        "name: release\nrules:\n  requiredWorkflows: [t]\n  noFailingTests: true\n  noSecrets: true\n",
    );
    let f = facts(vec![exec(
        "t-1",
        "t",
        ExecutionStatus::Passed,
        vec![test("a", CaseStatus::Passed)],
    )]);
    let v = evaluate(&g, &f);
    assert!(v.passed);
    assert_eq!(v.gate.as_deref(), Some("release"));
    let names: Vec<&str> = v.rules.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(names, ["noFailingTests", "noSecrets", "requiredWorkflows"]);
}

fn problem(text: &str) -> Problem {
    match Gate::parse(text) {
        Err(ServiceError::Invalid { problems, .. }) => {
            problems.into_iter().next().expect("a problem")
        }
        other => panic!("{text}: expected an invalid gate, got {other:?}"),
    }
}

#[test]
fn a_bad_gate_file_is_an_error_with_its_place_and_a_hint() {
    let p = problem("rules:\n  noFailingTests: true\n  noFlakes: true\n");
    assert_eq!((p.line, p.column), (3, 3), "{p:?}");
    assert!(p.message.contains("noFlakes"), "{p:?}");
    assert!(
        p.hint.as_deref().unwrap().contains("noNewFlakyTests"),
        "{p:?}"
    );

    let p = problem("rules:\n  noPolicyViolations:\n    severity: severe\n");
    assert_eq!(p.line, 3, "{p:?}");
    assert!(
        p.hint
            .as_deref()
            .unwrap()
            .contains("info, low, medium, high, critical"),
        "{p:?}"
    );

    let p = problem("rules:\n  minPassRate: 120\n");
    assert_eq!(p.line, 2, "{p:?}");
    assert!(p.message.contains("from 0 to 100"), "{p:?}");

    let p = problem("rules: {}\n");
    assert!(p.message.contains("no rules"), "{p:?}");
    let p = problem("");
    assert!(p.message.contains("empty"), "{p:?}");
    let p = problem("rules: [\n");
    assert!(p.line >= 1, "{p:?}");
    let p = problem("rules:\n  noSecrets: maybe\n");
    assert_eq!(p.line, 2, "{p:?}");
}

#[test]
fn rules_come_as_text_or_as_a_json_object() {
    let v = serde_json::json!({"rules": {"noSecrets": true}});
    assert!(Gate::from_value(&v).unwrap().rules.no_secrets);
    let v = serde_json::json!("rules: {minPassRate: 90}");
    assert_eq!(
        Gate::from_value(&v).unwrap().rules.min_pass_rate,
        Some(PassRate(90.0))
    );
    assert!(matches!(
        Gate::from_value(&serde_json::json!(3)),
        Err(ServiceError::BadRequest(_))
    ));
}

#[test]
fn severities_read_from_a_violations_message() {
    assert_eq!(severity_of(Some("[high] x")), Some(Severity::High));
    assert_eq!(severity_of(Some("[Critical] x")), Some(Severity::Critical));
    assert_eq!(severity_of(Some("[weird] x")), None);
    assert_eq!(severity_of(Some("plain")), None);
    assert_eq!(severity_of(None), None);
}

#[test]
fn a_gate_may_say_its_kind_and_no_other() {
    let g = gate("kind: QualityGate\nrules:\n  noSecrets: true\n");
    assert_eq!(g.kind.as_deref(), Some("QualityGate"));
    let e = Gate::parse("kind: TestWorkflow\nrules:\n  noSecrets: true\n").unwrap_err();
    let text = format!("{e:?}");
    assert!(
        text.contains("`kind: TestWorkflow` is not a gate"),
        "{text}"
    );
}
