//! Inbound triggers: `POST /v1/hooks/{name}` receives a webhook (GitHub or GitLab push, pull
//! request or merge request, or any JSON), checks it against the hook's secret and queues every
//! stored workflow the hook's label selector picks, with config taken from the payload.
//!
//! A delivery is authenticated by its signature, not a bearer token: GitHub's
//! `X-Hub-Signature-256: sha256=HEX` (HMAC-SHA256 of the body) or GitLab's `X-Gitlab-Token`
//! (the secret itself), both compared in constant time. Every delivery that names a known hook
//! is recorded — rejected ones too — and listed at `GET /v1/hooks/{name}/deliveries`.
//! Unverified deliveries are limited per hook ([`UnsignedLimiter`]): over the limit they are
//! answered 429 and not recorded. The store cuts what is recorded and keeps the newest
//! deliveries of each hook only.
//!
//! Hooks are made with `PUT /v1/hooks/{name}` (admin); their secret is write-only. Testkube's
//! `TestTrigger` documents (`/v1/triggers`) are stored too; they act on Kubernetes events when
//! the server runs with `--kubernetes` (see `kubernetes.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use assay_api::ErrorBody;
use assay_runner::{RunError, RunRequest};
use assay_store::{
    ContextType, DefinitionKind, Hook, HookDelivery, LabelSelector, NewHook, RunningContext,
    StartedExecution,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::webhooks;

type HmacSha256 = Hmac<Sha256>;

/// Unverified deliveries a hook takes in a burst before it answers 429.
pub const UNSIGNED_BURST: f64 = 20.0;
/// Unverified deliveries per second a hook takes after its burst.
pub const UNSIGNED_PER_SECOND: f64 = 1.0;

/// A token bucket per hook for deliveries that fail verification (in memory, per server):
/// whoever does not know the secret cannot grow the delivery log faster than this.
#[derive(Clone, Default)]
pub struct UnsignedLimiter {
    buckets: Arc<Mutex<HashMap<String, (f64, Instant)>>>,
}

impl UnsignedLimiter {
    /// Take one token of hook `name`; `Err(seconds)` until the next one when none is left.
    fn take(&self, name: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets
            .entry(name.to_string())
            .or_insert((UNSIGNED_BURST, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * UNSIGNED_PER_SECOND)
            .min(UNSIGNED_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / UNSIGNED_PER_SECOND).ceil().max(1.0) as u64)
        }
    }
}

/// The body of `PUT /v1/hooks/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HookRequest {
    /// The shared secret (GitHub's webhook secret, GitLab's secret token). Never returned.
    pub secret: String,
    /// Label selector of the stored workflows to run (`app=web`); required.
    pub selector: String,
    /// Event kinds to act on (`push`, `pull_request`, `merge_request`, `tag_push`, ...); empty:
    /// every event but GitHub's `ping`.
    #[serde(default)]
    pub events: Vec<String>,
    /// Config for each workflow: parameter name → template over the payload
    /// (`{{ payload.head_commit.message }}`). Empty: the standard values (`branch`, `commit`,
    /// `repository`, `event`, `pr`, ...) for every parameter of those names the workflow declares.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// Whether the delivery proved it knows the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signature {
    Valid,
    Invalid,
    Missing,
}

