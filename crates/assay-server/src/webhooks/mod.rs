//! Outbound webhooks: Testkube's `Webhook` documents (`executor.testkube.io/v1`), stored through
//! `/v1/webhooks` or `assay apply`, and POSTed to when an execution of a workflow matching their
//! `selector` is queued, starts or ends.
//!
//! How it runs: the queue's [`Dispatch`] is wrapped ([`Webhooks::wrap`]) so that a run's start
//! and end are reported, and the API reports `queued`. Reports go through a bounded channel to
//! one observer task, which works out the event types (`end-testworkflow-failed`,
//! `become-testworkflow-down` against the workflow's previous execution, ...) and spawns one
//! delivery per matching webhook: a run never waits for a receiver. A delivery renders the
//! `uri`, `headers` and `payloadTemplate` with minijinja and tries up to [`ATTEMPTS`] times with
//! exponential backoff; every attempt is recorded in the store with header values and secret
//! config values masked. Deliveries still retrying when the server stops are lost.
//!
//! The parts: this module is the observer (which events, for which webhooks); `delivery.rs`
//! renders and sends one event with retries and records each attempt; `receiver.rs` refuses
//! non-public receivers; `api.rs` is the `/v1/webhooks` CRUD and the delivery log.

mod api;
mod delivery;
mod receiver;

pub use api::*;
use delivery::*;
use receiver::PublicOnly;
pub use receiver::is_private;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use assay_runner::{RunEnd, RunError, RunRequest};
use assay_spec::load::ResourceKind;
use assay_spec::model::{Resource, Webhook};
use assay_store::{
    Execution, ExecutionFilter, ExecutionRef, ExecutionStatus, LabelSelector, Store,
};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use crate::metrics::Metrics;
use crate::queue::Dispatch;

/// Most attempts per delivery.
pub const ATTEMPTS: u32 = 5;
/// Wait before the second attempt; it doubles for each next one (1s, 2s, 4s, 8s).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Reports waiting for the observer; more are dropped (and logged) rather than slow a run.
const CHANNEL: usize = 1024;
/// Deliveries in flight at once; the observer waits for a free one before it reads on.
pub const IN_FLIGHT: usize = 32;
/// What a secret or a header value is replaced with in the delivery log: the one mask string.
pub use assay_api::MASK;

/// When in an execution's life a report is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    Queued,
    Started,
    Ended,
}

/// Handle to the webhook observer. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    tx: mpsc::Sender<(String, Moment)>,
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    metrics: Metrics,
    http: reqwest::Client,
    /// `--allow-private-webhooks`: loopback and private receivers are allowed.
    allow_private: Arc<AtomicBool>,
    settings: RwLock<Settings>,
    in_flight: Arc<Semaphore>,
}

#[derive(Default)]
struct Settings {
    public_url: Option<String>,
    /// Secret values by environment variable name, looked up before the environment.
    secrets: BTreeMap<String, String>,
}

impl Webhooks {
    /// Start the observer task. `public_url` (the server as its users reach it) makes
    /// `executionUrl` in templates; `ASSAY_PUBLIC_URL` is read when it is `None`.
    pub fn start(store: Store, metrics: Metrics, public_url: Option<String>) -> Webhooks {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let public_url = public_url
            .or_else(|| std::env::var("ASSAY_PUBLIC_URL").ok())
            .filter(|u| !u.trim().is_empty())
            .map(|u| u.trim_end_matches('/').to_string());
        let allow_private = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            store,
            metrics,
            // Redirects are never followed (a public receiver could point at a private one),
            // and every name is checked as it is resolved for a connection, so a name that
            // resolves differently at send time cannot reach a private address either.
            http: reqwest::Client::builder()
                .timeout(ATTEMPT_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(PublicOnly {
                    allow_private: allow_private.clone(),
                })
                .build()
                .unwrap_or_default(),
            allow_private,
            settings: RwLock::new(Settings {
                public_url,
                secrets: BTreeMap::new(),
            }),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        });
        tokio::spawn(observe(shared.clone(), rx));
        Webhooks { tx, shared }
    }

    /// The server's address as its users reach it (`https://assay.example.com`), for
    /// `executionUrl` and `apiUrl` in templates.
    pub fn set_public_url(&self, url: Option<String>) {
        if let Ok(mut s) = self.shared.settings.write() {
            s.public_url = url.map(|u| u.trim_end_matches('/').to_string());
        }
    }

    /// Give a webhook secret as if the environment variable `var` held `value` (for servers
    /// embedded in another program, and tests: the process environment cannot be changed
    /// safely once threads run).
    pub fn set_secret(&self, var: &str, value: &str) {
        if let Ok(mut s) = self.shared.settings.write() {
            s.secrets.insert(var.to_string(), value.to_string());
        }
    }

    /// Allow receivers on loopback, private, link-local and other non-public addresses
    /// (`assay server --allow-private-webhooks`); refused by default.
    pub fn set_allow_private(&self, allow: bool) {
        self.shared.allow_private.store(allow, Ordering::Relaxed);
    }

    fn report(&self, id: &str, moment: Moment) {
        if let Err(e) = self.tx.try_send((id.to_string(), moment)) {
            tracing::warn!(execution = %id, error = %e, "webhook events dropped: the observer is behind");
        }
    }

    /// The execution `id` was recorded `queued`.
    pub fn queued(&self, id: &str) {
        self.report(id, Moment::Queued);
    }

    /// `inner`, reporting when each run starts and ends.
    pub fn wrap(&self, inner: Arc<dyn Dispatch>) -> Arc<dyn Dispatch> {
        Arc::new(Observed {
            inner,
            webhooks: self.clone(),
        })
    }
}

