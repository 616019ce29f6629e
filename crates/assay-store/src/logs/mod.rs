//! Step logs: appended as they arrive, readable while the execution runs, followed live across
//! processes, compressed when the execution ends.
//!
//! # Layout
//! Each step of an execution has one log *stream*: lines `"<unix-ms> <text>\n"`. A position in a
//! stream is a byte offset into its uncompressed text, the same whatever the storage, so a
//! follower can resume from an offset (the server's `Last-Event-ID`).
//!
//! - Local files (embedded mode): `files/executions/<id>/logs/<step>.log`, an append-only file
//!   written in batches; when the execution ends it becomes `<step>.log.zst` (zstd). Readers
//!   open the raw file if it is there, else the compressed one; compaction writes the `.zst`
//!   fully and renames it into place before it removes the raw file, and a reader that already
//!   has the raw file open keeps reading it after the unlink.
//! - Object storage: `…/logs/<step>/<offset:016>.chunk` objects, each uploaded when the writer's
//!   buffer fills or is flushed, named by the offset of their first byte; at the end they are
//!   concatenated into `…/logs/<step>.log.zst` and deleted. A reader that finds its next chunk
//!   gone switches to the compressed object and skips to its offset.
//!
//! A crash leaves at most a partial last line in a raw file; readers hold it back until the
//! execution has ended and then emit it as it is.
//!
//! The parts: this module has the layout (names, paths, limits) and the [`Store`] calls;
//! `writer.rs` appends, `reader.rs` reads and follows, `compact.rs` compresses an ended
//! execution's logs, each for local files and object storage.

mod compact;
mod reader;
mod writer;

pub use reader::LogReader;
use reader::*;
pub use writer::LogWriter;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::Stream;
use object_store::ObjectStore;
use object_store::path::Path as ObjPath;
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::files::Files;
use crate::model::UnixMs;

/// A local writer writes its buffer out when it holds this much…
const LOCAL_BUFFER: usize = 64 * 1024;
/// …or when this much time passed since the last write-out (checked on append).
const LOCAL_MAX_DELAY: Duration = Duration::from_millis(200);
/// An object-storage writer uploads a chunk when it holds this much…
const CHUNK_BUFFER: usize = 4 * 1024 * 1024;
/// …or when this much time passed since the last upload (checked on append).
const CHUNK_MAX_DELAY: Duration = Duration::from_secs(2);
/// A reader returns at most about this many bytes per call.
const READ_BATCH: usize = 1024 * 1024;
/// zstd level for finished logs: fast, and logs compress well anyway.
const ZSTD_LEVEL: i32 = 3;

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// Step ref the line belongs to.
    pub step: String,
    /// When the line was captured (unix ms).
    pub ts: UnixMs,
    pub text: String,
    /// Offset just past this line in the step's stream: resume reading from here.
    pub offset: u64,
}

