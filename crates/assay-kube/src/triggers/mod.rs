//! The TestTrigger watcher: for the stored `TestTrigger`s, watch the Kubernetes resources they
//! name, detect Testkube's events on them and report each trigger that fires as a [`Fired`],
//! after its `delay` and once its `conditionSpec` holds. What to run (and `concurrencyPolicy`)
//! is the receiver's business: this module knows nothing of workflows or the store.
//!
//! Testkube's semantics (read from kubeshop/testkube `pkg/triggers`, not copied):
//!
//! - `created` fires only for objects created after the watcher started (their
//!   `creationTimestamp` is not before the start), so a (re)start does not fire for what exists;
//! - `modified` fires when what the kind's "spec" is changed (`spec` for workloads, services and
//!   ingresses; `data`/`binaryData` for config maps): status-only updates do not fire. Pods and
//!   events have no `modified`;
//! - a deployment's `modified` carries causes, each of which a trigger can name as its event:
//!   `deployment-scale-update` (replicas), `deployment-image-update` (a container's image),
//!   `deployment-env-update` (a container's env), `deployment-containers-modified` (any
//!   container or init container), `deployment-generation-modified`,
//!   `deployment-resource-modified` (a new resourceVersion);
//! - `deleted` fires for every deletion seen;
//! - matching: `resource` (the kind), `resourceSelector` (`name`, `namespace`, `nameRegex`,
//!   `namespaceRegex`, `labelSelector`; without name and namespace, the trigger's namespace)
//!   and the older `selector`, a label selector over the object's labels plus Testkube's
//!   `testkube.io/resource-{kind,name,namespace}` event labels.
//!
//! The watchers watch the connection's namespace, and the other namespaces the server was
//! allowed (`--trigger-namespace`): each needs a Role there. A trigger naming a namespace
//! outside those is refused there, with a log line ([`namespaces_of`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use assay_spec::triggers::TestTrigger;
use k8s_openapi::jiff::Timestamp;
use kube::api::ApiResource;
use serde_json::Value;

mod watchers;

pub use watchers::spawn_watcher;

/// The resources a trigger can watch here: `(resource, group, version, kind, plural)`.
/// Testkube's `content` (git) has no Kubernetes object: `assay-server`'s git informer polls those.
pub const WATCHABLE: &[(&str, &str, &str, &str, &str)] = &[
    ("pod", "", "v1", "Pod", "pods"),
    ("deployment", "apps", "v1", "Deployment", "deployments"),
    ("statefulset", "apps", "v1", "StatefulSet", "statefulsets"),
    ("daemonset", "apps", "v1", "DaemonSet", "daemonsets"),
    ("service", "", "v1", "Service", "services"),
    ("ingress", "networking.k8s.io", "v1", "Ingress", "ingresses"),
    ("event", "", "v1", "Event", "events"),
    ("configmap", "", "v1", "ConfigMap", "configmaps"),
];

/// The Kubernetes kind of a trigger's `resource` (`deployment` → `Deployment`).
pub fn kind_of(resource: &str) -> Option<&'static str> {
    WATCHABLE
        .iter()
        .find(|w| w.0.eq_ignore_ascii_case(resource))
        .map(|w| w.3)
}

fn api_resource(resource: &str) -> Option<ApiResource> {
    let (_, group, version, kind, plural) = *WATCHABLE
        .iter()
        .find(|w| w.0.eq_ignore_ascii_case(resource))?;
    Some(ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    })
}

/// One change of a watched object, with Testkube's event type and causes.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    /// The trigger resource (`deployment`).
    pub resource: &'static str,
    /// The object's kind (`Deployment`).
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// `created`, `modified` or `deleted`.
    pub event: &'static str,
    /// For deployments: `deployment-image-update`, ...
    pub causes: Vec<&'static str>,
    /// The object as the event saw it (what `jsonpath=` and `{{ }}` values of the trigger's
    /// `actionParameters` are resolved against), and for `modified` the object before.
    pub object: Value,
    pub old_object: Option<Value>,
}

