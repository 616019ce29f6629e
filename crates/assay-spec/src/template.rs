//! Templates: finding them by name and applying them to workflows, steps, services and
//! parallel workers, as Testkube's resolver does (`testworkflowresolver/apply.go`).
//!
//! A template is resolved with its own config first (its `config` defaults and the values of
//! the `use:` reference), then merged in: `use` on a spec prepends the template's setup and
//! steps and appends its after-steps; `use` on a step merges its defaults into the step and
//! wraps its steps around the step's own; `template:` on a step adds the template's steps as
//! the first children of the step.

use std::collections::BTreeSet;

use assay_expr::Machine;
use indexmap::IndexMap;
use serde_json::Value;

use crate::config::{Strictness, config_machine};
use crate::merge;
use crate::model::{
    ServiceSpec, Step, StepParallel, TemplateRef, TestWorkflowTemplate, WorkflowSpec,
};
use crate::resolve::{PathError, Resolver, closest};

/// Testkube stores `official/k6/v1` as the Kubernetes name `official--k6--v1`.
pub fn internal_name(name: &str) -> String {
    name.replace('/', "--")
}

/// The display name of a template (`official--k6--v1` → `official/k6/v1`).
pub fn display_name(name: &str) -> String {
    name.replace("--", "/")
}

/// Templates available to a compilation, by internal name.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    templates: IndexMap<String, TestWorkflowTemplate>,
}

impl TemplateSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a template; a later one with the same name replaces an earlier one.
    pub fn insert(&mut self, template: TestWorkflowTemplate) {
        self.templates
            .insert(internal_name(&template.metadata.name), template);
    }

    /// The template `name`: one added to the set, else Assay's built-in of that name.
    pub fn get(&self, name: &str) -> Option<&TestWorkflowTemplate> {
        self.templates
            .get(&internal_name(name))
            .or_else(|| self.templates.get(&display_name(name)))
            .or_else(|| crate::builtin::get(name))
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Names of the templates added to the set (built-ins not included).
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.templates.keys().map(|k| display_name(k))
    }

    /// Names of every template [`Self::get`] finds: the set's, then the built-ins not overridden.
    pub fn names_with_builtins(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names().collect();
        for b in crate::builtin::names() {
            if !names.contains(&b) {
                names.push(b);
            }
        }
        names
    }
}

/// Applies templates; collects every problem rather than stopping at the first.
pub struct Applier<'a> {
    pub templates: &'a TemplateSet,
    /// Resolves the values passed in `use[].config` (the workflow's config, workflow and
    /// execution values), before they reach the template.
    pub outer: &'a Resolver<'a>,
    /// Workflow parameters whose value is not known now; they may pass through templates.
    pub passthrough: BTreeSet<String>,
    pub helpers: Vec<&'a dyn Machine>,
    pub errors: Vec<PathError>,
    /// Guards against templates that (indirectly) use themselves.
    depth: usize,
}

const MAX_TEMPLATE_DEPTH: usize = 32;

impl<'a> Applier<'a> {
    pub fn new(
        templates: &'a TemplateSet,
        outer: &'a Resolver<'a>,
        passthrough: BTreeSet<String>,
        helpers: Vec<&'a dyn Machine>,
    ) -> Self {
        Self {
            templates,
            outer,
            passthrough,
            helpers,
            errors: Vec::new(),
            depth: 0,
        }
    }

    fn error(&mut self, path: String, message: String, hint: Option<String>) {
        self.errors.push(PathError {
            path,
            message,
            hint,
        });
    }

