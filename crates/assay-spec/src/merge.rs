//! Merging of template parts into workflows and steps, with Testkube's rules
//! (`pkg/testworkflows/testworkflowresolver/merge.go`): the included value wins for scalars,
//! lists are appended, maps are merged key by key, environment variables are deduplicated by
//! name (last wins).

use indexmap::IndexMap;
use serde_json::Value;

use crate::model::{
    ConcurrencyPolicy, ContainerConfig, Content, EnvVar, ExecutionSchema, JobConfig, Opaque,
    SystemConfig, Timeouts,
};

/// `dst` with `include` merged on top of it.
pub fn container(
    dst: Option<ContainerConfig>,
    include: Option<ContainerConfig>,
) -> Option<ContainerConfig> {
    let (mut dst, include) = match (dst, include) {
        (None, x) | (x, None) => return x,
        (Some(d), Some(i)) => (d, i),
    };
    if include.working_dir.is_some() {
        dst.working_dir = include.working_dir;
    }
    if !include.image_pull_policy.is_empty() {
        dst.image_pull_policy = include.image_pull_policy;
    }
    dst.env.extend(include.env);
    dst.env = dedupe_env(dst.env);
    dst.env_from.extend(include.env_from);
    dst.volume_mounts.extend(include.volume_mounts);
    if !include.image.is_empty() {
        dst.image = include.image;
        dst.command = include.command;
        dst.args = include.args;
    } else if include.command.is_some() {
        dst.command = include.command;
        dst.args = include.args;
    } else if include.args.is_some() {
        dst.args = include.args;
    }
    dst.resources = opaque(dst.resources, include.resources);
    dst.security_context = opaque(dst.security_context, include.security_context);
    Some(dst)
}

/// Keep the last definition of each variable, in the position of its first appearance.
pub fn dedupe_env(env: Vec<EnvVar>) -> Vec<EnvVar> {
    let mut out: IndexMap<String, EnvVar> = IndexMap::new();
    for var in env {
        out.insert(var.name.clone(), var);
    }
    out.into_values().collect()
}

pub fn content(dst: Option<Content>, include: Option<Content>) -> Option<Content> {
    let (mut dst, include) = match (dst, include) {
        (None, x) | (x, None) => return x,
        (Some(d), Some(i)) => (d, i),
    };
    dst.files.extend(include.files);
    if include.git.is_some() {
        dst.git = include.git;
    }
    dst.tarball.extend(include.tarball);
    Some(dst)
}

pub fn job(dst: Option<JobConfig>, include: Option<JobConfig>) -> Option<JobConfig> {
    let (mut dst, include) = match (dst, include) {
        (None, x) | (x, None) => return x,
        (Some(d), Some(i)) => (d, i),
    };
    dst.labels.extend(include.labels);
    dst.annotations.extend(include.annotations);
    if !include.namespace.is_empty() {
        dst.namespace = include.namespace;
    }
    if include.active_deadline_seconds.is_some() {
        dst.active_deadline_seconds = include.active_deadline_seconds;
    }
    Some(dst)
}

pub fn execution(
    dst: Option<ExecutionSchema>,
    include: Option<ExecutionSchema>,
) -> Option<ExecutionSchema> {
    let (mut dst, include) = match (dst, include) {
        (None, x) | (x, None) => return x,
        (Some(d), Some(i)) => (d, i),
    };
    dst.tags.extend(include.tags);
    if include.silent.is_some() {
        dst.silent = include.silent;
    }
    if include.target.is_some() {
        dst.target = include.target;
    }
    Some(dst)
}

pub fn concurrency(
    dst: Option<ConcurrencyPolicy>,
    include: Option<ConcurrencyPolicy>,
) -> Option<ConcurrencyPolicy> {
    match (dst, include) {
        (None, x) | (x, None) => x,
        (Some(_), Some(i)) => Some(i),
    }
}

pub fn system(dst: Option<SystemConfig>, include: Option<SystemConfig>) -> Option<SystemConfig> {
    let (mut dst, include) = match (dst, include) {
        (None, x) | (x, None) => return x,
        (Some(d), Some(i)) => (d, i),
    };
    if include.pure_by_default.is_some() {
        dst.pure_by_default = include.pure_by_default;
    }
    if include.isolated_containers.is_some() {
        dst.isolated_containers = include.isolated_containers;
    }
    Some(dst)
}

pub fn timeouts(dst: Option<Timeouts>, include: Option<Timeouts>) -> Option<Timeouts> {
    let (mut dst, include) = match (dst, include) {
        (None, x) | (x, None) => return x,
        (Some(d), Some(i)) => (d, i),
    };
    if !include.queue.is_empty() {
        dst.queue = include.queue;
    }
    if !include.initialization.is_empty() {
        dst.initialization = include.initialization;
    }
    Some(dst)
}

/// Map merge: keys of `include` replace those of `dst`.
pub fn map<V>(mut dst: IndexMap<String, V>, include: IndexMap<String, V>) -> IndexMap<String, V> {
    dst.extend(include);
    dst
}

/// Merge of free-form Kubernetes objects (pod config, resources, security contexts): objects
/// merge key by key, lists append, anything else is replaced by the included value. This is
/// what Testkube's typed merge functions do field by field.
pub fn opaque(dst: Option<Opaque>, include: Option<Opaque>) -> Option<Opaque> {
    match (dst, include) {
        (None, x) | (x, None) => x,
        (Some(d), Some(i)) => Some(deep(d, i)),
    }
}

fn deep(dst: Value, include: Value) -> Value {
    match (dst, include) {
        (Value::Object(mut d), Value::Object(i)) => {
            for (k, v) in i {
                let merged = match d.remove(&k) {
                    Some(old) => deep(old, v),
                    None => v,
                };
                d.insert(k, merged);
            }
            Value::Object(d)
        }
        (Value::Array(mut d), Value::Array(i)) => {
            d.extend(i);
            Value::Array(d)
        }
        (_, i) => i,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    #[test]
    fn container_env_is_deduplicated_last_wins() {
        let a = ContainerConfig {
            env: vec![env("A", "1"), env("B", "1")],
            ..Default::default()
        };
        let b = ContainerConfig {
            env: vec![env("A", "2")],
            ..Default::default()
        };
        let m = container(Some(a), Some(b)).unwrap();
        assert_eq!(m.env, vec![env("A", "2"), env("B", "1")]);
    }

    #[test]
    fn image_replaces_command_and_args() {
        let a = ContainerConfig {
            image: "a".into(),
            command: Some(vec!["x".into()]),
            args: Some(vec!["y".into()]),
            ..Default::default()
        };
        let b = ContainerConfig {
            image: "b".into(),
            ..Default::default()
        };
        let m = container(Some(a.clone()), Some(b)).unwrap();
        assert_eq!(m.image, "b");
        assert_eq!(m.command, None);
        let c = ContainerConfig {
            args: Some(vec!["z".into()]),
            ..Default::default()
        };
        let m = container(Some(a), Some(c)).unwrap();
        assert_eq!(m.command, Some(vec!["x".into()]));
        assert_eq!(m.args, Some(vec!["z".into()]));
    }

    #[test]
    fn opaque_merges_objects_and_appends_lists() {
        let m = opaque(
            Some(json!({"labels": {"a": "1"}, "tolerations": [1], "hostname": "x"})),
            Some(json!({"labels": {"b": "2"}, "tolerations": [2], "hostname": "y"})),
        );
        assert_eq!(
            m,
            Some(json!({"labels": {"a": "1", "b": "2"}, "tolerations": [1, 2], "hostname": "y"}))
        );
    }
}
