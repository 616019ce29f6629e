//! `assay run NAME` and `assay rerun ID` with a context: the server queues and runs the
//! execution; this waits for its verdict through the notification stream and exits with it
//! (0 passed, 1 failed or aborted), drawing the same step lines, log lines and summary as a run
//! on this machine ([`super::run::Ui`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use assay_api::{ExecutionRequest, TestWorkflowExecution};
use assay_client::Followed;
use assay_spec::status::{ExecutionStatus, StepStatus};
use assay_store::testkube::TestWorkflowStepResult;
use futures::StreamExt;
use serde_json::Value;

use super::history;
use super::run::{Args, FailedStep, RunFormat, Ui, Verdict};
use crate::error::UserError;
use crate::exit;
use crate::remote::{Remote, local_only};

/// Reconnections of the notification stream in a row before giving up (exit 3).
const RETRIES: u32 = 10;

/// `assay run` with a context: a stored workflow only (a file is refused with a hint).
pub async fn run(args: &Args, r: &Remote) -> anyhow::Result<u8> {
    let target = &args.target;
    if Path::new(target).exists()
        || target.ends_with(".yaml")
        || target.ends_with(".yml")
        || target.contains('/')
    {
        return Err(UserError::invalid(format!(
            "`{target}` is a file, and context `{}` runs stored workflows only",
            r.name
        ))
        .with_hint(format!(
            "store it first with `assay apply -f {target}`, then `assay run NAME`; or run it on this machine with `--context embedded`"
        ))
        .into());
    }
    for (given, flag) in [
        (args.all, "`--all`"),
        (args.name.is_some(), "`--name`"),
        (!args.templates.is_empty(), "`--templates`"),
        (!args.secrets.is_empty(), "`--secret`"),
        (args.junit.is_some(), "`--junit`"),
        (args.repeat_new.is_some(), "`--repeat-new`"),
    ] {
        if given {
            return Err(local_only(flag, r));
        }
    }
    let request = ExecutionRequest {
        config: args
            .config
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
        tags: {
            // Given tags win over learnt ones (the server cannot tell them apart).
            let mut tags = super::run::provenance_tags(&args.tags);
            tags.extend(args.tags.iter().cloned());
            tags
        },
        target: target_of(args),
    };
    let queued = r
        .client
        .run_workflow(target, &request)
        .await
        .map_err(|e| r.err(e))?;
    let Some(group) = queued
        .tags
        .get(assay_service::runs::REPLICATE_GROUP_TAG)
        .cloned()
    else {
        return wait(r, queued, args.follow, args.quiet, args.output).await;
    };
    // `replicate` queued one execution per label value: the server answers with the first;
    // the others carry the same group tag. Each is waited for in turn (a finished one replays).
    let query = assay_client::ExecutionQuery {
        tags: vec![(
            assay_service::runs::REPLICATE_GROUP_TAG.to_string(),
            group.clone(),
        )],
        page_size: Some(1000),
        ..Default::default()
    };
    let mut copies = r
        .client
        .list_executions(&query)
        .await
        .map_err(|e| r.err(e))?
        .results;
    copies.sort_by_key(|e| e.number);
    eprintln!(
        "{} execution{}, one per {} ({}): {}",
        copies.len(),
        if copies.len() == 1 { "" } else { "s" },
        request
            .target
            .as_ref()
            .map(|t| t.replicate.join(", "))
            .unwrap_or_default(),
        format_args!("tag {}={group}", assay_service::runs::REPLICATE_GROUP_TAG),
        copies
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut code = exit::SUCCESS;
    for copy in copies {
        let id = copy.id.clone();
        let queued = r.client.get_execution(&id).await.map_err(|e| r.err(e))?;
        code = code.max(wait(r, queued, args.follow, args.quiet, args.output).await?);
    }
    Ok(code)
}

/// `--target`/`--target-not` as Testkube's execution target (`KEY=V1,V2`: any of the values).
fn target_of(args: &Args) -> Option<assay_api::agents::ExecutionTarget> {
    let map = |pairs: &[(String, String)]| -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (k, v) in pairs {
            out.entry(k.clone()).or_default().extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            );
        }
        out
    };
    let target = assay_api::agents::ExecutionTarget {
        match_labels: map(&args.target_match),
        not: map(&args.target_not),
        replicate: args
            .replicate
            .iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        ..Default::default()
    };
    (!target.is_empty()).then_some(target)
}