    /// The template named by `r`, with its config applied.
    fn configured(&mut self, r: &TemplateRef, path: &str) -> Option<TestWorkflowTemplate> {
        let Some(tpl) = self.templates.get(&r.name) else {
            let names = self.templates.names_with_builtins();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let hint = closest(&r.name, &refs)
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    "pass the file that defines it with `--templates PATH` (Testkube's official templates are under k8s/templates in its repository)".to_string()
                });
            self.error(
                format!("{path}.name"),
                format!("template `{}` not found", r.name),
                Some(hint),
            );
            return None;
        };
        let mut tpl = tpl.clone();
        let owner = format!("template `{}`", r.name);
        // Values passed to the template are resolved with the workflow's machines first.
        let mut given: IndexMap<String, Value> = IndexMap::new();
        for (k, v) in &r.config {
            let mut v = v.clone();
            let mut p = format!("{path}.config.{k}");
            let mut errs = Vec::new();
            self.outer.value(&mut v, &mut p, &mut errs);
            self.errors.extend(errs);
            given.insert(k.clone(), v);
        }
        let mut errs = Vec::new();
        let (mut machine, _secrets) = config_machine(
            &owner,
            false,
            false,
            &tpl.spec.config,
            &given,
            // What a template needs is given by the workflow's YAML, never at run time: a
            // missing template parameter is an error even when only validating.
            Strictness::Require,
            &self.helpers,
            &format!("{path}.config"),
            &mut errs,
        );
        machine.passthrough = self.passthrough.clone();
        let resolver = Resolver::new(self.helpers.clone(), Some(&machine));
        let mut value = match serde_json::to_value(&tpl.spec) {
            Ok(v) => v,
            Err(e) => {
                self.error(path.to_string(), format!("internal error: {e}"), None);
                return None;
            }
        };
        let mut p = String::new();
        let mut inner = Vec::new();
        resolver.value(&mut value, &mut p, &mut inner);
        // Problems inside the template are reported at the reference, naming the field.
        for e in inner {
            // A missing parameter is one problem however many fields use it.
            let message = if e.message.starts_with(&owner) {
                e.message
            } else {
                format!("in {owner} at `spec.{}`: {}", e.path, e.message)
            };
            let e = PathError {
                path: path.to_string(),
                message,
                hint: e.hint,
            };
            if !errs.contains(&e) {
                errs.push(e);
            }
        }
        let failed = !errs.is_empty();
        self.errors.extend(errs);
        if failed {
            // Injecting a half-configured template would only add confusing follow-on errors.
            return None;
        }
        match serde_json::from_value(value) {
            Ok(spec) => tpl.spec = spec,
            Err(e) => {
                self.error(
                    path.to_string(),
                    format!("{owner} is not valid after applying its config: {e}"),
                    None,
                );
                return None;
            }
        }
        Some(tpl)
    }

    /// One level deeper; false (with an error) past the limit, which a template that uses
    /// itself reaches.
    fn enter(&mut self, path: &str) -> bool {
        if self.depth >= MAX_TEMPLATE_DEPTH {
            self.error(
                path.to_string(),
                "templates nest too deeply (a template that uses itself?)".into(),
                None,
            );
            return false;
        }
        self.depth += 1;
        true
    }

    /// Apply every template of a workflow (or a parallel worker's) spec.
    pub fn spec(&mut self, spec: &mut WorkflowSpec, path: &str) {
        if !self.enter(path) {
            return;
        }
        let uses = std::mem::take(&mut spec.uses);
        for (i, r) in uses.iter().enumerate().rev() {
            if let Some(tpl) = self.configured(r, &format!("{path}.use[{i}]")) {
                inject_spec(spec, tpl);
            }
        }
        self.services(&mut spec.services, path);
        for (list, name) in [
            (&mut spec.setup, "setup"),
            (&mut spec.steps, "steps"),
            (&mut spec.after, "after"),
        ] {
            for (i, step) in list.iter_mut().enumerate() {
                self.step(step, &format!("{path}.{name}[{i}]"));
            }
            *list = flatten(std::mem::take(list));
        }
        self.depth -= 1;
    }

    fn services(&mut self, services: &mut IndexMap<String, ServiceSpec>, path: &str) {
        for (name, svc) in services.iter_mut() {
            let uses = std::mem::take(&mut svc.uses);
            for (i, r) in uses.iter().enumerate().rev() {
                let at = format!("{path}.services.{name}.use[{i}]");
                let Some(tpl) = self.configured(r, &at) else {
                    continue;
                };
                if !tpl.spec.setup.is_empty()
                    || !tpl.spec.steps.is_empty()
                    || !tpl.spec.after.is_empty()
                {
                    self.error(
                        at,
                        format!(
                            "template `{}` has steps, which a service cannot use",
                            r.name
                        ),
                        None,
                    );
                    continue;
                }
                if !tpl.spec.services.is_empty() {
                    self.error(
                        at,
                        format!(
                            "template `{}` has services, which a service cannot use",
                            r.name
                        ),
                        None,
                    );
                    continue;
                }
                inject_service(svc, tpl);
            }
        }
    }

    fn step(&mut self, step: &mut Step, path: &str) {
        if !self.enter(path) {
            return;
        }
        let uses = std::mem::take(&mut step.uses);
        for (i, r) in uses.iter().enumerate().rev() {
            if let Some(tpl) = self.configured(r, &format!("{path}.use[{i}]")) {
                inject_step(step, tpl);
            }
        }
        if let Some(r) = step.template.take()
            && let Some(tpl) = self.configured(&r, &format!("{path}.template"))
        {
            let mut isolate = Step::default();
            inject_step(&mut isolate, tpl);
            if !isolate.setup.is_empty() || !isolate.steps.is_empty() {
                if isolate.container.is_none()
                    && isolate.content.is_none()
                    && isolate.working_dir.is_none()
                {
                    let mut children = std::mem::take(&mut isolate.setup);
                    children.append(&mut isolate.steps);
                    children.append(&mut step.steps);
                    step.steps = children;
                } else {
                    // The template's steps sit one level lower here: the group that holds its
                    // defaults passes the step's condition down, as Testkube's virtual group does.
                    isolate.condition = step.condition.clone();
                    step.steps.insert(0, isolate);
                }
            }
        }
        self.services(&mut step.services, path);
        if let Some(parallel) = step.parallel.as_deref_mut() {
            self.parallel(parallel, &format!("{path}.parallel"));
        }
        for (list, name) in [(&mut step.setup, "setup"), (&mut step.steps, "steps")] {
            for (i, child) in list.iter_mut().enumerate() {
                self.step(child, &format!("{path}.{name}[{i}]"));
            }
        }
        self.depth -= 1;
    }

    fn parallel(&mut self, p: &mut StepParallel, path: &str) {
        if p.template.is_some() {
            let first = Step {
                negative: p.negative,
                optional: p.optional,
                paused: p.paused,
                retry: p.retry.take(),
                timeout: std::mem::take(&mut p.timeout),
                delay: std::mem::take(&mut p.delay),
                shell: std::mem::take(&mut p.shell),
                run: p.run.take(),
                execute: p.execute.take(),
                artifacts: p.artifacts.take(),
                template: p.template.take(),
                ..Step::default()
            };
            p.negative = false;
            p.optional = false;
            p.steps.insert(0, first);
        }
        let mut spec = parallel_spec(p);
        self.spec(&mut spec, path);
        set_parallel_spec(p, spec);
    }
}

