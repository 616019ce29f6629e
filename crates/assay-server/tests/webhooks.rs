//! Outbound webhooks over real HTTP on 127.0.0.1: a receiver in the test refuses the first two
//! attempts with 500 and accepts the third; the delivery log shows three attempts, the last
//! payload is the rendered template, and the secret header value appears nowhere in the log.
//! Also Testkube's event JSON without a template, and `become-testworkflow-down`.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{TestServer, start, workflow};

/// What the receiver saw: path, headers and body of every request.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, HeaderMap, String)>,
    refused: usize,
}

/// A receiver: `/flaky` answers 500 twice, then 200; every other path 200.
async fn receiver() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = axum::Router::new()
        .route(
            "/{path}",
            axum::routing::post(
                |State(seen): State<Arc<Mutex<Seen>>>,
                 Path(path): Path<String>,
                 headers: HeaderMap,
                 body: String| async move {
                    let mut seen = seen.lock().unwrap();
                    seen.requests.push((path.clone(), headers, body));
                    if path == "flaky" && seen.refused < 2 {
                        seen.refused += 1;
                        AxumStatus::INTERNAL_SERVER_ERROR
                    } else {
                        AxumStatus::OK
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

const TOKEN: &str = "tok-3f9a1c-very-secret";

async fn wait_for<F: Fn(&Value) -> bool>(s: &TestServer, path: &str, done: F) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let v = s.get(path).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path}: {v:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_retry_render_and_mask() {
    let (receiver, seen) = receiver().await;
    let s = start().await;
    // The receiver is on 127.0.0.1 (`--allow-private-webhooks`).
    s.webhooks.set_allow_private(true);
    // The secret as the server's environment would give it (`{name, key}` → NAME_KEY).
    s.webhooks.set_secret("ASSAY_TEST_WEBHOOK_TOKEN", TOKEN);
    s.webhooks
        .set_public_url(Some("https://assay.example.com/".into()));
    let notify = format!(
        r#"apiVersion: executor.testkube.io/v1
kind: Webhook
metadata:
  name: notify
spec:
  uri: {receiver}/flaky
  events: [end-testworkflow-success]
  selector: team=qa
  headers:
    X-Token: '{{{{ config.token }}}}'
  config:
    token:
      secret: {{name: assay-test-webhook, key: token}}
    channel:
      value: '#qa'
  payloadTemplate: |
    {{"text": "{{{{ workflowName }}}} {{{{ executionName }}}} {{{{ status }}}} in {{{{ config.channel }}}}", "url": "{{{{ executionUrl }}}}", "dash": "{{{{ dashboardUrl }}}}", "auth": "{{{{ config.token }}}}", "branch": {{{{ executionConfig.branch | tojson }}}}}}
"#
    );
    let r = s.post_yaml("/v1/webhooks", &notify).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    // Without a template: Testkube's event JSON.
    let events = format!(
        "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata: {{name: events}}\nspec:\n  uri: {receiver}/events\n  events: [start-testworkflow, queue-testworkflow]\n  selector: team=qa\n"
    );
    assert_eq!(
        s.post_yaml("/v1/webhooks", &events).await.status(),
        StatusCode::CREATED
    );
    let down = format!(
        "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata: {{name: down}}\nspec:\n  uri: {receiver}/down\n  events: [become-testworkflow-down]\n  selector: team=qa\n  payloadObjectField: event\n"
    );
    assert_eq!(
        s.post_yaml("/v1/webhooks", &down).await.status(),
        StatusCode::CREATED
    );
    // Not selected: another team's webhook.
    let other = format!(
        "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata: {{name: other}}\nspec:\n  uri: {receiver}/other\n  events: [end-testworkflow-success]\n  selector: team=ops\n"
    );
    assert_eq!(
        s.post_yaml("/v1/webhooks", &other).await.status(),
        StatusCode::CREATED
    );
    // A template that does not parse is refused with its location.
    let broken = notify
        .replace("name: notify", "name: broken")
        .replace("{{ workflowName }}", "{{ workflowName");
    let r = s.post_yaml("/v1/webhooks", &broken).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["problems"][0]["path"], "spec.payloadTemplate",
        "{body}"
    );

    let r = s
        .post_yaml("/v1/test-workflows", &workflow("checkout", "{team: qa}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .http
        .post(s.url("/v1/test-workflows/checkout/executions"))
        .bearer_auth(&s.admin)
        .json(&json!({"config": {"branch": "main"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let execution: Value = r.json().await.unwrap();
    let id = execution["id"].as_str().unwrap().to_string();
    let name = execution["name"].as_str().unwrap().to_string();
    s.wait_status(&id, &["passed"]).await;

    // Three attempts: 500, 500, 200, newest first, one event.
    let log = wait_for(&s, "/v1/webhooks/notify/deliveries", |v| {
        v[0]["delivered"] == true
    })
    .await;
    let attempts = log.as_array().unwrap();
    let seen_attempts: Vec<(i64, i64, bool)> = attempts
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["statusCode"].as_i64().unwrap(),
                a["delivered"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen_attempts,
        [(3, 200, true), (2, 500, false), (1, 500, false)],
        "{log:#}"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a["eventId"] == attempts[0]["eventId"]
                && a["event"] == "end-testworkflow-success"
                && a["executionId"] == id.as_str())
    );
    assert!(
        attempts[2]["error"].as_str().unwrap().contains("500"),
        "{log:#}"
    );
    // The secret is nowhere in the log; the header value is masked, the payload's copy too.
    let text = log.to_string();
    assert!(!text.contains(TOKEN), "{text}");
    assert_eq!(attempts[0]["headers"]["X-Token"], "*****");
    assert!(
        attempts[0]["payload"]
            .as_str()
            .unwrap()
            .contains("\"auth\": \"*****\"")
    );

    // What the receiver got: the real secret in the header, the rendered template.
    let requests: Vec<(String, HeaderMap, String)> = seen.lock().unwrap().requests.clone();
    let flaky: Vec<&(String, HeaderMap, String)> =
        requests.iter().filter(|(p, _, _)| p == "flaky").collect();
    assert_eq!(flaky.len(), 3);
    let (_, headers, body) = flaky[2];
    assert_eq!(headers["x-token"], TOKEN);
    assert_eq!(headers["content-type"], "application/json");
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        payload,
        json!({
            "text": format!("checkout {name} passed in #qa"),
            "url": format!("https://assay.example.com/v1/test-workflow-executions/{id}"),
            "dash": format!("https://assay.example.com/executions/{id}"),
            "auth": TOKEN,
            "branch": "main",
        })
    );
    assert!(!requests.iter().any(|(p, _, _)| p == "other"));

    // Testkube's event JSON, for the queue and the start.
    let log = wait_for(&s, "/v1/webhooks/events/deliveries", |v| {
        v.as_array().unwrap().len() == 2
    })
    .await;
    let mut kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["event"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["queue-testworkflow", "start-testworkflow"]);
    let start_body = requests
        .iter()
        .filter(|(p, _, _)| p == "events")
        .map(|(_, _, b)| serde_json::from_str::<Value>(b).unwrap())
        .find(|v| v["type"] == "start-testworkflow")
        .expect("the start event was received");
    assert_eq!(start_body["resource"], "testworkflowexecution");
    assert_eq!(start_body["resourceId"], id.as_str());
    assert_eq!(start_body["testWorkflowExecution"]["id"], id.as_str());
    assert_eq!(
        start_body["testWorkflowExecution"]["workflow"]["name"],
        "checkout"
    );

    // Passed, then failed: become-testworkflow-down, once, wrapped in `event`.
    assert!(!requests.iter().any(|(p, _, _)| p == "down"));
    let r = s
        .http
        .post(s.url("/v1/test-workflows/checkout/executions"))
        .bearer_auth(&s.admin)
        .json(&json!({"config": {"code": "3"}}))
        .send()
        .await
        .unwrap();
    let failing: Value = r.json().await.unwrap();
    s.wait_status(failing["id"].as_str().unwrap(), &["failed"])
        .await;
    let log = wait_for(&s, "/v1/webhooks/down/deliveries", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(log[0]["event"], "become-testworkflow-down");
    assert_eq!(log[0]["executionId"], failing["id"]);
    let wrapped: Value = serde_json::from_str(log[0]["payload"].as_str().unwrap()).unwrap();
    let inner: Value = serde_json::from_str(wrapped["event"].as_str().unwrap()).unwrap();
    assert_eq!(inner["type"], "become-testworkflow-down");

    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("assay_webhook_deliveries_total{result=\"delivered\"}"),
        "{metrics}"
    );
    // Unknown webhooks have no log; viewers may read one.
    let r = s
        .http
        .get(s.url("/v1/webhooks/nope/deliveries"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Every string a delivery log row holds (url, headers, payload, error).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Issue 14 #7: a viewer reads the delivery log. The secret went there URL-encoded (reqwest's
/// error names the URL, whose query the URL parser percent-encodes) and JSON-escaped (the
/// payload's `tojson`); only the value as written was masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_webhook_secret_masked_in_every_encoding() {
    const SECRET: &str = "tok \"3f9a<1> x";
    let s = start().await;
    s.webhooks.set_allow_private(true);
    s.webhooks.set_secret("ASSAY_TEST_WEBHOOK_TOKEN", SECRET);
    // A port nobody listens on: the attempt fails with reqwest's error, URL included.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = format!(
        r#"apiVersion: executor.testkube.io/v1
kind: Webhook
metadata:
  name: leaky
spec:
  uri: 'http://127.0.0.1:{closed}/hook?t={{{{ config.token }}}}'
  events: [end-testworkflow-success]
  selector: team=qa
  config:
    token:
      secret: {{name: assay-test-webhook, key: token}}
  payloadTemplate: '{{"auth": {{{{ config.token | tojson }}}}}}'
"#
    );
    let r = s.post_yaml("/v1/webhooks", &hook).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let r = s
        .post_yaml("/v1/test-workflows", &workflow("leaky", "{team: qa}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let run = s.run("leaky", json!({})).await;
    s.wait_status(run["id"].as_str().unwrap(), &["passed"])
        .await;
    // The first attempt is enough: every attempt records the same URL, payload and error.
    let log = wait_for(&s, "/v1/webhooks/leaky/deliveries", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let attempt = &log.as_array().unwrap().last().unwrap();
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("127.0.0.1") && error.contains("*****"),
        "{attempt:#}"
    );
    assert_eq!(attempt["payload"], "{\"auth\": \"*****\"}", "{attempt:#}");
    let mut texts = Vec::new();
    strings(&log, &mut texts);
    for form in [
        SECRET,
        "tok%20%223f9a%3C1%3E%20x",      // the URL parser's query encoding
        "tok \\\"3f9a\\u003c1\\u003e x", // minijinja's `tojson`
        "tok \\\"3f9a<1> x",             // JSON-escaped
        "3f9a",
    ] {
        assert!(
            !texts.iter().any(|t| t.contains(form)),
            "`{form}` leaked: {log:#}"
        );
    }
}

/// Issue 14 #14: webhooks reached loopback and private addresses (the server's own network)
/// and followed redirects. By default a receiver on 127.0.0.1, or a name resolving to it, is
/// refused without a request; with `--allow-private-webhooks` it is reached, but a redirect is
/// still not followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_webhooks_refuse_private_addresses_and_redirects() {
    let (receiver, seen) = receiver().await;
    let redirector = axum::Router::new().route(
        "/{path}",
        axum::routing::post({
            let receiver = receiver.clone();
            move || {
                let to = format!("{receiver}/followed");
                async move { (AxumStatus::FOUND, [(axum::http::header::LOCATION, to)]) }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirector).await.unwrap() });
    let port = receiver.rsplit(':').next().unwrap().to_string();

    let s = start().await;
    let hook = |name: &str, uri: &str| {
        format!(
            "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata: {{name: {name}}}\nspec:\n  uri: '{uri}'\n  events: [end-testworkflow-success]\n  selector: team=qa\n"
        )
    };
    for (name, uri) in [
        ("literal", format!("{receiver}/literal")),
        ("by-name", format!("http://localhost:{port}/by-name")),
        ("mapped", format!("http://[::ffff:127.0.0.1]:{port}/mapped")),
    ] {
        let r = s.post_yaml("/v1/webhooks", &hook(name, &uri)).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }
    let r = s
        .post_yaml("/v1/test-workflows", &workflow("private", "{team: qa}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let run = s.run("private", json!({})).await;
    s.wait_status(run["id"].as_str().unwrap(), &["passed"])
        .await;
    for name in ["literal", "by-name", "mapped"] {
        let log = wait_for(&s, &format!("/v1/webhooks/{name}/deliveries"), |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
        let attempts = log.as_array().unwrap();
        assert_eq!(attempts.len(), 1, "refused once, not retried: {log:#}");
        let error = attempts[0]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("refused") && error.contains("--allow-private-webhooks"),
            "{log:#}"
        );
        assert_eq!(attempts[0]["delivered"], false);
    }
    assert!(
        seen.lock().unwrap().requests.is_empty(),
        "a private receiver was reached"
    );

    // Opted in: the receiver is reached; a redirect is answered but not followed.
    s.webhooks.set_allow_private(true);
    let r = s
        .post_yaml(
            "/v1/webhooks",
            &hook("redirect", &format!("{redirect_base}/go")),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let run = s.run("private", json!({})).await;
    s.wait_status(run["id"].as_str().unwrap(), &["passed"])
        .await;
    let log = wait_for(&s, "/v1/webhooks/redirect/deliveries", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(log[0]["statusCode"], 302, "{log:#}");
    assert!(
        log[0]["error"].as_str().unwrap().contains("not followed"),
        "{log:#}"
    );
    wait_for(&s, "/v1/webhooks/literal/deliveries", |v| {
        v[0]["delivered"] == true
    })
    .await;
    let paths: Vec<String> = seen
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|(p, _, _)| p.clone())
        .collect();
    assert!(!paths.contains(&"followed".to_string()), "{paths:?}");
    assert!(paths.contains(&"literal".to_string()), "{paths:?}");
}

/// Issue 13 #12: the start event of a short run carried the run's final state. The observer
/// reads the execution when it gets to the report; here it is held for real until the run has
/// ended — every delivery slot is taken by a receiver that does not answer yet, so the observer
/// waits on the queue event's last delivery — and only then reads the start report. The start
/// event must still say `running`, with no step finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_event_reports_running_even_when_read_after_the_end() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hold",
            axum::routing::post({
                let (release, held) = (release.clone(), held.clone());
                move || async move {
                    held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = release.acquire().await.map(|p| p.forget());
                    AxumStatus::OK
                }
            }),
        )
        .route(
            "/events",
            axum::routing::post({
                let seen = seen.clone();
                move |body: String| async move {
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap());
                    AxumStatus::OK
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let s = start().await;
    s.webhooks.set_allow_private(true);
    let hook = |name: &str, path: &str, event: &str| {
        format!(
            "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata: {{name: {name}}}\nspec:\n  uri: '{receiver}/{path}'\n  events: [{event}]\n  selector: team=qa\n"
        )
    };
    // One more held delivery than the observer may have in flight: the last one waits.
    let slots = assay_server::webhooks::IN_FLIGHT;
    for i in 0..=slots {
        let r = s
            .post_yaml(
                "/v1/webhooks",
                &hook(&format!("hold-{i}"), "hold", "queue-testworkflow"),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = s
        .post_yaml(
            "/v1/webhooks",
            &hook("events", "events", "start-testworkflow"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .post_yaml("/v1/test-workflows", &workflow("short", "{team: qa}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let run = s.run("short", json!({})).await;
    let id = run["id"].as_str().unwrap().to_string();
    // The run ends while the observer is held.
    s.wait_status(&id, &["passed"]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while held.load(std::sync::atomic::Ordering::SeqCst) < slots {
        assert!(
            Instant::now() < deadline,
            "the held deliveries never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.lock().unwrap().is_empty(), "the observer was not held");
    release.add_permits(10 * slots);

    let deadline = Instant::now() + Duration::from_secs(60);
    let start = loop {
        if let Some(v) = seen.lock().unwrap().first().cloned() {
            break v;
        }
        assert!(Instant::now() < deadline, "no start event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(start["type"], "start-testworkflow", "{start:#}");
    let execution = &start["testWorkflowExecution"];
    assert_eq!(execution["id"], id.as_str());
    assert_eq!(execution["result"]["status"], "running", "{start:#}");
    assert!(execution["result"].get("finishedAt").is_none(), "{start:#}");
    assert!(
        execution["result"]["steps"]
            .as_object()
            .is_none_or(|steps| steps.values().all(|s| s["status"] != "passed")),
        "{start:#}"
    );
}

/// The observer keeps the stored webhooks it read between reports (it read them all three
/// times per execution); a webhook stored or deleted through the server is seen by the very
/// next report, however soon, not only once what it read has aged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_stored_or_deleted_is_seen_by_the_next_report() {
    let (receiver, seen) = receiver().await;
    let s = start().await;
    s.webhooks.set_allow_private(true);
    let hook = |name: &str| {
        format!(
            "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata: {{name: {name}}}\nspec:\n  uri: '{receiver}/{name}'\n  events: [queue-testworkflow]\n  selector: team=qa\n"
        )
    };
    let r = s
        .post_yaml("/v1/test-workflows", &workflow("short", "{team: qa}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        s.post_yaml("/v1/webhooks", &hook("first")).await.status(),
        StatusCode::CREATED
    );
    // Requests to `path` that name execution `id`.
    let count = |path: &str, id: &str| {
        seen.lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(p, _, body)| p == path && body.contains(id))
            .count()
    };
    let arrived = |path: &'static str, id: String| {
        let count = &count;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while count(path, &id) == 0 {
                assert!(Instant::now() < deadline, "no `{path}` delivery for {id}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let a = s.run("short", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The observer has read the webhooks: `first` only.
    arrived("first", a.clone()).await;

    let r = s
        .http
        .delete(s.url("/v1/webhooks/first"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        s.post_yaml("/v1/webhooks", &hook("second")).await.status(),
        StatusCode::CREATED
    );
    let b = s.run("short", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    arrived("second", b.clone()).await;
    // A third run's delivery arrives after anything sent for the second.
    let c = s.run("short", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    arrived("second", c.clone()).await;
    for id in [&b, &c] {
        assert_eq!(
            count("first", id),
            0,
            "the deleted webhook was used for {id}"
        );
    }
    assert_eq!(count("first", &a), 1);
}
