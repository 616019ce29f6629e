//! `GET /v1/test-workflow-executions/{id}/notifications`: Server-Sent Events of one execution.
//!
//! Everything comes from the store (the runner persists each event before anyone sees it), so a
//! late follower, a follower on another server and a resumed one all see the same lines: the
//! stream replays what is stored, then follows new lines until the execution ends.
//!
//! # One reader per execution, woken by the writer
//! The followers of one execution on this server share a *hub*: one task that reads the store
//! when the store signals a change of the execution ([`Store::watch`]: a log writer wrote lines
//! out, a step result or the status changed — in this process, or in another one on the same
//! PostgreSQL through `LISTEN`/`NOTIFY`), and on its own every [`Hubs::set_fallback`] interval
//! (writers in other processes on SQLite send no signal). Each look (new log lines of every
//! step; on a state change also the status and the result) becomes one batch of ready-to-send
//! SSE bytes, serialized once. Followers forward whole byte slices of batches, so 200 followers
//! cost about what one does. The first follower starts the hub; it stops when the last one goes
//! (see [`Hubs`]). The signal carries no data: what a follower gets was read from the store, so
//! it was stored before anyone saw it.
//!
//! A follower joins at the hub's current position: it replays from its own position (the start,
//! or its `Last-Event-ID`) up to exactly there from the store, then forwards batches, skipping
//! lines it already sent. A follower too slow for the hub's buffer (a stalled client) misses
//! batches; it fills the gap from the store before forwarding the next one, so it loses nothing
//! and never holds the hub back.
//!
//! # Event ids
//! An id is `SEQ;REF=OFFSET;…`: the log offset reached in each step (steps with no line yet are
//! left out; `;`, `=` and `%` in a ref are `%`-escaped), and first `SEQ`, the sum of those
//! offsets, which grows with every log line. Ids depend only on the lines sent, so the hub, a
//! follower's own replay and another server hand out the same id for the same position.
//! `Last-Event-ID` resumes after exactly those lines (its `SEQ` is not needed and ignored). A
//! `result` event carries the id of the position it was seen at (the id of the log line before
//! it, or `0`): results are state, and the current one is sent again on resume.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use assay_api::{ErrorBody, Notification, TestWorkflowExecution};
use assay_store::testkube::rfc3339;
use assay_store::{
    Changes, Execution, ExecutionRef, LogLine, LogReader, Store, StoreError, Watch, now_ms,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{Notify, broadcast, mpsc};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// How often a hub looks at the store without a signal, by default: on SQLite another process
/// (`assay run` on the same data dir) writes without signalling this one…
pub const FALLBACK_SQLITE: Duration = Duration::from_millis(200);
/// …while on PostgreSQL every writer signals, and looking is only a safety net (a run whose
/// process died is judged from its lease).
pub const FALLBACK_POSTGRES: Duration = Duration::from_secs(2);
/// Comment lines that keep proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Batches a hub keeps for followers that are behind (about this many polls).
const HUB_BUFFER: usize = 64;
/// A follower's replay is sent in pieces of about this size.
const CHUNK: usize = 64 * 1024;
/// Pieces of body a follower may have ready before the client reads them.
const FOLLOWER_BUFFER: usize = 16;

/// Where a stream is: the log offset reached in each step that has sent a line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Offset just past the last line sent, per step ref (never 0).
    pub offsets: BTreeMap<String, u64>,
}

fn escape(step: &str) -> String {
    step.replace('%', "%25")
        .replace(';', "%3B")
        .replace('=', "%3D")
        .replace('\n', "%0A")
        .replace('\r', "%0D")
}

fn unescape(step: &str) -> String {
    step.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3D", "=")
        .replace("%3B", ";")
        .replace("%25", "%")
}

impl Cursor {
    /// The sum of the offsets: grows with every line sent.
    pub fn seq(&self) -> u64 {
        self.offsets
            .values()
            .fold(0u64, |sum, offset| sum.saturating_add(*offset))
    }

