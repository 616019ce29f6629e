//! The Job and Secret the Kubernetes runtime makes for an execution (`assay pod manifests`
//! prints what an agent would create): their shape (one pod, the init container copying the
//! binary, `/data`, the Secret owned by the Job, labels for the sweep; a Job and Secret per
//! service instance known before the run, with the service's own image and its `exec` probe
//! as the container's `readinessProbe`), the workflow's `pod`,
//! `job`, `pvcs`, `resources`, `securityContext` and `serviceAccountName` applied, refusals
//! with hints, and every generated document validated against Kubernetes' published OpenAPI
//! schemas for one version with `kubernetes-validate` (pod_manifests_check.py). No API server
//! takes them here: that is the only check against Kubernetes itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_support::assay;

/// The version deploy.rs validates the shipped manifests against too.
const K8S_VERSION: &str = "1.32.0";

/// `assay pod manifests` for the work file of `yaml` with these sensitive values.
fn manifests(dir: &Path, yaml: &str, secrets: &[(&str, &str)]) -> std::process::Output {
    let work = crate::pod_run::write_work(dir, yaml, secrets);
    assay()
        .args([
            "pod",
            "manifests",
            "--agent",
            "k8s agent/1",
            "--namespace",
            "tests",
        ])
        .arg("--work")
        .arg(&work)
        .output()
        .unwrap()
}

