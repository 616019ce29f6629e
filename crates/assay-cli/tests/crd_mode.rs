//! `assay server --kubernetes` (CRD mode and the TestTrigger watcher), the real binary against
//! a FAKE Kubernetes API server (`crates/assay-kube/tests/fake_api.py`, on kmock: no real API
//! server can be had here), driven with Debian's `kubectl` (`--validate=false`: the fake
//! serves no OpenAPI schemas).

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use crate::run_support::{
    FakeApi, LoggedServer, Running, apply, fake_api, http, kubectl, logged_server, repo,
    wait_logged,
};
use serde_json::Value;

/// `assay server --kubernetes` on the fake, its stderr kept for assertions.
type Server = LoggedServer;

fn server(data: &Path, api: &FakeApi) -> Server {
    server_with(data, api, &[])
}

/// [`server`] with more flags.
fn server_with(data: &Path, api: &FakeApi, extra: &[&str]) -> Server {
    let kubeconfig = api.kubeconfig.display().to_string();
    let mut args = vec![
        "--no-auth",
        "--kubernetes",
        "--kubeconfig",
        kubeconfig.as_str(),
    ];
    args.extend(extra);
    logged_server(data, &args, "info")
}

/// Poll `check` until it gives a value; fail with the server's log after a minute.
fn wait_for<T>(s: &Server, what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_logged(s, what, check)
}

/// Wait until the TestTrigger watcher of `resource` (in `namespace`, else any) has listed: events
/// count from there.
fn wait_for_watcher(s: &Server, resource: &str, namespace: Option<&str>) {
    let ns = namespace.map(|n| format!("namespace={n}"));
    wait_for(s, &format!("the {resource} watcher"), || {
        let log = s.log.lock().unwrap();
        log.lines()
            .any(|l| {
                l.contains("TestTrigger watcher listed")
                    && l.contains(resource)
                    && ns.as_deref().is_none_or(|n| l.contains(n))
            })
            .then_some(())
    });
}

fn get(s: &Server, path: &str) -> (u16, Value) {
    let (status, body) = http(s.port, "GET", path, "", None);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn workflow_yaml(name: &str, label: &str) -> String {
    format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {name}\n  labels: {{stage: {label}}}\nspec:\n  steps:\n    - name: say\n      shell: echo {name}\n"
    )
}

