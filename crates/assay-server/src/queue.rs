//! The queue: every run is recorded `queued` in the store first, then handed to a runner when
//! one of `--max-concurrent` slots is free and its workflow's concurrency group (Testkube's
//! `spec.concurrency`) has room. Queued executions are rows in the store, so they survive a
//! restart (reloaded oldest first at start). Work is handed over through the [`Dispatch`]
//! trait: today the in-process local engine ([`LocalDispatch`]), later remote runners.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use assay_runner::{RunEnd, RunError, RunRequest};
use assay_service::{Group, Queued, Service};
use assay_store::{ExecutionRef, ExecutionStatus, Store};
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Runs one queued execution to its end and records it. Implementations leave it in a terminal
/// status in the store, or resolve to `None` without touching it when it is not queued any more
/// (aborted while it waited, or taken by someone else).
pub trait Dispatch: Send + Sync + 'static {
    /// Run the queued execution `id` with `request`; resolves to its final status and the
    /// results of its steps, as recorded.
    fn run(
        &self,
        store: Store,
        id: String,
        request: RunRequest,
    ) -> BoxFuture<'static, Result<Option<RunEnd>, RunError>>;

    /// Abort every run in progress (the server is stopping); each still records its end.
    fn stop_all(&self) {}
}

/// Runs executions in this process with the local engine.
#[derive(Default)]
pub struct LocalDispatch {
    /// Cancel tokens of the runs in progress, for [`Dispatch::stop_all`].
    active: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl Dispatch for LocalDispatch {
    fn run(
        &self,
        store: Store,
        id: String,
        request: RunRequest,
    ) -> BoxFuture<'static, Result<Option<RunEnd>, RunError>> {
        let active = self.active.clone();
        Box::pin(async move {
            let Some(prepared) = assay_runner::prepare_queued(&store, &id, request).await? else {
                return Ok(None);
            };
            active
                .lock()
                .expect("not poisoned")
                .insert(id.clone(), prepared.cancel_token());
            // Every event is in the store before this observer would see it; followers read
            // the store, so there is nothing more to do per event here.
            let end = prepared.run_to_end(|_| {}).await;
            active.lock().expect("not poisoned").remove(&id);
            Ok(Some(end?))
        })
    }

    fn stop_all(&self) {
        for token in self.active.lock().expect("not poisoned").values() {
            token.cancel();
        }
    }
}

/// Handle to the queue: push executions recorded `queued` (a [`Queued`] comes only from
/// [`Service::submit`] and [`Service::adopt`]).
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::UnboundedSender<Queued>,
    depth: Arc<AtomicI64>,
    running: Arc<AtomicI64>,
    stopping: Arc<AtomicBool>,
    /// Cancelled by [`Queue::stop`]; the scheduler stops firing with it.
    stopped: CancellationToken,
    dispatch: Arc<dyn Dispatch>,
}

impl Queue {
    /// Start the dispatcher task with `max_concurrent` slots.
    pub fn start(
        store: Store,
        dispatch: Arc<dyn Dispatch>,
        max_concurrent: usize,
        metrics: Metrics,
    ) -> Queue {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Queue {
            tx,
            depth: Arc::new(AtomicI64::new(0)),
            running: Arc::new(AtomicI64::new(0)),
            stopping: Arc::new(AtomicBool::new(false)),
            stopped: CancellationToken::new(),
            dispatch: dispatch.clone(),
        };
        tokio::spawn(dispatcher(
            store,
            dispatch,
            max_concurrent.max(1),
            metrics,
            rx,
            queue.clone(),
        ));
        queue
    }

    /// Hand the queued execution to the dispatcher.
    pub fn push(&self, ticket: Queued) {
        self.depth.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(ticket).is_err() {
            self.depth.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Executions waiting for a slot.
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::SeqCst)
    }

    /// Executions this server runs now.
    pub fn running(&self) -> i64 {
        self.running.load(Ordering::SeqCst)
    }

    /// Cancelled once [`Queue::stop`] is called.
    pub fn stopped(&self) -> CancellationToken {
        self.stopped.clone()
    }

    /// Stop for a shutdown: start nothing more (queued executions stay queued for the next
    /// start), abort the runs in progress and wait up to `grace` for them to record their end.
    /// Returns how many were still running when the time was up.
    pub async fn stop(&self, grace: std::time::Duration) -> i64 {
        self.stopping.store(true, Ordering::SeqCst);
        self.stopped.cancel();
        self.dispatch.stop_all();
        let deadline = tokio::time::Instant::now() + grace;
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.running()
    }
}

/// How often a server looks for queued executions it was not handed (queued by another
/// server on the same database, or left by one that stopped).
pub const ADOPT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Until the queue stops, hand every `queued` execution of the store to the queue every
/// [`ADOPT_EVERY`] ([`Service::adopt`]): servers sharing a database share the queue this way.
/// The dispatcher takes an id once, and the claim (a compare-and-set lease) lets only one
/// server run it.
pub fn spawn_adopter(service: Service, queue: Queue) {
    tokio::spawn(async move {
        let stopped = queue.stopped();
        loop {
            tokio::select! {
                _ = stopped.cancelled() => return,
                _ = tokio::time::sleep(ADOPT_EVERY) => {}
            }
            if let Err(e) = service.adopt().await {
                tracing::warn!(error = %e, "could not look for queued executions");
            }
        }
    });
}

