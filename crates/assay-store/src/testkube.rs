//! Testkube's execution JSON shape (`TestWorkflowExecution`), for `-o json|yaml` and the API.
//! Field names follow Testkube's OpenAPI model; times are RFC 3339 in UTC with milliseconds,
//! durations are Go duration strings plus `…Ms` integers, as Testkube sends them.

use crate::error::{Result, StoreError};
use crate::model::*;
use crate::{ExecutionStatus, StepStatus, SummaryPage};

pub use assay_api::execution::{
    TestWorkflowExecution, TestWorkflowResult, TestWorkflowSignature, TestWorkflowStepResult,
    WorkflowRef,
};

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-23T10:41:02.123Z`.
pub fn rfc3339(ms: UnixMs) -> String {
    Time(ms).to_string()
}

/// A time written as [`rfc3339`] where it is displayed or serialized, without a `String`.
#[derive(Debug, Clone, Copy)]
pub struct Time(pub UnixMs);

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::{Datelike, Timelike};
        let t = chrono::DateTime::from_timestamp_millis(self.0).unwrap_or_default();
        let year = t.year();
        if !(0..=9999).contains(&year) {
            // chrono's own form for years of more or fewer than four digits.
            return f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        // `YYYY-MM-DDTHH:MM:SS.mmmZ` digit by digit: the list writes several per execution.
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        put(20, 3, t.timestamp_subsec_millis());
        f.write_str(std::str::from_utf8(&out).map_err(|_| std::fmt::Error)?)
    }
}

impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Go's `time.Duration.String()` at millisecond precision: `0s`, `850ms`, `1.5s`, `2m3.004s`,
/// `1h0m0s`.
pub fn go_duration(ms: i64) -> String {
    GoDuration(ms).to_string()
}

/// A duration written as [`go_duration`] where it is displayed or serialized.
#[derive(Debug, Clone, Copy)]
pub struct GoDuration(pub i64);

impl std::fmt::Display for GoDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.max(0);
        if ms == 0 {
            return f.write_str("0s");
        }
        if ms < 1000 {
            return write!(f, "{ms}ms");
        }
        let h = ms / 3_600_000;
        let m = (ms / 60_000) % 60;
        let s = (ms / 1000) % 60;
        if h > 0 {
            write!(f, "{h}h{m}m")?;
        } else if m > 0 {
            write!(f, "{m}m")?;
        }
        let (mut frac, mut width) = (ms % 1000, 3);
        if frac == 0 {
            return write!(f, "{s}s");
        }
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        write!(f, "{s}.{frac:0width$}s")
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
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

/// The run's duration (from its start) and total duration (from its scheduling) in ms at
/// `now`: an execution that has not ended is measured up to `now`.
fn durations(s: &ExecutionSummary, now: UnixMs) -> (i64, i64) {
    let end = s.finished_at.unwrap_or_else(|| {
        if s.status.is_terminal() {
            s.status_at
        } else {
            now
        }
    });
    let duration_ms = s.started_at.map(|st| end - st).unwrap_or(0).max(0);
    (duration_ms, (end - s.scheduled_at).max(0))
}

/// Testkube's `initialization` result: the execution-level error, if any.
fn initialization(s: &ExecutionSummary) -> Option<TestWorkflowStepResult> {
    s.error_message.as_ref().map(|msg| TestWorkflowStepResult {
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
    })
}

fn result_view(s: &ExecutionSummary, steps: &[StepResult], now: UnixMs) -> TestWorkflowResult {
    let (duration_ms, total_ms) = durations(s, now);
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
        initialization: initialization(s),
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

/// The `TestWorkflowExecution` of a summary (no steps) as of `now`, which is when executions
/// that have not ended are measured to.
pub fn summary_view(s: &ExecutionSummary, now: UnixMs) -> TestWorkflowExecution {
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
        result: result_view(s, &[], now),
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

impl From<&ExecutionSummary> for TestWorkflowExecution {
    fn from(s: &ExecutionSummary) -> Self {
        summary_view(s, now_ms())
    }
}

/// [`summary_view`] serialized from borrowed parts: the same JSON text (same names, order and
/// omitted fields), without building the `TestWorkflowExecution` and its strings first. The
/// REST list writes 50 to 1,000 of them per request. `summary_view` stays the definition; the
/// store's tests compare the two texts for every entry of listed pages on both databases.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEntry<'a> {
    id: &'a str,
    name: &'a str,
    number: i64,
    workflow: NameRef<'a>,
    scheduled_at: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Time>,
    status_at: Time,
    result: ListResult,
    #[serde(skip_serializing_if = "is_empty_map")]
    tags: &'a Tags,
    #[serde(skip_serializing_if = "is_empty_map")]
    config_params: &'a std::collections::BTreeMap<String, ConfigValue>,
    running_context: &'a RunningContext,
    #[serde(skip_serializing_if = "is_empty_slice")]
    record_errors: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    test_workflow_execution_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a ParentExecution>,
}

#[derive(serde::Serialize)]
struct NameRef<'a> {
    name: &'a str,
}

/// `TestWorkflowResult` of a list entry (see [`ListEntry`]).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListResult {
    status: ExecutionStatus,
    predicted_status: ExecutionStatus,
    queued_at: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<GoDuration>,
    total_duration: GoDuration,
    duration_ms: i64,
    paused_ms: i64,
    total_duration_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    initialization: Option<TestWorkflowStepResult>,
}

fn is_empty_map<K, V>(map: &&std::collections::BTreeMap<K, V>) -> bool {
    map.is_empty()
}

fn is_empty_slice<T>(items: &&[T]) -> bool {
    items.is_empty()
}

impl<'a> ListEntry<'a> {
    /// The entry of `s` as of `now` (see [`summary_view`]).
    pub fn new(s: &'a ExecutionSummary, now: UnixMs) -> ListEntry<'a> {
        let (duration_ms, total_ms) = durations(s, now);
        ListEntry {
            id: &s.id,
            name: &s.name,
            number: s.number,
            workflow: NameRef { name: &s.workflow },
            scheduled_at: Time(s.scheduled_at),
            started_at: s.started_at.map(Time),
            status_at: Time(s.status_at),
            result: ListResult {
                status: s.status,
                // A summary has no steps: one that has not ended is heading for `passed`.
                predicted_status: if s.status.is_terminal() {
                    s.status
                } else {
                    ExecutionStatus::Passed
                },
                queued_at: Time(s.scheduled_at),
                started_at: s.started_at.map(Time),
                finished_at: s.finished_at.map(Time),
                duration: s.started_at.map(|_| GoDuration(duration_ms)),
                total_duration: GoDuration(total_ms),
                duration_ms,
                paused_ms: 0,
                total_duration_ms: total_ms,
                initialization: initialization(s),
            },
            tags: &s.tags,
            config_params: &s.config,
            running_context: &s.running_context,
            record_errors: &s.record_errors,
            test_workflow_execution_name: s.parent.as_ref().map(|p| p.name.as_str()),
            parent: s.parent.as_ref(),
        }
    }
}

/// How many bytes of entries a [`ListCache`] keeps before it starts again empty.
const LIST_CACHE_BYTES: usize = 16 << 20;

/// The REST list's entries of ended executions, written once and kept by the database's record
/// of the execution ([`crate::PageRecord`]): the record is the key, so an execution whose stored
/// summary changed (tags, say) has a different record and is written again; nothing kept can
/// be older than the page just read. An ended execution's entry depends on its record alone;
/// entries of executions that have not ended are measured to `now` and never kept. Decoding
/// the records and writing their entries was about a third of a list request's time.
#[derive(Debug, Default)]
pub struct ListCache {
    kept: std::sync::Mutex<KeptEntries>,
}

#[derive(Debug, Default)]
struct KeptEntries {
    by_record: std::collections::HashMap<Box<str>, std::sync::Arc<CachedEntry>>,
    bytes: usize,
}

/// One list entry: the execution's id and its [`ListEntry`] as JSON text.
#[derive(Debug)]
pub struct CachedEntry {
    id: Box<str>,
    json: Box<[u8]>,
}

impl CachedEntry {
    /// The execution's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The text of `ListEntry::new(summary, now)`.
    pub fn json(&self) -> &[u8] {
        &self.json
    }
}

impl ListCache {
    /// The list entries of `page` as of `now`, newest first; those of ended executions from
    /// the cache when it has their record.
    pub fn entries(
        &self,
        page: &SummaryPage,
        now: UnixMs,
    ) -> Result<Vec<std::sync::Arc<CachedEntry>>> {
        let records = page.records()?;
        let mut found: Vec<Option<std::sync::Arc<CachedEntry>>> = {
            let kept = self.lock();
            records
                .iter()
                .map(|r| kept.by_record.get(r.text()).cloned())
                .collect()
        };
        let mut written = Vec::new();
        for (record, slot) in records.iter().zip(found.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            let summary = record.summary()?;
            let json = serde_json::to_vec(&ListEntry::new(&summary, now))
                .map_err(|e| StoreError::Invalid(format!("encode JSON: {e}")))?;
            let entry = std::sync::Arc::new(CachedEntry {
                id: summary.id.into(),
                json: json.into(),
            });
            if summary.status.is_terminal() {
                written.push((record.text(), entry.clone()));
            }
            *slot = Some(entry);
        }
        if !written.is_empty() {
            let mut kept = self.lock();
            for (record, entry) in written {
                let size = record.len() + entry.id.len() + entry.json.len();
                if kept.bytes + size > LIST_CACHE_BYTES {
                    kept.by_record.clear();
                    kept.bytes = 0;
                }
                if kept.by_record.insert(record.into(), entry).is_none() {
                    kept.bytes += size;
                }
            }
        }
        let mut entries: Vec<_> = found.into_iter().flatten().collect();
        // Newest first, as `SummaryPage::summaries` (no SQL standard fixes an aggregate's order).
        entries.sort_unstable_by(|a, b| b.id.cmp(&a.id));
        Ok(entries)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptEntries> {
        // The map is consistent between statements: a panic elsewhere leaves it usable.
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl From<&Execution> for TestWorkflowExecution {
    fn from(e: &Execution) -> Self {
        let now = now_ms();
        let mut view = summary_view(&e.summary, now);
        view.result = result_view(&e.summary, &e.steps, now);
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
        assert_eq!(go_duration(61_040), "1m1.04s");
        assert_eq!(go_duration(3_600_400), "1h0m0.4s");
        assert_eq!(go_duration(-5), "0s");
    }

    #[test]
    fn times_are_utc_millis() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        // Digit by digit as chrono writes them, including before 1970 and past year 9999.
        for ms in [
            0,
            -1,
            -62_135_596_800_000,
            951_782_400_999,
            253_402_300_799_999,
            253_402_300_800_000,
            i64::MAX,
            i64::MIN,
        ] {
            let chrono = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(rfc3339(ms), chrono, "{ms}");
        }
    }
}