/// A [`Dispatch`] that reports its runs to the webhooks.
struct Observed {
    inner: Arc<dyn Dispatch>,
    webhooks: Webhooks,
}

impl Dispatch for Observed {
    fn run(
        &self,
        store: Store,
        id: String,
        request: RunRequest,
    ) -> BoxFuture<'static, Result<Option<RunEnd>, RunError>> {
        let run = self.inner.run(store, id.clone(), request);
        let webhooks = self.webhooks.clone();
        Box::pin(async move {
            webhooks.report(&id, Moment::Started);
            let result = run.await;
            if let Ok(Some(_)) = &result {
                webhooks.report(&id, Moment::Ended);
            }
            result
        })
    }

    fn stop_all(&self) {
        self.inner.stop_all();
    }
}

async fn observe(shared: Arc<Shared>, mut rx: mpsc::Receiver<(String, Moment)>) {
    let mut webhooks = Known {
        watch: shared.store.watch_resources(ResourceKind::Webhook),
        read: None,
    };
    while let Some((id, moment)) = rx.recv().await {
        if let Err(e) = handle(&shared, &mut webhooks, &id, moment).await {
            tracing::warn!(execution = %id, error = %e, "webhooks not sent");
        }
    }
}

/// The longest the observer goes by the webhooks it read without reading them again. Stores
/// through this process, or any on PostgreSQL, signal a change at once; a SQLite writer in
/// another process (`assay apply` on the server's data folder) sends none.
const WEBHOOKS_MAX_AGE: Duration = Duration::from_secs(1);

/// The stored webhooks as the observer last read them: every report read them all before
/// (three reads per execution, most often of nothing).
struct Known {
    /// Signalled when a webhook is stored, changed or deleted.
    watch: assay_store::Watch,
    /// When they were read, and what was read.
    read: Option<(std::time::Instant, Vec<(String, Webhook)>)>,
}

impl Known {
    /// The stored webhooks that load, read again when one changed or after
    /// [`WEBHOOKS_MAX_AGE`].
    async fn get(
        &mut self,
        store: &Store,
    ) -> Result<&[(String, Webhook)], assay_store::StoreError> {
        // Looked at before the read: a change signalled during it is seen next time.
        let changed = self.watch.take_changes().is_some();
        let read = match self.read.take() {
            Some((at, webhooks)) if !changed && at.elapsed() < WEBHOOKS_MAX_AGE => (at, webhooks),
            _ => (std::time::Instant::now(), stored_webhooks(store).await?),
        };
        Ok(&self.read.insert(read).1)
    }
}

/// Every stored webhook that loads, by name.
async fn stored_webhooks(store: &Store) -> Result<Vec<(String, Webhook)>, assay_store::StoreError> {
    let mut out = Vec::new();
    for r in store.list_resources(ResourceKind::Webhook).await? {
        let loaded = assay_spec::load::load(&format!("stored webhook {}", r.name), &r.yaml);
        match loaded.resources.into_iter().next().map(|d| d.resource) {
            Some(Resource::Webhook(w)) => out.push((r.name, *w)),
            _ => tracing::warn!(webhook = %r.name, "stored webhook does not load; skipped"),
        }
    }
    Ok(out)
}

