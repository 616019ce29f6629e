//! `Store::insight_rows` on SQLite and on a real PostgreSQL: the finished executions of a
//! window (passed and failed only), oldest first, with their tags and CI commit and branch.

use crate::common;

use assay_store::*;
use common::Env;

async fn insight_rows_are_the_windows_passed_and_failed_runs(env: Env) {
    let store = &env.store;
    let before = now_ms();
    let mut ids = Vec::new();
    for (workflow, status, tags) in [
        (
            "unit",
            ExecutionStatus::Passed,
            vec![("commit", "c1"), ("ai.tool", "claude")],
        ),
        ("unit", ExecutionStatus::Failed, vec![("commit", "c2")]),
        ("e2e", ExecutionStatus::Aborted, vec![("commit", "c2")]),
        ("e2e", ExecutionStatus::Passed, vec![]),
    ] {
        let mut new = NewExecution {
            workflow: workflow.into(),
            definition: format!("kind: TestWorkflow\nmetadata:\n  name: {workflow}\n"),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        if tags.is_empty() {
            new.running_context.ci = Some(CiContext {
                commit: Some("ci-sha".into()),
                branch: Some("feature/x".into()),
                ..CiContext::default()
            });
        }
        let e = store.create_execution(new).await.unwrap();
        store
            .finish_execution(
                &e.id,
                Finish {
                    status,
                    error_message: None,
                    at: now_ms(),
                },
            )
            .await
            .unwrap();
        ids.push(e.id);
    }
    // Still running: not counted.
    store
        .create_execution(NewExecution {
            workflow: "unit".into(),
            definition: "kind: TestWorkflow\nmetadata:\n  name: unit\n".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let rows = store.insight_rows(before - 1000, 100).await.unwrap();
    let got: Vec<(&str, &str, ExecutionStatus)> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.workflow.as_str(), r.status))
        .collect();
    assert_eq!(
        got,
        vec![
            (ids[0].as_str(), "unit", ExecutionStatus::Passed),
            (ids[1].as_str(), "unit", ExecutionStatus::Failed),
            (ids[3].as_str(), "e2e", ExecutionStatus::Passed),
        ],
        "{}",
        env.backend
    );
    assert_eq!(
        rows[0].tags.get("ai.tool").map(String::as_str),
        Some("claude")
    );
    assert_eq!(rows[0].ci_commit, None);
    assert_eq!(
        (rows[2].ci_commit.as_deref(), rows[2].ci_branch.as_deref()),
        (Some("ci-sha"), Some("feature/x"))
    );
    assert_eq!(rows[1].name, "unit-2");

    // The limit keeps the oldest; a window after the runs holds none.
    let two = store.insight_rows(before - 1000, 2).await.unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[1].id, ids[1]);
    assert!(
        store
            .insight_rows(now_ms() + 60_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
}
both!(insight_rows_are_the_windows_passed_and_failed_runs);
