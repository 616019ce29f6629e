//! Reading one step's log from an offset, locally or from object storage, across compaction.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::files::Files;

use super::*;

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

pub(super) enum Source {
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
pub(super) async fn list_chunks(files: &Files, dir: &ObjPath) -> Result<Vec<(u64, u64)>> {
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

pub(super) fn parse_line(step: &str, raw: &[u8], end: u64) -> LogLine {
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

impl Store {
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
}
