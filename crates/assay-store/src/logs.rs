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

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::files::Files;
use crate::live::{Kind, Live};
use crate::model::{UnixMs, now_ms};

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

enum Sink {
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

/// Reads one step's log from an offset on, as far as it is stored now; call again for more.
pub struct LogReader {
    files: Files,
    id: String,
    step: String,
    /// Offset of the next byte to read from the stream.
    pos: u64,
    /// Bytes of an incomplete last line (already counted in `pos`).
    pending: Vec<u8>,
    source: Source,
    /// The last read stopped at its size limit: more may be stored already.
    full: bool,
}

enum Source {
    None,
    /// The raw local file, positioned at `pos`.
    Raw(std::fs::File),
    /// A decompressing reader positioned at `pos`; the stream is complete.
    Compressed(Box<dyn Read + Send>),
    /// Object chunks.
    Chunks,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("id", &self.id)
            .field("step", &self.step)
            .field("pos", &self.pos)
            .finish()
    }
}

impl LogReader {
    /// Step ref this reader reads.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// Offset after the last complete line returned.
    pub fn offset(&self) -> u64 {
        self.pos - self.pending.len() as u64
    }

    /// Whether the last read stopped at its size limit, so that more may be stored already
    /// (read again without waiting for a change).
    pub fn maybe_more(&self) -> bool {
        self.full
    }

    /// Complete lines stored after the current offset, up to about a megabyte; empty when
    /// nothing new is stored yet.
    pub async fn read_available(&mut self) -> Result<Vec<LogLine>> {
        let bytes = self.read_bytes(READ_BATCH).await?;
        Ok(self.split_lines(bytes))
    }

    /// Lines from the current offset up to `end`, up to about a megabyte per call; empty once
    /// `end` is reached (or when less is stored). `end` must be an offset a reader returned: the
    /// line that ends there is returned even when it has no newline (the last line of an ended
    /// execution, as [`LogReader::read_to_end`] returns it). Nothing past `end` is read.
    pub async fn read_until(&mut self, end: u64) -> Result<Vec<LogLine>> {
        loop {
            let cap = end.saturating_sub(self.pos).min(READ_BATCH as u64) as usize;
            let bytes = if cap == 0 {
                Vec::new()
            } else {
                self.read_bytes(cap).await?
            };
            let got = !bytes.is_empty();
            let mut lines = self.split_lines(bytes);
            if self.pos == end && !self.pending.is_empty() {
                let rest = std::mem::take(&mut self.pending);
                lines.push(parse_line(&self.step, &rest, self.pos));
            }
            // A line longer than one read: read on until it is complete.
            if !lines.is_empty() || !got || self.pos >= end {
                return Ok(lines);
            }
        }
    }

