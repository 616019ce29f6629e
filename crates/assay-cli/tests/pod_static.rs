//! The static `assay` binary in an image without a C library, as the Kubernetes runtime's Job
//! runs it: the Job comes from `assay pod manifests`, and its two containers run for real with
//! Podman (started by scripts/test.sh, named by ASSAY_TEST_DOCKER_HOST), each with the Job's
//! command, working folder and volume mounts; the volumes are host folders shared by both, as
//! the pod's emptyDirs and Secret are. The main container's image is the workflow's: busybox,
//! which has no `/lib` and no bash, so a dynamically linked binary could not even start there.
//!
//! The binary is the one the README tells users to build for the image
//! (`RUSTFLAGS='-C target-feature=+crt-static' cargo build --target x86_64-unknown-linux-gnu`);
//! scripts/test.sh builds it (debug) and names it in ASSAY_TEST_STATIC_ASSAY. Without it (or an
//! engine) this test fails, unless ASSAY_TEST_SKIP_STATIC=1 says to skip it, loudly.
//! What stays untested: the init container's image (`assay:latest` from deploy/Containerfile
//! needs a registry for its base image), so the init container here is busybox with the
//! static binary mounted as `/bin/assay`, which is where the Containerfile puts it on `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use assay_api::agents::AgentEvent;
use assay_kube::podlog::PodLine;
use serde_json::Value;
use tempfile::TempDir;

use crate::pod_run::{PodRun, write_work};
use crate::run_support::assay;

/// The static binary and the engine's endpoint, or `None` when this test is to be skipped.
fn prerequisites() -> Option<(PathBuf, String)> {
    let static_assay = std::env::var_os("ASSAY_TEST_STATIC_ASSAY").filter(|v| !v.is_empty());
    let engine = std::env::var("ASSAY_TEST_DOCKER_HOST")
        .ok()
        .filter(|v| !v.is_empty());
    match (static_assay, engine) {
        (Some(bin), Some(engine)) => Some((PathBuf::from(bin), engine)),
        _ if std::env::var("ASSAY_TEST_SKIP_STATIC").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: the static binary in busybox (ASSAY_TEST_SKIP_STATIC=1)");
            None
        }
        _ => panic!(
            "this test needs the static assay binary (ASSAY_TEST_STATIC_ASSAY) and a Docker Engine API (ASSAY_TEST_DOCKER_HOST): run scripts/test.sh, which builds the one and starts Podman for the other, or set ASSAY_TEST_SKIP_STATIC=1 to skip it"
        ),
    }
}

const WORKFLOW: &str = r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: wf}
spec:
  container:
    image: docker.io/library/busybox:1.36.1-musl
  steps:
  - name: bare image
    shell: |
      test ! -e /lib && test ! -e /usr/lib && ! command -v bash
      echo "no C library, no bash, in $(pwd)"
  - name: report
    shell: |
      mkdir -p reports
      printf '<testsuite name="calc" tests="1" failures="0"><testcase classname="calc" name="adds"/></testsuite>' > reports/results.xml
      echo hello > reports/hello.txt
    artifacts:
      paths: ["reports/*"]
  - name: fails
    shell: exit 3
  - name: still runs
    condition: always
    shell: cat reports/hello.txt
"#;

/// The host folder standing for each of the pod's volumes, by the Job's volume name.
fn volume_dir(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join("volumes").join(name);
    std::fs::create_dir_all(&path).unwrap();
    path
}

/// `podman run` of one container of the Job: its image (or `image`), command, working folder
/// and mounts, with `extra` arguments before the image.
fn podman_run(
    engine: &str,
    dir: &Path,
    container: &Value,
    image: &str,
    extra: &[String],
) -> std::process::Output {
    let mut cmd = Command::new("podman");
    cmd.args(["--url", engine, "run", "--rm", "--network", "none"]);
    for mount in container["volumeMounts"].as_array().unwrap() {
        let host = volume_dir(dir, mount["name"].as_str().unwrap());
        let mut spec = format!(
            "{}:{}",
            host.display(),
            mount["mountPath"].as_str().unwrap()
        );
        if mount["readOnly"].as_bool() == Some(true) {
            spec.push_str(":ro");
        }
        cmd.args(["-v", &spec]);
    }
    if let Some(wd) = container["workingDir"].as_str() {
        cmd.args(["-w", wd]);
    }
    cmd.args(extra).arg(image);
    cmd.args(
        container["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap()),
    );
    cmd.output().unwrap()
}

#[test]
fn the_static_binary_runs_the_jobs_containers_in_busybox() {
    let Some((static_assay, engine)) = prerequisites() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let work = write_work(dir.path(), WORKFLOW, &[]);

    // The Job and Secret the agent would create for this work file.
    let out = assay()
        .args(["pod", "manifests", "--agent", "a1", "--work"])
        .arg(&work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "Job")
        .unwrap();
    let pod = &job["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    let main = &pod["containers"][0];
    assert_eq!(main["image"], "docker.io/library/busybox:1.36.1-musl");

    // The Secret's file, where its volume is mounted.
    std::fs::copy(&work, volume_dir(dir.path(), "work").join("work.json")).unwrap();

    // The init container copies the binary into the shared volume.
    let mounted = format!("{}:/bin/assay:ro", static_assay.display());
    let out = podman_run(
        &engine,
        dir.path(),
        init,
        "docker.io/library/busybox:1.36.1-musl",
        &["-v".into(), mounted],
    );
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(volume_dir(dir.path(), "assay-bin").join("assay").is_file());

    // The main container runs the execution; stdout is the protocol only.
    let out = podman_run(
        &engine,
        dir.path(),
        main,
        main["image"].as_str().unwrap(),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let run = PodRun::from_output(out, dir);
    assert_eq!(run.code, 1, "one step failed: {stderr}");
    let steps: BTreeMap<String, String> = run
        .events()
        .iter()
        .filter_map(|e| match e {
            AgentEvent::StepStarted {
                reference, name, ..
            } => Some((reference.clone(), name.clone())),
            _ => None,
        })
        .collect();
    // By name; the root (the execution, unnamed) is the verdict below.
    let by_name: BTreeMap<String, String> = run
        .steps()
        .into_iter()
        .map(|(reference, (status, _))| (steps[&reference].clone(), status))
        .filter(|(name, _)| !name.is_empty())
        .collect();
    assert_eq!(
        by_name,
        BTreeMap::from([
            ("bare image".to_string(), "passed".to_string()),
            ("report".into(), "passed".into()),
            ("fails".into(), "failed".into()),
            ("still runs".into(), "passed".into()),
        ]),
        "{stderr}"
    );
    let log = run.log();
    assert!(log.contains("no C library, no bash, in /data"), "{log}");
    assert_eq!(run.verdict().0, "failed");

    // The artifacts came back through stdout, byte for byte as the step wrote them into /data.
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for line in &run.lines {
        if let PodLine::Chunk(c) = line {
            files
                .entry(c.path.clone())
                .or_default()
                .extend(c.bytes().unwrap());
        }
    }
    let data = run.dir.path().join("volumes/data/reports");
    assert_eq!(files.len(), 2, "{:?}", files.keys());
    for name in ["hello.txt", "results.xml"] {
        assert_eq!(
            files[&format!("reports/{name}")],
            std::fs::read(data.join(name)).unwrap(),
            "{name}"
        );
    }
}
