//! Outbound webhooks: Testkube's `Webhook` documents (`executor.testkube.io/v1`), stored through
//! `/v1/webhooks` or `assay apply`, and POSTed to when an execution of a workflow matching their
//! `selector` is queued, starts or ends.
//!
//! How it runs: the queue's [`Dispatch`] is wrapped ([`Webhooks::wrap`]) so that a run's start
//! and end are reported, and the API reports `queued`. Reports go through a bounded channel to
//! one observer task, which works out the event types (`end-testworkflow-failed`,
//! `become-testworkflow-down` against the workflow's previous execution, ...) and spawns one
//! delivery per matching webhook: a run never waits for a receiver. A delivery renders the
//! `uri`, `headers` and `payloadTemplate` with minijinja and tries up to [`ATTEMPTS`] times with
//! exponential backoff; every attempt is recorded in the store with header values and secret
//! config values masked. Deliveries still retrying when the server stops are lost.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use assay_api::ErrorBody;
use assay_runner::{RunError, RunRequest};
use assay_service::DocumentKind;
use assay_spec::load::ResourceKind;
use assay_spec::model::{Resource, Webhook};
use assay_store::{
    Execution, ExecutionFilter, ExecutionRef, ExecutionStatus, LabelSelector, Store, WebhookAttempt,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::queue::Dispatch;

/// Most attempts per delivery.
pub const ATTEMPTS: u32 = 5;
/// Wait before the second attempt; it doubles for each next one (1s, 2s, 4s, 8s).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Reports waiting for the observer; more are dropped (and logged) rather than slow a run.
const CHANNEL: usize = 1024;
/// Deliveries in flight at once; the observer waits for a free one before it reads on.
pub const IN_FLIGHT: usize = 32;
/// What a secret or a header value is replaced with in the delivery log: the one mask string.
pub use assay_api::MASK;

/// When in an execution's life a report is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    Queued,
    Started,
    Ended,
}

/// Handle to the webhook observer. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    tx: mpsc::Sender<(String, Moment)>,
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    metrics: Metrics,
    http: reqwest::Client,
    /// `--allow-private-webhooks`: loopback and private receivers are allowed.
    allow_private: Arc<AtomicBool>,
    settings: RwLock<Settings>,
    in_flight: Arc<Semaphore>,
}

#[derive(Default)]
struct Settings {
    public_url: Option<String>,
    /// Secret values by environment variable name, looked up before the environment.
    secrets: BTreeMap<String, String>,
}

impl Webhooks {
    /// Start the observer task. `public_url` (the server as its users reach it) makes
    /// `executionUrl` in templates; `ASSAY_PUBLIC_URL` is read when it is `None`.
    pub fn start(store: Store, metrics: Metrics, public_url: Option<String>) -> Webhooks {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let public_url = public_url
            .or_else(|| std::env::var("ASSAY_PUBLIC_URL").ok())
            .filter(|u| !u.trim().is_empty())
            .map(|u| u.trim_end_matches('/').to_string());
        let allow_private = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            store,
            metrics,
            // Redirects are never followed (a public receiver could point at a private one),
            // and every name is checked as it is resolved for a connection, so a name that
            // resolves differently at send time cannot reach a private address either.
            http: reqwest::Client::builder()
                .timeout(ATTEMPT_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(PublicOnly {
                    allow_private: allow_private.clone(),
                })
                .build()
                .unwrap_or_default(),
            allow_private,
            settings: RwLock::new(Settings {
                public_url,
                secrets: BTreeMap::new(),
            }),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        });
        tokio::spawn(observe(shared.clone(), rx));
        Webhooks { tx, shared }
    }

    /// The server's address as its users reach it (`https://assay.example.com`), for
    /// `executionUrl` and `apiUrl` in templates.
    pub fn set_public_url(&self, url: Option<String>) {
        if let Ok(mut s) = self.shared.settings.write() {
            s.public_url = url.map(|u| u.trim_end_matches('/').to_string());
        }
    }

    /// Give a webhook secret as if the environment variable `var` held `value` (for servers
    /// embedded in another program, and tests: the process environment cannot be changed
    /// safely once threads run).
    pub fn set_secret(&self, var: &str, value: &str) {
        if let Ok(mut s) = self.shared.settings.write() {
            s.secrets.insert(var.to_string(), value.to_string());
        }
    }

    /// Allow receivers on loopback, private, link-local and other non-public addresses
    /// (`assay server --allow-private-webhooks`); refused by default.
    pub fn set_allow_private(&self, allow: bool) {
        self.shared.allow_private.store(allow, Ordering::Relaxed);
    }

    fn report(&self, id: &str, moment: Moment) {
        if let Err(e) = self.tx.try_send((id.to_string(), moment)) {
            tracing::warn!(execution = %id, error = %e, "webhook events dropped: the observer is behind");
        }
    }

    /// The execution `id` was recorded `queued`.
    pub fn queued(&self, id: &str) {
        self.report(id, Moment::Queued);
    }

    /// `inner`, reporting when each run starts and ends.
    pub fn wrap(&self, inner: Arc<dyn Dispatch>) -> Arc<dyn Dispatch> {
        Arc::new(Observed {
            inner,
            webhooks: self.clone(),
        })
    }
}

