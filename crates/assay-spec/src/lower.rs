//! Lowering: a workflow spec (templates applied, values substituted, ids assigned) into plan
//! steps — processes, content, services, parallel workers and strategies, with every problem
//! reported by JSON path. The last pass of [`crate::compile()`].

use std::collections::{BTreeSet, HashSet};

use assay_expr::Machine;
use assay_shard::Durations;
use indexmap::IndexMap;
use serde_json::Value;

use crate::compile::{LOGS_NOTE, PAUSED_NOTE, assign_ids, resolve_typed};
use crate::duration::parse_duration;
use crate::merge;
use crate::model::{
    Balance, ContainerConfig, Content, DynamicList, ServiceSpec, Step, StepParallel, TransferSpec,
    WorkflowSpec,
};
use crate::plan::*;
use crate::resolve::{PathError, Resolver};
use crate::strategy::{self, instance_machine};
use crate::template::parallel_spec;

/// What a step inherits from the groups around it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inherited {
    container: Option<ContainerConfig>,
    /// `global: true` env of enclosing groups; reaches services and parallel workers.
    global_env: Vec<PlanEnv>,
}

pub(crate) struct Lower<'a> {
    pub errors: Vec<PathError>,
    pub helpers: Vec<&'a dyn Machine>,
    pub notes: BTreeSet<String>,
    pub durations: &'a Durations,
}

