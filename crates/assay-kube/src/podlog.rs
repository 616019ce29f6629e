//! The line protocol between `assay pod run` (inside an execution's pod) and the agent that
//! follows the pod's log: the pod's stdout carries one line per engine event
//! ([`AgentEvent`] as JSON after [`EVENT_PREFIX`]) and each artifact file as base64 chunks
//! ([`ArtifactChunk`] after [`CHUNK_PREFIX`]), in the order the engine reported them.
//!
//! JSON escapes every control character, so a line can never carry a newline of its own: text a
//! step prints (inside a `Log` event) cannot start a line of the protocol. Lines without a
//! prefix (the pod's stderr, which the pod log mixes in) are not the protocol's.

use assay_api::agents::AgentEvent;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Starts a line holding one [`AgentEvent`].
pub const EVENT_PREFIX: &str = "::assay.v1.event:: ";
/// Starts a line holding one [`ArtifactChunk`].
pub const CHUNK_PREFIX: &str = "::assay.v1.artifact:: ";
/// Starts a line asking the agent for a service instance's pod: a
/// [`crate::services::ServiceRequest`] as JSON.
pub const SERVICE_PREFIX: &str = "::assay.v1.service:: ";
/// Starts a line saying that the engine stopped a service instance that runs in a pod of its
/// own (or no longer waits for it to start): the agent deletes that pod. What follows is the instance's log reference as JSON.
pub const SERVICE_DONE_PREFIX: &str = "::assay.v1.service-done:: ";
/// Starts a line asking the agent for a parallel worker's pod: a
/// [`crate::workers::WorkerRequest`] as JSON.
pub const WORKER_PREFIX: &str = "::assay.v1.worker:: ";
/// Starts a line saying the main pod no longer waits for a worker (it ended, or was stopped):
/// the agent deletes its Job. What follows is the worker's key as JSON.
pub const WORKER_DONE_PREFIX: &str = "::assay.v1.worker-done:: ";
/// Bytes of an artifact file per chunk line (before base64: a line stays under 64 KiB).
pub const CHUNK_BYTES: usize = 45 * 1024;
/// Artifact bytes one execution sends through its pod log at most; files past it are not
/// sent (a warning names them). The pod log is kept by the kubelet in rotated files of a few
/// megabytes: a bigger budget would only be lost there.
pub const ARTIFACT_BUDGET: u64 = 64 * 1024 * 1024;

/// A piece of an artifact file: `data` (base64) is the file's bytes from `offset`; the chunk
/// with `last` ends the file (an empty file is one empty last chunk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactChunk {
    /// The step's reference.
    pub step: String,
    /// The artifact's path as the server stores it.
    pub path: String,
    pub offset: u64,
    pub data: String,
    #[serde(default)]
    pub last: bool,
}

impl ArtifactChunk {
    /// A chunk of `bytes` at `offset`.
    pub fn new(step: &str, path: &str, offset: u64, bytes: &[u8], last: bool) -> Self {
        ArtifactChunk {
            step: step.to_string(),
            path: path.to_string(),
            offset,
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
            last,
        }
    }

    /// The chunk's bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, LineError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|e| LineError(format!("artifact chunk of `{}`: {e}", self.path)))
    }
}

/// One line of the protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum PodLine {
    Event(AgentEvent),
    Chunk(ArtifactChunk),
    /// The main pod asks for a service instance's pod.
    Service(crate::services::ServiceRequest),
    /// A service instance's pod is no longer needed (its log reference).
    ServiceDone(String),
    /// The main pod asks for a worker's pod.
    Worker(crate::workers::WorkerRequest),
    /// A worker's pod is no longer needed (its key).
    WorkerDone(u64),
}

/// A line that starts like the protocol's but does not hold what it says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable line of the pod's event stream: {0}")]
pub struct LineError(String);

