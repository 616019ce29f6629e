//! `GET /v1/test-workflow-executions/{id}/notifications`: Server-Sent Events of one execution.
//!
//! Everything comes from the store (the runner persists each event before anyone sees it), so a
//! late follower, a follower on another server and a resumed one all see the same lines: the
//! stream replays what is stored, then polls for more until the execution ends.
//!
//! Event ids are `SEQ;REF=OFFSET;…`: a sequence number that grows by one per event, then the
//! log offset reached in each step. `Last-Event-ID` resumes after exactly those lines; results
//! are state, so the current one is sent again on resume.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use assay_api::{ErrorBody, Notification, TestWorkflowExecution};
use assay_store::testkube::rfc3339;
use assay_store::{Execution, ExecutionRef, LogReader, Store, now_ms};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::mpsc;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// How often the store is polled while the execution runs.
const POLL: Duration = Duration::from_millis(200);
/// Comment lines that keep proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Where a stream is: events sent and the log offset reached per step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    pub seq: u64,
    pub offsets: BTreeMap<String, u64>,
}

fn escape(step: &str) -> String {
    step.replace('%', "%25")
        .replace(';', "%3B")
        .replace('=', "%3D")
}

fn unescape(step: &str) -> String {
    step.replace("%3D", "=")
        .replace("%3B", ";")
        .replace("%25", "%")
}

impl Cursor {
    pub fn render(&self) -> String {
        let mut out = self.seq.to_string();
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
        let seq = parts.next()?.parse().ok()?;
        let mut offsets = BTreeMap::new();
        for part in parts {
            let (step, offset) = part.rsplit_once('=')?;
            offsets.insert(unescape(step), offset.parse().ok()?);
        }
        Some(Cursor { seq, offsets })
    }
}

/// Live log lines and results of an execution; replays first, ends when the execution ends.
#[utoipa::path(get, path = "/v1/test-workflow-executions/{id}/notifications", tag = "executions",
    params(("id" = String, Path),
           ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = r"^[0-9]{1,18}(;[^;]*=[0-9]{1,18})*$", description = "resume after this event (the `id` of the last event received)")),
    responses((status = 200, content_type = "text/event-stream", description = "events `log` and `result`; each event's data is a Notification as JSON", body = assay_api::NotificationEvent),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn notifications(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
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
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(follow(state.store.clone(), summary.id, cursor, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}

/// Feed `tx` until the execution ends or the client goes away.
async fn follow(store: Store, id: String, mut cursor: Cursor, tx: mpsc::Sender<Event>) {
    let mut readers: BTreeMap<String, LogReader> = BTreeMap::new();
    let mut last_result: Option<String> = None;
    loop {
        match poll_once(
            &store,
            &id,
            &mut cursor,
            &mut readers,
            &mut last_result,
            &tx,
        )
        .await
        {
            Ok(Step::Continue) => tokio::time::sleep(POLL).await,
            Ok(Step::Ended) | Ok(Step::Gone) => return,
            Err(e) => {
                tracing::warn!(%id, error = %e, "notifications stopped");
                let data = serde_json::json!({"error": format!("failed to {e}")});
                let _ = tx
                    .send(Event::default().event("error").data(data.to_string()))
                    .await;
                return;
            }
        }
    }
}

enum Step {
    Continue,
    Ended,
    Gone,
}

async fn poll_once(
    store: &Store,
    id: &str,
    cursor: &mut Cursor,
    readers: &mut BTreeMap<String, LogReader>,
    last_result: &mut Option<String>,
    tx: &mpsc::Sender<Event>,
) -> Result<Step, assay_store::StoreError> {
    // Status first: every line written before the end is then surely read below.
    let summary = store
        .find_execution(&ExecutionRef::Id(id.to_string()))
        .await?;
    let ended = summary.status.is_terminal();
    for step in store.log_steps(id).await? {
        if !readers.contains_key(&step) {
            let offset = cursor.offsets.get(&step).copied().unwrap_or(0);
            readers.insert(step.clone(), store.log_reader(id, &step, offset));
        }
    }
    let mut lines = Vec::new();
    for reader in readers.values_mut() {
        if ended {
            lines.extend(reader.read_to_end().await?);
        } else {
            lines.extend(reader.read_available().await?);
        }
    }
    lines.sort_by_key(|l| l.ts);
    for line in lines {
        cursor.seq += 1;
        cursor.offsets.insert(line.step.clone(), line.offset);
        let data = Notification {
            ts: rfc3339(line.ts),
            step_ref: Some(line.step),
            log: Some(line.text),
            result: None,
        };
        let event = Event::default()
            .event("log")
            .id(cursor.render())
            .json_data(&data)
            .expect("serializable");
        if tx.send(event).await.is_err() {
            return Ok(Step::Gone);
        }
    }
    let steps = store.steps(id).await?;
    let view = TestWorkflowExecution::from(&Execution {
        summary,
        definition: String::new(),
        resolved: None,
        steps,
        outputs: Vec::new(),
        reports: Vec::new(),
        artifacts: Vec::new(),
    });
    // Compare status and steps only: durations of a running execution change on every look.
    let fingerprint =
        serde_json::to_string(&(&view.result.status, &view.result.steps)).unwrap_or_default();
    if last_result.as_deref() != Some(&fingerprint) || ended {
        *last_result = Some(fingerprint);
        cursor.seq += 1;
        let data = Notification {
            ts: rfc3339(now_ms()),
            step_ref: None,
            log: None,
            result: Some(view.result),
        };
        let event = Event::default()
            .event("result")
            .id(cursor.render())
            .json_data(&data)
            .expect("serializable");
        if tx.send(event).await.is_err() {
            return Ok(Step::Gone);
        }
    }
    Ok(if ended { Step::Ended } else { Step::Continue })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let mut c = Cursor {
            seq: 42,
            ..Cursor::default()
        };
        c.offsets.insert("a/0/b".into(), 120);
        c.offsets.insert("odd;=%".into(), 7);
        assert_eq!(Cursor::parse(&c.render()), Some(c));
        assert_eq!(Cursor::parse("garbage"), None);
        assert_eq!(
            Cursor::parse("3"),
            Some(Cursor {
                seq: 3,
                ..Cursor::default()
            })
        );
    }
}
