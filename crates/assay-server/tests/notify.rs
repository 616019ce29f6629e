//! Live notifications shared by many followers (one poller per execution on the server), over
//! real HTTP with a real workflow writing thousands of lines in two steps: every follower gets
//! every line exactly once and in order, whether it connects first, mid-run or after the end,
//! and a follower that drops and resumes with `Last-Event-ID` gets exactly the rest.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use support::TestServer;

const LINES: usize = 2000;

/// Two logging steps (`first`, `second`) of [`LINES`] lines each, written in bursts; each
/// starts when the test creates its gate file (or the run ends when the test's folder is gone).
fn workflow(dir: &Path) -> (String, PathBuf, PathBuf) {
    let gate1 = dir.join("gate-first");
    let gate2 = dir.join("gate-second");
    let emit = |name: &str| {
        format!(
            "for i in $(seq 1 {LINES}); do echo \"{name} $i\"; if [ $((i % 100)) = 0 ]; then sleep 0.05; fi; done"
        )
    };
    let yaml = format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: fan\nspec:\n  steps:\n  - name: wait\n    shell: 'while [ ! -e {g1} ] && [ -d {d} ]; do sleep 0.02; done'\n  - name: first\n    shell: '{first}'\n  - name: gate\n    shell: 'while [ ! -e {g2} ] && [ -d {d} ]; do sleep 0.02; done'\n  - name: second\n    shell: '{second}'\n",
        g1 = gate1.display(),
        g2 = gate2.display(),
        d = dir.display(),
        first = emit("first"),
        second = emit("second"),
    );
    (yaml, gate1, gate2)
}

/// Start the two-step workflow; its steps wait for the gates.
async fn run(s: &TestServer, dir: &Path) -> (String, PathBuf, PathBuf) {
    let (yaml, gate1, gate2) = workflow(dir);
    assert_eq!(
        s.post_yaml("/v1/test-workflows", &yaml).await.status(),
        StatusCode::CREATED
    );
    let r = s
        .http
        .post(s.url("/v1/test-workflows/fan/executions"))
        .bearer_auth(&s.admin)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let e: Value = r.json().await.unwrap();
    (e["id"].as_str().unwrap().to_string(), gate1, gate2)
}

/// One SSE event as received.
#[derive(Debug, Clone)]
struct Event {
    kind: String,
    id: Option<String>,
    data: Value,
}

/// A notification stream being read.
struct Follower {
    body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buf: Vec<u8>,
    ended: bool,
    /// Log lines received: (step ref, text, event id).
    lines: Vec<(String, String, String)>,
    results: Vec<Value>,
}

impl Follower {
    async fn connect(s: &TestServer, id: &str, last_id: Option<&str>) -> Follower {
        let mut req = s
            .http
            .get(s.url(&format!("/v1/test-workflow-executions/{id}/notifications")))
            .bearer_auth(&s.admin);
        if let Some(last) = last_id {
            req = req.header("last-event-id", last);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        Follower {
            body: r.bytes_stream().boxed(),
            buf: Vec::new(),
            ended: false,
            lines: Vec::new(),
            results: Vec::new(),
        }
    }

    /// The next event; `None` when the stream ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let block = String::from_utf8(block).expect("UTF-8 events");
                let (mut kind, mut id, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        kind = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        assert!(data.is_none(), "one data line per event: {block}");
                        data = Some(serde_json::from_str(v).expect("JSON data"));
                    } else {
                        assert!(
                            line.is_empty() || line.starts_with(':'),
                            "unexpected line {line:?}"
                        );
                    }
                }
                let Some(kind) = kind else {
                    continue; // a keep-alive comment
                };
                let event = Event {
                    kind,
                    id,
                    data: data.expect("every event has data"),
                };
                match event.kind.as_str() {
                    "log" => self.lines.push((
                        event.data["ref"].as_str().unwrap().to_string(),
                        event.data["log"].as_str().unwrap().to_string(),
                        event.id.clone().expect("log events have ids"),
                    )),
                    "result" => self.results.push(event.data["result"].clone()),
                    other => panic!("unexpected event {other}: {:?}", event.data),
                }
                return Some(event);
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk.unwrap()),
                None => {
                    assert!(self.buf.is_empty(), "a cut event at the end");
                    self.ended = true;
                    return None;
                }
            }
        }
    }

    /// Read until the stream ends.
    async fn read_all(mut self) -> Follower {
        while self.next().await.is_some() {}
        self
    }

    /// Read until `n` log lines arrived in total (failing, not hanging, when they do not come).
    async fn until_lines(&mut self, n: usize) {
        let read = async {
            while self.lines.len() < n {
                self.next().await.expect("the stream goes on");
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(60), read)
            .await
            .is_err()
        {
            panic!("{} lines of {n} came in a minute", self.lines.len());
        }
    }

    fn last_id(&self) -> String {
        self.lines.last().unwrap().2.clone()
    }
}