#[test]
fn crd_mode_keeps_the_store_in_step_with_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let api = fake_api(dir.path());
    let data = dir.path().join("data");
    // Exists before the server starts: listed at its start.
    apply(&api, &workflow_yaml("early", "one"));
    let hello = std::fs::read_to_string(repo().join("examples/hello.yaml")).unwrap();
    let s = server(&data, &api);
    wait_for(&s, "`early` synced", || {
        (get(&s, "/v1/test-workflows/early").0 == 200).then_some(())
    });

    // kubectl apply of an example: stored, marked as the cluster's, and it runs.
    apply(&api, &hello);
    let stored = wait_for(&s, "`hello` synced", || {
        let (status, body) = get(&s, "/v1/test-workflows/hello");
        (status == 200).then_some(body)
    });
    assert_eq!(
        stored["metadata"]["annotations"]["assay.io/synced-from-kubernetes"], "assay",
        "{stored}"
    );
    assert!(
        stored["metadata"].get("resourceVersion").is_none()
            && stored["metadata"].get("uid").is_none(),
        "cluster bookkeeping is not stored: {stored}"
    );
    let (status, body) = http(
        s.port,
        "POST",
        "/v1/test-workflows/hello/executions",
        "",
        Some(("application/json", "{}")),
    );
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_for(&s, "the run of `hello` to end", || {
        let (_, e) = get(&s, &format!("/v1/test-workflow-executions/{id}"));
        let status = e["result"]["status"].as_str().unwrap_or("").to_string();
        ["passed", "failed", "aborted"]
            .contains(&status.as_str())
            .then_some(e)
    });
    assert_eq!(done["result"]["status"], "passed", "{done}");

    // Changed in the cluster: updated here.
    apply(&api, &hello.replace("team: platform", "team: qa"));
    wait_for(&s, "`hello` updated", || {
        let (_, body) = get(&s, "/v1/test-workflows/hello");
        (body["metadata"]["labels"]["team"] == "qa").then_some(())
    });

    // Invalid: not stored, and the log names the object and the problem.
    apply(
        &api,
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: broken\nspec:\n  steps:\n    - name: x\n      shel: echo typo\n",
    );
    wait_for(&s, "a warning about `broken`", || {
        let log = s.log.lock().unwrap();
        log.lines()
            .any(|l| l.contains("name=broken") && l.contains("not valid") && l.contains("shel"))
            .then_some(())
    });
    assert_eq!(get(&s, "/v1/test-workflows/broken").0, 404);

    // Hostile: deeper than `assay apply` accepts (the loader's nesting limit): refused the same.
    let mut deep = String::from("x");
    for _ in 0..60 {
        deep = format!("{{\"a\": {deep}}}");
    }
    let deep = deep.replace("x", "\"leaf\"");
    apply(
        &api,
        &format!(
            "{{\"apiVersion\": \"testworkflows.testkube.io/v1\", \"kind\": \"TestWorkflow\", \"metadata\": {{\"name\": \"deep\"}}, \"spec\": {{\"config\": {{\"x\": {{\"type\": \"string\", \"default\": \"d\"}}}}, \"steps\": [{{\"name\": \"s\", \"shell\": \"true\"}}], \"events\": {deep}}}}}"
        ),
    );
    wait_for(&s, "a warning about `deep`", || {
        let log = s.log.lock().unwrap();
        log.lines()
            .any(|l| l.contains("name=deep") && l.contains("not valid"))
            .then_some(())
    });
    assert_eq!(get(&s, "/v1/test-workflows/deep").0, 404);

    // A definition made through the API is the API's: a relist leaves it alone.
    let (status, body) = http(
        s.port,
        "POST",
        "/v1/test-workflows",
        "",
        Some(("text/yaml", &workflow_yaml("api-made", "one"))),
    );
    assert_eq!(status, 201, "{body}");

    // Deleted in the cluster: gone here.
    kubectl(&api, &["delete", "testworkflow", "hello"], None);
    wait_for(&s, "`hello` deleted", || {
        (get(&s, "/v1/test-workflows/hello").0 == 404).then_some(())
    });

    // Deleted while the server is down: gone after its start (the list at start), and the
    // API's own definition stays.
    drop(s);
    kubectl(&api, &["delete", "testworkflow", "early"], None);
    apply(&api, &workflow_yaml("late", "two"));
    let s = server(&data, &api);
    wait_for(&s, "`late` synced", || {
        (get(&s, "/v1/test-workflows/late").0 == 200).then_some(())
    });
    wait_for(&s, "`early` deleted by the resync", || {
        (get(&s, "/v1/test-workflows/early").0 == 404).then_some(())
    });
    assert_eq!(get(&s, "/v1/test-workflows/api-made").0, 200);
}

