//! Runs handed to an agent (`assay agent`): the server prepares the execution as for its own
//! runner ([`crate::prepare_claimed`]: abort check, `running`, compile with the execution's
//! identity, plan stored), then [`Prepared::into_remote`] splits it into what the agent needs
//! ([`AgentWork`]: the plan, the sensitive values, the context) and a [`RemoteRun`] that
//! records the events the agent sends back with the same recorder the local runner uses — so
//! an execution run by an agent is stored exactly like one run here.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assay_api::agents::{AgentEvent, AgentWork};
use assay_engine::{Event, LogChunk, StepResult, WorkerState};
use assay_spec::status::ExecutionStatus;
use assay_store::{ExecutionSummary, Finish, Store};

use crate::recorder::Recorder;
use crate::{Prepared, RecordErrors, RunError};

/// The recording side of a run an agent performs.
pub struct RemoteRun {
    recorder: Recorder,
    record_errors: RecordErrors,
    execution: ExecutionSummary,
    finished: bool,
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

impl Prepared {
    /// Hand this prepared run to an agent: what it runs, and the recorder of what it sends.
    pub fn into_remote(self) -> Result<(AgentWork, RemoteRun), RunError> {
        let Prepared {
            store,
            execution,
            plan,
            opts,
            names,
            secret_env,
            quarantines,
            auto_quarantine,
        } = self;
        let masker = assay_engine::masker(&plan, &opts);
        let work = AgentWork {
            id: execution.id.clone(),
            name: execution.name.clone(),
            workflow: execution.workflow.clone(),
            number: execution.number,
            plan: serde_json::to_value(&plan).map_err(|e| RunError::Internal(e.to_string()))?,
            secrets: opts.secrets.clone(),
            masked: opts.masked.clone(),
            named_secrets: opts.named_secrets.clone(),
            env: secret_env,
            context: opts.context.clone(),
            quarantined: opts.quarantined.iter().cloned().collect(),
        };
        let recorder = Recorder {
            store: store.clone(),
            id: execution.id.clone(),
            names,
            writers: HashMap::new(),
            started: HashMap::new(),
            position: 0,
            workflow: execution.workflow.clone(),
            masker,
            quarantines,
            auto_quarantine,
            finished: Vec::new(),
            commit: execution.tags.get("commit").cloned().or_else(|| {
                execution
                    .running_context
                    .ci
                    .as_ref()
                    .and_then(|ci| ci.commit.clone())
            }),
        };
        Ok((
            work,
            RemoteRun {
                recorder,
                record_errors: RecordErrors::default(),
                execution,
                finished: false,
            },
        ))
    }
}

impl RemoteRun {
    pub fn execution(&self) -> &ExecutionSummary {
        &self.execution
    }

    /// Whether the last event (`executionFinished`) was recorded.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Record a batch of events in order; log lines are written out for followers at the end of
    /// the batch. Returns the recording problems of this batch (kept with the execution too).
    /// The execution's end is recorded with its `executionFinished` event.
    pub async fn record(&mut self, events: Vec<AgentEvent>) -> Result<Vec<String>, RunError> {
        let mut problems = Vec::new();
        let mut end = None;
        for event in events {
            if self.finished {
                break;
            }
            let event = from_wire(event);
            if let Event::ExecutionFinished { status, error, at } = &event {
                end = Some((*status, error.clone(), *at));
            }
            if let Err(e) = self.recorder.record(&event).await {
                let e = e.to_string();
                self.record_errors.note(e.clone());
                problems.push(e);
            }
            if end.is_some() {
                break;
            }
        }
        if let Err(e) = self.recorder.flush().await {
            let e = format!("failed to write logs: {e}");
            self.record_errors.note(e.clone());
            problems.push(e);
        }
        if let Some((status, error, at)) = end {
            self.finish(status, error, at).await?;
        }
        Ok(problems)
    }

    /// Record an artifact the agent uploaded into `source` (a file of this machine): stored,
    /// and its JUnit cases read, as the local runner does with a step's files.
    pub async fn artifact(
        &mut self,
        reference: &str,
        path: &str,
        source: &Path,
    ) -> Result<Vec<String>, RunError> {
        let size = std::fs::metadata(source).map(|m| m.len()).unwrap_or(0);
        let event = Event::Artifact {
            reference: reference.to_string(),
            path: path.to_string(),
            size,
            source: source.to_path_buf(),
        };
        Ok(match self.recorder.record(&event).await {
            Ok(()) => Vec::new(),
            Err(e) => {
                let e = e.to_string();
                self.record_errors.note(e.clone());
                vec![e]
            }
        })
    }

    async fn finish(
        &mut self,
        status: ExecutionStatus,
        error: Option<String>,
        at: SystemTime,
    ) -> Result<(), RunError> {
        self.finished = true;
        for (reference, w) in self.recorder.writers.drain() {
            if let Err(e) = w.finish().await {
                self.record_errors.note(format!(
                    "failed to write the logs of step `{reference}`: {e}"
                ));
            }
        }
        let mut errors = std::mem::take(&mut self.record_errors);
        self.recorder.auto_quarantine(&mut errors).await;
        let errors = errors.into_vec();
        let store: &Store = &self.recorder.store;
        if !errors.is_empty() {
            store.set_record_errors(&self.execution.id, &errors).await?;
        }
        store
            .finish_execution(
                &self.execution.id,
                Finish {
                    status,
                    error_message: error,
                    at: crate::ms(at),
                },
            )
            .await?;
        Ok(())
    }
}

/// An engine event as it crossed the wire.
fn from_wire(event: AgentEvent) -> Event {
    match event {
        AgentEvent::StepStarted {
            reference,
            name,
            at,
        } => Event::StepStarted {
            reference,
            name,
            at: time(at),
        },
        AgentEvent::StepFinished {
            reference,
            status,
            exit_code,
            started_at,
            finished_at,
            error,
            peak_rss_bytes,
            cpu_time_ms,
            attempts,
            quarantined_failures,
        } => Event::StepFinished {
            reference,
            result: StepResult {
                status,
                exit_code,
                started_at: started_at.map(time),
                finished_at: time(finished_at),
                error,
                peak_rss_bytes,
                cpu_time: cpu_time_ms.map(Duration::from_millis),
                attempts,
                quarantined_failures,
            },
        },
        AgentEvent::Log {
            reference,
            at,
            text,
        } => Event::Log(LogChunk {
            reference,
            at: time(at),
            text,
        }),
        AgentEvent::Output {
            reference,
            key,
            value,
        } => Event::Output {
            reference,
            key,
            value,
        },
        AgentEvent::Warning { reference, message } => Event::Warning { reference, message },
        AgentEvent::Worker {
            reference,
            index,
            count,
        } => Event::Worker {
            reference,
            index,
            count,
            state: WorkerState::Queued,
        },
        AgentEvent::ExecutionFinished { status, error, at } => Event::ExecutionFinished {
            status,
            error,
            at: time(at),
        },
    }
}
