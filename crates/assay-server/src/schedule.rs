//! The scheduler: runs stored workflows on their `spec.events[].cronjob` schedules.
//!
//! One task per server. It reads the stored workflows (again every [`RELOAD_EVERY`], so an
//! apply through any server or `assay apply` is picked up), computes each schedule's next tick
//! after now, sleeps until the earliest, and fires it: the tick is claimed in the store
//! ([`Store::claim_schedule_tick`]), and only the server whose claim created the row queues the
//! run, through the same path as `POST /v1/test-workflows/{name}/executions`. So a tick fires
//! once however many servers share the database.
//!
//! Ticks missed while no server ran are not replayed: after a start the next tick is computed
//! from now (a burst of catch-up runs is what stalls a runner in Testkube). A late wake-up fires
//! the tick it was waiting for once, then goes on from now. A schedule whose pattern or time
//! zone does not parse is logged and skipped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use assay_spec::model::TestWorkflow;
use assay_spec::schedule::Schedule;
use assay_store::{
    ContextType, DefinitionKind, LabelSelector, RunningContext, ScheduleTick, StoreError,
};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// How often the stored workflows are read again.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Claims of ticks older than this are deleted (the newest of each schedule stays).
const KEEP_CLAIMS: Duration = Duration::from_secs(24 * 3600);
/// How often old claims are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Start the scheduler of a server; it stops when `stop` is cancelled.
pub(crate) fn spawn(state: AppState, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    static SERVERS: AtomicU64 = AtomicU64::new(0);
    let claimer = format!(
        "{}:{}#{}",
        assay_store::lease::host_name(),
        std::process::id(),
        SERVERS.fetch_add(1, Ordering::Relaxed)
    );
    let scheduler = Scheduler {
        state,
        claimer,
        entries: Vec::new(),
        loaded: HashMap::new(),
        warned: HashSet::new(),
        started: false,
    };
    tokio::spawn(scheduler.run(stop))
}

/// One schedule of one stored workflow.
struct Entry {
    workflow: String,
    index: usize,
    schedule: Schedule,
    /// When it fires next; `None` when the pattern never matches again.
    next: Option<DateTime<Utc>>,
}

impl Entry {
    /// The pattern (and time zone) as written: the actor of the runs it starts.
    fn label(&self) -> String {
        label(&self.schedule)
    }
}

fn label(schedule: &Schedule) -> String {
    match &schedule.timezone {
        Some(zone) => format!("{} ({zone})", schedule.pattern),
        None => schedule.pattern.clone(),
    }
}

struct Scheduler {
    state: AppState,
    /// Who this server is in the claims.
    claimer: String,
    entries: Vec<Entry>,
    /// Workflow name → the revision its entries come from.
    loaded: HashMap<String, i64>,
    /// Invalid schedules already logged: (workflow, revision, event index).
    warned: HashSet<(String, i64, usize)>,
    /// Whether the first load is done (missed ticks are reported on it).
    started: bool,
}

