//! What changed between the last passing execution and this one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use assay_api::analysis::{Change, Diff, Slower};
use assay_reports::CaseStatus;
use assay_store::{ConfigValue, StepResult};

use crate::lines::{clean_line, looks_like_error, shape};
use crate::{Baseline, Facts, brief, commit_of, failing_cases};

/// Lines of a changed definition, new log lines and slower items listed at most.
const MAX_LINES: usize = 12;

pub(crate) fn diff(facts: &Facts<'_>, base: &Baseline<'_>) -> Diff {
    let now = Baseline {
        execution: facts.execution,
        tests: facts.tests,
        step_log: facts.step_log,
    };
    compare(base, &now)
}

/// What changed from `base` (an earlier execution) to `facts` (a later one): commit,
/// definition, config, tags, durations that jumped, tests that newly fail, new log lines of
/// the step the logs are of.
pub fn compare(base: &Baseline<'_>, facts: &Baseline<'_>) -> Diff {
    let now = facts.execution;
    let then = base.execution;
    let (c0, c1) = (commit_of(then), commit_of(now));
    let commit = (c0 != c1).then(|| Change {
        name: "commit".into(),
        before: c0,
        after: c1,
    });
    Diff {
        last_pass: brief(then),
        commit,
        definition: definition_diff(&then.definition, &now.definition),
        config: config_diff(&then.config, &now.config),
        tags: map_diff(
            then.tags
                .iter()
                .filter(|(k, _)| *k != "commit")
                .map(|(k, v)| (k, Some(v.clone()))),
            now.tags
                .iter()
                .filter(|(k, _)| *k != "commit")
                .map(|(k, v)| (k, Some(v.clone()))),
        ),
        slower: slower(facts, base),
        newly_failing: {
            let passed_then: HashSet<&str> = base
                .tests
                .iter()
                .filter(|t| t.case.status == CaseStatus::Passed)
                .map(|t| t.key.as_str())
                .collect();
            failing_cases(facts.tests)
                .into_iter()
                .filter(|t| passed_then.contains(t.key.as_str()))
                .map(|t| t.key.clone())
                .take(MAX_LINES)
                .collect()
        },
        new_log_lines: new_lines(base.step_log, facts.step_log),
    }
}

fn definition_diff(then: &str, now: &str) -> Vec<String> {
    if then == now {
        return Vec::new();
    }
    let a: BTreeSet<&str> = then.lines().map(str::trim_end).collect();
    let b: BTreeSet<&str> = now.lines().map(str::trim_end).collect();
    let mut out: Vec<String> = then
        .lines()
        .map(str::trim_end)
        .filter(|l| !b.contains(l) && !l.trim().is_empty())
        .map(|l| format!("- {}", crate::lines::clip(l, 200)))
        .collect();
    out.extend(
        now.lines()
            .map(str::trim_end)
            .filter(|l| !a.contains(l) && !l.trim().is_empty())
            .map(|l| format!("+ {}", crate::lines::clip(l, 200))),
    );
    if out.is_empty() {
        out.push("(the same lines in another order)".into());
    }
    out.truncate(MAX_LINES);
    out
}

fn config_value(v: &ConfigValue) -> Option<String> {
    v.value.clone().or_else(|| v.default_value.clone())
}

fn config_diff(
    then: &BTreeMap<String, ConfigValue>,
    now: &BTreeMap<String, ConfigValue>,
) -> Vec<Change> {
    map_diff(
        then.iter().map(|(k, v)| (k, config_value(v))),
        now.iter().map(|(k, v)| (k, config_value(v))),
    )
}

fn map_diff<'a>(
    then: impl Iterator<Item = (&'a String, Option<String>)>,
    now: impl Iterator<Item = (&'a String, Option<String>)>,
) -> Vec<Change> {
    let then: BTreeMap<&String, Option<String>> = then.collect();
    let now: BTreeMap<&String, Option<String>> = now.collect();
    let keys: BTreeSet<&&String> = then.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (b, a) = (
                then.get(*k).cloned().flatten(),
                now.get(*k).cloned().flatten(),
            );
            (b != a || then.contains_key(*k) != now.contains_key(*k)).then(|| Change {
                name: (*k).clone(),
                before: b,
                after: a,
            })
        })
        .collect()
}

