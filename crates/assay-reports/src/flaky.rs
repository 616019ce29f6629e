//! Flaky-test detection over one test's history.
//!
//! A test is **flaky** when, within the window, it both passed and failed on the same commit,
//! or it failed and then passed on a retry; the flag clears once the test has passed a number
//! of times in a row after its last flake. A test that fails every time is **broken**, not
//! flaky: nothing about it is random.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// How the verdict is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlakyPolicy {
    /// Only runs this recent (milliseconds before "now") count. Default 14 days.
    pub window_ms: i64,
    /// Passes in a row after the last flake that clear the flag. Default 5.
    pub clear_after_passes: u32,
}

impl Default for FlakyPolicy {
    fn default() -> Self {
        Self {
            window_ms: 14 * 24 * 60 * 60 * 1000,
            clear_after_passes: 5,
        }
    }
}

/// One run of a test, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// When it ran (unix milliseconds).
    pub at: i64,
    /// The commit it ran on, when known (`commit` tag or CI commit).
    pub commit: Option<String>,
    /// Whether it passed (skipped runs are left out by the caller or here).
    pub outcome: Outcome,
    /// Whether this run was a retry of an earlier run in the same execution (a step retry, or a
    /// rerun by the test runner itself).
    pub retry: bool,
}

/// The result of one run as flaky detection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    /// Failed or error.
    Failed,
    /// Does not count either way.
    Skipped,
}

/// Why a test is flaky.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum FlakyReason {
    /// Passed and failed on this commit.
    SameCommit { commit: String },
    /// Failed, then passed on a retry.
    PassedOnRetry,
}

/// The judgement over one test's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub flaky: bool,
    /// Failed on every counted run (at least one).
    pub broken: bool,
    /// The most recent flake in the window (even when cleared since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FlakyReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_flake_at: Option<i64>,
    /// Passes in a row since the last flake (or since the first counted run).
    pub passes_since: u32,
    /// Counted runs in the window.
    pub runs: u32,
    pub failures: u32,
}

