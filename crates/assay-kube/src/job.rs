//! An execution as Kubernetes objects (pure): one Job whose pod runs the plan's steps in
//! order, as Testkube does ([`execution_objects`]), one Job per service instance and per
//! parallel worker when the main pod asks for it ([`service_objects`], [`worker_objects`]),
//! and for each Job a Secret holding what its pod needs to run (the agent's [`AgentWork`]
//! with that pod's plan: sensitive values, environment).
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
/// The ref of the one step of a service pod's plan.
pub const SERVICE_STEP: &str = "service";

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
        "the workflow names several images ({}) for what runs in one pod: the Kubernetes runtime runs the steps of the execution's pod (or of a parallel worker's, with that worker's services) in one container for now\n\nhint: give them the same image (e.g. in the workflow's `container`; a service and a parallel worker have pods of their own and may have their own image), or run it with a host or container agent",
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

/// What of a plan runs in one pod.
#[derive(Debug, Clone, Copy)]
struct InPod {
    /// Parallel workers' processes (theirs when not in pods of their own).
    workers: bool,
    /// Services' processes (outside workers; a worker's services run in its pod).
    services: bool,
}

/// The processes of a plan that run in one pod, in order.
fn processes(step: &PlanStep, out: &mut Vec<PlanProcess>, in_pod: InPod) {
    out.extend(step.commands.iter().cloned());
    for service in step.services.iter().filter(|_| in_pod.services) {
        for instance in service.instances.iter().flatten() {
            out.push(instance.process.clone());
        }
        if let Some(t) = &service.template {
            out.push(t.process.clone());
        }
    }
    if let Some(p) = step.parallel.as_ref().filter(|_| in_pod.workers) {
        let all = InPod {
            workers: true,
            services: true,
        };
        for w in p.workers.iter().flatten() {
            processes(&w.root, out, all);
        }
        if let Some(t) = &p.worker {
            processes(&t.root, out, all);
        }
    }
    for s in &step.steps {
        processes(s, out, in_pod);
    }
}

/// Whether a plan has `parallel` steps (outside its workers).
pub fn has_parallel(step: &PlanStep) -> bool {
    step.parallel.is_some() || step.steps.iter().any(has_parallel)
}

/// Whether a plan has `services` (outside its workers).
pub fn has_services(step: &PlanStep) -> bool {
    !step.services.is_empty() || step.steps.iter().any(has_services)
}

/// The one image the plan runs in when everything runs in one pod (`None`: it names none),
/// or the refusal.
pub fn plan_image(plan: &Plan) -> Result<Option<String>, JobError> {
    let all = InPod {
        workers: true,
        services: true,
    };
    images_of(plan, all)
}

/// The one image of what runs in a pod of `plan`.
fn images_of(plan: &Plan, in_pod: InPod) -> Result<Option<String>, JobError> {
    let mut all = Vec::new();
    processes(&plan.root, &mut all, in_pod);
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
    job_of(
        work,
        settings,
        &Role::Execution {
            services: false,
            workers: false,
        },
    )
}

/// What a Job of an execution is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The steps; `services`: its services run in pods of their own, `workers`: so do its
    /// parallel workers; with either, it serves the endpoint of [`crate::workers`] and
    /// [`crate::services`].
    Execution { services: bool, workers: bool },
    /// One service instance (the main pod's `k`th request).
    Service { k: u64, name: String, index: u64 },
    /// One parallel worker (the main pod's `key`th), of the parallel step `reference`.
    Worker {
        key: u64,
        reference: String,
        index: u64,
    },
}

impl Role {
    /// The name of the Job and its Secret.
    pub fn object_name(&self, id: &str) -> String {
        match self {
            Role::Execution { .. } => object_name(id),
            Role::Service { k, .. } => format!("{}-svc{k}", object_name(id)),
            Role::Worker { key, .. } => format!("{}-w{key}", object_name(id)),
        }
    }