fn list(dir: &Path, yaml: &str, name: &str) -> (Value, PathBuf) {
    let out = manifests(dir, yaml, &[("token", "s3cr3t")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, &out.stdout).unwrap();
    (serde_json::from_slice(&out.stdout).unwrap(), path)
}

const PLAIN: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  config:
    token: {type: string, sensitive: true}
  steps:
    - name: Hello
      shell: echo hello
"#;

const FULL: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  config:
    token: {type: string, sensitive: true}
  container:
    image: python:3.12-slim
    imagePullPolicy: IfNotPresent
    resources:
      requests: {cpu: 500m, memory: 256Mi}
      limits: {memory: 1Gi}
    securityContext:
      runAsUser: 1000
      allowPrivilegeEscalation: false
    volumeMounts:
      - {name: cache, mountPath: /cache}
      - {name: settings, mountPath: /etc/settings, readOnly: true}
  job:
    labels: {team: qa}
    annotations: {note: nightly}
    activeDeadlineSeconds: 600
  pod:
    serviceAccountName: test-runner
    labels: {team: qa, app.kubernetes.io/managed-by: someone-else}
    annotations: {sidecar.istio.io/inject: "false"}
    nodeSelector: {kubernetes.io/os: linux}
    tolerations:
      - {key: dedicated, operator: Equal, value: tests, effect: NoSchedule}
    securityContext: {fsGroup: 1000}
    volumes:
      - name: settings
        configMap: {name: test-settings}
  pvcs:
    cache:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
  steps:
    - name: Test
      shell: python -V
"#;

const WITH_SERVICE: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  config:
    token: {type: string, sensitive: true}
  container:
    image: python:3.12-slim
  services:
    db:
      image: postgres:16
      env:
        - {name: POSTGRES_PASSWORD, value: not-a-secret}
      readinessProbe:
        exec: {command: [pg_isready, -h, 127.0.0.1]}
        periodSeconds: 2
      pod:
        nodeSelector: {disktype: ssd}
  steps:
    - name: Test
      shell: python -V
"#;

/// Two parallel workers in another image than the steps', with pod settings of their own.
const WITH_WORKERS: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  config:
    token: {type: string, sensitive: true}
  container:
    image: python:3.12-slim
  steps:
    - name: Build
      shell: python -V
    - name: Shards
      parallel:
        count: 2
        container:
          image: node:22
          resources: {limits: {cpu: "1"}}
        pod:
          nodeSelector: {pool: workers}
        fetch:
          - from: /data/out
        shell: node -v > out.txt
"#;

#[test]
fn the_job_of_an_execution_has_testkubes_shape_and_validates() {
    let dir = TempDir::new().unwrap();
    let (plain, plain_path) = list(dir.path(), PLAIN, "plain");
    let job = &plain["items"][0];
    let secret = &plain["items"][1];
    assert_eq!(job["kind"], "Job");
    assert_eq!(secret["kind"], "Secret");
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("assay-exec-"), "{name}");
    assert_eq!(secret["metadata"]["name"], name);
    assert_eq!(job["metadata"]["namespace"], "tests");
    for labels in [
        &job["metadata"]["labels"],
        &secret["metadata"]["labels"],
        &job["spec"]["template"]["metadata"]["labels"],
    ] {
        assert_eq!(labels["app.kubernetes.io/managed-by"], "assay");
        assert_eq!(
            labels["assay.io/execution"],
            "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
        );
        // A name that is not a valid label value becomes one.
        assert_eq!(labels["assay.io/agent"], "k8s_agent_1");
    }
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert!(job["spec"]["ttlSecondsAfterFinished"].as_i64().unwrap() > 0);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let init = &pod["initContainers"][0];
    assert_eq!(init["name"], "assay-init");
    assert_eq!(init["image"], "assay:latest");
    assert_eq!(
        init["command"],
        json!(["assay", "pod", "install", "/.assay/bin/assay"])
    );
    let main = &pod["containers"][0];
    // No image in the workflow: the assay image runs it.
    assert_eq!(main["image"], "assay:latest");
    assert_eq!(
        main["command"],
        json!([
            "/.assay/bin/assay",
            "pod",
            "run",
            "--work",
            "/.assay/work/work.json",
            "--data",
            "/data"
        ])
    );
    let mounts: Vec<&str> = main["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        mounts,
        ["/.assay/bin", "/.assay/work", "/testkube/outputs", "/data"]
    );
    let work_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "work")
        .unwrap();
    assert_eq!(work_volume["secret"]["secretName"], name);
    assert_eq!(work_volume["secret"]["defaultMode"], 0o400);
    // The Secret: owned by the Job, holding the work file (sensitive values included).
    assert_eq!(secret["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["name"], name);
    let work = secret["data"]["work.json"].as_str().unwrap();
    assert!(
        !work.contains("s3cr3t"),
        "stored base64, as Kubernetes wants"
    );

    let (full, full_path) = list(dir.path(), FULL, "full");
    let job = &full["items"][0];
    assert_eq!(job["metadata"]["labels"]["team"], "qa");
    assert_eq!(job["metadata"]["annotations"]["note"], "nightly");
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 600);
    let template = &job["spec"]["template"];
    assert_eq!(template["metadata"]["labels"]["team"], "qa");
    // Assay's own labels win.
    assert_eq!(
        template["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "assay"
    );
    assert_eq!(
        template["metadata"]["annotations"]["sidecar.istio.io/inject"],
        "false"
    );
    let pod = &template["spec"];
    assert_eq!(pod["serviceAccountName"], "test-runner");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["value"], "tests");
    assert_eq!(pod["securityContext"]["fsGroup"], 1000);
    let main = &pod["containers"][0];
    assert_eq!(main["image"], "python:3.12-slim");
    assert_eq!(main["imagePullPolicy"], "IfNotPresent");
    assert_eq!(main["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(main["securityContext"]["runAsUser"], 1000);
    let volumes = pod["volumes"].as_array().unwrap();
    let cache = volumes.iter().find(|v| v["name"] == "cache").unwrap();
    assert_eq!(
        cache["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    assert!(volumes.iter().any(|v| v["name"] == "settings"));
    let mounts: Vec<&str> = main["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/cache") && mounts.contains(&"/etc/settings"));

    // A service instance: a Job (and Secret) of its own, with its own image, pod settings and
    // exec probe; the main pod serves the endpoint through which the agent tells it the
    // address (`--channel`).
    let (services, services_path) = list(dir.path(), WITH_SERVICE, "services");
    let items = services["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{services}");
    let (main, main_secret, svc, svc_secret) = (&items[0], &items[1], &items[2], &items[3]);
    let main_name = main["metadata"]["name"].as_str().unwrap();
    assert_eq!(svc["metadata"]["name"], format!("{main_name}-svc0"));
    assert_eq!(svc_secret["metadata"]["name"], format!("{main_name}-svc0"));
    assert_eq!(main["metadata"]["labels"]["assay.io/role"], "execution");
    for labels in [
        &svc["metadata"]["labels"],
        &svc["spec"]["template"]["metadata"]["labels"],
        &svc_secret["metadata"]["labels"],
    ] {
        assert_eq!(labels["assay.io/role"], "service");
        assert_eq!(labels["assay.io/service"], "db");
        assert_eq!(labels["assay.io/index"], "0");
        assert_eq!(labels["assay.io/agent"], "k8s_agent_1");
    }
    let main_pod = &main["spec"]["template"]["spec"];
    assert_eq!(main_pod["containers"][0]["image"], "python:3.12-slim");
    assert!(
        main_pod["containers"][0]["command"]
            .as_array()
            .unwrap()
            .contains(&json!("/.assay/work/channel.json"))
    );
    assert!(main_pod.get("nodeSelector").is_none(), "{main_pod}");
    let svc_pod = &svc["spec"]["template"]["spec"];
    assert_eq!(svc_pod["containers"][0]["image"], "postgres:16");
    assert_eq!(svc_pod["nodeSelector"]["disktype"], "ssd");
    let probe = &svc_pod["containers"][0]["readinessProbe"];
    assert_eq!(
        probe["exec"]["command"],
        json!(["pg_isready", "-h", "127.0.0.1"])
    );
    assert_eq!(probe["periodSeconds"], 2);
    assert!(main_secret["data"]["channel.json"].is_string());
    // A service pod gets no channel: it asks for no pods and holds no token.
    assert!(svc_secret["data"].get("channel.json").is_none());
    assert!(
        !svc_pod["containers"][0]["command"]
            .as_array()
            .unwrap()
            .contains(&json!("--channel"))
    );

    // Parallel workers: the main pod serves their endpoint (`--channel`), and each worker
    // the main pod will ask for gets a Job of its own, with its image and pod settings.
    let (workers, workers_path) = list(dir.path(), WITH_WORKERS, "workers");
    let items = workers["items"].as_array().unwrap();
    assert_eq!(items.len(), 6, "{workers}");
    let main = &items[0];
    let main_name = main["metadata"]["name"].as_str().unwrap();
    let main_container = &main["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(main_container["image"], "python:3.12-slim");
    assert!(
        main_container["command"]
            .as_array()
            .unwrap()
            .contains(&json!("/.assay/work/channel.json"))
    );
    assert!(items[1]["data"]["channel.json"].is_string());
    for (k, pair) in items[2..].chunks(2).enumerate() {
        let (job, secret) = (&pair[0], &pair[1]);
        assert_eq!(job["metadata"]["name"], format!("{main_name}-w{k}"));
        assert_eq!(secret["metadata"]["name"], format!("{main_name}-w{k}"));
        let labels = &job["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["assay.io/role"], "worker");
        assert_eq!(labels["assay.io/index"], k.to_string());
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["image"], "node:22");
        assert_eq!(pod["containers"][0]["resources"]["limits"]["cpu"], "1");
        assert_eq!(pod["nodeSelector"]["pool"], "workers");
        assert!(secret["data"]["channel.json"].is_string());
    }

    let python = match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh (its venv has kubernetes-validate)"
        ),
    };
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pod_manifests_check.py");
    let out = Command::new(python)
        .arg(check)
        .arg(K8S_VERSION)
        .arg(&plain_path)
        .arg(&full_path)
        .arg(&services_path)
        .arg(&workers_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "14 generated documents valid against Kubernetes {K8S_VERSION} (strict)"
        )),
        "{stdout}"
    );
}

