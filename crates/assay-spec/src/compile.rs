//! The compiler: a TestWorkflow, its templates, config values and (when running) the
//! execution's identity → a [`Plan`].
//!
//! Order, as Testkube's: templates are applied (each resolved with its own config), then the
//! workflow's config, workflow and execution values are substituted everywhere, step ids are
//! derived and checked, and the spec is lowered into plan steps. Strategies known now are
//! expanded into concrete workers and service instances; the rest is left for the runtime.

use std::collections::{BTreeSet, HashSet};

use assay_expr::Machine;
use assay_shard::Durations;
use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::config::{Strictness, config_machine};
use crate::lower::{Inherited, Lower};
use crate::model::{Step, TestWorkflow};
use crate::plan::*;
use crate::resolve::{ConfigEntry, PathError, Resolver};
use crate::template::{Applier, TemplateSet};
use assay_expr::Vars;

/// Everything a compilation needs.
#[derive(Debug, Clone)]
pub struct CompileRequest<'a> {
    pub workflow: &'a TestWorkflow,
    pub templates: &'a TemplateSet,
    /// Config values given by the caller (`--config k=v` as strings, or JSON from an API).
    pub config: IndexMap<String, Value>,
    /// The execution's identity (`id`, `name`, `number`, `scheduledAt`, `tags`, ...) when the
    /// plan is made for a real run; `None` leaves `execution.*` for the runtime.
    pub execution: Option<Value>,
    pub strictness: Strictness,
    /// Durations (ms) of earlier runs (tests, and where they live), for parallels with
    /// `balance: durations`. The compiler stays pure: callers read them from their history.
    pub durations: Durations,
}

impl<'a> CompileRequest<'a> {
    pub fn new(workflow: &'a TestWorkflow, templates: &'a TemplateSet) -> Self {
        Self {
            workflow,
            templates,
            config: IndexMap::new(),
            execution: None,
            strictness: Strictness::Require,
            durations: Durations::default(),
        }
    }
}

/// A compiled plan and the sensitive values the runtime needs but the plan must not hold.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub plan: Plan,
    /// Sensitive config values by parameter name.
    pub secrets: IndexMap<String, String>,
}

/// Testkube holds a `paused` step until someone resumes it from its dashboard; there is no
/// resume here yet, so such steps run at once (parallel `paused` still starts workers together).
pub(crate) const PAUSED_NOTE: &str =
    "`paused` steps start at once on the local runtime (there is nothing to resume them from yet)";

/// Testkube drops worker and service logs when their `logs` condition is false; Assay keeps
/// them all, because dropped logs cannot be had back.
pub(crate) const LOGS_NOTE: &str =
    "worker and service logs are always kept: `logs` conditions are recorded, not applied";

