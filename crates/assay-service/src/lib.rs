//! The use cases of Assay, once: stored documents of every kind ([`definitions`]), runs
//! ([`Service::submit`], [`Service::rerun`], [`Service::abort`]) and history queries
//! ([`history`]). REST handlers, dashboard pages, MCP tools, hooks, schedules and the embedded
//! CLI are adapters over it: they turn their input into these calls and the answers (or a
//! [`ServiceError`]) into their output. No HTTP, no terminal here.

pub mod agents;
pub mod analysis;
pub mod ask;
pub mod definitions;
pub mod error;
pub mod gate;
mod held;
pub mod history;
pub mod insights;
pub mod quarantine;
pub mod runs;
pub mod selection;

use std::sync::Arc;

use assay_store::Store;

pub use definitions::{Checked, Definitions, DocumentKind};
pub use error::{Problem, ServiceError, ServiceResult};
pub use held::take as take_held;
pub use history::{HistoryQuery, Page};
pub use runs::{
    Aborted, Group, QueueSink, Queued, QueuedRequestError, Start, check_tags, rerun_config,
};

/// The use cases over one store, and the queue runs are submitted to (a server's). Cheap to
/// clone.
#[derive(Clone)]
pub struct Service {
    store: Store,
    queue: Option<Arc<dyn QueueSink>>,
}

impl Service {
    /// The use cases over `store`, without a queue ([`Service::submit`] refuses).
    pub fn new(store: Store) -> Service {
        Service { store, queue: None }
    }

    /// Submitted runs go to `queue`.
    pub fn with_queue(mut self, queue: Arc<dyn QueueSink>) -> Service {
        self.queue = Some(queue);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The stored documents.
    pub fn definitions(&self) -> Definitions {
        Definitions::new(self.store.clone())
    }
}