    /// The event id of this position.
    pub fn render(&self) -> String {
        let mut out = self.seq().to_string();
        for (step, offset) in &self.offsets {
            out.push(';');
            out.push_str(&escape(step));
            out.push('=');
            out.push_str(&offset.to_string());
        }
        out
    }

    /// `None` for an id this server did not hand out.
    pub fn parse(text: &str) -> Option<Cursor> {
        let mut parts = text.trim().split(';');
        parts.next()?.parse::<u64>().ok()?;
        let mut offsets = BTreeMap::new();
        for part in parts {
            let (step, offset) = part.rsplit_once('=')?;
            let offset: u64 = offset.parse().ok()?;
            if offset > 0 {
                offsets.insert(unescape(step), offset);
            }
        }
        Some(Cursor { offsets })
    }

    fn get(&self, step: &str) -> u64 {
        self.offsets.get(step).copied().unwrap_or(0)
    }

    fn advance(&mut self, step: &str, offset: u64) {
        match self.offsets.get_mut(step) {
            Some(at) => *at = offset,
            None => {
                self.offsets.insert(step.to_string(), offset);
            }
        }
    }
}

/// Live log lines and results of an execution; replays first, ends when the execution ends.
#[utoipa::path(get, path = "/v1/test-workflow-executions/{id}/notifications", tag = "executions",
    params(("id" = String, Path),
           ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = r"^[0-9]{1,20}(;[^;]*=[0-9]{1,20})*$", description = "resume after this event (the `id` of the last event received): ids are `SEQ;REF=OFFSET;…`, the log offset reached in each step after their sum")),
    responses((status = 200, content_type = "text/event-stream", description = "events `log` and `result`; each event's data is a Notification as JSON", body = assay_api::NotificationEvent),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn notifications(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let summary = state
        .store
        .find_execution(&ExecutionRef::parse(&id))
        .await?;
    let cursor = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(text) => Cursor::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("Last-Event-ID `{text}` is not one of ours"))
        })?,
        None => Cursor::default(),
    };
    let hub = state.hubs.hub(&state.store, &summary.id);
    let (tx, rx) = mpsc::channel(FOLLOWER_BUFFER);
    let follower = Follower {
        store: state.store.clone(),
        id: summary.id,
        cursor,
        out: tx,
    };
    tokio::spawn(follower.run(hub));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), rx))
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Event bytes

/// Append `event: KIND\n` and `id: ID\n` (the head of an event).
fn push_head(buf: &mut Vec<u8>, kind: &str, id: &str) {
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\nid: ");
    buf.extend_from_slice(id.as_bytes());
    buf.push(b'\n');
}

/// Append `data: JSON\n\n` (the rest of an event).
fn push_data(buf: &mut Vec<u8>, data: &Notification) {
    buf.extend_from_slice(b"data: ");
    // Compact JSON has no newline: one data line.
    serde_json::to_writer(&mut *buf, data).expect("a Notification serializes");
    buf.extend_from_slice(b"\n\n");
}

fn log_notification(line: LogLine) -> Notification {
    Notification {
        ts: rfc3339(line.ts),
        step_ref: Some(line.step),
        log: Some(line.text),
        result: None,
    }
}

