//! Runs started by this server: each one a tokio task, so that `run_workflow` can answer at
//! once and an abort reaches the run without waiting for the store's abort poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assay_runner::Prepared;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    cancel: CancellationToken,
    done: watch::Receiver<bool>,
}

/// The runs of this process, by execution id.
#[derive(Clone, Default)]
pub struct Runs {
    running: Arc<Mutex<HashMap<String, Running>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Runs {
    /// Start a prepared execution in the background.
    pub fn start(&self, prepared: Prepared) {
        let id = prepared.execution().id.clone();
        let (tx, rx) = watch::channel(false);
        self.lock_running().insert(
            id.clone(),
            Running {
                cancel: prepared.cancel_token(),
                done: rx,
            },
        );
        let running = self.running.clone();
        let task = tokio::spawn(async move {
            // The runner records every event; a failure to record ends the run as aborted.
            if let Err(e) = prepared.run_to_status(|_| {}).await {
                eprintln!("assay mcp: execution {id} ended with an error: {e}");
            }
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = tx.send(true);
        });
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// A receiver that turns `true` when the run ends, when it runs in this process.
    pub fn done(&self, id: &str) -> Option<watch::Receiver<bool>> {
        self.lock_running().get(id).map(|r| r.done.clone())
    }

    /// Cancel a run of this process; false when it is not one.
    pub fn cancel(&self, id: &str) -> bool {
        match self.lock_running().get(id) {
            Some(r) => {
                r.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Abort every run and wait up to `grace` for each to be recorded as aborted.
    pub async fn shutdown(&self, grace: Duration) {
        for r in self.lock_running().values() {
            r.cancel.cancel();
        }
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::time::timeout(grace, futures::future::join_all(tasks)).await;
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}
