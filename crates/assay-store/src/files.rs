//! Files of executions (logs and artifacts): a local folder under the data dir, or
//! S3-compatible object storage. Artifacts always go through `object_store`; logs have their own
//! layout per backend (see [`crate::logs`]).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::Store;
use crate::config::{FILES_DIR, StoreConfig, mask_url};
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::executions::retry_busy;
use crate::model::{Artifact, now_ms};

/// Artifacts up to this size are uploaded in one request; larger ones in parts of this size.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Where files live.
#[derive(Clone)]
pub(crate) enum Files {
    /// `<root>/executions/<id>/{logs,artifacts}/…` on this machine.
    Local {
        root: PathBuf,
        objects: Arc<LocalFileSystem>,
    },
    /// `<prefix>/executions/<id>/{logs,artifacts}/…` in a bucket.
    Remote {
        objects: Arc<dyn ObjectStore>,
        prefix: ObjPath,
        /// For messages, secrets masked.
        url: String,
    },
}

impl Files {
    pub fn open(config: &StoreConfig) -> Result<Files> {
        match config.artifacts_url.as_deref() {
            None => Self::local(config.data_dir.join(FILES_DIR)),
            Some(url) if url.starts_with("file://") => {
                let parsed = url::Url::parse(url).map_err(|e| {
                    StoreError::Config(format!("artifacts URL `{}`: {e}", mask_url(url)))
                })?;
                let path = parsed.to_file_path().map_err(|_| {
                    StoreError::Config(format!(
                        "artifacts URL `{}` must be an absolute file:// path",
                        mask_url(url)
                    ))
                })?;
                Self::local(path)
            }
            Some(url) if url.starts_with("s3://") => Self::s3(url),
            Some(url) => Err(StoreError::Config(format!(
                "artifacts URL `{}` has an unsupported scheme; expected s3://bucket/prefix?endpoint=… or file:///path",
                mask_url(url)
            ))),
        }
    }

    fn local(root: PathBuf) -> Result<Files> {
        std::fs::create_dir_all(&root)
            .map_err(|e| StoreError::io("create the files folder", &root, e))?;
        let objects =
            LocalFileSystem::new_with_prefix(&root).map_err(|source| StoreError::Object {
                action: "open the files folder",
                location: root.display().to_string(),
                source,
            })?;
        Ok(Files::Local {
            root,
            objects: Arc::new(objects),
        })
    }