fn deployment(name: &str, app: &str, image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{app: {app}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n    spec:\n      containers:\n        - {{name: main, image: \"{image}\"}}\n"
    )
}

fn trigger(name: &str, event: &str, extra: &str) -> String {
    format!(
        "apiVersion: tests.testkube.io/v1\nkind: TestTrigger\nmetadata:\n  name: {name}\nspec:\n  resource: deployment\n  resourceSelector:\n    labelSelector: {{matchLabels: {{app: web}}}}\n  event: {event}\n  action: run\n  execution: testworkflow\n  testSelector: {{name: smoke}}\n{extra}"
    )
}

/// The executions of `smoke` a trigger queued.
fn runs_of(s: &Server, trigger: &str) -> Vec<Value> {
    let (_, page) = get(
        s,
        &format!("/v1/test-workflow-executions?workflow=smoke&tag=testtrigger={trigger}"),
    );
    page["results"].as_array().cloned().unwrap_or_default()
}

#[test]
fn test_triggers_run_workflows_on_deployment_events() {
    let dir = tempfile::tempdir().unwrap();
    let api = fake_api(dir.path());
    let data = dir.path().join("data");
    apply(&api, &workflow_yaml("smoke", "one"));
    apply(&api, &trigger("on-create", "created", ""));
    apply(
        &api,
        &trigger(
            "on-image",
            "deployment-image-update",
            "  actionParameters: {tags: {source: cluster}}\n",
        ),
    );
    // Exists before the server starts: no `created` for it.
    apply(&api, &deployment("old", "web", "nginx:1", 1));
    let s = server(&data, &api);
    wait_for_watcher(&s, "deployment", None);
    wait_for(&s, "`smoke` synced", || {
        (get(&s, "/v1/test-workflows/smoke").0 == 200).then_some(())
    });

    // A scale of the pre-existing one: no image update, nothing runs.
    kubectl(
        &api,
        &[
            "patch",
            "deployment",
            "old",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
        None,
    );
    // Another app's deployment, created and its image changed: the label does not match.
    apply(&api, &deployment("api", "api", "api:1", 1));
    apply(&api, &deployment("api", "api", "api:2", 1));
    // The matching one: created (on-create), then its image changed (on-image).
    apply(&api, &deployment("web", "web", "nginx:1", 1));
    wait_for(&s, "on-create's run", || {
        (runs_of(&s, "on-create").len() == 1).then_some(())
    });
    kubectl(
        &api,
        &["set", "image", "deployment/web", "main=nginx:2"],
        None,
    );
    wait_for(&s, "on-image's run", || {
        (runs_of(&s, "on-image").len() == 1).then_some(())
    });
    // And the pre-existing one's image: on-image again (it matches by label).
    kubectl(
        &api,
        &["set", "image", "deployment/old", "main=nginx:3"],
        None,
    );
    wait_for(&s, "on-image's second run", || {
        (runs_of(&s, "on-image").len() == 2).then_some(())
    });

    // Exactly those three: the watch events are handled in order, so the ones that should not
    // have fired were handled before the last expected run was queued.
    let (_, all) = get(&s, "/v1/test-workflows/smoke/executions");
    let all = all["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 3, "{all:#?}\n{}", s.log.lock().unwrap());
    assert_eq!(runs_of(&s, "on-create").len(), 1);
    let id = runs_of(&s, "on-image")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, e) = get(&s, &format!("/v1/test-workflow-executions/{id}"));
    assert_eq!(
        e["runningContext"]["actor"]["name"], "testtrigger on-image",
        "{e}"
    );
    assert_eq!(e["runningContext"]["actor"]["type"], "testtrigger", "{e}");
    assert_eq!(e["tags"]["testtrigger"], "on-image", "{e}");
    assert_eq!(e["tags"]["source"], "cluster", "{e}");
}

/// The README's "CRD mode and TestTriggers" commands, as written, against the fake (through a
/// `kubectl` on PATH that is the real one plus the fake's kubeconfig and `--validate=false`).
#[test]
fn the_readmes_crd_mode_example_runs() {
    let block = crate::run_support::readme_block("crd-mode");
    let dir = tempfile::tempdir().unwrap();
    let api = fake_api(dir.path());
    let s = server(&dir.path().join("data"), &api);
    wait_for(&s, "the CRD watchers", || {
        s.log.lock().unwrap().contains("CRD mode").then_some(())
    });

    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v kubectl"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(
        bin.join("kubectl"),
        format!(
            "#!/bin/sh\n# kubectl against the FAKE API server (it serves no OpenAPI schemas)\nfor a in \"$@\"; do case \"$a\" in apply|create) exec {} --kubeconfig {} \"$@\" --validate=false;; esac; done\nexec {0} --kubeconfig {1} \"$@\"\n",
            real.trim(),
            api.kubeconfig.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(bin.join("kubectl"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(bin.join("kubectl"), perms).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();

    for (i, line) in block.iter().enumerate() {
        // The trigger must be stored and watching before the Deployment is made.
        if i == 1 {
            wait_for_watcher(&s, "deployment", None);
        }
        let out = std::process::Command::new("bash")
            .args(["-c", line])
            .current_dir(repo())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(get(&s, "/v1/test-workflows/web-smoke").0, 200);
    let runs = wait_for(&s, "the trigger's run", || {
        let (_, page) = get(
            &s,
            "/v1/test-workflow-executions?workflow=web-smoke&tag=testtrigger=web-image-update",
        );
        let runs = page["results"].as_array().cloned().unwrap_or_default();
        (!runs.is_empty()).then_some(runs)
    });
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let (_, all) = get(&s, "/v1/test-workflows/web-smoke/executions");
    assert_eq!(all["results"].as_array().map_or(0, Vec::len), 1, "{all}");
    // The trigger's `jsonpath=` config value and its Go template tag, from the Deployment.
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let e = wait_for(&s, "the run's end", || {
        let (_, e) = get(&s, &format!("/v1/test-workflow-executions/{id}"));
        (e["result"]["status"] == "passed").then_some(e)
    });
    assert_eq!(e["tags"]["deployment"], "assay.web", "{e}");
    assert_eq!(e["configParams"]["image"]["value"], "nginx:1.28", "{e}");
    let (_, log) = http(
        s.port,
        "GET",
        &format!("/v1/test-workflow-executions/{id}/logs"),
        "",
        None,
    );
    assert!(log.contains("smoke-testing web at nginx:1.28"), "{log}");
}

/// A real HTTP server on 127.0.0.1 for a trigger's probes: `503` to the first `failures`
/// requests, `200` after. Returns its port and the number of requests it answered.
fn probe_target(failures: usize) -> (u16, Arc<Mutex<usize>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(Mutex::new(0usize));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let n = {
                let mut c = seen.lock().unwrap();
                *c += 1;
                *c
            };
            let status = if n <= failures {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (port, count)
}

#[test]
fn test_trigger_probes_gate_the_runs() {
    let dir = tempfile::tempdir().unwrap();
    let api = fake_api(dir.path());
    let (warming, warming_count) = probe_target(2);
    let (never, never_count) = probe_target(usize::MAX);
    apply(&api, &workflow_yaml("smoke", "one"));
    let probes = |port: u16| {
        format!(
            "  probeSpec:\n    timeout: 20\n    delay: 1\n    probes:\n      - {{host: 127.0.0.1, port: {port}, path: /ready, headers: {{X-From: assay}}}}\n"
        )
    };
    apply(&api, &trigger("warms-up", "created", &probes(warming)));
    apply(
        &api,
        &trigger(
            "never-ready",
            "created",
            &probes(never).replace("timeout: 20", "timeout: 2"),
        ),
    );
    // actionParameters.target, resolved from the event: its run waits for an agent named
    // `web-runner` (the Deployment's name); a tag that finds nothing is left out.
    apply(
        &api,
        &trigger(
            "targeted",
            "created",
            "  actionParameters:\n    target: {match: {name: ['{{ .object.metadata.name }}-runner']}}\n    tags: {app: 'jsonpath={.metadata.labels.app}', gone: 'jsonpath={.spec.nothing}'}\n",
        ),
    );
    let s = server(&dir.path().join("data"), &api);
    wait_for_watcher(&s, "deployment", None);
    wait_for(&s, "`smoke` synced", || {
        (get(&s, "/v1/test-workflows/smoke").0 == 200).then_some(())
    });
    apply(&api, &deployment("web", "web", "nginx:1", 1));

    // 503, 503, 200: one run, after the third answer.
    wait_for(&s, "warms-up's run", || {
        (runs_of(&s, "warms-up").len() == 1).then_some(())
    });
    assert_eq!(*warming_count.lock().unwrap(), 3);
    // Never below 400: no run, and the log says why.
    let line = wait_for(&s, "never-ready giving up", || {
        let log = s.log.lock().unwrap();
        log.lines()
            .find(|l| l.contains("trigger=never-ready") && l.contains("probes did not succeed"))
            .map(str::to_string)
    });
    assert!(
        line.contains(&format!("127.0.0.1:{never}/ready")) && line.contains("503"),
        "{line}"
    );
    assert!(*never_count.lock().unwrap() >= 2, "tried again");
    assert!(runs_of(&s, "never-ready").is_empty());

    // The untargeted run is taken by the server's own runner; the targeted one waits.
    wait_for(&s, "warms-up's run to pass", || {
        (runs_of(&s, "warms-up")[0]["result"]["status"] == "passed").then_some(())
    });
    let targeted = runs_of(&s, "targeted");
    assert_eq!(targeted.len(), 1, "{targeted:#?}");
    assert_eq!(targeted[0]["result"]["status"], "queued", "{targeted:#?}");
    assert_eq!(targeted[0]["tags"]["app"], "web", "{targeted:#?}");
    assert!(targeted[0]["tags"].get("gone").is_none(), "{targeted:#?}");
    assert!(
        s.log
            .lock()
            .unwrap()
            .lines()
            .any(|l| l.contains("trigger=targeted")
                && l.contains("key=gone")
                && l.contains("finds nothing")),
        "{}",
        s.log.lock().unwrap()
    );
    // Only an agent named `web-runner` takes it: the target was resolved to that name.
    let _web = crate::run_support::assay()
        .args([
            "agent",
            "--server",
            &format!("http://127.0.0.1:{}", s.port),
            "--name",
            "web-runner",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Running)
        .unwrap();
    wait_for(&s, "the targeted run to pass on web-runner", || {
        (runs_of(&s, "targeted")[0]["result"]["status"] == "passed").then_some(())
    });
}

/// A trigger stored with `assay apply` through the server acts on the next event: the store
/// signals the change, and the safety reread (an hour here) is not what found it.
#[test]
fn a_trigger_applied_through_the_server_acts_without_a_reread() {
    let dir = tempfile::tempdir().unwrap();
    let api = fake_api(dir.path());
    apply(&api, &workflow_yaml("smoke", "one"));
    let s = server_with(&dir.path().join("data"), &api, &["--trigger-reread", "1h"]);
    wait_for(&s, "`smoke` synced", || {
        (get(&s, "/v1/test-workflows/smoke").0 == 200).then_some(())
    });
    let cli = |args: &[&str]| {
        let out = crate::run_support::assay()
            .args(args)
            .env("ASSAY_CONFIG", dir.path().join("contexts.yaml"))
            .env("ASSAY_DATA_DIR", dir.path().join("cli-data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "assay {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let url = format!("http://127.0.0.1:{}", s.port);
    // --no-auth: the token is not checked.
    cli(&[
        "context", "add", "srv", "--server", &url, "--token", "unused",
    ]);
    let file = dir.path().join("trigger.yaml");
    std::fs::write(&file, trigger("applied", "created", "")).unwrap();
    cli(&["apply", "-f", file.to_str().unwrap(), "--context", "srv"]);

    // No trigger named a deployment before: its watcher starts now, on the signal.
    wait_for_watcher(&s, "deployment", None);
    apply(&api, &deployment("web", "web", "nginx:1", 1));
    wait_for(&s, "the applied trigger's run", || {
        (runs_of(&s, "applied").len() == 1).then_some(())
    });
}

/// A trigger on another namespace acts when the server was allowed it (`--trigger-namespace`),
/// and is refused, said in the log, when it was not.
#[test]
fn test_triggers_watch_the_namespaces_they_were_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let api = fake_api(dir.path());
    apply(&api, &workflow_yaml("smoke", "one"));
    let in_ns = |name: &str, ns: &str| {
        format!(
            "apiVersion: tests.testkube.io/v1\nkind: TestTrigger\nmetadata:\n  name: {name}\nspec:\n  resource: deployment\n  resourceSelector:\n    namespace: {ns}\n    labelSelector: {{matchLabels: {{app: web}}}}\n  event: created\n  action: run\n  execution: testworkflow\n  testSelector: {{name: smoke}}\n"
        )
    };
    apply(&api, &in_ns("in-shop", "shop"));
    apply(&api, &in_ns("in-bank", "bank"));
    let s = server_with(
        &dir.path().join("data"),
        &api,
        &["--trigger-namespace", "shop"],
    );
    let refused = wait_for(&s, "in-bank refused", || {
        let log = s.log.lock().unwrap();
        log.lines()
            .find(|l| l.contains("trigger=in-bank") && l.contains("refused"))
            .map(str::to_string)
    });
    assert!(refused.contains("--trigger-namespace bank"), "{refused}");
    wait_for_watcher(&s, "deployment", Some("shop"));
    wait_for(&s, "`smoke` synced", || {
        (get(&s, "/v1/test-workflows/smoke").0 == 200).then_some(())
    });
    kubectl(
        &api,
        &["-n", "bank", "apply", "--validate=false", "-f", "-"],
        Some(&deployment("web", "web", "nginx:1", 1)),
    );
    kubectl(
        &api,
        &["-n", "shop", "apply", "--validate=false", "-f", "-"],
        Some(&deployment("web", "web", "nginx:1", 1)),
    );
    wait_for(&s, "in-shop's run", || {
        (runs_of(&s, "in-shop").len() == 1).then_some(())
    });
    // Nothing watches bank: no watcher started there, and no run came of its deployment.
    let (_, all) = get(&s, "/v1/test-workflows/smoke/executions");
    assert_eq!(
        all["results"].as_array().map_or(0, Vec::len),
        1,
        "{all}\n{}",
        s.log.lock().unwrap()
    );
    assert!(
        !s.log
            .lock()
            .unwrap()
            .lines()
            .any(|l| l.contains("watching for TestTriggers") && l.contains("namespace=bank"))
    );

    // A namespace that is not a name: refused at start, exit 2.
    let out = crate::run_support::assay()
        .args([
            "server",
            "--kubernetes",
            "--trigger-namespace",
            "Not_A_Name",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`Not_A_Name` is not a namespace name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
