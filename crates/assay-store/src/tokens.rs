//! API tokens of the server: a name, a role and the SHA-256 of the secret. The secret itself is
//! shown once when it is created and never stored.
//!
//! A token found in the database is trusted for [`TOKEN_CACHE_TTL`] without reading its row
//! again (kept in memory by its hash, never by its secret; unknown tokens are not kept, so a
//! new token works at once and guessing fills no memory). Revoking through a [`Store`] forgets
//! its tokens at once in that handle; a token revoked by another process (`assay token revoke`
//! beside a running server, another server on the same PostgreSQL) is refused at most
//! [`TOKEN_CACHE_TTL`] later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Store;
use crate::db::{RowExt, is_unique_violation};
use crate::error::{Result, StoreError};
use crate::executions::retry_busy;
use crate::model::{UnixMs, now_ms};

pub use assay_api::TokenRole;

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub name: String,
    pub role: TokenRole,
    pub created_at: UnixMs,
    pub last_used_at: Option<UnixMs>,
}

/// How long a token found in the database is trusted without reading its row again: the
/// longest a token revoked by another process is still accepted here.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);

/// A generation, bumped by every revocation, and the tokens found by hash, with when.
type Entries = (u64, HashMap<String, (TokenInfo, Instant)>);

/// Tokens looked up recently, by hash (see the module's documentation).
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<Entries>,
}

impl TokenCache {
    /// Entries kept before expired ones are dropped (at most one per stored token is live).
    const PRUNE_ABOVE: usize = 1024;

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of `hash` if it is fresh, and the generation to [`TokenCache::put`] with.
    fn get(&self, hash: &str) -> (Option<TokenInfo>, u64) {
        let guard = self.lock();
        let info = guard
            .1
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(info, _)| info.clone());
        (info, guard.0)
    }

    /// Keep what a lookup found, unless a revocation happened since it began (`generation`):
    /// the row it read may be gone.
    fn put(&self, hash: String, info: TokenInfo, generation: u64) {
        let mut guard = self.lock();
        if guard.0 != generation {
            return;
        }
        if guard.1.len() >= Self::PRUNE_ABOVE {
            guard.1.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
        }
        guard.1.insert(hash, (info, Instant::now()));
    }

    /// Forget every token, and every lookup still under way.
    fn revoked(&self) {
        let mut guard = self.lock();
        guard.0 += 1;
        guard.1.clear();
    }
}

/// Hex SHA-256 of a token secret, as stored.
pub fn hash_token(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// A new random secret: `assay_` and 244 random bits (two v4 UUIDs) in hex.
fn new_secret() -> String {
    format!(
        "assay_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn info_from_row(row: &sqlx::any::AnyRow) -> Result<TokenInfo> {
    let role = row.text("role")?;
    Ok(TokenInfo {
        name: row.text("name")?,
        role: TokenRole::parse(&role).ok_or_else(|| StoreError::Decode {
            what: "token role".into(),
            detail: format!("unknown role `{role}`"),
        })?,
        created_at: row.int("created_at")?,
        last_used_at: row.opt_int("last_used_at")?,
    })
}

impl Store {
    /// Create a token; returns it with its secret, which is not kept anywhere.
    pub async fn create_token(&self, name: &str, role: TokenRole) -> Result<(TokenInfo, String)> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a token needs a name".into()));
        }
        let secret = new_secret();
        let hash = hash_token(&secret);
        let now = now_ms();
        let db = self.db();
        let result = retry_busy(|| async {
            sqlx::query(
                "INSERT INTO api_tokens (name, role, token_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(role.as_str())
            .bind(&hash)
            .bind(now)
            .execute(&db.writer)
            .await
        })
        .await;
        match result {
            Ok(_) => Ok((
                TokenInfo {
                    name: name.to_string(),
                    role,
                    created_at: now,
                    last_used_at: None,
                },
                secret,
            )),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Invalid(format!(
                "a token named `{name}` already exists"
            ))),
            Err(e) => Err(db.err("store the token", e)),
        }
    }

    /// The token whose secret is `secret`, if any; records when it was last used (at most
    /// about once a minute, so reads do not turn into writes). A token found less than
    /// [`TOKEN_CACHE_TTL`] ago is answered from memory.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>> {
        let hash = hash_token(secret);
        let (cached, generation) = self.token_cache().get(&hash);
        if let Some(info) = cached {
            return Ok(Some(info));
        }
        let db = self.db();
        let row = sqlx::query(
            "SELECT name, role, created_at, last_used_at FROM api_tokens WHERE token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| db.err("look up the token", e))?;
        let Some(row) = row else { return Ok(None) };
        let info = info_from_row(&row)?;
        let now = now_ms();
        if info.last_used_at.is_none_or(|t| now - t > 60_000) {
            // Best effort: a busy database must not fail the request.
            let _ = sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1")
                .bind(&hash)
                .bind(now)
                .execute(&db.writer)
                .await;
        }
        self.token_cache().put(hash, info.clone(), generation);
        Ok(Some(info))
    }

    /// Every token, by name.
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let db = self.db();
        sqlx::query("SELECT name, role, created_at, last_used_at FROM api_tokens ORDER BY name")
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("list tokens", e))?
            .iter()
            .map(info_from_row)
            .collect()
    }

    /// Delete a token; `false` when there was none of that name. This handle refuses it from
    /// now on; other processes within [`TOKEN_CACHE_TTL`].
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query("DELETE FROM api_tokens WHERE name = $1")
                .bind(name)
                .execute(&db.writer)
                .await
        })
        .await
        .map_err(|e| db.err("revoke the token", e))?;
        // After the delete: a lookup that read the row before it does not keep it either.
        self.token_cache().revoked();
        Ok(done.rows_affected() == 1)
    }
}