async fn handle(
    shared: &Arc<Shared>,
    known: &mut Known,
    id: &str,
    moment: Moment,
) -> Result<(), assay_store::StoreError> {
    let webhooks: Vec<(String, Webhook)> = known
        .get(&shared.store)
        .await?
        .iter()
        .filter(|(_, w)| !w.spec.disabled)
        .cloned()
        .collect();
    if webhooks.is_empty() {
        return Ok(());
    }
    let reference = ExecutionRef::Id(id.to_string());
    let mut execution = shared.store.get_execution(&reference).await?;
    if moment == Moment::Started {
        // The dispatcher reports before the runner has recorded the start; give it a moment,
        // and send nothing for a run that never started (aborted while it waited).
        for _ in 0..40 {
            if execution.started_at.is_some() || execution.status.is_terminal() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            execution = shared.store.get_execution(&reference).await?;
        }
        if execution.started_at.is_none() {
            return Ok(());
        }
    }
    // The observer may read the execution after it moved on (a short run has often ended by
    // then, and a busy observer reads it later still): an event says what was true when it
    // happened, so the execution is shown as it was at that moment.
    let execution = as_at(moment, execution);
    let types = event_types(&shared.store, moment, &execution).await?;
    let labels = workflow_labels(&execution);
    let view = serde_json::to_value(assay_api::TestWorkflowExecution::from(&execution))
        .unwrap_or(Value::Null);
    for event in types {
        for (name, webhook) in &webhooks {
            if !webhook.spec.events.iter().any(|e| e == event) {
                continue;
            }
            let Ok(selector) = LabelSelector::parse(&webhook.spec.selector) else {
                continue;
            };
            if !selector.matches(&labels) {
                continue;
            }
            let Ok(permit) = shared.in_flight.clone().acquire_owned().await else {
                return Ok(());
            };
            let job = Delivery {
                webhook: name.clone(),
                spec: webhook.clone(),
                event,
                execution: execution.clone(),
                view: view.clone(),
                labels: labels.clone(),
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                deliver(&shared, job).await;
                drop(permit);
            });
        }
    }
    Ok(())
}

/// `execution` as it was at `moment`: queued (not started), or just started (running, no
/// step finished yet). An ended execution keeps what it is.
fn as_at(moment: Moment, mut execution: Execution) -> Execution {
    let status = match moment {
        Moment::Queued => ExecutionStatus::Queued,
        Moment::Started => ExecutionStatus::Running,
        Moment::Ended => return execution,
    };
    if execution.summary.status == status {
        return execution;
    }
    let s = &mut execution.summary;
    s.status = status;
    s.finished_at = None;
    s.error_message = None;
    s.record_errors.clear();
    match moment {
        Moment::Queued => {
            s.started_at = None;
            s.status_at = s.scheduled_at;
        }
        _ => s.status_at = s.started_at.unwrap_or(s.status_at),
    }
    execution.steps.clear();
    execution.outputs.clear();
    execution.reports.clear();
    execution.artifacts.clear();
    execution
}

/// The labels of the workflow an execution ran (from the definition it ran).
fn workflow_labels(execution: &Execution) -> BTreeMap<String, String> {
    assay_service::definitions::workflow_from_yaml("execution definition", &execution.definition)
        .map(|w| w.metadata.labels.into_iter().collect())
        .unwrap_or_default()
}

/// Testkube's event types for this moment; `become-*` compare with the workflow's previous
/// finished execution (none before: no `become-*`).
async fn event_types(
    store: &Store,
    moment: Moment,
    execution: &Execution,
) -> Result<Vec<&'static str>, assay_store::StoreError> {
    use ExecutionStatus::*;
    let status = execution.status;
    let mut out = match moment {
        Moment::Queued => return Ok(vec!["queue-testworkflow"]),
        Moment::Started => return Ok(vec!["start-testworkflow"]),
        Moment::Ended => match status {
            Passed => vec!["end-testworkflow-success"],
            Failed => vec!["end-testworkflow-failed", "end-testworkflow-not-passed"],
            Aborted => vec!["end-testworkflow-aborted", "end-testworkflow-not-passed"],
            Canceled => vec!["end-testworkflow-canceled", "end-testworkflow-not-passed"],
            Queued | Running | Paused => return Ok(Vec::new()),
        },
    };
    let previous = store
        .list_executions(&ExecutionFilter {
            workflow: Some(execution.workflow.clone()),
            statuses: vec![Passed, Failed, Aborted, Canceled],
            limit: Some(1),
            before_id: Some(execution.id.clone()),
            ..ExecutionFilter::default()
        })
        .await?
        .into_iter()
        .next()
        .map(|e| e.status);
    if let Some(prev) = previous {
        if prev != Passed && status == Passed {
            out.push("become-testworkflow-up");
        }
        if prev == Passed && status != Passed {
            out.push("become-testworkflow-down");
            out.push("become-testworkflow-not-passed");
        }
        for (s, name) in [
            (Failed, "become-testworkflow-failed"),
            (Aborted, "become-testworkflow-aborted"),
            (Canceled, "become-testworkflow-canceled"),
        ] {
            if status == s && prev != s {
                out.push(name);
            }
        }
    }
    Ok(out)
}
