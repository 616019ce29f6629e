//! Step labels as people read them: the one naming rule for the CLI's live output, the stored
//! step names (which the dashboard, MCP, `assay logs` and remote clients show) and `--junit`.
//!
//! - a named step is its name;
//! - an unnamed step is what it runs, cut short: `shell: pytest -q tests/…`, `run: go test ./…`,
//!   `execute: child`, `group of 3 steps`;
//! - a parallel worker is its parallel step's label and its place: `tests · worker 2/4`, with the
//!   worker's description in parentheses when it has one; a step inside a worker is the worker's
//!   label, then its own (`tests · worker 2/4 · install`), and the worker's only unnamed step is
//!   the worker itself.
//!
//! Workers known only at run time (`shards` from `glob()`) are named when the engine reports them
//! ([`StepNames::learn`] on [`Event::Worker`]).

use std::collections::{HashMap, HashSet};

use assay_engine::{Event, WorkerState};
use assay_spec::plan::{Plan, PlanStep, PlanWorker};

/// How many characters of a command an unnamed step's label keeps.
pub const COMMAND_CHARS: usize = 40;

/// Separates the parts of a label (`tests · worker 2/4`).
const SEP: &str = " · ";

/// Labels of the steps of one execution by ref.
#[derive(Debug, Clone, Default)]
pub struct StepNames {
    names: HashMap<String, String>,
    /// Parallel steps whose workers are made at run time, by full ref: their label and worker.
    pending: HashMap<String, (String, PlanWorker)>,
    /// Worker roots whose one step carries the same label (the worker itself).
    repeated: HashSet<String>,
}

impl StepNames {
    /// The labels of every step the plan knows, and how to name its run-time workers.
    pub fn new(plan: &Plan) -> Self {
        let mut names = StepNames::default();
        names.walk(&plan.root, "", None);
        names
    }

    /// The label of a step, when it is known.
    pub fn get(&self, reference: &str) -> Option<&String> {
        self.names.get(reference)
    }

    /// The label of a step, or its ref when it is unknown.
    pub fn label(&self, reference: &str) -> String {
        self.names
            .get(reference)
            .cloned()
            .unwrap_or_else(|| reference.to_string())
    }

    /// Whether the step is a worker's root group whose one step has the same label: a view that
    /// lists steps shows that step only.
    pub fn repeats(&self, reference: &str) -> bool {
        self.repeated.contains(reference)
    }

    /// Every known label by ref.
    pub fn as_map(&self) -> &HashMap<String, String> {
        &self.names
    }

    /// Learn the labels of the steps of a worker made at run time (the engine reports each worker
    /// `Queued` before any of its steps starts).
    pub fn learn(&mut self, event: &Event) {
        let Event::Worker {
            reference,
            index,
            count,
            state: WorkerState::Queued,
        } = event
        else {
            return;
        };
        let Some((label, worker)) = self.pending.get(reference).cloned() else {
            return;
        };
        let mut worker = worker;
        worker.instance.index = *index;
        worker.instance.count = *count;
        self.worker(reference, &label, &worker);
    }

    /// Names `step` and what is inside it. `context` is the label of the worker it belongs to.
    fn walk(&mut self, step: &PlanStep, prefix: &str, context: Option<&str>) {
        let own = own_label(step);
        let label = match context {
            Some(worker) => format!("{worker}{SEP}{own}"),
            None => own,
        };
        let full = format!("{prefix}{}", step.reference);
        self.names.insert(full.clone(), label.clone());
        for child in &step.steps {
            self.walk(child, prefix, context);
        }
        if let Some(p) = &step.parallel {
            match (&p.workers, &p.worker) {
                (Some(workers), _) => {
                    for w in workers {
                        self.worker(&full, &label, w);
                    }
                }
                (None, Some(worker)) => {
                    self.pending
                        .insert(full.clone(), (label.clone(), (**worker).clone()));
                }
                (None, None) => {}
            }
        }
    }

    /// Names worker `w` of the parallel step `parallel` (full ref) labelled `label`.
    fn worker(&mut self, parallel: &str, label: &str, w: &PlanWorker) {
        let mut worker = format!(
            "{label}{SEP}worker {}/{}",
            w.instance.index + 1,
            w.instance.count.max(1)
        );
        if !w.description.is_empty() {
            worker.push_str(&format!(" ({})", cut(&w.description)));
        }
        let prefix = format!("{parallel}/{}/", w.instance.index);
        let root = format!("{prefix}{}", w.root.reference);
        self.names.insert(root.clone(), worker.clone());
        // The parallel step's own `shell`/`run` is the worker's one unnamed step: the worker.
        if let [only] = w.root.steps.as_slice()
            && only.name.is_empty()
            && only.steps.is_empty()
            && only.parallel.is_none()
        {
            self.names
                .insert(format!("{prefix}{}", only.reference), worker.clone());
            self.repeated.insert(root);
            return;
        }
        for child in &w.root.steps {
            self.walk(child, &prefix, Some(&worker));
        }
    }
}

/// A step's label on its own: its name, else what it runs, else its ref.
fn own_label(step: &PlanStep) -> String {
    if !step.name.is_empty() {
        return step.name.clone();
    }
    if let Some(c) = step.commands.first() {
        if let Some(shell) = c.shell.as_deref() {
            return format!("shell: {}", cut(shell));
        }
        let argv: Vec<&str> = c
            .command
            .iter()
            .chain(&c.args)
            .map(String::as_str)
            .collect();
        if !argv.is_empty() {
            return format!("run: {}", cut(&argv.join(" ")));
        }
    }
    if let Some(e) = &step.execute {
        let names: Vec<&str> = e.workflows.iter().map(|w| w.name.as_str()).collect();
        if !names.is_empty() {
            return format!("execute: {}", cut(&names.join(", ")));
        }
    }
    match step.steps.len() {
        _ if step.reference == "root" => step.reference.clone(),
        0 => step.reference.clone(),
        1 => "group of 1 step".to_string(),
        n => format!("group of {n} steps"),
    }
}

/// The first non-blank line of `text`, at most [`COMMAND_CHARS`] characters, with `…` when
/// anything was left out.
fn cut(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    let more = lines.next().is_some();
    let mut out: String = first.chars().take(COMMAND_CHARS).collect();
    if more || first.chars().count() > COMMAND_CHARS {
        out = out.trim_end().to_string();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_cut_short() {
        assert_eq!(cut("pytest -q"), "pytest -q");
        assert_eq!(cut("\n  make\n  make test\n"), "make…");
        let long = "pytest -q tests/test_one.py tests/test_two.py tests/test_three.py";
        let got = cut(long);
        assert!(
            got.ends_with('…') && got.chars().count() <= COMMAND_CHARS + 1,
            "{got}"
        );
    }
}
