//! Prometheus metrics, rendered on the server's own `GET /metrics`. The recorder belongs to the
//! server (not installed globally), so several servers in one process keep separate figures.
//!
//! Durations are Prometheus histograms (cumulative buckets), not summaries: a summary's quantiles
//! cover a sliding window and fell to 0 once a server had been idle for a minute, while buckets
//! keep every observation, aggregate across servers and let PromQL pick the quantile and window.

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

/// Upper bounds (seconds) of the duration histograms' buckets: from a quick step to an hour-long run.
const BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    3600.0,
];

/// The exporter's rolling window (it only matters to summaries, which we no longer render).
const WINDOW: Duration = Duration::from_secs(60);

impl Metrics {
    pub fn new() -> Self {
        Self::with_window(WINDOW)
    }

    fn with_window(window: Duration) -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .and_then(|b| b.set_bucket_duration(window))
            .expect("the buckets are not empty and the window is not zero");
        Metrics {
            recorder: Arc::new(builder.build_recorder()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle server still reports what it observed: the window is made tiny here instead of
    /// waiting a minute, and the durations must still be there after it has passed.
    #[test]
    fn durations_survive_an_idle_window() {
        let metrics = Metrics::with_window(Duration::from_millis(1));
        metrics.finished(
            "w",
            ExecutionStatus::Passed,
            Some(Duration::from_millis(300)),
        );
        let first = metrics.render(0, 0);
        // Well past the window; nothing below depends on how long this actually took.
        std::thread::sleep(Duration::from_millis(20));
        let idle = metrics.render(0, 0);
        for text in [&first, &idle] {
            assert!(
                text.contains(
                    "assay_execution_duration_seconds_bucket{workflow=\"w\",le=\"0.5\"} 1"
                ),
                "{text}"
            );
            assert!(
                text.contains(
                    "assay_execution_duration_seconds_bucket{workflow=\"w\",le=\"0.25\"} 0"
                ),
                "{text}"
            );
            assert!(
                text.contains("assay_execution_duration_seconds_count{workflow=\"w\"} 1"),
                "{text}"
            );
            assert!(!text.contains("quantile="), "{text}");
        }
    }
}
