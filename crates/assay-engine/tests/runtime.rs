//! The runtime seam: the engine starts every process — steps, services, readiness probes, the
//! `git` of `content` — and every parallel worker's scope through `RunOptions::runtime`, and
//! nothing by itself. A test runtime that runs nothing records what it is asked to start; the
//! plan's commands would leave files behind if anything ran them on this machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common;

use assay_engine::runtime::{
    BoxFuture, Launch, LaunchKind, Layout, Output, Process, ProcessOutcome, Runtime, RuntimeError,
    Scope, Setup, StartError, Stop,
};
use assay_spec::plan::{
    PlanContent, PlanGit, PlanParallel, PlanProcess, PlanService, PlanServiceInstance, PlanStep,
    PlanWorker, Probe, StrategyInstance,
};
use assay_spec::status::{ExecutionStatus, StepStatus};
use common::*;

/// What the test runtime was asked to do.
#[derive(Debug, Default)]
struct Record {
    launches: Vec<Launch>,
    probes: Vec<Launch>,
    workers: Vec<(String, u64, PathBuf)>,
    opened: Vec<PathBuf>,
    closed: usize,
}

/// A runtime that starts nothing: a step "exits" with 3 when its script says `exit 3`, else 0;
/// a service "runs" until it is stopped, at [`TEST_ADDRESS`].
#[derive(Clone, Default)]
struct TestRuntime(Arc<Mutex<Record>>);

const TEST_ADDRESS: &str = "10.88.0.7";

impl Runtime for TestRuntime {
    fn name(&self) -> &'static str {
        "test"
    }

    fn open<'a>(&'a self, setup: Setup<'a>) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
        self.0
            .lock()
            .unwrap()
            .opened
            .push(setup.layout.data.clone());
        let scope = TestScope(self.0.clone());
        Box::pin(async move { Ok(Box::new(scope) as Box<dyn Scope>) })
    }
}

struct TestScope(Arc<Mutex<Record>>);

impl Scope for TestScope {
    fn worker<'a>(
        &'a self,
        layout: &'a Layout,
        reference: &'a str,
        index: u64,
    ) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
        self.0
            .lock()
            .unwrap()
            .workers
            .push((reference.to_string(), index, layout.data.clone()));
        let scope = TestScope(self.0.clone());
        Box::pin(async move { Ok(Box::new(scope) as Box<dyn Scope>) })
    }

    fn base_env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("FROM_RUNTIME".to_string(), "yes".to_string())])
    }

    fn start<'a>(
        &'a self,
        launch: Launch,
        output: Output,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>> {
        self.0.lock().unwrap().launches.push(launch.clone());
        Box::pin(async move {
            let code = if launch
                .shell
                .as_deref()
                .is_some_and(|s| s.contains("exit 3"))
            {
                3
            } else {
                0
            };
            let text = format!("the test runtime ran nothing for {}\n", output.reference());
            output.pump(text.as_bytes()).await;
            Ok(Box::new(TestProcess {
                service: matches!(launch.kind, LaunchKind::Service { .. }),
                code,
            }) as Box<dyn Process>)
        })
    }

    fn probe<'a>(&'a self, launch: Launch) -> BoxFuture<'a, Result<(), RuntimeError>> {
        self.0.lock().unwrap().probes.push(launch);
        Box::pin(async { Ok(()) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.0.lock().unwrap().closed += 1;
        Box::pin(async {})
    }
}

struct TestProcess {
    service: bool,
    code: i32,
}

impl Process for TestProcess {
    fn address(&self) -> String {
        TEST_ADDRESS.into()
    }

    fn try_exit_code(&mut self) -> Option<i32> {
        (!self.service).then_some(self.code)
    }

    fn ended_by_itself(&mut self) -> BoxFuture<'_, Option<(i32, Duration)>> {
        let ended = (!self.service).then_some((self.code, Duration::ZERO));
        Box::pin(async move { ended })
    }

    fn wait(self: Box<Self>, stop: Stop) -> BoxFuture<'static, ProcessOutcome> {
        Box::pin(async move {
            if self.service {
                stop.cancel.cancelled().await;
                return ProcessOutcome {
                    exit_code: Some(143),
                    ..Default::default()
                };
            }
            ProcessOutcome {
                exit_code: Some(self.code),
                ..Default::default()
            }
        })
    }
}

fn touching(marks: &str, name: &str) -> String {
    format!("touch {marks}/{name}")
}

