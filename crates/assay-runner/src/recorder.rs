//! Persisting the engine's events into the store, in order, before the caller sees them: step
//! results, logs (buffered per step and flushed for followers), outputs, artifacts and the
//! JUnit cases of a step's reports.

use std::collections::HashMap;
use std::time::SystemTime;

use assay_engine::Event;
use assay_spec::status::StepStatus;
use assay_store::{LogWriter, Output, StepResult, Store, StoreError};
use serde_json::Value;

use crate::{StepNames, junit, ms};

/// Why one event was not recorded: `what` names it (`the logs of step `x``, ...). The run
/// goes on; its text becomes one problem of the run's list.
#[derive(Debug, thiserror::Error)]
#[error("failed to record {what}: {source}")]
pub(crate) struct RecordError {
    what: String,
    source: StoreError,
}

/// Persists engine events into the store.
pub(crate) struct Recorder {
    pub(crate) store: Store,
    pub(crate) id: String,
    pub(crate) names: StepNames,
    pub(crate) writers: HashMap<String, LogWriter>,
    pub(crate) started: HashMap<String, i64>,
    pub(crate) position: i64,
    pub(crate) workflow: String,
    /// The engine's masker: JUnit cases come from files the steps wrote.
    pub(crate) masker: assay_engine::Masker,
    /// The commit flaky detection groups by: the `commit` tag, else the CI commit.
    pub(crate) commit: Option<String>,
    /// The quarantines in force for the run: failed cases they cover are recorded so.
    pub(crate) quarantines: Vec<assay_store::Quarantine>,
    /// The workflow asks for automatic quarantine ([`assay_store::AUTO_QUARANTINE_LABEL`]).
    pub(crate) auto_quarantine: bool,
    /// The results of the steps that ended, as recorded (for the caller's metrics).
    pub(crate) finished: Vec<StepResult>,
}

impl Recorder {
    /// At the end of a run of a workflow that asks for it: quarantine the tests the flaky rule
    /// marks now. A failure is a recording problem, never the run's.
    pub(crate) async fn auto_quarantine(
        &self,
        errors: &mut crate::RecordErrors,
    ) -> Vec<assay_store::Quarantine> {
        if !self.auto_quarantine {
            return Vec::new();
        }
        match self.store.auto_quarantine(&self.workflow).await {
            Ok(added) => added,
            Err(e) => {
                errors.note(format!("failed to quarantine flaky tests: {e}"));
                Vec::new()
            }
        }
    }

    /// Write out every step's pending log lines.
    pub(crate) async fn flush(&mut self) -> Result<(), StoreError> {
        for w in self.writers.values_mut() {
            w.flush().await?;
        }
        Ok(())
    }

    /// Persist one event. The error says what could not be recorded.
    pub(crate) async fn record(&mut self, event: &Event) -> Result<(), RecordError> {
        self.names.learn(event);
        self.persist(event).await.map_err(|source| RecordError {
            what: what(event),
            source,
        })
    }