/// Compile one workflow. Every problem found is returned, each with the JSON path of the field
/// it concerns (`spec.steps[1].use[0].name`), so callers can point at a line and column.
pub fn compile(req: &CompileRequest) -> Result<Compiled, Vec<PathError>> {
    let wf = req.workflow;
    let mut errors: Vec<PathError> = Vec::new();

    let workflow_machine = workflow_machine(wf);
    let execution_machine = req
        .execution
        .as_ref()
        .map(|e| Vars::new().with("execution", e.clone()));
    let mut helpers: Vec<&dyn Machine> = vec![&workflow_machine];
    if let Some(m) = &execution_machine {
        helpers.push(m);
    }

    let (wf_config, secrets) = config_machine(
        "workflow",
        true,
        true,
        &wf.spec.config,
        &req.config,
        req.strictness,
        &helpers,
        "spec.config",
        &mut errors,
    );
    let passthrough: BTreeSet<String> = wf_config
        .values
        .iter()
        .filter(|(_, v)| !matches!(v, ConfigEntry::Value(_)))
        .map(|(k, _)| k.clone())
        .collect();
    let outer = Resolver::new(helpers.clone(), Some(&wf_config));

    // 1. templates
    let mut spec = wf.spec.clone();
    let mut applier = Applier::new(req.templates, &outer, passthrough, helpers.clone());
    applier.spec(&mut spec, "spec");
    if !applier.errors.is_empty() {
        // Lowering a workflow whose templates failed would only add follow-on errors; the
        // names its expressions use can still be checked (ids as far as they are known).
        let mut ids_spec = spec.clone();
        let (mut seen, mut ignored) = (HashSet::new(), Vec::new());
        assign_ids(&mut ids_spec.setup, "spec.setup", &mut seen, &mut ignored);
        assign_ids(&mut ids_spec.steps, "spec.steps", &mut seen, &mut ignored);
        assign_ids(&mut ids_spec.after, "spec.after", &mut seen, &mut ignored);
        crate::references::check(&ids_spec, &mut errors);
        errors.append(&mut applier.errors);
        dedupe(&mut errors);
        return Err(errors);
    }

    // 2. the workflow's own values everywhere
    let spec = resolve_typed(&spec, &outer, "spec", &mut errors);
    let Some(mut spec) = spec else {
        return Err(errors);
    };
    let mut tags = spec
        .execution
        .as_ref()
        .map(|e| e.tags.clone())
        .unwrap_or_default();
    for (k, v) in tags.iter_mut() {
        outer.template_field(v, &format!("spec.execution.tags.{k}"), &mut errors);
    }

    // 3. ids
    let mut seen = HashSet::new();
    assign_ids(&mut spec.setup, "spec.setup", &mut seen, &mut errors);
    assign_ids(&mut spec.steps, "spec.steps", &mut seen, &mut errors);
    assign_ids(&mut spec.after, "spec.after", &mut seen, &mut errors);
    crate::references::check(&spec, &mut errors);

    // 4. lowering
    let mut lower = Lower {
        errors: Vec::new(),
        helpers: helpers.clone(),
        notes: BTreeSet::new(),
        durations: &req.durations,
    };
    let root = lower.root(&spec, "spec", &Inherited::default());
    errors.append(&mut lower.errors);

    let deadline_ms = spec
        .job
        .as_ref()
        .and_then(|j| j.active_deadline_seconds)
        .map(|s| s.max(0) as u64 * 1000);
    let schedules = spec
        .events
        .iter()
        .filter_map(|e| e.cronjob.as_ref())
        .map(|c| PlanSchedule {
            cron: c.cron.clone(),
            timezone: c.timezone.clone(),
            config: c.config.clone(),
        })
        .collect();
    let kubernetes = kubernetes_extras(&spec);
    let config = wf
        .spec
        .config
        .iter()
        .map(|(k, p)| {
            let value = match wf_config.values.get(k) {
                Some(ConfigEntry::Value(v)) if !p.sensitive => Some(v.clone()),
                Some(ConfigEntry::Expr(e)) if !p.sensitive => {
                    Some(Value::String(e.to_template_string()))
                }
                _ => None,
            };
            (
                k.clone(),
                ConfigValue {
                    value,
                    sensitive: p.sensitive,
                    defaulted: !req.config.contains_key(k),
                },
            )
        })
        .collect();
    let silent = match spec.execution.as_ref().and_then(|e| e.silent.clone()) {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };

    if !errors.is_empty() {
        dedupe(&mut errors);
        return Err(errors);
    }
    Ok(Compiled {
        plan: Plan {
            version: PLAN_VERSION,
            workflow: PlanWorkflow {
                name: wf.metadata.name.clone(),
                description: wf.description.clone(),
                labels: wf.metadata.labels.clone(),
            },
            config,
            tags,
            silent,
            concurrency: spec.concurrency.clone(),
            schedules,
            deadline_ms,
            disable_webhooks: spec
                .notifications
                .as_ref()
                .is_some_and(|n| n.disable_webhooks),
            kubernetes,
            notes: lower.notes.into_iter().collect(),
            root,
        },
        secrets,
    })
}

fn dedupe(errors: &mut Vec<PathError>) {
    let mut seen = HashSet::new();
    errors.retain(|e| seen.insert((e.path.clone(), e.message.clone())));
}

