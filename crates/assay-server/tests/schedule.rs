//! Schedules (`spec.events[].cronjob`) in real servers over real HTTP: a per-second schedule
//! fires and records who started it; two servers on one real PostgreSQL fire each tick once;
//! a restart after a gap does not replay the missed ticks; bad schedules are rejected on apply
//! and skipped (not fatal) when one is stored anyway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assay_server::metrics::Metrics;
use assay_server::{LocalDispatch, Options, Queue, Server};
use assay_store::{
    DefinitionKind, ExecutionFilter, ExecutionSummary, Store, StoreConfig, TokenRole,
};
use reqwest::StatusCode;
use serde_json::Value;

/// A started server: its address, a token, and what the test needs to stop it.
struct Running {
    base: String,
    token: String,
    queue: Queue,
    metrics: Metrics,
    http: reqwest::Client,
}

async fn start(store: &Store, token_name: &str) -> Running {
    let token = store
        .create_token(token_name, TokenRole::Admin)
        .await
        .unwrap()
        .1;
    let server = Server::start(
        store.clone(),
        Options::default(),
        Arc::new(LocalDispatch::default()),
    )
    .await
    .unwrap();
    let queue = server.state.queue.clone();
    let metrics = server.state.metrics.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));
    Running {
        base,
        token,
        queue,
        metrics,
        http: reqwest::Client::new(),
    }
}