impl ObjectEvent {
    /// Testkube's shape of a watcher event, what the `jsonpath=` and `{{ }}` values of a
    /// trigger's `actionParameters.target` are resolved against: `namespace`, `object`,
    /// `oldObject` (for `modified`) and `eventLabels` (`testkube.io/resource-kind|name|namespace`).
    pub fn testkube_event(&self) -> Value {
        let mut event = serde_json::json!({
            "namespace": self.namespace,
            "object": self.object,
            "eventLabels": {
                "testkube.io/resource-kind": self.kind,
                "testkube.io/resource-name": self.name,
                "testkube.io/resource-namespace": self.namespace,
            },
        });
        if let (Some(old), Some(map)) = (&self.old_object, event.as_object_mut()) {
            map.insert("oldObject".into(), old.clone());
        }
        event
    }
}

/// A trigger that fired: its delay has passed and its conditions hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub trigger: TestTrigger,
    pub event: ObjectEvent,
}

/// What changed between two versions of an object of `resource`: `None` when nothing that
/// Testkube looks at did (no `modified`), else the causes.
pub fn diff(resource: &str, old: &Value, new: &Value) -> Option<Vec<&'static str>> {
    match resource {
        "pod" | "event" => None,
        "configmap" => (old.get("data") != new.get("data")
            || old.get("binaryData") != new.get("binaryData"))
        .then(Vec::new),
        "deployment" => {
            if old.get("spec") == new.get("spec") {
                return None;
            }
            Some(deployment_causes(old, new))
        }
        _ => (old.get("spec") != new.get("spec")).then(Vec::new),
    }
}

