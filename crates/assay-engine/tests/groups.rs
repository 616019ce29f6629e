//! Parallel workers, services and `/data` isolation, with real processes.

use crate::common;

use assay_engine::{Event, Isolation, ServiceState, WorkerState};
use assay_spec::plan::{
    PlanParallel, PlanProcess, PlanService, PlanServiceInstance, PlanStep, PlanWorker, Probe,
    ProbeTcp, StrategyInstance,
};
use assay_spec::status::{ExecutionStatus, StepStatus};
use common::*;

fn worker(index: u64, count: u64, script: &str) -> PlanWorker {
    PlanWorker {
        instance: StrategyInstance {
            index,
            count,
            ..Default::default()
        },
        root: group("root", vec![shell("work", script)]),
        ..Default::default()
    }
}

fn parallel_step(
    reference: &str,
    workers: Vec<PlanWorker>,
    parallelism: u32,
    fail_fast: bool,
) -> PlanStep {
    PlanStep {
        reference: reference.into(),
        condition: "passed".into(),
        parallel: Some(Box::new(PlanParallel {
            parallelism: Some(parallelism),
            fail_fast,
            workers: Some(workers),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Most workers running at once, from the worker events.
fn max_running(events: &[Event]) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for e in events {
        match e {
            Event::Worker {
                state: WorkerState::Running,
                ..
            } => {
                now += 1;
                max = max.max(now);
            }
            Event::Worker {
                state: WorkerState::Finished { .. },
                ..
            } => now -= 1,
            _ => {}
        }
    }
    max
}

#[tokio::test]
async fn parallel_respects_parallelism() {
    let (opts, _dir) = options();
    let workers = (0..6)
        .map(|i| worker(i, 6, &format!("sleep 0.2; echo worker {i}")))
        .collect();
    let (out, events) = run(plan(vec![parallel_step("par", workers, 2, false)]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Passed);
    assert_eq!(status(&out, "par"), StepStatus::Passed);
    assert_eq!(max_running(&events), 2);
    for i in 0..6 {
        assert_eq!(status(&out, &format!("par/{i}/work")), StepStatus::Passed);
        assert_eq!(
            logs(&events, &format!("par/{i}/work")),
            format!("worker {i}\n")
        );
    }
}

#[tokio::test]
async fn parallel_fail_fast_aborts_the_others() {
    let (opts, dir) = options();
    // Worker 0 fails once the others run (each worker starts its own namespace first).
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let m = marks.display();
    let mut workers = vec![worker(
        0,
        4,
        &format!("while [ $(ls {m} | wc -l) -lt 3 ]; do sleep 0.02; done; exit 1"),
    )];
    workers.extend((1..4).map(|i| worker(i, 4, &format!("touch {m}/{i}; sleep 30"))));
    let started = std::time::Instant::now();
    let (out, _) = run(plan(vec![parallel_step("par", workers, 4, true)]), opts).await;
    assert!(
        started.elapsed().as_secs() < 20,
        "fail-fast did not stop the other workers"
    );
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(status(&out, "par"), StepStatus::Failed);
    assert_eq!(status(&out, "par/0/work"), StepStatus::Failed);
    assert_eq!(status(&out, "par/1/work"), StepStatus::Aborted);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn service(name: &str, command: Vec<&str>, port: u16, threshold: u32) -> PlanService {
    PlanService {
        name: name.into(),
        instances: Some(vec![PlanServiceInstance {
            process: PlanProcess {
                command: command.into_iter().map(String::from).collect(),
                ..Default::default()
            },
            readiness_probe: Some(Probe {
                tcp_socket: Some(ProbeTcp {
                    host: None,
                    port: port.into(),
                }),
                period_seconds: 1,
                timeout_seconds: 1,
                failure_threshold: threshold,
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

#[tokio::test]
async fn service_with_tcp_readiness() {
    let (opts, dir) = options();
    let port = free_port();
    std::fs::write(dir.path().join("hello.txt"), "hi from the service").unwrap();
    let serve_dir = dir.path().display().to_string();
    let port_s = port.to_string();
    let mut step = group(
        "with-service",
        vec![shell(
            "client",
            &format!(
                "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://{{{{ services.web.0.ip }}}}:{port}/hello.txt').read().decode())\""
            ),
        )],
    );
    step.services = vec![service(
        "web",
        vec![
            "python3",
            "-m",
            "http.server",
            &port_s,
            "--bind",
            "127.0.0.1",
            "--directory",
            &serve_dir,
        ],
        port,
        30,
    )];
    let (out, events) = run(plan(vec![step]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Passed, "{:?}", out.steps);
    assert_eq!(logs(&events, "client"), "hi from the service\n");
    let states: Vec<&ServiceState> = events
        .iter()
        .filter_map(|e| match e {
            Event::Service { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    assert!(matches!(
        states.as_slice(),
        [
            ServiceState::Starting,
            ServiceState::Ready { .. },
            ServiceState::Stopped
        ]
    ));
    // The service was stopped after the group: the port is free again.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[tokio::test]
async fn never_ready_service_fails_the_execution() {
    let (opts, _dir) = options();
    let port = free_port();
    let mut step = group("with-service", vec![shell("client", "echo should-not-run")]);
    step.services = vec![service("db", vec!["sleep", "300"], port, 2)];
    let (out, events) = run(plan(vec![step]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    let reason = out.error.clone().unwrap_or_default();
    assert!(
        reason.contains("db") && reason.contains("never became ready"),
        "{reason}"
    );
    assert_eq!(status(&out, "client"), StepStatus::Skipped);
    assert_eq!(logs(&events, "client"), "");
}

#[tokio::test]
async fn each_execution_has_its_own_data() {
    let host_had_data = std::path::Path::new("/data").exists();
    let mk = |value: &'static str| {
        let (opts, dir) = options();
        let p = plan(vec![shell(
            "write",
            &format!("echo {value} > /data/x; sleep 0.3; cat /data/x; pwd"),
        )]);
        (opts, dir, p)
    };
    let (o1, d1, p1) = mk("first");
    let (o2, d2, p2) = mk("second");
    let ((r1, e1), (r2, e2)) = tokio::join!(run(p1, o1), run(p2, o2));
    assert_eq!(r1.status, ExecutionStatus::Passed, "{e1:?}");
    assert_eq!(r2.status, ExecutionStatus::Passed, "{e2:?}");
    assert_eq!(logs(&e1, "write"), "first\n/data\n");
    assert_eq!(logs(&e2, "write"), "second\n/data\n");
    assert_eq!(
        std::fs::read_to_string(d1.path().join("exec/data/x")).unwrap(),
        "first\n"
    );
    assert_eq!(
        std::fs::read_to_string(d2.path().join("exec/data/x")).unwrap(),
        "second\n"
    );
    assert_eq!(
        std::path::Path::new("/data").exists(),
        host_had_data,
        "the host's /data was touched"
    );
}

#[tokio::test]
async fn without_isolation_data_paths_are_a_clear_error() {
    let (mut opts, _dir) = options();
    opts.isolation = Isolation::None;
    let (out, _) = run(plan(vec![shell("uses-data", "ls /data")]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    let e = out.error.clone().unwrap_or_default();
    assert!(e.contains("/data") && e.contains("hint:"), "{e}");
    assert_eq!(status(&out, "uses-data"), StepStatus::Skipped);

    let (mut opts, _dir) = options();
    opts.isolation = Isolation::None;
    let (out, events) = run(plan(vec![shell("plain", "echo fine; pwd")]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Passed);
    assert!(logs(&events, "plain").starts_with("fine\n"));
}