/// `workflow.name`, `workflow.labels` and `labels.*` (label keys escaped as Testkube does).
pub fn workflow_machine(wf: &TestWorkflow) -> Vars {
    let labels: serde_json::Map<String, Value> = wf
        .metadata
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let escaped: serde_json::Map<String, Value> = wf
        .metadata
        .labels
        .iter()
        .map(|(k, v)| (escape_label(k), Value::String(v.clone())))
        .collect();
    Vars::new()
        .with(
            "workflow",
            json!({"name": wf.metadata.name, "labels": labels}),
        )
        .with("labels", Value::Object(escaped))
}

fn escape_label(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Resolve a typed value through its JSON form.
pub(crate) fn resolve_typed<T: serde::Serialize + serde::de::DeserializeOwned>(
    value: &T,
    resolver: &Resolver,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Option<T> {
    let mut v = serde_json::to_value(value).ok()?;
    let mut p = path.to_string();
    resolver.value(&mut v, &mut p, errors);
    match serde_json::from_value(v) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(PathError {
                path: path.to_string(),
                message: format!("the value is not valid once its expressions are resolved: {e}"),
                hint: None,
            });
            None
        }
    }
}

/// Testkube's step id rules: explicit ids must match `^[a-z0-9][a-z0-9_]*$` and be unique;
/// otherwise an id is derived from the name (`Run tests` → `run_tests`, `_1` suffixes on
/// repeats). Each `parallel` has ids of its own.
pub(crate) fn assign_ids(
    steps: &mut [Step],
    path: &str,
    seen: &mut HashSet<String>,
    errors: &mut Vec<PathError>,
) {
    for (i, step) in steps.iter_mut().enumerate() {
        let at = format!("{path}[{i}]");
        if !step.id.is_empty() {
            if !valid_id(&step.id) {
                errors.push(PathError {
                    path: format!("{at}.id"),
                    message: format!(
                        "step id `{}` must contain only lowercase letters, digits and underscores, starting with a letter or digit",
                        step.id
                    ),
                    hint: Some(format!("use `{}`", derive_id(&step.id))),
                });
            } else if !seen.insert(step.id.clone()) {
                errors.push(PathError {
                    path: format!("{at}.id"),
                    message: format!("duplicate step id `{}`", step.id),
                    hint: None,
                });
            }
        } else if !step.name.is_empty() {
            let derived = derive_id(&step.name);
            if !derived.is_empty() && valid_id(&derived) {
                let mut candidate = derived.clone();
                let mut n = 1;
                while seen.contains(&candidate) {
                    candidate = format!("{derived}_{n}");
                    n += 1;
                }
                seen.insert(candidate.clone());
                step.id = candidate;
            }
        }
        assign_ids(&mut step.setup, &format!("{at}.setup"), seen, errors);
        assign_ids(&mut step.steps, &format!("{at}.steps"), seen, errors);
        if let Some(p) = step.parallel.as_deref_mut() {
            let mut own = HashSet::new();
            assign_ids(
                &mut p.setup,
                &format!("{at}.parallel.setup"),
                &mut own,
                errors,
            );
            assign_ids(
                &mut p.steps,
                &format!("{at}.parallel.steps"),
                &mut own,
                errors,
            );
            assign_ids(
                &mut p.after,
                &format!("{at}.parallel.after"),
                &mut own,
                errors,
            );
        }
    }
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `Run e2e tests!` → `run_e2e_tests`.
pub fn derive_id(name: &str) -> String {
    let mut out = String::new();
    let mut underscore = false;
    for c in name.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            underscore = false;
        } else if !underscore {
            out.push('_');
            underscore = true;
        }
    }
    out.trim_matches('_').to_string()
}

/// A spec's `pod`, `job` and `pvcs`, kept verbatim for a Kubernetes runtime (the workflow's, or
/// a parallel worker's own).
pub(crate) fn kubernetes_extras(spec: &crate::model::WorkflowSpec) -> Option<KubernetesExtras> {
    (spec.pod.is_some() || spec.job.is_some() || !spec.pvcs.is_empty()).then(|| KubernetesExtras {
        pod: spec.pod.clone(),
        job: spec.job.as_ref().and_then(|j| serde_json::to_value(j).ok()),
        pvcs: spec.pvcs.clone(),
    })
}