fn deployment_causes(old: &Value, new: &Value) -> Vec<&'static str> {
    let mut causes = Vec::new();
    let replicas = |v: &Value| v.pointer("/spec/replicas").cloned();
    if replicas(old) != replicas(new) {
        causes.push("deployment-scale-update");
    }
    let containers = |v: &Value| -> BTreeMap<String, Value> {
        ["initContainers", "containers"]
            .iter()
            .flat_map(|key| {
                v.pointer(&format!("/spec/template/spec/{key}"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|c| {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                (name, c)
            })
            .collect()
    };
    let (before, after) = (containers(old), containers(new));
    if before != after {
        causes.push("deployment-containers-modified");
    }
    let mut image = false;
    let mut env = false;
    for (name, c) in &after {
        if let Some(o) = before.get(name) {
            image |= o.get("image") != c.get("image");
            env |= o.get("env") != c.get("env");
        }
    }
    if image {
        causes.push("deployment-image-update");
    }
    if env {
        causes.push("deployment-env-update");
    }
    let at = |v: &Value, p: &str| v.pointer(p).cloned();
    if at(old, "/metadata/generation") != at(new, "/metadata/generation") {
        causes.push("deployment-generation-modified");
    }
    if at(old, "/metadata/resourceVersion") != at(new, "/metadata/resourceVersion") {
        causes.push("deployment-resource-modified");
    }
    causes
}

/// Whether a Kubernetes `LabelSelector` (`matchLabels`, `matchExpressions`) picks `labels`.
/// An unreadable selector picks nothing.
pub fn label_selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    if let Some(m) = selector.get("matchLabels") {
        let Some(m) = m.as_object() else {
            return false;
        };
        for (k, v) in m {
            if labels.get(k).map(String::as_str) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(exprs) = selector.get("matchExpressions") {
        let Some(exprs) = exprs.as_array() else {
            return false;
        };
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let value = labels.get(key).map(String::as_str);
            let ok = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

fn is_empty_selector(selector: &Option<Value>) -> bool {
    match selector {
        None | Some(Value::Null) => true,
        Some(s) => {
            let empty = |k: &str| {
                s.get(k).is_none_or(|v| {
                    v.as_object().is_some_and(|o| o.is_empty())
                        || v.as_array().is_some_and(|a| a.is_empty())
                        || v.is_null()
                })
            };
            empty("matchLabels") && empty("matchExpressions")
        }
    }
}

fn regex_matches(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text))
}

/// The namespace a trigger lives in (its own, else the server's).
fn trigger_namespace<'a>(t: &'a TestTrigger, default: &'a str) -> &'a str {
    t.metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(default)
}

/// Whether trigger `t` fires on `e` (Testkube's v1 matching; `namespace`: the server's).
pub fn matches(t: &TestTrigger, e: &ObjectEvent, namespace: &str) -> bool {
    let s = &t.spec;
    if s.disabled || s.execution != "testworkflow" || s.action != "run" {
        return false;
    }
    if s.event != e.event && !e.causes.iter().any(|c| *c == s.event) {
        return false;
    }
    let sel = s.resource_selector.clone().unwrap_or_default();
    let has_selector = !sel.name_regex.is_empty()
        || !sel.namespace_regex.is_empty()
        || !is_empty_selector(&sel.label_selector);
    let has_criteria = has_selector || !sel.name.is_empty() || !sel.namespace.is_empty();
    let own_ns = trigger_namespace(t, namespace);
    let criteria = || {
        if !sel.name.is_empty() && sel.name != e.name {
            return false;
        }
        if !sel.namespace.is_empty() && sel.namespace != e.namespace {
            return false;
        }
        if sel.name.is_empty() && sel.namespace.is_empty() && own_ns != e.namespace && !has_selector
        {
            return false;
        }
        if !has_selector {
            return true;
        }
        if let Some(ls) = sel
            .label_selector
            .as_ref()
            .filter(|_| !is_empty_selector(&sel.label_selector))
        {
            if !label_selector_matches(ls, &e.labels) {
                return false;
            }
            if sel.name_regex.is_empty() && sel.namespace_regex.is_empty() {
                return true;
            }
        }
        let name_ok = sel.name_regex.is_empty() || regex_matches(&sel.name_regex, &e.name);
        let ns_ok = if sel.namespace_regex.is_empty() {
            own_ns == e.namespace
        } else {
            regex_matches(&sel.namespace_regex, &e.namespace)
        };
        name_ok && ns_ok
    };
    if !is_empty_selector(&s.selector) {
        let mut merged = e.labels.clone();
        merged.insert("testkube.io/resource-kind".into(), e.kind.into());
        merged.insert("testkube.io/resource-name".into(), e.name.clone());
        merged.insert("testkube.io/resource-namespace".into(), e.namespace.clone());
        let picked = s
            .selector
            .as_ref()
            .is_some_and(|sel| label_selector_matches(sel, &merged));
        return picked && (!has_criteria || criteria());
    }
    if !s.resource.eq_ignore_ascii_case(e.resource) {
        return false;
    }
    criteria()
}

fn labels_of(o: &Value) -> BTreeMap<String, String> {
    o.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn event_of(
    resource: &'static str,
    o: &Value,
    old: Option<&Value>,
    event: &'static str,
    causes: Vec<&'static str>,
) -> ObjectEvent {
    let text = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    ObjectEvent {
        resource,
        kind: kind_of(resource).unwrap_or(""),
        name: text("/metadata/name"),
        namespace: text("/metadata/namespace"),
        labels: labels_of(o),
        event,
        causes,
        object: o.clone(),
        old_object: old.cloned(),
    }
}

/// The events of one watch event, given the objects seen so far (kept up to date). `start`:
/// when watching began; objects created before it are not `created`.
pub fn track(
    resource: &'static str,
    seen: &mut HashMap<String, Value>,
    start: Timestamp,
    change: WatchChange,
) -> Vec<ObjectEvent> {
    let created_after_start = |o: &Value| {
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|t| t >= start)
    };
    let name_of = |o: &Value| {
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match change {
        WatchChange::Apply(o) => {
            let name = name_of(&o);
            let out = match seen.get(&name) {
                None if created_after_start(&o) => {
                    vec![event_of(resource, &o, None, "created", vec![])]
                }
                None => vec![],
                Some(old) => match diff(resource, old, &o) {
                    Some(causes) => vec![event_of(resource, &o, Some(old), "modified", causes)],
                    None => vec![],
                },
            };
            seen.insert(name, o);
            out
        }
        WatchChange::Delete(o) => {
            seen.remove(&name_of(&o));
            vec![event_of(resource, &o, None, "deleted", vec![])]
        }
        WatchChange::Relisted(objects) => {
            // What changed while nobody watched (a reconnection): compare with what was seen.
            let now: HashMap<String, Value> =
                objects.into_iter().map(|o| (name_of(&o), o)).collect();
            let mut out = Vec::new();
            for (name, old) in seen.iter() {
                if !now.contains_key(name) {
                    out.push(event_of(resource, old, None, "deleted", vec![]));
                }
            }
            for (name, o) in &now {
                match seen.get(name) {
                    None if created_after_start(o) => {
                        out.push(event_of(resource, o, None, "created", vec![]))
                    }
                    None => {}
                    Some(old) => {
                        if let Some(causes) = diff(resource, old, o) {
                            out.push(event_of(resource, o, Some(old), "modified", causes));
                        }
                    }
                }
            }
            *seen = now;
            out
        }
    }
}

/// One change as [`track`] takes it.
#[derive(Debug, Clone)]
pub enum WatchChange {
    Apply(Value),
    Delete(Value),
    /// A complete (re)list.
    Relisted(Vec<Value>),
}

/// The kinds a trigger's events can be of: its `resource`, or for the older `selector` alone
/// the kind its `testkube.io/resource-kind` label names (every kind without one). `None`: a
/// resource that cannot be watched (git `content`).
fn kinds_of(t: &TestTrigger) -> Option<Vec<&'static str>> {
    if let Some(w) = WATCHABLE
        .iter()
        .find(|w| w.0.eq_ignore_ascii_case(&t.spec.resource))
    {
        return Some(vec![w.0]);
    }
    if is_empty_selector(&t.spec.selector) {
        return None;
    }
    let kind = t
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.pointer("/matchLabels/testkube.io~1resource-kind"))
        .and_then(Value::as_str);
    Some(
        WATCHABLE
            .iter()
            .filter(|w| kind.is_none_or(|k| k.eq_ignore_ascii_case(w.3)))
            .map(|w| w.0)
            .collect(),
    )
}

/// The namespaces a trigger's events can come from, split into those `allowed` (watched) and
/// those refused: `resourceSelector.namespace`; else the allowed namespaces its
/// `namespaceRegex` matches; else the older `selector`'s `testkube.io/resource-namespace`;
/// else the trigger's own namespace (`server`'s when it has none).
pub fn namespaces_of(
    t: &TestTrigger,
    server: &str,
    allowed: &BTreeSet<String>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let sel = t.spec.resource_selector.clone().unwrap_or_default();
    let wanted: BTreeSet<String> = if !sel.namespace.is_empty() {
        [sel.namespace].into()
    } else if !sel.namespace_regex.is_empty() {
        // A regex picks among the allowed namespaces: nothing to refuse.
        return (
            allowed
                .iter()
                .filter(|n| regex_matches(&sel.namespace_regex, n))
                .cloned()
                .collect(),
            BTreeSet::new(),
        );
    } else if let Some(ns) = t
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.pointer("/matchLabels/testkube.io~1resource-namespace"))
        .and_then(Value::as_str)
    {
        [ns.to_string()].into()
    } else {
        [trigger_namespace(t, server).to_string()].into()
    };
    wanted.into_iter().partition(|n| allowed.contains(n))
}

/// Whether the object's `status.conditions` satisfy every wanted condition (`type`, `status`,
/// `reason`, `ttl`: at most that many seconds since its last transition).
pub fn conditions_match(wanted: &[Value], object: &Value, now: Timestamp) -> bool {
    let have: HashMap<&str, &Value> = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| Some((c.get("type")?.as_str()?, c)))
                .collect()
        })
        .unwrap_or_default();
    wanted.iter().all(|w| {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let Some(c) = text(w, "type").and_then(|t| have.get(t.as_str()).copied()) else {
            return false;
        };
        let (Some(want), Some(is)) = (text(w, "status"), text(c, "status")) else {
            return false;
        };
        if want != is {
            return false;
        }
        if let Some(reason) = text(w, "reason").filter(|r| !r.is_empty())
            && text(c, "reason").as_deref() != Some(reason.as_str())
        {
            return false;
        }
        if let Some(ttl) = w.get("ttl").and_then(Value::as_i64).filter(|t| *t != 0) {
            let age = text(c, "lastTransitionTime")
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| now.as_second() - t.as_second())
                .unwrap_or(i64::MAX);
            if ttl < age {
                return false;
            }
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: u32, rv: &str) -> Value {
        json!({"metadata": {"name": "web", "namespace": "ns", "resourceVersion": rv, "generation": 1,
                "labels": {"app": "web"}, "creationTimestamp": "2030-01-01T00:00:00Z"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                   {"name": "app", "image": image}]}}}})
    }

    fn trigger(yaml: &str) -> TestTrigger {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn deployment_causes_follow_testkube() {
        let old = deployment("a:1", 1, "1");
        assert_eq!(
            diff("deployment", &old, &deployment("a:2", 1, "2")),
            Some(vec![
                "deployment-containers-modified",
                "deployment-image-update",
                "deployment-resource-modified"
            ])
        );
        assert_eq!(
            diff("deployment", &old, &deployment("a:1", 3, "2")),
            Some(vec![
                "deployment-scale-update",
                "deployment-resource-modified"
            ])
        );
        let mut status_only = old.clone();
        status_only["status"] = json!({"ready": 1});
        status_only["metadata"]["resourceVersion"] = json!("9");
        assert_eq!(diff("deployment", &old, &status_only), None);
    }

    #[test]
    fn created_only_after_the_start_and_relists_catch_up() {
        let start: Timestamp = "2029-01-01T00:00:00Z".parse().unwrap();
        let mut seen = HashMap::new();
        let mut old = deployment("a:1", 1, "1");
        old["metadata"]["creationTimestamp"] = json!("2028-01-01T00:00:00Z");
        assert!(
            track(
                "deployment",
                &mut seen,
                start,
                WatchChange::Relisted(vec![old.clone()])
            )
            .is_empty()
        );
        let fresh = json!({"metadata": {"name": "new", "namespace": "ns", "creationTimestamp": "2030-01-01T00:00:00Z"}, "spec": {}});
        let events = track(
            "deployment",
            &mut seen,
            start,
            WatchChange::Relisted(vec![fresh]),
        );
        let kinds: Vec<_> = events.iter().map(|e| (e.event, e.name.as_str())).collect();
        assert!(
            kinds.contains(&("deleted", "web")) && kinds.contains(&("created", "new")),
            "{kinds:?}"
        );
    }

    #[test]
    fn matching_follows_testkube() {
        let t = trigger(
            "apiVersion: tests.testkube.io/v1\nmetadata: {name: t}\nspec:\n  resource: deployment\n  resourceSelector: {labelSelector: {matchLabels: {app: web}}}\n  event: deployment-image-update\n  action: run\n  execution: testworkflow\n  testSelector: {name: w}\n",
        );
        let mut e = event_of(
            "deployment",
            &deployment("a:2", 1, "2"),
            Some(&deployment("a:1", 1, "1")),
            "modified",
            vec!["deployment-image-update"],
        );
        assert!(matches(&t, &e, "ns"));
        e.labels.insert("app".into(), "other".into());
        assert!(!matches(&t, &e, "ns"));
        let by_name = trigger(
            "apiVersion: tests.testkube.io/v1\nmetadata: {name: t}\nspec:\n  resource: deployment\n  resourceSelector: {name: web}\n  event: created\n  action: run\n  execution: testworkflow\n  testSelector: {name: w}\n",
        );
        let created = event_of(
            "deployment",
            &deployment("a:1", 1, "1"),
            None,
            "created",
            vec![],
        );
        assert!(matches(&by_name, &created, "ns"));
        let mut other = created.clone();
        other.name = "api".into();
        assert!(!matches(&by_name, &other, "ns"));
        let legacy = trigger(
            "apiVersion: tests.testkube.io/v1\nmetadata: {name: t}\nspec:\n  selector: {matchLabels: {testkube.io/resource-kind: Deployment}}\n  event: created\n  action: run\n  execution: testworkflow\n  testSelector: {name: w}\n",
        );
        assert!(matches(&legacy, &created, "ns"));
    }

    #[test]
    fn conditions() {
        let now: Timestamp = "2030-01-01T00:01:00Z".parse().unwrap();
        let o = json!({"status": {"conditions": [{"type": "Available", "status": "True", "reason": "Ok",
            "lastTransitionTime": "2030-01-01T00:00:00Z"}]}});
        assert!(conditions_match(
            &[json!({"type": "Available", "status": "True"})],
            &o,
            now
        ));
        assert!(!conditions_match(
            &[json!({"type": "Available", "status": "False"})],
            &o,
            now
        ));
        assert!(!conditions_match(
            &[json!({"type": "Available", "status": "True", "ttl": 30})],
            &o,
            now
        ));
        assert!(conditions_match(
            &[json!({"type": "Available", "status": "True", "ttl": 90, "reason": "Ok"})],
            &o,
            now
        ));
        assert!(!conditions_match(
            &[json!({"type": "Progressing", "status": "True"})],
            &o,
            now
        ));
    }

    #[test]
    fn namespaces_are_watched_where_allowed_and_refused_elsewhere() {
        let allowed: BTreeSet<String> = ["assay", "shop", "shop-eu"].map(String::from).into();
        let t = |selector: &str, own: &str| {
            trigger(&format!(
                "apiVersion: tests.testkube.io/v1\nmetadata: {{name: t{own}}}\nspec:\n  resource: deployment\n  {selector}\n  event: created\n  action: run\n  execution: testworkflow\n  testSelector: {{name: w}}\n"
            ))
        };
        let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
        assert_eq!(
            namespaces_of(
                &t("resourceSelector: {namespace: shop}", ""),
                "assay",
                &allowed
            ),
            (set(&["shop"]), set(&[]))
        );
        assert_eq!(
            namespaces_of(
                &t("resourceSelector: {namespace: bank}", ""),
                "assay",
                &allowed
            ),
            (set(&[]), set(&["bank"])),
            "not allowed: refused"
        );
        assert_eq!(
            namespaces_of(
                &t("resourceSelector: {namespaceRegex: '^shop'}", ""),
                "assay",
                &allowed
            ),
            (set(&["shop", "shop-eu"]), set(&[])),
            "a regex picks among the allowed"
        );
        assert_eq!(
            namespaces_of(&t("resourceSelector: {name: web}", ""), "assay", &allowed),
            (set(&["assay"]), set(&[])),
            "the server's"
        );
        let mut own = t("resourceSelector: {name: web}", "");
        own.metadata.namespace = Some("bank".into());
        assert_eq!(
            namespaces_of(&own, "assay", &allowed),
            (set(&[]), set(&["bank"])),
            "the trigger's own"
        );
        let legacy = trigger(
            "apiVersion: tests.testkube.io/v1\nmetadata: {name: t}\nspec:\n  selector: {matchLabels: {testkube.io/resource-namespace: shop}}\n  event: created\n  action: run\n  execution: testworkflow\n  testSelector: {name: w}\n",
        );
        assert_eq!(
            namespaces_of(&legacy, "assay", &allowed),
            (set(&["shop"]), set(&[]))
        );
    }
}
