//! Aborting an execution wherever it is: the one way the API, MCP and the CLI abort.

use assay_spec::status::ExecutionStatus;
use assay_store::{ExecutionRef, LeaseOwner, Store, StoreError};

use crate::end_now;

/// What [`abort`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortOutcome {
    /// It was still queued: recorded `aborted` at once; it never runs.
    Aborted,
    /// It is running: its runner was asked to stop (it polls the request about every second).
    Requested,
    /// It had already ended; nothing changed.
    Finished,
}

/// Abort an execution wherever it is. A queued one is taken (its lease, so no dispatcher starts
/// it) and recorded `aborted` with `reason`; a running one is asked to stop; an ended one is
/// left alone. The API, MCP and the CLI all abort through here.
pub async fn abort(store: &Store, id: &str, reason: &str) -> Result<AbortOutcome, StoreError> {
    let summary = store
        .find_execution(&ExecutionRef::Id(id.to_string()))
        .await?;
    let me = LeaseOwner::current();
    if summary.status == ExecutionStatus::Queued
        && (store.claim_execution(id, &me).await? || store.claim_held_execution(id, &me).await?)
    {
        end_now(store, id, ExecutionStatus::Aborted, reason.to_string()).await?;
        return Ok(AbortOutcome::Aborted);
    }
    Ok(if store.request_abort(id, Some(reason)).await? {
        AbortOutcome::Requested
    } else {
        AbortOutcome::Finished
    })
}