impl Signature {
    fn as_str(self) -> &'static str {
        match self {
            Signature::Valid => "valid",
            Signature::Invalid => "invalid",
            Signature::Missing => "missing",
        }
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Check GitHub's HMAC or GitLab's token, in constant time.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Signature {
    if let Some(sig) = header(headers, "x-hub-signature-256") {
        let Some(expected) = sig.strip_prefix("sha256=").and_then(decode_hex) else {
            return Signature::Invalid;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
            return Signature::Invalid;
        };
        mac.update(body);
        return if mac.verify_slice(&expected).is_ok() {
            Signature::Valid
        } else {
            Signature::Invalid
        };
    }
    if let Some(token) = header(headers, "x-gitlab-token") {
        // Equal keys give equal tags; `verify_slice` compares the tags in constant time, so
        // the comparison says nothing about where the token and the secret differ.
        const MESSAGE: &[u8] = b"assay gitlab token";
        let tag = |key: &[u8]| {
            HmacSha256::new_from_slice(key).map(|mut m| {
                m.update(MESSAGE);
                m
            })
        };
        let (Ok(expected), Ok(given)) = (tag(secret.as_bytes()), tag(token.as_bytes())) else {
            return Signature::Invalid;
        };
        return if given
            .verify_slice(&expected.finalize().into_bytes())
            .is_ok()
        {
            Signature::Valid
        } else {
            Signature::Invalid
        };
    }
    Signature::Missing
}

/// The event kind: GitHub's `X-GitHub-Event`, GitLab's `X-Gitlab-Event` (`Push Hook` → `push`,
/// `Merge Request Hook` → `merge_request`), GitLab's `object_kind`, or `X-Assay-Event`.
fn event_kind(headers: &HeaderMap, payload: &Value) -> String {
    if let Some(e) = header(headers, "x-github-event") {
        return e.to_string();
    }
    if let Some(e) = header(headers, "x-gitlab-event") {
        let e = e.to_lowercase();
        let e = e.strip_suffix(" hook").unwrap_or(&e);
        return e.replace(' ', "_");
    }
    if let Some(kind) = payload.get("object_kind").and_then(Value::as_str) {
        return kind.to_string();
    }
    header(headers, "x-assay-event")
        .unwrap_or_default()
        .to_string()
}

fn text_at(payload: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| match payload.pointer(p)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The standard values of a GitHub or GitLab payload (absent ones are left out).
fn standard_values(event: &str, payload: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !event.is_empty() {
        out.insert("event".into(), event.to_string());
    }
    let git_ref = text_at(payload, &["/ref"]);
    let pr_branch = text_at(
        payload,
        &["/pull_request/head/ref", "/object_attributes/source_branch"],
    );
    if let Some(branch) = pr_branch.or_else(|| {
        git_ref
            .as_deref()
            .and_then(|r| r.strip_prefix("refs/heads/"))
            .map(str::to_string)
    }) {
        out.insert("branch".into(), branch);
    }
    if let Some(tag) = git_ref
        .as_deref()
        .and_then(|r| r.strip_prefix("refs/tags/"))
    {
        out.insert("tag".into(), tag.to_string());
    }
    let pairs: [(&str, &[&str]); 5] = [
        (
            "commit",
            &[
                "/pull_request/head/sha",
                "/object_attributes/last_commit/id",
                "/checkout_sha",
                "/after",
            ],
        ),
        (
            "repository",
            &["/repository/full_name", "/project/path_with_namespace"],
        ),
        (
            "pr",
            &["/pull_request/number", "/object_attributes/iid", "/number"],
        ),
        (
            "baseBranch",
            &["/pull_request/base/ref", "/object_attributes/target_branch"],
        ),
        ("action", &["/action", "/object_attributes/action"]),
    ];
    for (key, pointers) in pairs {
        if let Some(v) = text_at(payload, pointers) {
            out.insert(key.to_string(), v);
        }
    }
    out
}

/// Check a hook's templates and selector.
fn check_request(request: &HookRequest) -> ApiResult<()> {
    if request.secret.trim().len() < 8 {
        return Err(ApiError::bad_request(
            "`secret` must be at least 8 characters (use the webhook secret you give GitHub or GitLab)",
        ));
    }
    if request.selector.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`selector` is required: the label selector of the workflows to run (`app=web`)",
        ));
    }
    LabelSelector::parse(&request.selector).map_err(ApiError::bad_request)?;
    let env = minijinja::Environment::new();
    for (key, template) in &request.config {
        env.template_from_str(template).map_err(|e| {
            ApiError::bad_request(format!(
                "`config.{key}` does not parse: {e} (templates are Jinja-like: `{{{{ branch }}}}`, `{{{{ payload.after }}}}`)"
            ))
        })?;
    }
    Ok(())
}