/// A [`Dispatch`] that reports its runs to the webhooks.
struct Observed {
    inner: Arc<dyn Dispatch>,
    webhooks: Webhooks,
}

impl Dispatch for Observed {
    fn run(
        &self,
        store: Store,
        id: String,
        request: RunRequest,
    ) -> BoxFuture<'static, Result<Option<ExecutionStatus>, RunError>> {
        let run = self.inner.run(store, id.clone(), request);
        let webhooks = self.webhooks.clone();
        Box::pin(async move {
            webhooks.report(&id, Moment::Started);
            let result = run.await;
            if let Ok(Some(_)) = &result {
                webhooks.report(&id, Moment::Ended);
            }
            result
        })
    }

    fn stop_all(&self) {
        self.inner.stop_all();
    }
}

async fn observe(shared: Arc<Shared>, mut rx: mpsc::Receiver<(String, Moment)>) {
    while let Some((id, moment)) = rx.recv().await {
        if let Err(e) = handle(&shared, &id, moment).await {
            tracing::warn!(execution = %id, error = %e, "webhooks not sent");
        }
    }
}

/// Every stored webhook that loads, by name.
async fn stored_webhooks(store: &Store) -> Result<Vec<(String, Webhook)>, assay_store::StoreError> {
    let mut out = Vec::new();
    for r in store.list_resources(ResourceKind::Webhook).await? {
        let loaded = assay_spec::load::load(&format!("stored webhook {}", r.name), &r.yaml);
        match loaded.resources.into_iter().next().map(|d| d.resource) {
            Some(Resource::Webhook(w)) => out.push((r.name, *w)),
            _ => tracing::warn!(webhook = %r.name, "stored webhook does not load; skipped"),
        }
    }
    Ok(out)
}

async fn handle(
    shared: &Arc<Shared>,
    id: &str,
    moment: Moment,
) -> Result<(), assay_store::StoreError> {
    let webhooks: Vec<(String, Webhook)> = stored_webhooks(&shared.store)
        .await?
        .into_iter()
        .filter(|(_, w)| !w.spec.disabled)
        .collect();
    if webhooks.is_empty() {
        return Ok(());
    }
    let reference = ExecutionRef::Id(id.to_string());
    let mut execution = shared.store.get_execution(&reference).await?;
    if moment == Moment::Started {
        // The dispatcher reports before the runner has recorded the start; give it a moment,
        // and send nothing for a run that never started (aborted while it waited).
        for _ in 0..40 {
            if execution.started_at.is_some() || execution.status.is_terminal() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            execution = shared.store.get_execution(&reference).await?;
        }
        if execution.started_at.is_none() {
            return Ok(());
        }
    }
    // The observer may read the execution after it moved on (a short run has often ended by
    // then, and a busy observer reads it later still): an event says what was true when it
    // happened, so the execution is shown as it was at that moment.
    let execution = as_at(moment, execution);
    let types = event_types(&shared.store, moment, &execution).await?;
    let labels = workflow_labels(&execution);
    let view = serde_json::to_value(assay_api::TestWorkflowExecution::from(&execution))
        .unwrap_or(Value::Null);
    for event in types {
        for (name, webhook) in &webhooks {
            if !webhook.spec.events.iter().any(|e| e == event) {
                continue;
            }
            let Ok(selector) = LabelSelector::parse(&webhook.spec.selector) else {
                continue;
            };
            if !selector.matches(&labels) {
                continue;
            }
            let Ok(permit) = shared.in_flight.clone().acquire_owned().await else {
                return Ok(());
            };
            let job = Delivery {
                webhook: name.clone(),
                spec: webhook.clone(),
                event,
                execution: execution.clone(),
                view: view.clone(),
                labels: labels.clone(),
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                deliver(&shared, job).await;
                drop(permit);
            });
        }
    }
    Ok(())
}

