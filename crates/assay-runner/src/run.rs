//! Running a [`Prepared`] execution: the engine's events are recorded as they come, then the
//! end of the execution.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use assay_engine::Event;
use assay_spec::plan::Plan;
use assay_spec::status::ExecutionStatus;
use assay_store::{ExecutionRef, ExecutionSummary, Finish, Quarantine, StepResult};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::recorder::Recorder;
use crate::{Finished, Prepared, RecordErrors, RunError, StepNames, ms};

impl Prepared {
    pub fn execution(&self) -> &ExecutionSummary {
        &self.execution
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The labels of every step by ref (see [`StepNames`]); a run's observer calls
    /// [`StepNames::learn`] on its events to name workers made at run time.
    pub fn step_names(&self) -> &StepNames {
        &self.names
    }

    /// Cancelling this token aborts the run (Ctrl-C, an API call).
    pub fn cancel_token(&self) -> CancellationToken {
        self.opts.cancel.clone()
    }

    /// Run the plan to its end. Each event is persisted, then passed to `observe`.
    /// `assay abort` from another process (a request recorded in the store) cancels the run.
    pub async fn run(self, observe: impl FnMut(&Event)) -> Result<Finished, RunError> {
        let store = self.store.clone();
        let ended = self.record(observe).await?;
        let execution = store.get_execution(&ExecutionRef::Id(ended.id)).await?;
        Ok(Finished {
            execution,
            record_errors: ended.record_errors,
            auto_quarantined: ended.auto_quarantined,
        })
    }

    /// [`Prepared::run`] for a caller that needs only the final status (the server's queue,
    /// MCP): the execution is not read back from the store at the end, which took seven
    /// queries per execution.
    pub async fn run_to_status(
        self,
        observe: impl FnMut(&Event),
    ) -> Result<ExecutionStatus, RunError> {
        Ok(self.run_to_end(observe).await?.status)
    }

    /// [`Prepared::run_to_status`] with the results of the steps that ended, as recorded (the
    /// server's metrics take them from here instead of reading them back).
    pub async fn run_to_end(self, observe: impl FnMut(&Event)) -> Result<RunEnd, RunError> {
        let ended = self.record(observe).await?;
        Ok(RunEnd {
            status: ended.status,
            steps: ended.steps,
        })
    }

    /// Runs the plan and records every event, then the end of the execution.
    async fn record(self, mut observe: impl FnMut(&Event)) -> Result<Ended, RunError> {
        let Prepared {
            store,
            execution: exec,
            plan,
            opts,
            names,
            secret_env: _,
            quarantines,
            auto_quarantine,
        } = self;
        let cancel = opts.cancel.clone();
        // Removed however the run ends, an error included (a full disk failed the last writes
        // and left the folder, with whatever filled the disk, behind).
        let work_dir = WorkDir::new(opts.work_dir.clone());
        let heartbeat = store.spawn_heartbeat(&exec.id);
        let masker = assay_engine::masker(&plan, &opts);
        let (tx, mut rx) = mpsc::channel::<Event>(1024);
        let engine = tokio::spawn(assay_engine::run(plan, opts, tx));

        let poll_store = store.clone();
        let poll_id = exec.id.clone();
        let poll_cancel = cancel.clone();
        let abort_poll = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(Some(_)) = poll_store.abort_requested(&poll_id).await {
                    poll_cancel.cancel();
                    return;
                }
            }
        });

        let mut recorder = Recorder {
            store: store.clone(),
            id: exec.id.clone(),
            names,
            writers: HashMap::new(),
            started: HashMap::new(),
            position: 0,
            workflow: exec.workflow.clone(),
            masker,
            quarantines,
            auto_quarantine,
            finished: Vec::new(),
            commit: exec.tags.get("commit").cloned().or_else(|| {
                exec.running_context
                    .ci
                    .as_ref()
                    .and_then(|ci| ci.commit.clone())
            }),
        };
        let mut finished: Option<(ExecutionStatus, Option<String>, SystemTime)> = None;
        // A failure to record one event (an artifact the store refuses, a report that cannot
        // be read) must not discard what the run did: it is listed, and the run goes on.
        let mut record_errors = RecordErrors::default();
        // Log writers batch their writes; a step that goes quiet must not keep its last lines
        // from followers, so pending lines are written out at least this often.
        let mut flush = tokio::time::interval(LOG_FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Step starts and ends that are already waiting when one arrives are recorded with it
        // in one write (a short step's end often is): what each write says is final.
        let mut batch: Vec<Event> = Vec::new();
        loop {
            let event = tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = flush.tick() => {
                    if let Err(e) = recorder.flush().await {
                        record_errors.note(format!("failed to write logs: {e}"));
                    }
                    continue;
                }
            };
            batch.push(event);
            while batch.last().is_some_and(is_step_event) {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            // Steps' starts and ends, then at most one other event.
            let other = batch.pop_if(|e| !is_step_event(e));
            if !batch.is_empty() {
                for e in recorder.record_steps(&batch).await {
                    record_errors.note(e.to_string());
                }
            }
            if let Some(other) = &other
                && let Err(e) = recorder.record(other).await
            {
                record_errors.note(e.to_string());
            }
            batch.extend(other);
            for event in batch.drain(..) {
                if let Event::ExecutionFinished { status, error, at } = &event {
                    finished = Some((*status, error.clone(), *at));
                }
                observe(&event);
            }
        }
        let outcome = engine
            .await
            .map_err(|e| RunError::Internal(format!("the engine task failed: {e}")))?;
        abort_poll.abort();
        for (reference, w) in recorder.writers.drain() {
            if let Err(e) = w.finish().await {
                record_errors.note(format!(
                    "failed to write the logs of step `{reference}`: {e}"
                ));
            }
        }
        let (status, error, at) =
            finished.unwrap_or((outcome.status, outcome.error.clone(), outcome.finished_at));
        let auto_quarantined = recorder.auto_quarantine(&mut record_errors).await;
        let record_errors = record_errors.into_vec();
        if !record_errors.is_empty() {
            store.set_record_errors(&exec.id, &record_errors).await?;
        }
        store
            .finish_execution(
                &exec.id,
                Finish {
                    status,
                    error_message: error,
                    at: ms(at),
                },
            )
            .await?;
        drop(heartbeat);
        work_dir.remove().await;
        Ok(Ended {
            id: exec.id,
            status,
            record_errors,
            auto_quarantined,
            steps: recorder.finished,
        })
    }
}