impl<'a> Lower<'a> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>, hint: Option<String>) {
        self.errors.push(PathError {
            path: path.into(),
            message: message.into(),
            hint,
        });
    }

    fn duration(&mut self, text: &str, path: String) -> Option<u64> {
        if text.is_empty() {
            return None;
        }
        match parse_duration(text) {
            Ok(d) => Some(d.as_millis() as u64),
            Err(e) => {
                self.err(
                    path,
                    format!("invalid duration `{text}`: {e}"),
                    Some("use Go duration syntax such as `30s`, `5m` or `1h30m`".into()),
                );
                None
            }
        }
    }

    /// The root group of a (sub-)workflow: its content, services and container defaults, with
    /// setup, steps and after as children.
    pub(crate) fn root(
        &mut self,
        spec: &WorkflowSpec,
        path: &str,
        inherited: &Inherited,
    ) -> PlanStep {
        let container = merge::container(inherited.container.clone(), spec.container.clone());
        let global_env = globals(&inherited.global_env, container.as_ref());
        let inner = Inherited {
            container: container.clone(),
            global_env: global_env.clone(),
        };
        let mut root = PlanStep {
            reference: "root".into(),
            condition: "passed".into(),
            working_dir: container.as_ref().and_then(|c| c.working_dir.clone()),
            content: spec
                .content
                .as_ref()
                .map(|c| self.content(c, &format!("{path}.content"))),
            services: self.services(&spec.services, path, &inner),
            ..PlanStep::default()
        };
        let mut index = 0;
        for (list, name) in [
            (&spec.setup, "setup"),
            (&spec.steps, "steps"),
            (&spec.after, "after"),
        ] {
            for (i, step) in list.iter().enumerate() {
                index += 1;
                // `after` steps are plain steps appended to `steps`, as Testkube's processor
                // does (`append(setup, append(steps, after...)...)`): no implicit condition, so
                // a cleanup that must run after a failure says `condition: always`.
                let child = self.step(
                    step,
                    &format!("{path}.{name}[{i}]"),
                    &format!("_{index}"),
                    &inner,
                    "",
                );
                root.steps.push(child);
            }
        }
        root
    }

    /// A step and everything below it. A step without a `condition` takes its parent's own
    /// `condition` (not one the parent inherited), else `passed`, as Testkube's action processor
    /// does: the children of a `condition: always` cleanup group run after a failure.
    fn step(
        &mut self,
        step: &Step,
        path: &str,
        position: &str,
        inherited: &Inherited,
        parent_condition: &str,
    ) -> PlanStep {
        let mut container = merge::container(inherited.container.clone(), step.container.clone());
        if let Some(wd) = &step.working_dir {
            container
                .get_or_insert_with(ContainerConfig::default)
                .working_dir = Some(wd.clone());
        }
        let global_env = globals(&inherited.global_env, step.container.as_ref());
        let inner = Inherited {
            container: container.clone(),
            global_env,
        };
        let reference = if step.id.is_empty() {
            position.to_string()
        } else {
            step.id.clone()
        };
        let mut out = PlanStep {
            reference: reference.clone(),
            id: (!step.id.is_empty()).then(|| step.id.clone()),
            name: step.name.clone(),
            condition: if !step.condition.trim().is_empty() {
                step.condition.clone()
            } else if !parent_condition.trim().is_empty() {
                parent_condition.to_string()
            } else {
                "passed".into()
            },
            optional: step.optional,
            negative: step.negative,
            paused: {
                if step.paused {
                    self.notes.insert(PAUSED_NOTE.into());
                }
                step.paused
            },
            pure: step.pure,
            retry: step
                .retry
                .as_ref()
                .filter(|r| r.count > 0)
                .map(|r| PlanRetry {
                    count: r.count as u32,
                    until: if r.until.trim().is_empty() {
                        "passed".into()
                    } else {
                        r.until.clone()
                    },
                }),
            timeout_ms: self.duration(&step.timeout, format!("{path}.timeout")),
            delay_ms: self.duration(&step.delay, format!("{path}.delay")),
            working_dir: container.as_ref().and_then(|c| c.working_dir.clone()),
            content: step
                .content
                .as_ref()
                .map(|c| self.content(c, &format!("{path}.content"))),
            services: self.services(&step.services, path, &inner),
            ..PlanStep::default()
        };
        if let Some(r) = &step.retry
            && r.count < 0
        {
            self.err(
                format!("{path}.retry.count"),
                "retry count must not be negative",
                None,
            );
        }
        if let Some(run) = &step.run {
            let c = merge::container(container.clone(), Some(run.container())).unwrap_or_default();
            let mut process = self.process(&c, path);
            if let Some(script) = &run.shell {
                process.shell = Some(script.clone());
                process.command.clear();
                process.args.clear();
            } else if process.command.is_empty() && process.args.is_empty() {
                self.notes.insert(format!(
                    "`{path}.run` relies on its image's default command, which the local runtime cannot run"
                ));
            }
            out.commands.push(process);
        }
        if !step.shell.is_empty() {
            let mut process = self.process(
                container.as_ref().unwrap_or(&ContainerConfig::default()),
                path,
            );
            process.command.clear();
            process.args.clear();
            process.shell = Some(step.shell.clone());
            out.commands.push(process);
        }
        if let Some(ex) = &step.execute {
            out.execute = Some(PlanExecute {
                parallelism: ex.parallelism.filter(|p| *p > 0).map(|p| p as u32),
                r#async: ex.r#async,
                tests: ex.tests.clone(),
                workflows: ex
                    .workflows
                    .iter()
                    .map(|w| PlanExecuteWorkflow {
                        name: w.name.clone(),
                        selector: w.selector.clone(),
                        description: w.description.clone(),
                        execution_name: w.execution_name.clone(),
                        config: w.config.clone(),
                        strategy: plan_strategy(&w.matrix, &w.shards, &w.count, &w.max_count),
                        tarball: w.tarball.clone(),
                    })
                    .collect(),
            });
        }
        if let Some(p) = step.parallel.as_deref() {
            out.parallel = Some(Box::new(self.parallel(
                p,
                &format!("{path}.parallel"),
                &inner,
            )));
        }
        let mut index = 0;
        for (list, name) in [(&step.setup, "setup"), (&step.steps, "steps")] {
            for (i, child) in list.iter().enumerate() {
                index += 1;
                out.steps.push(self.step(
                    child,
                    &format!("{path}.{name}[{i}]"),
                    &format!("{reference}.{index}"),
                    &inner,
                    &step.condition,
                ));
            }
        }
        if let Some(a) = &step.artifacts {
            if a.paths.is_empty() {
                self.err(
                    format!("{path}.artifacts.paths"),
                    "artifacts need at least one path",
                    Some("e.g. `paths: [\"reports/**/*\"]`".into()),
                );
            }
            out.artifacts = Some(PlanArtifacts {
                working_dir: a.working_dir.clone().or_else(|| out.working_dir.clone()),
                paths: a.paths.clone(),
                compress: a.compress.as_ref().map(|c| c.name.clone()),
            });
        }
        if out.commands.is_empty()
            && out.steps.is_empty()
            && out.parallel.is_none()
            && out.execute.is_none()
            && out.artifacts.is_none()
            && out.content.is_none()
            && out.services.is_empty()
            && out.delay_ms.is_none()
            && !out.paused
        {
            self.err(
                path.to_string(),
                "the step does nothing",
                Some(
                    "give it `shell`, `run`, `steps`, `parallel`, `execute` or `artifacts`".into(),
                ),
            );
        }
        out
    }

    fn process(&mut self, c: &ContainerConfig, _path: &str) -> PlanProcess {
        if !c.image.is_empty() {
            self.notes.insert(
                "images are recorded but not pulled: the local runtime runs commands on this machine".into(),
            );
        }
        if c.resources.is_some() || c.security_context.is_some() || !c.volume_mounts.is_empty() {
            self.notes.insert(
                "container resources, security contexts and volume mounts apply on Kubernetes only"
                    .into(),
            );
        }
        PlanProcess {
            command: c.command.clone().unwrap_or_default(),
            args: c.args.clone().unwrap_or_default(),
            shell: None,
            env: c
                .env
                .iter()
                .map(|e| PlanEnv {
                    name: e.name.clone(),
                    value: e.value.clone(),
                    value_from: e.value_from.clone(),
                    global: e.global.unwrap_or(false),
                })
                .collect(),
            env_from: c.env_from.clone(),
            working_dir: c.working_dir.clone(),
            image: (!c.image.is_empty()).then(|| c.image.clone()),
            image_pull_policy: (!c.image_pull_policy.is_empty())
                .then(|| c.image_pull_policy.clone()),
            resources: c.resources.clone(),
            security_context: c.security_context.clone(),
            volume_mounts: c.volume_mounts.clone(),
        }
    }

    fn content(&mut self, c: &Content, path: &str) -> PlanContent {
        PlanContent {
            git: c.git.as_ref().map(|g| {
                let mut sources = IndexMap::new();
                for (k, v) in [
                    ("usernameFrom", &g.username_from),
                    ("tokenFrom", &g.token_from),
                    ("sshKeyFrom", &g.ssh_key_from),
                ] {
                    if let Some(v) = v {
                        sources.insert(k.to_string(), v.clone());
                    }
                }
                if g.uri.is_empty() {
                    self.err(format!("{path}.git.uri"), "git content needs a `uri`", None);
                }
                PlanGit {
                    uri: g.uri.clone(),
                    revision: g.revision.clone(),
                    username: g.username.clone(),
                    token: g.token.clone(),
                    ssh_key: g.ssh_key.clone(),
                    sources,
                    auth_type: g.auth_type.clone(),
                    mount_path: if g.mount_path.is_empty() {
                        "/data/repo".into()
                    } else {
                        g.mount_path.clone()
                    },
                    cone: g.cone,
                    paths: g.paths.clone(),
                    verbosity: g.verbosity.clone(),
                    retry_count: g
                        .retry
                        .as_ref()
                        .and_then(|r| r.count)
                        .map(|c| c.max(0) as u32),
                    retry_delay_ms: g
                        .retry
                        .as_ref()
                        .and_then(|r| self.duration(&r.delay, format!("{path}.git.retry.delay"))),
                }
            }),
            files: c
                .files
                .iter()
                .map(|f| PlanFile {
                    path: f.path.clone(),
                    content: f.content.clone(),
                    content_from: f.content_from.clone(),
                    mode: f.mode.map(|m| m.max(0) as u32),
                })
                .collect(),
            tarball: c
                .tarball
                .iter()
                .map(|t| PlanTarball {
                    url: t.url.clone(),
                    path: t.path.clone(),
                })
                .collect(),
        }
    }

    fn services(
        &mut self,
        services: &IndexMap<String, ServiceSpec>,
        path: &str,
        inherited: &Inherited,
    ) -> Vec<PlanService> {
        let mut out = Vec::new();
        for (name, svc) in services {
            let at = format!("{path}.services.{name}");
            let strategy = plan_strategy(&svc.matrix, &svc.shards, &svc.count, &svc.max_count);
            let params = match strategy::params(&strategy, &self.helpers) {
                Ok(p) => p,
                Err(e) => {
                    self.err(at.clone(), e.to_string(), None);
                    continue;
                }
            };
            let mut service = PlanService {
                name: name.clone(),
                description: svc.description.clone(),
                strategy,
                instances: None,
                template: None,
            };
            match params {
                Some(p) => {
                    let mut list = Vec::new();
                    for inst in p.instances() {
                        let m = instance_machine(&inst);
                        let mut helpers = self.helpers.clone();
                        helpers.push(&m);
                        let resolver = Resolver::new(helpers, None);
                        let mut errs = Vec::new();
                        if let Some(resolved) = resolve_typed(svc, &resolver, &at, &mut errs)
                            && let Some(mut i) = self.service_instance(&resolved, &at, inherited)
                        {
                            i.instance = inst;
                            list.push(i);
                        }
                        self.errors.extend(errs);
                    }
                    service.instances = Some(list);
                }
                None => {
                    service.template = self.service_instance(svc, &at, inherited).map(Box::new);
                }
            }
            out.push(service);
        }
        out
    }

    fn service_instance(
        &mut self,
        svc: &ServiceSpec,
        path: &str,
        inherited: &Inherited,
    ) -> Option<PlanServiceInstance> {
        let mut process = self.process(&svc.container(), path);
        for g in &inherited.global_env {
            if !process.env.iter().any(|e| e.name == g.name) {
                process.env.insert(0, g.clone());
            }
        }
        if let Some(script) = &svc.shell {
            process.shell = Some(script.clone());
            process.command.clear();
            process.args.clear();
        } else if process.command.is_empty() && process.args.is_empty() {
            self.notes.insert(format!(
                "`{path}` relies on its image's entrypoint, which the local runtime cannot start"
            ));
        }
        let probe = svc.readiness_probe.as_ref().and_then(|p| match probe(p) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(format!("{path}.readinessProbe"), e.to_string(), None);
                None
            }
        });
        Some(PlanServiceInstance {
            instance: StrategyInstance::default(),
            process,
            content: svc
                .content
                .as_ref()
                .map(|c| self.content(c, &format!("{path}.content"))),
            transfer: svc.transfer.iter().map(transfer).collect(),
            readiness_probe: probe,
            timeout_ms: self.duration(&svc.timeout, format!("{path}.timeout")),
            logs: {
                if svc.logs.is_some() {
                    self.notes.insert(LOGS_NOTE.into());
                }
                svc.logs.clone()
            },
            restart_policy: svc.restart_policy.clone(),
            pod: svc.pod.clone(),
        })
    }

    fn parallel(&mut self, p: &StepParallel, path: &str, inherited: &Inherited) -> PlanParallel {
        let mut strategy = plan_strategy(&p.matrix, &p.shards, &p.count, &p.max_count);
        for (key, list) in &p.shards {
            if let DynamicList::Expression(e) = list
                && e.contains("glob(")
            {
                self.notes.insert(format!(
                    "{path}.shards.{key}: `{e}` is read when the step runs, from the execution's files relative to the step's working directory; if it gives no items the run says so with a warning"
                ));
            }
        }
        if p.balance == Some(Balance::Durations) {
            strategy.balance = true;
            strategy.durations = shard_durations(&p.shards, self.durations);
        }
        // Testkube turns operations on the parallel itself into the first step of each worker.
        let mut p = p.clone();
        let has_ops = p.retry.is_some()
            || !p.timeout.is_empty()
            || !p.delay.is_empty()
            || !p.shell.is_empty()
            || p.run.is_some()
            || p.execute.is_some()
            || p.artifacts.is_some()
            || p.negative
            || p.optional;
        if has_ops {
            let first = Step {
                negative: std::mem::take(&mut p.negative),
                optional: std::mem::take(&mut p.optional),
                retry: p.retry.take(),
                timeout: std::mem::take(&mut p.timeout),
                delay: std::mem::take(&mut p.delay),
                shell: std::mem::take(&mut p.shell),
                run: p.run.take(),
                execute: p.execute.take(),
                artifacts: p.artifacts.take(),
                ..Step::default()
            };
            p.steps.insert(0, first);
        }
        let worker_spec = parallel_spec(&p);
        let mut out = PlanParallel {
            parallelism: p.parallelism.filter(|n| *n > 0).map(|n| n as u32),
            fail_fast: p.fail_fast,
            paused: p.paused,
            logs: {
                if p.logs.is_some() {
                    self.notes.insert(LOGS_NOTE.into());
                }
                p.logs.clone()
            },
            strategy: strategy.clone(),
            workers: None,
            worker: None,
        };
        let worker_inherited = Inherited {
            // Workers are separate executions: only global env crosses over.
            container: None,
            global_env: inherited.global_env.clone(),
        };
        let mut global = ContainerConfig::default();
        for g in &inherited.global_env {
            global.env.push(crate::model::EnvVar {
                name: g.name.clone(),
                value: g.value.clone(),
                value_from: g.value_from.clone(),
                global: Some(true),
            });
        }
        let base = Inherited {
            container: (!global.env.is_empty()).then_some(global),
            ..worker_inherited
        };
        let build = |this: &mut Self, spec: &WorkflowSpec, inst: StrategyInstance| -> PlanWorker {
            let mut spec = spec.clone();
            let mut seen = HashSet::new();
            assign_ids(
                &mut spec.setup,
                &format!("{path}.setup"),
                &mut seen,
                &mut this.errors,
            );
            assign_ids(
                &mut spec.steps,
                &format!("{path}.steps"),
                &mut seen,
                &mut this.errors,
            );
            assign_ids(
                &mut spec.after,
                &format!("{path}.after"),
                &mut seen,
                &mut this.errors,
            );
            PlanWorker {
                instance: inst,
                description: p.description.clone(),
                transfer: p.transfer.iter().map(transfer).collect(),
                fetch: p.fetch.iter().map(transfer).collect(),
                deadline_ms: spec
                    .job
                    .as_ref()
                    .and_then(|j| j.active_deadline_seconds)
                    .map(|s| s.max(0) as u64 * 1000),
                predicted_ms: None,
                kubernetes: crate::compile::kubernetes_extras(&spec),
                root: this.root(&spec, path, &base),
            }
        };
        match strategy::params(&strategy, &self.helpers) {
            Err(e) => self.err(path.to_string(), e.to_string(), None),
            Ok(Some(params)) => {
                let mut workers = Vec::new();
                for inst in params.instances() {
                    let m = instance_machine(&inst);
                    let mut helpers = self.helpers.clone();
                    helpers.push(&m);
                    let resolver = Resolver::new(helpers, None);
                    let mut errs = Vec::new();
                    let spec = resolve_typed(&worker_spec, &resolver, path, &mut errs);
                    let mut desc = p.description.clone();
                    resolver.template_field(&mut desc, &format!("{path}.description"), &mut errs);
                    let mut transfers: Vec<TransferSpec> = p.transfer.clone();
                    let mut fetches: Vec<TransferSpec> = p.fetch.clone();
                    for (list, name) in [(&mut transfers, "transfer"), (&mut fetches, "fetch")] {
                        if let Some(r) =
                            resolve_typed(&*list, &resolver, &format!("{path}.{name}"), &mut errs)
                        {
                            *list = r;
                        }
                    }
                    self.errors.extend(errs);
                    if let Some(spec) = spec {
                        let predicted_ms = params.predicted_ms(inst.index);
                        let mut w = build(self, &spec, inst);
                        w.predicted_ms = predicted_ms;
                        w.description = desc;
                        w.transfer = transfers.iter().map(transfer).collect();
                        w.fetch = fetches.iter().map(transfer).collect();
                        workers.push(w);
                    }
                }
                out.workers = Some(workers);
            }
            Ok(None) => {
                out.worker = Some(Box::new(build(
                    self,
                    &worker_spec,
                    StrategyInstance::default(),
                )));
            }
        }
        out
    }
}

