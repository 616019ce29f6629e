//! What the engine tells its caller while it runs: one closed enum.
//!
//! Events leave the engine through a bounded channel, so a slow consumer (the store persisting
//! them) slows the run down instead of letting memory grow. Log text and error messages are
//! masked before an event is built: nothing secret ever crosses this boundary.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use assay_spec::status::{ExecutionStatus, StepStatus};

/// One thing that happened during an execution.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A step began (its condition held). Skipped steps only get [`Event::StepFinished`].
    StepStarted {
        reference: String,
        /// Display name, resolved.
        name: String,
        at: SystemTime,
    },
    /// A step reached a final status.
    StepFinished {
        reference: String,
        result: StepResult,
    },
    /// Output of a step's processes (stdout and stderr share one pipe, in order).
    Log(LogChunk),
    /// `step.<id>.outputs.<key>` was set (from `/testkube/outputs/<key>`).
    Output {
        reference: String,
        key: String,
        value: String,
    },
    /// A file matched a step's `artifacts.paths`; the caller persists it from `source`.
    Artifact {
        reference: String,
        /// Path relative to the artifacts' working directory, `/`-separated.
        path: String,
        size: u64,
        /// Absolute path of the file on this machine, valid until the run's work directory is
        /// removed by the caller.
        source: PathBuf,
    },
    /// A service instance changed state.
    Service {
        /// Ref of the step whose group the service belongs to.
        reference: String,
        name: String,
        index: u64,
        state: ServiceState,
    },
    /// A parallel worker changed state (for progress bars).
    Worker {
        /// Ref of the parallel step.
        reference: String,
        index: u64,
        count: u64,
        state: WorkerState,
    },
    /// Something the user should know that does not fail the step (e.g. `shards` from a
    /// `glob()` that matched nothing). Masked.
    Warning {
        /// Ref of the step it is about.
        reference: String,
        message: String,
    },
    /// The execution ended. Always the last event.
    ExecutionFinished {
        status: ExecutionStatus,
        /// Why it failed or was aborted, when the reason is not a step's own failure.
        error: Option<String>,
        at: SystemTime,
    },
}

/// A piece of a step's output: one or more whole lines, each ending in `\n`, already masked.
///
/// Lines are bounded at [`crate::logs::MAX_LINE`] bytes: a longer line arrives split into
/// pieces, each ending in `\n`. Invalid UTF-8 is replaced (U+FFFD).
#[derive(Debug, Clone, PartialEq)]
pub struct LogChunk {
    /// Ref of the step (for a service: `<group ref>/service/<name>/<index>`).
    pub reference: String,
    /// When the engine read the chunk.
    pub at: SystemTime,
    pub text: String,
}

/// Final facts about one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    pub status: StepStatus,
    /// Exit code of the last process the step ran (128 + signal when it was killed).
    pub exit_code: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub finished_at: SystemTime,
    /// Masked.
    pub error: Option<String>,
    /// Peak resident memory of the step's process tree, sampled (see [`crate::process`]).
    pub peak_rss_bytes: Option<u64>,
    /// User + system CPU time of the step's processes and the children they waited for.
    pub cpu_time: Option<Duration>,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// The failed tests (keys) of the step's JUnit reports that were quarantined, when they
    /// were its only failures: the step then passed in spite of them.
    pub quarantined_failures: Vec<String>,
}

impl StepResult {
    pub(crate) fn skipped(error: Option<String>) -> Self {
        StepResult {
            status: StepStatus::Skipped,
            exit_code: None,
            started_at: None,
            finished_at: SystemTime::now(),
            error,
            peak_rss_bytes: None,
            cpu_time: None,
            attempts: 0,
            quarantined_failures: Vec::new(),
        }
    }
}

/// Lifecycle of a service instance.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceState {
    Starting,
    /// The readiness probe passed (or there is none).
    Ready {
        ip: String,
    },
    /// The process ended or never became ready; `reason` is masked.
    Failed {
        reason: String,
    },
    Stopped,
}

/// Lifecycle of a parallel worker.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerState {
    Queued,
    Running,
    Finished { status: ExecutionStatus },
}

/// The outcome of one execution, as returned by [`crate::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionOutcome {
    pub status: ExecutionStatus,
    pub error: Option<String>,
    /// Every step of the plan by ref, in plan order (workers' steps prefixed, see
    /// [`crate::parallel`]).
    pub steps: indexmap::IndexMap<String, StepResult>,
    /// `step.<id>.outputs.<key>` values, by step id then key.
    pub outputs: indexmap::IndexMap<String, indexmap::IndexMap<String, String>>,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
}