    /// `s3://bucket/prefix?endpoint=http://host:9000&region=…&access_key_id=…&secret_access_key=…`;
    /// anything not in the URL comes from the usual `AWS_*` environment variables.
    fn s3(raw: &str) -> Result<Files> {
        let masked = mask_url(raw);
        let url = url::Url::parse(raw)
            .map_err(|e| StoreError::Config(format!("artifacts URL `{masked}`: {e}")))?;
        let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
            StoreError::Config(format!("artifacts URL `{masked}` names no bucket"))
        })?;
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        let mut region_set = std::env::var_os("AWS_REGION").is_some()
            || std::env::var_os("AWS_DEFAULT_REGION").is_some();
        for (key, value) in url.query_pairs() {
            builder = match &*key {
                "endpoint" => {
                    let http = value.starts_with("http://");
                    builder
                        .with_endpoint(value.to_string())
                        .with_allow_http(http)
                }
                "region" => {
                    region_set = true;
                    builder.with_region(value.to_string())
                }
                "access_key_id" => builder.with_access_key_id(value.to_string()),
                "secret_access_key" => builder.with_secret_access_key(value.to_string()),
                "session_token" | "token" => builder.with_token(value.to_string()),
                "allow_http" => builder.with_allow_http(value == "true"),
                "virtual_hosted_style" => {
                    builder.with_virtual_hosted_style_request(value == "true")
                }
                other => {
                    return Err(StoreError::Config(format!(
                        "artifacts URL `{masked}`: unknown option `{other}` (known: endpoint, region, access_key_id, secret_access_key, session_token, allow_http, virtual_hosted_style)"
                    )));
                }
            };
        }
        if !region_set {
            builder = builder.with_region("us-east-1");
        }
        let objects = builder.build().map_err(|source| StoreError::Object {
            action: "configure object storage",
            location: masked.clone(),
            source,
        })?;
        let prefix = ObjPath::from_iter(url.path().split('/').filter(|s| !s.is_empty()));
        let url = format!("s3://{bucket}/{prefix}");
        Ok(Files::Remote {
            objects: Arc::new(objects),
            prefix,
            url,
        })
    }

    /// Where files are, for messages.
    pub fn location(&self) -> String {
        match self {
            Files::Local { root, .. } => root.display().to_string(),
            Files::Remote { url, .. } => url.clone(),
        }
    }

    pub fn objects(&self) -> Arc<dyn ObjectStore> {
        match self {
            Files::Local { objects, .. } => objects.clone(),
            Files::Remote { objects, .. } => objects.clone(),
        }
    }

    /// `[prefix/]executions/<id>`.
    pub fn execution_prefix(&self, id: &str) -> ObjPath {
        let base = match self {
            Files::Local { .. } => ObjPath::default(),
            Files::Remote { prefix, .. } => prefix.clone(),
        };
        base.join("executions").join(id)
    }

    /// Local folder of an execution (local backend only).
    pub fn local_execution_dir(&self, id: &str) -> Option<PathBuf> {
        match self {
            Files::Local { root, .. } => Some(root.join("executions").join(id)),
            Files::Remote { .. } => None,
        }
    }

    /// Display form of an object path.
    pub fn describe(&self, path: &ObjPath) -> String {
        match self {
            Files::Local { root, .. } => root.join(path.as_ref()).display().to_string(),
            Files::Remote { url, prefix, .. } => {
                let rel = path
                    .as_ref()
                    .strip_prefix(prefix.as_ref())
                    .unwrap_or(path.as_ref());
                format!(
                    "{}/{}",
                    url.trim_end_matches('/'),
                    rel.trim_start_matches('/')
                )
            }
        }
    }

    pub fn object_err(
        &self,
        action: &'static str,
        path: &ObjPath,
        source: object_store::Error,
    ) -> StoreError {
        StoreError::Object {
            action,
            location: self.describe(path),
            source,
        }
    }

    /// Remove every file of an execution.
    pub async fn delete_execution(&self, id: &str) -> Result<()> {
        match self {
            Files::Local { .. } => {
                let dir = self.local_execution_dir(id).expect("local");
                match tokio::fs::remove_dir_all(&dir).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(StoreError::io("delete the files of", dir, e)),
                }
            }
            Files::Remote { objects, .. } => {
                let prefix = self.execution_prefix(id);
                let locations = objects.list(Some(&prefix)).map_ok(|m| m.location).boxed();
                objects
                    .delete_stream(locations)
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(|e| self.object_err("delete the files of", &prefix, e))?;
                Ok(())
            }
        }
    }
}

/// An artifact being downloaded.
pub struct ArtifactDownload {
    /// Size in bytes (for progress bars).
    pub size: u64,
    /// The content.
    pub stream: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for ArtifactDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactDownload")
            .field("size", &self.size)
            .finish()
    }
}

/// Check an artifact path (relative, `/`-separated, no `..`) and turn it into object parts.
fn artifact_parts(path: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty()
        || path.starts_with('/')
        || parts.iter().any(|p| *p == ".." || p.contains('\\'))
    {
        return Err(StoreError::Invalid(format!(
            "artifact path `{path}` must be relative, without `..`"
        )));
    }
    Ok(parts)
}

impl Store {
    fn artifact_location(&self, id: &str, path: &str) -> Result<ObjPath> {
        let mut location = self.files().execution_prefix(id).join("artifacts");
        for part in artifact_parts(path)? {
            location = location.join(part);
        }
        Ok(location)
    }

    /// Store an artifact from memory. The file is written before its record, so a record never
    /// points at a missing file.
    pub async fn put_artifact(
        &self,
        id: &str,
        step_ref: Option<&str>,
        path: &str,
        content_type: Option<&str>,
        data: Bytes,
    ) -> Result<Artifact> {
        self.exists(id).await?;
        let location = self.artifact_location(id, path)?;
        let size = data.len() as u64;
        let files = self.files();
        files
            .objects()
            .put(&location, data.into())
            .await
            .map_err(|e| files.object_err("store the artifact", &location, e))?;
        self.record_artifact(id, step_ref, path, content_type, size)
            .await
    }