/// Judge one test's `runs` (any order) at time `now`.
pub fn assess(runs: &[Run], policy: &FlakyPolicy, now: i64) -> Verdict {
    let mut runs: Vec<&Run> = runs
        .iter()
        .filter(|r| r.outcome != Outcome::Skipped && r.at >= now - policy.window_ms)
        .collect();
    // Stable: runs at the same millisecond keep the caller's order (a retry after its failure).
    runs.sort_by_key(|r| r.at);

    let failures = runs.iter().filter(|r| r.outcome == Outcome::Failed).count() as u32;
    let mut last_flake: Option<(usize, FlakyReason)> = None;
    // Per commit: index of its last pass and last failure so far.
    let mut seen: HashMap<&str, (Option<usize>, Option<usize>)> = HashMap::new();
    for (i, run) in runs.iter().enumerate() {
        if run.retry
            && run.outcome == Outcome::Passed
            && i > 0
            && runs[i - 1].outcome == Outcome::Failed
        {
            last_flake = Some((i, FlakyReason::PassedOnRetry));
        }
        if let Some(commit) = run.commit.as_deref() {
            let entry = seen.entry(commit).or_default();
            let conflict = match run.outcome {
                Outcome::Passed => entry.1.is_some(),
                Outcome::Failed => entry.0.is_some(),
                Outcome::Skipped => false,
            };
            match run.outcome {
                Outcome::Passed => entry.0 = Some(i),
                Outcome::Failed => entry.1 = Some(i),
                Outcome::Skipped => {}
            }
            if conflict && last_flake.as_ref().is_none_or(|(j, _)| *j < i) {
                last_flake = Some((
                    i,
                    FlakyReason::SameCommit {
                        commit: commit.to_string(),
                    },
                ));
            }
        }
    }
    let start = last_flake.as_ref().map_or(0, |(i, _)| *i + 1);
    let passes_since = runs[start.min(runs.len())..]
        .iter()
        .take_while(|r| r.outcome == Outcome::Passed)
        .count() as u32;
    let flaky = last_flake.is_some() && passes_since < policy.clear_after_passes;
    Verdict {
        flaky,
        broken: !runs.is_empty() && failures as usize == runs.len(),
        last_flake_at: last_flake.as_ref().map(|(i, _)| runs[*i].at),
        reason: last_flake.map(|(_, r)| r),
        passes_since,
        runs: runs.len() as u32,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * 60 * 1000;

    fn run(at: i64, commit: &str, outcome: Outcome) -> Run {
        Run {
            at,
            commit: Some(commit.to_string()),
            outcome,
            retry: false,
        }
    }
    use Outcome::{Failed as F, Passed as P};

    #[test]
    fn pass_and_fail_on_one_commit_is_flaky() {
        let runs = [run(1, "a", P), run(2, "a", F), run(3, "a", P)];
        let v = assess(&runs, &FlakyPolicy::default(), 10);
        assert!(v.flaky);
        assert_eq!(
            v.reason,
            Some(FlakyReason::SameCommit { commit: "a".into() })
        );
        assert_eq!(v.last_flake_at, Some(3));
    }

    #[test]
    fn failing_on_a_new_commit_then_fixed_is_not_flaky() {
        let runs = [run(1, "a", P), run(2, "b", F), run(3, "c", P)];
        let v = assess(&runs, &FlakyPolicy::default(), 10);
        assert!(!v.flaky);
        assert!(!v.broken);
    }

    #[test]
    fn broken_tests_are_not_flaky() {
        let runs = [run(1, "a", F), run(2, "a", F), run(3, "b", F)];
        let v = assess(&runs, &FlakyPolicy::default(), 10);
        assert!(!v.flaky);
        assert!(v.broken);
    }

    #[test]
    fn passing_on_a_retry_is_flaky() {
        let mut retry = run(2, "a", P);
        retry.retry = true;
        let runs = [run(1, "a", F), retry];
        let v = assess(&runs, &FlakyPolicy::default(), 10);
        assert!(v.flaky);
        assert_eq!(v.reason, Some(FlakyReason::PassedOnRetry));
        // Without a commit the retry rule still holds.
        let runs: Vec<Run> = runs
            .into_iter()
            .map(|r| Run { commit: None, ..r })
            .collect();
        assert!(assess(&runs, &FlakyPolicy::default(), 10).flaky);
    }

    #[test]
    fn the_flag_clears_after_enough_passes_in_a_row() {
        let mut runs = vec![run(1, "a", P), run(2, "a", F)];
        for i in 0..4 {
            runs.push(run(10 + i, "b", P));
        }
        let policy = FlakyPolicy::default();
        assert!(assess(&runs, &policy, 100).flaky);
        runs.push(run(20, "c", P));
        let v = assess(&runs, &policy, 100);
        assert!(!v.flaky, "{v:?}");
        assert_eq!(v.passes_since, 5);
        let strict = FlakyPolicy {
            clear_after_passes: 6,
            ..policy
        };
        assert!(assess(&runs, &strict, 100).flaky);
    }

    #[test]
    fn old_flakes_leave_the_window() {
        let runs = [run(0, "a", P), run(DAY, "a", F)];
        let policy = FlakyPolicy::default();
        assert!(assess(&runs, &policy, 2 * DAY).flaky);
        assert!(!assess(&runs, &policy, 15 * DAY).flaky);
        let short = FlakyPolicy {
            window_ms: DAY / 2,
            ..policy
        };
        assert!(!assess(&runs, &short, 2 * DAY).flaky);
    }

    #[test]
    fn skipped_runs_do_not_count() {
        let runs = [run(1, "a", Outcome::Skipped), run(2, "a", P)];
        let v = assess(&runs, &FlakyPolicy::default(), 10);
        assert!(!v.flaky);
        assert_eq!(v.runs, 1);
    }
}
