//! Inbound hooks and the delivery logs of hooks and outbound webhooks (`0005_hooks.sql`).
//!
//! A hook is a named endpoint (`POST /v1/hooks/{name}` on the server) with a secret, a label
//! selector of the workflows it runs, the event kinds it accepts and the config it passes. The
//! secret is sealed with the data directory's key (HMAC verification needs the key itself, so
//! it cannot be a hash) and is only handed out by [`Store::hook_secret`], never in a [`Hook`]. Every delivery, rejected ones included, is a
//! [`HookDelivery`]; every outbound webhook attempt a [`WebhookAttempt`]. `Webhook` and
//! `TestTrigger` documents are [`StoredResource`]s (the latest document, no revisions).

use std::collections::BTreeMap;

use assay_spec::load::ResourceKind;
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::executions::{from_json, retry_busy, to_json};
use crate::model::{ApplyOutcome, UnixMs, now_ms};

/// A stored hook, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub name: String,
    /// Label selector of the stored workflows a delivery runs (`app=web,tier!=slow`).
    pub selector: String,
    /// Event kinds accepted (`push`, `pull_request`, `merge_request`, ...); empty: all.
    pub events: Vec<String>,
    /// Config passed to each workflow: parameter name → template over the payload.
    pub config: BTreeMap<String, String>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// What [`Store::put_hook`] stores.
#[derive(Debug, Clone, Default)]
pub struct NewHook {
    pub name: String,
    pub secret: String,
    pub selector: String,
    pub events: Vec<String>,
    pub config: BTreeMap<String, String>,
}

/// One execution a hook delivery queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartedExecution {
    pub workflow: String,
    pub id: String,
    pub name: String,
}

/// One request to a hook, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookDelivery {
    pub id: String,
    pub hook: String,
    pub received_at: UnixMs,
    /// The event kind (`push`, `pull_request`, ...) or empty when unknown.
    pub event: String,
    /// `valid` (HMAC or token matched), `invalid` or `missing`.
    pub signature: String,
    /// `started`, `ignored` (event or selector matched nothing), `rejected` or `failed`.
    pub outcome: String,
    pub executions: Vec<StartedExecution>,
    pub error: Option<String>,
}

/// One attempt to deliver an event to an outbound webhook. Header values and secret config
/// values are masked before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAttempt {
    pub id: String,
    pub webhook: String,
    /// The event's id: every attempt of one event shares it.
    pub event_id: String,
    /// `start-testworkflow`, `end-testworkflow-failed`, ...
    pub event: String,
    pub execution_id: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub at: UnixMs,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub payload: String,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// The receiver answered 2xx.
    pub delivered: bool,
}

/// Most rows a delivery listing returns, and most deliveries kept per hook.
pub const MAX_DELIVERIES: i64 = 1000;

/// A stored delivery's event kind is cut to this many characters.
pub const MAX_EVENT_CHARS: usize = 100;

/// A stored delivery's error is cut to this many bytes.
pub const MAX_ERROR_BYTES: usize = 1024;

/// Appended to a field that was cut before it was stored.
pub const CUT_MARKER: &str = "…[cut]";

fn cut_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}{CUT_MARKER}", &text[..at]),
        None => text.to_string(),
    }
}

fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut at = max;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}{CUT_MARKER}", &text[..at])
}