#[tokio::test]
async fn the_engine_starts_every_process_through_its_runtime() {
    let (mut opts, dir) = options();
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let m = marks.display().to_string();
    let record = TestRuntime::default();
    opts.runtime = Arc::new(record.clone());

    let mut checkout = shell("checkout", &touching(&m, "step"));
    checkout.content = Some(PlanContent {
        git: Some(PlanGit {
            uri: format!("file://{m}/no-such-repo"),
            mount_path: "/data/repo".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut with_service = shell(
        "uses-db",
        &format!(
            "{} # ip={{{{ services.db.0.ip }}}} {{{{ env.FROM_RUNTIME }}}}",
            touching(&m, "client")
        ),
    );
    with_service.services = vec![PlanService {
        name: "db".into(),
        instances: Some(vec![PlanServiceInstance {
            process: PlanProcess {
                command: vec!["sh".into(), "-c".into(), touching(&m, "service")],
                image: Some("postgres:16".into()),
                resources: Some(serde_json::json!({"limits": {"memory": "256Mi"}})),
                ..Default::default()
            },
            readiness_probe: Some(Probe {
                exec: Some(vec!["sh".into(), "-c".into(), touching(&m, "probe")]),
                period_seconds: 1,
                timeout_seconds: 1,
                failure_threshold: 1,
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    }];
    let workers = (0..2)
        .map(|i| PlanWorker {
            instance: StrategyInstance {
                index: i,
                count: 2,
                ..Default::default()
            },
            root: group(
                "root",
                vec![shell("work", &touching(&m, &format!("worker-{i}")))],
            ),
            ..Default::default()
        })
        .collect();
    let par = PlanStep {
        reference: "par".into(),
        condition: "passed".into(),
        parallel: Some(Box::new(PlanParallel {
            workers: Some(workers),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut failing = shell("fails", &format!("{}; exit 3", touching(&m, "failing")));
    failing.optional = true;

    let (out, events) = run(plan(vec![checkout, with_service, par, failing]), opts).await;

    // Nothing ran on this machine.
    let left: Vec<_> = std::fs::read_dir(&marks).unwrap().flatten().collect();
    assert!(
        left.is_empty(),
        "something ran outside the runtime: {left:?}"
    );
    // What the runtime reported is what the engine made of it.
    assert_eq!(out.status, ExecutionStatus::Passed, "{:?}", out.error);
    assert_eq!(status(&out, "checkout"), StepStatus::Passed);
    assert_eq!(status(&out, "par/0/work"), StepStatus::Passed);
    assert_eq!(status(&out, "fails"), StepStatus::Failed);
    assert_eq!(out.steps["fails"].exit_code, Some(3));
    assert!(logs(&events, "uses-db").contains("the test runtime ran nothing for uses-db"));

    let r = record.0.lock().unwrap();
    let kinds: Vec<&LaunchKind> = r.launches.iter().map(|l| &l.kind).collect();
    assert!(
        kinds.iter().filter(|k| ***k == LaunchKind::Tool).count() >= 2,
        "git clone and checkout: {kinds:?}"
    );
    let service = r
        .launches
        .iter()
        .find(|l| {
            l.kind
                == LaunchKind::Service {
                    name: "db".into(),
                    index: 0,
                }
        })
        .expect("the service went through the runtime");
    // The plan's description of the process reaches the runtime.
    assert_eq!(service.command[2], touching(&m, "service"));
    assert_eq!(service.image.as_deref(), Some("postgres:16"));
    assert_eq!(
        service.resources,
        Some(serde_json::json!({"limits": {"memory": "256Mi"}}))
    );
    assert_eq!(service.working_dir, "/data");
    let steps: Vec<&Launch> = r
        .launches
        .iter()
        .filter(|l| l.kind == LaunchKind::Step)
        .collect();
    assert_eq!(steps.len(), 5, "checkout, uses-db, two workers, fails");
    // The address a service gets is the runtime's; the environment starts from the runtime's.
    let client = steps
        .iter()
        .find(|l| l.shell.as_deref().is_some_and(|s| s.contains("client")))
        .unwrap();
    assert!(
        client
            .shell
            .as_deref()
            .unwrap()
            .ends_with(&format!("ip={TEST_ADDRESS} yes")),
        "{:?}",
        client.shell
    );
    assert_eq!(
        client.env.get("FROM_RUNTIME").map(String::as_str),
        Some("yes")
    );
    assert_eq!(r.probes.len(), 1);
    assert_eq!(
        r.probes[0].kind,
        LaunchKind::Probe {
            service: "db".into(),
            index: 0
        }
    );
    // Each worker has its own scope and folders; every scope is closed.
    let mut workers: Vec<(String, u64)> = r.workers.iter().map(|w| (w.0.clone(), w.1)).collect();
    workers.sort();
    assert_eq!(
        workers,
        vec![("par".to_string(), 0), ("par".to_string(), 1)]
    );
    assert_ne!(r.workers[0].2, r.workers[1].2);
    assert_eq!(r.opened.len(), 1);
    assert_eq!(r.closed, 3);
}

#[tokio::test]
async fn a_runtime_that_cannot_open_fails_the_execution_with_its_reason() {
    struct Refusing;
    impl Runtime for Refusing {
        fn name(&self) -> &'static str {
            "refusing"
        }
        fn open<'a>(&'a self, _: Setup<'a>) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
            Box::pin(async {
                Err(RuntimeError::Failed(
                    "no engine at unix:///nowhere.sock".to_string(),
                ))
            })
        }
    }
    let (mut opts, dir) = options();
    opts.runtime = Arc::new(Refusing);
    let marks = dir.path().join("ran");
    let step = shell("one", &format!("touch {}", marks.display()));
    let (out, _) = run(plan(vec![step]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(
        out.error.as_deref(),
        Some("no engine at unix:///nowhere.sock")
    );
    assert_eq!(status(&out, "one"), StepStatus::Skipped);
    assert!(!marks.exists());
}
