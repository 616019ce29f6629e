//! Sensitive config values of queued runs, held in this process's memory until the run starts.
//!
//! A run's sensitive config values are never stored (not in the execution's record, its plan
//! or its logs), yet a queued run starts later, maybe after other runs. So [`crate::Service::submit`]
//! keeps them here, keyed by execution id, and records the execution leased to this process
//! (with a heartbeat while it waits): no other server on the database takes it without its
//! values, and when this process is gone before the run starts, readers mark it `failed`
//! saying the values were lost (`Store::recover_abandoned`). The dispatcher takes them back
//! with [`take`] just before the run. Process-wide, because the values belong to the process
//! that holds the lease, whichever `Server` in it dispatches.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use assay_store::HeartbeatGuard;
use indexmap::IndexMap;
use serde_json::Value;

struct Held {
    values: IndexMap<String, Value>,
    /// Keeps the queued execution's lease fresh for readers on other machines.
    _heartbeat: HeartbeatGuard,
}

static HELD: LazyLock<Mutex<HashMap<String, Held>>> = LazyLock::new(Default::default);

/// Keep `values` for the queued execution `id` until [`take`].
pub(crate) fn hold(id: &str, values: IndexMap<String, Value>, heartbeat: HeartbeatGuard) {
    HELD.lock().expect("not poisoned").insert(
        id.to_string(),
        Held {
            values,
            _heartbeat: heartbeat,
        },
    );
}

/// The values held for `id`, removed from memory; `None` when this process holds none.
pub fn take(id: &str) -> Option<IndexMap<String, Value>> {
    HELD.lock()
        .expect("not poisoned")
        .remove(id)
        .map(|held| held.values)
}
