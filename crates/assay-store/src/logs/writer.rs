//! Appending to one step's log, locally or to object storage.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::files::Files;
use crate::live::{Kind, Live};
use crate::model::{UnixMs, now_ms};

use super::*;

/// Appends lines to one step's log. Lines become visible to readers when the buffer is
/// written out: when it fills, on [`LogWriter::flush`], or on the first append after a short
/// delay. Call `flush` when the step's output goes quiet and [`LogWriter::finish`] at the end.
pub struct LogWriter {
    sink: Sink,
    buf: Vec<u8>,
    /// Bytes written out so far (the offset of `buf[0]`).
    written: u64,
    last_flush: Instant,
    /// Followers are told of each write-out (the execution's id).
    live: Arc<Live>,
    id: String,
}

pub(super) enum Sink {
    Local {
        file: std::fs::File,
        path: PathBuf,
    },
    Object {
        files: Files,
        objects: Arc<dyn ObjectStore>,
        dir: ObjPath,
    },
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("written", &self.written)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl LogWriter {
    /// Append one line (a text with newlines becomes several lines with the same time).
    pub async fn append(&mut self, ts: UnixMs, text: &str) -> Result<()> {
        self.append_bytes(ts, text.as_bytes()).await
    }

    /// Append raw output bytes as one line (or several when it contains `\n`); invalid UTF-8 is
    /// kept and replaced on reading.
    pub async fn append_bytes(&mut self, ts: UnixMs, text: &[u8]) -> Result<()> {
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        for line in text.split(|b| *b == b'\n') {
            // itoa-free fast path: timestamps are plain decimal.
            let _ = write!(self.buf, "{ts} ");
            self.buf.extend_from_slice(line);
            self.buf.push(b'\n');
        }
        let (limit, delay) = match self.sink {
            Sink::Local { .. } => (LOCAL_BUFFER, LOCAL_MAX_DELAY),
            Sink::Object { .. } => (CHUNK_BUFFER, CHUNK_MAX_DELAY),
        };
        if self.buf.len() >= limit || self.last_flush.elapsed() >= delay {
            self.flush().await?;
        }
        Ok(())
    }

    /// Append a line stamped with the current time.
    pub async fn append_now(&mut self, text: &str) -> Result<()> {
        self.append(now_ms(), text).await
    }

    /// Make everything appended so far visible to readers.
    pub async fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if self.buf.is_empty() {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Local { file, path } => {
                // One write of whole lines: readers never see half a line unless we crash.
                file.write_all(&self.buf)
                    .map_err(|e| StoreError::io("write the log file", path.clone(), e))?;
            }
            Sink::Object {
                files,
                objects,
                dir,
            } => {
                let location = dir.clone().join(format!("{:016}.chunk", self.written));
                let data = Bytes::from(std::mem::take(&mut self.buf));
                let len = data.len();
                objects
                    .put(&location, data.into())
                    .await
                    .map_err(|e| files.object_err("upload a log chunk", &location, e))?;
                self.written += len as u64;
                self.live.signal(&self.id, Kind::Logs);
                return Ok(());
            }
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
        self.live.signal(&self.id, Kind::Logs);
        Ok(())
    }

    /// Flush and close.
    pub async fn finish(mut self) -> Result<()> {
        self.flush().await
    }

    /// Offset just past the last appended line.
    pub fn position(&self) -> u64 {
        self.written + self.buf.len() as u64
    }
}

impl Store {
    /// A writer for one step's log. Several writers for one step must not be open at once.
    pub async fn log_writer(&self, id: &str, step: &str) -> Result<LogWriter> {
        let files = self.files().clone();
        let sink = match &files {
            Files::Local { .. } => {
                let dir = local_logs_dir(&files, id).expect("local");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| StoreError::io("create the log folder", &dir, e))?;
                let path = dir.join(format!("{}.log", encode_step(step)));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| StoreError::io("open the log file", &path, e))?;
                Sink::Local { file, path }
            }
            Files::Remote { .. } => {
                let dir = logs_prefix(&files, id).join(encode_step(step).as_str());
                // Continue after what is stored (e.g. a retried step writing again).
                let chunks = list_chunks(&files, &dir).await?;
                let objects = files.objects();
                let written = chunks.last().map(|(s, n)| s + n).unwrap_or(0);
                let writer = LogWriter {
                    sink: Sink::Object {
                        files,
                        objects,
                        dir,
                    },
                    buf: Vec::with_capacity(64 * 1024),
                    written,
                    last_flush: Instant::now(),
                    live: self.live().clone(),
                    id: id.to_string(),
                };
                return Ok(writer);
            }
        };
        let written = match &sink {
            Sink::Local { file, path } => file
                .metadata()
                .map_err(|e| StoreError::io("open the log file", path.clone(), e))?
                .len(),
            Sink::Object { .. } => 0,
        };
        Ok(LogWriter {
            sink,
            buf: Vec::with_capacity(LOCAL_BUFFER + 4096),
            written,
            last_flush: Instant::now(),
            live: self.live().clone(),
            id: id.to_string(),
        })
    }
}
