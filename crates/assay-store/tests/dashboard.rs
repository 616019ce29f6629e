//! The dashboard's chart query on both databases: newest first, one workflow only, limited,
//! durations from start (or schedule) to finish.

use crate::common;

use assay_store::{ExecutionStatus, Finish, NewExecution};
use common::Env;

async fn recent_runs_newest_first(env: Env) {
    let store = &env.store;
    let mut ids = Vec::new();
    for i in 0..5i64 {
        let e = store
            .create_execution(NewExecution {
                workflow: "charted".into(),
                scheduled_at: Some(1_000_000 + i * 10_000),
                ..NewExecution::default()
            })
            .await
            .unwrap();
        store
            .start_execution(&e.id, 1_000_000 + i * 10_000 + 100)
            .await
            .unwrap();
        if i < 4 {
            store
                .finish_execution(
                    &e.id,
                    Finish {
                        status: if i % 2 == 0 {
                            ExecutionStatus::Passed
                        } else {
                            ExecutionStatus::Failed
                        },
                        error_message: None,
                        at: 1_000_000 + i * 10_000 + 100 + (i + 1) * 1000,
                    },
                )
                .await
                .unwrap();
        }
        ids.push(e.id);
    }
    store
        .create_execution(NewExecution {
            workflow: "other".into(),
            ..NewExecution::default()
        })
        .await
        .unwrap();

    let runs = store.recent_runs("charted", 3).await.unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["charted-5", "charted-4", "charted-3"]);
    assert_eq!(runs[0].id, ids[4]);
    assert_eq!(runs[0].status, ExecutionStatus::Running);
    assert_eq!(runs[1].status, ExecutionStatus::Failed);
    assert_eq!(runs[1].duration_ms(), 4000);
    assert_eq!(runs[2].status, ExecutionStatus::Passed);
    assert_eq!(runs[2].duration_ms(), 3000);
    assert_eq!(store.recent_runs("charted", 100).await.unwrap().len(), 5);
    assert!(store.recent_runs("nothing", 10).await.unwrap().is_empty());

    let many = store
        .recent_runs_of(&["charted".into(), "other".into(), "nothing".into()], 2)
        .await
        .unwrap();
    let names = |w: &str| -> Vec<String> { many[w].iter().map(|r| r.name.clone()).collect() };
    assert_eq!(names("charted"), ["charted-5", "charted-4"]);
    assert_eq!(names("other"), ["other-1"]);
    assert!(!many.contains_key("nothing"));
}
both!(recent_runs_newest_first);
