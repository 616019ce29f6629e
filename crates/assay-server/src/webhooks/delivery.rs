//! One delivery: render the webhook for an event, send it with retries, record each attempt.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use assay_spec::model::Webhook;
use assay_store::{Execution, WebhookAttempt};
use axum::http::header;
use serde_json::{Value, json};

use super::receiver::*;
use super::*;

/// One event for one webhook.
pub(super) struct Delivery {
    pub(super) webhook: String,
    pub(super) spec: Webhook,
    pub(super) event: &'static str,
    pub(super) execution: Execution,
    pub(super) view: Value,
    pub(super) labels: BTreeMap<String, String>,
}

/// What a delivery sends, and the secrets to mask in what is recorded.
pub(super) struct Rendered {
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
pub(super) fn mask_secrets(text: &str, secrets: &[String]) -> String {
    assay_engine::Masker::new(secrets.iter().map(String::as_str))
        .mask_with(text, MASK)
        .into_owned()
}

/// The values of a webhook's `config`: `value`s as written, `secret`s from the server's
/// environment ([`assay_spec::triggers::SecretRef::env_var`]). Returns the values and the
/// secret ones (to mask).
pub(super) fn config_values(
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
pub(super) fn context(
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

pub(super) fn render(
    env: &minijinja::Environment<'_>,
    what: &str,
    text: &str,
    ctx: &Value,
) -> Result<String, String> {
    env.render_str(text, minijinja::Value::from_serialize(ctx))
        .map_err(|e| format!("{what}: {e}"))
}

/// Testkube's event JSON (`{id, type, resource, resourceId, testWorkflowExecution}`).
pub(super) fn event_json(job: &Delivery, event_id: &str) -> Value {
    json!({
        "id": event_id,
        "type": job.event,
        "resource": "testworkflowexecution",
        "resourceId": job.execution.id,
        "testWorkflowExecution": job.view,
    })
}

pub(super) fn prepare(
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

/// Whether a failed attempt is worth repeating: no answer, 5xx, 408 and 429.
pub(super) fn retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s >= 500 || s == 408 || s == 429,
    }
}

pub(super) async fn deliver(shared: &Shared, job: Delivery) {
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

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

pub(super) async fn record(shared: &Shared, attempt: &WebhookAttempt) {
    if let Err(e) = shared.store.record_webhook_attempt(attempt).await {
        tracing::warn!(webhook = %attempt.webhook, error = %e, "webhook attempt not recorded");
    }
}