/// `assay rerun` with a context.
pub async fn rerun(
    r: &Remote,
    reference: &str,
    follow: bool,
    quiet: bool,
    output: Option<RunFormat>,
) -> anyhow::Result<u8> {
    let queued = r.client.rerun(reference).await.map_err(|e| r.err(e))?;
    wait(r, queued, follow, quiet, output).await
}

/// Follow a queued execution to its end; print (with `follow`) what happens, then the
/// summary and `-o json`; the exit code of its verdict.
async fn wait(
    r: &Remote,
    queued: TestWorkflowExecution,
    follow: bool,
    quiet: bool,
    output: Option<RunFormat>,
) -> anyhow::Result<u8> {
    let ui = Ui::new(quiet || output.is_some() || !follow);
    // The header is shown even without --follow: the run's name is what to look for later.
    ui.header_at(
        &queued.name,
        &queued.workflow.name,
        &format!("context {} ({})", r.name, r.client.base_url()),
    );
    let mut live = Live {
        ui,
        names: history::step_names(&queued),
        order: HashMap::new(),
        shown: HashMap::new(),
        tails: HashMap::new(),
        pending: Vec::new(),
    };
    note_order(&queued, &mut live.order);
    let mut stream = Box::pin(r.client.follow(&queued.id, RETRIES));
    loop {
        // The server sends a look's log lines, then the result if it changed: lines wait for
        // that result (so a step's end is shown after its lines, before the next step's), or
        // for a quiet moment.
        let item = match tokio::time::timeout(QUIET, stream.next()).await {
            Err(_) => {
                live.flush(None);
                continue;
            }
            Ok(None) => break,
            Ok(Some(item)) => item.map_err(|e| r.err(e))?,
        };
        match item {
            Followed::Log(n) => {
                let step = n.step_ref.unwrap_or_default();
                if !live.order.contains_key(&step) {
                    live.refresh(r, &queued.id).await;
                }
                let text = n.log.unwrap_or_default();
                let tail = live.tails.entry(step.clone()).or_default();
                tail.extend(text.lines().map(str::to_string));
                if tail.len() > 20 {
                    let cut = tail.len() - 20;
                    tail.drain(..cut);
                }
                live.pending.push((step, text));
            }
            Followed::Result(n) => {
                let Some(result) = n.result else { continue };
                if result.steps.keys().any(|k| !live.order.contains_key(k)) {
                    live.refresh(r, &queued.id).await;
                }
                live.flush(Some(result.steps));
            }
        }
    }
    live.flush(None);
    let tails = live.tails;
    let done = r
        .client
        .get_execution(&queued.id)
        .await
        .map_err(|e| r.err(e))?;
    if output.is_some() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&done)?);
    }
    let status = done.result.status;
    ui_summary(&done, &tails, r);
    Ok(if status == ExecutionStatus::Passed {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
}

/// How long log lines wait for the result that may follow them.
const QUIET: std::time::Duration = std::time::Duration::from_millis(250);

/// What the terminal shows of a run on a server, from its notifications.
struct Live {
    ui: Ui,
    names: HashMap<String, String>,
    /// Plan position by step ref.
    order: HashMap<String, usize>,
    /// The status last shown per step (`Running` once its start is shown).
    shown: HashMap<String, StepStatus>,
    /// The last lines of each step, for the summary.
    tails: HashMap<String, Vec<String>>,
    /// Log lines not shown yet: (step ref, text).
    pending: Vec<(String, String)>,
}

impl Live {
    fn name(&self, reference: &str) -> String {
        self.names
            .get(reference)
            .cloned()
            .unwrap_or_else(|| reference.to_string())
    }

    fn start(&mut self, reference: &str) {
        if reference != "root" && !self.shown.contains_key(reference) {
            self.ui.step_started(&self.name(reference));
            self.shown
                .insert(reference.to_string(), StepStatus::Running);
        }
    }

    fn lines_of(&mut self, reference: Option<&str>) {
        let pending = std::mem::take(&mut self.pending);
        for (step, text) in pending {
            if reference.is_none_or(|r| r == step) {
                // A line of a step not seen running yet: it started between two looks.
                self.start(&step);
                self.ui.log(&self.name(&step), &text);
            } else {
                self.pending.push((step, text));
            }
        }
    }

    /// Show pending lines, and with a result the step changes, step by step in plan order.
    fn flush(&mut self, steps: Option<BTreeMap<String, TestWorkflowStepResult>>) {
        let Some(steps) = steps else {
            self.lines_of(None);
            return;
        };
        // Lines of steps already shown running come first: they were written before this
        // look's changes.
        let running: Vec<String> = self.shown.keys().cloned().collect();
        for reference in running {
            self.lines_of(Some(&reference));
        }
        // Then the changes in the order they happened: by time; at the same millisecond ends
        // before starts, children's ends before their group's (later in plan order first),
        // starts in plan order.
        let mut changes: Vec<(i64, u8, i64, String, Option<TestWorkflowStepResult>)> = Vec::new();
        for (reference, step) in steps {
            if reference == "root" {
                continue;
            }
            let position = self.order.get(&reference).copied().unwrap_or(usize::MAX) as i64;
            let before = self.shown.get(&reference).copied();
            let started = matches!(step.status, StepStatus::Running | StepStatus::Paused)
                || (step.status.is_terminal() && step.status != StepStatus::Skipped);
            if started && before.is_none() {
                let at = history::ms(step.started_at.as_deref()).unwrap_or(i64::MIN);
                changes.push((at, 1, position, reference.clone(), None));
            }
            if step.status.is_terminal() && !before.is_some_and(StepStatus::is_terminal) {
                let at = history::ms(step.finished_at.as_deref()).unwrap_or(i64::MAX);
                changes.push((at, 0, -position, reference.clone(), Some(step)));
            }
        }
        changes.sort_by_key(|c| (c.0, c.1, c.2));
        for (_, _, _, reference, ended) in changes {
            match ended {
                None => {
                    self.start(&reference);
                    self.lines_of(Some(&reference));
                }
                Some(step) => {
                    // A skipped step never started; any other shows its start first.
                    if step.status != StepStatus::Skipped {
                        self.start(&reference);
                    }
                    self.lines_of(Some(&reference));
                    let secs = match (
                        history::ms(step.started_at.as_deref()),
                        history::ms(step.finished_at.as_deref()),
                    ) {
                        (Some(a), Some(b)) => Some((b - a).max(0) as f64 / 1000.0),
                        _ => None,
                    };
                    self.ui
                        .step_ended(&self.name(&reference), step.status, secs, step.exit_code);
                    self.shown.insert(reference.clone(), step.status);
                }
            }
        }
        self.lines_of(None);
    }

    /// Learn the names and order of steps the stream mentions before this client saw them.
    async fn refresh(&mut self, r: &Remote, id: &str) {
        if let Ok(e) = r.client.get_execution(id).await {
            self.names = history::step_names(&e);
            self.order.clear();
            note_order(&e, &mut self.order);
        }
    }
}

/// Plan positions of the execution's steps (its signature); steps it does not name come after.
fn note_order(e: &TestWorkflowExecution, order: &mut HashMap<String, usize>) {
    for (i, s) in e.signature.iter().enumerate() {
        order.insert(s.step_ref.clone(), i);
    }
    for k in e.result.steps.keys() {
        let next = order.len() + 1_000_000;
        order.entry(k.clone()).or_insert(next);
    }
}

/// The summary of a finished execution from the server.
fn ui_summary(e: &TestWorkflowExecution, tails: &HashMap<String, Vec<String>>, r: &Remote) {
    let names = history::step_names(e);
    let steps = history::steps_in_order(e);
    // The server names the step that failed the run (`failedStep`, the rule MCP and a local
    // run use too).
    let failed = steps
        .iter()
        .find(|(reference, _, _)| e.failed_step.as_deref() == Some(reference.as_str()))
        .map(|(reference, _, s)| FailedStep {
            name: names
                .get(reference)
                .cloned()
                .unwrap_or_else(|| reference.clone()),
            reference: reference.clone(),
            status: s.status,
            exit_code: s.exit_code,
            error: s.error_message.clone(),
        });
    let duration_ms = match (
        history::ms(e.result.started_at.as_deref()),
        history::ms(e.result.finished_at.as_deref()),
    ) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ui::new(false).verdict(&Verdict {
        name: &e.name,
        status: e.result.status,
        duration_ms,
        error: e
            .result
            .initialization
            .as_ref()
            .and_then(|i| i.error_message.as_deref()),
        failed,
        tails,
        artifacts: e.artifacts.len(),
        artifacts_location: format!("context {} ({})", r.name, r.client.base_url()),
        children: &e.children,
        dashboard: Some(r.client.base_url()),
        quarantined: &e.result.quarantined_failures,
    });
}
