//! deploy/kubernetes (issue 17, "Deploying"). No Kubernetes API server can be had on these
//! machines, so nothing here runs against a real cluster. What is checked, with the real
//! `kubectl` (Debian's kubernetes-client) and the real `assay` binary:
//!
//! - `kubectl kustomize deploy/kubernetes` renders, and every rendered document is valid
//!   against Kubernetes' published OpenAPI schemas for [`K8S_VERSION`] (`kubernetes-validate`,
//!   strict); the CRDs' schemas are structural; all 239 TestWorkflow/TestWorkflowTemplate
//!   documents of the Testkube conformance corpus pass the CRDs' schemas and bad documents do
//!   not; every flag the Deployments pass exists in `assay server|agent --help`
//!   (tests/deploy_check.py does these checks);
//! - the two Deployments' commands (args, ASSAY_* env) as real processes here, the pod's
//!   mounts as temporary folders: the server gets ready, the agent connects and runs a workflow;
//! - the README's "Deploying on Kubernetes" commands, as written, against a **fake** `kubectl`
//!   (a shell script on PATH, named as a fake) that runs what needs no API server: `kustomize`
//!   and `apply -k` render with the real kubectl, `exec deployment/X -- assay …` runs the real
//!   `assay` on a local data dir, `create secret` is the real kubectl with `--dry-run=client`;
//!   the test then checks that the names the commands use are the manifests' names.
//! - `deploy/kubernetes-runtime` (the agent on `--runtime kubernetes`): it renders, validates
//!   (strict), leaves the base's other objects as they are, its agent's flags exist, and its
//!   Role in `assay-runs` grants exactly the runtime's calls (the exact rule set, so a new verb
//!   fails the test); its README commands run against the same fake `kubectl`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The Kubernetes version whose published OpenAPI schemas the manifests are checked against
/// (the schemas `kubernetes-validate` carries; rendering works with Debian's kubectl 1.20 and
/// with kubectl 1.32 alike).
const K8S_VERSION: &str = "1.32.0";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubectl() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    found.expect(
        "kubectl is not installed: scripts/test.sh installs Debian's kubernetes-client \
         (or: apt-get install kubernetes-client)",
    )
}

fn python() -> String {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh (its venv has kubernetes-validate and jsonschema)"
        ),
    }
}

fn render(dir: &Path) -> String {
    render_kustomization("deploy/kubernetes", dir)
}

/// `kubectl kustomize KUSTOMIZATION` (relative to the repository's root), also written to
/// `dir/rendered.yaml`.
fn render_kustomization(kustomization: &str, dir: &Path) -> String {
    let out = Command::new(kubectl())
        .args(["kustomize", kustomization])
        .current_dir(repo_root())
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize {kustomization} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).expect("utf-8 manifests");
    std::fs::write(dir.join("rendered.yaml"), &rendered).unwrap();
    rendered
}