/// What [`Prepared::record`] leaves: the execution's final status as recorded.
struct Ended {
    id: String,
    status: ExecutionStatus,
    record_errors: Vec<String>,
    auto_quarantined: Vec<Quarantine>,
    steps: Vec<StepResult>,
}

/// How a run ended ([`Prepared::run_to_end`]).
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// The execution's final status, as recorded.
    pub status: ExecutionStatus,
    /// The results of the steps that ended, in the order they ended, as recorded.
    pub steps: Vec<StepResult>,
}

/// A step's start or end: recorded together with those waiting behind it.
fn is_step_event(event: &Event) -> bool {
    matches!(
        event,
        Event::StepStarted { .. } | Event::StepFinished { .. }
    )
}

/// An execution's work folder: removed by [`WorkDir::remove`], or when dropped on a way out
/// that did not get there.
struct WorkDir(Option<PathBuf>);

impl WorkDir {
    fn new(path: PathBuf) -> Self {
        WorkDir(Some(path))
    }

    /// Removes the folder on the blocking pool and waits for it: unlinking blocks in the
    /// kernel (on a file system mounted with `discard`, each freed block waits for the
    /// device), and on the runtime's own threads it stalled every other execution.
    async fn remove(mut self) {
        if let Some(path) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path)).await;
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// How often pending log lines are written out for followers.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(250);
