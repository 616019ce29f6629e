//! Following pods' logs: the main container's stream (lines with their times, a new stream
//! skipping what an earlier one gave), a service's, and lines bounded in length.

use std::collections::VecDeque;
use std::path::PathBuf;

use assay_agent::Delivery;
use assay_api::agents::AgentEvent;
use futures::{AsyncBufRead, AsyncBufReadExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::job;
use crate::podlog::{self, PodLine};

use super::{KEPT_LINES, MAX_LINE, Run, worker_ref};

impl Run<'_> {
    /// Reads one stream of the log (lines with their times) to its end, skipping the lines an
    /// earlier stream gave; whether the execution's end came.
    pub(super) async fn follow(
        &self,
        stream: impl AsyncBufRead + Unpin,
        read: &mut Reading,
        jobs: &Api<Job>,
    ) -> bool {
        let mut reader = BoundedLines::new(stream);
        let Reading {
            assembling,
            files,
            kept,
            position,
        } = read;
        let mut pending: Vec<AgentEvent> = Vec::new();
        let mut finished = false;
        while let Some(line) = reader.next_line().await {
            let line = match line {
                Ok(l) => {
                    let (time, text) = l.split_once(' ').unwrap_or(("", l.as_str()));
                    if !position.is_new(time) {
                        continue;
                    }
                    Ok(text.to_string())
                }
                Err(too_long) => Err(too_long),
            };
            let decoded = match line {
                Ok(l) => podlog::decode(&l).map(|d| (d, l)),
                Err(too_long) => Err(podlog::LineError::from(too_long)),
            };
            match decoded {
                Ok((Some(PodLine::Event(e)), _)) => {
                    if matches!(e, AgentEvent::ExecutionFinished { .. }) {
                        // The services' lines and pods end before the execution's end is told.
                        finished = true;
                        self.end_services().await;
                    }
                    pending.push(e);
                    if pending.len() >= 200 || reader.is_idle() {
                        self.send(Delivery::Events(std::mem::take(&mut pending)))
                            .await;
                    }
                }
                Ok((Some(PodLine::Chunk(c)), _)) => {
                    // Events before an artifact go first.
                    if !pending.is_empty() {
                        self.send(Delivery::Events(std::mem::take(&mut pending)))
                            .await;
                    }
                    match self.chunk(assembling, c, files).await {
                        Ok(Some(done)) => self.send(done).await,
                        Ok(None) => {}
                        Err(e) => pending.push(AgentEvent::Warning {
                            reference: String::new(),
                            message: e,
                        }),
                    }
                }
                Ok((Some(PodLine::Service(request)), _)) => self.service(request).await,
                Ok((Some(PodLine::ServiceDone(log_ref)), _)) => {
                    self.service_done(jobs, &log_ref).await;
                }
                Ok((Some(PodLine::Worker(request)), _)) => self.worker(request).await,
                Ok((Some(PodLine::WorkerDone(key)), _)) => {
                    self.service_done(jobs, &worker_ref(key)).await;
                }
                Ok((None, text)) => {
                    tracing::debug!(line = %text, "pod log");
                    if kept.len() == KEPT_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(text.chars().take(500).collect());
                }
                Err(e) => pending.push(AgentEvent::Warning {
                    reference: String::new(),
                    message: e.to_string(),
                }),
            }
        }
        if !pending.is_empty() {
            self.send(Delivery::Events(pending)).await;
        }
        finished
    }

    /// Adds a chunk to the artifact being put together; the finished file's delivery.
    async fn chunk(
        &self,
        assembling: &mut Option<(podlog::ArtifactChunk, tokio::fs::File, PathBuf)>,
        chunk: podlog::ArtifactChunk,
        files: &mut u64,
    ) -> Result<Option<Delivery>, String> {
        use tokio::io::AsyncWriteExt;
        let bytes = chunk.bytes().map_err(|e| e.to_string())?;
        let same = assembling
            .as_ref()
            .is_some_and(|(first, _, _)| first.step == chunk.step && first.path == chunk.path);
        if !same {
            if chunk.offset != 0 {
                *assembling = None;
                return Err(format!(
                    "artifact {} arrived without its beginning: not recorded",
                    chunk.path
                ));
            }
            tokio::fs::create_dir_all(&self.folder)
                .await
                .map_err(|e| format!("artifact {}: {e}", chunk.path))?;
            *files += 1;
            let file = self.folder.join(format!("artifact-{files}"));
            let handle = tokio::fs::File::create(&file)
                .await
                .map_err(|e| format!("artifact {}: {e}", chunk.path))?;
            *assembling = Some((chunk.clone(), handle, file));
        }
        let Some((first, handle, file)) = assembling.as_mut() else {
            return Ok(None);
        };
        let written = handle
            .metadata()
            .await
            .map(|m| m.len())
            .map_err(|e| e.to_string())?;
        if written != chunk.offset {
            *assembling = None;
            return Err(format!(
                "artifact {} has a gap at byte {written}: not recorded",
                chunk.path
            ));
        }
        handle
            .write_all(&bytes)
            .await
            .map_err(|e| format!("artifact {}: {e}", chunk.path))?;
        if !chunk.last {
            return Ok(None);
        }
        handle.flush().await.map_err(|e| e.to_string())?;
        let delivery = Delivery::Artifact {
            step: first.step.clone(),
            path: first.path.clone(),
            source: file.clone(),
        };
        *assembling = None;
        Ok(Some(delivery))
    }
}