/// The rendered documents as JSON values.
fn documents(rendered: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(rendered).expect("rendered manifests parse")
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

/// tests/deploy_check.py on `dir/rendered.yaml`: schemas (strict), CRDs, the Deployments'
/// flags against `assay … --help`; its stdout, once it passed.
fn deploy_check(dir: &Path) -> String {
    let out = Command::new(python())
        .arg(repo_root().join("crates/assay-cli/tests/deploy_check.py"))
        .arg(dir.join("rendered.yaml"))
        .arg(repo_root().join("../shared/conformance/testkube"))
        .arg(env!("CARGO_BIN_EXE_assay"))
        .arg(K8S_VERSION)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn manifests_are_valid_for_kubernetes_and_the_crds_take_testkubes_workflows() {
    let dir = tempfile::tempdir().unwrap();
    let rendered = render(dir.path());
    let docs = documents(&rendered);
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "Namespace/assay",
        "CustomResourceDefinition/testworkflows.testworkflows.testkube.io",
        "CustomResourceDefinition/testworkflowtemplates.testworkflows.testkube.io",
        "CustomResourceDefinition/testtriggers.tests.testkube.io",
        "ServiceAccount/assay-server",
        "ServiceAccount/assay-agent",
        "PersistentVolumeClaim/assay-data",
        "Service/assay",
        "Deployment/assay",
        "Deployment/assay-agent",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "{want} not rendered: {kinds:?}"
        );
    }
    // Least privilege: no cluster-wide permission; the server's Role reads (get, list, watch)
    // what CRD mode and TestTriggers watch in its namespace, nothing else; only the server's
    // pod mounts an API token.
    for k in &kinds {
        assert!(
            !k.starts_with("ClusterRole"),
            "{k}: nothing needs cluster-wide permissions"
        );
    }
    let role = find(&docs, "Role", "assay-server").expect("the server's Role");
    let mut granted = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(verbs, ["get", "list", "watch"], "read-only: {rule}");
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                granted.push(format!("{}/{}", g.as_str().unwrap(), r.as_str().unwrap()));
            }
        }
    }
    granted.sort();
    assert_eq!(
        granted,
        [
            "/configmaps",
            "/events",
            "/pods",
            "/services",
            "apps/daemonsets",
            "apps/deployments",
            "apps/statefulsets",
            "networking.k8s.io/ingresses",
            "tests.testkube.io/testtriggers",
            "testworkflows.testkube.io/testworkflows",
            "testworkflows.testkube.io/testworkflowtemplates",
        ]
    );
    let binding = find(&docs, "RoleBinding", "assay-server").expect("the server's RoleBinding");
    assert_eq!(binding["roleRef"]["name"], "assay-server");
    assert_eq!(binding["subjects"][0]["name"], "assay-server");
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let pod = &d["spec"]["template"]["spec"];
        let is_server = d["metadata"]["name"] == "assay";
        assert_eq!(
            pod["automountServiceAccountToken"], is_server,
            "{}: only the server reads the API",
            d["metadata"]["name"]
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        for c in pod["containers"].as_array().unwrap() {
            assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
            assert!(c["resources"]["requests"].is_object(), "{c}");
        }
    }
    let server = find(&docs, "Deployment", "assay").unwrap();
    let c = &server["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);

    let stdout = deploy_check(dir.path());
    assert!(
        stdout.contains(&format!(
            "12 rendered documents valid against Kubernetes {K8S_VERSION} (strict)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("239 Testkube documents (216 TestWorkflow, 23 TestWorkflowTemplate) valid against the CRDs"),
        "{stdout}"
    );
}

/// A fake `kubectl`: no API server exists here. It runs, for real, what needs none.
const FAKE_KUBECTL: &str = r#"#!/bin/bash
# FAKE kubectl (crates/assay-cli/tests/deploy.rs): no Kubernetes API server exists here.
set -euo pipefail
echo "$*" >>"$FAKE_DIR/calls"
ns=""
if [[ "${1:-}" == -n ]]; then ns=$2; shift 2; fi
case "$1" in
  kustomize) exec "$REAL_KUBECTL" "$@" ;;
  apply)
    [[ "$2" == -k ]] || { echo "fake kubectl: only apply -k" >&2; exit 2; }
    "$REAL_KUBECTL" kustomize "$3" >"$FAKE_DIR/applied.yaml"
    echo "fake kubectl: rendered $3 (not applied: no cluster)" >&2 ;;
  rollout) echo "$3" >>"$FAKE_DIR/targets" ;;
  exec)
    echo "$2" >>"$FAKE_DIR/targets"
    shift 2
    [[ "$1" == -- ]] && shift
    ASSAY_DATA_DIR="$FAKE_DIR/pod-data" exec "$@" ;;
  create) exec "$REAL_KUBECTL" ${ns:+-n "$ns"} "$@" --dry-run=client -o json >"$FAKE_DIR/secret.json" ;;
  *) echo "fake kubectl: $1 is not faked" >&2; exit 2 ;;
esac
"#;