/// Global env visible below a group: what it inherited plus its own `global: true` variables.
fn globals(inherited: &[PlanEnv], own: Option<&ContainerConfig>) -> Vec<PlanEnv> {
    let mut out = inherited.to_vec();
    if let Some(c) = own {
        for e in c.env.iter().filter(|e| e.global == Some(true)) {
            out.retain(|g| g.name != e.name);
            out.push(PlanEnv {
                name: e.name.clone(),
                value: e.value.clone(),
                value_from: e.value_from.clone(),
                global: true,
            });
        }
    }
    out
}

fn transfer(t: &TransferSpec) -> PlanTransfer {
    PlanTransfer {
        from: t.from.clone(),
        files: t.files.as_ref().map(dynamic_list),
        to: t.to.clone(),
    }
}

fn dynamic_list(d: &DynamicList) -> Value {
    match d {
        DynamicList::Static(items) => Value::Array(items.clone()),
        DynamicList::Expression(e) => Value::String(e.clone()),
    }
}

/// The durations a balanced parallel needs: those of its static shard items, or all of them
/// when a shard list is only known at run time.
fn shard_durations(shards: &IndexMap<String, DynamicList>, durations: &Durations) -> Durations {
    let mut wanted = Vec::new();
    for list in shards.values() {
        match list {
            DynamicList::Static(items) => {
                wanted.extend(items.iter().map(strategy::item_name));
            }
            DynamicList::Expression(_) => return durations.clone(),
        }
    }
    durations.for_list(&wanted)
}