fn hook_from_row(row: &sqlx::any::AnyRow) -> Result<Hook> {
    Ok(Hook {
        name: row.text("name")?,
        selector: row.text("selector")?,
        events: from_json("hook events", &row.text("events")?)?,
        config: from_json("hook config", &row.text("config")?)?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

impl Store {
    /// Create or replace the hook `hook.name`; `true` when it was created.
    pub async fn put_hook(&self, hook: &NewHook) -> Result<(Hook, bool)> {
        let name = hook.name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a hook needs a name".into()));
        }
        if hook.secret.is_empty() {
            return Err(StoreError::Invalid(format!("hook `{name}` needs a secret")));
        }
        let events = to_json(&hook.events)?;
        let config = to_json(&hook.config)?;
        let sealed = self.inner_secrets().seal(&hook.secret)?;
        let now = now_ms();
        let db = self.db();
        let created = retry_busy(|| async {
            let mut tx = db.begin_write().await?;
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT created_at FROM hooks WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if existing.is_some() {
                sqlx::query(
                    "UPDATE hooks SET secret = $2, selector = $3, events = $4, config = $5, \
                     updated_at = $6 WHERE name = $1",
                )
                .bind(name)
                .bind(&sealed)
                .bind(&hook.selector)
                .bind(&events)
                .bind(&config)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "INSERT INTO hooks (name, secret, selector, events, config, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(name)
                .bind(&sealed)
                .bind(&hook.selector)
                .bind(&events)
                .bind(&config)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(existing.is_none())
        })
        .await
        .map_err(|e| db.err("store the hook", e))?;
        Ok((self.get_hook(name).await?, created))
    }

    /// The hook `name`, without its secret.
    pub async fn get_hook(&self, name: &str) -> Result<Hook> {
        let db = self.db();
        let row = sqlx::query(
            "SELECT name, selector, events, config, created_at, updated_at FROM hooks WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| db.err("read the hook", e))?
        .ok_or_else(|| StoreError::not_found(format!("hook `{name}`")))?;
        hook_from_row(&row)
    }

    /// The hook `name` and its secret, for verifying a delivery.
    pub async fn hook_secret(&self, name: &str) -> Result<(Hook, String)> {
        let db = self.db();
        let row = sqlx::query(
            "SELECT name, secret, selector, events, config, created_at, updated_at FROM hooks \
             WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| db.err("read the hook", e))?
        .ok_or_else(|| StoreError::not_found(format!("hook `{name}`")))?;
        let secret = self.inner_secrets().open_text(&row.text("secret")?)?;
        Ok((hook_from_row(&row)?, secret))
    }

    /// Seal the hook secrets stored in clear text by an older Assay (on open).
    pub(crate) async fn seal_clear_hook_secrets(&self) -> Result<()> {
        let db = self.db();
        let rows = sqlx::query("SELECT name, secret FROM hooks")
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("read the hooks", e))?;
        for row in rows {
            let (name, secret) = (row.text("name")?, row.text("secret")?);
            if crate::secrets::SecretBox::is_sealed(&secret) {
                continue;
            }
            let sealed = self.inner_secrets().seal(&secret)?;
            retry_busy(|| async {
                let mut tx = db.begin_write().await?;
                sqlx::query("UPDATE hooks SET secret = $2 WHERE name = $1 AND secret = $3")
                    .bind(&name)
                    .bind(&sealed)
                    .bind(&secret)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            })
            .await
            .map_err(|e| db.err("seal a hook secret", e))?;
        }
        Ok(())
    }

    /// Every hook, by name, without secrets.
    pub async fn list_hooks(&self) -> Result<Vec<Hook>> {
        let db = self.db();
        sqlx::query(
            "SELECT name, selector, events, config, created_at, updated_at FROM hooks ORDER BY name",
        )
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list hooks", e))?
        .iter()
        .map(hook_from_row)
        .collect()
    }

    /// Delete a hook (its delivery log stays); `false` when there was none of that name.
    pub async fn delete_hook(&self, name: &str) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query("DELETE FROM hooks WHERE name = $1")
                .bind(name)
                .execute(&db.writer)
                .await
        })
        .await
        .map_err(|e| db.err("delete the hook", e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Record one delivery to a hook. The request-controlled fields are cut to
    /// [`MAX_EVENT_CHARS`] and [`MAX_ERROR_BYTES`], and only the newest [`MAX_DELIVERIES`] of
    /// the hook are kept (older ones are dropped in the same transaction).
    pub async fn record_hook_delivery(&self, d: &HookDelivery) -> Result<()> {
        let executions = to_json(&d.executions)?;
        let event = cut_chars(&d.event, MAX_EVENT_CHARS);
        let error = d.error.as_deref().map(|e| cut_bytes(e, MAX_ERROR_BYTES));
        let db = self.db();
        retry_busy(|| async {
            let mut tx = db.begin_write().await?;
            sqlx::query(
                "INSERT INTO hook_deliveries \
                 (id, hook, received_at, event, signature, outcome, executions, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&d.id)
            .bind(&d.hook)
            .bind(d.received_at)
            .bind(&event)
            .bind(&d.signature)
            .bind(&d.outcome)
            .bind(&executions)
            .bind(error.as_deref())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM hook_deliveries WHERE hook = $1 AND id NOT IN \
                 (SELECT id FROM hook_deliveries WHERE hook = $1 \
                 ORDER BY received_at DESC, id DESC LIMIT $2)",
            )
            .bind(&d.hook)
            .bind(MAX_DELIVERIES)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
        .await
        .map_err(|e| db.err("record the hook delivery", e))?;
        Ok(())
    }

    /// The newest deliveries to hook `name` first, at most `limit` (capped at
    /// [`MAX_DELIVERIES`]).
    pub async fn list_hook_deliveries(&self, name: &str, limit: i64) -> Result<Vec<HookDelivery>> {
        let db = self.db();
        let rows = sqlx::query(
            "SELECT id, hook, received_at, event, signature, outcome, executions, error \
             FROM hook_deliveries WHERE hook = $1 ORDER BY received_at DESC, id DESC LIMIT $2",
        )
        .bind(name)
        .bind(limit.clamp(1, MAX_DELIVERIES))
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list hook deliveries", e))?;
        rows.iter()
            .map(|row| {
                Ok(HookDelivery {
                    id: row.text("id")?,
                    hook: row.text("hook")?,
                    received_at: row.int("received_at")?,
                    event: row.text("event")?,
                    signature: row.text("signature")?,
                    outcome: row.text("outcome")?,
                    executions: from_json("hook delivery executions", &row.text("executions")?)?,
                    error: row.opt_text("error")?,
                })
            })
            .collect()
    }

    /// Record one attempt to deliver to an outbound webhook (already masked by the caller).
    pub async fn record_webhook_attempt(&self, a: &WebhookAttempt) -> Result<()> {
        let headers = to_json(&a.headers)?;
        let db = self.db();
        retry_busy(|| async {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, webhook, event_id, event, execution_id, \
                 attempt, at, url, headers, payload, status_code, error, delivered) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&a.id)
            .bind(&a.webhook)
            .bind(&a.event_id)
            .bind(&a.event)
            .bind(&a.execution_id)
            .bind(a.attempt)
            .bind(a.at)
            .bind(&a.url)
            .bind(&headers)
            .bind(&a.payload)
            .bind(a.status_code)
            .bind(a.error.as_deref())
            .bind(i64::from(a.delivered))
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("record the webhook attempt", e))?;
        Ok(())
    }

    /// The newest attempts of webhook `name` first, at most `limit` (capped at
    /// [`MAX_DELIVERIES`]).
    pub async fn list_webhook_attempts(
        &self,
        name: &str,
        limit: i64,
    ) -> Result<Vec<WebhookAttempt>> {
        let db = self.db();
        let rows = sqlx::query(
            "SELECT id, webhook, event_id, event, execution_id, attempt, at, url, headers, \
             payload, status_code, error, delivered FROM webhook_deliveries WHERE webhook = $1 \
             ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(name)
        .bind(limit.clamp(1, MAX_DELIVERIES))
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list webhook deliveries", e))?;
        rows.iter()
            .map(|row| {
                Ok(WebhookAttempt {
                    id: row.text("id")?,
                    webhook: row.text("webhook")?,
                    event_id: row.text("event_id")?,
                    event: row.text("event")?,
                    execution_id: row.text("execution_id")?,
                    attempt: row.int("attempt")?,
                    at: row.int("at")?,
                    url: row.text("url")?,
                    headers: from_json("webhook attempt headers", &row.text("headers")?)?,
                    payload: row.text("payload")?,
                    status_code: row.opt_int("status_code")?,
                    error: row.opt_text("error")?,
                    delivered: row.int("delivered")? != 0,
                })
            })
            .collect()
    }
}

/// A stored `Webhook` or `TestTrigger` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredResource {
    /// `Webhook` or `TestTrigger`.
    pub kind: String,
    pub name: String,
    /// The document as applied.
    pub yaml: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

fn resource_from_row(row: &sqlx::any::AnyRow) -> Result<StoredResource> {
    Ok(StoredResource {
        kind: row.text("kind")?,
        name: row.text("name")?,
        yaml: row.text("yaml")?,
        labels: from_json("resource labels", &row.text("labels")?)?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

fn noun(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Webhook => "webhook",
        ResourceKind::TestTrigger => "test trigger",
    }
}

impl Store {
    /// Store a `Webhook` or `TestTrigger` document, replacing the one of that name.
    pub async fn apply_resource(
        &self,
        kind: ResourceKind,
        name: &str,
        yaml: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<ApplyOutcome> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "a {} needs a name",
                noun(kind)
            )));
        }
        let labels_json = to_json(labels)?;
        let now = now_ms();
        let db = self.db();
        let outcome = retry_busy(|| async {
            let mut tx = db.begin_write().await?;
            let old =
                sqlx::query("SELECT yaml, labels FROM resources WHERE kind = $1 AND name = $2")
                    .bind(kind.as_str())
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let outcome = match old {
                Some(row) => {
                    let same = sqlx::Row::try_get::<String, _>(&row, "yaml")? == yaml
                        && sqlx::Row::try_get::<String, _>(&row, "labels")? == labels_json;
                    if same {
                        tx.rollback().await?;
                        return Ok(ApplyOutcome::Unchanged);
                    }
                    sqlx::query(
                        "UPDATE resources SET yaml = $3, labels = $4, updated_at = $5 \
                         WHERE kind = $1 AND name = $2",
                    )
                    .bind(kind.as_str())
                    .bind(name)
                    .bind(yaml)
                    .bind(&labels_json)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    ApplyOutcome::Updated
                }
                None => {
                    sqlx::query(
                        "INSERT INTO resources (kind, name, yaml, labels, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(kind.as_str())
                    .bind(name)
                    .bind(yaml)
                    .bind(&labels_json)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    ApplyOutcome::Created
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
        .await
        .map_err(|e| db.err("store the document", e))?;
        if outcome != ApplyOutcome::Unchanged {
            self.signal_resources(kind);
        }
        Ok(outcome)
    }

    /// The stored `kind` document `name`.
    pub async fn get_resource(&self, kind: ResourceKind, name: &str) -> Result<StoredResource> {
        let db = self.db();
        let row = sqlx::query(
            "SELECT kind, name, yaml, labels, created_at, updated_at FROM resources \
             WHERE kind = $1 AND name = $2",
        )
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| db.err("read the document", e))?
        .ok_or_else(|| StoreError::not_found(format!("{} `{name}`", noun(kind))))?;
        resource_from_row(&row)
    }

    /// Every stored `kind` document, by name.
    pub async fn list_resources(&self, kind: ResourceKind) -> Result<Vec<StoredResource>> {
        let db = self.db();
        sqlx::query(
            "SELECT kind, name, yaml, labels, created_at, updated_at FROM resources \
             WHERE kind = $1 ORDER BY name",
        )
        .bind(kind.as_str())
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list documents", e))?
        .iter()
        .map(resource_from_row)
        .collect()
    }

    /// Delete a stored document; `false` when there was none.
    pub async fn delete_resource(&self, kind: ResourceKind, name: &str) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query("DELETE FROM resources WHERE kind = $1 AND name = $2")
                .bind(kind.as_str())
                .bind(name)
                .execute(&db.writer)
                .await
        })
        .await
        .map_err(|e| db.err("delete the document", e))?;
        let deleted = done.rows_affected() == 1;
        if deleted {
            self.signal_resources(kind);
        }
        Ok(deleted)
    }
}
