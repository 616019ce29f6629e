//! Test cases, per-test history and flaky detection, on SQLite and PostgreSQL (see `common`).

use crate::common;

use assay_reports::flaky::FlakyPolicy;
use assay_reports::{CaseStatus, TestCase};
use assay_store::*;
use common::Env;

fn case(class: &str, name: &str, status: CaseStatus) -> TestCase {
    TestCase {
        suite: "suite".into(),
        class: Some(class.into()),
        name: name.into(),
        file: None,
        status,
        duration_ms: Some(12),
        message: status.is_failure().then(|| "boom".to_string()),
        output: None,
        failed_reruns: 0,
    }
}

async fn execution(store: &Store, commit: &str, cases: &[TestCase]) -> String {
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
        commit: Some(commit.into()),
        ..Default::default()
    };
    store
        .add_test_cases(&exec.id, "unit", &source, cases)
        .await
        .unwrap();
    exec.id
}

async fn history_and_flakiness(env: Env) {
    use CaseStatus::*;
    let store = &env.store;
    let mut rerun = case("m", "rerun", Passed);
    rerun.failed_reruns = 1;
    // Three executions on commit a, then one on b.
    let first = execution(
        store,
        "a",
        &[
            case("m", "flaky", Passed),
            case("m", "broken", Failed),
            case("m", "fixed", Passed),
        ],
    )
    .await;
    execution(
        store,
        "a",
        &[
            case("m", "flaky", Failed),
            case("m", "broken", Error),
            rerun,
        ],
    )
    .await;
    execution(store, "a", &[case("m", "broken", Failed)]).await;
    execution(store, "b", &[case("m", "fixed", Failed)]).await;

    let cases = store
        .test_cases(&ExecutionRef::Id(first.clone()), &[])
        .await
        .unwrap();
    assert_eq!(cases.len(), 3);
    assert_eq!(cases[0].key, "m::flaky");
    assert_eq!(cases[1].case.message.as_deref(), Some("boom"));
    let failed = store
        .test_cases(&ExecutionRef::Id(first), &[Failed, Error])
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);

    let history = store.test_history("unit", "broken").await.unwrap();
    let statuses: Vec<CaseStatus> = history.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Failed, Error, Failed]);
    assert_eq!(history[0].commit.as_deref(), Some("a"));
    assert_eq!(
        store.test_history("unit", "m::broken").await.unwrap().len(),
        3
    );

    let verdicts = store
        .flaky_tests(Some("unit"), &FlakyPolicy::default(), now_ms() + 1)
        .await
        .unwrap();
    let by_key = |k: &str| verdicts.iter().find(|v| v.key == k).unwrap();
    assert!(by_key("m::flaky").verdict.flaky);
    assert!(by_key("m::rerun").verdict.flaky);
    assert!(!by_key("m::broken").verdict.flaky);
    assert!(by_key("m::broken").verdict.broken);
    // Passed on a, failed on b: a regression, not a flake.
    assert!(!by_key("m::fixed").verdict.flaky);
    assert!(verdicts[0].verdict.flaky && verdicts[1].verdict.flaky);
    assert!(!verdicts[2].verdict.flaky);
    assert!(
        store
            .flaky_tests(Some("other"), &FlakyPolicy::default(), now_ms())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .flaky_tests(None, &FlakyPolicy::default(), now_ms() + 1)
            .await
            .unwrap()
            .len(),
        4
    );

    // A step retry in one execution: the same test again is marked a retry.
    let retried = execution(store, "c", &[case("m", "step", Failed)]).await;
    store
        .add_test_cases(
            &retried,
            "unit",
            &CaseSource::default(),
            &[case("m", "step", Passed)],
        )
        .await
        .unwrap();
    let cases = store
        .test_cases(&ExecutionRef::Id(retried), &[])
        .await
        .unwrap();
    assert_eq!((cases[0].retry, cases[1].retry), (false, true));
    let verdicts = store
        .flaky_tests(Some("unit"), &FlakyPolicy::default(), now_ms() + 1)
        .await
        .unwrap();
    assert!(
        verdicts
            .iter()
            .find(|v| v.key == "m::step")
            .unwrap()
            .verdict
            .flaky
    );

    let durations = store.test_durations("unit").await.unwrap();
    assert_eq!(durations.get("m::flaky"), Some(&12));
    let in_file = |name: &str| TestCase {
        file: Some("a.py".into()),
        ..case("f", name, Passed)
    };
    execution(store, "d", &[in_file("one"), in_file("two")]).await;
    let shard = store.shard_durations("unit").await.unwrap();
    assert_eq!(shard.sources.get("a.py"), Some(&24));
    assert_eq!(shard.tests.get("m::flaky"), Some(&12));
    assert_eq!(shard.tests.get("flaky"), Some(&12));
    // A report without `file` (pytest's default xunit2) is placed by its classname.
    assert_eq!(shard.sources.get("m"), Some(&12));
    assert_eq!(
        shard.for_items(&["/data/repo/a.py".into(), "tests/m.py".into()]),
        vec![Some(24.0), Some(12.0)]
    );
}
both!(history_and_flakiness);

/// `--repeat-new`: a test is new when no execution on another commit recorded it before.
async fn tests_known_before_an_execution(env: Env) {
    use CaseStatus::*;
    let store = &env.store;
    let first = execution(store, "a", &[case("m", "old", Passed)]).await;
    // The first commit has no history to compare with: nothing is new.
    assert_eq!(store.known_test_keys(&first).await.unwrap(), None);
    let again = execution(
        store,
        "a",
        &[case("m", "old", Passed), case("m", "fresh", Passed)],
    )
    .await;
    assert_eq!(store.known_test_keys(&again).await.unwrap(), None);
    let next = execution(
        store,
        "b",
        &[
            case("m", "old", Passed),
            case("m", "fresh", Failed),
            case("m", "newer", Passed),
        ],
    )
    .await;
    let known = store.known_test_keys(&next).await.unwrap().unwrap();
    // `fresh` is known from commit a; a later run on b (a repetition) does not count.
    assert_eq!(
        known.into_iter().collect::<Vec<_>>(),
        vec!["m::fresh".to_string(), "m::old".to_string()]
    );
    execution(store, "b", &[case("m", "newer", Failed)]).await;
    let known = store.known_test_keys(&next).await.unwrap().unwrap();
    assert!(!known.contains("m::newer"));
    // An execution without cases has nothing to compare.
    let empty = execution(store, "c", &[]).await;
    assert_eq!(store.known_test_keys(&empty).await.unwrap(), None);
}
both!(tests_known_before_an_execution);