fn plan_strategy(
    matrix: &IndexMap<String, DynamicList>,
    shards: &IndexMap<String, DynamicList>,
    count: &Option<Value>,
    max_count: &Option<Value>,
) -> PlanStrategy {
    PlanStrategy {
        matrix: matrix
            .iter()
            .map(|(k, v)| (k.clone(), dynamic_list(v)))
            .collect(),
        shards: shards
            .iter()
            .map(|(k, v)| (k.clone(), dynamic_list(v)))
            .collect(),
        count: count.clone(),
        max_count: max_count.clone(),
        balance: false,
        durations: Durations::default(),
    }
}

/// Why a readiness probe cannot be performed (the message follows its path).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum ProbeError {
    #[error("a readiness probe must be an object")]
    NotAnObject,
    #[error("`{0}` must be a whole number")]
    NotWhole(&'static str),
    #[error("`{field}` must be a number, got {got}")]
    NotANumber { field: &'static str, got: Value },
    #[error("`exec` needs a `command` list")]
    NoCommand,
    #[error("`exec.command` must hold strings")]
    CommandNotStrings,
    #[error("`tcpSocket` needs a `port`")]
    NoTcpPort,
    #[error("`httpGet` needs a `port`")]
    NoHttpPort,
    #[error(
        "a readiness probe needs `exec`, `tcpSocket` or `httpGet` (grpc is not supported on this runtime)"
    )]
    NoHandler,
}

