//! Compressing an ended execution's logs into one zstd stream per step.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Result, StoreError};
use crate::files::Files;

use super::*;

impl Files {
    /// Compress the logs of an ended execution (idempotent; safe after a crash half-way).
    pub(crate) async fn compact_logs(&self, id: &str) -> Result<()> {
        match self {
            Files::Local { .. } => {
                let dir = local_logs_dir(self, id).expect("local");
                // An execution that logged nothing has no folder: one `stat` here rather than
                // a hand-over to the blocking pool and back (most trivial runs).
                if matches!(std::fs::symlink_metadata(&dir), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                {
                    return Ok(());
                }
                tokio::task::spawn_blocking(move || compact_local(&dir))
                    .await
                    .map_err(|e| StoreError::Invalid(format!("log compaction task failed: {e}")))?
            }
            Files::Remote { .. } => self.compact_remote(id).await,
        }
    }

    async fn compact_remote(&self, id: &str) -> Result<()> {
        let prefix = logs_prefix(self, id);
        let objects = self.objects();
        let listing = objects
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| self.object_err("list the logs in", &prefix, e))?;
        for dir in listing.common_prefixes {
            let Some(step) = dir.filename().map(object_step_name) else {
                continue;
            };
            let packed = prefix.clone().join(format!("{step}.log.zst"));
            let chunks = list_chunks(self, &dir).await?;
            let exists = match objects.head(&packed).await {
                Ok(_) => true,
                Err(object_store::Error::NotFound { .. }) => false,
                Err(e) => return Err(self.object_err("read the log", &packed, e)),
            };
            if !exists {
                let mut encoder = zstd::Encoder::new(Vec::new(), ZSTD_LEVEL).map_err(|e| {
                    StoreError::io("compress the log", PathBuf::from(packed.to_string()), e)
                })?;
                for (start, _) in &chunks {
                    let location = dir.clone().join(format!("{start:016}.chunk"));
                    let data = objects
                        .get(&location)
                        .await
                        .map_err(|e| self.object_err("read a log chunk", &location, e))?
                        .bytes()
                        .await
                        .map_err(|e| self.object_err("read a log chunk", &location, e))?;
                    encoder.write_all(&data).map_err(|e| {
                        StoreError::io("compress the log", PathBuf::from(packed.to_string()), e)
                    })?;
                }
                let data = encoder.finish().map_err(|e| {
                    StoreError::io("compress the log", PathBuf::from(packed.to_string()), e)
                })?;
                objects
                    .put(&packed, Bytes::from(data).into())
                    .await
                    .map_err(|e| self.object_err("store the compressed log", &packed, e))?;
            }
            for (start, _) in chunks {
                let location = dir.clone().join(format!("{start:016}.chunk"));
                match objects.delete(&location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.object_err("delete a log chunk", &location, e)),
                }
            }
        }
        Ok(())
    }
}

pub(super) fn compact_local(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("list the logs in", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list the logs in", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(step) = name.strip_suffix(".log") else {
            continue;
        };
        let raw = entry.path();
        let packed = dir.join(format!("{step}.log.zst"));
        if !packed.exists() {
            let tmp = dir.join(format!("{step}.log.zst.tmp"));
            let mut input = std::fs::File::open(&raw)
                .map_err(|e| StoreError::io("read the log file", &raw, e))?;
            let written = std::fs::File::create(&tmp).and_then(|output| {
                let mut encoder = zstd::Encoder::new(output, ZSTD_LEVEL)?;
                std::io::copy(&mut input, &mut encoder)?;
                encoder.finish()
            });
            if let Err(e) = written {
                // A full disk: give the space of the partial file back; the raw log stays.
                let _ = std::fs::remove_file(&tmp);
                return Err(StoreError::io("write the compressed log", &tmp, e));
            }
            std::fs::rename(&tmp, &packed)
                .map_err(|e| StoreError::io("write the compressed log", &packed, e))?;
        }
        std::fs::remove_file(&raw).map_err(|e| StoreError::io("remove the raw log", &raw, e))?;
    }
    Ok(())
}