/// Create or replace a hook. The secret is stored and never returned.
#[utoipa::path(put, path = "/v1/hooks/{name}", tag = "hooks",
    params(("name" = String, Path)),
    request_body(content = HookRequest, content_type = "application/json"),
    responses((status = 201, description = "created (without its secret)", body = Object),
              (status = 200, description = "replaced (without its secret)", body = Object),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_hook(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let request: HookRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a hook: {e}")))?;
    if let Some(problem) = assay_spec::validate::kubernetes_name_problem(&name) {
        return Err(ApiError::bad_request(format!(
            "`{name}` is not a valid hook name: {problem}"
        )));
    }
    check_request(&request)?;
    let (hook, created) = state
        .store
        .put_hook(&NewHook {
            name,
            secret: request.secret,
            selector: request.selector,
            events: request.events,
            config: request.config,
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(hook)).into_response())
}

/// Every hook (never their secrets).
#[utoipa::path(get, path = "/v1/hooks", tag = "hooks",
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody)))]
pub async fn list_hooks(State(state): State<AppState>) -> ApiResult<Json<Vec<Hook>>> {
    Ok(Json(state.store.list_hooks().await?))
}

/// One hook (never its secret).
#[utoipa::path(get, path = "/v1/hooks/{name}", tag = "hooks",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_hook(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Hook>> {
    Ok(Json(state.store.get_hook(&name).await?))
}

/// Delete a hook (its delivery log stays).
#[utoipa::path(delete, path = "/v1/hooks/{name}", tag = "hooks",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete_hook(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if state.store.delete_hook(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("hook `{name}` not found")))
    }
}

/// The hook's deliveries, newest first: time, event, signature, outcome, the executions
/// started and the error.
#[utoipa::path(get, path = "/v1/hooks/{name}/deliveries", tag = "hooks",
    params(("name" = String, Path), ("limit" = Option<i64>, Query, nullable = false, description = "at most this many (default 100, at most 1000)")),
    responses((status = 200, body = Vec<Object>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn hook_deliveries(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<HookDelivery>>> {
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("limit `{l}` is not a number")))?,
        None => 100,
    };
    let deliveries = state.store.list_hook_deliveries(&name, limit).await?;
    if deliveries.is_empty() {
        state.store.get_hook(&name).await?;
    }
    Ok(Json(deliveries))
}

/// Receive a webhook. Authenticated by `X-Hub-Signature-256` (GitHub: `sha256=` and the
/// HMAC-SHA256 of the body with the hook's secret) or `X-Gitlab-Token` (the secret), not by a
/// bearer token. Queues every stored workflow the hook selects; answers with the recorded
/// delivery.
#[utoipa::path(post, path = "/v1/hooks/{name}", tag = "hooks",
    params(("name" = String, Path),
           ("X-Hub-Signature-256" = Option<String>, Header, description = "GitHub: sha256=HEX"),
           ("X-Gitlab-Token" = Option<String>, Header, description = "GitLab: the secret"),
           ("X-GitHub-Event" = Option<String>, Header, description = "event kind (or X-Gitlab-Event, X-Assay-Event)")),
    request_body(content = Object, content_type = "application/json", description = "the event payload (any JSON)"),
    responses((status = 202, description = "the recorded delivery, with the executions queued", body = Object),
              (status = 400, description = "not JSON", body = ErrorBody),
              (status = 401, description = "missing or wrong signature (recorded)", body = ErrorBody),
              (status = 404, description = "no such hook", body = ErrorBody),
              (status = 413, body = ErrorBody),
              (status = 429, description = "too many unverified deliveries to this hook (not recorded; see Retry-After)", body = ErrorBody)),
    security(()))]
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let (hook, secret) = state.store.hook_secret(&name).await?;
    let payload: Option<Value> = serde_json::from_slice(&body).ok();
    let mut delivery = HookDelivery {
        id: uuid::Uuid::now_v7().to_string(),
        hook: name.clone(),
        received_at: assay_store::now_ms(),
        event: event_kind(&headers, payload.as_ref().unwrap_or(&Value::Null)),
        signature: String::new(),
        outcome: "rejected".into(),
        executions: Vec::new(),
        error: None,
    };
    let signature = verify(&secret, &headers, &body);
    delivery.signature = signature.as_str().into();
    if signature != Signature::Valid {
        if let Err(wait) = state.unsigned_hooks.take(&name) {
            state.metrics.hook_delivery_limited(&name);
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many unverified deliveries to hook `{name}`: this one was not recorded; \
                     sign deliveries with the hook's secret (retry after {wait}s)"
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, wait.into());
            return Ok(response);
        }
        let detail = if signature == Signature::Missing {
            "the delivery is not signed: send `X-Hub-Signature-256: sha256=HMAC` (GitHub) or `X-Gitlab-Token` (GitLab)"
        } else {
            "the delivery's signature does not match the hook's secret"
        };
        delivery.error = Some(detail.into());
        state.store.record_hook_delivery(&delivery).await?;
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, detail));
    }
    let Some(payload) = payload else {
        let detail = "the payload is not JSON (GitHub: set the content type to application/json)";
        delivery.error = Some(detail.into());
        state.store.record_hook_delivery(&delivery).await?;
        return Err(ApiError::bad_request(detail));
    };
    let ignored = (hook.events.is_empty() && delivery.event == "ping")
        || (!hook.events.is_empty() && !hook.events.contains(&delivery.event));
    if ignored {
        delivery.outcome = "ignored".into();
        delivery.error = Some(format!(
            "event `{}` is not one this hook acts on",
            delivery.event
        ));
    } else {
        start(&state, &hook, &payload, &mut delivery).await?;
    }
    state.store.record_hook_delivery(&delivery).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)).into_response())
}