    /// The labels of its objects.
    pub fn labels(&self, work: &AgentWork, settings: &JobSettings) -> BTreeMap<String, String> {
        let mut l = object_labels(work, settings);
        match self {
            Role::Execution { .. } => {
                l.insert(labels::ROLE.into(), labels::EXECUTION_ROLE.into());
            }
            Role::Service { name, index, .. } => {
                l.insert(labels::ROLE.into(), labels::SERVICE_ROLE.into());
                l.insert(labels::SERVICE.into(), label_value(name));
                l.insert(labels::INDEX.into(), index.to_string());
            }
            Role::Worker {
                reference, index, ..
            } => {
                l.insert(labels::ROLE.into(), labels::WORKER_ROLE.into());
                l.insert(labels::WORKER.into(), label_value(reference));
                l.insert(labels::INDEX.into(), index.to_string());
            }
        }
        l
    }
}

/// The Job of one of an execution's pods (see [`Role`]); `work` holds that pod's plan.
pub fn job_of(work: &AgentWork, settings: &JobSettings, role: &Role) -> Result<Job, JobError> {
    let plan: Plan =
        serde_json::from_value(work.plan.clone()).map_err(|e| JobError::Plan(e.to_string()))?;
    // A main pod whose workers or services run in pods of their own does not run their
    // processes.
    let in_pod = match role {
        Role::Execution { services, workers } => InPod {
            workers: !workers,
            services: !services,
        },
        Role::Service { .. } | Role::Worker { .. } => InPod {
            workers: true,
            services: true,
        },
    };
    let image = images_of(&plan, in_pod)?;
    let mut all = Vec::new();
    processes(&plan.root, &mut all, in_pod);
    let name = role.object_name(&work.id);
    let ours = role.labels(work, settings);
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
    let mut command = vec![BIN, "pod", "run", "--work", WORK_FILE, "--data", "/data"];
    if matches!(
        role,
        Role::Execution { workers: true, .. }
            | Role::Execution { services: true, .. }
            | Role::Worker { .. }
    ) {
        command.extend(["--channel", crate::workers::CHANNEL_FILE]);
    }
    let mut main = json!({
        "name": CONTAINER,
        "image": image.clone().unwrap_or_else(|| settings.image.clone()),
        "command": command,
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
    let role = Role::Execution {
        services: false,
        workers: false,
    };
    secret_of(work, settings, &role, job_uid, None)
}

/// The Secret of one of an execution's Jobs (see [`Role`]), owned by it; `channel` is the
/// endpoint's ([`crate::workers::Channel`]).
pub fn secret_of(
    work: &AgentWork,
    settings: &JobSettings,
    role: &Role,
    job_uid: &str,
    channel: Option<&crate::workers::Channel>,
) -> Result<Secret, JobError> {
    let name = role.object_name(&work.id);
    let body = serde_json::to_vec(work).map_err(|e| JobError::Plan(e.to_string()))?;
    let mut data = BTreeMap::from([(WORK_KEY.to_string(), k8s_openapi::ByteString(body))]);
    if let Some(c) = channel {
        let text = serde_json::to_vec(c).map_err(|e| JobError::Plan(e.to_string()))?;
        let key = crate::workers::CHANNEL_KEY.to_string();
        data.insert(key, k8s_openapi::ByteString(text));
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(role.labels(work, settings)),
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
        data: Some(data),
        immutable: Some(true),
        ..Default::default()
    })
}

/// The plan of a service instance's pod: `process` (rendered by the main pod's engine) and
/// the instance's `content` as its one step ([`SERVICE_STEP`]), with the execution's config
/// and Kubernetes settings, the instance's own `pod` over the workflow's.
pub fn service_plan(
    plan: &Plan,
    process: PlanProcess,
    content: Option<assay_spec::plan::PlanContent>,
    pod: Option<&Value>,
) -> Plan {
    let mut extras = plan.kubernetes.clone().unwrap_or_default();
    if let Some(Value::Object(own)) = pod {
        let mut merged = match extras.pod.take() {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        merged.extend(own.clone());
        extras.pod = Some(Value::Object(merged));
    }
    Plan {
        schedules: Vec::new(),
        notes: Vec::new(),
        kubernetes: Some(extras),
        root: PlanStep {
            reference: SERVICE_STEP.to_string(),
            condition: "passed".to_string(),
            content,
            commands: vec![process],
            ..Default::default()
        },
        ..plan.clone()
    }
}

/// One Job of an execution with what its pod runs.
#[derive(Debug, Clone)]
pub struct PodObjects {
    pub role: Role,
    /// The work its Secret holds (the execution's, with this pod's plan).
    pub work: AgentWork,
    pub job: Job,
}

impl PodObjects {
    /// Its Secret, owned by the Job once created (`job_uid`).
    pub fn secret(
        &self,
        settings: &JobSettings,
        job_uid: &str,
        channel: Option<&crate::workers::Channel>,
    ) -> Result<Secret, JobError> {
        secret_of(&self.work, settings, &self.role, job_uid, channel)
    }
}

/// The Job of an execution (its steps), or why it cannot run on Kubernetes. Its services and
/// parallel workers get pods of their own when the main pod asks ([`service_objects`],
/// [`worker_objects`]).
pub fn execution_objects(work: &AgentWork, settings: &JobSettings) -> Result<PodObjects, JobError> {
    let plan: Plan =
        serde_json::from_value(work.plan.clone()).map_err(|e| JobError::Plan(e.to_string()))?;
    let role = Role::Execution {
        services: has_services(&plan.root),
        workers: has_parallel(&plan.root),
    };
    Ok(PodObjects {
        job: job_of(work, settings, &role)?,
        role,
        work: work.clone(),
    })
}

/// The Job of a service instance the main pod asked for (`request`, and `pod` from its
/// endpoint), with the execution's work around the instance's plan; an `exec` readiness probe
/// becomes its container's `readinessProbe` (the kubelet runs it in the service's container).
pub fn service_objects(
    work: &AgentWork,
    settings: &JobSettings,
    request: &crate::services::ServiceRequest,
    pod: &crate::services::ServicePod,
) -> Result<PodObjects, JobError> {
    let role = Role::Service {
        k: request.key,
        name: request.name.clone(),
        index: request.index,
    };
    let work = AgentWork {
        plan: pod.plan.clone(),
        ..work.clone()
    };
    let mut job = job_of(&work, settings, &role)?;
    if let Some(probe) = &pod.readiness
        && let Some(command) = &probe.exec
    {
        let seconds = |n: u32, least: u32| Some(i32::try_from(n.max(least)).unwrap_or(i32::MAX));
        let readiness = k8s_openapi::api::core::v1::Probe {
            exec: Some(k8s_openapi::api::core::v1::ExecAction {
                command: Some(command.clone()),
            }),
            initial_delay_seconds: seconds(probe.initial_delay_seconds, 0),
            period_seconds: seconds(probe.period_seconds, 1),
            timeout_seconds: seconds(probe.timeout_seconds, 1),
            failure_threshold: seconds(probe.failure_threshold, 1),
            ..Default::default()
        };
        if let Some(container) = job
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|s| s.containers.first_mut())
        {
            container.readiness_probe = Some(readiness);
        }
    }
    Ok(PodObjects { job, role, work })
}

/// The plan of a parallel worker's pod: the worker's root as the plan's, its own `pod`,
/// `job` and `pvcs` (the workflow's do not reach it, as in Testkube), its deadline, and the
/// execution's config.
pub fn worker_plan(plan: &Plan, worker: &assay_spec::plan::PlanWorker) -> Plan {
    Plan {
        schedules: Vec::new(),
        notes: Vec::new(),
        kubernetes: worker.kubernetes.clone(),
        deadline_ms: worker.deadline_ms,
        root: worker.root.clone(),
        ..plan.clone()
    }
}

/// The Job of a parallel worker the main pod asked for (`request`), with the execution's
/// work around the worker's plan.
pub fn worker_objects(
    work: &AgentWork,
    settings: &JobSettings,
    request: &crate::workers::WorkerRequest,
) -> Result<PodObjects, JobError> {
    let role = Role::Worker {
        key: request.key,
        reference: request.reference.clone(),
        index: request.index,
    };
    let work = AgentWork {
        plan: request.plan.clone(),
        ..work.clone()
    };
    Ok(PodObjects {
        job: job_of(&work, settings, &role)?,
        role,
        work,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> JobSettings {
        JobSettings {
            namespace: "ns".into(),
            agent: "a".into(),
            image: "assay:1".into(),
            ttl_seconds: 60,
        }
    }

    fn work(plan: Value) -> AgentWork {
        serde_json::from_value(
            json!({"id": "0190-abc", "name": "e", "workflow": "wf", "number": 1, "plan": plan}),
        )
        .expect("a work")
    }

    #[test]
    fn the_main_pod_runs_the_steps_and_asks_for_its_services() {
        let plan = json!({
            "version": 1,
            "workflow": {"name": "wf"},
            "root": {
                "ref": "root", "condition": "passed",
                "services": [{"name": "db", "strategy": {}, "instances": [{"index": 0, "count": 1,
                    "process": {"shell": "serve", "image": "postgres:16"}}]}],
                "steps": [{"ref": "work", "condition": "passed",
                           "commands": [{"shell": "test", "image": "steps:1"}]}],
            },
        });
        let main = execution_objects(&work(plan), &settings()).expect("a Job");
        assert_eq!(
            main.role,
            Role::Execution {
                services: true,
                workers: false
            }
        );
        let container = &main
            .job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        // The services' images are theirs: the main pod has the steps' one.
        assert_eq!(container.image.as_deref(), Some("steps:1"));
        let command = container.command.clone().unwrap();
        assert!(
            command.contains(&crate::workers::CHANNEL_FILE.to_string()),
            "{command:?}"
        );
    }

    #[test]
    fn a_service_pod_has_its_own_plan_pod_settings_and_exec_readiness_probe() {
        let plan: Plan = serde_json::from_value(json!({
            "version": 1,
            "workflow": {"name": "wf"},
            "kubernetes": {"pod": {"nodeSelector": {"a": "b"}, "serviceAccountName": "sa"}},
            "root": {"ref": "root", "condition": "passed"},
        }))
        .expect("a plan");
        let process = PlanProcess {
            shell: Some("serve".into()),
            image: Some("api:2".into()),
            ..Default::default()
        };
        let own = json!({"nodeSelector": {"c": "d"}});
        let service = service_plan(&plan, process, None, Some(&own));
        assert_eq!(service.root.reference, SERVICE_STEP);
        let pod = service.kubernetes.as_ref().unwrap().pod.clone().unwrap();
        assert_eq!(pod["nodeSelector"], json!({"c": "d"}));
        assert_eq!(pod["serviceAccountName"], "sa");
        let request = crate::services::ServiceRequest {
            key: 4,
            log_ref: "work/service/api/1".into(),
            name: "api".into(),
            index: 1,
            port: 8,
        };
        let pod = crate::services::ServicePod {
            plan: serde_json::to_value(&service).unwrap(),
            timeout_ms: Some(1000),
            readiness: Some(assay_spec::plan::Probe {
                exec: Some(vec!["test".into(), "-e".into(), "/data/ready".into()]),
                period_seconds: 1,
                timeout_seconds: 1,
                failure_threshold: 3,
                ..Default::default()
            }),
        };
        let objects =
            service_objects(&work(json!({})), &settings(), &request, &pod).expect("a Job");
        assert_eq!(
            objects.role.object_name("0190-abc"),
            "assay-exec-0190abc-svc4"
        );
        let spec = objects
            .job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .clone()
            .unwrap();
        let container = &spec.containers[0];
        assert_eq!(container.image.as_deref(), Some("api:2"));
        let probe = container
            .readiness_probe
            .as_ref()
            .expect("a readinessProbe");
        assert_eq!(
            probe.exec.as_ref().unwrap().command.as_deref(),
            Some(&["test".to_string(), "-e".into(), "/data/ready".into()][..])
        );
        assert_eq!(probe.failure_threshold, Some(3));
        // A service pod gets no channel: it cannot ask for pods.
        let command = container.command.clone().unwrap();
        assert!(!command.iter().any(|c| c == "--channel"), "{command:?}");
        let labels = objects.job.metadata.labels.clone().unwrap();
        assert_eq!(labels[crate::labels::SERVICE], "api");
        assert_eq!(labels[crate::labels::INDEX], "1");
    }
}