impl Running {
    async fn apply(&self, yaml: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/test-workflows", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "text/yaml")
            .body(yaml.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// Stop taking work: the scheduler stops with the queue.
    async fn stop(&self) {
        self.queue.stop(Duration::from_secs(15)).await;
    }

    /// `assay_schedule_ticks_total` of `workflow` with this outcome.
    fn ticks(&self, workflow: &str, outcome: &str) -> u64 {
        let text = self.metrics.render(0, 0);
        let workflow = format!("workflow=\"{workflow}\"");
        let outcome = format!("outcome=\"{outcome}\"");
        text.lines()
            .filter(|l| {
                l.starts_with("assay_schedule_ticks_total{")
                    && l.contains(&workflow)
                    && l.contains(&outcome)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

fn scheduled(name: &str, events: &str) -> String {
    format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {name}\nspec:\n  config:\n    greeting:\n      type: string\n      default: hello\n  events:\n{events}  steps:\n  - name: greet\n    shell: echo {{{{ config.greeting }}}}\n"
    )
}

const EVERY_SECOND: &str = "  - cronjob:\n      cron: '* * * * * *'\n";

async fn executions(store: &Store, workflow: &str) -> Vec<ExecutionSummary> {
    let mut list = store
        .list_executions(&ExecutionFilter {
            workflow: Some(workflow.into()),
            limit: Some(1000),
            ..ExecutionFilter::default()
        })
        .await
        .unwrap();
    list.sort_by_key(|e| e.scheduled_at);
    list
}

/// Wait until `workflow` has at least `n` executions (fails after a minute).
async fn wait_for_executions(store: &Store, workflow: &str, n: usize) -> Vec<ExecutionSummary> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = executions(store, workflow).await;
        if list.len() >= n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{workflow}: {} execution(s), waiting for {n}",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    Store::open(StoreConfig::new(dir.path())).await.unwrap()
}

async fn postgres_database() -> Option<String> {
    crate::support::postgres_database("t_sched").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_second_schedule_fires_with_its_config_and_says_it_was_scheduled() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let server = start(&store, "admin").await;
    let events = "  - cronjob:\n      cron: '* * * * * *'\n      timezone: Europe/Warsaw\n      config:\n        greeting: from-cron\n";
    let r = server.apply(&scheduled("ticking", events)).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );

    let list = wait_for_executions(&store, "ticking", 3).await;
    let mut ticks: Vec<i64> = list.iter().map(|e| e.scheduled_at).collect();
    ticks.dedup();
    assert_eq!(ticks.len(), list.len(), "one execution per tick: {ticks:?}");
    for e in &list {
        // scheduledAt is the tick itself: whole seconds for a per-second schedule.
        assert_eq!(e.scheduled_at % 1000, 0, "{e:?}");
    }

    // What a client sees: started by the schedule, with the event's config values.
    let first = &list[0];
    let done = loop {
        let e = server
            .get(&format!("/v1/test-workflow-executions/{}", first.id))
            .await;
        if ["passed", "failed", "aborted"].contains(&e["result"]["status"].as_str().unwrap()) {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["result"]["status"], "passed", "{done:#}");
    assert_eq!(done["runningContext"]["type"], "schedule", "{done:#}");
    assert_eq!(
        done["runningContext"]["actor"]["name"], "* * * * * * (Europe/Warsaw)",
        "{done:#}"
    );
    assert_eq!(done["runningContext"]["actor"]["type"], "cron", "{done:#}");
    assert_eq!(
        done["configParams"]["greeting"]["value"], "from-cron",
        "{done:#}"
    );
    let r = server
        .http
        .get(format!(
            "{}/v1/test-workflow-executions/{}/logs",
            server.base, first.id
        ))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("from-cron"));

    // Every claim names its execution; the counter counts the runs fired.
    let claims = store.list_schedule_ticks("ticking").await.unwrap();
    for e in &list {
        let claim = claims
            .iter()
            .find(|c| c.tick.tick_at == e.scheduled_at)
            .unwrap_or_else(|| panic!("no claim for the tick of {}", e.name));
        assert_eq!(claim.execution_id.as_deref(), Some(e.id.as_str()));
        assert_eq!(claim.tick.cron, "* * * * * * (Europe/Warsaw)");
    }
    assert!(server.ticks("ticking", "fired") >= list.len() as u64);

    // Deleted: the scheduler forgets it at its next read of the workflows.
    let r = server
        .http
        .delete(format!("{}/v1/test-workflows/ticking", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    tokio::time::sleep(assay_server::schedule::RELOAD_EVERY * 2 + Duration::from_secs(1)).await;
    let after_delete = executions(&store, "ticking").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        executions(&store, "ticking").await.len(),
        after_delete,
        "a deleted workflow still fires"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_fire_each_tick_once() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.database_url = Some(url);
    // Two handles with their own pools, as two server processes would have.
    let store_a = Store::open(config.clone()).await.unwrap();
    let store_b = Store::open(config).await.unwrap();
    let a = start(&store_a, "admin-a").await;
    let b = start(&store_b, "admin-b").await;
    let r = a.apply(&scheduled("shared", EVERY_SECOND)).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );

    wait_for_executions(&store_a, "shared", 6).await;
    a.stop().await;
    b.stop().await;
    // A fire that was under way when the schedulers stopped finishes its write.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let list = executions(&store_a, "shared").await;
    let mut per_tick: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for e in &list {
        per_tick
            .entry(e.scheduled_at)
            .or_default()
            .push(e.name.as_str());
    }
    let doubled: Vec<_> = per_tick.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "ticks fired more than once: {doubled:?}"
    );
    assert!(per_tick.len() >= 6, "{per_tick:?}");

    // Both servers reached the ticks: what one fired, the other found claimed.
    let fired = a.ticks("shared", "fired") + b.ticks("shared", "fired");
    let lost = a.ticks("shared", "claimed_elsewhere") + b.ticks("shared", "claimed_elsewhere");
    assert_eq!(fired, list.len() as u64);
    assert!(lost >= 1, "the second server never competed for a tick");
    let claims = store_b.list_schedule_ticks("shared").await.unwrap();
    assert_eq!(claims.len(), list.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_gap_does_not_replay_the_missed_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let first = start(&store, "admin-1").await;
    let r = first.apply(&scheduled("gap", EVERY_SECOND)).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    wait_for_executions(&store, "gap", 2).await;
    first.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = executions(&store, "gap").await;
    let last_tick = before.last().unwrap().scheduled_at;

    // Down for at least three ticks; nothing fires meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        executions(&store, "gap").await.len(),
        before.len(),
        "the stopped server still fired"
    );

    let restart = assay_store::now_ms();
    assert!(
        restart - last_tick >= 3000,
        "the gap must hold missed ticks"
    );
    let second = start(&sqlite_store(&dir).await, "admin-2").await;
    let after = wait_for_executions(&store, "gap", before.len() + 2).await;
    second.stop().await;

    let new: Vec<i64> = after
        .iter()
        .map(|e| e.scheduled_at)
        .filter(|t| *t > last_tick)
        .collect();
    assert!(new.len() >= 2, "{new:?}");
    let replayed: Vec<i64> = new.iter().copied().filter(|t| *t < restart).collect();
    assert!(
        replayed.is_empty(),
        "ticks from while no server ran were replayed: {replayed:?} (restart at {restart})"
    );
    // The first second after the restart holds at most one run: no burst.
    let first_window = new.iter().filter(|t| **t < restart + 1000).count();
    assert!(first_window <= 1, "{new:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_are_rejected_on_apply_and_skipped_when_stored_anyway() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let server = start(&store, "admin").await;

    let bad = scheduled(
        "bad",
        "  - cronjob:\n      cron: '61 * * * *'\n  - cronjob:\n      cron: '@hourly'\n      timezone: Mars/Olympus\n",
    );
    let r = server.apply(&bad).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    let problems = body["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 2, "{body:#}");
    assert_eq!(problems[0]["line"], 12, "{body:#}");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid cron pattern `61 * * * *`"),
        "{body:#}"
    );
    assert!(
        problems[0]["hint"].as_str().unwrap().contains("5 fields"),
        "{body:#}"
    );
    assert_eq!(problems[1]["line"], 15, "{body:#}");
    assert_eq!(
        problems[1]["message"], "unknown time zone `Mars/Olympus`",
        "{body:#}"
    );
    let r = server
        .http
        .get(format!("{}/v1/test-workflows/bad", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "nothing stored");

    // Stored behind the server's back (an older version, or by hand): the bad schedule is
    // skipped, the good one next to it fires, and the server goes on.
    let mixed = scheduled(
        "mixed",
        "  - cronjob:\n      cron: 'every minute'\n  - cronjob:\n      cron: '* * * * * *'\n",
    );
    store
        .apply(DefinitionKind::Workflow, "mixed", &mixed, &BTreeMap::new())
        .await
        .unwrap();
    wait_for_executions(&store, "mixed", 2).await;
    server.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let claims = store.list_schedule_ticks("mixed").await.unwrap();
    assert!(!claims.is_empty());
    assert!(claims.iter().all(|c| c.tick.event_index == 1), "{claims:?}");
    let health = reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}
