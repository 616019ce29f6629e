//! CRD mode: watch the `TestWorkflow`, `TestWorkflowTemplate` (`testworkflows.testkube.io/v1`)
//! and `TestTrigger` (`tests.testkube.io/v1`) objects of one namespace and report what changes
//! as [`SyncEvent`]s, for the server to keep its store in step.
//!
//! Each kind has its own `kube` watcher (list, then watch from the list's resourceVersion,
//! again after every disconnection, with kube's default backoff): a (re)list ends in
//! [`SyncEvent::Listed`] with every name that exists, so what was deleted while nobody watched
//! is noticed then. This module knows nothing of the store: the receiver applies the events.

use std::collections::BTreeSet;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::Connection;

/// The kinds CRD mode syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrdKind {
    TestWorkflow,
    TestWorkflowTemplate,
    TestTrigger,
}

impl CrdKind {
    pub const ALL: [CrdKind; 3] = [
        CrdKind::TestWorkflow,
        CrdKind::TestWorkflowTemplate,
        CrdKind::TestTrigger,
    ];

    /// `(group, version, kind, plural)`.
    pub fn gvk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            CrdKind::TestWorkflow => (
                "testworkflows.testkube.io",
                "v1",
                "TestWorkflow",
                "testworkflows",
            ),
            CrdKind::TestWorkflowTemplate => (
                "testworkflows.testkube.io",
                "v1",
                "TestWorkflowTemplate",
                "testworkflowtemplates",
            ),
            CrdKind::TestTrigger => ("tests.testkube.io", "v1", "TestTrigger", "testtriggers"),
        }
    }

    /// The kind's name (`TestWorkflow`, ...).
    pub fn as_str(self) -> &'static str {
        self.gvk().2
    }

    pub fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = self.gvk();
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        }
    }
}

/// What changed in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    /// An object exists (listed, created or changed): its JSON, as the API server sent it.
    Applied {
        kind: CrdKind,
        name: String,
        object: Value,
    },
    /// An object was deleted.
    Deleted { kind: CrdKind, name: String },
    /// A (re)list is complete: these are all the objects of `kind` that exist.
    Listed {
        kind: CrdKind,
        names: BTreeSet<String>,
    },
}

/// The annotation Assay puts on a definition it stored from the cluster, so that only those
/// are deleted when their object goes. Its value is `NAMESPACE`.
pub const SYNCED_FROM: &str = "assay.io/synced-from-kubernetes";

/// The cluster-side bookkeeping of an object that is not part of the document: dropped before
/// it is checked and stored (a new resourceVersion alone is no new revision).
pub fn strip_cluster_fields(object: &mut Value, namespace: &str) {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
            "finalizers",
            "selfLink",
        ] {
            meta.remove(field);
        }
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(a) = annotations.as_object_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            a.insert(SYNCED_FROM.into(), Value::String(namespace.to_string()));
        }
    }
}

/// Watch the three kinds in the connection's namespace until the receiver is dropped.
pub fn spawn_sync(conn: &Connection) -> mpsc::Receiver<SyncEvent> {
    let (tx, rx) = mpsc::channel(256);
    for kind in CrdKind::ALL {
        let api: Api<DynamicObject> =
            Api::namespaced_with(conn.client.clone(), &conn.namespace, &kind.api_resource());
        let tx = tx.clone();
        let namespace = conn.namespace.clone();
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            let mut listing = BTreeSet::new();
            while let Some(event) = stream.next().await {
                let out = match event {
                    Ok(watcher::Event::Init) => {
                        listing.clear();
                        continue;
                    }
                    Ok(watcher::Event::InitApply(o)) => {
                        let Some(name) = o.metadata.name.clone() else {
                            continue;
                        };
                        listing.insert(name.clone());
                        applied(kind, name, o)
                    }
                    Ok(watcher::Event::InitDone) => SyncEvent::Listed {
                        kind,
                        names: std::mem::take(&mut listing),
                    },
                    Ok(watcher::Event::Apply(o)) => {
                        let Some(name) = o.metadata.name.clone() else {
                            continue;
                        };
                        applied(kind, name, o)
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        let Some(name) = o.metadata.name.clone() else {
                            continue;
                        };
                        SyncEvent::Deleted { kind, name }
                    }
                    Err(e) => {
                        tracing::warn!(kind = kind.as_str(), %namespace, error = %e,
                            "watching the Kubernetes API failed; retrying with backoff");
                        continue;
                    }
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        });
    }
    rx
}

fn applied(kind: CrdKind, name: String, o: DynamicObject) -> SyncEvent {
    let object = serde_json::to_value(&o).unwrap_or(Value::Null);
    SyncEvent::Applied { kind, name, object }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_fields_are_stripped_and_the_origin_recorded() {
        let mut o = serde_json::json!({
            "apiVersion": "testworkflows.testkube.io/v1", "kind": "TestWorkflow",
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "7", "generation": 2,
                "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "x"}},
            "spec": {}, "status": {"x": 1}
        });
        strip_cluster_fields(&mut o, "ns");
        assert_eq!(
            o,
            serde_json::json!({
                "apiVersion": "testworkflows.testkube.io/v1", "kind": "TestWorkflow",
                "metadata": {"name": "a", "annotations": {"keep": "x", "assay.io/synced-from-kubernetes": "ns"}},
                "spec": {}
            })
        );
    }
}
