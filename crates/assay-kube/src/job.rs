//! An execution as Kubernetes objects (pure): ONE Job whose pod runs the plan's steps in
//! order, as Testkube does, and a Secret holding what the pod needs to run it (the agent's
//! [`AgentWork`]: the plan, sensitive values, environment).
//!
//! The pod: an init container (`assay-init`, the image holding the `assay` binary) copies
//! that binary into the `assay-bin` volume; the main container (`run`) has the plan's image
//! and runs `/.assay/bin/assay pod run`, which runs the engine there and reports on stdout
//! ([`crate::podlog`]). Volumes: `data` (an emptyDir at `/data`), `outputs` (an emptyDir at
//! `/testkube/outputs`), `work` (the Secret, read-only, mode 0400) and the plan's own
//! (`pod.volumes`; each `pvcs` entry as an ephemeral volume whose claim is made and deleted
//! with the pod).
//!
//! The plan's `job` (`labels`, `annotations`, `activeDeadlineSeconds`) and `pod` (`labels`,
//! `annotations`, and the rest as pod spec fields: `serviceAccountName`, `nodeSelector`,
//! `tolerations`, `securityContext`, `volumes`, …) are applied as written; Assay's own fields
//! win where they must (containers, restart policy, its labels and volume names). The
//! container's `resources` and `securityContext` are the first ones the plan's processes
//! give (the workflow's container defaults reach every process).

use std::collections::BTreeMap;

use assay_api::agents::AgentWork;
use assay_spec::plan::{Plan, PlanProcess, PlanStep};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Map, Value, json};

use crate::labels;

/// Where the binary is copied to in the pod.
pub const BIN: &str = "/.assay/bin/assay";
/// Where the Secret's `work.json` is mounted.
pub const WORK_FILE: &str = "/.assay/work/work.json";
/// The name of the main container (whose log the agent follows).
pub const CONTAINER: &str = "run";
/// The key of the work file in the Secret.
pub const WORK_KEY: &str = "work.json";

/// What the agent decides for every Job it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    pub namespace: String,
    /// The agent's name (a label on everything, for its sweep).
    pub agent: String,
    /// The image holding the `assay` binary (init container; the main one when the plan names
    /// no image).
    pub image: String,
    /// Seconds a finished Job (and its Secret, through its owner) is kept.
    pub ttl_seconds: i32,
}

/// Why an execution cannot become a Job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error(
        "the workflow names several images ({}): the Kubernetes runtime runs an execution in one container for now\n\nhint: give every step, service and worker the same image (e.g. in the workflow's `container`), or run it with a host or container agent",
        .0.join(", ")
    )]
    SeveralImages(Vec<String>),
    #[error("the workflow's {field} is not usable in a Kubernetes Job: {reason}\n\nhint: {hint}")]
    Field {
        field: String,
        reason: String,
        hint: String,
    },
    #[error("the plan handed to the agent is unreadable: {0}")]
    Plan(String),
}

fn field_error(field: &str, reason: impl std::fmt::Display, hint: &str) -> JobError {
    JobError::Field {
        field: field.to_string(),
        reason: reason.to_string(),
        hint: hint.to_string(),
    }
}

/// The name of an execution's Job and Secret: `assay-exec-` and the first 12 letters and
/// digits of its id (ids are UUID v7, whose first characters are time: unique enough for the
/// executions of one agent, and the API server refuses a duplicate name anyway).
pub fn object_name(id: &str) -> String {
    let short: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    // v7 UUIDs share their leading (time) characters for a while: take the end too.
    let short = if short.len() > 20 {
        format!("{}{}", &short[..8], &short[short.len() - 12..])
    } else {
        short
    };
    format!("assay-exec-{short}")
}

/// `text` as a valid label value (at most 63 characters of `[A-Za-z0-9._-]`, starting and
/// ending with a letter or digit): the same text always gives the same value.
pub fn label_value(text: &str) -> String {
    let mut v: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    while v.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        v.pop();
    }
    while v.starts_with(|c: char| !c.is_ascii_alphanumeric()) {
        v.remove(0);
    }
    v
}

/// The labels of an execution's objects.
pub fn object_labels(work: &AgentWork, settings: &JobSettings) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::MANAGED_BY.to_string(), labels::ASSAY.to_string()),
        (labels::EXECUTION.to_string(), label_value(&work.id)),
        (labels::AGENT.to_string(), label_value(&settings.agent)),
    ])
}

/// The label selector of everything an agent made.
pub fn agent_selector(agent: &str) -> String {
    format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::ASSAY,
        labels::AGENT,
        label_value(agent)
    )
}