    /// Persist several step events (starts and ends, as the engine sent them) with one write:
    /// when one step is given twice, its last state is the one stored. The error says which
    /// results could not be recorded.
    pub(crate) async fn record_steps(&mut self, events: &[Event]) -> Vec<RecordError> {
        let mut errors = Vec::new();
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            self.names.learn(event);
            match self.step_record(event).await {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(source) => errors.push(RecordError {
                    what: what(event),
                    source,
                }),
            }
        }
        if let Err(source) = self.store.record_steps(&self.id, &records).await {
            let refs: Vec<String> = records
                .iter()
                .map(|r| format!("`{}`", r.step_ref))
                .collect();
            errors.push(RecordError {
                what: format!("the results of steps {}", refs.join(", ")),
                source,
            });
        }
        errors
    }

    /// The result to store for a step's start or end (`None` for other events); a step's end
    /// first writes out its log.
    async fn step_record(&mut self, event: &Event) -> Result<Option<StepResult>, StoreError> {
        Ok(Some(match event {
            Event::StepStarted { reference, at, .. } => {
                // Recorded as running at once, so readers see the step and a run that dies now
                // leaves it to be marked aborted.
                self.position += 1;
                self.started.insert(reference.clone(), self.position);
                let mut record =
                    StepResult::new(reference.clone(), self.position, StepStatus::Running);
                record.name = self.names.get(reference).cloned();
                record.started_at = Some(ms(*at));
                record
            }
            Event::StepFinished { reference, result } => {
                if let Some(w) = self.writers.remove(reference) {
                    w.finish().await?;
                }
                let position = match self.started.get(reference) {
                    Some(p) => *p,
                    None => {
                        self.position += 1;
                        self.position
                    }
                };
                let record = StepResult {
                    step_ref: reference.clone(),
                    name: self.names.get(reference).cloned(),
                    position,
                    status: result.status,
                    exit_code: result.exit_code.map(i64::from),
                    started_at: result.started_at.map(ms),
                    finished_at: Some(ms(result.finished_at)),
                    error_message: result.error.clone(),
                    peak_memory_bytes: result.peak_rss_bytes.map(|b| b as i64),
                    cpu_time_ms: result.cpu_time.map(|d| d.as_millis() as i64),
                    quarantined_failures: result.quarantined_failures.clone(),
                };
                self.finished.push(record.clone());
                record
            }
            _ => return Ok(None),
        }))
    }

    async fn persist(&mut self, event: &Event) -> Result<(), StoreError> {
        match event {
            Event::StepStarted { .. } | Event::StepFinished { .. } => {
                if let Some(record) = self.step_record(event).await? {
                    self.store.record_step(&self.id, &record).await?;
                }
            }
            Event::Log(chunk) => {
                if !self.writers.contains_key(&chunk.reference) {
                    let w = self.store.log_writer(&self.id, &chunk.reference).await?;
                    self.writers.insert(chunk.reference.clone(), w);
                }
                let w = self
                    .writers
                    .get_mut(&chunk.reference)
                    .expect("inserted above");
                let at = ms(chunk.at);
                for line in chunk.text.split_inclusive('\n') {
                    w.append(at, line).await?;
                }
                // The observer may show these lines at once (`assay run` prints them): they
                // must be in the store first, or a `kill -9` right after loses what was shown.
                w.flush().await?;
            }
            Event::Output {
                reference,
                key,
                value,
            } => {
                self.store
                    .add_output(
                        &self.id,
                        &Output {
                            step_ref: Some(reference.clone()),
                            name: key.clone(),
                            value: Value::String(value.clone()),
                        },
                    )
                    .await?;
            }
            Event::Artifact {
                reference,
                path,
                source,
                ..
            } => {
                self.store
                    .put_artifact_file(&self.id, Some(reference), path, None, source)
                    .await?;
                let cases = assay_store::CaseSource {
                    step_ref: Some(reference.clone()),
                    report_file: Some(path.clone()),
                    commit: self.commit.clone(),
                    quarantines: self.quarantines.clone(),
                };
                junit::ingest(
                    &self.store,
                    &self.id,
                    &self.workflow,
                    cases,
                    source,
                    &self.masker,
                )
                .await?;
            }
            Event::Warning { reference, message } => {
                // Kept in the step's log, where every view of the execution shows it.
                if !self.writers.contains_key(reference) {
                    let w = self.store.log_writer(&self.id, reference).await?;
                    self.writers.insert(reference.clone(), w);
                }
                let w = self.writers.get_mut(reference).expect("inserted above");
                w.append(ms(SystemTime::now()), &format!("warning: {message}\n"))
                    .await?;
            }
            Event::Service { .. } | Event::Worker { .. } | Event::ExecutionFinished { .. } => {}
        }
        Ok(())
    }
}

/// What an event records, for an error message.
fn what(event: &Event) -> String {
    match event {
        Event::StepStarted { reference, .. } | Event::StepFinished { reference, .. } => {
            format!("the result of step `{reference}`")
        }
        Event::Log(chunk) => format!("the logs of step `{}`", chunk.reference),
        Event::Output { reference, key, .. } => {
            format!("output `{key}` of step `{reference}`")
        }
        Event::Artifact {
            reference, path, ..
        } => format!("artifact `{path}` of step `{reference}`"),
        _ => "an event".to_string(),
    }
}