/// The workflow spec a parallel step embeds.
pub fn parallel_spec(p: &StepParallel) -> WorkflowSpec {
    WorkflowSpec {
        uses: p.uses.clone(),
        events: p.events.clone(),
        system: p.system.clone(),
        config: p.config.clone(),
        content: p.content.clone(),
        container: p.container.clone(),
        job: p.job.clone(),
        pod: p.pod.clone(),
        concurrency: None,
        notifications: p.notifications.clone(),
        execution: p.execution.clone(),
        timeouts: p.timeouts.clone(),
        services: p.services.clone(),
        setup: p.setup.clone(),
        steps: p.steps.clone(),
        after: p.after.clone(),
        pvcs: p.pvcs.clone(),
    }
}

fn set_parallel_spec(p: &mut StepParallel, s: WorkflowSpec) {
    p.uses = s.uses;
    p.events = s.events;
    p.system = s.system;
    p.config = s.config;
    p.content = s.content;
    p.container = s.container;
    p.job = s.job;
    p.pod = s.pod;
    p.notifications = s.notifications;
    p.execution = s.execution;
    p.timeouts = s.timeouts;
    p.services = s.services;
    p.setup = s.setup;
    p.steps = s.steps;
    p.after = s.after;
    p.pvcs = s.pvcs;
}