/// The processes of a plan (steps, services, parallel workers), in order.
fn processes(step: &PlanStep, out: &mut Vec<PlanProcess>) {
    out.extend(step.commands.iter().cloned());
    for service in &step.services {
        for instance in service.instances.iter().flatten() {
            out.push(instance.process.clone());
        }
        if let Some(t) = &service.template {
            out.push(t.process.clone());
        }
    }
    if let Some(p) = &step.parallel {
        for w in p.workers.iter().flatten() {
            processes(&w.root, out);
        }
        if let Some(t) = &p.worker {
            processes(&t.root, out);
        }
    }
    for s in &step.steps {
        processes(s, out);
    }
}

/// The one image the plan runs in (`None`: it names none), or the refusal.
pub fn plan_image(plan: &Plan) -> Result<Option<String>, JobError> {
    let mut all = Vec::new();
    processes(&plan.root, &mut all);
    let mut images: Vec<String> = all.iter().filter_map(|p| p.image.clone()).collect();
    images.sort();
    images.dedup();
    match images.len() {
        0 => Ok(None),
        1 => Ok(images.pop()),
        _ => Err(JobError::SeveralImages(images)),
    }
}

/// The Job of an execution (without its Secret, which the agent makes once the Job has a uid:
/// see [`secret`]).
pub fn job(work: &AgentWork, settings: &JobSettings) -> Result<Job, JobError> {
    let plan: Plan =
        serde_json::from_value(work.plan.clone()).map_err(|e| JobError::Plan(e.to_string()))?;
    let image = plan_image(&plan)?;
    let mut all = Vec::new();
    processes(&plan.root, &mut all);
    let name = object_name(&work.id);
    let ours = object_labels(work, settings);
    let extras = plan.kubernetes.clone().unwrap_or_default();

    // The plan's pod: labels and annotations to the pod's metadata, the rest to its spec.
    let mut pod_spec = match extras.pod.clone() {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(field_error(
                "pod",
                format!("it is {other}, not a mapping"),
                "`pod` holds pod settings: serviceAccountName, nodeSelector, securityContext, volumes, …",
            ));
        }
    };
    let pod_labels = take_map(&mut pod_spec, "pod.labels")?;
    let pod_annotations = take_map(&mut pod_spec, "pod.annotations")?;
    let mut job_config = match extras.job.clone() {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(field_error(
                "job",
                format!("it is {other}, not a mapping"),
                "`job` holds labels, annotations and activeDeadlineSeconds",
            ));
        }
    };
    let job_labels = take_map(&mut job_config, "job.labels")?;
    let job_annotations = take_map(&mut job_config, "job.annotations")?;
    // The agent's namespace is where it may create objects: a workflow cannot move its Job.
    job_config.remove("namespace");
    let deadline = job_config
        .remove("activeDeadlineSeconds")
        .or_else(|| plan.deadline_ms.map(|ms| json!(ms.div_ceil(1000))));
    if let Some(k) = job_config.keys().next() {
        return Err(field_error(
            &format!("job.{k}"),
            "Testkube's job settings are labels, annotations, namespace and activeDeadlineSeconds",
            "move pod settings to `pod`",
        ));
    }

    // Volumes: Assay's, then the plan's own and its pvcs (ephemeral claims).
    let mut volumes = vec![
        json!({"name": "assay-bin", "emptyDir": {}}),
        json!({"name": "work", "secret": {"secretName": name, "defaultMode": 0o400}}),
        json!({"name": "outputs", "emptyDir": {}}),
    ];
    let mounts_of_plan: Vec<Value> = {
        let mut seen = Vec::new();
        for m in all.iter().flat_map(|p| p.volume_mounts.iter()) {
            if !seen.contains(m) {
                seen.push(m.clone());
            }
        }
        seen
    };
    let data_given = mounts_of_plan
        .iter()
        .any(|m| m.get("mountPath").and_then(Value::as_str) == Some("/data"));
    if !data_given {
        volumes.push(json!({"name": "data", "emptyDir": {}}));
    }
    let reserved: Vec<String> = volumes
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    match pod_spec.remove("volumes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for v in list {
                let vname = v.get("name").and_then(Value::as_str).unwrap_or_default();
                if reserved.iter().any(|r| r == vname) {
                    return Err(field_error(
                        "pod.volumes",
                        format!("the volume name `{vname}` is Assay's own"),
                        "rename the volume (Assay uses assay-bin, work, outputs and data)",
                    ));
                }
                volumes.push(v);
            }
        }
        Some(other) => {
            return Err(field_error(
                "pod.volumes",
                format!("it is {other}, not a list"),
                "give a list of volumes",
            ));
        }
    }
    for (pvc, spec) in &extras.pvcs {
        if reserved.iter().any(|r| r == pvc) {
            return Err(field_error(
                &format!("pvcs.{pvc}"),
                "the name is one of Assay's own volumes",
                "rename the claim (Assay uses assay-bin, work, outputs and data)",
            ));
        }
        volumes.push(json!({
            "name": pvc,
            "ephemeral": {"volumeClaimTemplate": {"spec": spec}},
        }));
    }

    let mut mounts = vec![
        json!({"name": "assay-bin", "mountPath": "/.assay/bin", "readOnly": true}),
        json!({"name": "work", "mountPath": "/.assay/work", "readOnly": true}),
        json!({"name": "outputs", "mountPath": "/testkube/outputs"}),
    ];
    if !data_given {
        mounts.push(json!({"name": "data", "mountPath": "/data"}));
    }
    mounts.extend(mounts_of_plan);

    let first = |f: fn(&PlanProcess) -> Option<&Value>| all.iter().find_map(|p| f(p).cloned());
    let resources = first(|p| p.resources.as_ref());
    let security_context = first(|p| p.security_context.as_ref());
    let pull_policy = all.iter().find_map(|p| p.image_pull_policy.clone());
    let mut main = json!({
        "name": CONTAINER,
        "image": image.clone().unwrap_or_else(|| settings.image.clone()),
        "command": [BIN, "pod", "run", "--work", WORK_FILE, "--data", "/data"],
        "workingDir": "/data",
        "volumeMounts": mounts,
    });
    if let Some(r) = resources {
        main["resources"] = r;
    }
    if let Some(s) = security_context.clone() {
        main["securityContext"] = s;
    }
    if let Some(p) = pull_policy {
        main["imagePullPolicy"] = json!(p);
    }
    let mut init = json!({
        "name": "assay-init",
        "image": settings.image,
        "command": ["assay", "pod", "install", BIN],
        "volumeMounts": [{"name": "assay-bin", "mountPath": "/.assay/bin"}],
    });
    if let Some(s) = security_context {
        init["securityContext"] = s;
    }

    let mut spec = pod_spec;
    spec.insert("restartPolicy".into(), json!("Never"));
    spec.insert("initContainers".into(), json!([init]));
    spec.insert("containers".into(), json!([main]));
    spec.insert("volumes".into(), json!(volumes));

    let mut template_labels = pod_labels;
    template_labels.extend(ours.clone());
    let mut labels_of_job = job_labels;
    labels_of_job.extend(ours);
    let mut job_spec = json!({
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": settings.ttl_seconds,
        "template": {
            "metadata": {"labels": template_labels, "annotations": pod_annotations},
            "spec": spec,
        },
    });
    if let Some(d) = deadline {
        job_spec["activeDeadlineSeconds"] = d;
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": labels_of_job,
            "annotations": job_annotations,
        },
        "spec": job_spec,
    });
    serde_json::from_value(job).map_err(|e| {
        field_error(
            "pod",
            e,
            "check the types of the workflow's `pod`, `job`, `pvcs`, `resources` and `securityContext` against Kubernetes' PodSpec",
        )
    })
}

/// Takes a `labels`/`annotations` mapping of strings out of `from`.
fn take_map(
    from: &mut Map<String, Value>,
    field: &str,
) -> Result<BTreeMap<String, String>, JobError> {
    let key = field.rsplit('.').next().unwrap_or(field);
    match from.remove(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                other => Ok((k, other.to_string())),
            })
            .collect(),
        Some(other) => Err(field_error(
            field,
            format!("it is {other}, not a mapping"),
            "give KEY: VALUE pairs",
        )),
    }
}

/// The Secret of an execution, owned by its Job (`job_uid`), so that deleting the Job (or its
/// time to live passing) deletes the Secret too.
pub fn secret(work: &AgentWork, settings: &JobSettings, job_uid: &str) -> Result<Secret, JobError> {
    let name = object_name(&work.id);
    let body = serde_json::to_vec(work).map_err(|e| JobError::Plan(e.to_string()))?;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(object_labels(work, settings)),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name,
                uid: job_uid.to_string(),
                controller: Some(false),
                block_owner_deletion: Some(false),
            }]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            WORK_KEY.to_string(),
            k8s_openapi::ByteString(body),
        )])),
        immutable: Some(true),
        ..Default::default()
    })
}
