//! Testkube's execution JSON shape (`TestWorkflowExecution`), for `-o json|yaml` and the API.
//! Field names follow Testkube's OpenAPI model; times are RFC 3339 in UTC with milliseconds,
//! durations are Go duration strings plus `…Ms` integers, as Testkube sends them.

use crate::model::*;
use crate::{ExecutionStatus, StepStatus};

pub use assay_api::execution::{
    TestWorkflowExecution, TestWorkflowResult, TestWorkflowSignature, TestWorkflowStepResult,
    WorkflowRef,
};

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-23T10:41:02.123Z`.
pub fn rfc3339(ms: UnixMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Go's `time.Duration.String()` at millisecond precision: `0s`, `850ms`, `1.5s`, `2m3.004s`,
/// `1h0m0s`.
pub fn go_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms / 1000) % 60;
    let frac = ms % 1000;
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

fn step_view(step: &StepResult) -> TestWorkflowStepResult {
    TestWorkflowStepResult {
        status: step.status,
        exit_code: step.exit_code,
        started_at: step.started_at.map(rfc3339),
        finished_at: step.finished_at.map(rfc3339),
        error_message: step.error_message.clone(),
        peak_memory_bytes: step.peak_memory_bytes,
        cpu_time_ms: step.cpu_time_ms,
        quarantined_failures: step.quarantined_failures.clone(),
    }
}

fn result_view(s: &ExecutionSummary, steps: &[StepResult]) -> TestWorkflowResult {
    let end = s.finished_at.unwrap_or_else(|| {
        if s.status.is_terminal() {
            s.status_at
        } else {
            now_ms()
        }
    });
    let duration_ms = s.started_at.map(|st| end - st).unwrap_or(0).max(0);
    let total_ms = (end - s.scheduled_at).max(0);
    let initialization = s.error_message.as_ref().map(|msg| TestWorkflowStepResult {
        status: match s.status {
            ExecutionStatus::Aborted => StepStatus::Aborted,
            ExecutionStatus::Canceled => StepStatus::Canceled,
            _ => StepStatus::Failed,
        },
        exit_code: None,
        started_at: None,
        finished_at: s.finished_at.map(rfc3339),
        error_message: Some(msg.clone()),
        peak_memory_bytes: None,
        cpu_time_ms: None,
        quarantined_failures: Vec::new(),
    });
    let predicted_status = if s.status.is_terminal() {
        s.status
    } else if steps
        .iter()
        .any(|st| matches!(st.status, StepStatus::Failed | StepStatus::Timeout))
    {
        ExecutionStatus::Failed
    } else {
        ExecutionStatus::Passed
    };
    TestWorkflowResult {
        status: s.status,
        predicted_status,
        queued_at: rfc3339(s.scheduled_at),
        started_at: s.started_at.map(rfc3339),
        finished_at: s.finished_at.map(rfc3339),
        duration: s.started_at.map(|_| go_duration(duration_ms)),
        total_duration: Some(go_duration(total_ms)),
        duration_ms,
        paused_ms: 0,
        total_duration_ms: total_ms,
        initialization,
        steps: steps
            .iter()
            .map(|st| (st.step_ref.clone(), step_view(st)))
            .collect(),
        quarantined_failures: steps
            .iter()
            .flat_map(|st| st.quarantined_failures.iter().cloned())
            .collect(),
    }
}

impl From<&ExecutionSummary> for TestWorkflowExecution {
    fn from(s: &ExecutionSummary) -> Self {
        TestWorkflowExecution {
            id: s.id.clone(),
            name: s.name.clone(),
            number: s.number,
            workflow: WorkflowRef {
                name: s.workflow.clone(),
            },
            scheduled_at: rfc3339(s.scheduled_at),
            started_at: s.started_at.map(rfc3339),
            status_at: rfc3339(s.status_at),
            result: result_view(s, &[]),
            tags: s.tags.clone(),
            config_params: s.config.clone(),
            running_context: s.running_context.clone(),
            signature: Vec::new(),
            reports: Vec::new(),
            output: Vec::new(),
            artifacts: Vec::new(),
            record_errors: s.record_errors.clone(),
            failed_step: None,
            test_workflow_execution_name: s.parent.as_ref().map(|p| p.name.clone()),
            parent: s.parent.clone(),
            children: Vec::new(),
        }
    }
}

impl From<&Execution> for TestWorkflowExecution {
    fn from(e: &Execution) -> Self {
        let mut view = TestWorkflowExecution::from(&e.summary);
        view.result = result_view(&e.summary, &e.steps);
        let mut ordered: Vec<&StepResult> = e.steps.iter().collect();
        ordered.sort_by_key(|st| st.position);
        view.signature = ordered
            .into_iter()
            .map(|st| TestWorkflowSignature {
                step_ref: st.step_ref.clone(),
                name: st.name.clone(),
            })
            .collect();
        view.reports = e.reports.clone();
        view.output = e.outputs.clone();
        view.artifacts = e.artifacts.clone();
        view.children = e.children.clone();
        if !matches!(e.summary.status, ExecutionStatus::Passed) {
            view.failed_step = crate::blame::failed_step(e).map(|s| s.step_ref.clone());
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(850), "850ms");
        assert_eq!(go_duration(1500), "1.5s");
        assert_eq!(go_duration(123_004), "2m3.004s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
    }

    #[test]
    fn times_are_utc_millis() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