    /// Everything stored after the current offset, including an unterminated last line. Use
    /// once the execution has ended.
    pub async fn read_to_end(&mut self) -> Result<Vec<LogLine>> {
        let mut lines = Vec::new();
        loop {
            let batch = self.read_available().await?;
            if batch.is_empty() {
                break;
            }
            lines.extend(batch);
        }
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            lines.push(parse_line(&self.step, &rest, self.pos));
        }
        Ok(lines)
    }

    fn split_lines(&mut self, bytes: Vec<u8>) -> Vec<LogLine> {
        if bytes.is_empty() {
            return Vec::new();
        }
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(&bytes);
        // `pos` already counts the old pending bytes and the new ones: data[0] is at:
        let start = self.pos - data.len() as u64;
        let mut lines = Vec::new();
        let mut line_start = 0;
        for (i, b) in data.iter().enumerate() {
            if *b == b'\n' {
                let end = start + i as u64 + 1;
                lines.push(parse_line(&self.step, &data[line_start..i], end));
                line_start = i + 1;
            }
        }
        self.pending = data[line_start..].to_vec();
        lines
    }

    /// At most `cap` more bytes of the stream (fewer when less is stored).
    async fn read_bytes(&mut self, cap: usize) -> Result<Vec<u8>> {
        let bytes = self.read_some(cap).await?;
        self.full = cap > 0 && bytes.len() >= cap;
        Ok(bytes)
    }

    async fn read_some(&mut self, cap: usize) -> Result<Vec<u8>> {
        loop {
            match &mut self.source {
                Source::None => {
                    if !self.open().await? {
                        return Ok(Vec::new());
                    }
                }
                Source::Raw(file) => {
                    let mut buf = Vec::new();
                    let path = local_logs_dir(&self.files, &self.id).unwrap_or_default();
                    file.take(cap as u64)
                        .read_to_end(&mut buf)
                        .map_err(|e| StoreError::io("read the log file in", path, e))?;
                    self.pos += buf.len() as u64;
                    return Ok(buf);
                }
                Source::Compressed(reader) => {
                    let mut buf = Vec::new();
                    reader.take(cap as u64).read_to_end(&mut buf).map_err(|e| {
                        StoreError::io(
                            "decompress the log of",
                            PathBuf::from(format!("execution {} step {}", self.id, self.step)),
                            e,
                        )
                    })?;
                    self.pos += buf.len() as u64;
                    return Ok(buf);
                }
                Source::Chunks => match self.read_chunks(cap).await? {
                    Some(buf) => {
                        self.pos += buf.len() as u64;
                        return Ok(buf);
                    }
                    // The chunks are gone: the log was compacted. Switch and go on.
                    None => self.source = Source::None,
                },
            }
        }
    }

    /// Open the stream at `pos`. `false` when there is nothing stored yet.
    async fn open(&mut self) -> Result<bool> {
        let step = encode_step(&self.step);
        match &self.files {
            Files::Local { .. } => {
                let dir = local_logs_dir(&self.files, &self.id).expect("local");
                let raw = dir.join(format!("{step}.log"));
                match std::fs::File::open(&raw) {
                    Ok(mut file) => {
                        file.seek(SeekFrom::Start(self.pos))
                            .map_err(|e| StoreError::io("read the log file", raw, e))?;
                        self.source = Source::Raw(file);
                        return Ok(true);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("read the log file", raw, e)),
                }
                let packed = dir.join(format!("{step}.log.zst"));
                match std::fs::File::open(&packed) {
                    Ok(file) => {
                        let decoder = zstd::Decoder::new(file)
                            .map_err(|e| StoreError::io("read the log file", &packed, e))?;
                        self.open_compressed(Box::new(decoder), &packed.display().to_string())?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(StoreError::io("read the log file", packed, e)),
                }
            }
            Files::Remote { .. } => {
                let prefix = logs_prefix(&self.files, &self.id);
                // Chunks first: compaction writes the packed object before it deletes chunks.
                let dir = prefix.clone().join(step.as_str());
                let listed = list_chunks(&self.files, &dir).await?;
                if listed
                    .iter()
                    .any(|(start, size)| *start <= self.pos && self.pos < start + size)
                {
                    self.source = Source::Chunks;
                    return Ok(true);
                }
                let packed = prefix.clone().join(format!("{step}.log.zst"));
                match self.files.objects().get(&packed).await {
                    Ok(got) => {
                        let data = got
                            .bytes()
                            .await
                            .map_err(|e| self.files.object_err("read the log", &packed, e))?;
                        let decoder =
                            zstd::Decoder::new(std::io::Cursor::new(data)).map_err(|e| {
                                StoreError::io("read the log", PathBuf::from(packed.to_string()), e)
                            })?;
                        let described = self.files.describe(&packed);
                        self.open_compressed(Box::new(decoder), &described)?;
                        Ok(true)
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(self.files.object_err("read the log", &packed, e)),
                }
            }
        }
    }

    fn open_compressed(&mut self, mut reader: Box<dyn Read + Send>, what: &str) -> Result<()> {
        std::io::copy(&mut (&mut reader).take(self.pos), &mut std::io::sink())
            .map_err(|e| StoreError::io("read the log", PathBuf::from(what), e))?;
        self.source = Source::Compressed(reader);
        Ok(())
    }

    /// Next bytes (at most `cap`) from chunk objects; `None` when the chunk that holds `pos` is
    /// gone.
    async fn read_chunks(&mut self, cap: usize) -> Result<Option<Vec<u8>>> {
        let dir = logs_prefix(&self.files, &self.id).join(encode_step(&self.step).as_str());
        let listed = list_chunks(&self.files, &dir).await?;
        let mut out = Vec::new();
        let mut pos = self.pos;
        for (start, size) in listed {
            if start + size <= pos {
                continue;
            }
            if start > pos || out.len() >= cap {
                break;
            }
            let location = dir.clone().join(format!("{start:016}.chunk"));
            let until = size.min(pos - start + (cap - out.len()) as u64);
            match self
                .files
                .objects()
                .get_range(&location, (pos - start)..until)
                .await
            {
                Ok(data) => {
                    pos += data.len() as u64;
                    out.extend_from_slice(&data);
                }
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.files.object_err("read a log chunk", &location, e)),
            }
        }
        if out.is_empty() {
            // Nothing new in chunks: either nothing was written yet, or the log was compacted.
            let packed = logs_prefix(&self.files, &self.id)
                .clone()
                .join(format!("{}.log.zst", encode_step(&self.step)));
            return match self.files.objects().head(&packed).await {
                Ok(_) => Ok(None),
                Err(object_store::Error::NotFound { .. }) => Ok(Some(Vec::new())),
                Err(e) => Err(self.files.object_err("read the log", &packed, e)),
            };
        }
        Ok(Some(out))
    }
}

/// `(start offset, size)` of the chunks in a folder, in order.
async fn list_chunks(files: &Files, dir: &ObjPath) -> Result<Vec<(u64, u64)>> {
    let metas: Vec<_> = files
        .objects()
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| files.object_err("list log chunks in", dir, e))?;
    let mut chunks: Vec<(u64, u64)> = metas
        .iter()
        .filter_map(|m| {
            let name = m.location.filename()?;
            let start = name.strip_suffix(".chunk")?.parse().ok()?;
            Some((start, m.size))
        })
        .collect();
    chunks.sort_unstable();
    Ok(chunks)
}

fn parse_line(step: &str, raw: &[u8], end: u64) -> LogLine {
    let (ts, text) = match raw.iter().position(|b| *b == b' ') {
        Some(sp) => match std::str::from_utf8(&raw[..sp])
            .ok()
            .and_then(|t| t.parse().ok())
        {
            Some(ts) => (ts, &raw[sp + 1..]),
            None => (0, raw),
        },
        None => (0, raw),
    };
    LogLine {
        step: step.to_string(),
        ts,
        text: String::from_utf8_lossy(text).into_owned(),
        offset: end,
    }
}

impl Files {
    /// Compress the logs of an ended execution (idempotent; safe after a crash half-way).
    pub(crate) async fn compact_logs(&self, id: &str) -> Result<()> {
        match self {
            Files::Local { .. } => {
                let dir = local_logs_dir(self, id).expect("local");
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

fn compact_local(dir: &Path) -> Result<()> {
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

    /// A reader of one step's log from `offset` (0 = the beginning).
    pub fn log_reader(&self, id: &str, step: &str, offset: u64) -> LogReader {
        LogReader {
            files: self.files().clone(),
            id: id.to_string(),
            step: step.to_string(),
            pos: offset,
            pending: Vec::new(),
            source: Source::None,
            full: false,
        }
    }

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
