//! Prometheus metrics, rendered on the server's own `GET /metrics`. The recorder belongs to the
//! server (not installed globally), so several servers in one process keep separate figures.

use std::sync::Arc;
use std::time::Duration;

use assay_store::ExecutionStatus;
use metrics::{Key, Label, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
}

static META: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            recorder: Arc::new(PrometheusBuilder::new().build_recorder()),
        }
    }

    fn key(name: &'static str, labels: Vec<Label>) -> Key {
        Key::from_parts(name, labels)
    }

    /// An execution was queued.
    pub fn queued(&self, workflow: &str) {
        self.recorder
            .register_counter(
                &Self::key(
                    "assay_executions_queued_total",
                    vec![Label::new("workflow", workflow.to_string())],
                ),
                &META,
            )
            .increment(1);
    }

    /// An execution ended with `status`, after `took` when it ran.
    pub fn finished(&self, workflow: &str, status: ExecutionStatus, took: Option<Duration>) {
        self.recorder
            .register_counter(
                &Self::key(
                    "assay_executions_total",
                    vec![
                        Label::new("workflow", workflow.to_string()),
                        Label::new("status", status.as_str()),
                    ],
                ),
                &META,
            )
            .increment(1);
        if let Some(took) = took {
            self.recorder
                .register_histogram(
                    &Self::key(
                        "assay_execution_duration_seconds",
                        vec![Label::new("workflow", workflow.to_string())],
                    ),
                    &META,
                )
                .record(took.as_secs_f64());
        }
    }

    /// The steps of an ended execution: how long each ran, by workflow, step and status
    /// (`assay_step_duration_seconds`). Steps are named by their name, else their ref; steps
    /// that never ran (skipped before starting) are not counted.
    pub fn steps_finished(&self, workflow: &str, steps: &[assay_store::StepResult]) {
        for step in steps {
            let (Some(start), Some(end)) = (step.started_at, step.finished_at) else {
                continue;
            };
            let name = step.name.clone().unwrap_or_else(|| step.step_ref.clone());
            self.recorder
                .register_histogram(
                    &Self::key(
                        "assay_step_duration_seconds",
                        vec![
                            Label::new("workflow", workflow.to_string()),
                            Label::new("step", name),
                            Label::new("status", step.status.as_str()),
                        ],
                    ),
                    &META,
                )
                .record((end - start).max(0) as f64 / 1000.0);
        }
    }

    /// A schedule of `workflow` reached a tick: `outcome` is `fired` (this server queued the
    /// run), `claimed_elsewhere` (another server did) or `failed` (the run could not be queued).
    pub fn schedule_tick(&self, workflow: &str, outcome: &'static str) {
        self.recorder
            .register_counter(
                &Self::key(
                    "assay_schedule_ticks_total",
                    vec![
                        Label::new("workflow", workflow.to_string()),
                        Label::new("outcome", outcome),
                    ],
                ),
                &META,
            )
            .increment(1);
    }

    /// An outbound webhook delivery ended: `delivered`, `failed` (every attempt failed, or the
    /// receiver refused it) or `error` (its templates or secrets could not be resolved).
    pub fn webhook_delivery(&self, result: &'static str) {
        self.recorder
            .register_counter(
                &Self::key(
                    "assay_webhook_deliveries_total",
                    vec![Label::new("result", result)],
                ),
                &META,
            )
            .increment(1);
    }

    /// An unverified delivery to hook `hook` was refused (429) by the per-hook limit.
    pub fn hook_delivery_limited(&self, hook: &str) {
        self.recorder
            .register_counter(
                &Self::key(
                    "assay_hook_deliveries_limited_total",
                    vec![Label::new("hook", hook.to_string())],
                ),
                &META,
            )
            .increment(1);
    }

    /// The text exposition, with the queue's gauges as they are now.
    pub fn render(&self, queue_depth: i64, running: i64) -> String {
        self.recorder
            .register_gauge(&Self::key("assay_queue_depth", Vec::new()), &META)
            .set(queue_depth as f64);
        self.recorder
            .register_gauge(&Self::key("assay_executions_running", Vec::new()), &META)
            .set(running as f64);
        self.recorder.handle().render()
    }
}
