//! The watchers themselves: a task per watched resource kind and namespace that lists and
//! watches it, turns what it sees into [`ObjectEvent`]s, and fires the matching triggers after
//! their `delay` once their `conditionSpec` holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use assay_spec::triggers::TestTrigger;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::Connection;

use super::{
    Fired, ObjectEvent, WatchChange, api_resource, conditions_match, kinds_of, matches,
    namespaces_of, track,
};

/// Watch what the triggers in `triggers` name, in the namespaces of `allowed` (the
/// connection's is always one), and send each trigger that fires. Watchers (one per kind and
/// namespace) start and stop as the triggers change; a trigger that names a namespace outside
/// `allowed` is refused there, and the log says so.
pub fn spawn_watcher(
    conn: &Connection,
    allowed: BTreeSet<String>,
    mut triggers: watch::Receiver<Vec<TestTrigger>>,
) -> mpsc::Receiver<Fired> {
    let (tx, rx) = mpsc::channel(256);
    let conn = conn.clone();
    let mut allowed = allowed;
    allowed.insert(conn.namespace.clone());
    tokio::spawn(async move {
        let mut running: BTreeMap<(&'static str, String), JoinHandle<()>> = BTreeMap::new();
        let mut warned: BTreeSet<String> = BTreeSet::new();
        let mut refused_before: BTreeSet<(String, String)> = BTreeSet::new();
        loop {
            let current = triggers.borrow_and_update().clone();
            let mut wanted: BTreeSet<(&'static str, String)> = BTreeSet::new();
            let mut refused_now: BTreeSet<(String, String)> = BTreeSet::new();
            // Git `content` triggers are the git informer's (assay-server), not a watch's.
            for t in current
                .iter()
                .filter(|t| !t.spec.disabled && t.spec.resource != "content")
            {
                let Some(kinds) = kinds_of(t) else {
                    if warned.insert(t.metadata.name.clone()) {
                        tracing::warn!(trigger = %t.metadata.name, resource = %t.spec.resource,
                            "this TestTrigger's resource cannot be watched here");
                    }
                    continue;
                };
                let (namespaces, refused) = namespaces_of(t, &conn.namespace, &allowed);
                for ns in refused {
                    let key = (t.metadata.name.clone(), ns.clone());
                    if !refused_before.contains(&key) {
                        tracing::warn!(trigger = %t.metadata.name, namespace = %ns,
                            allowed = ?allowed,
                            "this TestTrigger watches a namespace this server may not: refused there \
                             (hint: start the server with --trigger-namespace {ns} and give its \
                             ServiceAccount a Role in {ns}, see the README)");
                    }
                    refused_now.insert(key);
                }
                for kind in kinds {
                    for ns in &namespaces {
                        wanted.insert((kind, ns.clone()));
                    }
                }
            }
            refused_before = refused_now;
            running.retain(|key, task| {
                let keep = wanted.contains(key);
                if !keep {
                    task.abort();
                }
                keep
            });
            for key in wanted {
                if let std::collections::btree_map::Entry::Vacant(slot) = running.entry(key) {
                    let (resource, namespace) = slot.key().clone();
                    slot.insert(tokio::spawn(watch_resource(
                        conn.clone(),
                        resource,
                        namespace,
                        triggers.clone(),
                        tx.clone(),
                    )));
                }
            }
            if triggers.changed().await.is_err() || tx.is_closed() {
                for task in running.values() {
                    task.abort();
                }
                return;
            }
        }
    });
    rx
}

async fn watch_resource(
    conn: Connection,
    resource: &'static str,
    namespace: String,
    triggers: watch::Receiver<Vec<TestTrigger>>,
    tx: mpsc::Sender<Fired>,
) {
    let Some(ar) = api_resource(resource) else {
        return;
    };
    let api: Api<DynamicObject> = Api::namespaced_with(conn.client.clone(), &namespace, &ar);
    // To the second, as creationTimestamps are: an object created in the second the watcher
    // started (and not in its first list) is new.
    let start =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let mut seen: HashMap<String, Value> = HashMap::new();
    let probes = crate::probes::client();
    let mut listed_once = false;
    let mut listing: Option<Vec<Value>> = None;
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    tracing::info!(resource, %namespace, "watching for TestTriggers");
    // (then "TestTrigger watcher listed" once the first list is in: events count from there)
    while let Some(event) = stream.next().await {
        let json = |o: DynamicObject| serde_json::to_value(o).unwrap_or(Value::Null);
        let change = match event {
            Ok(watcher::Event::Init) => {
                listing = Some(Vec::new());
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => {
                listing.get_or_insert_with(Vec::new).push(json(o));
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                let objects = listing.take().unwrap_or_default();
                tracing::info!(
                    resource,
                    %namespace,
                    objects = objects.len(),
                    "TestTrigger watcher listed"
                );
                if !listed_once {
                    // What the first list holds existed before: never `created`.
                    listed_once = true;
                    seen = objects
                        .into_iter()
                        .map(|o| {
                            (
                                o.pointer("/metadata/name")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                                o,
                            )
                        })
                        .collect();
                    continue;
                }
                WatchChange::Relisted(objects)
            }
            Ok(watcher::Event::Apply(o)) => WatchChange::Apply(json(o)),
            Ok(watcher::Event::Delete(o)) => WatchChange::Delete(json(o)),
            Err(e) => {
                tracing::warn!(resource, %namespace, error = %e, "watching for TestTriggers failed; retrying with backoff");
                continue;
            }
        };
        for event in track(resource, &mut seen, start, change) {
            let firing: Vec<TestTrigger> = triggers
                .borrow()
                .iter()
                .filter(|t| matches(t, &event, &conn.namespace))
                .cloned()
                .collect();
            for trigger in firing {
                tracing::info!(trigger = %trigger.metadata.name, event = event.event,
                    causes = ?event.causes, resource, object = %event.name, "TestTrigger matched");
                tokio::spawn(fire(
                    api.clone(),
                    probes.clone(),
                    trigger,
                    event.clone(),
                    tx.clone(),
                ));
            }
        }
    }
}

/// Wait out the trigger's `delay`, its `conditionSpec` and its `probeSpec` (in Testkube's
/// order), then send it.
async fn fire(
    api: Api<DynamicObject>,
    probes: reqwest::Client,
    trigger: TestTrigger,
    event: ObjectEvent,
    tx: mpsc::Sender<Fired>,
) {
    if let Some(delay) = trigger
        .spec
        .delay
        .as_deref()
        .and_then(|d| assay_spec::duration::parse_duration(d).ok())
    {
        tokio::time::sleep(delay).await;
    }
    if let Some(spec) = trigger.spec.condition_spec.as_ref()
        && spec
            .get("conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty())
        && !conditions_hold(&api, &event.name, spec).await
    {
        tracing::warn!(trigger = %trigger.metadata.name, object = %event.name,
            "the TestTrigger's conditions did not hold before its timeout; not running");
        return;
    }
    if let Some(spec) = trigger.spec.probe_spec.as_ref()
        && !spec.probes.is_empty()
    {
        let address = || async {
            let o = api.get(&event.name).await.ok()?;
            crate::probes::default_host(event.resource, &serde_json::to_value(o).ok()?)
        };
        if let Err(last) = crate::probes::wait_for(&probes, spec, address).await {
            tracing::warn!(trigger = %trigger.metadata.name, object = %event.name, last = %last,
                "the TestTrigger's probes did not succeed before its timeout; not running");
            return;
        }
        tracing::info!(trigger = %trigger.metadata.name, object = %event.name, "the TestTrigger's probes succeeded");
    }
    let _ = tx.send(Fired { trigger, event }).await;
}

/// Poll the object's `status.conditions` every `delay` seconds (default 1) until every
/// condition of `spec` holds, for at most `timeout` seconds (default 60), as Testkube does.
async fn conditions_hold(api: &Api<DynamicObject>, name: &str, spec: &Value) -> bool {
    let secs = |k: &str, default: u64| {
        spec.get(k)
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs("timeout", 60));
    let every = Duration::from_secs(secs("delay", 1));
    let wanted = spec
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    loop {
        if let Ok(o) = api.get(name).await
            && conditions_match(
                &wanted,
                &serde_json::to_value(o).unwrap_or(Value::Null),
                Timestamp::now(),
            )
        {
            return true;
        }
        if tokio::time::Instant::now() + every > deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}