/// The parts of a Kubernetes probe a host runtime performs, with Kubernetes' defaults.
fn probe(v: &Value) -> Result<Probe, ProbeError> {
    let obj = v.as_object().ok_or(ProbeError::NotAnObject)?;
    let int = |k: &'static str, default: u32| -> Result<u32, ProbeError> {
        match obj.get(k) {
            None => Ok(default),
            Some(Value::Number(n)) => n.as_u64().map(|n| n as u32).ok_or(ProbeError::NotWhole(k)),
            Some(other) => Err(ProbeError::NotANumber {
                field: k,
                got: other.clone(),
            }),
        }
    };
    let exec = match obj.get("exec") {
        None => None,
        Some(e) => Some(
            e.get("command")
                .and_then(Value::as_array)
                .ok_or(ProbeError::NoCommand)?
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or(ProbeError::CommandNotStrings)
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let tcp_socket = match obj.get("tcpSocket") {
        None => None,
        Some(t) => Some(ProbeTcp {
            host: t.get("host").and_then(Value::as_str).map(str::to_string),
            port: t.get("port").cloned().ok_or(ProbeError::NoTcpPort)?,
        }),
    };
    let http_get = match obj.get("httpGet") {
        None => None,
        Some(h) => Some(ProbeHttp {
            host: h.get("host").and_then(Value::as_str).map(str::to_string),
            path: h
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string(),
            port: h.get("port").cloned().ok_or(ProbeError::NoHttpPort)?,
            scheme: h
                .get("scheme")
                .and_then(Value::as_str)
                .unwrap_or("HTTP")
                .to_string(),
            http_headers: h
                .get("httpHeaders")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        }),
    };
    if exec.is_none() && tcp_socket.is_none() && http_get.is_none() {
        return Err(ProbeError::NoHandler);
    }
    Ok(Probe {
        exec,
        tcp_socket,
        http_get,
        initial_delay_seconds: int("initialDelaySeconds", 0)?,
        period_seconds: int("periodSeconds", 10)?.max(1),
        timeout_seconds: int("timeoutSeconds", 1)?.max(1),
        failure_threshold: int("failureThreshold", 3)?.max(1),
    })
}