/// A queued execution waiting in the dispatcher, with its concurrency group if it has one.
struct Waiting {
    ticket: Queued,
    group: Option<Group>,
}

/// The dispatcher actor: takes queued ids in order and starts each when a global slot is free
/// and its concurrency group has room; a blocked group does not hold back the others.
async fn dispatcher(
    store: Store,
    dispatch: Arc<dyn Dispatch>,
    slots: usize,
    metrics: Metrics,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    queue: Queue,
) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    // Ids in `waiting`: an id pushed twice (adopted while already here) is taken once.
    let mut waiting_ids: HashSet<String> = HashSet::new();
    // Running here: id -> concurrency group key.
    let mut running: HashMap<String, Option<String>> = HashMap::new();
    // Running ids already asked to abort by cancelInProgress.
    let mut cancelled: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(mut ticket) => {
                    let id = ticket.id().to_string();
                    if running.contains_key(&id) || !waiting_ids.insert(id) {
                        queue.depth.fetch_sub(1, Ordering::SeqCst);
                    } else {
                        let group = ticket.group(&store).await;
                        waiting.push_back(Waiting { ticket, group });
                    }
                }
                None => return,
            },
            Some(id) = done_rx.recv() => {
                running.remove(&id);
                cancelled.remove(&id);
            }
        }
        let mut i = 0;
        while i < waiting.len() && running.len() < slots && !queue.stopping.load(Ordering::SeqCst) {
            if let Some(group) = &waiting[i].group {
                let in_group: Vec<String> = running
                    .iter()
                    .filter(|(_, k)| k.as_deref() == Some(group.key.as_str()))
                    .map(|(id, _)| id.clone())
                    .collect();
                if in_group.len() >= group.max {
                    if group.cancel_in_progress {
                        let reason = format!(
                            "canceled: a newer execution is queued in concurrency group `{}`",
                            group.key
                        );
                        for id in in_group {
                            if cancelled.insert(id.clone()) {
                                let _ = store.request_abort(&id, Some(&reason)).await;
                            }
                        }
                    }
                    i += 1;
                    continue;
                }
            }
            let Some(next) = waiting.remove(i) else {
                break;
            };
            let id = next.ticket.id().to_string();
            waiting_ids.remove(&id);
            queue.depth.fetch_sub(1, Ordering::SeqCst);
            running.insert(id.clone(), next.group.map(|g| g.key));
            let store = store.clone();
            let dispatch = dispatch.clone();
            let metrics = metrics.clone();
            let counter = queue.running.clone();
            let done = done_tx.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                run_one(&store, dispatch.as_ref(), &metrics, next.ticket).await;
                counter.fetch_sub(1, Ordering::SeqCst);
                let _ = done.send(id);
            });
        }
    }
}

async fn run_one(store: &Store, dispatch: &dyn Dispatch, metrics: &Metrics, ticket: Queued) {
    let id = &ticket.id().to_string();
    // Held sensitive values are taken first, so they leave memory whatever happens next.
    // Whether it is still waiting is the runner's to find out: it takes the run in one write
    // (an execution aborted while it waited is not taken).
    let request = match ticket.into_request(store).await {
        Ok(r) => r,
        Err(e) => {
            let message = e.to_string();
            match store
                .find_execution(&ExecutionRef::Id(id.to_string()))
                .await
            {
                // Aborted while it waited: it keeps its end.
                Ok(s) if s.status != ExecutionStatus::Queued => {}
                Ok(s) => {
                    let _ = store
                        .finish_execution(
                            id,
                            assay_store::Finish {
                                status: ExecutionStatus::Failed,
                                error_message: Some(message),
                                at: assay_store::now_ms(),
                            },
                        )
                        .await;
                    metrics.finished(&s.workflow, ExecutionStatus::Failed, None);
                }
                Err(e) => tracing::warn!(%id, error = %e, "queued execution vanished"),
            }
            return;
        }
    };
    let workflow = request.workflow.metadata.name.clone();
    let started = std::time::Instant::now();
    match dispatch.run(store.clone(), id.to_string(), request).await {
        Ok(Some(end)) => {
            metrics.finished(&workflow, end.status, Some(started.elapsed()));
            // As recorded: not read back from the store.
            metrics.steps_finished(&workflow, &end.steps);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(%id, error = %e, "execution failed to run");
            if let Ok(s) = store
                .find_execution(&ExecutionRef::Id(id.to_string()))
                .await
            {
                if !s.status.is_terminal() {
                    let _ = store
                        .finish_execution(
                            id,
                            assay_store::Finish {
                                status: ExecutionStatus::Failed,
                                error_message: Some(format!("failed to run: {e}")),
                                at: assay_store::now_ms(),
                            },
                        )
                        .await;
                }
                metrics.finished(&workflow, ExecutionStatus::Failed, None);
            }
        }
    }
}
