//! Live notifications: Server-Sent Events read with a small parser; a dropped connection is
//! resumed with `Last-Event-ID`, so no line is lost or repeated.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde_json::Value;

use assay_api::Notification;

use crate::*;

impl Client {
    /// `GET /v1/test-workflow-executions/{id}/notifications` once: the raw events, resuming
    /// after `last_event_id`. The stream ends when the execution ends (or the connection
    /// drops: then it ends with an error).
    pub async fn notifications(
        &self,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Result<BoxStream<'static, Result<ServerEvent, ClientError>>, ClientError> {
        let url = self.url(&["v1", "test-workflow-executions", id, "notifications"]);
        let mut req = self
            .request(Method::GET, url)
            .header("accept", "text/event-stream");
        if let Some(last) = last_event_id {
            req = req.header("last-event-id", last);
        }
        let response = self.send(req).await?;
        let base = self.base_url().to_string();
        let bytes = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| ClientError::Unreachable {
                url: base.clone(),
                reason: root_cause(&e),
            })
        });
        Ok(sse_events(bytes).boxed())
    }

    /// Follow an execution's notifications until it ends: what is stored first, then live.
    /// A connection that drops is opened again with `Last-Event-ID` (up to `retries` times in
    /// a row), so every line comes exactly once.
    pub fn follow(
        &self,
        id: &str,
        retries: u32,
    ) -> impl Stream<Item = Result<Followed, ClientError>> + Send + 'static {
        struct State {
            client: Client,
            id: String,
            last_id: Option<String>,
            current: Option<BoxStream<'static, Result<ServerEvent, ClientError>>>,
            failures: u32,
            retries: u32,
            ended: bool,
            done: bool,
        }
        let state = State {
            client: self.clone(),
            id: id.to_string(),
            last_id: None,
            current: None,
            failures: 0,
            retries,
            ended: false,
            done: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if s.done {
                    return None;
                }
                let Some(stream) = s.current.as_mut() else {
                    match s.client.notifications(&s.id, s.last_id.as_deref()).await {
                        Ok(stream) => s.current = Some(stream),
                        Err(e @ ClientError::Unreachable { .. }) if s.failures < s.retries => {
                            s.failures += 1;
                            tokio::time::sleep(backoff(s.failures)).await;
                            let _ = e;
                        }
                        Err(e) => {
                            s.done = true;
                            return Some((Err(e), s));
                        }
                    }
                    continue;
                };
                match stream.next().await {
                    Some(Ok(event)) => {
                        s.failures = 0;
                        if event.id.is_some() {
                            s.last_id = event.id.clone();
                        }
                        let parse = |data: &str| {
                            serde_json::from_str::<Notification>(data).map_err(|e| {
                                ClientError::Protocol {
                                    url: s.client.base_url().to_string(),
                                    reason: format!("a notification: {e}"),
                                }
                            })
                        };
                        let item = match event.event.as_str() {
                            "log" => parse(&event.data).map(Followed::Log),
                            "result" => parse(&event.data).map(|n| {
                                s.ended = n.result.as_ref().is_some_and(|r| r.status.is_terminal());
                                Followed::Result(n)
                            }),
                            "error" => {
                                let reason = serde_json::from_str::<Value>(&event.data)
                                    .ok()
                                    .and_then(|v| v["error"].as_str().map(str::to_string))
                                    .unwrap_or(event.data.clone());
                                s.done = true;
                                Err(ClientError::Protocol {
                                    url: s.client.base_url().to_string(),
                                    reason: format!("the server stopped the stream: {reason}"),
                                })
                            }
                            _ => continue,
                        };
                        if item.is_err() {
                            s.done = true;
                        }
                        return Some((item, s));
                    }
                    Some(Err(e)) => {
                        s.current = None;
                        if s.failures >= s.retries {
                            s.done = true;
                            return Some((Err(e), s));
                        }
                        s.failures += 1;
                        tokio::time::sleep(backoff(s.failures)).await;
                    }
                    None => {
                        s.current = None;
                        if s.ended {
                            return None;
                        }
                        // The stream closed before the execution ended (a server restart):
                        // resume where it stopped.
                        if s.failures >= s.retries {
                            s.done = true;
                            return Some((
                                Err(ClientError::Unreachable {
                                    url: s.client.base_url().to_string(),
                                    reason: "the notification stream kept closing".into(),
                                }),
                                s,
                            ));
                        }
                        s.failures += 1;
                        tokio::time::sleep(backoff(s.failures)).await;
                    }
                }
            }
        })
    }
}

pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250 * u64::from(failures.min(8)))
}

/// Parse a byte stream of `text/event-stream` into events (comments and retry lines dropped).
pub fn sse_events<S>(bytes: S) -> impl Stream<Item = Result<ServerEvent, ClientError>>
where
    S: Stream<Item = Result<Bytes, ClientError>> + Unpin,
{
    struct Parser<S> {
        bytes: S,
        buffer: Vec<u8>,
        /// Blocks before this index are parsed already (a chunk holds many events: dropping
        /// them one by one from the front would copy the rest each time).
        start: usize,
        finished: bool,
    }
    futures::stream::unfold(
        Parser {
            bytes,
            buffer: Vec::new(),
            start: 0,
            finished: false,
        },
        |mut p| async move {
            loop {
                if let Some(block) = next_block(&p.buffer, &mut p.start) {
                    if let Some(event) = parse_block(&block) {
                        return Some((Ok(event), p));
                    }
                    continue;
                }
                if p.finished {
                    return None;
                }
                p.buffer.drain(..p.start);
                p.start = 0;
                match p.bytes.next().await {
                    Some(Ok(chunk)) => p.buffer.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        p.finished = true;
                        p.buffer.clear();
                        return Some((Err(e), p));
                    }
                    None => {
                        // An unterminated last block is incomplete: drop it.
                        p.finished = true;
                        p.buffer.clear();
                    }
                }
            }
        },
    )
}
/// Take one complete block (up to a blank line) off the front of `buffer`.
#[cfg(test)]
pub(crate) fn take_block(buffer: &mut Vec<u8>) -> Option<String> {
    let mut start = 0;
    let block = next_block(buffer, &mut start)?;
    buffer.drain(..start);
    Some(block)
}

/// The complete block (up to a blank line) at `buffer[*start..]`, if there is one; `start`
/// moves past it.
pub(crate) fn next_block(buffer: &[u8], start: &mut usize) -> Option<String> {
    let text = &buffer[*start..];
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\n' {
            let rest = &text[i + 1..];
            let blank = if rest.first() == Some(&b'\n') {
                Some(i + 2)
            } else if rest.starts_with(b"\r\n") {
                Some(i + 3)
            } else {
                None
            };
            if let Some(end) = blank {
                let block = String::from_utf8_lossy(&text[..i]).into_owned();
                *start += end;
                return Some(block);
            }
        }
        i += 1;
    }
    None
}

pub(crate) fn parse_block(block: &str) -> Option<ServerEvent> {
    let mut id = None;
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = Some(value.to_string()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() && event.is_none() {
        return None;
    }
    Some(ServerEvent {
        id,
        event: event.unwrap_or_else(|| "message".into()),
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_on_blank_lines() {
        let mut buf =
            b": keep-alive\n\nevent: log\nid: 3;a=10\ndata: {\"x\":1}\n\nevent: res".to_vec();
        assert_eq!(take_block(&mut buf).as_deref(), Some(": keep-alive"));
        let block = take_block(&mut buf).unwrap();
        assert_eq!(
            parse_block(&block),
            Some(ServerEvent {
                id: Some("3;a=10".into()),
                event: "log".into(),
                data: "{\"x\":1}".into(),
            })
        );
        assert_eq!(take_block(&mut buf), None);
        assert_eq!(buf, b"event: res");
        assert_eq!(parse_block(": comment"), None);
    }
}
