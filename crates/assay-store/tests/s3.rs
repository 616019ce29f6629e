//! Logs and artifacts in S3-compatible object storage (`--artifacts s3://bucket/prefix?endpoint=…`)
//! against a real S3 HTTP server: `scripts/test.sh` starts moto (`moto_server`) on a free port and
//! names it in `ASSAY_TEST_S3_ENDPOINT`. Without that variable these tests fail, unless
//! `ASSAY_TEST_SKIP_S3=1` says to skip them on purpose. Records go to a SQLite file; the database
//! is not what is under test here.

use std::io::{Read, Write};
use std::time::Duration;

use assay_store::*;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// The moto endpoint, `None` only when skipping was asked for explicitly.
fn endpoint() -> Option<String> {
    match std::env::var("ASSAY_TEST_S3_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_string()),
        _ => {
            if std::env::var("ASSAY_TEST_SKIP_S3").as_deref() == Ok("1") {
                eprintln!("skipping the S3 tests: ASSAY_TEST_SKIP_S3=1");
                return None;
            }
            panic!(
                "ASSAY_TEST_S3_ENDPOINT is not set: start an S3 server (scripts/test.sh starts \
                 moto_server) or set ASSAY_TEST_SKIP_S3=1 to skip the S3 tests on purpose"
            );
        }
    }
}

/// Create a fresh bucket with a plain anonymous `PUT /<bucket>` (moto accepts it; object_store
/// has no call for it).
fn create_bucket(endpoint: &str) -> String {
    let bucket = format!("assay-{}", uuid::Uuid::new_v4().simple());
    let url = url::Url::parse(endpoint).expect("ASSAY_TEST_S3_ENDPOINT is a URL");
    let host = url.host_str().expect("endpoint host");
    let port = url.port_or_known_default().expect("endpoint port");
    let mut conn = std::net::TcpStream::connect((host, port))
        .unwrap_or_else(|e| panic!("connect to the S3 server at {endpoint}: {e}"));
    write!(
        conn,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "create bucket {bucket} at {endpoint}: {response}"
    );
    bucket
}

/// A store whose records are in a SQLite file and whose files are under `s3://<bucket>/ci/run`.
struct S3Env {
    store: Store,
    config: StoreConfig,
    /// Direct access to the bucket, to look at the objects the store leaves there.
    bucket: AmazonS3,
    _dir: tempfile::TempDir,
}

impl S3Env {
    async fn new() -> Option<S3Env> {
        let endpoint = endpoint()?;
        let bucket = create_bucket(&endpoint);
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path().join("data"));
        // Credentials in the URL: the test process's environment is left alone (see
        // `credentials_from_the_environment` for the `AWS_*` variables).
        config.artifacts_url = Some(format!(
            "s3://{bucket}/ci/run?endpoint={endpoint}&access_key_id=test&secret_access_key=test"
        ));
        let direct = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        Some(S3Env {
            store: Store::open(config.clone())
                .await
                .expect("open a store with S3 files"),
            config,
            bucket: direct,
            _dir: dir,
        })
    }

    async fn reopen(&self) -> Store {
        Store::open(self.config.clone()).await.unwrap()
    }

    /// Every object under `ci/run/executions/<id>`, relative to it.
    async fn objects(&self, id: &str) -> Vec<String> {
        let prefix = ObjPath::from(format!("ci/run/executions/{id}"));
        let mut names: Vec<String> = self
            .bucket
            .list(Some(&prefix))
            .map_ok(|m| {
                m.location
                    .as_ref()
                    .strip_prefix(&format!("{prefix}/"))
                    .unwrap()
                    .to_string()
            })
            .try_collect()
            .await
            .unwrap();
        names.sort();
        names
    }
}

fn new_exec(workflow: &str) -> NewExecution {
    NewExecution {
        workflow: workflow.into(),
        definition: format!("kind: TestWorkflow\nmetadata:\n  name: {workflow}\n"),
        ..Default::default()
    }
}