/// Encode a step ref as a file or object name: `[A-Za-z0-9_-]` as is, anything else `~XX`.
fn encode_step(step: &str) -> String {
    if step.is_empty() {
        return "~".into();
    }
    let mut out = String::with_capacity(step.len());
    for b in step.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

fn decode_step(name: &str) -> Option<String> {
    if name == "~" {
        return Some(String::new());
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The encoded step name of an object-store file or folder name: object_store escapes the `~`
/// of [`encode_step`] as `%7E` in keys (the only character of its output it escapes), and hands
/// names back escaped.
fn object_step_name(name: &str) -> String {
    name.replace("%7E", "~")
}

fn local_logs_dir(files: &Files, id: &str) -> Option<PathBuf> {
    files.local_execution_dir(id).map(|d| d.join("logs"))
}

fn logs_prefix(files: &Files, id: &str) -> ObjPath {
    files.execution_prefix(id).join("logs")
}

impl Store {
    /// Step refs that have a stored log, sorted.
    pub async fn log_steps(&self, id: &str) -> Result<Vec<String>> {
        let files = self.files();
        let mut names = Vec::new();
        match files {
            Files::Local { .. } => {
                let dir = local_logs_dir(files, id).expect("local");
                match std::fs::read_dir(&dir) {
                    Ok(entries) => {
                        for entry in entries.flatten() {
                            let name = entry.file_name().to_string_lossy().into_owned();
                            if let Some(step) = name
                                .strip_suffix(".log")
                                .or_else(|| name.strip_suffix(".log.zst"))
                            {
                                names.push(step.to_string());
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("list the logs in", dir, e)),
                }
            }
            Files::Remote { .. } => {
                let prefix = logs_prefix(files, id);
                let listing = files
                    .objects()
                    .list_with_delimiter(Some(&prefix))
                    .await
                    .map_err(|e| files.object_err("list the logs in", &prefix, e))?;
                names.extend(
                    listing
                        .common_prefixes
                        .iter()
                        .filter_map(|p| p.filename().map(object_step_name)),
                );
                names.extend(listing.objects.iter().filter_map(|m| {
                    m.location
                        .filename()?
                        .strip_suffix(".log.zst")
                        .map(object_step_name)
                }));
            }
        }
        let mut steps: Vec<String> = names.iter().filter_map(|n| decode_step(n)).collect();
        steps.sort();
        steps.dedup();
        Ok(steps)
    }

    /// Every stored line of one step (or of all steps, step by step in plan order). For large
    /// logs prefer a [`LogReader`].
    pub async fn read_logs(&self, id: &str, step: Option<&str>) -> Result<Vec<LogLine>> {
        let steps = match step {
            Some(step) => vec![step.to_string()],
            None => self.log_steps_in_order(id).await?,
        };
        let mut lines = Vec::new();
        for step in steps {
            lines.extend(self.log_reader(id, &step, 0).read_to_end().await?);
        }
        Ok(lines)
    }

    /// Steps with logs, in plan order (steps without a result last, by ref).
    pub async fn log_steps_in_order(&self, id: &str) -> Result<Vec<String>> {
        let with_logs = self.log_steps(id).await?;
        let order: BTreeMap<String, i64> = self
            .steps(id)
            .await?
            .into_iter()
            .map(|s| (s.step_ref, s.position))
            .collect();
        let mut steps = with_logs;
        steps.sort_by_key(|s| (order.get(s).copied().unwrap_or(i64::MAX), s.clone()));
        Ok(steps)
    }

    /// Replay what is stored, then follow new lines until the execution ends. Works across
    /// processes by polling the files every `poll` and the execution's status. Yields batches in
    /// time order; with `step: None` new steps are picked up as they start logging.
    pub fn follow_logs(
        &self,
        id: &str,
        step: Option<&str>,
        poll: Duration,
    ) -> impl Stream<Item = Result<Vec<LogLine>>> + Send + 'static {
        struct State {
            store: Store,
            id: String,
            only: Option<String>,
            readers: BTreeMap<String, LogReader>,
            poll: Duration,
            done: bool,
        }
        let state = State {
            store: self.clone(),
            id: id.to_string(),
            only: step.map(str::to_string),
            readers: BTreeMap::new(),
            poll,
            done: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                let step_result: Result<Option<Vec<LogLine>>> = async {
                    // Status first: lines written before the end are then surely read below.
                    let ended = st
                        .store
                        .find_execution(&crate::ExecutionRef::Id(st.id.clone()))
                        .await?
                        .status
                        .is_terminal();
                    let steps = match &st.only {
                        Some(s) => vec![s.clone()],
                        None => st.store.log_steps(&st.id).await?,
                    };
                    for s in steps {
                        if !st.readers.contains_key(&s) {
                            let reader = st.store.log_reader(&st.id, &s, 0);
                            st.readers.insert(s, reader);
                        }
                    }
                    let mut batch = Vec::new();
                    for reader in st.readers.values_mut() {
                        if ended {
                            batch.extend(reader.read_to_end().await?);
                        } else {
                            batch.extend(reader.read_available().await?);
                        }
                    }
                    batch.sort_by_key(|l| l.ts);
                    if ended {
                        st.done = true;
                        return Ok(Some(batch));
                    }
                    Ok(if batch.is_empty() { None } else { Some(batch) })
                }
                .await;
                match step_result {
                    Ok(Some(batch)) if batch.is_empty() && st.done => return None,
                    Ok(Some(batch)) => return Some((Ok(batch), st)),
                    Ok(None) => tokio::time::sleep(st.poll).await,
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_round_trip() {
        for step in ["", "r6x7", "a b/c.d~", "ünï"] {
            let enc = encode_step(step);
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-~".contains(&b))
            );
            assert_eq!(decode_step(&enc).as_deref(), Some(step));
        }
    }

    #[test]
    fn lines_parse_with_and_without_timestamps() {
        let l = parse_line("s", b"1700000000000 hello world", 30);
        assert_eq!(
            (l.ts, l.text.as_str(), l.offset),
            (1_700_000_000_000, "hello world", 30)
        );
        let l = parse_line("s", b"garbage", 7);
        assert_eq!((l.ts, l.text.as_str()), (0, "garbage"));
    }
}