/// Queue the selected workflows, filling `delivery` with what happened.
async fn start(
    state: &AppState,
    hook: &Hook,
    payload: &Value,
    delivery: &mut HookDelivery,
) -> ApiResult<()> {
    let selector = LabelSelector::parse(&hook.selector).map_err(ApiError::internal)?;
    let standard = standard_values(&delivery.event, payload);
    let mut context: Map<String, Value> = standard
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    context.insert("payload".into(), payload.clone());
    context.insert("hook".into(), Value::String(hook.name.clone()));
    let context = minijinja::Value::from_serialize(&context);
    let env = minijinja::Environment::new();
    let mut values = BTreeMap::new();
    let mut errors = Vec::new();
    if hook.config.is_empty() {
        values = standard;
    } else {
        for (key, template) in &hook.config {
            match env.render_str(template, context.clone()) {
                Ok(v) => {
                    values.insert(key.clone(), v);
                }
                Err(e) => errors.push(format!("config `{key}`: {e}")),
            }
        }
    }
    let definitions = state
        .store
        .list_definitions(DefinitionKind::Workflow, &selector)
        .await?;
    if definitions.is_empty() {
        errors.push(format!(
            "no stored workflow matches the selector `{}`",
            hook.selector
        ));
    }
    let templates = assay_service::definitions::templates(&state.store).await?;
    for def in definitions {
        let workflow = match assay_service::definitions::workflow_from_yaml(
            &format!("stored workflow {}", def.name),
            &def.yaml,
        ) {
            Ok(w) => w,
            Err(_) => {
                errors.push(format!("stored workflow `{}` does not load", def.name));
                continue;
            }
        };
        // Only the parameters the workflow declares: others would be refused.
        let config = values
            .iter()
            .filter(|(k, _)| workflow.spec.config.contains_key(*k))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut run = RunRequest::new(workflow, templates.clone());
        run.config = config;
        run.tags = BTreeMap::from([("hook".to_string(), hook.name.clone())]);
        run.running_context = RunningContext {
            kind: ContextType::Trigger,
            actor: Some(format!("hook {}", hook.name)),
            ci: None,
            execution_id: None,
        };
        let summary = match state.service.submit(run, None).await {
            Ok(summary) => summary,
            Err(RunError::Store(e)) => return Err(e.into()),
            Err(e) => {
                errors.push(format!("workflow `{}`: {e}", def.name));
                continue;
            }
        };
        delivery.executions.push(StartedExecution {
            workflow: summary.workflow,
            id: summary.id,
            name: summary.name,
        });
    }
    delivery.outcome = if delivery.executions.is_empty() {
        if errors.is_empty() {
            "ignored"
        } else {
            "failed"
        }
    } else {
        "started"
    }
    .into();
    if !errors.is_empty() {
        delivery.error = Some(errors.join("; "));
    }
    Ok(())
}

