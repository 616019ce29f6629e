//! Store behaviour on SQLite and on a real PostgreSQL (see `common`).

use crate::common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use assay_store::*;
use common::Env;
use futures::StreamExt;

fn new_exec(workflow: &str) -> NewExecution {
    NewExecution {
        workflow: workflow.into(),
        definition: format!("kind: TestWorkflow\nmetadata:\n  name: {workflow}\n"),
        ..Default::default()
    }
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn finish(store: &Store, id: &str, status: ExecutionStatus) {
    store
        .finish_execution(
            id,
            Finish {
                status,
                error_message: None,
                at: now_ms(),
            },
        )
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Numbering

async fn numbering_under_concurrent_tasks(env: Env) {
    let other = env.reopen().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 {
            env.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            store.create_execution(new_exec("race")).await.unwrap()
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        let e = t.await.unwrap();
        assert_eq!(e.name, format!("race-{}", e.number));
        numbers.push(e.number);
    }
    numbers.sort();
    assert_eq!(numbers, (1..=40).collect::<Vec<_>>());
    // Another workflow has its own sequence.
    let e = env.store.create_execution(new_exec("other")).await.unwrap();
    assert_eq!(e.number, 1);
}
both!(numbering_under_concurrent_tasks);

/// Re-run this test binary as a child process in `mode` against the env's store.
fn child(env: &Env, mode: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "store::child_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("ASSAY_STORE_CHILD", mode)
    .env("ASSAY_STORE_CHILD_DATA_DIR", &env.config.data_dir)
    .env(
        "ASSAY_STORE_CHILD_DATABASE",
        env.config.database_url.clone().unwrap_or_default(),
    );
    cmd
}

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var("ASSAY_STORE_CHILD") else {
        return;
    };
    let mut config = StoreConfig::new(std::env::var("ASSAY_STORE_CHILD_DATA_DIR").unwrap());
    config.database_url = std::env::var("ASSAY_STORE_CHILD_DATABASE")
        .ok()
        .filter(|s| !s.is_empty());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = Store::open(config).await.unwrap();
        match mode.as_str() {
            "numbers" => {
                for _ in 0..30 {
                    store.create_execution(new_exec("procs")).await.unwrap();
                }
            }
            "crash" => {
                let mut new = new_exec("crashy");
                new.status = Some(ExecutionStatus::Running);
                new.owner = Some(LeaseOwner::current());
                let e = store.create_execution(new).await.unwrap();
                store
                    .record_steps(
                        &e.id,
                        &[
                            StepResult::new("s1", 0, StepStatus::Passed),
                            StepResult::new("s2", 1, StepStatus::Running),
                            StepResult::new("s3", 2, StepStatus::Queued),
                        ],
                    )
                    .await
                    .unwrap();
                let mut log = store.log_writer(&e.id, "s2").await.unwrap();
                for i in 0..100 {
                    log.append(now_ms(), &format!("line {i}")).await.unwrap();
                }
                log.flush().await.unwrap();
                println!("READY {}", e.id);
                // Keep writing until killed.
                let mut i = 100;
                loop {
                    log.append(now_ms(), &format!("line {i}")).await.unwrap();
                    log.flush().await.unwrap();
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            other => panic!("unknown child mode {other}"),
        }
    });
}

async fn numbering_across_processes(env: Env) {
    let children: Vec<_> = (0..2)
        .map(|_| {
            child(&env, "numbers")
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for _ in 0..20 {
        env.store.create_execution(new_exec("procs")).await.unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "child failed");
    }
    let all = env
        .store
        .list_executions(&ExecutionFilter {
            workflow: Some("procs".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut numbers: Vec<i64> = all.iter().map(|e| e.number).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=80).collect::<Vec<_>>());
}
both!(numbering_across_processes);

// ---------------------------------------------------------------------------------------------
// Definitions

async fn definitions_keep_revisions(env: Env) {
    let s = &env.store;
    let kind = DefinitionKind::Workflow;
    let qa = tags(&[("team", "qa")]);
    assert_eq!(
        s.apply(kind, "smoke", "v: 1\n", &qa).await.unwrap(),
        (ApplyOutcome::Created, 1)
    );
    assert_eq!(
        s.apply(kind, "smoke", "v: 1\n", &qa).await.unwrap(),
        (ApplyOutcome::Unchanged, 1)
    );
    assert_eq!(
        s.apply(kind, "smoke", "v: 2\n", &qa).await.unwrap(),
        (ApplyOutcome::Updated, 2)
    );
    let dev = tags(&[("team", "dev")]);
    assert_eq!(
        s.apply(kind, "smoke", "v: 2\n", &dev).await.unwrap(),
        (ApplyOutcome::Updated, 3)
    );
    s.apply(kind, "load", "l: 1\n", &qa).await.unwrap();
    // A template of the same name is a different definition.
    s.apply(
        DefinitionKind::Template,
        "smoke",
        "t: 1\n",
        &BTreeMap::new(),
    )
    .await
    .unwrap();

    let latest = s.get_definition(kind, "smoke", None).await.unwrap();
    assert_eq!((latest.revision, latest.yaml.as_str()), (3, "v: 2\n"));
    assert_eq!(latest.labels, dev);
    assert_eq!(
        s.get_definition(kind, "smoke", Some(1)).await.unwrap().yaml,
        "v: 1\n"
    );
    assert!(
        s.get_definition(kind, "smoke", Some(9))
            .await
            .unwrap_err()
            .is_not_found()
    );

    let names = |defs: Vec<Definition>| defs.into_iter().map(|d| d.name).collect::<Vec<_>>();
    let all = LabelSelector::default();
    assert_eq!(
        names(s.list_definitions(kind, &all).await.unwrap()),
        ["load", "smoke"]
    );
    let sel = LabelSelector::parse("team=qa").unwrap();
    assert_eq!(
        names(s.list_definitions(kind, &sel).await.unwrap()),
        ["load"]
    );
    let sel = LabelSelector::parse("team!=qa").unwrap();
    assert_eq!(
        names(s.list_definitions(kind, &sel).await.unwrap()),
        ["smoke"]
    );
    assert_eq!(
        names(
            s.list_definitions(DefinitionKind::Template, &all)
                .await
                .unwrap()
        ),
        ["smoke"]
    );

    // Soft delete hides it but keeps history; a re-apply continues the numbering.
    assert!(
        s.delete_definition(kind, "smoke", DeleteMode::Soft)
            .await
            .unwrap()
    );
    assert!(
        !s.delete_definition(kind, "smoke", DeleteMode::Soft)
            .await
            .unwrap()
    );
    assert!(
        s.get_definition(kind, "smoke", None)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        names(s.list_definitions(kind, &all).await.unwrap()),
        ["load"]
    );
    assert_eq!(
        s.definition_revisions(kind, "smoke").await.unwrap().len(),
        3
    );
    assert_eq!(
        s.apply(kind, "smoke", "v: 2\n", &dev).await.unwrap(),
        (ApplyOutcome::Created, 4)
    );
    // Hard delete removes everything.
    assert!(
        s.delete_definition(kind, "smoke", DeleteMode::Hard)
            .await
            .unwrap()
    );
    assert!(
        s.definition_revisions(kind, "smoke")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.apply(kind, "smoke", "v: 5\n", &dev).await.unwrap(),
        (ApplyOutcome::Created, 1)
    );
}
both!(definitions_keep_revisions);

// ---------------------------------------------------------------------------------------------
// Filters

async fn list_filters(env: Env) {
    let s = &env.store;
    let hour = 3_600_000;
    let now = now_ms();
    let mut ids = Vec::new();
    // 12 executions: workflows a/b alternating, an hour apart, oldest first.
    for i in 0..12 {
        let mut new = new_exec(if i % 2 == 0 { "a" } else { "b" });
        new.scheduled_at = Some(now - (12 - i) * hour);
        new.tags = tags(&[
            ("env", if i % 3 == 0 { "prod" } else { "dev" }),
            ("i", &i.to_string()),
        ]);
        let e = s.create_execution(new).await.unwrap();
        finish(
            s,
            &e.id,
            if i % 4 == 0 {
                ExecutionStatus::Failed
            } else {
                ExecutionStatus::Passed
            },
        )
        .await;
        ids.push(e.id);
    }
    let list = |f: ExecutionFilter| async move { s.list_executions(&f).await.unwrap() };
    let all = list(ExecutionFilter::default()).await;
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(
        all.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        newest_first
    );

    let a = list(ExecutionFilter {
        workflow: Some("a".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        a.iter().map(|e| e.number).collect::<Vec<_>>(),
        [6, 5, 4, 3, 2, 1]
    );

    let failed = list(ExecutionFilter {
        statuses: vec![ExecutionStatus::Failed],
        ..Default::default()
    })
    .await;
    assert_eq!(failed.len(), 3); // i = 0, 4, 8
    assert!(failed.iter().all(|e| e.status == ExecutionStatus::Failed));

    let a_failed = list(ExecutionFilter {
        workflow: Some("a".into()),
        statuses: vec![ExecutionStatus::Failed],
        ..Default::default()
    })
    .await;
    assert_eq!(
        a_failed.iter().map(|e| e.number).collect::<Vec<_>>(),
        [5, 3, 1]
    );

    let prod = list(ExecutionFilter {
        tags: vec![("env".into(), "prod".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(prod.len(), 4); // i = 0, 3, 6, 9
    let prod6 = list(ExecutionFilter {
        tags: vec![("env".into(), "prod".into()), ("i".into(), "6".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(prod6.len(), 1);
    assert_eq!(prod6[0].tags.get("i").map(String::as_str), Some("6"));

    // Since 3.5 hours ago: i = 9, 10, 11.
    let recent = list(ExecutionFilter {
        since: Some(now - 3 * hour - hour / 2),
        ..Default::default()
    })
    .await;
    assert_eq!(recent.len(), 3);

    let limited = list(ExecutionFilter {
        limit: Some(5),
        ..Default::default()
    })
    .await;
    assert_eq!(limited.len(), 5);
    let next = list(ExecutionFilter {
        limit: Some(5),
        before_id: Some(limited[4].id.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(next[0].id, newest_first[5]);

    // Addressing one execution three ways.
    let by_name = s.find_execution(&ExecutionRef::parse("b-2")).await.unwrap();
    let by_id = s
        .find_execution(&ExecutionRef::parse(&by_name.id))
        .await
        .unwrap();
    let by_number = s
        .find_execution(&ExecutionRef::Number {
            workflow: "b".into(),
            number: 2,
        })
        .await
        .unwrap();
    assert_eq!(by_name, by_id);
    assert_eq!(by_name, by_number);
    assert!(
        s.find_execution(&ExecutionRef::parse("b-99"))
            .await
            .unwrap_err()
            .is_not_found()
    );
}
both!(list_filters);

/// The counts by workflow and status (kept by the database's triggers, migration 0017) are
/// those of the rows after every kind of write: create, start, finish, abort of a queued run,
/// prune; written through two handles (two processes).
async fn counts_follow_every_write(env: Env) {
    let s = &env.store;
    let other = env.reopen().await;
    let day = 86_400_000;
    let mut old = new_exec("c");
    old.scheduled_at = Some(now_ms() - 10 * day);
    let old = s.create_execution(old).await.unwrap();
    finish(s, &old.id, ExecutionStatus::Passed).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let store = if i % 2 == 0 { s } else { &other };
        let mut new = new_exec(if i < 4 { "c" } else { "d" });
        new.tags = tags(&[("i", &i.to_string())]);
        ids.push(store.create_execution(new).await.unwrap().id);
    }
    s.start_execution(&ids[0], now_ms()).await.unwrap();
    finish(s, &ids[0], ExecutionStatus::Failed).await;
    other.start_execution(&ids[1], now_ms()).await.unwrap();
    finish(&other, &ids[2], ExecutionStatus::Passed).await;
    assert_eq!(abort_queued(s, &ids[3]).await, ExecutionStatus::Aborted);
    s.prune(Some(7), None).await.unwrap();

    let filters = [
        ExecutionFilter::default(),
        ExecutionFilter {
            workflow: Some("c".into()),
            ..Default::default()
        },
        ExecutionFilter {
            workflow: Some("d".into()),
            statuses: vec![ExecutionStatus::Queued, ExecutionStatus::Passed],
            ..Default::default()
        },
        ExecutionFilter {
            statuses: vec![ExecutionStatus::Running, ExecutionStatus::Failed],
            ..Default::default()
        },
        ExecutionFilter {
            workflow: Some("none".into()),
            ..Default::default()
        },
        // Tags count the rows themselves.
        ExecutionFilter {
            tags: vec![("i".into(), "0".into())],
            ..Default::default()
        },
    ];
    for filter in filters {
        let rows = s
            .list_executions(&ExecutionFilter {
                limit: Some(1000),
                ..filter.clone()
            })
            .await
            .unwrap();
        let mut expected = StatusCounts::default();
        for e in &rows {
            *expected.0.entry(e.status).or_default() += 1;
        }
        for store in [s, &other] {
            assert_eq!(
                store.count_executions(&filter).await.unwrap(),
                expected,
                "{filter:?} on {}",
                env.backend
            );
        }
    }
    let all = s
        .count_executions(&ExecutionFilter::default())
        .await
        .unwrap();
    assert_eq!(all.total(), 6);
    assert_eq!(all.get(ExecutionStatus::Queued), 2);
}
both!(counts_follow_every_write);

/// PostgreSQL only (SQLite has one writer at a time): a write transaction that another writer
/// deadlocks with is rolled back by the server (SQLSTATE 40P01) and tried again, as a busy
/// SQLite is, instead of failing the write. Here `prune` and another session lock the count
/// rows of two workflows (migration 0017's triggers) in opposite orders; the other session
/// waits longer before it checks for deadlocks, so `prune` is the one the server rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_retries_a_transaction_rolled_back_by_a_deadlock() {
    use sqlx::Connection;
    let Some(url) = common::postgres_database().await else {
        return;
    };
    let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
    // The store's sessions look for deadlocks after 3 s of waiting, the other after 60 s.
    let database = url.rsplit('/').next().unwrap().to_string();
    for sql in [
        format!("ALTER DATABASE {database} SET deadlock_timeout = '3s'"),
        "SET deadlock_timeout = '60s'".to_string(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut other)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("data"));
    config.database_url = Some(url.clone());
    let store = Store::open(config).await.unwrap();
    // Two old executions, `a`'s first: prune deletes (and counts) them in that order.
    for workflow in ["a", "b"] {
        let mut old = new_exec(workflow);
        old.scheduled_at = Some(now_ms() - 10 * 86_400_000);
        let old = store.create_execution(old).await.unwrap();
        finish(&store, &old.id, ExecutionStatus::Passed).await;
    }
    let lock = |workflow: &str| {
        format!(
            "UPDATE execution_counts SET n = n WHERE workflow = '{workflow}' AND status = 'passed'"
        )
    };
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(lock("b")))
        .execute(&mut other)
        .await
        .unwrap();

    let pruning = tokio::spawn({
        let store = store.clone();
        async move { store.prune(Some(7), None).await }
    });
    // Wait until prune holds `a` and waits for `b`.
    let mut watcher = sqlx::AnyConnection::connect(&url).await.unwrap();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            !pruning.is_finished(),
            "prune ended without waiting for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Now the other session waits for `a`: a deadlock, which the server breaks by rolling
    // back prune's transaction (the first to look), so this update goes through.
    sqlx::query(sqlx::AssertSqlSafe(lock("a")))
        .execute(&mut other)
        .await
        .expect("the other session is not the deadlock's victim");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    let report = pruning.await.unwrap().expect("prune is tried again");
    assert_eq!(report.executions, 2);
    assert_eq!(
        store
            .count_executions(&ExecutionFilter::default())
            .await
            .unwrap()
            .total(),
        0
    );
}

/// Abort a queued execution as `assay_runner::abort` does: claim it, then end it.
async fn abort_queued(s: &Store, id: &str) -> ExecutionStatus {
    assert!(s.claim_execution(id, &LeaseOwner::current()).await.unwrap());
    finish(s, id, ExecutionStatus::Aborted).await;
    s.find_execution(&ExecutionRef::Id(id.into()))
        .await
        .unwrap()
        .status
}

// ---------------------------------------------------------------------------------------------
// A full record and its Testkube shape

async fn full_record_round_trip(env: Env) {
    let s = &env.store;
    let mut new = new_exec("full");
    new.resolved = Some(r#"{"steps":[]}"#.into());
    new.tags = tags(&[("branch", "main")]);
    new.config.insert(
        "token".into(),
        ConfigValue {
            value: Some("********".into()),
            sensitive: true,
            ..Default::default()
        },
    );
    new.running_context = RunningContext {
        kind: ContextType::Ci,
        actor: Some("bot".into()),
        ci: Some(CiContext {
            provider: Some("github".into()),
            commit: Some("abc".into()),
            ..Default::default()
        }),
        execution_id: None,
    };
    let e = s.create_execution(new).await.unwrap();
    s.start_execution(&e.id, now_ms()).await.unwrap();
    let mut step = StepResult::new("r1", 0, StepStatus::Running);
    step.name = Some("Run tests".into());
    step.started_at = Some(now_ms());
    s.record_step(&e.id, &step).await.unwrap();
    step.status = StepStatus::Failed;
    step.exit_code = Some(3);
    step.finished_at = Some(now_ms());
    step.error_message = Some("exit code 3".into());
    step.peak_memory_bytes = Some(1 << 20);
    step.cpu_time_ms = Some(12);
    s.record_step(&e.id, &step).await.unwrap();
    s.add_output(
        &e.id,
        &Output {
            step_ref: Some("r1".into()),
            name: "n".into(),
            value: serde_json::json!(42),
        },
    )
    .await
    .unwrap();
    s.add_report(
        &e.id,
        &Report {
            step_ref: Some("r1".into()),
            kind: "junit".into(),
            file: Some("r.xml".into()),
            data: serde_json::json!({"tests": 3}),
        },
    )
    .await
    .unwrap();
    s.put_artifact(
        &e.id,
        Some("r1"),
        "out/report.txt",
        Some("text/plain"),
        bytes::Bytes::from_static(b"hello"),
    )
    .await
    .unwrap();
    finish(s, &e.id, ExecutionStatus::Failed).await;

    let got = s
        .get_execution(&ExecutionRef::Id(e.id.clone()))
        .await
        .unwrap();
    assert_eq!(got.status, ExecutionStatus::Failed);
    assert_eq!(got.steps, vec![step]);
    assert_eq!(got.outputs.len(), 1);
    assert_eq!(got.reports[0].data["tests"], 3);
    assert_eq!(got.artifacts[0].path, "out/report.txt");
    assert_eq!(got.resolved.as_deref(), Some(r#"{"steps":[]}"#));
    assert!(got.definition.contains("name: full"));

    let json = serde_json::to_value(testkube::TestWorkflowExecution::from(&got)).unwrap();
    assert_eq!(json["name"], "full-1");
    assert_eq!(json["workflow"]["name"], "full");
    assert_eq!(json["result"]["status"], "failed");
    assert_eq!(json["result"]["steps"]["r1"]["status"], "failed");
    assert_eq!(json["result"]["steps"]["r1"]["exitCode"], 3);
    assert_eq!(json["configParams"]["token"]["sensitive"], true);
    assert_eq!(json["runningContext"]["type"], "ci");
    assert_eq!(json["runningContext"]["ci"]["provider"], "github");
    assert_eq!(json["tags"]["branch"], "main");
    assert_eq!(json["output"][0]["value"], 42);
    assert!(json["scheduledAt"].as_str().unwrap().ends_with('Z'));
}
both!(full_record_round_trip);

// ---------------------------------------------------------------------------------------------
// Several step results in one write

/// A runner records the step events it finds waiting together in one write: a step given
/// twice keeps its last result (one `INSERT` may not touch a row twice on PostgreSQL), results
/// stored before are replaced, and more rows than one statement takes still all land.
async fn record_steps_in_one_write(env: Env) {
    let s = &env.store;
    let e = s.create_execution(new_exec("batch")).await.unwrap();
    s.record_step(&e.id, &StepResult::new("a", 1, StepStatus::Running))
        .await
        .unwrap();
    let mut a = StepResult::new("a", 1, StepStatus::Passed);
    a.exit_code = Some(0);
    a.started_at = Some(10);
    a.finished_at = Some(20);
    a.quarantined_failures = vec!["suite/flaky".into()];
    let b_running = StepResult::new("b", 2, StepStatus::Running);
    let mut b = StepResult::new("b", 2, StepStatus::Failed);
    b.exit_code = Some(3);
    b.error_message = Some("exit code 3".into());
    s.record_steps(&e.id, &[b_running.clone(), a.clone(), b.clone()])
        .await
        .unwrap();
    assert_eq!(s.steps(&e.id).await.unwrap(), vec![a.clone(), b.clone()]);
    // Nothing to record is no write and no error.
    s.record_steps(&e.id, &[]).await.unwrap();

    // More than one statement takes: one transaction of several.
    let many: Vec<StepResult> = (0..450)
        .map(|i| StepResult::new(format!("w{i:03}"), 10 + i, StepStatus::Passed))
        .collect();
    let mut with_repeats = many.clone();
    with_repeats.insert(0, StepResult::new("w001", 11, StepStatus::Running));
    s.record_steps(&e.id, &with_repeats).await.unwrap();
    let stored = s.steps(&e.id).await.unwrap();
    assert_eq!(stored.len(), 452);
    assert_eq!(&stored[2..], &many[..]);

    // An execution that does not exist: not found, nothing written.
    let missing = "0190a0b0-0000-7000-8000-000000000000";
    assert!(
        s.record_steps(missing, &many)
            .await
            .unwrap_err()
            .is_not_found()
    );
}
both!(record_steps_in_one_write);

// ---------------------------------------------------------------------------------------------
// Abort requests

async fn abort_requests(env: Env) {
    let s = &env.store;
    let e = s.create_execution(new_exec("ab")).await.unwrap();
    assert_eq!(s.abort_requested(&e.id).await.unwrap(), None);
    assert!(
        s.request_abort(&e.id, Some("user pressed abort"))
            .await
            .unwrap()
    );
    let other = env.reopen().await;
    assert_eq!(
        other.abort_requested(&e.id).await.unwrap().as_deref(),
        Some("user pressed abort")
    );
    finish(s, &e.id, ExecutionStatus::Aborted).await;
    assert!(!s.request_abort(&e.id, None).await.unwrap());
    assert!(
        s.request_abort("0190a0b0-0000-7000-8000-000000000000", None)
            .await
            .unwrap_err()
            .is_not_found()
    );
}
both!(abort_requests);

/// Taking a queued execution is one write that claims it, checks for an abort and starts it:
/// it is taken once, a run asked to abort while it waited is taken but not started, a held run
/// only by the process that holds it, and an ended one not at all.
async fn take_queued_claims_checks_and_starts_at_once(env: Env) {
    let s = &env.store;
    let me = LeaseOwner::current();
    let e = s.create_execution(new_exec("tq")).await.unwrap();
    let Taken::Started(started) = s.take_queued(&e.id, &me, false, 1_234).await.unwrap() else {
        panic!("a queued execution is taken and started");
    };
    assert_eq!(started.id, e.id);
    assert_eq!(started.name, "tq-1");
    assert_eq!(started.status, ExecutionStatus::Running);
    assert_eq!(started.started_at, Some(1_234));
    let stored = s
        .find_execution(&ExecutionRef::Id(e.id.clone()))
        .await
        .unwrap();
    assert_eq!(stored.status, ExecutionStatus::Running);
    assert_eq!(stored.started_at, Some(1_234));
    assert!(matches!(
        s.take_queued(&e.id, &me, false, 1_300).await.unwrap(),
        Taken::NotAvailable
    ));
    // Another process cannot take it from its live owner either.
    assert!(matches!(
        env.reopen()
            .await
            .take_queued(&e.id, &me, false, 1_300)
            .await
            .unwrap(),
        Taken::NotAvailable
    ));

    let asked = s.create_execution(new_exec("tq")).await.unwrap();
    assert!(
        s.request_abort(&asked.id, Some("changed my mind"))
            .await
            .unwrap()
    );
    match s.take_queued(&asked.id, &me, false, 1_400).await.unwrap() {
        Taken::AbortRequested(reason) => assert_eq!(reason, "changed my mind"),
        other => panic!("an abort asked for while it waited is reported: {other:?}"),
    }
    let stored = s
        .find_execution(&ExecutionRef::Id(asked.id.clone()))
        .await
        .unwrap();
    assert_eq!(stored.status, ExecutionStatus::Queued, "not started");
    assert_eq!(stored.started_at, None);

    let mut held = new_exec("tq");
    held.owner = Some(me.clone());
    let held = s.create_execution(held).await.unwrap();
    assert!(
        matches!(
            s.take_queued(&held.id, &me, false, 1_500).await.unwrap(),
            Taken::NotAvailable
        ),
        "a held run is not taken as an unowned one"
    );
    let stranger = LeaseOwner {
        host: "elsewhere".into(),
        pid: 1,
        token: String::new(),
    };
    assert!(matches!(
        s.take_queued(&held.id, &stranger, true, 1_500)
            .await
            .unwrap(),
        Taken::NotAvailable
    ));
    assert!(matches!(
        s.take_queued(&held.id, &me, true, 1_500).await.unwrap(),
        Taken::Started(_)
    ));

    let ended = s.create_execution(new_exec("tq")).await.unwrap();
    finish(s, &ended.id, ExecutionStatus::Aborted).await;
    assert!(matches!(
        s.take_queued(&ended.id, &me, false, 1_600).await.unwrap(),
        Taken::NotAvailable
    ));
}
both!(take_queued_claims_checks_and_starts_at_once);

// ---------------------------------------------------------------------------------------------
// Logs

async fn logs_append_replay_follow(env: Env) {
    let writer_store = env.store.clone();
    let reader_store = env.reopen().await;
    let e = writer_store
        .create_execution(new_exec("logs"))
        .await
        .unwrap();
    writer_store.start_execution(&e.id, now_ms()).await.unwrap();
    writer_store
        .record_steps(
            &e.id,
            &[
                StepResult::new("b", 0, StepStatus::Running),
                StepResult::new("a", 1, StepStatus::Queued),
            ],
        )
        .await
        .unwrap();
    let mut w = writer_store.log_writer(&e.id, "b").await.unwrap();
    for i in 0..1000 {
        w.append(1_000 + i, &format!("first {i}")).await.unwrap();
    }
    w.flush().await.unwrap();

    // Replay from another handle while running.
    let mut reader = reader_store.log_reader(&e.id, "b", 0);
    let mut got = Vec::new();
    loop {
        let batch = reader.read_available().await.unwrap();
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    assert_eq!(got.len(), 1000);
    assert_eq!(got[999].text, "first 999");
    assert_eq!(got[0].ts, 1_000);
    let resume_at = got[499].offset;

    // Follow from the other handle while the writer goes on.
    let follower = tokio::spawn({
        let store = reader_store.clone();
        let id = e.id.clone();
        async move {
            let mut lines = Vec::new();
            let mut stream = Box::pin(store.follow_logs(&id, None, Duration::from_millis(20)));
            while let Some(batch) = stream.next().await {
                lines.extend(batch.unwrap());
            }
            lines
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..500 {
        w.append(5_000 + i, &format!("second {i}")).await.unwrap();
        if i % 100 == 0 {
            w.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    w.append_bytes(9_000, b"multi\nline").await.unwrap();
    w.finish().await.unwrap();
    let mut w2 = writer_store.log_writer(&e.id, "a").await.unwrap();
    w2.append(10_000, "from a").await.unwrap();
    w2.finish().await.unwrap();
    finish(&writer_store, &e.id, ExecutionStatus::Passed).await;

    let followed = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .unwrap()
        .unwrap();
    let texts: Vec<&str> = followed
        .iter()
        .filter(|l| l.step == "b")
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(texts.len(), 1502, "every line exactly once");
    assert_eq!(texts[0], "first 0");
    assert_eq!(texts[1000], "second 0");
    assert_eq!(&texts[1500..], ["multi", "line"]);
    assert!(followed.iter().any(|l| l.step == "a" && l.text == "from a"));

    // Compacted after the end, and still readable from the start and from an offset.
    if let Some(dir) = env.store.config().artifacts_url.is_none().then(|| {
        env.config
            .data_dir
            .join("files/executions")
            .join(&e.id)
            .join("logs")
    }) {
        assert!(dir.join("b.log.zst").exists());
        assert!(!dir.join("b.log").exists());
    }
    let all = reader_store.read_logs(&e.id, None).await.unwrap();
    assert_eq!(all.len(), 1503);
    assert_eq!(all[0].step, "b", "plan order: b before a");
    assert_eq!(all[1502].step, "a");
    let resumed = reader_store
        .log_reader(&e.id, "b", resume_at)
        .read_to_end()
        .await
        .unwrap();
    assert_eq!(resumed[0].text, "first 500");
    assert_eq!(resumed.len(), 1002);
    assert_eq!(reader_store.log_steps(&e.id).await.unwrap(), ["a", "b"]);
}
both!(logs_append_replay_follow);

/// `read_until`: lines up to an offset and not one byte further, from any line start, while
/// the log is raw and after it is compressed, the last unterminated line included.
async fn logs_read_until_an_offset(env: Env) {
    use std::io::Write;
    let s = &env.store;
    let e = s.create_execution(new_exec("until")).await.unwrap();
    s.start_execution(&e.id, now_ms()).await.unwrap();
    let mut w = s.log_writer(&e.id, "b").await.unwrap();
    for i in 0..300 {
        w.append(1_000 + i, &format!("line {i}")).await.unwrap();
    }
    w.finish().await.unwrap();
    // A crash mid-line leaves an unterminated last line.
    let raw = env
        .config
        .data_dir
        .join("files/executions")
        .join(&e.id)
        .join("logs/b.log");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&raw)
        .unwrap()
        .write_all(b"2000 cut")
        .unwrap();
    let all = s.log_reader(&e.id, "b", 0).read_available().await.unwrap();
    assert_eq!(all.len(), 300, "the cut line waits while running");

    async fn until(store: &Store, id: &str, from: u64, end: u64) -> Vec<LogLine> {
        let mut reader = store.log_reader(id, "b", from);
        let mut lines = Vec::new();
        loop {
            let batch = reader.read_until(end).await.unwrap();
            if batch.is_empty() {
                break;
            }
            lines.extend(batch);
        }
        assert_eq!(reader.offset(), lines.last().map_or(from, |l| l.offset));
        assert!(reader.read_until(end).await.unwrap().is_empty());
        lines
    }
    let got = until(s, &e.id, 0, all[9].offset).await;
    assert_eq!(got, all[..10]);
    let got = until(s, &e.id, all[9].offset, all[199].offset).await;
    assert_eq!(got, all[10..200]);
    assert!(
        until(s, &e.id, all[99].offset, all[99].offset)
            .await
            .is_empty()
    );

    finish(s, &e.id, ExecutionStatus::Passed).await;
    let packed = raw.with_file_name("b.log.zst");
    assert!(packed.exists() && !raw.exists(), "compressed");
    let every = s.log_reader(&e.id, "b", 0).read_to_end().await.unwrap();
    assert_eq!(every.len(), 301);
    assert_eq!(every[300].text, "cut");
    let got = until(s, &e.id, all[199].offset, every[300].offset).await;
    assert_eq!(got, every[200..]);
    let got = until(s, &e.id, 0, all[0].offset).await;
    assert_eq!(got, every[..1]);
}
both!(logs_read_until_an_offset);

// ---------------------------------------------------------------------------------------------
// Crash recovery

async fn recovery_marks_only_dead_owners(env: Env) {
    let s = &env.store;
    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let mut dead = new_exec("rec");
    dead.status = Some(ExecutionStatus::Running);
    dead.owner = Some(LeaseOwner {
        pid: dead_pid,
        ..LeaseOwner::current()
    });
    let dead = s.create_execution(dead).await.unwrap();
    s.record_steps(
        &dead.id,
        &[
            StepResult::new("s1", 0, StepStatus::Passed),
            StepResult::new("s2", 1, StepStatus::Running),
        ],
    )
    .await
    .unwrap();

    let mut live = new_exec("rec");
    live.status = Some(ExecutionStatus::Running);
    live.owner = Some(LeaseOwner::current());
    let live = s.create_execution(live).await.unwrap();

    let queued = s.create_execution(new_exec("rec")).await.unwrap(); // no owner: a server queue

    // Owners on other hosts: judged by heartbeat age.
    let remote_owner = LeaseOwner {
        host: "elsewhere.invalid".into(),
        pid: 1,
        token: "x/1".into(),
    };
    let mut remote_fresh = new_exec("rec");
    remote_fresh.status = Some(ExecutionStatus::Running);
    remote_fresh.owner = Some(remote_owner.clone());
    let remote_fresh = s.create_execution(remote_fresh).await.unwrap();

    let short = Store::open_with_lease_timeout(env.config.clone(), Duration::from_millis(300))
        .await
        .unwrap();
    let recovered = s.recover_abandoned().await.unwrap();
    assert_eq!(
        recovered.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [dead.id.as_str()]
    );
    assert!(
        recovered[0].reason.contains(&format!("process {dead_pid}")),
        "{}",
        recovered[0].reason
    );

    let got = s
        .get_execution(&ExecutionRef::Id(dead.id.clone()))
        .await
        .unwrap();
    assert_eq!(got.status, ExecutionStatus::Aborted);
    assert!(
        got.error_message
            .as_deref()
            .unwrap()
            .contains("ended without finishing")
    );
    assert_eq!(got.steps[0].status, StepStatus::Passed);
    assert_eq!(got.steps[1].status, StepStatus::Aborted);
    assert!(got.finished_at.is_some());
    for id in [&live.id, &queued.id, &remote_fresh.id] {
        let e = s
            .find_execution(&ExecutionRef::Id(id.clone()))
            .await
            .unwrap();
        assert!(!e.status.is_terminal(), "{id} must be untouched");
    }
    // A heartbeat keeps the live one fresh; the remote one goes stale under a short timeout.
    assert!(s.heartbeat(&live.id).await.unwrap());
    assert!(
        !s.heartbeat(&remote_fresh.id).await.unwrap(),
        "not our lease"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let recovered = short.recover_abandoned().await.unwrap();
    assert_eq!(
        recovered.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [remote_fresh.id.as_str()]
    );
    assert!(recovered[0].reason.contains("no heartbeat"));
    assert!(
        !s.find_execution(&ExecutionRef::Id(live.id.clone()))
            .await
            .unwrap()
            .status
            .is_terminal()
    );
    // Nothing left to do: idempotent.
    assert!(s.recover_abandoned().await.unwrap().is_empty());
}
both!(recovery_marks_only_dead_owners);

async fn kill_9_leaves_a_consistent_record(env: Env) {
    use std::io::BufRead;
    let mut c = child(&env, "crash").stdout(Stdio::piped()).spawn().unwrap();
    let stdout = c.stdout.take().unwrap();
    let mut id = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest prints "test child_entry ... " on the same line first.
        if let Some(at) = line.find("READY ") {
            id = Some(line[at + 6..].trim().to_string());
            break;
        }
    }
    let id = id.expect("child reported its execution");
    // While the child lives, its execution is not touched.
    assert!(env.store.recover_abandoned().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();

    let recovered = env.store.recover_abandoned().await.unwrap();
    assert_eq!(recovered.len(), 1);
    let got = env
        .store
        .get_execution(&ExecutionRef::Id(id.clone()))
        .await
        .unwrap();
    assert_eq!(got.status, ExecutionStatus::Aborted);
    assert_eq!(
        got.steps.iter().map(|s| s.status).collect::<Vec<_>>(),
        // Steps that never ran are aborted too, as Testkube does.
        [StepStatus::Passed, StepStatus::Aborted, StepStatus::Aborted]
    );
    let lines = env.store.read_logs(&id, Some("s2")).await.unwrap();
    assert!(lines.len() >= 100);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.text, format!("line {i}"));
    }
}
both!(kill_9_leaves_a_consistent_record);

// ---------------------------------------------------------------------------------------------
// Retention

async fn prune_by_age_and_count(env: Env) {
    let s = &env.store;
    let day = 86_400_000;
    let now = now_ms();
    let mut old = new_exec("p");
    old.scheduled_at = Some(now - 10 * day);
    let old = s.create_execution(old).await.unwrap();
    finish(s, &old.id, ExecutionStatus::Passed).await;
    let mut old_running = new_exec("p");
    old_running.scheduled_at = Some(now - 9 * day);
    old_running.status = Some(ExecutionStatus::Running);
    old_running.owner = Some(LeaseOwner::current());
    let old_running = s.create_execution(old_running).await.unwrap();
    let mut recent = Vec::new();
    for _ in 0..4 {
        let e = s.create_execution(new_exec("p")).await.unwrap();
        let mut w = s.log_writer(&e.id, "s").await.unwrap();
        w.append(now, "x").await.unwrap();
        w.finish().await.unwrap();
        s.put_artifact(&e.id, None, "a.txt", None, bytes::Bytes::from_static(b"a"))
            .await
            .unwrap();
        finish(s, &e.id, ExecutionStatus::Passed).await;
        recent.push(e);
    }
    let q = s.create_execution(new_exec("q")).await.unwrap();
    finish(s, &q.id, ExecutionStatus::Failed).await;

    let report = s.prune(Some(7), None).await.unwrap();
    assert_eq!(report.executions, 1);
    assert!(
        s.find_execution(&ExecutionRef::Id(old.id.clone()))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.find_execution(&ExecutionRef::Id(old_running.id.clone()))
            .await
            .is_ok(),
        "running kept"
    );

    // Keep the newest 2 of each workflow: p-6 and p-5 stay, p-4 and p-3 go, p-2 is still
    // running and stays.
    let report = s.prune(None, Some(2)).await.unwrap();
    assert_eq!(report.executions, 2);
    let left: Vec<String> = s
        .list_executions(&ExecutionFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(left, ["q-1", "p-6", "p-5", "p-2"]);
    // Their files went with them.
    assert!(
        s.read_logs(&recent[0].id, Some("s"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.open_artifact(&recent[0].id, "a.txt")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        s.read_logs(&recent[3].id, Some("s")).await.unwrap().len(),
        1
    );
    if env.config.artifacts_url.is_none() {
        assert!(
            !env.config
                .data_dir
                .join("files/executions")
                .join(&recent[0].id)
                .exists()
        );
    }
}
both!(prune_by_age_and_count);

// ---------------------------------------------------------------------------------------------
// Artifacts

async fn artifacts_stream_in_and_out(env: Env) {
    let s = &env.store;
    let e = s.create_execution(new_exec("art")).await.unwrap();
    let big = env.dir.path().join("big.bin");
    let data: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &data).unwrap();
    let a = s
        .put_artifact_file(&e.id, Some("r"), "dir/big.bin", None, &big)
        .await
        .unwrap();
    assert_eq!(a.size, data.len() as u64);
    s.put_artifact(
        &e.id,
        None,
        "small.txt",
        Some("text/plain"),
        bytes::Bytes::from_static(b"hi"),
    )
    .await
    .unwrap();
    let list = s.list_artifacts(&e.id).await.unwrap();
    assert_eq!(
        list.iter().map(|a| a.path.as_str()).collect::<Vec<_>>(),
        ["dir/big.bin", "small.txt"]
    );
    let dl = s.open_artifact(&e.id, "dir/big.bin").await.unwrap();
    assert_eq!(dl.size, data.len() as u64);
    let mut got = Vec::new();
    let mut stream = dl.stream;
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == data);
    assert!(
        s.put_artifact(&e.id, None, "../escape", None, bytes::Bytes::new())
            .await
            .is_err()
    );
    assert!(
        s.put_artifact(
            "0190a0b0-0000-7000-8000-000000000000",
            None,
            "x",
            None,
            bytes::Bytes::new()
        )
        .await
        .unwrap_err()
        .is_not_found()
    );
}
both!(artifacts_stream_in_and_out);

// ---------------------------------------------------------------------------------------------
// Bad input

#[tokio::test]
async fn a_corrupt_database_file_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join(SQLITE_FILE);
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let err = Store::open(StoreConfig::new(&data)).await.unwrap_err();
    assert!(matches!(err, StoreError::CorruptDatabase { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&db.display().to_string()), "{msg}");
    assert!(msg.contains("not a valid SQLite database"), "{msg}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        garbage,
        "the file is not modified"
    );
}

#[tokio::test]
async fn an_unreachable_postgres_is_reported_without_its_password() {
    // Port 1 on loopback: nothing listens there.
    let mut config = StoreConfig::new(tempfile::tempdir().unwrap().path());
    config.database_url = Some("postgres://assay:s3cret@127.0.0.1:1/assay".into());
    let err = Store::open(config).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("postgres://assay:*****@127.0.0.1:1/assay"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");
    assert!(
        !format!("{err:?}").contains("s3cret"),
        "debug output leaks the password"
    );
}

#[tokio::test]
async fn unsupported_locations_are_config_errors() {
    let mut config = StoreConfig::new(tempfile::tempdir().unwrap().path());
    config.database_url = Some("mysql://x".into());
    assert!(matches!(
        Store::open(config.clone()).await.unwrap_err(),
        StoreError::Config(_)
    ));
    config.database_url = None;
    config.artifacts_url = Some("gs://bucket".into());
    assert!(matches!(
        Store::open(config).await.unwrap_err(),
        StoreError::Config(_)
    ));
}

#[tokio::test]
async fn a_read_only_data_dir_is_an_error_naming_it() {
    if unsafe_is_root() {
        // root ignores permissions; the message path is covered by the corrupt-file test.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut perms = std::fs::metadata(dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o500);
    std::fs::set_permissions(dir.path(), perms).unwrap();
    let err = Store::open(StoreConfig::new(dir.path().join("data")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// The list's page is built as JSON by the database; it must read back exactly as a row read.

async fn list_page_matches_row_reads(env: Env) {
    let s = &env.store;
    let odd = "quote \" backslash \\ newline \n tab \t unicode é ✓ 😀 nul-free </script>";
    let mut config = BTreeMap::new();
    config.insert(
        "plain".to_string(),
        ConfigValue {
            value: Some(odd.into()),
            ..Default::default()
        },
    );
    config.insert(
        "secret".to_string(),
        ConfigValue {
            sensitive: true,
            empty_default_value: true,
            ..Default::default()
        },
    );
    let mut ids: Vec<String> = Vec::new();
    for i in 0..9 {
        let mut new = new_exec(if i % 3 == 0 { "w-a" } else { "w-b" });
        new.tags = tags(&[("env", if i % 2 == 0 { "prod" } else { odd }), ("n", "x")]);
        if i % 2 == 0 {
            new.config = config.clone();
            new.running_context = RunningContext {
                kind: ContextType::Api,
                actor: Some(odd.into()),
                ci: None,
                execution_id: None,
            };
        }
        if i == 4 {
            new.parent = Some(ParentExecution {
                id: ids[0].clone(),
                name: "w-a-1".into(),
                step_ref: odd.into(),
            });
        }
        if i == 8 {
            new.status = Some(ExecutionStatus::Queued);
        }
        let e = s.create_execution(new).await.unwrap();
        match i {
            1 => s
                .finish_execution(
                    &e.id,
                    Finish {
                        status: ExecutionStatus::Failed,
                        error_message: Some(odd.into()),
                        at: now_ms(),
                    },
                )
                .await
                .unwrap(),
            2 => s
                .set_record_errors(&e.id, &[odd.to_string(), "second".into()])
                .await
                .unwrap(),
            3 => assert!(s.request_abort(&e.id, Some(odd)).await.unwrap()),
            5 | 6 => finish(s, &e.id, ExecutionStatus::Passed).await,
            _ => {}
        }
        ids.push(e.id);
    }
    let filters = [
        ExecutionFilter::default(),
        ExecutionFilter {
            workflow: Some("w-b".into()),
            ..Default::default()
        },
        ExecutionFilter {
            statuses: vec![ExecutionStatus::Passed, ExecutionStatus::Failed],
            ..Default::default()
        },
        ExecutionFilter {
            tags: vec![("env".into(), odd.into())],
            ..Default::default()
        },
        ExecutionFilter {
            tags: vec![("n".into(), "x".into()), ("env".into(), "prod".into())],
            workflow: Some("w-a".into()),
            ..Default::default()
        },
        ExecutionFilter {
            workflow: Some("nothing".into()),
            ..Default::default()
        },
    ];
    for filter in filters {
        // Page through two at a time; every page is newest first and each entry equals the
        // same execution read as a row, field by field.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = s
                .list_executions(&ExecutionFilter {
                    limit: Some(2),
                    before_id: before.clone(),
                    ..filter.clone()
                })
                .await
                .unwrap();
            for e in &page {
                let row = s
                    .find_execution(&ExecutionRef::Id(e.id.clone()))
                    .await
                    .unwrap();
                assert_eq!(e, &row, "{filter:?}");
                // The REST list's entry, written from borrowed parts, is the text of the
                // execution's `TestWorkflowExecution` (running ones measured to the same now).
                let now = now_ms();
                assert_eq!(
                    serde_json::to_string(&testkube::ListEntry::new(e, now)).unwrap(),
                    serde_json::to_string(&testkube::summary_view(&row, now)).unwrap(),
                    "{filter:?}"
                );
            }
            seen.extend(page.iter().map(|e| e.id.clone()));
            match page.last() {
                Some(last) if page.len() == 2 => before = Some(last.id.clone()),
                _ => break,
            }
        }
        // The REST list writes its entries through a `ListCache`: written (and kept when the
        // execution has ended), then from the cache, each is the text of the execution's
        // `TestWorkflowExecution` read as a row.
        let cache = testkube::ListCache::default();
        for _ in 0..2 {
            let now = now_ms();
            let page = s.list_page(&filter).await.unwrap();
            let entries = cache.entries(&page, now).unwrap();
            let listed: Vec<&str> = entries.iter().map(|e| e.id()).collect();
            assert_eq!(listed, seen, "{filter:?}");
            for e in &entries {
                let row = s
                    .find_execution(&ExecutionRef::Id(e.id().to_string()))
                    .await
                    .unwrap();
                assert_eq!(
                    std::str::from_utf8(e.json()).unwrap(),
                    serde_json::to_string(&testkube::summary_view(&row, now)).unwrap(),
                    "{filter:?}"
                );
            }
        }
        let mut expected: Vec<String> = Vec::new();
        for id in ids.iter().rev() {
            let e = s
                .find_execution(&ExecutionRef::Id(id.clone()))
                .await
                .unwrap();
            let matches = filter.workflow.as_ref().is_none_or(|w| *w == e.workflow)
                && (filter.statuses.is_empty() || filter.statuses.contains(&e.status))
                && filter.tags.iter().all(|(k, v)| e.tags.get(k) == Some(v));
            if matches {
                expected.push(id.clone());
            }
        }
        assert_eq!(seen, expected, "{filter:?}");
    }
    // The page and the counts from one statement are those of the two calls.
    for (filter, counted) in [
        (ExecutionFilter::default(), ExecutionFilter::default()),
        (
            ExecutionFilter {
                workflow: Some("w-b".into()),
                statuses: vec![ExecutionStatus::Passed],
                limit: Some(3),
                ..Default::default()
            },
            ExecutionFilter {
                workflow: Some("w-b".into()),
                ..Default::default()
            },
        ),
        (
            ExecutionFilter {
                workflow: Some("nothing".into()),
                ..Default::default()
            },
            ExecutionFilter {
                workflow: Some("nothing".into()),
                ..Default::default()
            },
        ),
        (
            ExecutionFilter {
                tags: vec![("env".into(), "prod".into())],
                ..Default::default()
            },
            ExecutionFilter {
                tags: vec![("env".into(), "prod".into())],
                ..Default::default()
            },
        ),
    ] {
        let (page, counts) = s.list_and_count(&filter, &counted).await.unwrap();
        assert_eq!(
            page.summaries().unwrap(),
            s.list_executions(&filter).await.unwrap()
        );
        assert_eq!(counts, s.count_executions(&counted).await.unwrap());
    }
    // The odd values came back whole.
    let all = s
        .list_executions(&ExecutionFilter::default())
        .await
        .unwrap();
    let failed = all
        .iter()
        .find(|e| e.status == ExecutionStatus::Failed)
        .unwrap();
    assert_eq!(failed.error_message.as_deref(), Some(odd));
    assert!(all.iter().any(|e| e.record_errors == [odd, "second"]));
    assert!(all.iter().any(|e| e.abort_requested));
    assert!(
        all.iter()
            .any(|e| e.parent.as_ref().is_some_and(|p| p.step_ref == odd))
    );
    assert!(
        all.iter()
            .any(|e| e.config == config && e.running_context.actor.as_deref() == Some(odd))
    );
}
both!(list_page_matches_row_reads);

// The list's cache of entries never answers with an entry older than the page it was given.
async fn list_cache_is_never_stale(env: Env) {
    let s = &env.store;
    let ended = s.create_execution(new_exec("w")).await.unwrap();
    finish(s, &ended.id, ExecutionStatus::Passed).await;
    let queued = s.create_execution(new_exec("w")).await.unwrap();
    let cache = testkube::ListCache::default();
    let (cache, ids) = (&cache, [queued.id.as_str(), ended.id.as_str()]);
    let list = |now| async move {
        let page = s.list_page(&ExecutionFilter::default()).await.unwrap();
        let entries = cache.entries(&page, now).unwrap();
        let listed: Vec<&str> = entries.iter().map(|e| e.id()).collect();
        assert_eq!(listed, ids);
        entries
            .iter()
            .map(|e| serde_json::from_slice(e.json()).unwrap())
            .collect::<Vec<serde_json::Value>>()
    };
    let now = now_ms();
    let first = list(now).await;
    assert_eq!(first[1]["tags"], serde_json::Value::Null);
    // Retagged: its record changed, so its entry is written again.
    s.set_tags(&ended.id, &tags(&[("k", "retagged")]))
        .await
        .unwrap();
    let second = list(now).await;
    assert_eq!(second[1]["tags"]["k"], "retagged");
    // An execution that has not ended is measured to each call's `now`, never kept.
    let later = list(now + 5_000).await;
    assert_eq!(
        later[0]["result"]["totalDurationMs"].as_i64().unwrap(),
        second[0]["result"]["totalDurationMs"].as_i64().unwrap() + 5_000
    );
    assert_eq!(later[1], second[1]);
}
both!(list_cache_is_never_stale);