/// Follows a service instance's pod log until it ends or `stop`: its engine's log lines
/// become the instance's log (`log_ref`) in the execution; the rest of what it reports (its
/// one step's start and end) is the service pod's own business.
pub(super) async fn follow_service(
    pods: Api<Pod>,
    pod_name: String,
    log_ref: String,
    deliveries: mpsc::Sender<Delivery>,
    stop: CancellationToken,
) {
    let params = following_a_service();
    let stream = tokio::select! {
        s = pods.log_stream(&pod_name, &params) => s,
        _ = stop.cancelled() => return,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(pod = %pod_name, error = %e, "failed to read a service pod's log");
            return;
        }
    };
    let mut reader = BoundedLines::new(stream);
    let mut pending = Vec::new();
    loop {
        let line = tokio::select! {
            l = reader.next_line() => l,
            _ = stop.cancelled() => break,
        };
        let Some(line) = line else { break };
        let event = match line.map(|l| podlog::decode(&l)) {
            Ok(Ok(Some(PodLine::Event(AgentEvent::Log { at, text, .. })))) => AgentEvent::Log {
                reference: log_ref.clone(),
                at,
                text,
            },
            Ok(Ok(Some(PodLine::Event(AgentEvent::Warning { message, .. })))) => {
                AgentEvent::Warning {
                    reference: log_ref.clone(),
                    message,
                }
            }
            _ => continue,
        };
        pending.push(event);
        if pending.len() >= 200 || reader.is_idle() {
            let batch = std::mem::take(&mut pending);
            tokio::select! {
                _ = deliveries.send(Delivery::Events(batch)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
    if !pending.is_empty() && !stop.is_cancelled() {
        let _ = deliveries.send(Delivery::Events(pending)).await;
    }
}

/// The log of a pod's main container, followed, each line after its time (to resume).
pub(super) fn following_the_main_container() -> LogParams {
    LogParams {
        container: Some(job::CONTAINER.to_string()),
        follow: true,
        timestamps: true,
        ..Default::default()
    }
}

/// A service pod's log, followed (not resumed: its lines are only shown).
fn following_a_service() -> LogParams {
    LogParams {
        container: Some(job::CONTAINER.to_string()),
        follow: true,
        ..Default::default()
    }
}

/// What reading the main container's log keeps from one stream to the next.
#[derive(Default)]
pub(super) struct Reading {
    assembling: Option<(podlog::ArtifactChunk, tokio::fs::File, PathBuf)>,
    files: u64,
    pub(super) kept: VecDeque<String>,
    position: Position,
}

impl Reading {
    /// Lines accepted so far, over every stream.
    pub(super) fn accepted(&self) -> u64 {
        self.position.accepted
    }

    /// A new stream starts: from the beginning, skipping what was read.
    pub(super) fn restart(&mut self) {
        self.position.restart();
    }
}

/// How far the log was read, by the lines' times (`timestamps=true`: RFC3339 with up to nine
/// fraction digits): a new stream starts from the beginning, and its lines up to the last one
/// read are skipped, those of that very time by count.
#[derive(Default, Debug)]
struct Position {
    last: String,
    at_last: usize,
    skip_at_last: usize,
    accepted: u64,
}

impl Position {
    /// A new stream, from the log's start.
    fn restart(&mut self) {
        self.skip_at_last = self.at_last;
    }

    /// Whether a line of this time comes after what was read (and counts it).
    fn is_new(&mut self, time: &str) -> bool {
        let time = comparable_time(time);
        match time.as_str().cmp(self.last.as_str()) {
            std::cmp::Ordering::Less => return false,
            std::cmp::Ordering::Equal if self.skip_at_last > 0 => {
                self.skip_at_last -= 1;
                return false;
            }
            std::cmp::Ordering::Equal => self.at_last += 1,
            std::cmp::Ordering::Greater => {
                self.last = time;
                self.at_last = 1;
                self.skip_at_last = 0;
            }
        }
        self.accepted += 1;
        true
    }
}

/// A log line's time with nine fraction digits, so that times compare as text
/// (`…:03.5Z` → `…:03.500000000Z`); anything else as it is.
fn comparable_time(time: &str) -> String {
    let Some(base) = time.strip_suffix('Z') else {
        return time.to_string();
    };
    let (seconds, fraction) = base.split_once('.').unwrap_or((base, ""));
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return time.to_string();
    }
    format!("{seconds}.{fraction:0<9}Z")
}

/// Lines of a stream, each at most [`MAX_LINE`] bytes (a longer one is an error, skipped).
struct BoundedLines<R> {
    inner: R,
    idle: bool,
}

/// A line too long to be the protocol's.
#[derive(Debug)]
struct TooLong(usize);

impl From<TooLong> for podlog::LineError {
    fn from(t: TooLong) -> Self {
        podlog::LineError::too_long(t.0, MAX_LINE)
    }
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    fn new(inner: R) -> Self {
        BoundedLines { inner, idle: true }
    }

    /// Whether nothing more was buffered after the last line (a good time to send a batch).
    fn is_idle(&self) -> bool {
        self.idle
    }

    async fn next_line(&mut self) -> Option<Result<String, TooLong>> {
        let mut line: Vec<u8> = Vec::new();
        let mut dropped = 0usize;
        loop {
            let buf = match self.inner.fill_buf().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "the pod log broke off");
                    return None;
                }
            };
            if buf.is_empty() {
                return if line.is_empty() && dropped == 0 {
                    None
                } else {
                    Some(finish(line, dropped))
                };
            }
            let (take, end) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            let piece = &buf[..take];
            if piece.len() <= room {
                line.extend_from_slice(piece);
            } else {
                line.extend_from_slice(&piece[..room]);
                dropped += piece.len() - room;
            }
            let rest = buf.len() - take;
            self.inner.consume_unpin(take);
            if end {
                self.idle = rest == 0;
                return Some(finish(line, dropped));
            }
        }
    }
}

