//! What `assay run` shows people on stderr: each step's start and end with its status, the
//! log lines, a progress bar per parallel step on a terminal, and the verdict at the end.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use assay_engine::{ServiceState, WorkerState};
use assay_runner::StepNames;
use assay_spec::plan::Plan;
use assay_spec::status::{ExecutionStatus, StepStatus};
use assay_store::Store;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A step's label: its name by ref ([`StepNames`]), else the name the event gave, else the ref.
pub(super) fn display_name(names: &StepNames, reference: &str, fallback: &str) -> String {
    names.get(reference).cloned().unwrap_or_else(|| {
        if fallback.is_empty() {
            reference.to_string()
        } else {
            fallback.to_string()
        }
    })
}

/// Terminal output for people, on stderr: colour only on a terminal without `NO_COLOR`; a
/// progress bar per parallel step on a terminal (indicatif draws nothing elsewhere).
pub(crate) struct Ui {
    quiet: bool,
    color: bool,
    bars: MultiProgress,
    workers: RefCell<HashMap<String, ProgressBar>>,
}

impl Ui {
    pub(crate) fn new(quiet: bool) -> Self {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let bars = if quiet {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::new()
        };
        Self {
            quiet,
            color,
            bars,
            workers: RefCell::new(HashMap::new()),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Print lines above the progress bars.
    fn lines(&self, text: &str) {
        self.bars.suspend(|| {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
        });
    }

    pub(super) fn header(&self, exec: &str, workflow: &str, plan: &Plan) {
        self.header_notes(exec, workflow, &plan.notes);
    }

    /// `running NAME (WORKFLOW) on PLACE`, for a run on a server.
    pub(crate) fn header_at(&self, exec: &str, workflow: &str, place: &str) {
        self.lines(&format!(
            "{} {exec} ({workflow}) on {place}\n",
            self.paint("1", "running")
        ));
    }

    /// `running NAME (WORKFLOW)`, then the plan's notes.
    pub(crate) fn header_notes(&self, exec: &str, workflow: &str, notes: &[String]) {
        let mut out = format!("{} {exec} ({workflow})\n", self.paint("1", "running"));
        for note in notes {
            out.push_str(&format!("{}: {note}\n", self.paint("2", "note")));
        }
        self.lines(&out);
    }

    pub(crate) fn step_started(&self, name: &str) {
        if !self.quiet {
            self.lines(&format!("{} {name}\n", self.paint("36", "▶")));
        }
    }

    pub(crate) fn log(&self, name: &str, text: &str) {
        if self.quiet {
            return;
        }
        let prefix = self.paint("2", &format!("{name} |"));
        let mut out = String::with_capacity(text.len() + 32);
        for line in text.lines() {
            if self.color {
                out.push_str(&format!("  {prefix} {line}\n"));
            } else {
                // Plain text: the step's own colour codes go too (the stored log keeps them).
                let line = anstream::adapter::strip_str(line);
                out.push_str(&format!("  {prefix} {line}\n"));
            }
        }
        self.lines(&out);
    }

    pub(super) fn step_finished(&self, name: &str, r: &assay_engine::StepResult) {
        let secs = r
            .started_at
            .and_then(|a| r.finished_at.duration_since(a).ok())
            .map(|d| d.as_secs_f64());
        self.step_ended(name, r.status, secs, r.exit_code.map(i64::from));
    }

    /// A step's end: its status, how long it ran and its exit code when it failed.
    pub(crate) fn step_ended(
        &self,
        name: &str,
        status: StepStatus,
        secs: Option<f64>,
        exit_code: Option<i64>,
    ) {
        if self.quiet {
            return;
        }
        let secs = match secs {
            Some(d) => format!(" {d:.2}s"),
            None => String::new(),
        };
        let (symbol, code) = status_symbol(status);
        let detail = match (status, exit_code) {
            (StepStatus::Passed | StepStatus::Skipped, _) => String::new(),
            (_, Some(c)) => format!(" (exit code {c})"),
            _ => String::new(),
        };
        self.lines(&format!(
            "{} {name} {}{secs}{detail}\n",
            self.paint(code, symbol),
            status
        ));
    }

    /// A warning about a step, shown even with `--quiet` (the store keeps it in the step's log).
    pub(crate) fn warning(&self, name: &str, message: &str) {
        self.lines(&format!(
            "{}: {name}: {message}\n",
            self.paint("33", "warning")
        ));
    }

    pub(super) fn service(&self, name: &str, index: u64, state: &assay_engine::ServiceState) {
        if self.quiet {
            return;
        }
        let what = match state {
            ServiceState::Starting => "starting".to_string(),
            ServiceState::Ready { ip } => format!("ready at {ip}"),
            ServiceState::Failed { reason } => format!("failed: {reason}"),
            ServiceState::Stopped => "stopped".to_string(),
        };
        self.lines(&format!(
            "  {} service {name}/{index} {what}\n",
            self.paint("35", "◆")
        ));
    }

    /// Parallel workers of one step as a progress bar: finished of count.
    pub(super) fn worker(&self, step: &str, count: u64, state: &WorkerState) {
        let mut workers = self.workers.borrow_mut();
        let bar = workers.entry(step.to_string()).or_insert_with(|| {
            let bar = self.bars.add(ProgressBar::new(count));
            bar.set_style(
                ProgressStyle::with_template("  {prefix} [{bar:30}] {pos}/{len} workers {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(step.to_string());
            bar
        });
        if let WorkerState::Finished { status } = state {
            bar.inc(1);
            if *status != ExecutionStatus::Passed {
                bar.set_message(format!("(a worker {status})"));
            }
            if bar.position() >= bar.length().unwrap_or(0) {
                bar.finish_and_clear();
            }
        }
    }

    pub(super) fn summary(
        &self,
        e: &assay_store::Execution,
        names: &StepNames,
        tails: &HashMap<String, Vec<String>>,
        store: &Store,
    ) {
        let s = &e.summary;
        // The same rule as MCP and the server: not simply the first step that failed (an
        // optional one may have failed first without failing the run).
        let failed = assay_store::blame::failed_step(e).map(|r| FailedStep {
            name: display_name(names, &r.step_ref, ""),
            reference: r.step_ref.clone(),
            status: r.status,
            exit_code: r.exit_code,
            error: r.error_message.clone(),
        });
        self.verdict(&Verdict {
            name: &s.name,
            status: s.status,
            duration_ms: match (s.started_at, s.finished_at) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
            error: s.error_message.as_deref(),
            failed,
            tails,
            artifacts: e.artifacts.len(),
            artifacts_location: store.files_location(),
            children: &e.children,
            dashboard: None,
            quarantined: &e
                .steps
                .iter()
                .flat_map(|st| st.quarantined_failures.iter().cloned())
                .collect::<Vec<_>>(),
        });
    }

    /// The summary after a run, the same for a run here and on a server.
    pub(crate) fn verdict(&self, v: &Verdict<'_>) {
        let duration = match v.duration_ms {
            Some(ms) => format!(" in {:.2}s", ms.max(0) as f64 / 1000.0),
            None => String::new(),
        };
        let code = match v.status {
            ExecutionStatus::Passed => "32",
            _ => "31",
        };
        eprintln!();
        eprintln!(
            "{} {}{duration}",
            v.name,
            self.paint(&format!("1;{code}"), v.status.as_str())
        );
        if let Some(err) = v.error {
            eprintln!("  reason: {err}");
        }
        if !v.quarantined.is_empty() {
            eprintln!(
                "  quarantined failures (they did not fail the run): {} — `assay quarantine list`",
                v.quarantined.join(", ")
            );
        }
        // The innermost failing step says most; its parents fail because of it. An optional
        // step that failed in a passing execution is not the story.
        if v.status != ExecutionStatus::Passed
            && let Some(f) = &v.failed
        {
            let code = f
                .exit_code
                .map(|c| format!(", exit code {c}"))
                .unwrap_or_default();
            eprintln!(
                "  failed step: {} [{}] {}{code}",
                f.name, f.reference, f.status
            );
            if let Some(msg) = &f.error {
                eprintln!("  {msg}");
            }
            if let Some(lines) = v.tails.get(&f.reference) {
                let start = lines.len().saturating_sub(10);
                for l in &lines[start..] {
                    if self.color {
                        eprintln!("    {l}");
                    } else {
                        eprintln!("    {}", anstream::adapter::strip_str(l));
                    }
                }
            }
        }
        // `execute` started these executions: each is named, with where to look.
        for c in v.children {
            let link = v
                .dashboard
                .map(|base| format!(", {base}/executions/{}", c.id))
                .unwrap_or_default();
            eprintln!(
                "  executed: {} ({}) {} — `assay get execution {}`{link}",
                c.name,
                c.workflow,
                self.paint(
                    if c.status == ExecutionStatus::Passed {
                        "32"
                    } else {
                        "31"
                    },
                    c.status.as_str()
                ),
                c.name
            );
        }
        if v.artifacts > 0 {
            eprintln!(
                "  artifacts: {} file(s) in {} — `assay artifacts {}`",
                v.artifacts, v.artifacts_location, v.name
            );
        }
        eprintln!("  logs: `assay logs {}`", v.name);
    }
}

/// The step a failed run is explained by.
pub(crate) struct FailedStep {
    pub name: String,
    pub reference: String,
    pub status: StepStatus,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
}

/// What the summary of a run shows.
pub(crate) struct Verdict<'a> {
    pub name: &'a str,
    pub status: ExecutionStatus,
    pub duration_ms: Option<i64>,
    pub error: Option<&'a str>,
    pub failed: Option<FailedStep>,
    /// The last lines of each step.
    pub tails: &'a HashMap<String, Vec<String>>,
    pub artifacts: usize,
    pub artifacts_location: String,
    /// The executions the run's `execute` steps started.
    pub children: &'a [assay_store::ChildExecution],
    /// The server's address, for dashboard links (a remote run).
    pub dashboard: Option<&'a str>,
    /// Failed tests that did not fail the run: they are quarantined.
    pub quarantined: &'a [String],
}

fn status_symbol(s: StepStatus) -> (&'static str, &'static str) {
    match s {
        StepStatus::Passed => ("✔", "32"),
        StepStatus::Skipped => ("○", "2"),
        StepStatus::Timeout => ("⏱", "31"),
        StepStatus::Aborted | StepStatus::Canceled => ("■", "33"),
        _ => ("✘", "31"),
    }
}