fn step_ms(s: &StepResult) -> Option<u64> {
    Some((s.finished_at? - s.started_at?).max(0) as u64)
}

fn jumped(before: u64, after: u64) -> bool {
    after >= before.saturating_mul(2) && after.saturating_sub(before) >= 1000
}

fn slower(facts: &Baseline<'_>, base: &Baseline<'_>) -> Vec<Slower> {
    let then: HashMap<&str, &StepResult> = base
        .execution
        .steps
        .iter()
        .map(|s| (s.step_ref.as_str(), s))
        .collect();
    let mut out: Vec<Slower> = facts
        .execution
        .steps
        .iter()
        .filter(|s| s.step_ref != "root")
        .filter_map(|s| {
            let before = step_ms(then.get(s.step_ref.as_str())?)?;
            let after = step_ms(s)?;
            jumped(before, after).then(|| Slower {
                name: format!("step {}", s.name.as_deref().unwrap_or(&s.step_ref)),
                before_ms: before,
                after_ms: after,
            })
        })
        .collect();
    let tests_then: HashMap<&str, u64> = base
        .tests
        .iter()
        .filter_map(|t| Some((t.key.as_str(), t.case.duration_ms?)))
        .collect();
    out.extend(facts.tests.iter().filter_map(|t| {
        let before = *tests_then.get(t.key.as_str())?;
        let after = t.case.duration_ms?;
        jumped(before, after).then(|| Slower {
            name: format!("test {}", t.key),
            before_ms: before,
            after_ms: after,
        })
    }));
    out.sort_by_key(|s| std::cmp::Reverse(s.after_ms.saturating_sub(s.before_ms)));
    out.truncate(MAX_LINES);
    out
}

/// Lines of `now` whose shape `then` lacks: error-like ones first, each once.
fn new_lines(then: &[String], now: &[String]) -> Vec<String> {
    let known: HashSet<String> = then.iter().map(|l| shape(&clean_line(l))).collect();
    let mut seen = HashSet::new();
    let fresh: Vec<(usize, String)> = now
        .iter()
        .enumerate()
        .map(|(i, l)| (i, clean_line(l)))
        .filter(|(_, l)| !l.trim().is_empty())
        .filter(|(_, l)| {
            let s = shape(l);
            !known.contains(&s) && seen.insert(s)
        })
        .collect();
    let mut picked: Vec<&(usize, String)> =
        fresh.iter().filter(|(_, l)| looks_like_error(l)).collect();
    picked.extend(fresh.iter().filter(|(_, l)| !looks_like_error(l)));
    picked.truncate(MAX_LINES);
    picked.sort_by_key(|(i, _)| *i);
    picked
        .into_iter()
        .map(|(i, l)| format!("{}: {l}", i + 1))
        .collect()
}

/// The diff as evidence lines.
pub fn describe(d: &Diff) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = &d.commit {
        out.push(format!(
            "commit {} -> {}",
            c.before.as_deref().unwrap_or("(none)"),
            c.after.as_deref().unwrap_or("(none)")
        ));
    }
    if !d.definition.is_empty() {
        out.push(format!("definition changed: {}", d.definition.join(" | ")));
    }
    for c in &d.config {
        out.push(format!(
            "config {}: {} -> {}",
            c.name,
            c.before.as_deref().unwrap_or("(unset)"),
            c.after.as_deref().unwrap_or("(unset)")
        ));
    }
    for s in d.slower.iter().take(3) {
        out.push(format!(
            "{} took {} ms (was {} ms)",
            s.name, s.after_ms, s.before_ms
        ));
    }
    for l in d.new_log_lines.iter().take(3) {
        out.push(format!("new log line {l}"));
    }
    out
}

/// What changed, in a few words.
pub(crate) fn changed_what(d: &Diff) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &d.commit {
        parts.push(format!("commit {}", c.after.as_deref().unwrap_or("(none)")));
    }
    if !d.definition.is_empty() {
        parts.push("the definition".to_string());
    }
    if !d.config.is_empty() {
        let names: Vec<&str> = d.config.iter().map(|c| c.name.as_str()).collect();
        parts.push(format!("config {}", names.join(", ")));
    }
    if !d.tags.is_empty() {
        parts.push("tags".into());
    }
    parts.join(", ")
}