/// `execution` as it was at `moment`: queued (not started), or just started (running, no
/// step finished yet). An ended execution keeps what it is.
fn as_at(moment: Moment, mut execution: Execution) -> Execution {
    let status = match moment {
        Moment::Queued => ExecutionStatus::Queued,
        Moment::Started => ExecutionStatus::Running,
        Moment::Ended => return execution,
    };
    if execution.summary.status == status {
        return execution;
    }
    let s = &mut execution.summary;
    s.status = status;
    s.finished_at = None;
    s.error_message = None;
    s.record_errors.clear();
    match moment {
        Moment::Queued => {
            s.started_at = None;
            s.status_at = s.scheduled_at;
        }
        _ => s.status_at = s.started_at.unwrap_or(s.status_at),
    }
    execution.steps.clear();
    execution.outputs.clear();
    execution.reports.clear();
    execution.artifacts.clear();
    execution
}

/// The labels of the workflow an execution ran (from the definition it ran).
fn workflow_labels(execution: &Execution) -> BTreeMap<String, String> {
    assay_service::definitions::workflow_from_yaml("execution definition", &execution.definition)
        .map(|w| w.metadata.labels.into_iter().collect())
        .unwrap_or_default()
}

/// Testkube's event types for this moment; `become-*` compare with the workflow's previous
/// finished execution (none before: no `become-*`).
async fn event_types(
    store: &Store,
    moment: Moment,
    execution: &Execution,
) -> Result<Vec<&'static str>, assay_store::StoreError> {
    use ExecutionStatus::*;
    let status = execution.status;
    let mut out = match moment {
        Moment::Queued => return Ok(vec!["queue-testworkflow"]),
        Moment::Started => return Ok(vec!["start-testworkflow"]),
        Moment::Ended => match status {
            Passed => vec!["end-testworkflow-success"],
            Failed => vec!["end-testworkflow-failed", "end-testworkflow-not-passed"],
            Aborted => vec!["end-testworkflow-aborted", "end-testworkflow-not-passed"],
            Canceled => vec!["end-testworkflow-canceled", "end-testworkflow-not-passed"],
            Queued | Running | Paused => return Ok(Vec::new()),
        },
    };
    let previous = store
        .list_executions(&ExecutionFilter {
            workflow: Some(execution.workflow.clone()),
            statuses: vec![Passed, Failed, Aborted, Canceled],
            limit: Some(1),
            before_id: Some(execution.id.clone()),
            ..ExecutionFilter::default()
        })
        .await?
        .into_iter()
        .next()
        .map(|e| e.status);
    if let Some(prev) = previous {
        if prev != Passed && status == Passed {
            out.push("become-testworkflow-up");
        }
        if prev == Passed && status != Passed {
            out.push("become-testworkflow-down");
            out.push("become-testworkflow-not-passed");
        }
        for (s, name) in [
            (Failed, "become-testworkflow-failed"),
            (Aborted, "become-testworkflow-aborted"),
            (Canceled, "become-testworkflow-canceled"),
        ] {
            if status == s && prev != s {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// One event for one webhook.
struct Delivery {
    webhook: String,
    spec: Webhook,
    event: &'static str,
    execution: Execution,
    view: Value,
    labels: BTreeMap<String, String>,
}

/// What a delivery sends, and the secrets to mask in what is recorded.
struct Rendered {
    url: String,
    headers: Vec<(String, String)>,
    payload: String,
    secrets: Vec<String>,
}

impl Rendered {
    fn mask(&self, text: &str) -> String {
        mask_secrets(text, &self.secrets)
    }
}

/// `text` with every secret masked as written and in every encoding Assay produces (a URL's
/// percent-encoding in reqwest's errors, `tojson`'s escapes in payloads, ...): the engine's
/// masker, so a delivery log hides what a step's log hides.
fn mask_secrets(text: &str, secrets: &[String]) -> String {
    assay_engine::Masker::new(secrets.iter().map(String::as_str))
        .mask_with(text, MASK)
        .into_owned()
}

/// The values of a webhook's `config`: `value`s as written, `secret`s from the server's
/// environment ([`assay_spec::triggers::SecretRef::env_var`]). Returns the values and the
/// secret ones (to mask).
fn config_values(
    shared: &Shared,
    spec: &Webhook,
) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let mut values = BTreeMap::new();
    let mut secrets = Vec::new();
    for (key, v) in &spec.spec.config {
        if let Some(value) = &v.value {
            values.insert(key.clone(), value.clone());
        } else if let Some(secret) = &v.secret {
            let var = secret.env_var();
            let given = shared
                .settings
                .read()
                .ok()
                .and_then(|s| s.secrets.get(&var).cloned());
            let value = given.or_else(|| std::env::var(&var).ok()).ok_or_else(|| {
                format!(
                    "config `{key}` is the secret `{}/{}`, read from the server's environment \
                     variable `{var}`, which is not set",
                    secret.name, secret.key
                )
            })?;
            secrets.push(value.clone());
            values.insert(key.clone(), value);
        }
    }
    Ok((values, secrets))
}

/// The template variables (documented in the README's "Triggers and webhooks").
fn context(
    shared: &Shared,
    job: &Delivery,
    event_id: &str,
    config: &BTreeMap<String, String>,
) -> Value {
    let e = &job.execution;
    let duration_ms = match (e.started_at, e.finished_at) {
        (Some(s), Some(f)) => Some(f - s),
        _ => None,
    };
    let execution_config: BTreeMap<&String, &String> = e
        .config
        .iter()
        .filter_map(|(k, v)| v.value.as_ref().map(|v| (k, v)))
        .collect();
    let public_url = shared
        .settings
        .read()
        .ok()
        .and_then(|s| s.public_url.clone());
    let url = public_url
        .as_ref()
        .map(|base| format!("{base}/v1/test-workflow-executions/{}", e.id));
    json!({
        "type": job.event,
        "id": event_id,
        "webhook": job.webhook,
        "execution": job.view,
        "executionId": e.id,
        "executionName": e.name,
        "executionNumber": e.number,
        "workflowName": e.workflow,
        "labels": job.labels,
        "status": e.status.as_str(),
        "durationMs": duration_ms,
        "errorMessage": e.error_message,
        "tags": e.tags,
        "executionConfig": execution_config,
        "config": config,
        "executionUrl": url,
        "dashboardUrl": public_url.as_ref().map(|base| format!("{base}/executions/{}", e.id)),
        "apiUrl": public_url,
    })
}

fn render(
    env: &minijinja::Environment<'_>,
    what: &str,
    text: &str,
    ctx: &Value,
) -> Result<String, String> {
    env.render_str(text, minijinja::Value::from_serialize(ctx))
        .map_err(|e| format!("{what}: {e}"))
}

/// Testkube's event JSON (`{id, type, resource, resourceId, testWorkflowExecution}`).
fn event_json(job: &Delivery, event_id: &str) -> Value {
    json!({
        "id": event_id,
        "type": job.event,
        "resource": "testworkflowexecution",
        "resourceId": job.execution.id,
        "testWorkflowExecution": job.view,
    })
}

fn prepare(
    shared: &Shared,
    job: &Delivery,
    event_id: &str,
) -> Result<Rendered, (String, Vec<String>)> {
    let (config, secrets) = config_values(shared, &job.spec).map_err(|e| (e, Vec::new()))?;
    let fail = |e: String| (e, secrets.clone());
    let ctx = context(shared, job, event_id, &config);
    let env = minijinja::Environment::new();
    let spec = &job.spec.spec;
    let url = render(&env, "uri", &spec.uri, &ctx).map_err(fail)?;
    let mut headers = Vec::new();
    for (name, value) in &spec.headers {
        headers.push((
            name.clone(),
            render(&env, &format!("header {name}"), value, &ctx).map_err(fail)?,
        ));
    }
    let payload = if !spec.payload_template.is_empty() {
        render(&env, "payloadTemplate", &spec.payload_template, &ctx).map_err(fail)?
    } else {
        let event = event_json(job, event_id).to_string();
        if spec.payload_object_field.is_empty() {
            event
        } else {
            json!({ spec.payload_object_field.clone(): event }).to_string()
        }
    };
    Ok(Rendered {
        url,
        headers,
        payload,
        secrets,
    })
}

/// Whether `ip` is an address a webhook may not reach by default: loopback, private,
/// link-local, shared (CGNAT), unspecified, broadcast, multicast, documentation, IPv6 unique
/// local, and IPv4 addresses written as IPv6.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || (first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

/// The message for a refused receiver.
fn refused(host: &str, ip: IpAddr) -> String {
    format!(
        "refused: `{host}` is {ip}, a loopback or private address; webhooks reach public \
         addresses only unless the server runs with --allow-private-webhooks"
    )
}

/// reqwest's resolver for webhooks: the system's, with non-public addresses refused.
struct PublicOnly {
    allow_private: Arc<AtomicBool>,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private.load(Ordering::Relaxed);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow && let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
                return Err(refused(&host, bad.ip()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Check the receiver's address before sending: an IP literal as written (reqwest does not
/// resolve those), a name as it resolves now. `Err` is the message to record.
async fn check_receiver(url: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("the uri `{url}` is not a URL: {e}"))?;
    let port = parsed.port_or_known_default().unwrap_or(0);
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) if is_private(IpAddr::V4(ip)) => {
            Err(refused(&ip.to_string(), IpAddr::V4(ip)))
        }
        Some(url::Host::Ipv6(ip)) if is_private(IpAddr::V6(ip)) => {
            Err(refused(&ip.to_string(), IpAddr::V6(ip)))
        }
        Some(url::Host::Domain(name)) => {
            let addrs = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| format!("`{name}` does not resolve: {e}"))?;
            for a in addrs {
                if is_private(a.ip()) {
                    return Err(refused(name, a.ip()));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether a failed attempt is worth repeating: no answer, 5xx, 408 and 429.
fn retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s >= 500 || s == 408 || s == 429,
    }
}

async fn deliver(shared: &Shared, job: Delivery) {
    let event_id = uuid::Uuid::now_v7().to_string();
    let mut attempt = WebhookAttempt {
        id: String::new(),
        webhook: job.webhook.clone(),
        event_id: event_id.clone(),
        event: job.event.to_string(),
        execution_id: job.execution.id.clone(),
        attempt: 0,
        at: 0,
        url: String::new(),
        headers: BTreeMap::new(),
        payload: String::new(),
        status_code: None,
        error: None,
        delivered: false,
    };
    let rendered = match prepare(shared, &job, &event_id) {
        Ok(r) => r,
        Err((error, secrets)) => {
            attempt.id = uuid::Uuid::now_v7().to_string();
            attempt.attempt = 1;
            attempt.at = assay_store::now_ms();
            attempt.url = mask_secrets(&job.spec.spec.uri, &secrets);
            attempt.error = Some(mask_secrets(&error, &secrets));
            record(shared, &attempt).await;
            shared.metrics.webhook_delivery("error");
            return;
        }
    };
    attempt.url = rendered.mask(&rendered.url);
    attempt.headers = rendered
        .headers
        .iter()
        .map(|(k, _)| (k.clone(), MASK.to_string()))
        .collect();
    attempt.payload = rendered.mask(&rendered.payload);
    let has_content_type = rendered
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if let Err(e) =
        check_receiver(&rendered.url, shared.allow_private.load(Ordering::Relaxed)).await
    {
        attempt.id = uuid::Uuid::now_v7().to_string();
        attempt.attempt = 1;
        attempt.at = assay_store::now_ms();
        attempt.error = Some(rendered.mask(&e));
        record(shared, &attempt).await;
        tracing::warn!(webhook = %job.webhook, error = %rendered.mask(&e), "webhook receiver refused");
        shared.metrics.webhook_delivery("refused");
        return;
    }
    let mut wait = FIRST_BACKOFF;
    for n in 1..=ATTEMPTS {
        let mut request = shared
            .http
            .post(&rendered.url)
            .body(rendered.payload.clone());
        if !has_content_type {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in &rendered.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let (status, error) = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let error = (!status.is_success()).then(|| {
                    if status.is_redirection() {
                        format!("the receiver answered {status}; redirects are not followed")
                    } else {
                        format!("the receiver answered {status}")
                    }
                });
                (Some(status.as_u16()), error)
            }
            // reqwest's message may hold the URL, secrets and all.
            Err(e) => (None, Some(rendered.mask(&error_chain(&e)))),
        };
        attempt.id = uuid::Uuid::now_v7().to_string();
        attempt.attempt = i64::from(n);
        attempt.at = assay_store::now_ms();
        attempt.status_code = status.map(i64::from);
        attempt.delivered = error.is_none();
        attempt.error = error;
        record(shared, &attempt).await;
        if attempt.delivered {
            shared.metrics.webhook_delivery("delivered");
            return;
        }
        if n == ATTEMPTS || !retryable(status) {
            break;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    tracing::warn!(webhook = %job.webhook, event = job.event, execution = %job.execution.id, "webhook delivery failed");
    shared.metrics.webhook_delivery("failed");
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn record(shared: &Shared, attempt: &WebhookAttempt) {
    if let Err(e) = shared.store.record_webhook_attempt(attempt).await {
        tracing::warn!(webhook = %attempt.webhook, error = %e, "webhook attempt not recorded");
    }
}

/// When a stored `TestTrigger` acts, as an HTTP `Warning` (how Kubernetes' API tells kubectl)
/// and in `assay apply`'s output.
pub const TRIGGER_NOTE: &str = "TestTrigger stored; it acts on Kubernetes events where `assay server --kubernetes` watches its namespace (use POST /v1/hooks/NAME for git pushes)";

fn with_note(kind: DocumentKind, mut response: Response) -> Response {
    if kind == DocumentKind::TestTrigger
        && let Ok(v) = HeaderValue::from_str(&format!("299 - \"{TRIGGER_NOTE}\""))
    {
        response.headers_mut().insert(header::WARNING, v);
    }
    response
}

pub(crate) async fn create_resource(
    state: &AppState,
    kind: DocumentKind,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let response = crate::definitions::create(state, kind, headers, body).await?;
    Ok(with_note(kind, response))
}

pub(crate) async fn update_resource(
    state: &AppState,
    kind: DocumentKind,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let response = crate::definitions::update(state, kind, name, headers, body).await?;
    Ok(with_note(kind, response.into_response()))
}

const WH: DocumentKind = DocumentKind::Webhook;

/// List webhooks, optionally by label selector.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    params(("selector" = Option<String>, Query, nullable = false, pattern = r"^ *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?(, *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?)*$", description = "label selector (the store's grammar, as for workflows)")),
    responses((status = 200, description = "Webhook documents", body = Vec<Object>),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<Vec<Value>>> {
    crate::definitions::list(&s, WH, &q).await
}

/// Create a webhook from YAML (`Content-Type: text/yaml`) or JSON.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body(content = Object, content_type = "application/json", description = "a Webhook (YAML with text/yaml)"),
    responses((status = 201, description = "the stored Webhook", body = Object),
              (status = 400, description = "invalid, with problems and line:col", body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    create_resource(&s, WH, &headers, &body).await
}

/// One webhook, as applied.
#[utoipa::path(get, path = "/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_webhook(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    crate::definitions::get(&s, WH, &name).await
}

/// Replace a webhook.
#[utoipa::path(put, path = "/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_webhook(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    update_resource(&s, WH, &name, &headers, &body).await
}

/// Delete a webhook (its delivery log stays).
#[utoipa::path(delete, path = "/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete_webhook(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    crate::definitions::delete(&s, WH, &name).await
}

/// The webhook's delivery log, newest attempt first: event, attempt number, status code, error,
/// time, URL and payload with secrets masked, header values masked.
#[utoipa::path(get, path = "/v1/webhooks/{name}/deliveries", tag = "webhooks",
    params(("name" = String, Path), ("limit" = Option<i64>, Query, nullable = false, description = "at most this many (default 100, at most 1000)")),
    responses((status = 200, description = "attempts, newest first", body = Vec<Object>),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn webhook_deliveries(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<Vec<WebhookAttempt>>> {
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("limit `{l}` is not a number")))?,
        None => 100,
    };
    let attempts = s.store.list_webhook_attempts(&name, limit).await?;
    if attempts.is_empty() {
        // An unknown webhook is a 404; a known one without deliveries an empty list.
        s.store.get_resource(ResourceKind::Webhook, &name).await?;
    }
    Ok(Json(attempts))
}
