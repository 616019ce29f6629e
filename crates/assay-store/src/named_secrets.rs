//! Named secrets: what a workflow reads where Kubernetes would read a Secret
//! (`valueFrom.secretKeyRef`, `envFrom.secretRef`, `contentFrom.secretKeyRef`, git
//! `tokenFrom`). Each is a name holding keys, like a Kubernetes Secret; values are sealed with
//! the data directory's key and opened only to run a workflow that names them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Store;
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::executions::retry_busy;
use crate::model::{UnixMs, now_ms};

/// Longest name or key, as Kubernetes allows (a DNS subdomain; a key of a Secret's data).
pub const NAMED_SECRET_NAME_MAX: usize = 253;
/// Largest value, as one Kubernetes Secret may hold in all.
pub const NAMED_SECRET_VALUE_MAX: usize = 1024 * 1024;

/// A named secret as listed: its keys, never its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedSecretInfo {
    pub name: String,
    pub keys: Vec<String>,
    pub updated_at: UnixMs,
}

/// Values by secret name, then key.
pub type NamedSecretValues = BTreeMap<String, BTreeMap<String, String>>;

/// Checks a secret's name the way Kubernetes checks a Secret's (lowercase letters, digits,
/// `-` and `.`, starting and ending with a letter or digit).
pub fn check_secret_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= NAMED_SECRET_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "`{name}` is not a valid secret name: use lowercase letters, digits, `-` and `.`, \
             starting and ending with a letter or digit, at most {NAMED_SECRET_NAME_MAX} characters \
             (as Kubernetes names a Secret)"
        )))
    }
}

/// Checks a key the way Kubernetes checks the keys of a Secret's data.
pub fn check_secret_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= NAMED_SECRET_NAME_MAX
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && key != "..";
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "`{key}` is not a valid secret key: use letters, digits, `-`, `_` and `.`, at most \
             {NAMED_SECRET_NAME_MAX} characters (as Kubernetes keys a Secret's data)"
        )))
    }
}

impl Store {
    /// Sets keys of the secret `name` (made when it does not exist). With `replace`, keys not in
    /// `entries` are removed, so the secret holds exactly `entries`. All or nothing.
    pub async fn set_named_secret(
        &self,
        name: &str,
        entries: &[(String, String)],
        replace: bool,
    ) -> Result<()> {
        check_secret_name(name)?;
        if entries.is_empty() {
            return Err(StoreError::Invalid(format!(
                "no keys given for secret `{name}`"
            )));
        }
        let mut sealed = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            check_secret_key(key)?;
            if value.len() > NAMED_SECRET_VALUE_MAX {
                return Err(StoreError::Invalid(format!(
                    "the value of `{name}`/`{key}` is {} bytes; a secret value holds at most {NAMED_SECRET_VALUE_MAX}",
                    value.len()
                )));
            }
            sealed.push((key.as_str(), self.inner_secrets().seal(value)?));
        }
        let db = self.db();
        let now = now_ms();
        retry_busy(|| async {
            let mut tx = db.begin_write().await?;
            if replace {
                sqlx::query("DELETE FROM named_secrets WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            for (key, value) in &sealed {
                sqlx::query(
                    "INSERT INTO named_secrets (name, key, value, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name, key) DO UPDATE SET value = excluded.value, \
                     updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(*key)
                .bind(value)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })
        .await
        .map_err(|e| db.err("store the secret", e))
    }

    /// Every named secret with its keys (no values), by name.
    pub async fn list_named_secrets(&self) -> Result<Vec<NamedSecretInfo>> {
        let db = self.db();
        let rows =
            sqlx::query("SELECT name, key, updated_at FROM named_secrets ORDER BY name, key")
                .fetch_all(&db.pool)
                .await
                .map_err(|e| db.err("list secrets", e))?;
        let mut out: Vec<NamedSecretInfo> = Vec::new();
        for row in &rows {
            let name = row.text("name")?;
            let key = row.text("key")?;
            let at = row.int("updated_at")?;
            match out.last_mut() {
                Some(last) if last.name == name => {
                    last.keys.push(key);
                    last.updated_at = last.updated_at.max(at);
                }
                _ => out.push(NamedSecretInfo {
                    name,
                    keys: vec![key],
                    updated_at: at,
                }),
            }
        }
        Ok(out)
    }

    /// Deletes the secret `name`, or only its `key`; `false` when there was nothing to delete.
    pub async fn delete_named_secret(&self, name: &str, key: Option<&str>) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            match key {
                Some(k) => {
                    sqlx::query("DELETE FROM named_secrets WHERE name = $1 AND key = $2")
                        .bind(name)
                        .bind(k)
                        .execute(&db.writer)
                        .await
                }
                None => {
                    sqlx::query("DELETE FROM named_secrets WHERE name = $1")
                        .bind(name)
                        .execute(&db.writer)
                        .await
                }
            }
        })
        .await
        .map_err(|e| db.err("delete the secret", e))?;
        Ok(done.rows_affected() > 0)
    }

    /// The values of the secrets named (names not stored are absent from the answer).
    pub async fn named_secret_values(&self, names: &[String]) -> Result<NamedSecretValues> {
        let mut out = NamedSecretValues::new();
        let db = self.db();
        for name in names {
            let rows = sqlx::query("SELECT key, value FROM named_secrets WHERE name = $1")
                .bind(name)
                .fetch_all(&db.pool)
                .await
                .map_err(|e| db.err("read a secret", e))?;
            for row in &rows {
                let value = self.inner_secrets().open_text(&row.text("value")?)?;
                out.entry(name.clone())
                    .or_default()
                    .insert(row.text("key")?, value);
            }
        }
        Ok(out)
    }
}