/// Runs the README's command block `marker`, as written, in a checkout-like folder with the
/// FAKE `kubectl` first on PATH; the temporary folder, the fake's folder and the work folder.
fn run_readme_block_with_fake_kubectl(marker: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let block = crate::run_support::readme_block(marker);

    let tmp = tempfile::tempdir().unwrap();
    let fake_dir = tmp.path().join("fake");
    let bin = tmp.path().join("bin");
    let work = tmp.path().join("work");
    for d in [&fake_dir, &bin, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(bin.join("kubectl"), FAKE_KUBECTL).unwrap();
    let mut perms = std::fs::metadata(bin.join("kubectl"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(bin.join("kubectl"), perms).unwrap();
    // `deploy/kubernetes` as the README's reader has it: a checkout's root.
    std::os::unix::fs::symlink(repo_root().join("deploy"), work.join("deploy")).unwrap();
    let assay_dir = Path::new(env!("CARGO_BIN_EXE_assay")).parent().unwrap();
    let path = std::env::join_paths(
        [bin.clone(), assay_dir.to_path_buf()]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();

    let script = format!("set -euo pipefail\n{}\n", block.join("\n"));
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(&work)
        .env("PATH", path)
        .env("FAKE_DIR", &fake_dir)
        .env("REAL_KUBECTL", kubectl())
        .env_remove("ASSAY_DATA_DIR")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{block:?}\n{stderr}");

    (tmp, fake_dir, work)
}

#[test]
fn readme_commands_run_as_written_against_a_fake_kubectl() {
    let (tmp, fake_dir, work) = run_readme_block_with_fake_kubectl("deploy-kubernetes");
    let rendered = render(tmp.path());
    // `kubectl apply -k deploy/kubernetes` applies what the schema test checked.
    assert_eq!(
        std::fs::read_to_string(fake_dir.join("applied.yaml")).unwrap(),
        rendered
    );
    let docs = documents(&rendered);
    for target in std::fs::read_to_string(fake_dir.join("targets"))
        .unwrap()
        .lines()
    {
        let name = target
            .strip_prefix("deployment/")
            .unwrap_or_else(|| panic!("{target}: the README names deployments"));
        assert!(
            find(&docs, "Deployment", name).is_some(),
            "{target} is not rendered"
        );
    }

    // The Secret the README creates is the one the agent mounts, with the key its
    // --token-file reads, holding the runner token `assay token create` printed.
    let secret: Value =
        serde_json::from_str(&std::fs::read_to_string(fake_dir.join("secret.json")).unwrap())
            .unwrap();
    assert_eq!(secret["metadata"]["namespace"], "assay");
    let agent = &find(&docs, "Deployment", "assay-agent").unwrap()["spec"]["template"]["spec"];
    let volume = agent["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"].is_object())
        .expect("the agent mounts a Secret");
    assert_eq!(volume["secret"]["secretName"], secret["metadata"]["name"]);
    let container = &agent["containers"][0];
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap();
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let token_file = args[args.iter().position(|a| *a == "--token-file").unwrap() + 1];
    let key = token_file
        .strip_prefix(&format!("{}/", mount["mountPath"].as_str().unwrap()))
        .expect("--token-file is in the Secret's mount");
    let data = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no key {key}: {secret}"));
    let token = String::from_utf8(
        Command::new("base64")
            .args(["-d"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(data.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(token.trim().len() >= 32, "{token:?}");
    // It is a runner token of the server's store (the pod's data dir).
    let list = Command::new(env!("CARGO_BIN_EXE_assay"))
        .args(["token", "list", "--data-dir"])
        .arg(fake_dir.join("pod-data"))
        .env_remove("ASSAY_DATABASE")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("runner"),
        "{listed}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    // The README removes the token file it made.
    assert!(!work.join("agent.token").exists());
}

/// A container's `args` from the rendered manifests, with the pod's paths and the server's
/// address replaced by this machine's (`swap`: from → to, whole arguments or prefixes).
fn container_args(doc: &Value, swap: &[(&str, String)]) -> Vec<String> {
    doc["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            swap.iter()
                .find_map(|(from, to)| a.strip_prefix(from).map(|rest| format!("{to}{rest}")))
                .unwrap_or_else(|| a.to_string())
        })
        .collect()
}

/// The server and agent Deployments' commands (args and ASSAY_* env), run for real as
/// processes on this machine, with the pod's mounts as temporary folders and the Service's
/// address as 127.0.0.1: the server answers its probes' path, keeps `admin.token` where the
/// README says, and the agent (with a runner token made as the README makes it) connects and
/// runs a workflow the `--agents-only` server hands it.
#[test]
fn the_deployments_commands_run_a_server_and_an_agent_here() {
    use crate::run_support::{Running, fake_api, free_port, http, store_and_run};
    let tmp = tempfile::tempdir().unwrap();
    // `--kubernetes` reads the API with the pod's service account; here a FAKE API server's
    // kubeconfig stands in for it.
    let api = fake_api(tmp.path());
    let docs = documents(&render(tmp.path()));
    let server = find(&docs, "Deployment", "assay").unwrap();
    let agent = find(&docs, "Deployment", "assay-agent").unwrap();
    let port = free_port();

    let data = tmp.path().join("var-lib-assay");
    std::fs::create_dir_all(&data).unwrap();
    let sc = &server["spec"]["template"]["spec"]["containers"][0];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assay"));
    cmd.args(container_args(
        server,
        &[("0.0.0.0:8088", format!("0.0.0.0:{port}"))],
    ))
    .env_remove("ASSAY_DATABASE")
    .env_remove("ASSAY_ARTIFACTS")
    .env("NO_COLOR", "1")
    .env("KUBECONFIG", &api.kubeconfig)
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(tmp.path().join("server.log")).unwrap());
    for e in sc["env"].as_array().unwrap() {
        assert_eq!(e["value"], "/var/lib/assay", "{e}: map it to a folder here");
        cmd.env(e["name"].as_str().unwrap(), &data);
    }
    let _server = Running(cmd.spawn().unwrap());
    let probe = sc["readinessProbe"]["httpGet"]["path"].as_str().unwrap();
    let log = || std::fs::read_to_string(tmp.path().join("server.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        || http(port, "GET", probe, "", None).0 != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never got ready: {}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .expect("admin.token in the data dir, as the README says")
        .trim()
        .to_string();
    // A non-loopback listener asks for tokens.
    assert_eq!(http(port, "GET", "/v1/agents", "", None).0, 401);

    // The agent's token, made as `kubectl exec deployment/assay -- assay token create …` does.
    let secret = tmp.path().join("var-run-assay");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_assay"))
        .args([
            "token",
            "create",
            "--name",
            "kubernetes-agent-1",
            "--role",
            "runner",
        ])
        .env("ASSAY_DATA_DIR", &data)
        .env_remove("ASSAY_DATABASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(secret.join("token"), &out.stdout).unwrap();

    let args = container_args(
        agent,
        &[
            ("http://assay:8088", format!("http://127.0.0.1:{port}")),
            ("/var/run/assay", secret.display().to_string()),
            ("/work", work.display().to_string()),
        ],
    );
    let name = args[args.iter().position(|a| a == "--name").unwrap() + 1].clone();
    let _agent = Running(
        Command::new(env!("CARGO_BIN_EXE_assay"))
            .args(&args)
            .env_remove("ASSAY_DATA_DIR")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("agent.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let agent_log = || std::fs::read_to_string(tmp.path().join("agent.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, body) = http(port, "GET", "/v1/agents", &admin, None);
        assert_eq!(status, 200, "{body}");
        let agents: Vec<Value> = serde_json::from_str(&body).unwrap();
        if agents
            .iter()
            .any(|a| a["name"] == name.as_str() && a["connected"] == true)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never connected: {}",
            agent_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let yaml = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: in-the-pod\nspec:\n  steps:\n  - name: hello\n    shell: echo hello from the agent\n";
    let id = store_and_run(port, &admin, "in-the-pod", yaml);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (_, body) = http(
            port,
            "GET",
            &format!("/v1/test-workflow-executions/{id}"),
            &admin,
            None,
        );
        let e: Value = serde_json::from_str(&body).unwrap();
        let s = e["result"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if s == "passed" {
            break;
        }
        assert!(
            !matches!(s.as_str(), "failed" | "aborted"),
            "{e}\n{}",
            agent_log()
        );
        assert!(std::time::Instant::now() < deadline, "{e}\n{}", agent_log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, logs) = http(
        port,
        "GET",
        &format!("/v1/test-workflow-executions/{id}/logs"),
        &admin,
        None,
    );
    assert!(logs.contains("hello from the agent"), "{logs}");
}

/// The rules of a Role as sorted `group/resource verb` lines.
fn grants(role: &Value) -> Vec<String> {
    let mut granted = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    granted.push(format!(
                        "{}/{} {}",
                        g.as_str().unwrap(),
                        r.as_str().unwrap(),
                        v.as_str().unwrap()
                    ));
                }
            }
        }
    }
    granted.sort();
    granted
}

/// deploy/kubernetes-runtime: the agent on `--runtime kubernetes` with exactly the permissions
/// the runtime calls (crates/assay-kube/src/runtime/), in the namespace of the Jobs only.
#[test]
fn the_kubernetes_runtime_overlay_grants_the_agent_only_the_runtimes_calls() {
    let dir = tempfile::tempdir().unwrap();
    let rendered = render_kustomization("deploy/kubernetes-runtime", dir.path());
    let docs = documents(&rendered);
    let base_dir = tempfile::tempdir().unwrap();
    let base = documents(&render(base_dir.path()));
    // Every object of the base is there, in its namespace; the agent alone changed.
    for b in &base {
        let name = b["metadata"]["name"].as_str().unwrap();
        let kind = b["kind"].as_str().unwrap();
        let o = find(&docs, kind, name).unwrap_or_else(|| panic!("{kind}/{name} not rendered"));
        if !(kind == "Deployment" && name == "assay-agent") {
            assert_eq!(o, b, "{kind}/{name} differs from deploy/kubernetes");
        }
    }
    for k in docs.iter().map(|d| d["kind"].as_str().unwrap()) {
        assert!(!k.starts_with("ClusterRole"), "{k}: nothing cluster-wide");
    }

    let runs = find(&docs, "Namespace", "assay-runs").expect("the Jobs' namespace");
    assert_eq!(
        runs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    let role = find(&docs, "Role", "assay-agent").expect("the agent's Role");
    assert_eq!(role["metadata"]["namespace"], "assay-runs");
    // Exactly the calls of the runtime: adding a verb must fail here (and be argued for).
    assert_eq!(
        grants(role),
        [
            "/pods get",
            "/pods list",
            "/pods/log get",
            "/secrets create",
            "batch/jobs create",
            "batch/jobs delete",
            "batch/jobs list",
        ]
    );
    let roles: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Role").collect();
    assert_eq!(roles.len(), 2, "the server's and the agent's Roles only");
    let binding = find(&docs, "RoleBinding", "assay-agent").expect("the agent's RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], "assay-runs");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], "assay-agent");
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "assay-agent", "namespace": "assay"}])
    );
    let bindings = docs.iter().filter(|d| d["kind"] == "RoleBinding").count();
    assert_eq!(bindings, 2);

    // Only the server's and the agent's pods mount an API token; the executions' pods run as
    // `assay-runs`'s default ServiceAccount, which mounts none.
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        assert_eq!(
            d["spec"]["template"]["spec"]["automountServiceAccountToken"],
            true
        );
    }
    let default = find(&docs, "ServiceAccount", "default").expect("assay-runs' default");
    assert_eq!(default["metadata"]["namespace"], "assay-runs");
    assert_eq!(default["automountServiceAccountToken"], false);

    let agent = find(&docs, "Deployment", "assay-agent").unwrap();
    let args = container_args(agent, &[]);
    let runtime = args
        .iter()
        .position(|a| a == "--runtime")
        .expect("--runtime");
    assert_eq!(args[runtime + 1], "kubernetes");
    let ns = args
        .iter()
        .position(|a| a == "--namespace")
        .expect("--namespace");
    assert_eq!(args[ns + 1], "assay-runs");
    // The rest of the agent's pod is the base's.
    let base_agent = find(&base, "Deployment", "assay-agent").unwrap();
    let strip = |d: &Value| {
        let mut d = d.clone();
        let pod = &mut d["spec"]["template"]["spec"];
        pod["automountServiceAccountToken"] = Value::Null;
        pod["containers"][0]["args"] = Value::Null;
        d
    };
    assert_eq!(strip(agent), strip(base_agent));

    // Kubernetes' schemas (strict) and the agent's flags in `assay agent --help`.
    let stdout = deploy_check(dir.path());
    assert!(
        stdout.contains(&format!(
            "{} rendered documents valid against Kubernetes {K8S_VERSION} (strict)",
            docs.len()
        )),
        "{stdout}"
    );
    assert_eq!(docs.len(), 16);
}

/// The README's commands for the overlay, as written, against the FAKE `kubectl`: what
/// `kubectl apply -k` gets is what the test above checked.
#[test]
fn readme_overlay_commands_run_as_written_against_a_fake_kubectl() {
    let (tmp, fake_dir, _work) = run_readme_block_with_fake_kubectl("deploy-kubernetes-runtime");
    let rendered = render_kustomization("deploy/kubernetes-runtime", tmp.path());
    assert_eq!(
        std::fs::read_to_string(fake_dir.join("applied.yaml")).unwrap(),
        rendered
    );
}

/// deploy/trigger-namespace: what lets TestTriggers watch one more namespace — a Role there
/// with exactly the server's rules on the watched kinds (not the Testkube kinds, read in
/// `assay` only), bound to the server's ServiceAccount in `assay`; nothing cluster-wide.
#[test]
fn the_trigger_namespace_role_reads_only_the_watched_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let rendered = render_kustomization("deploy/trigger-namespace", dir.path());
    let docs = documents(&rendered);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Role", "RoleBinding"]);
    let role = find(&docs, "Role", "assay-trigger-watch").unwrap();
    assert_eq!(role["metadata"]["namespace"], "shop");
    let base_dir = tempfile::tempdir().unwrap();
    let base = documents(&render(base_dir.path()));
    let server_role = find(&base, "Role", "assay-server").unwrap();
    let watched: Vec<String> = grants(server_role)
        .into_iter()
        .filter(|g| !g.contains("testkube.io/"))
        .collect();
    assert_eq!(
        grants(role),
        watched,
        "the server's rules on the watched kinds"
    );
    let binding = find(&docs, "RoleBinding", "assay-trigger-watch").unwrap();
    assert_eq!(binding["metadata"]["namespace"], "shop");
    assert_eq!(binding["roleRef"]["name"], "assay-trigger-watch");
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "assay-server", "namespace": "assay"}])
    );
    // Kubernetes' schemas (strict), beside deploy/kubernetes (the check wants its CRDs).
    let both = tempfile::tempdir().unwrap();
    std::fs::write(
        both.path().join("rendered.yaml"),
        format!("{}\n---\n{rendered}", render(base_dir.path())),
    )
    .unwrap();
    let stdout = deploy_check(both.path());
    assert!(
        stdout.contains(&format!(
            "{} rendered documents valid against Kubernetes {K8S_VERSION} (strict)",
            base.len() + 2
        )),
        "{stdout}"
    );

    // The README's commands, as written, against the FAKE kubectl.
    let (tmp, fake_dir, _work) = run_readme_block_with_fake_kubectl("deploy-trigger-namespace");
    assert_eq!(
        std::fs::read_to_string(fake_dir.join("applied.yaml")).unwrap(),
        render_kustomization("deploy/trigger-namespace", tmp.path())
    );
}