/// A refusal: exit 2, the message and a hint on stderr, nothing on stdout.
fn refused(yaml: &str, message: &str) {
    let dir = TempDir::new().unwrap();
    let out = manifests(dir.path(), yaml, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn plans_the_runtime_cannot_run_are_refused_with_a_hint() {
    refused(
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  steps:
    - name: Build
      container: {image: golang:1.23}
      shell: go version
    - name: Test
      container: {image: node:22}
      shell: node -v
"#,
        "several images (golang:1.23, node:22)",
    );
    // A parallel worker runs in a pod of its own (another image than the main pod's is
    // fine), one container: its own steps may not name several images.
    refused(
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  container: {image: python:3.12-slim}
  steps:
    - name: Build
      shell: python -V
    - name: Workers
      parallel:
        count: 2
        container: {image: node:22}
        steps:
          - shell: node -v
          - container: {image: golang:1.23}
            shell: go version
"#,
        "several images (golang:1.23, node:22)",
    );
    refused(
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  pod:
    volumes:
      - {name: data, emptyDir: {}}
  steps:
    - shell: "true"
"#,
        "the volume name `data` is Assay's own",
    );
    refused(
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  pod:
    nodeSelector: linux
  steps:
    - shell: "true"
"#,
        "the workflow's pod is not usable in a Kubernetes Job",
    );
}