fn error_event(what: &StoreError) -> Bytes {
    let data = serde_json::json!({"error": format!("failed to {what}")});
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

// ---------------------------------------------------------------------------------------------
// Hubs

/// The hubs of the executions followed on this server, by execution id. A hub lives as long as
/// one of its followers holds it.
#[derive(Clone, Default)]
pub struct Hubs(Arc<HubsInner>);

#[derive(Default)]
struct HubsInner {
    map: Mutex<HashMap<String, Weak<Hub>>>,
    /// Milliseconds between looks without a signal; 0: the store's default; `u64::MAX`: never.
    fallback_ms: AtomicU64,
}

impl std::fmt::Debug for Hubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hubs")
            .field("followed", &lock(&self.0.map).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hubs {
    /// How often hubs started from now on look at the store without a signal: `None` never
    /// (only signals wake them). Default: [`FALLBACK_SQLITE`] or [`FALLBACK_POSTGRES`].
    pub fn set_fallback(&self, every: Option<Duration>) {
        let ms = match every {
            Some(d) => (d.as_millis() as u64).clamp(1, u64::MAX - 1),
            None => u64::MAX,
        };
        self.0.fallback_ms.store(ms, Ordering::Relaxed);
    }

    fn fallback(&self, store: &Store) -> Option<Duration> {
        match self.0.fallback_ms.load(Ordering::Relaxed) {
            0 if store.is_postgres() => Some(FALLBACK_POSTGRES),
            0 => Some(FALLBACK_SQLITE),
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The hub of execution `id`, started now if nobody follows it yet.
    fn hub(&self, store: &Store, id: &str) -> Arc<Hub> {
        let mut map = lock(&self.0.map);
        if let Some(hub) = map.get(id).and_then(Weak::upgrade) {
            return hub;
        }
        let (tx, _) = broadcast::channel(HUB_BUFFER);
        let gone = Arc::new(Notify::new());
        let hub = Arc::new(Hub {
            id: id.to_string(),
            hubs: self.clone(),
            gone: gone.clone(),
            state: Mutex::new(HubState {
                tx: Some(tx),
                at: Cursor::default(),
                result: None,
                end: None,
            }),
        });
        map.insert(id.to_string(), Arc::downgrade(&hub));
        let poller = Poller {
            store: store.clone(),
            id: id.to_string(),
            readers: BTreeMap::new(),
            fingerprint: None,
            at: Cursor::default(),
            more: false,
        };
        // Watching before the first look: what is written during it wakes the next one.
        let watch = store.watch(id);
        let fallback = self.fallback(store);
        tokio::spawn(poller.run(Arc::downgrade(&hub), watch, fallback, gone));
        hub
    }
}

/// One followed execution: the latest position of its poller and the channel of its batches.
struct Hub {
    id: String,
    hubs: Hubs,
    /// Tells the poller that the last follower went.
    gone: Arc<Notify>,
    state: Mutex<HubState>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.gone.notify_one();
        let mut map = lock(&self.hubs.0.map);
        // A new hub may already be there for a new follower.
        if map.get(&self.id).is_some_and(|w| w.strong_count() == 0) {
            map.remove(&self.id);
        }
    }
}

/// Changed only together, under the hub's lock, so that a follower joining knows exactly which
/// batches it will get.
struct HubState {
    /// `None` once the poller stopped.
    tx: Option<broadcast::Sender<Arc<Batch>>>,
    /// Lines published so far.
    at: Cursor,
    /// The latest result's `data: …\n\n`.
    result: Option<Bytes>,
    end: Option<End>,
}

#[derive(Clone)]
enum End {
    /// The execution ended; the last batch had its final result.
    Ended,
    /// The poller failed: this error event ends every stream.
    Failed(Bytes),
}

/// What a follower gets on joining a hub.
struct Joined {
    rx: Option<broadcast::Receiver<Arc<Batch>>>,
    at: Cursor,
    result: Option<Bytes>,
    end: Option<End>,
}

impl Hub {
    fn join(&self) -> Joined {
        let state = lock(&self.state);
        Joined {
            rx: state.tx.as_ref().map(broadcast::Sender::subscribe),
            at: state.at.clone(),
            result: state.result.clone(),
            end: state.end.clone(),
        }
    }

    fn publish(&self, batch: Batch) {
        let mut state = lock(&self.state);
        state.at = batch.after.clone();
        if let Some(result) = &batch.result {
            // A copy: a slice would keep the whole batch in memory.
            state.result = Some(Bytes::copy_from_slice(
                &batch.bytes[result.data..result.end],
            ));
        }
        if batch.end.is_some() {
            state.end = batch.end.clone();
        }
        if let Some(tx) = &state.tx {
            // No receiver is fine: a follower may be about to join (it then replays).
            let _ = tx.send(Arc::new(batch));
        }
    }
}

/// The events of one poll, serialized once: `bytes` is every event one after the other.
struct Batch {
    /// The hub's position before this batch.
    start: Cursor,
    /// …and after it.
    after: Cursor,
    bytes: Bytes,
    /// Step refs of the lines (`Piece::step` indexes this).
    steps: Vec<String>,
    lines: Vec<Piece>,
    /// The result event, after the lines.
    result: Option<Piece>,
    end: Option<End>,
}

/// One event in [`Batch::bytes`]: its `data: …` part is `data..end` (its head is before).
struct Piece {
    /// Index in [`Batch::steps`] (0 for the result).
    step: usize,
    /// The line's end offset in its step (0 for the result).
    offset: u64,
    data: usize,
    end: usize,
}

/// The hub's task: what each follower used to do alone.
struct Poller {
    store: Store,
    id: String,
    readers: BTreeMap<String, LogReader>,
    /// Status and steps of the last result sent.
    fingerprint: Option<String>,
    at: Cursor,
    /// A reader stopped at its size limit in the last look: look again at once.
    more: bool,
}

impl Poller {
    async fn run(
        mut self,
        hub: Weak<Hub>,
        mut watch: Watch,
        fallback: Option<Duration>,
        gone: Arc<Notify>,
    ) {
        let mut what = Changes::ALL;
        loop {
            let polled = self.poll(what).await;
            let Some(strong) = hub.upgrade() else {
                return; // every follower left
            };
            match polled {
                Ok(Some(batch)) => {
                    let ended = batch.end.is_some();
                    strong.publish(batch);
                    if ended {
                        lock(&strong.state).tx = None;
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(id = %self.id, error = %e, "notifications stopped");
                    let event = error_event(&e);
                    strong.publish(Batch {
                        start: self.at.clone(),
                        after: self.at.clone(),
                        bytes: event.clone(),
                        steps: Vec::new(),
                        lines: Vec::new(),
                        result: None,
                        end: Some(End::Failed(event)),
                    });
                    lock(&strong.state).tx = None;
                    return;
                }
            }
            drop(strong);
            if self.more {
                // The rest of a long log that is stored already: no signal will come for it.
                tokio::task::yield_now().await;
                what = Changes {
                    logs: true,
                    state: false,
                };
                continue;
            }
            let fallback = async {
                match fallback {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            what = tokio::select! {
                changes = watch.changed() => changes,
                () = fallback => Changes::ALL,
                () = gone.notified() => return,
            };
        }
    }

    /// One look at the store (the status and the result only when `what.state`); `None` when
    /// nothing changed.
    async fn poll(&mut self, what: Changes) -> Result<Option<Batch>, StoreError> {
        let (store, id) = (&self.store, self.id.as_str());
        // Status first: every line written before the end is then surely read below.
        let summary = match what.state {
            true => Some(
                store
                    .find_execution(&ExecutionRef::Id(id.to_string()))
                    .await?,
            ),
            false => None,
        };
        let ended = summary.as_ref().is_some_and(|s| s.status.is_terminal());
        for step in store.log_steps(id).await? {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.readers.entry(step) {
                let reader = store.log_reader(id, slot.key(), 0);
                slot.insert(reader);
            }
        }
        let mut lines = Vec::new();
        for reader in self.readers.values_mut() {
            if ended {
                lines.extend(reader.read_to_end().await?);
            } else {
                lines.extend(reader.read_available().await?);
            }
        }
        self.more = self.readers.values().any(LogReader::maybe_more);
        lines.sort_by_key(|l| l.ts);

        let start = self.at.clone();
        let mut buf = Vec::with_capacity(lines.len() * 160);
        let mut steps: Vec<String> = Vec::new();
        let mut pieces = Vec::with_capacity(lines.len());
        for line in lines {
            let step = match steps.iter().position(|s| *s == line.step) {
                Some(i) => i,
                None => {
                    steps.push(line.step.clone());
                    steps.len() - 1
                }
            };
            let offset = line.offset;
            self.at.advance(&line.step, offset);
            push_head(&mut buf, "log", &self.at.render());
            let data = buf.len();
            push_data(&mut buf, &log_notification(line));
            pieces.push(Piece {
                step,
                offset,
                data,
                end: buf.len(),
            });
        }

        let mut result = None;
        if let Some(summary) = summary {
            let steps_now = store.steps(id).await?;
            let view = TestWorkflowExecution::from(&Execution {
                summary,
                definition: String::new(),
                resolved: None,
                steps: steps_now,
                outputs: Vec::new(),
                reports: Vec::new(),
                artifacts: Vec::new(),
                children: Vec::new(),
            });
            // Compare status and steps only: durations of a running execution change on every
            // look.
            let fingerprint = serde_json::to_string(&(&view.result.status, &view.result.steps))
                .unwrap_or_default();
            if self.fingerprint.as_deref() != Some(&fingerprint) || ended {
                self.fingerprint = Some(fingerprint);
                push_head(&mut buf, "result", &self.at.render());
                let data = buf.len();
                push_data(
                    &mut buf,
                    &Notification {
                        ts: rfc3339(now_ms()),
                        step_ref: None,
                        log: None,
                        result: Some(view.result),
                    },
                );
                result = Some(Piece {
                    step: 0,
                    offset: 0,
                    data,
                    end: buf.len(),
                });
            }
        }
        if pieces.is_empty() && result.is_none() {
            return Ok(None);
        }
        Ok(Some(Batch {
            start,
            after: self.at.clone(),
            bytes: Bytes::from(buf),
            steps,
            lines: pieces,
            result,
            end: ended.then_some(End::Ended),
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Followers

/// One client's stream.
struct Follower {
    store: Store,
    id: String,
    /// What this client has been sent.
    cursor: Cursor,
    out: mpsc::Sender<Bytes>,
}

/// Why a follower stops early.
enum Stop {
    /// The client went away.
    Gone,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

impl Follower {
    async fn run(mut self, hub: Arc<Hub>) {
        match self.follow(&hub).await {
            Ok(()) | Err(Stop::Gone) => {}
            Err(Stop::Store(e)) => {
                tracing::warn!(id = %self.id, error = %e, "notifications stopped");
                let _ = self.out.send(error_event(&e)).await;
            }
        }
    }

    async fn follow(&mut self, hub: &Hub) -> Result<(), Stop> {
        let joined = hub.join();
        self.fill(&joined.at.offsets).await?;
        if let Some(data) = joined.result {
            let mut buf = Vec::with_capacity(data.len() + 64);
            push_head(&mut buf, "result", &self.cursor.render());
            buf.extend_from_slice(&data);
            self.send(Bytes::from(buf)).await?;
        }
        match joined.end {
            Some(End::Ended) => return Ok(()),
            Some(End::Failed(event)) => return self.send(event).await,
            None => {}
        }
        let Some(mut rx) = joined.rx else {
            return self.send(poller_gone()).await;
        };
        loop {
            let batch = match tokio::time::timeout(HEARTBEAT, rx.recv()).await {
                Err(_idle) => {
                    self.send(Bytes::from_static(KEEP_ALIVE)).await?;
                    continue;
                }
                Ok(Ok(batch)) => batch,
                // Behind: the next batch starts after a gap, which `forward` fills.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return self.send(poller_gone()).await;
                }
            };
            if self.forward(&batch).await? {
                return Ok(());
            }
        }
    }

    async fn send(&self, bytes: Bytes) -> Result<(), Stop> {
        self.out.send(bytes).await.map_err(|_| Stop::Gone)
    }

    /// Send one batch (after what lies between this follower and it); `true` at the end.
    async fn forward(&mut self, batch: &Batch) -> Result<bool, Stop> {
        self.fill(&batch.start.offsets).await?;
        if self.cursor == batch.start {
            // In step with the hub: its ids are ours; send its bytes as they are.
            self.cursor = batch.after.clone();
            if !batch.bytes.is_empty() {
                self.send(batch.bytes.clone()).await?;
            }
        } else {
            // Ahead of the hub in some step (a resumed follower): skip what was sent and
            // give the rest our own ids, until a batch starts where we are.
            let mut buf = Vec::new();
            for line in &batch.lines {
                let step = &batch.steps[line.step];
                if line.offset <= self.cursor.get(step) {
                    continue;
                }
                self.cursor.advance(step, line.offset);
                push_head(&mut buf, "log", &self.cursor.render());
                buf.extend_from_slice(&batch.bytes[line.data..line.end]);
            }
            if let Some(result) = &batch.result {
                push_head(&mut buf, "result", &self.cursor.render());
                buf.extend_from_slice(&batch.bytes[result.data..result.end]);
            }
            if let Some(End::Failed(event)) = &batch.end {
                buf.extend_from_slice(event);
            }
            if !buf.is_empty() {
                self.send(Bytes::from(buf)).await?;
            }
        }
        Ok(batch.end.is_some())
    }

    /// Replay from the store the lines between this follower's position and `upto`.
    async fn fill(&mut self, upto: &BTreeMap<String, u64>) -> Result<(), Stop> {
        let mut readers: Vec<(LogReader, u64)> = upto
            .iter()
            .filter(|(step, end)| **end > self.cursor.get(step))
            .map(|(step, end)| {
                let from = self.cursor.get(step);
                (self.store.log_reader(&self.id, step, from), *end)
            })
            .collect();
        while !readers.is_empty() {
            let mut lines = Vec::new();
            for (reader, end) in &mut readers {
                lines.extend(reader.read_until(*end).await?);
            }
            if lines.is_empty() {
                break;
            }
            lines.sort_by_key(|l| l.ts);
            let mut buf = Vec::with_capacity(CHUNK + 4096);
            for line in lines {
                self.cursor.advance(&line.step, line.offset);
                push_head(&mut buf, "log", &self.cursor.render());
                push_data(&mut buf, &log_notification(line));
                if buf.len() >= CHUNK {
                    let full = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK + 4096));
                    self.send(Bytes::from(full)).await?;
                }
            }
            if !buf.is_empty() {
                self.send(Bytes::from(buf)).await?;
            }
        }
        Ok(())
    }
}

fn poller_gone() -> Bytes {
    let data = serde_json::json!({"error": "the server stopped following this execution"});
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let mut c = Cursor::default();
        c.offsets.insert("a/0/b".into(), 120);
        c.offsets.insert("odd;=%\n".into(), 7);
        assert_eq!(c.seq(), 127);
        assert!(c.render().starts_with("127;"));
        assert_eq!(Cursor::parse(&c.render()), Some(c));
        assert_eq!(Cursor::parse("garbage"), None);
        assert_eq!(Cursor::parse("3;a=x"), None);
        assert_eq!(Cursor::parse("3"), Some(Cursor::default()));
        assert_eq!(Cursor::parse("0;a=0"), Some(Cursor::default()));
    }

    #[test]
    fn events_are_one_data_line() {
        let mut buf = Vec::new();
        push_head(&mut buf, "log", "5;a=5");
        push_data(
            &mut buf,
            &log_notification(LogLine {
                step: "a".into(),
                ts: 0,
                text: "two\nlines\r".into(),
                offset: 5,
            }),
        );
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("event: log\nid: 5;a=5\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"), "{text}");
        assert_eq!(text.matches('\n').count(), 4, "{text}");
    }
}