fn inject_spec(spec: &mut WorkflowSpec, tpl: TestWorkflowTemplate) {
    let t = tpl.spec;
    spec.pod = merge::opaque(t.pod, spec.pod.take());
    spec.job = merge::job(t.job, spec.job.take());
    let mut events = t.events;
    events.append(&mut spec.events);
    spec.events = events;
    spec.execution = merge::execution(t.execution, spec.execution.take());
    spec.concurrency = merge::concurrency(t.concurrency, spec.concurrency.take());
    spec.pvcs = merge::map(t.pvcs, std::mem::take(&mut spec.pvcs));
    spec.content = merge::content(t.content, spec.content.take());
    spec.services = merge::map(t.services, std::mem::take(&mut spec.services));
    spec.container = merge::container(t.container, spec.container.take());
    spec.system = merge::system(t.system, spec.system.take());
    spec.timeouts = merge::timeouts(t.timeouts, spec.timeouts.take());
    let mut setup = t.setup;
    setup.append(&mut spec.setup);
    spec.setup = setup;
    let mut steps = t.steps;
    steps.append(&mut spec.steps);
    spec.steps = steps;
    spec.after.extend(t.after);
}

fn inject_step(step: &mut Step, tpl: TestWorkflowTemplate) {
    let t = tpl.spec;
    step.content = merge::content(t.content, step.content.take());
    step.services = merge::map(t.services, std::mem::take(&mut step.services));
    step.container = merge::container(t.container, step.container.take());
    if step.pure.is_some() && t.system.as_ref().and_then(|s| s.pure_by_default) == Some(true) {
        step.pure = Some(true);
    }
    if t.setup.is_empty() && t.steps.is_empty() && t.after.is_empty() {
        return;
    }
    let mut setup = t.setup;
    setup.append(&mut step.setup);
    step.setup = setup;
    let mut steps = t.steps;
    steps.append(&mut step.steps);
    steps.extend(t.after);
    step.steps = steps;
}

fn inject_service(svc: &mut ServiceSpec, tpl: TestWorkflowTemplate) {
    let t = tpl.spec;
    svc.pod = merge::opaque(t.pod, svc.pod.take());
    svc.content = merge::content(t.content, svc.content.take());
    let merged = merge::container(t.container, Some(svc.container())).unwrap_or_default();
    svc.set_container(merged);
    svc.pvcs = merge::map(t.pvcs, std::mem::take(&mut svc.pvcs));
}

/// Steps that only group other steps (nothing else set) are replaced by their children.
fn flatten(steps: Vec<Step>) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len());
    for mut step in steps {
        let setup = std::mem::take(&mut step.setup);
        let children = std::mem::take(&mut step.steps);
        if step == Step::default() {
            out.extend(setup);
            out.extend(children);
        } else {
            step.setup = setup;
            step.steps = children;
            out.push(step);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        assert_eq!(internal_name("official/k6/v1"), "official--k6--v1");
        assert_eq!(display_name("official--k6--v1"), "official/k6/v1");
        let mut set = TemplateSet::new();
        let mut t = TestWorkflowTemplate::default();
        t.metadata.name = "official--k6--v1".into();
        set.insert(t);
        assert!(set.get("official/k6/v1").is_some());
        assert!(set.get("official--k6--v1").is_some());
        assert!(set.get("official/k6/v2").is_none());
    }
}