/// Offsets of an event id `SEQ;REF=OFFSET…`, checking that SEQ is their sum.
fn offsets(id: &str) -> BTreeMap<String, u64> {
    let mut parts = id.split(';');
    let seq: u64 = parts.next().unwrap().parse().unwrap();
    let offsets: BTreeMap<String, u64> = parts
        .map(|p| {
            let (step, offset) = p.rsplit_once('=').unwrap();
            (step.to_string(), offset.parse().unwrap())
        })
        .collect();
    assert_eq!(seq, offsets.values().sum::<u64>(), "{id}");
    offsets
}

/// The stored log, per step ref, in order.
async fn stored(s: &TestServer, id: &str) -> BTreeMap<String, Vec<String>> {
    let mut steps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in s.store.read_logs(id, None).await.unwrap() {
        steps.entry(line.step).or_default().push(line.text);
    }
    steps
}

/// `lines` are exactly the stored log (each step's lines once, in order), with ids that grow
/// line by line and name the step's offset reached; the stream ended with the final result.
fn assert_complete(
    who: &str,
    lines: &[(String, String, String)],
    results: &[Value],
    expected: &BTreeMap<String, Vec<String>>,
) {
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for (step, text, id) in lines {
        got.entry(step.clone()).or_default().push(text.clone());
        let now = offsets(id);
        assert!(
            now.get(step) > last.get(step),
            "{who}: the id of {step} grows"
        );
        for (s, o) in &last {
            assert!(now.get(s) >= Some(o), "{who}: ids never go back: {id}");
        }
        last = now;
    }
    for (step, want) in expected {
        let have = got.get(step).map(Vec::as_slice).unwrap_or_default();
        if have != want.as_slice() {
            let first_diff = have.iter().zip(want).position(|(a, b)| a != b);
            panic!(
                "{who}: step {step}: {} lines received, {} stored; first difference at {first_diff:?}",
                have.len(),
                want.len()
            );
        }
    }
    assert_eq!(got.len(), expected.len(), "{who}: no line of another step");
    assert_eq!(
        results.last().map(|r| r["status"].clone()),
        Some(Value::from("passed")),
        "{who}: ends with the final result"
    );
}

