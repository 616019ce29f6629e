//! Stored workflow and template definitions with revision history.
//!
//! `apply` stores a new revision only when the YAML text or the labels differ from the latest
//! one. `delete` is soft by default: the definition disappears from get/list but its revisions
//! stay for the record, and a later apply continues the revision numbers. Executions keep their
//! own copy of the definition they ran, so neither kind of delete touches them.

use std::collections::BTreeMap;

use crate::Store;
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::executions::{from_json, retry_busy, to_json};
use crate::model::*;

impl Store {
    /// Store `yaml` as the newest revision of `kind`/`name` unless it is unchanged.
    pub async fn apply(
        &self,
        kind: DefinitionKind,
        name: &str,
        yaml: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(ApplyOutcome, i64)> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "a {} needs a name",
                kind.noun()
            )));
        }
        let labels_json = to_json(labels)?;
        let db = self.db();
        let now = now_ms();
        retry_busy(|| async {
            let mut tx = db.begin_write().await?;
            // Create a placeholder row or lock the existing one, so that concurrent applies of
            // one name take turns (a row lock on PostgreSQL, the write lock on SQLite).
            sqlx::query(
                "INSERT INTO definitions (kind, name, revision, labels, created_at, updated_at) \
                 VALUES ($1, $2, 0, '{}', $3, $3) ON CONFLICT (kind, name) \
                 DO UPDATE SET updated_at = definitions.updated_at",
            )
            .bind(kind.noun())
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let current = sqlx::query(
                "SELECT d.revision, d.deleted_at, r.yaml, r.labels FROM definitions d \
                 LEFT JOIN definition_revisions r \
                 ON r.kind = d.kind AND r.name = d.name AND r.revision = d.revision \
                 WHERE d.kind = $1 AND d.name = $2",
            )
            .bind(kind.noun())
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            let revision: i64 = sqlx::Row::try_get(&current, "revision")?;
            let deleted: Option<i64> = sqlx::Row::try_get(&current, "deleted_at")?;
            let old_yaml: Option<String> = sqlx::Row::try_get(&current, "yaml")?;
            let old_labels: Option<String> = sqlx::Row::try_get(&current, "labels")?;
            let live = revision > 0 && deleted.is_none();
            if live && old_yaml.as_deref() == Some(yaml) && old_labels.as_deref() == Some(&labels_json)
            {
                tx.rollback().await?;
                return Ok((ApplyOutcome::Unchanged, revision));
            }
            // Revision numbers continue after a soft delete, so look at the history too.
            let last: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(revision), 0) FROM definition_revisions WHERE kind = $1 AND name = $2",
            )
            .bind(kind.noun())
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            let next = last + 1;
            sqlx::query(
                "INSERT INTO definition_revisions (kind, name, revision, yaml, labels, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(kind.noun())
            .bind(name)
            .bind(next)
            .bind(yaml)
            .bind(&labels_json)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE definitions SET revision = $3, labels = $4, updated_at = $5, \
                 deleted_at = NULL, created_at = CASE WHEN revision = 0 OR deleted_at IS NOT NULL \
                 THEN $5 ELSE created_at END WHERE kind = $1 AND name = $2",
            )
            .bind(kind.noun())
            .bind(name)
            .bind(next)
            .bind(&labels_json)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok((
                if live {
                    ApplyOutcome::Updated
                } else {
                    ApplyOutcome::Created
                },
                next,
            ))
        })
        .await
        .map_err(|e| db.err("store the definition", e))
    }

    /// The latest revision (or a given one) of a live definition.
    pub async fn get_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
        revision: Option<i64>,
    ) -> Result<Definition> {
        let db = self.db();
        let row = sqlx::query(
            "SELECT r.revision, r.yaml, r.labels, r.created_at FROM definitions d \
             JOIN definition_revisions r ON r.kind = d.kind AND r.name = d.name \
             AND r.revision = COALESCE($3, d.revision) \
             WHERE d.kind = $1 AND d.name = $2 AND d.deleted_at IS NULL AND d.revision > 0",
        )
        .bind(kind.noun())
        .bind(name)
        .bind(revision)
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| db.err("read the definition", e))?
        .ok_or_else(|| {
            StoreError::not_found(match revision {
                Some(r) => format!("revision {r} of {} `{name}`", kind.noun()),
                None => format!("{} `{name}`", kind.noun()),
            })
        })?;
        Ok(Definition {
            kind,
            name: name.to_string(),
            revision: row.int("revision")?,
            yaml: row.text("yaml")?,
            labels: from_json("labels", &row.text("labels")?)?,
            created_at: row.int("created_at")?,
        })
    }

    /// Latest revisions of live definitions of a kind whose labels match, by name.
    pub async fn list_definitions(
        &self,
        kind: DefinitionKind,
        selector: &LabelSelector,
    ) -> Result<Vec<Definition>> {
        let db = self.db();
        let rows = sqlx::query(
            "SELECT d.name, r.revision, r.yaml, r.labels, r.created_at FROM definitions d \
             JOIN definition_revisions r ON r.kind = d.kind AND r.name = d.name \
             AND r.revision = d.revision \
             WHERE d.kind = $1 AND d.deleted_at IS NULL ORDER BY d.name",
        )
        .bind(kind.noun())
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list definitions", e))?;
        let mut out = Vec::new();
        for row in rows {
            let labels = from_json("labels", &row.text("labels")?)?;
            if !selector.matches(&labels) {
                continue;
            }
            out.push(Definition {
                kind,
                name: row.text("name")?,
                revision: row.int("revision")?,
                yaml: row.text("yaml")?,
                labels,
                created_at: row.int("created_at")?,
            });
        }
        Ok(out)
    }

    /// Every stored revision of a definition, oldest first (also of a soft-deleted one).
    pub async fn definition_revisions(
        &self,
        kind: DefinitionKind,
        name: &str,
    ) -> Result<Vec<Definition>> {
        let db = self.db();
        sqlx::query(
            "SELECT revision, yaml, labels, created_at FROM definition_revisions \
             WHERE kind = $1 AND name = $2 ORDER BY revision",
        )
        .bind(kind.noun())
        .bind(name)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list revisions", e))?
        .iter()
        .map(|row| {
            Ok(Definition {
                kind,
                name: name.to_string(),
                revision: row.int("revision")?,
                yaml: row.text("yaml")?,
                labels: from_json("labels", &row.text("labels")?)?,
                created_at: row.int("created_at")?,
            })
        })
        .collect()
    }

    /// Delete a definition. Returns `false` when there was no live definition of that name
    /// (a hard delete also removes the history of a soft-deleted one).
    pub async fn delete_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
        mode: DeleteMode,
    ) -> Result<bool> {
        let db = self.db();
        let now = now_ms();
        retry_busy(|| async {
            let mut tx = db.begin_write().await?;
            let live = sqlx::query(
                "UPDATE definitions SET deleted_at = $3 \
                 WHERE kind = $1 AND name = $2 AND deleted_at IS NULL AND revision > 0",
            )
            .bind(kind.noun())
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if mode == DeleteMode::Hard {
                sqlx::query("DELETE FROM definition_revisions WHERE kind = $1 AND name = $2")
                    .bind(kind.noun())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM definitions WHERE kind = $1 AND name = $2")
                    .bind(kind.noun())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(live)
        })
        .await
        .map_err(|e| db.err("delete the definition", e))
    }
}