const TT: assay_service::DocumentKind = assay_service::DocumentKind::TestTrigger;

/// List Testkube TestTriggers (they act when the server runs with `--kubernetes`).
#[utoipa::path(get, path = "/v1/triggers", tag = "triggers",
    params(("selector" = Option<String>, Query, nullable = false, pattern = r"^ *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?(, *((![ ]*[A-Za-z0-9][-A-Za-z0-9_./]*|[A-Za-z0-9][-A-Za-z0-9_./]*( *(==?|!=) *[-A-Za-z0-9_.]*)?) *)?)*$", description = "label selector (the store's grammar, as for workflows)")),
    responses((status = 200, body = Vec<Object>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_triggers(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Value>>> {
    crate::definitions::list(&s, TT, &q).await
}

/// Store a TestTrigger (YAML or JSON). It acts on Kubernetes events when the server runs with
/// `--kubernetes`; the response says so in a `Warning` header.
#[utoipa::path(post, path = "/v1/triggers", tag = "triggers",
    request_body(content = Object, content_type = "application/json", description = "a TestTrigger (YAML with text/yaml)"),
    responses((status = 201, body = Object), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_trigger(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    webhooks::create_resource(&s, TT, &headers, &body).await
}

/// One TestTrigger.
#[utoipa::path(get, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_trigger(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    crate::definitions::get(&s, TT, &name).await
}

/// Replace a TestTrigger.
#[utoipa::path(put, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_trigger(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    webhooks::update_resource(&s, TT, &name, &headers, &body).await
}

/// Delete a TestTrigger.
#[utoipa::path(delete, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete_trigger(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    crate::definitions::delete(&s, TT, &name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    #[test]
    fn signatures() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut h = HeaderMap::new();
        assert_eq!(verify("secret-1", &h, body), Signature::Missing);
        h.insert(
            "x-hub-signature-256",
            sign("secret-1", body).parse().unwrap(),
        );
        assert_eq!(verify("secret-1", &h, body), Signature::Valid);
        assert_eq!(verify("secret-2", &h, body), Signature::Invalid);
        assert_eq!(verify("secret-1", &h, b"{}"), Signature::Invalid);
        h.insert("x-hub-signature-256", "sha256=zz".parse().unwrap());
        assert_eq!(verify("secret-1", &h, body), Signature::Invalid);
        let mut g = HeaderMap::new();
        g.insert("x-gitlab-token", "secret-1".parse().unwrap());
        assert_eq!(verify("secret-1", &g, body), Signature::Valid);
        assert_eq!(verify("secret-10", &g, body), Signature::Invalid);
    }

    #[test]
    fn standard_values_of_github_and_gitlab() {
        let push = serde_json::json!({"ref": "refs/heads/main", "after": "abc123",
            "repository": {"full_name": "acme/web"}});
        let v = standard_values("push", &push);
        assert_eq!(v["branch"], "main");
        assert_eq!(v["commit"], "abc123");
        assert_eq!(v["repository"], "acme/web");
        let pr = serde_json::json!({"action": "opened", "number": 7, "pull_request": {"number": 7,
            "head": {"ref": "feature", "sha": "def456"}, "base": {"ref": "main"}},
            "repository": {"full_name": "acme/web"}});
        let v = standard_values("pull_request", &pr);
        assert_eq!(
            (
                v["pr"].as_str(),
                v["branch"].as_str(),
                v["commit"].as_str(),
                v["baseBranch"].as_str()
            ),
            ("7", "feature", "def456", "main")
        );
        let mr = serde_json::json!({"object_kind": "merge_request", "project": {"path_with_namespace": "acme/api"},
            "object_attributes": {"iid": 3, "source_branch": "fix", "target_branch": "main",
            "last_commit": {"id": "0badc0de"}, "action": "open"}});
        let v = standard_values("merge_request", &mr);
        assert_eq!(
            (v["pr"].as_str(), v["branch"].as_str(), v["commit"].as_str()),
            ("3", "fix", "0badc0de")
        );
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-event", "Merge Request Hook".parse().unwrap());
        assert_eq!(event_kind(&h, &Value::Null), "merge_request");
    }
}