fn finish(mut line: Vec<u8>, dropped: usize) -> Result<String, TooLong> {
    if dropped > 0 {
        return Err(TooLong(line.len() + dropped));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_lines_cut_long_lines_and_keep_the_rest() {
        let long = "x".repeat(MAX_LINE + 10);
        let text = format!("a\n{long}\nb\nlast-without-newline");
        let mut lines = BoundedLines::new(futures::io::Cursor::new(text.into_bytes()));
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "a");
        assert!(lines.next_line().await.unwrap().is_err());
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "b");
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            "last-without-newline"
        );
        assert!(lines.next_line().await.is_none());
    }

    #[test]
    fn a_new_stream_skips_the_lines_read_by_their_time() {
        assert_eq!(
            comparable_time("2026-12-07T01:02:03.5Z"),
            "2026-12-07T01:02:03.500000000Z"
        );
        assert_eq!(
            comparable_time("2026-12-07T01:02:03Z"),
            "2026-12-07T01:02:03.000000000Z"
        );
        let t = |s: &str| format!("2026-12-07T01:02:0{s}Z");
        let mut p = Position::default();
        // First stream: four lines, two of them at the same time; it breaks there.
        for time in ["1.1", "1.2", "1.2"] {
            assert!(p.is_new(&t(time)));
        }
        // Second stream, from the start: the three are skipped (the equal times by count),
        // a third line of the same time and the later ones are new.
        p.restart();
        let seen: Vec<bool> = ["1.1", "1.2", "1.2", "1.2", "1.25", "2"]
            .iter()
            .map(|time| p.is_new(&t(time)))
            .collect();
        assert_eq!(seen, [false, false, false, true, true, true]);
        assert_eq!(p.accepted, 6);
        // Fractions of other lengths compare as times, not as text (`01.1Z` > `01.12Z`).
        let mut p = Position::default();
        assert!(p.is_new(&t("1.12")));
        p.restart();
        assert!(!p.is_new(&t("1.1")), "01.1 came before 01.12");
    }
}