fn numbered(step: &BTreeMap<String, Vec<String>>, name: &str) {
    let want: Vec<String> = (1..=LINES).map(|i| format!("{name} {i}")).collect();
    assert!(
        step.values().any(|lines| *lines == want),
        "a step logged {name} 1..{LINES}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_followers_get_every_line_once_in_order() {
    let s = support::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (id, gate1, gate2) = run(&s, dir.path()).await;

    let mut followers = Vec::new();
    for _ in 0..20 {
        followers.push(Follower::connect(&s, &id, None).await);
    }
    let tasks: Vec<_> = followers
        .into_iter()
        .map(|f| tokio::spawn(f.read_all()))
        .collect();
    std::fs::write(&gate1, b"go").unwrap();
    std::fs::write(&gate2, b"go").unwrap();
    let done = s.wait_status(&id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");

    let expected = stored(&s, &id).await;
    numbered(&expected, "first");
    numbered(&expected, "second");
    for (i, task) in tasks.into_iter().enumerate() {
        let f = task.await.unwrap();
        assert_complete(&format!("follower {i}"), &f.lines, &f.results, &expected);
    }

    // A late follower replays everything, then the stream ends.
    let late = Follower::connect(&s, &id, None).await.read_all().await;
    assert_complete("late follower", &late.lines, &late.results, &expected);
    // Ids name positions: the same line has the same id for everyone.
    let again = Follower::connect(&s, &id, None).await.read_all().await;
    assert_eq!(late.lines, again.lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_and_join_mid_run_while_others_follow() {
    let s = support::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (id, gate1, gate2) = run(&s, dir.path()).await;

    let others: Vec<Follower> = futures::future::join_all((0..3).map(|_| {
        let s = &s;
        let id = id.clone();
        async move { Follower::connect(s, &id, None).await }
    }))
    .await;
    let others: Vec<_> = others
        .into_iter()
        .map(|f| tokio::spawn(f.read_all()))
        .collect();
    let mut quitter = Follower::connect(&s, &id, None).await;
    std::fs::write(&gate1, b"go").unwrap();

    // Drop the connection mid-stream, then resume with the last id seen.
    quitter.until_lines(LINES / 2).await;
    let before = std::mem::take(&mut quitter.lines);
    let last = before.last().unwrap().2.clone();
    drop(quitter);
    let resumed = Follower::connect(&s, &id, Some(&last)).await;
    let resumed = tokio::spawn(resumed.read_all());

    // Join mid-run: `first` has ended, `second` waits for its gate.
    let first_done = loop {
        let steps = stored(&s, &id).await;
        if steps.values().any(|l| l.len() == LINES) {
            break steps;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let mut middle = Follower::connect(&s, &id, None).await;
    middle
        .until_lines(first_done.values().map(Vec::len).sum())
        .await;
    let middle = tokio::spawn(middle.read_all());
    std::fs::write(&gate2, b"go").unwrap();

    let done = s.wait_status(&id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    let expected = stored(&s, &id).await;
    numbered(&expected, "first");
    numbered(&expected, "second");

    let resumed = resumed.await.unwrap();
    let mut all = before.clone();
    all.extend(resumed.lines.iter().cloned());
    assert_complete("resumed follower", &all, &resumed.results, &expected);
    let middle = middle.await.unwrap();
    assert_complete(
        "mid-run follower",
        &middle.lines,
        &middle.results,
        &expected,
    );
    for (i, f) in others.into_iter().enumerate() {
        let f = f.await.unwrap();
        assert_complete(&format!("follower {i}"), &f.lines, &f.results, &expected);
    }
}

/// A lone follower drops and resumes: its hub is gone, a new one starts from the beginning of
/// the log, behind the follower, which skips what it already has.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lone_follower_resumes_ahead_of_a_new_poller() {
    let s = support::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (id, gate1, gate2) = run(&s, dir.path()).await;
    let mut f = Follower::connect(&s, &id, None).await;
    std::fs::write(&gate1, b"go").unwrap();
    std::fs::write(&gate2, b"go").unwrap();
    f.until_lines(LINES / 2).await;
    let mut all = std::mem::take(&mut f.lines);
    drop(f);
    // Its stream notices on its next write, and the hub then has no follower left and stops:
    // leave time for that, so that the next connection starts a new hub (not a condition of
    // the assertions, which hold either way; it makes this test take the "ahead" path).
    let settle = std::time::Duration::from_millis(500);
    tokio::time::sleep(settle).await;
    let mut pieces = 1;
    // Drop again and again while it runs, then read to the end.
    loop {
        let mut f = Follower::connect(&s, &id, Some(&all.last().unwrap().2)).await;
        pieces += 1;
        let target = all.len() + 300;
        while f.lines.len() + all.len() < target {
            if f.next().await.is_none() {
                break;
            }
        }
        let ended = f.results.iter().any(|r| r["status"] == "passed");
        if ended || pieces > 8 {
            let f = f.read_all().await;
            all.extend(f.lines.iter().cloned());
            s.wait_status(&id, &["passed"]).await;
            let expected = stored(&s, &id).await;
            numbered(&expected, "first");
            numbered(&expected, "second");
            assert_complete("resumed follower", &all, &f.results, &expected);
            break;
        }
        all.extend(f.lines.iter().cloned());
        drop(f);
        tokio::time::sleep(settle).await;
    }
}

/// A follower resuming after the end of the run gets exactly the lines after its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_after_the_end() {
    let s = support::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (id, gate1, gate2) = run(&s, dir.path()).await;
    std::fs::write(&gate1, b"go").unwrap();
    std::fs::write(&gate2, b"go").unwrap();
    s.wait_status(&id, &["passed"]).await;
    let expected = stored(&s, &id).await;
    let full = Follower::connect(&s, &id, None).await.read_all().await;
    assert_complete("full", &full.lines, &full.results, &expected);
    for cut in [1, LINES - 1, LINES, LINES + 1, 2 * LINES - 1] {
        let rest = Follower::connect(&s, &id, Some(&full.lines[cut - 1].2))
            .await
            .read_all()
            .await;
        assert_eq!(rest.lines, full.lines[cut..], "resumed after line {cut}");
        assert_eq!(rest.results.last().unwrap()["status"], "passed");
    }
    let none = Follower::connect(&s, &id, Some(&full.last_id()))
        .await
        .read_all()
        .await;
    assert!(none.lines.is_empty());
    assert_eq!(none.results.len(), 1, "the result again, as state");
}

/// Read until the stream ends, failing (not hanging) when it does not end: a server that
/// only looks at the store when signalled ends a stream only if the writes woke it.
async fn read_to_end(f: Follower, who: &str) -> Follower {
    match tokio::time::timeout(std::time::Duration::from_secs(120), f.read_all()).await {
        Ok(f) => f,
        Err(_) => panic!("{who}: the stream did not end: the run's writes did not wake its hub"),
    }
}

/// The runner's writes wake the followers' hub in the same process: with polling off, every
/// follower still gets every line once, in order, the results and the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_are_woken_by_the_runs_writes() {
    let s = support::start_signals_only().await;
    let dir = tempfile::tempdir().unwrap();
    let (id, gate1, gate2) = run(&s, dir.path()).await;
    let mut followers = Vec::new();
    for _ in 0..5 {
        followers.push(Follower::connect(&s, &id, None).await);
    }
    let tasks: Vec<_> = followers
        .into_iter()
        .enumerate()
        .map(|(i, f)| tokio::spawn(async move { read_to_end(f, &format!("follower {i}")).await }))
        .collect();
    std::fs::write(&gate1, b"go").unwrap();
    std::fs::write(&gate2, b"go").unwrap();
    s.wait_status(&id, &["passed"]).await;
    let expected = stored(&s, &id).await;
    numbered(&expected, "first");
    numbered(&expected, "second");
    for (i, task) in tasks.into_iter().enumerate() {
        let f = task.await.unwrap();
        assert_complete(&format!("follower {i}"), &f.lines, &f.results, &expected);
    }
}

/// Two servers on one PostgreSQL (and one data dir), neither polling: a run on server A wakes
/// the followers on server B through LISTEN/NOTIFY. Each gets every line once and in order
/// and the end; a follower that read half of the stream on A resumes on B with its
/// `Last-Event-ID` and gets exactly the rest; a follower on B gets the lines of the first step
/// while the run still waits at its second gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_on_another_server_are_woken_through_postgres() {
    let Some(url) = support::postgres_database("t_live").await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut config = assay_store::StoreConfig::new(data.path());
    config.database_url = Some(url);
    // Two handles with their own pools, as two server processes would have.
    let store_a = assay_store::Store::open(config.clone()).await.unwrap();
    let store_b = assay_store::Store::open(config).await.unwrap();
    let data = std::sync::Arc::new(data);
    let a = support::serve_signals_only(store_a, "admin-a", data.clone()).await;
    let b = support::serve_signals_only(store_b, "admin-b", data).await;

    let gates = tempfile::tempdir().unwrap();
    let (id, gate1, gate2) = run(&a, gates.path()).await;
    let on_b: Vec<_> = futures::future::join_all((0..3).map(|_| Follower::connect(&b, &id, None)))
        .await
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            tokio::spawn(async move { read_to_end(f, &format!("follower {i} on B")).await })
        })
        .collect();
    let mut early = Follower::connect(&b, &id, None).await;
    let mut mover = Follower::connect(&a, &id, None).await;
    std::fs::write(&gate1, b"go").unwrap();
    mover.until_lines(LINES / 2).await;
    let mut moved = std::mem::take(&mut mover.lines);
    drop(mover);
    let resumed = Follower::connect(&b, &id, Some(&moved.last().unwrap().2)).await;
    let resumed = tokio::spawn(read_to_end(resumed, "follower resumed on B"));
    // Promptly, not only at the end: the whole first step reaches a follower on B that
    // connected before it began, while the run still waits at its second gate.
    // (In signals-only mode nothing else would bring them: this fails after a minute.)
    early.until_lines(LINES).await;
    let early = tokio::spawn(read_to_end(early, "early follower on B"));
    std::fs::write(&gate2, b"go").unwrap();

    a.wait_status(&id, &["passed", "failed", "aborted"]).await;
    let expected = stored(&a, &id).await;
    numbered(&expected, "first");
    numbered(&expected, "second");
    for (i, task) in on_b.into_iter().enumerate() {
        let f = task.await.unwrap();
        assert_complete(
            &format!("follower {i} on B"),
            &f.lines,
            &f.results,
            &expected,
        );
    }
    let early = early.await.unwrap();
    assert_complete(
        "early follower on B",
        &early.lines,
        &early.results,
        &expected,
    );
    let resumed = resumed.await.unwrap();
    moved.extend(resumed.lines.iter().cloned());
    assert_complete(
        "follower moved from A to B",
        &moved,
        &resumed.results,
        &expected,
    );
}

/// A follower that stops reading (a stalled client) does not hold the others back and loses
/// nothing: while it reads nothing, another follower gets the whole run (tens of megabytes,
/// far beyond every buffer between the hub and the stalled client) and its end; then the
/// stalled one reads and gets every line once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_follower_neither_blocks_others_nor_loses_lines() {
    const BIG: usize = 20_000;
    let s = support::start_signals_only().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let yaml = format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: big\nspec:\n  steps:\n  - name: wait\n    shell: 'while [ ! -e {g} ] && [ -d {d} ]; do sleep 0.02; done'\n  - name: big\n    shell: 'for i in $(seq 1 {BIG}); do printf \"%s %01000d\\n\" $i 0; done'\n",
        g = gate.display(),
        d = dir.path().display(),
    );
    assert_eq!(
        s.post_yaml("/v1/test-workflows", &yaml).await.status(),
        StatusCode::CREATED
    );
    let id = s.run("big", serde_json::json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stalled = Follower::connect(&s, &id, None).await;
    let reader = Follower::connect(&s, &id, None).await;
    std::fs::write(&gate, b"go").unwrap();
    let reader = read_to_end(reader, "the reading follower").await;
    s.wait_status(&id, &["passed"]).await;
    let expected = stored(&s, &id).await;
    let lines: usize = expected.values().map(Vec::len).sum();
    assert_eq!(lines, BIG);
    assert_complete(
        "the reading follower",
        &reader.lines,
        &reader.results,
        &expected,
    );
    let stalled = read_to_end(stalled, "the stalled follower").await;
    assert_complete(
        "the stalled follower",
        &stalled.lines,
        &stalled.results,
        &expected,
    );
}