impl LineError {
    /// A line longer than a reader takes.
    pub fn too_long(length: usize, limit: usize) -> Self {
        LineError(format!(
            "a line of {length} bytes (more than {limit}): skipped"
        ))
    }
}

/// The line of an event (without its newline).
pub fn encode_event(event: &AgentEvent) -> String {
    // An AgentEvent is strings, numbers and enums: it always serializes.
    let json = serde_json::to_string(event).unwrap_or_else(|e| {
        format!(r#"{{"type":"warning","reference":"","message":"unencodable event: {e}"}}"#)
    });
    format!("{EVENT_PREFIX}{json}")
}

/// The line of an artifact chunk (without its newline).
pub fn encode_chunk(chunk: &ArtifactChunk) -> String {
    let json = serde_json::to_string(chunk).unwrap_or_default();
    format!("{CHUNK_PREFIX}{json}")
}

/// The line asking for a service instance's pod (without its newline).
pub fn encode_service(request: &crate::services::ServiceRequest) -> String {
    let json = serde_json::to_string(request).unwrap_or_default();
    format!("{SERVICE_PREFIX}{json}")
}

/// The line saying the service instance `log_ref` was stopped (without its newline).
pub fn encode_service_done(log_ref: &str) -> String {
    format!("{SERVICE_DONE_PREFIX}{}", serde_json::Value::from(log_ref))
}

/// The line asking for a worker's pod (without its newline).
pub fn encode_worker(request: &crate::workers::WorkerRequest) -> String {
    let json = serde_json::to_string(request).unwrap_or_default();
    format!("{WORKER_PREFIX}{json}")
}

/// The line saying worker `key` is no longer waited for (without its newline).
pub fn encode_worker_done(key: u64) -> String {
    format!("{WORKER_DONE_PREFIX}{key}")
}

/// Reads one line of the pod log: `Ok(None)` when it is not the protocol's.
pub fn decode(line: &str) -> Result<Option<PodLine>, LineError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if let Some(json) = line.strip_prefix(EVENT_PREFIX) {
        return serde_json::from_str(json)
            .map(|e| Some(PodLine::Event(e)))
            .map_err(|e| LineError(format!("event: {e}")));
    }
    if let Some(json) = line.strip_prefix(CHUNK_PREFIX) {
        return serde_json::from_str(json)
            .map(|c| Some(PodLine::Chunk(c)))
            .map_err(|e| LineError(format!("artifact chunk: {e}")));
    }
    if let Some(json) = line.strip_prefix(SERVICE_PREFIX) {
        return serde_json::from_str(json)
            .map(|r| Some(PodLine::Service(r)))
            .map_err(|e| LineError(format!("service request: {e}")));
    }
    if let Some(json) = line.strip_prefix(SERVICE_DONE_PREFIX) {
        return serde_json::from_str(json)
            .map(|r| Some(PodLine::ServiceDone(r)))
            .map_err(|e| LineError(format!("service end: {e}")));
    }
    if let Some(json) = line.strip_prefix(WORKER_PREFIX) {
        return serde_json::from_str(json)
            .map(|r| Some(PodLine::Worker(r)))
            .map_err(|e| LineError(format!("worker request: {e}")));
    }
    if let Some(json) = line.strip_prefix(WORKER_DONE_PREFIX) {
        return serde_json::from_str(json)
            .map(|k| Some(PodLine::WorkerDone(k)))
            .map_err(|e| LineError(format!("worker end: {e}")));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Hostile text: newlines, carriage returns, NULs, the prefixes themselves, unicode.
        prop_oneof![
            any::<String>(),
            Just(format!(
                "\n{EVENT_PREFIX}{{\"type\":\"executionFinished\"}}\n"
            )),
            Just(format!("\r\n{CHUNK_PREFIX}\u{0}\u{1b}[31m")),
            "[\\n\\r\\t\\x00-\\x1f:a-z\"\\\\{}é€😀]{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn log_and_output_events_round_trip_on_one_line(
            reference in text(), body in text(), at in any::<i64>(),
        ) {
            for event in [
                AgentEvent::Log { reference: reference.clone(), at, text: body.clone() },
                AgentEvent::Output { reference: reference.clone(), key: body.clone(), value: reference.clone() },
                AgentEvent::Warning { reference: reference.clone(), message: body.clone() },
            ] {
                let line = encode_event(&event);
                prop_assert!(!line.contains('\n') && !line.contains('\r'));
                prop_assert_eq!(decode(&line), Ok(Some(PodLine::Event(event))));
            }
        }

        #[test]
        fn artifact_chunks_round_trip(
            step in text(), path in text(), offset in any::<u64>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..2048), last in any::<bool>(),
        ) {
            let chunk = ArtifactChunk::new(&step, &path, offset, &bytes, last);
            let line = encode_chunk(&chunk);
            prop_assert!(!line.contains('\n'));
            let Ok(Some(PodLine::Chunk(back))) = decode(&line) else {
                return Err(TestCaseError::fail("not a chunk"));
            };
            prop_assert_eq!(back.bytes().unwrap(), bytes);
            prop_assert_eq!(back, chunk);
        }

        #[test]
        fn service_ends_round_trip_on_one_line(reference in text()) {
            let line = encode_service_done(&reference);
            prop_assert!(!line.contains('\n') && !line.contains('\r'));
            prop_assert_eq!(decode(&line), Ok(Some(PodLine::ServiceDone(reference.clone()))));
            let request = crate::services::ServiceRequest {
                key: 3, log_ref: reference.clone(), name: reference.clone(), index: 1, port: 9,
            };
            let line = encode_service(&request);
            prop_assert!(!line.contains('\n') && !line.contains('\r'));
            prop_assert_eq!(decode(&line), Ok(Some(PodLine::Service(request))));
        }

        #[test]
        fn worker_lines_round_trip_on_one_line(reference in text(), key in any::<u64>(), port in any::<u16>()) {
            let request = crate::workers::WorkerRequest {
                key, reference: reference.clone(), index: key / 2, port,
                plan: serde_json::json!({"root": {"ref": reference}}),
            };
            let line = encode_worker(&request);
            prop_assert!(!line.contains('\n') && !line.contains('\r'));
            prop_assert_eq!(decode(&line), Ok(Some(PodLine::Worker(request))));
            prop_assert_eq!(decode(&encode_worker_done(key)), Ok(Some(PodLine::WorkerDone(key))));
        }

        #[test]
        fn lines_without_a_prefix_are_not_the_protocols(line in text()) {
            prop_assume!(!line.starts_with(EVENT_PREFIX) && !line.starts_with(CHUNK_PREFIX)
                && !line.starts_with(SERVICE_DONE_PREFIX) && !line.starts_with(WORKER_PREFIX)
                && !line.starts_with(SERVICE_PREFIX)
                && !line.starts_with(WORKER_DONE_PREFIX));
            prop_assert_eq!(decode(&line), Ok(None));
        }
    }

    #[test]
    fn a_broken_line_with_a_prefix_is_an_error_not_a_panic() {
        assert!(decode(&format!("{EVENT_PREFIX}{{")).is_err());
        assert!(decode(&format!("{EVENT_PREFIX}{{\"type\":\"nope\"}}")).is_err());
        assert!(decode(&format!("{CHUNK_PREFIX}[]")).is_err());
        let bad = ArtifactChunk {
            data: "!!".into(),
            ..ArtifactChunk::new("s", "p", 0, b"", true)
        };
        assert!(bad.bytes().is_err());
        // A CRLF from a log pipeline is tolerated.
        let line = encode_event(&AgentEvent::Warning {
            reference: "r".into(),
            message: "m".into(),
        });
        assert!(matches!(decode(&format!("{line}\r\n")), Ok(Some(_))));
    }
}
