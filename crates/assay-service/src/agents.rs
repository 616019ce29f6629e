//! The runner agents as every adapter shows them (`/v1/agents`, the dashboard's agents page,
//! `assay get agents` on the embedded store): connected means seen within the lease timeout.

use assay_api::agents::Agent;

use crate::Service;
use crate::error::ServiceResult;

impl Service {
    /// The agents the store knows, with their labels, when each was last seen, what each runs
    /// now, and whether it is connected.
    pub async fn agents(&self) -> ServiceResult<Vec<Agent>> {
        let store = self.store();
        let now = assay_store::now_ms();
        let timeout = store.lease_timeout().as_millis() as i64;
        Ok(store
            .list_agents()
            .await?
            .into_iter()
            .map(|a| Agent {
                connected: now - a.last_seen_at <= timeout,
                registered_at: assay_store::testkube::rfc3339(a.registered_at),
                last_seen_at: assay_store::testkube::rfc3339(a.last_seen_at),
                name: a.name,
                labels: a.labels,
                runtime: a.runtime,
                host: a.host,
                version: a.version,
                running: a.running,
            })
            .collect())
    }
}
