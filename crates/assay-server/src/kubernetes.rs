//! `assay server --kubernetes`: CRD mode and the TestTrigger watcher, wired to the store and
//! the queue. `assay_kube` watches the cluster; this module applies what it reports.
//!
//! **CRD mode.** `TestWorkflow`, `TestWorkflowTemplate` and `TestTrigger` objects of the
//! namespace go through the same checks as `assay apply` (and the same size and nesting
//! limits): a valid object is stored (created, or a new revision), an invalid one is not and
//! the log says which object and why. What is stored from the cluster carries the annotation
//! [`SYNCED_FROM`]; only such definitions are deleted when their object goes (or is found gone
//! at a (re)list, after a restart or a reconnection). The cluster wins: an object whose name an
//! API-made definition already has replaces it (and from then on belongs to the cluster); an
//! API update of a synced definition lasts until the object changes again.
//!
//! **Triggers.** The stored TestTriggers (from the cluster or from `/v1/triggers`,
//! [`crate::triggers::spawn_stored`])
//! go to `assay_kube::triggers`; each that fires queues what [`crate::triggers::run`] says.

use std::collections::BTreeSet;

use assay_kube::Connection;
use assay_kube::crd::{CrdKind, SYNCED_FROM, SyncEvent};
use assay_service::definitions::Definitions;
use assay_service::{DocumentKind, ServiceError};
use serde_json::Value;

use crate::AppState;

/// How `--kubernetes` acts, beyond the connection.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Namespaces besides the connection's that TestTriggers may watch.
    pub trigger_namespaces: Vec<String>,
}

fn document_kind(kind: CrdKind) -> DocumentKind {
    match kind {
        CrdKind::TestWorkflow => DocumentKind::Workflow,
        CrdKind::TestWorkflowTemplate => DocumentKind::Template,
        CrdKind::TestTrigger => DocumentKind::TestTrigger,
    }
}

/// Start CRD mode and the trigger watcher on `conn` over the stored `triggers`
/// ([`crate::triggers::spawn_stored`]); they run as long as the process.
pub fn spawn(
    state: AppState,
    conn: Connection,
    options: Options,
    triggers: tokio::sync::watch::Receiver<Vec<assay_spec::triggers::TestTrigger>>,
) {
    let definitions = Definitions::new(state.store.clone());
    let mut events = assay_kube::crd::spawn_sync(&conn);
    let namespace = conn.namespace.clone();
    let defs = definitions.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            apply(&defs, &namespace, event).await;
        }
    });

    let mut fired = assay_kube::triggers::spawn_watcher(
        &conn,
        options.trigger_namespaces.iter().cloned().collect(),
        triggers,
    );
    tokio::spawn(async move {
        while let Some(f) = fired.recv().await {
            let what = format!("{} {}", f.event.event, f.event.name);
            let data = crate::triggers::EventData {
                object: f.event.object.clone(),
                event: f.event.testkube_event(),
            };
            crate::triggers::run(
                &state,
                &definitions,
                &f.trigger,
                &what,
                &Default::default(),
                &data,
            )
            .await;
        }
    });
}

fn synced(doc: &Value) -> bool {
    doc.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(SYNCED_FROM))
}

/// Apply one change of the cluster to the store.
pub async fn apply(defs: &Definitions, namespace: &str, event: SyncEvent) {
    match event {
        SyncEvent::Applied {
            kind,
            name,
            mut object,
        } => {
            assay_kube::crd::strip_cluster_fields(&mut object, namespace);
            let doc_kind = document_kind(kind);
            let body = serde_json::to_vec(&object).unwrap_or_default();
            let checked = match assay_service::definitions::check(doc_kind, &body, false) {
                Ok(c) => c,
                Err(e) => {
                    let first = match &e {
                        ServiceError::Invalid { problems, .. } => problems
                            .first()
                            .map(|p| format!("{}: {}", p.path.as_deref().unwrap_or(""), p.message))
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    tracing::warn!(kind = kind.as_str(), %namespace, %name, error = %e, first = %first,
                        "a Kubernetes object is not valid: not stored (fix it and apply it again)");
                    return;
                }
            };
            if checked.name != name {
                tracing::warn!(kind = kind.as_str(), %namespace, %name, "the object's name does not check: not stored");
                return;
            }
            let result = match defs.create(doc_kind, &checked).await {
                Err(ServiceError::Conflict(_)) => defs.update(doc_kind, &name, &checked).await,
                other => other,
            };
            match result {
                Ok(()) => {
                    tracing::info!(kind = kind.as_str(), %namespace, %name, "synced from Kubernetes")
                }
                Err(e) => tracing::warn!(kind = kind.as_str(), %namespace, %name, error = %e,
                    "storing a Kubernetes object failed"),
            }
        }
        SyncEvent::Deleted { kind, name } => delete_synced(defs, namespace, kind, &name).await,
        SyncEvent::Listed { kind, names } => {
            let doc_kind = document_kind(kind);
            let stored = match defs.list(doc_kind, "", None).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(kind = kind.as_str(), error = %e, "listing stored definitions failed");
                    return;
                }
            };
            let gone: BTreeSet<String> = stored
                .iter()
                .filter(|d| synced(d))
                .filter_map(|d| d.pointer("/metadata/name")?.as_str().map(str::to_string))
                .filter(|n| !names.contains(n))
                .collect();
            for name in gone {
                delete_synced(defs, namespace, kind, &name).await;
            }
        }
    }
}

async fn delete_synced(defs: &Definitions, namespace: &str, kind: CrdKind, name: &str) {
    let doc_kind = document_kind(kind);
    match defs.get(doc_kind, name).await {
        Ok(doc) if synced(&doc) => match defs.delete(doc_kind, name).await {
            Ok(()) => {
                tracing::info!(kind = kind.as_str(), %namespace, %name, "deleted: its Kubernetes object is gone")
            }
            Err(e) => {
                tracing::warn!(kind = kind.as_str(), %name, error = %e, "deleting a synced definition failed")
            }
        },
        Ok(_) => tracing::info!(kind = kind.as_str(), %name,
            "a Kubernetes object was deleted; the definition of that name was made through the API and stays"),
        Err(_) => {}
    }
}