    /// Store an artifact from a local file, streaming it in parts (large files never sit in
    /// memory whole).
    pub async fn put_artifact_file(
        &self,
        id: &str,
        step_ref: Option<&str>,
        path: &str,
        content_type: Option<&str>,
        source: &FsPath,
    ) -> Result<Artifact> {
        self.exists(id).await?;
        let location = self.artifact_location(id, path)?;
        let files = self.files();
        let mut file = tokio::fs::File::open(source)
            .await
            .map_err(|e| StoreError::io("read the artifact", source, e))?;
        let upload = files
            .objects()
            .put_multipart(&location)
            .await
            .map_err(|e| files.object_err("store the artifact", &location, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StoreError::io("read the artifact", source, e));
                }
            };
            if n == 0 {
                break;
            }
            size += n as u64;
            writer
                .wait_for_capacity(4)
                .await
                .map_err(|e| files.object_err("store the artifact", &location, e))?;
            writer.write(&buf[..n]);
        }
        writer
            .finish()
            .await
            .map_err(|e| files.object_err("store the artifact", &location, e))?;
        self.record_artifact(id, step_ref, path, content_type, size)
            .await
    }

    async fn record_artifact(
        &self,
        id: &str,
        step_ref: Option<&str>,
        path: &str,
        content_type: Option<&str>,
        size: u64,
    ) -> Result<Artifact> {
        let db = self.db();
        let created_at = now_ms();
        let path = artifact_parts(path)?.join("/");
        retry_busy(|| async {
            sqlx::query(
                "INSERT INTO artifacts (execution_id, path, step_ref, size, content_type, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (execution_id, path) DO UPDATE SET \
                 step_ref = excluded.step_ref, size = excluded.size, \
                 content_type = excluded.content_type, created_at = excluded.created_at",
            )
            .bind(id)
            .bind(&path)
            .bind(step_ref.map(str::to_string))
            .bind(size as i64)
            .bind(content_type.map(str::to_string))
            .bind(created_at)
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("record the artifact", e))?;
        Ok(Artifact {
            path,
            size,
            step_ref: step_ref.map(str::to_string),
            content_type: content_type.map(str::to_string),
            created_at,
        })
    }

    /// Artifacts of an execution, by path.
    pub async fn list_artifacts(&self, id: &str) -> Result<Vec<Artifact>> {
        let db = self.db();
        sqlx::query(
            "SELECT path, step_ref, size, content_type, created_at FROM artifacts \
             WHERE execution_id = $1 ORDER BY path",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list artifacts", e))?
        .iter()
        .map(|r| {
            Ok(Artifact {
                path: r.text("path")?,
                step_ref: r.opt_text("step_ref")?,
                size: r.int("size")?.max(0) as u64,
                content_type: r.opt_text("content_type")?,
                created_at: r.int("created_at")?,
            })
        })
        .collect()
    }

    /// Open an artifact for download.
    pub async fn open_artifact(&self, id: &str, path: &str) -> Result<ArtifactDownload> {
        let location = self.artifact_location(id, path)?;
        let files = self.files().clone();
        let got = match files.objects().get(&location).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::not_found(format!(
                    "artifact `{path}` of execution `{id}`"
                )));
            }
            Err(e) => return Err(files.object_err("read the artifact", &location, e)),
        };
        let size = got.meta.size;
        let described = files.describe(&location);
        let stream = got
            .into_stream()
            .map_err(move |source| StoreError::Object {
                action: "read the artifact",
                location: described.clone(),
                source,
            })
            .boxed();
        Ok(ArtifactDownload { size, stream })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_stay_inside_the_execution() {
        assert_eq!(
            artifact_parts("a/./b//c.txt").unwrap(),
            vec!["a", "b", "c.txt"]
        );
        assert!(artifact_parts("../x").is_err());
        assert!(artifact_parts("/etc/passwd").is_err());
        assert!(artifact_parts("").is_err());
    }
}
