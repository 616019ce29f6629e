//! Quarantines on both databases: added, replaced, listed (expired ones only on request),
//! matched for a workflow, removed; recorded cases and step results carry what the
//! quarantine did.

use crate::common;

use assay_reports::{CaseStatus, TestCase};
use assay_store::*;
use common::Env;

fn new(test: &str, workflow: Option<&str>, until: Option<UnixMs>) -> NewQuarantine {
    NewQuarantine {
        test: test.into(),
        workflow: workflow.map(Into::into),
        reason: "JIRA-1: times out on the shared runner".into(),
        until,
        created_by: Some("admin".into()),
        rule: None,
    }
}

async fn quarantine_round_trip(env: Env) {
    let store = &env.store;
    let soon = now_ms() + 1500;
    store
        .add_quarantine(&new("tests.test_a::test_slow", Some("api"), None))
        .await
        .unwrap();
    store
        .add_quarantine(&new("test_net", None, Some(soon)))
        .await
        .unwrap();
    // Replacing the same test and workflow keeps one entry with the new reason.
    let mut again = new("tests.test_a::test_slow", Some("api"), None);
    again.reason = "JIRA-2".into();
    let stored = store.add_quarantine(&again).await.unwrap();
    assert_eq!(stored.reason, "JIRA-2");

    let all = store.list_quarantines(false).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].test, "test_net");
    assert_eq!(all[0].workflow, None);
    assert_eq!(all[0].until, Some(soon));
    assert_eq!(all[1].workflow.as_deref(), Some("api"));
    assert_eq!(all[1].reason, "JIRA-2");
    assert_eq!(all[1].created_by.as_deref(), Some("admin"));

    // For a workflow: its own entries and those for every workflow.
    assert_eq!(
        store.active_quarantines(Some("api")).await.unwrap().len(),
        2
    );
    let other = store.active_quarantines(Some("web")).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].test, "test_net");
    assert_eq!(store.active_quarantines(None).await.unwrap().len(), 2);

    // Bad input changes nothing.
    let mut empty_reason = new("t", None, None);
    empty_reason.reason = "  ".into();
    let e = store.add_quarantine(&empty_reason).await.unwrap_err();
    assert!(e.to_string().contains("needs a reason"), "{e}");
    assert!(store.add_quarantine(&new(" ", None, None)).await.is_err());
    assert!(
        store
            .add_quarantine(&new("t", None, Some(now_ms() - 1)))
            .await
            .is_err()
    );
    assert!(
        store
            .add_quarantine(&new("t", Some(""), None))
            .await
            .is_err()
    );
    assert_eq!(store.list_quarantines(true).await.unwrap().len(), 2);

    // Expiry: no longer applies, still listed with `include_expired`.
    tokio::time::sleep(std::time::Duration::from_millis(
        (soon - now_ms()).max(0) as u64 + 50,
    ))
    .await;
    let active = store.active_quarantines(Some("web")).await.unwrap();
    assert!(active.is_empty(), "{active:?}");
    assert_eq!(store.list_quarantines(false).await.unwrap().len(), 1);
    assert_eq!(store.list_quarantines(true).await.unwrap().len(), 2);

    // Removal names the workflow the entry was made for.
    assert!(
        !store
            .remove_quarantine("tests.test_a::test_slow", None)
            .await
            .unwrap()
    );
    assert!(
        store
            .remove_quarantine("tests.test_a::test_slow", Some("api"))
            .await
            .unwrap()
    );
    assert!(store.remove_quarantine("test_net", None).await.unwrap());
    assert!(store.list_quarantines(true).await.unwrap().is_empty());
}
both!(quarantine_round_trip);

fn case(class: &str, name: &str, status: CaseStatus) -> TestCase {
    TestCase {
        suite: "suite".into(),
        class: Some(class.into()),
        name: name.into(),
        file: None,
        status,
        duration_ms: Some(5),
        message: status.is_failure().then(|| "boom".to_string()),
        output: None,
        failed_reruns: 0,
    }
}

async fn cases_and_steps_carry_the_quarantine(env: Env) {
    let store = &env.store;
    store
        .add_quarantine(&new("m::flaky", Some("unit"), None))
        .await
        .unwrap();
    let exec = store
        .create_execution(NewExecution {
            workflow: "unit".into(),
            definition: "kind: TestWorkflow\n".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let source = CaseSource {
        step_ref: Some("r1".into()),
        report_file: Some("junit.xml".into()),
        commit: Some("c1".into()),
        quarantines: store.active_quarantines(Some("unit")).await.unwrap(),
    };
    store
        .add_test_cases(
            &exec.id,
            "unit",
            &source,
            &[
                case("m", "flaky", CaseStatus::Failed),
                case("m", "ok", CaseStatus::Passed),
                case("m", "real", CaseStatus::Failed),
            ],
        )
        .await
        .unwrap();
    let cases = store
        .test_cases(&ExecutionRef::Id(exec.id.clone()), &[])
        .await
        .unwrap();
    let flags: Vec<(&str, CaseStatus, bool)> = cases
        .iter()
        .map(|c| (c.key.as_str(), c.case.status, c.quarantined))
        .collect();
    assert_eq!(
        flags,
        vec![
            ("m::flaky", CaseStatus::Failed, true),
            ("m::ok", CaseStatus::Passed, false),
            ("m::real", CaseStatus::Failed, false),
        ]
    );
    let history = store.test_history("unit", "m::flaky").await.unwrap();
    assert!(history[0].quarantined);
    assert_eq!(history[0].status, CaseStatus::Failed);

    let mut step = StepResult::new("r1", 1, StepStatus::Passed);
    step.quarantined_failures = vec!["m::flaky".into()];
    store.record_step(&exec.id, &step).await.unwrap();
    let steps = store.steps(&exec.id).await.unwrap();
    assert_eq!(steps[0].quarantined_failures, vec!["m::flaky".to_string()]);
}
both!(cases_and_steps_carry_the_quarantine);