async fn finish(store: &Store, id: &str) {
    store
        .finish_execution(
            id,
            Finish {
                status: ExecutionStatus::Passed,
                error_message: None,
                at: now_ms(),
            },
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_stream_in_parts_and_back() {
    let Some(env) = S3Env::new().await else {
        return;
    };
    let s = &env.store;
    let e = s.create_execution(new_exec("art")).await.unwrap();
    let big = env._dir.path().join("big.bin");
    // 20 MiB: three parts of the 8 MiB multipart upload.
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
        list.iter()
            .map(|a| (a.path.as_str(), a.size))
            .collect::<Vec<_>>(),
        [("dir/big.bin", data.len() as u64), ("small.txt", 2)]
    );
    assert_eq!(
        env.objects(&e.id).await,
        ["artifacts/dir/big.bin", "artifacts/small.txt"]
    );

    // Download through a second handle.
    let other = env.reopen().await;
    let dl = other.open_artifact(&e.id, "dir/big.bin").await.unwrap();
    assert_eq!(dl.size, data.len() as u64);
    let mut got = Vec::with_capacity(data.len());
    let mut stream = dl.stream;
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == data, "the downloaded artifact differs");
    let err = other.open_artifact(&e.id, "missing.txt").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_chunked_followed_and_packed() {
    let Some(env) = S3Env::new().await else {
        return;
    };
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
                StepResult::new("a x", 1, StepStatus::Queued),
            ],
        )
        .await
        .unwrap();
    let mut w = writer_store.log_writer(&e.id, "b").await.unwrap();
    for i in 0..1000 {
        w.append(1_000 + i, &format!("first {i}")).await.unwrap();
    }
    w.flush().await.unwrap();

    // Replay from the other handle while running.
    let replayed = reader_store
        .log_reader(&e.id, "b", 0)
        .read_available()
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1000);
    assert_eq!(replayed[999].text, "first 999");
    let resume_at = replayed[499].offset;
    // Bounded: up to a line end inside a chunk object, and not one byte further.
    let mut bounded = reader_store.log_reader(&e.id, "b", resume_at);
    let upto = bounded.read_until(replayed[899].offset).await.unwrap();
    assert_eq!(upto, replayed[500..900]);
    assert_eq!(bounded.offset(), replayed[899].offset);
    assert!(
        bounded
            .read_until(replayed[899].offset)
            .await
            .unwrap()
            .is_empty()
    );

    // Follow from the other handle while the writer goes on in several chunks.
    let follower = tokio::spawn({
        let store = reader_store.clone();
        let id = e.id.clone();
        async move {
            let mut lines = Vec::new();
            let mut stream = Box::pin(store.follow_logs(&id, None, Duration::from_millis(50)));
            while let Some(batch) = stream.next().await {
                lines.extend(batch.unwrap());
            }
            lines
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..500 {
        w.append(5_000 + i, &format!("second {i}")).await.unwrap();
        if i % 100 == 99 {
            w.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    // A chunk larger than the 4 MiB upload buffer, written while the follower runs.
    let long = "y".repeat(1000);
    for i in 0..5000 {
        w.append(8_000 + i, &long).await.unwrap();
    }
    w.append_bytes(9_000_000, b"multi\nline").await.unwrap();
    w.finish().await.unwrap();

    let chunks: Vec<String> = env
        .objects(&e.id)
        .await
        .into_iter()
        .filter(|o| o.starts_with("logs/b/") && o.ends_with(".chunk"))
        .collect();
    assert!(
        chunks.len() >= 7,
        "the log is stored in chunk objects while running: {chunks:?}"
    );

    let mut w2 = writer_store.log_writer(&e.id, "a x").await.unwrap();
    w2.append(10_000_000, "from a").await.unwrap();
    w2.finish().await.unwrap();
    finish(&writer_store, &e.id).await;

    let followed = tokio::time::timeout(Duration::from_secs(60), follower)
        .await
        .expect("the follower ends with the execution")
        .unwrap();
    let texts: Vec<&str> = followed
        .iter()
        .filter(|l| l.step == "b")
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(
        texts.len(),
        1000 + 500 + 5000 + 2,
        "every line exactly once"
    );
    assert_eq!(texts[0], "first 0");
    assert_eq!(texts[1000], "second 0");
    assert_eq!(&texts[6500..], ["multi", "line"]);
    let from_a: Vec<&LogLine> = followed.iter().filter(|l| l.step != "b").collect();
    assert!(
        from_a.len() == 1 && from_a[0].step == "a x" && from_a[0].text == "from a",
        "{from_a:?}"
    );

    // Merged into one compressed object per step; the chunks are gone. (object_store keeps the
    // `~` of the encoded step name `a~20x` escaped in the key.)
    assert_eq!(
        env.objects(&e.id).await,
        ["logs/a%7E20x.log.zst", "logs/b.log.zst"]
    );
    let packed = env
        .bucket
        .get(&ObjPath::from(format!(
            "ci/run/executions/{}/logs/b.log.zst",
            e.id
        )))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let raw = zstd::decode_all(&packed[..]).unwrap();
    assert!(
        packed.len() * 20 < raw.len(),
        "compressed: {} of {} bytes",
        packed.len(),
        raw.len()
    );

    // Read back from the start, from an offset, and from a third handle.
    let third = env.reopen().await;
    let all = third.read_logs(&e.id, None).await.unwrap();
    assert_eq!(all.len(), 6503);
    assert_eq!(all[0].step, "b", "plan order: b before `a x`");
    assert_eq!(all[6502].text, "from a");
    assert_eq!(all[6501].offset, raw.len() as u64);
    let resumed = third
        .log_reader(&e.id, "b", resume_at)
        .read_to_end()
        .await
        .unwrap();
    assert_eq!(resumed[0].text, "first 500");
    assert_eq!(resumed.len(), 6002);
    // Bounded, across the packed object, a megabyte at a time.
    let mut bounded = third.log_reader(&e.id, "b", resume_at);
    let mut upto = Vec::new();
    loop {
        let batch = bounded.read_until(all[6000].offset).await.unwrap();
        if batch.is_empty() {
            break;
        }
        upto.extend(batch);
    }
    assert_eq!(upto, all[500..6001]);
    assert_eq!(third.log_steps(&e.id).await.unwrap(), ["a x", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_the_objects() {
    let Some(env) = S3Env::new().await else {
        return;
    };
    let s = &env.store;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let e = s.create_execution(new_exec("p")).await.unwrap();
        let mut w = s.log_writer(&e.id, "s").await.unwrap();
        w.append(now_ms(), "x").await.unwrap();
        w.finish().await.unwrap();
        s.put_artifact(&e.id, None, "a.txt", None, bytes::Bytes::from_static(b"a"))
            .await
            .unwrap();
        finish(s, &e.id).await;
        assert_eq!(
            env.objects(&e.id).await,
            ["artifacts/a.txt", "logs/s.log.zst"]
        );
        ids.push(e.id);
    }
    let report = s.prune(None, Some(1)).await.unwrap();
    assert_eq!(report.executions, 2);
    for id in &ids[..2] {
        assert_eq!(env.objects(id).await, Vec::<String>::new(), "{id}");
        assert!(s.read_logs(id, Some("s")).await.unwrap().is_empty());
    }
    assert_eq!(
        env.objects(&ids[2]).await,
        ["artifacts/a.txt", "logs/s.log.zst"]
    );
    assert_eq!(s.read_logs(&ids[2], Some("s")).await.unwrap().len(), 1);
}

/// Credentials and region from the usual `AWS_*` variables when the URL has none. The
/// environment is set for a child process (the test binary again), never in this one.
#[test]
fn credentials_from_the_environment() {
    if std::env::var_os("ASSAY_TEST_S3_CHILD").is_some() {
        return;
    }
    let Some(endpoint) = endpoint() else { return };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "s3::env_credentials_child", "--nocapture"])
        .env("ASSAY_TEST_S3_CHILD", "1")
        .env("ASSAY_TEST_S3_ENDPOINT", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "from-env")
        .env("AWS_SECRET_ACCESS_KEY", "from-env-secret")
        .env("AWS_REGION", "eu-west-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn env_credentials_child() {
    if std::env::var_os("ASSAY_TEST_S3_CHILD").is_none() {
        return;
    }
    let endpoint = endpoint().unwrap();
    let bucket = create_bucket(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("data"));
    config.artifacts_url = Some(format!("s3://{bucket}/p?endpoint={endpoint}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = Store::open(config).await.unwrap();
        let e = s.create_execution(new_exec("env")).await.unwrap();
        s.put_artifact(&e.id, None, "a.txt", None, bytes::Bytes::from_static(b"a"))
            .await
            .unwrap();
        let dl = s.open_artifact(&e.id, "a.txt").await.unwrap();
        let got: Vec<bytes::Bytes> = dl.stream.try_collect().await.unwrap();
        assert_eq!(got.concat(), b"a");
    });
}
