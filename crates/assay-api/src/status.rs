//! Execution and step statuses, with Testkube's names.

use serde::{Deserialize, Serialize};

/// Status of a whole execution (Testkube's `TestWorkflowStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Paused,
    Passed,
    Failed,
    Aborted,
    Canceled,
}

/// Status of one step (Testkube's `TestWorkflowStepStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Queued,
    Running,
    Paused,
    Passed,
    Failed,
    Timeout,
    Skipped,
    Aborted,
    Canceled,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::Paused,
        Self::Passed,
        Self::Failed,
        Self::Aborted,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
            Self::Canceled => "canceled",
        }
    }

    /// Whether the execution has finished.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Passed | Self::Failed | Self::Aborted | Self::Canceled
        )
    }
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Skipped => "skipped",
            Self::Aborted => "aborted",
            Self::Canceled => "canceled",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running | Self::Paused)
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ExecutionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status `{s}`; expected one of: queued, running, paused, passed, failed, aborted, canceled"
                )
            })
    }
}