impl Scheduler {
    async fn run(mut self, stop: CancellationToken) {
        let mut reload_at = Instant::now();
        let mut prune_at = Instant::now();
        loop {
            if stop.is_cancelled() {
                return;
            }
            if Instant::now() >= reload_at {
                if let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "schedules: failed to read the stored workflows");
                }
                reload_at = Instant::now() + RELOAD_EVERY;
            }
            if Instant::now() >= prune_at {
                let before = assay_store::now_ms() - KEEP_CLAIMS.as_millis() as i64;
                if let Err(e) = self.state.store.prune_schedule_ticks(before).await {
                    tracing::warn!(error = %e, "schedules: failed to prune old tick claims");
                }
                prune_at = Instant::now() + PRUNE_EVERY;
            }
            self.fire_due(&stop).await;
            let now = Utc::now();
            let wake = self
                .entries
                .iter()
                .filter_map(|e| e.next)
                .min()
                .map(|next| Instant::now() + (next - now).to_std().unwrap_or(Duration::ZERO))
                .map_or(reload_at, |at| at.min(reload_at));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Fire every schedule whose tick has come, then move each to its next tick after now
    /// (ticks that passed meanwhile are skipped, not fired late one after another).
    async fn fire_due(&mut self, stop: &CancellationToken) {
        let now = Utc::now();
        let due: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].next.is_some_and(|t| t <= now))
            .collect();
        for i in due {
            if stop.is_cancelled() {
                return;
            }
            let tick = self.entries[i].next.expect("due entries have a tick");
            self.fire(i, tick).await;
            let after = Utc::now().max(tick);
            self.entries[i].next = self.entries[i].schedule.next_after(after);
        }
    }

    /// Claim the tick; if this server's claim won, queue the run.
    async fn fire(&self, i: usize, tick: DateTime<Utc>) {
        let entry = &self.entries[i];
        let store = &self.state.store;
        let tick_at = tick.timestamp_millis();
        let claim = ScheduleTick {
            workflow: entry.workflow.clone(),
            event_index: entry.index as i64,
            tick_at,
            cron: entry.label(),
            claimed_by: self.claimer.clone(),
        };
        match store.claim_schedule_tick(&claim).await {
            Ok(true) => {}
            Ok(false) => {
                self.state
                    .metrics
                    .schedule_tick(&entry.workflow, "claimed_elsewhere");
                return;
            }
            Err(e) => {
                tracing::warn!(workflow = %entry.workflow, cron = %entry.label(), error = %e,
                    "schedules: failed to claim the tick; not fired");
                return;
            }
        }
        match self.queue_run(entry, tick_at).await {
            Ok(id) => {
                self.state.metrics.schedule_tick(&entry.workflow, "fired");
                tracing::info!(workflow = %entry.workflow, cron = %entry.label(), execution = %id,
                    "schedules: queued a scheduled run");
                if let Err(e) = store
                    .set_schedule_tick_execution(&entry.workflow, entry.index as i64, tick_at, &id)
                    .await
                {
                    tracing::warn!(error = %e, "schedules: failed to record the tick's execution");
                }
            }
            Err(reason) => {
                self.state.metrics.schedule_tick(&entry.workflow, "failed");
                tracing::warn!(workflow = %entry.workflow, cron = %entry.label(), %reason,
                    "schedules: the scheduled run was not queued");
            }
        }
    }

    /// Queue a run of the workflow as stored now, with the event's config values, if the
    /// event is still there with the same schedule. Returns the execution's id.
    async fn queue_run(&self, entry: &Entry, tick_at: i64) -> Result<String, String> {
        let def = self
            .state
            .store
            .get_definition(DefinitionKind::Workflow, &entry.workflow, None)
            .await
            .map_err(|e| e.to_string())?;
        let workflow = load_workflow(&entry.workflow, &def.yaml)
            .ok_or_else(|| "the stored workflow does not load".to_string())?;
        let cronjob = workflow
            .spec
            .events
            .get(entry.index)
            .and_then(|e| e.cronjob.as_ref())
            .filter(|c| {
                c.cron == entry.schedule.pattern
                    && c.timezone
                        .as_deref()
                        .map(str::trim)
                        .filter(|z| !z.is_empty())
                        == entry.schedule.timezone.as_deref()
            })
            .ok_or_else(|| "the schedule changed since it was read; not fired".to_string())?;
        let config: IndexMap<String, Value> = cronjob.config.clone();
        let context = RunningContext {
            kind: ContextType::Schedule,
            actor: Some(entry.label()),
            ci: None,
            execution_id: None,
        };
        self.state
            .service
            .start(
                workflow,
                assay_service::Start {
                    config,
                    tags: Default::default(),
                    running_context: context,
                    scheduled_at: Some(tick_at),
                    target: None,
                },
            )
            .await
            .map(|summary| summary.id)
            .map_err(|e| match e {
                assay_service::ServiceError::Invalid { detail, problems }
                    if !problems.is_empty() =>
                {
                    let problems: Vec<String> = problems.into_iter().map(|p| p.message).collect();
                    format!("{detail}: {}", problems.join("; "))
                }
                e => e.to_string(),
            })
    }

    /// Read the stored workflows again; rebuild the entries of those that changed.
    async fn reload(&mut self) -> Result<(), StoreError> {
        let defs = self
            .state
            .store
            .list_definitions(DefinitionKind::Workflow, &LabelSelector::default())
            .await?;
        let now = Utc::now();
        let names: HashSet<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        // Deleted workflows.
        self.entries.retain(|e| names.contains(e.workflow.as_str()));
        self.loaded.retain(|name, _| names.contains(name.as_str()));
        let mut fresh = Vec::new();
        for def in &defs {
            if self.loaded.get(&def.name) == Some(&def.revision) {
                continue;
            }
            self.loaded.insert(def.name.clone(), def.revision);
            let old: Vec<Entry> = {
                let (old, keep) = std::mem::take(&mut self.entries)
                    .into_iter()
                    .partition(|e| e.workflow == def.name);
                self.entries = keep;
                old
            };
            let Some(workflow) = load_workflow(&def.name, &def.yaml) else {
                continue;
            };
            for (index, event) in workflow.spec.events.iter().enumerate() {
                let Some(cronjob) = &event.cronjob else {
                    continue;
                };
                let schedule = match Schedule::parse(&cronjob.cron, cronjob.timezone.as_deref()) {
                    Ok(s) => s,
                    Err(e) => {
                        if self.warned.insert((def.name.clone(), def.revision, index)) {
                            tracing::warn!(workflow = %def.name, event = index, error = %e,
                                hint = e.hint(), "schedules: skipping an invalid schedule");
                        }
                        continue;
                    }
                };
                // The same schedule as before keeps its next tick (a reload must not skip or
                // repeat one); a new or changed one starts from now.
                let next = old
                    .iter()
                    .find(|o| {
                        o.index == index
                            && o.schedule.pattern == schedule.pattern
                            && o.schedule.timezone == schedule.timezone
                    })
                    .map_or_else(|| schedule.next_after(now), |o| o.next);
                fresh.push(Entry {
                    workflow: def.name.clone(),
                    index,
                    schedule,
                    next,
                });
            }
        }
        if !self.started {
            self.started = true;
            for entry in &fresh {
                self.report_missed(entry, now).await;
            }
        }
        self.entries.extend(fresh);
        Ok(())
    }

    /// At start: say when a schedule's ticks passed while no server ran (they are skipped).
    async fn report_missed(&self, entry: &Entry, now: DateTime<Utc>) {
        let Ok(Some(last)) = self
            .state
            .store
            .last_schedule_tick(&entry.workflow, entry.index as i64)
            .await
        else {
            return;
        };
        let Some(last) = DateTime::<Utc>::from_timestamp_millis(last) else {
            return;
        };
        let Some(first_missed) = entry.schedule.next_after(last).filter(|t| *t <= now) else {
            return;
        };
        let latest_missed = entry
            .schedule
            .previous_at_or_before(now)
            .unwrap_or(first_missed);
        tracing::info!(workflow = %entry.workflow, cron = %entry.label(),
            first_missed = %first_missed.to_rfc3339(), latest_missed = %latest_missed.to_rfc3339(),
            next = ?entry.next.map(|t| t.to_rfc3339()),
            "schedules: ticks passed while no server was running; skipped, not replayed");
    }
}

fn load_workflow(name: &str, yaml: &str) -> Option<TestWorkflow> {
    assay_service::definitions::workflow_from_yaml(&format!("stored workflow {name}"), yaml).ok()
}
