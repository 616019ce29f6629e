//! A full disk: the data dir on a 2 MiB tmpfs. Writing logs and artifacts until the disk is
//! full gives errors naming the location, and what was stored before stays readable.
//!
//! Mounting needs root (CI runs as root). Not as root the test fails, unless
//! `ASSAY_TEST_SKIP_ROOT=1` says to skip it on purpose.

use std::path::{Path, PathBuf};
use std::process::Command;

use assay_store::*;
use futures::TryStreamExt;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A tmpfs mounted on a temp dir, unmounted on drop (also when the test panics).
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs -o size={size} tmpfs {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir,
            _parent: parent,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file still open (a panicking test's store) does not keep the mount alive.
        let ok = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("could not unmount the tmpfs at {}", self.dir.display());
        }
    }
}

fn new_exec(workflow: &str) -> NewExecution {
    NewExecution {
        workflow: workflow.into(),
        definition: format!("kind: TestWorkflow\nmetadata:\n  name: {workflow}\n"),
        ..Default::default()
    }
}

fn names(err: &StoreError, dir: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.display().to_string()),
        "the error names the location {}: {msg}",
        dir.display()
    );
}

async fn artifact_text(store: &Store, id: &str, path: &str) -> Vec<u8> {
    let dl = store.open_artifact(id, path).await.unwrap();
    let parts: Vec<bytes::Bytes> = dl.stream.try_collect().await.unwrap();
    parts.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_an_error_naming_the_location_and_keeps_what_was_stored() {
    if !is_root() {
        if std::env::var("ASSAY_TEST_SKIP_ROOT").as_deref() == Ok("1") {
            eprintln!("skipping the full-disk test: not root and ASSAY_TEST_SKIP_ROOT=1");
            return;
        }
        panic!(
            "the full-disk test mounts a tmpfs and needs root (CI runs as root); \
             set ASSAY_TEST_SKIP_ROOT=1 to skip it on purpose"
        );
    }
    let disk = Tmpfs::mount("2M");
    let data = disk.dir.clone();
    // Space that "the user" frees at the end, after the store filled the disk.
    let ballast = data.join("ballast");
    std::fs::write(&ballast, vec![0u8; 256 * 1024]).unwrap();
    let store = Store::open(StoreConfig::new(&data))
        .await
        .expect("open a store on the tmpfs");

    // An execution that ends before the disk fills.
    let done = store.create_execution(new_exec("before")).await.unwrap();
    store.start_execution(&done.id, now_ms()).await.unwrap();
    store
        .record_steps(&done.id, &[StepResult::new("s", 0, StepStatus::Passed)])
        .await
        .unwrap();
    let mut w = store.log_writer(&done.id, "s").await.unwrap();
    for i in 0..100 {
        w.append(1_000 + i, &format!("before {i}")).await.unwrap();
    }
    w.finish().await.unwrap();
    store
        .put_artifact(
            &done.id,
            Some("s"),
            "report.txt",
            None,
            bytes::Bytes::from_static(b"kept"),
        )
        .await
        .unwrap();
    store
        .finish_execution(
            &done.id,
            Finish {
                status: ExecutionStatus::Passed,
                error_message: None,
                at: now_ms(),
            },
        )
        .await
        .unwrap();

    // A running execution fills the disk: first with artifacts, then with its log.
    let running = store.create_execution(new_exec("filling")).await.unwrap();
    store.start_execution(&running.id, now_ms()).await.unwrap();
    let mut w = store.log_writer(&running.id, "fill").await.unwrap();
    for i in 0..10 {
        w.append(2_000 + i, &format!("early {i}")).await.unwrap();
    }
    w.flush().await.unwrap();

    let chunk = bytes::Bytes::from(vec![b'a'; 256 * 1024]);
    let mut stored = 0;
    let artifact_err = loop {
        assert!(stored < 64, "16 MiB of artifacts fit on a 2 MiB disk");
        match store
            .put_artifact(
                &running.id,
                None,
                &format!("blob-{stored}.bin"),
                None,
                chunk.clone(),
            )
            .await
        {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    eprintln!("artifact error: {artifact_err}");
    names(&artifact_err, &data);
    let artifacts = data
        .join("files/executions")
        .join(&running.id)
        .join("artifacts");
    let mut files: Vec<String> = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = (0..stored).map(|i| format!("blob-{i}.bin")).collect();
    expected.sort();
    assert_eq!(files, expected, "no partial artifact is left behind");

    let line = "x".repeat(1000);
    let mut appended = 0;
    let log_err = loop {
        assert!(appended < 20_000, "20 MB of log fit on a 2 MiB disk");
        if let Err(e) = w.append(3_000 + appended, &line).await {
            break e;
        }
        appended += 1;
        if appended % 50 == 0
            && let Err(e) = w.flush().await
        {
            break e;
        }
    };
    eprintln!("log error: {log_err}");
    names(&log_err, &data);
    drop(w);

    // What was stored before is still there, through this handle and a new one.
    for s in [
        store.clone(),
        Store::open(StoreConfig::new(&data)).await.unwrap(),
    ] {
        let got = s
            .find_execution(&ExecutionRef::Id(done.id.clone()))
            .await
            .unwrap();
        assert_eq!(got.status, ExecutionStatus::Passed);
        let lines = s.read_logs(&done.id, Some("s")).await.unwrap();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[99].text, "before 99");
        assert_eq!(artifact_text(&s, &done.id, "report.txt").await, b"kept");
        assert_eq!(s.list_artifacts(&done.id).await.unwrap().len(), 1);

        let got = s
            .find_execution(&ExecutionRef::Id(running.id.clone()))
            .await
            .unwrap();
        assert_eq!(got.status, ExecutionStatus::Running);
        let early = s
            .log_reader(&running.id, "fill", 0)
            .read_available()
            .await
            .unwrap();
        assert!(early.len() >= 10, "{} lines", early.len());
        assert_eq!(early[9].text, "early 9");
        assert_eq!(
            s.list_artifacts(&running.id).await.unwrap().len(),
            stored,
            "a failed artifact leaves no record"
        );
    }

    // Ending the execution on the full disk fails with an error naming the location (the
    // compressed log or the database), and leaves no partial compressed log behind.
    let end = || {
        store.finish_execution(
            &running.id,
            Finish {
                status: ExecutionStatus::Failed,
                error_message: Some("disk full".into()),
                at: now_ms(),
            },
        )
    };
    let err = end().await.expect_err("the disk is full");
    eprintln!("finish error: {err}");
    names(&err, &data);
    let logs = data.join("files/executions").join(&running.id).join("logs");
    assert!(logs.join("fill.log").exists(), "the raw log is kept");
    assert!(
        !logs.join("fill.log.zst.tmp").exists(),
        "the partial compressed log is removed"
    );
    let got = store
        .find_execution(&ExecutionRef::Id(running.id.clone()))
        .await
        .unwrap();
    assert_eq!(got.status, ExecutionStatus::Running);

    // Once there is space again, the end is recorded and the log compressed and readable.
    std::fs::remove_file(&ballast).unwrap();
    end().await.expect("record the end once there is space");
    let got = store
        .find_execution(&ExecutionRef::Id(running.id.clone()))
        .await
        .unwrap();
    assert_eq!(got.status, ExecutionStatus::Failed);
    assert!(logs.join("fill.log.zst").exists() && !logs.join("fill.log").exists());
    let lines = store.read_logs(&running.id, Some("fill")).await.unwrap();
    assert_eq!(lines[9].text, "early 9");
    assert!(lines.len() >= 10, "{} lines", lines.len());
    let lines = store.read_logs(&done.id, Some("s")).await.unwrap();
    assert_eq!(lines.len(), 100);
    store.close().await;
}
