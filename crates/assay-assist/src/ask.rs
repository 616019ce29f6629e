//! Questions in plain words (`failed playwright tests this week for team payments`) into a
//! structured [`Query`], offline, by a small grammar: statuses, tools, workflows, labels (`team
//! X`, `label k=v`), tags (`k=v`), test names, time ranges (`today`, `yesterday`, `this week`,
//! `last 3 days`, `since 2026-11-02`) and their synonyms. A word the grammar does not know is
//! an error that names it, never dropped: a question is answered as asked or not at all.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::detect::Tool;

/// What the answer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// Executions (runs).
    #[default]
    Executions,
    /// Test cases of executions, from their JUnit reports.
    Tests,
    /// Tests judged flaky.
    Flaky,
}

/// A status word: of executions, or of test cases (`failed` covers JUnit errors too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
    Aborted,
    Canceled,
    Running,
    Queued,
}

/// The structured query a question means. Every field is a filter; all must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Query {
    #[serde(default)]
    pub subject: Subject,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<Tool>,
    /// Labels of the workflow (`team=payments`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
    /// Tags of the execution (`commit=abc`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// Part of a test's name or key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// From this time (unix ms, inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Until this time (unix ms, exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// The time range as the question said it (`this week`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// At most this many rows (`last 5 runs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl Query {
    /// Problems that make a query unusable (from an LLM, whose answer is checked like input).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s >= u
        {
            out.push("`since` is not before `until`".to_string());
        }
        for (k, v) in self.labels.iter().chain(&self.tags) {
            if k.is_empty() || v.is_empty() || k.len() > 253 || v.len() > 253 {
                out.push(format!("`{k}={v}` is not a key=value pair"));
            }
        }
        if self
            .workflow
            .as_ref()
            .is_some_and(|w| w.is_empty() || w.len() > 253)
        {
            out.push("`workflow` is empty or too long".to_string());
        }
        if self
            .test
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > 1000)
        {
            out.push("`test` is empty or too long".to_string());
        }
        if self.limit == Some(0) {
            out.push("`limit` is 0".to_string());
        }
        out
    }
}

impl fmt::Display for Query {
    /// One line: `tests · status failed · tool playwright · label team=payments · this week`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = vec![
            match self.subject {
                Subject::Executions => "executions",
                Subject::Tests => "tests",
                Subject::Flaky => "flaky tests",
            }
            .to_string(),
        ];
        if !self.statuses.is_empty() {
            let s: Vec<String> = self
                .statuses
                .iter()
                .map(|s| {
                    serde_json::to_value(s)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            parts.push(format!("status {}", s.join("|")));
        }
        if let Some(w) = &self.workflow {
            parts.push(format!("workflow {w}"));
        }
        if let Some(t) = self.tool {
            parts.push(format!("tool {t}"));
        }
        for (k, v) in &self.labels {
            parts.push(format!("label {k}={v}"));
        }
        for (k, v) in &self.tags {
            parts.push(format!("tag {k}={v}"));
        }
        if let Some(t) = &self.test {
            parts.push(format!("test ~ {t}"));
        }
        match (&self.range, self.since, self.until) {
            (Some(r), Some(s), u) => {
                let fmt_ms = |ms: i64| {
                    Utc.timestamp_millis_opt(ms)
                        .single()
                        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default()
                };
                let until = u.map(|u| format!(" to {}", fmt_ms(u))).unwrap_or_default();
                parts.push(format!("{r} (from {}{until} UTC)", fmt_ms(s)));
            }
            (Some(r), None, _) => parts.push(r.clone()),
            _ => {}
        }
        if let Some(l) = self.limit {
            parts.push(format!("at most {l}"));
        }
        f.write_str(&parts.join(" · "))
    }
}

/// Why a question was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("the question is empty")]
    Empty,
    #[error("unknown word{} in the question: {}", if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", "))]
    Unknown(Vec<String>),
    #[error("`{word}` needs {what} after it")]
    Missing { word: String, what: &'static str },
    #[error("`{0}` is not a date (YYYY-MM-DD)")]
    BadDate(String),
    #[error("the question asks for two {0}s")]
    Twice(&'static str),
}

impl AskError {
    /// What the grammar knows, for a hint.
    pub fn hint() -> &'static str {
        "the words assay ask knows: statuses (failed, passed, skipped, aborted, flaky, and synonyms such as failing, broken, green), \
tests or runs, tool names (pytest, playwright, jest, go, k6…), workflow NAME (or a stored workflow's name), team NAME, \
label k=v, k=v (a tag), test NAME or \"quoted text\", today, yesterday, this/last week|month, last N hours|days|weeks, \
since YYYY-MM-DD, last N runs"
    }
}

/// Words that carry no filter.
const FILLER: &[&str] = &[
    "a", "all", "an", "and", "any", "are", "did", "do", "does", "during", "every", "find", "for",
    "from", "get", "give", "has", "have", "how", "i", "in", "is", "list", "many", "me", "my", "of",
    "on", "our", "over", "please", "show", "that", "the", "there", "to", "was", "were", "what",
    "which", "who", "with", "within", "by", "happened", "ran", "run?", "ever",
];

/// What the parser knows beyond its grammar: the stored workflows' names.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    pub workflows: Vec<String>,
}

/// `question` as a [`Query`], with `now` for relative time ranges (UTC).
pub fn parse(question: &str, now: DateTime<Utc>, vocab: &Vocabulary) -> Result<Query, AskError> {
    let words = tokenize(question);
    if words.is_empty() {
        return Err(AskError::Empty);
    }
    let mut q = Query::default();
    let mut subject: Option<Subject> = None;
    let mut unknown = Vec::new();
    let mut i = 0;
    let set_range = |q: &mut Query,
                     range: String,
                     since: DateTime<Utc>,
                     until: Option<DateTime<Utc>>|
     -> Result<(), AskError> {
        if q.range.is_some() {
            return Err(AskError::Twice("time range"));
        }
        q.range = Some(range);
        q.since = Some(since.timestamp_millis());
        q.until = until.map(|u| u.timestamp_millis());
        Ok(())
    };
    let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap());
    let today = midnight(now.date_naive());
    let week_start = today - Duration::days(now.weekday().num_days_from_monday() as i64);
    let month_start = midnight(now.date_naive().with_day(1).unwrap());
    while i < words.len() {
        let w = words[i].text.as_str();
        let next = words.get(i + 1).map(|t| t.text.as_str());
        let quoted = words[i].quoted;
        if quoted {
            set_test(&mut q, &words[i].text)?;
            i += 1;
            continue;
        }
        // Status words.
        if let Some(s) = status_word(w) {
            if !q.statuses.contains(&s) {
                q.statuses.push(s);
            }
            i += 1;
            continue;
        }
        if matches!(w, "flaky" | "flakey" | "flakes" | "flake" | "unstable") {
            subject = Some(Subject::Flaky);
            i += 1;
            continue;
        }
        // Subjects.
        if matches!(
            w,
            "test" | "tests" | "case" | "cases" | "testcase" | "testcases" | "test-cases"
        ) {
            // `test NAME`: a name follows unless the next word is grammar.
            if w == "test"
                && let Some(n) = next
                && !is_grammar(n, vocab)
            {
                set_test(&mut q, n)?;
                if subject.is_none() {
                    subject = Some(Subject::Tests);
                }
                i += 2;
                continue;
            }
            if subject != Some(Subject::Flaky) {
                subject = Some(Subject::Tests);
            }
            i += 1;
            continue;
        }
        if matches!(
            w,
            "run" | "runs" | "execution" | "executions" | "build" | "builds" | "job" | "jobs"
        ) {
            subject = Some(subject.unwrap_or(Subject::Executions));
            i += 1;
            continue;
        }
        // Tools (`newman` is Postman's).
        if let Some(tool) = tool_word(w) {
            if q.tool.is_some_and(|t| t != tool) {
                return Err(AskError::Twice("tool"));
            }
            q.tool = Some(tool);
            i += 1;
            continue;
        }
        // Filters with an argument.
        match w {
            "workflow" | "workflows" | "suite" | "pipeline" => {
                let n = arg(&words, i, "a workflow name")?;
                if q.workflow.is_some() {
                    return Err(AskError::Twice("workflow"));
                }
                q.workflow = Some(n.to_string());
                i += 2;
                continue;
            }
            "team" | "squad" | "owner" | "owned" => {
                let mut j = i + 1;
                if w == "owned" && words.get(j).is_some_and(|t| t.text == "by") {
                    j += 1;
                }
                let n = words
                    .get(j)
                    .map(|t| t.text.clone())
                    .ok_or(AskError::Missing {
                        word: w.to_string(),
                        what: "a team name",
                    })?;
                let key = if w == "team" || w == "squad" {
                    "team"
                } else {
                    "owner"
                };
                q.labels.push((key.to_string(), n));
                i = j + 1;
                continue;
            }
            "label" | "labels" | "labelled" | "labeled" | "tag" | "tags" | "tagged" => {
                let n = arg(&words, i, "key=value")?;
                let Some((k, v)) = n.split_once('=') else {
                    return Err(AskError::Missing {
                        word: w.to_string(),
                        what: "key=value",
                    });
                };
                let pair = (k.to_string(), v.to_string());
                if w.starts_with("label") {
                    q.labels.push(pair);
                } else {
                    q.tags.push(pair);
                }
                i += 2;
                continue;
            }
            "named" | "called" | "matching" | "like" | "containing" => {
                let n = arg(&words, i, "a test name")?;
                set_test(&mut q, n)?;
                i += 2;
                continue;
            }
            "today" => {
                set_range(&mut q, "today".into(), today, None)?;
                i += 1;
                continue;
            }
            "yesterday" => {
                set_range(
                    &mut q,
                    "yesterday".into(),
                    today - Duration::days(1),
                    Some(today),
                )?;
                i += 1;
                continue;
            }
            "since" | "after" => {
                let n = arg(&words, i, "a date (YYYY-MM-DD)")?;
                let since = match n {
                    "yesterday" => today - Duration::days(1),
                    "today" => today,
                    _ => midnight(
                        NaiveDate::parse_from_str(n, "%Y-%m-%d")
                            .map_err(|_| AskError::BadDate(n.to_string()))?,
                    ),
                };
                set_range(&mut q, format!("since {n}"), since, None)?;
                i += 2;
                continue;
            }
            "before" | "until" => {
                let n = arg(&words, i, "a date (YYYY-MM-DD)")?;
                let until = midnight(
                    NaiveDate::parse_from_str(n, "%Y-%m-%d")
                        .map_err(|_| AskError::BadDate(n.to_string()))?,
                );
                if q.until.is_some() {
                    return Err(AskError::Twice("end date"));
                }
                q.until = Some(until.timestamp_millis());
                if q.range.is_none() {
                    q.range = Some(format!("before {n}"));
                } else if let Some(r) = &mut q.range {
                    r.push_str(&format!(" before {n}"));
                }
                i += 2;
                continue;
            }
            "this" | "current" => {
                match next {
                    Some("week") => set_range(&mut q, "this week".into(), week_start, None)?,
                    Some("month") => set_range(&mut q, "this month".into(), month_start, None)?,
                    Some("year") => {
                        let start = midnight(NaiveDate::from_ymd_opt(now.year(), 1, 1).unwrap());
                        set_range(&mut q, "this year".into(), start, None)?
                    }
                    _ => {
                        return Err(AskError::Missing {
                            word: w.to_string(),
                            what: "week, month or year",
                        });
                    }
                }
                i += 2;
                continue;
            }
            "last" | "past" | "recent" | "latest" | "previous" => {
                // last week / last month: the previous calendar week or month.
                match next {
                    Some("week") if w == "last" || w == "previous" => {
                        set_range(
                            &mut q,
                            "last week".into(),
                            week_start - Duration::days(7),
                            Some(week_start),
                        )?;
                        i += 2;
                        continue;
                    }
                    Some("month") if w == "last" || w == "previous" => {
                        let prev = (month_start - Duration::days(1))
                            .date_naive()
                            .with_day(1)
                            .unwrap();
                        set_range(
                            &mut q,
                            "last month".into(),
                            midnight(prev),
                            Some(month_start),
                        )?;
                        i += 2;
                        continue;
                    }
                    _ => {}
                }
                // last N hours|days|weeks, last N runs|tests, last day|hour.
                let (n, unit_at) = match next.and_then(|n| n.parse::<u32>().ok()) {
                    Some(n) => (n, i + 2),
                    None => (1, i + 1),
                };
                let unit = words.get(unit_at).map(|t| t.text.as_str());
                let span = match unit {
                    Some("hour" | "hours" | "h") => Some(Duration::hours(n as i64)),
                    Some("day" | "days" | "d") => Some(Duration::days(n as i64)),
                    Some("week" | "weeks" | "w") => Some(Duration::weeks(n as i64)),
                    Some("month" | "months") => Some(Duration::days(30 * n as i64)),
                    _ => None,
                };
                if let Some(span) = span {
                    let text = format!("last {n} {}", unit.unwrap());
                    set_range(&mut q, text, now - span, None)?;
                    i = unit_at + 1;
                    continue;
                }
                if unit_at == i + 2 {
                    // `last 5` (runs, tests…): a limit; the subject word comes next.
                    q.limit = Some(n.clamp(1, 1000));
                    i = unit_at;
                    continue;
                }
                // `latest failures`: newest first is the default order anyway.
                i += 1;
                continue;
            }
            _ => {}
        }
        // `k=v`: a tag.
        if let Some((k, v)) = w.split_once('=')
            && !k.is_empty()
            && !v.is_empty()
        {
            q.tags.push((k.to_string(), v.to_string()));
            i += 1;
            continue;
        }
        // A stored workflow's name.
        if let Some(name) = vocab.workflows.iter().find(|n| n.eq_ignore_ascii_case(w)) {
            if q.workflow.as_ref().is_some_and(|x| x != name) {
                return Err(AskError::Twice("workflow"));
            }
            q.workflow = Some(name.clone());
            i += 1;
            continue;
        }
        if FILLER.contains(&w) || w == "week" {
            i += 1;
            continue;
        }
        unknown.push(words[i].text.clone());
        i += 1;
    }
    if !unknown.is_empty() {
        return Err(AskError::Unknown(unknown));
    }
    // Statuses or a test name without a subject word: tests when the question names a test.
    q.subject = subject.unwrap_or(if q.test.is_some() {
        Subject::Tests
    } else {
        Subject::Executions
    });
    Ok(q)
}

fn set_test(q: &mut Query, name: &str) -> Result<(), AskError> {
    if q.test.is_some() {
        return Err(AskError::Twice("test name"));
    }
    q.test = Some(name.to_string());
    Ok(())
}

fn arg<'a>(words: &'a [Word], i: usize, what: &'static str) -> Result<&'a str, AskError> {
    words
        .get(i + 1)
        .map(|t| t.text.as_str())
        .ok_or_else(|| AskError::Missing {
            word: words[i].text.clone(),
            what,
        })
}

fn status_word(w: &str) -> Option<Status> {
    Some(match w {
        "failed" | "failing" | "fail" | "fails" | "failure" | "failures" | "broken" | "red"
        | "errored" | "error" | "errors" | "erroring" => Status::Failed,
        "passed" | "passing" | "pass" | "passes" | "green" | "successful" | "succeeded"
        | "success" | "ok" => Status::Passed,
        "skipped" | "skip" | "skips" | "ignored" | "disabled" => Status::Skipped,
        "aborted" | "abort" | "killed" | "timedout" => Status::Aborted,
        "canceled" | "cancelled" => Status::Canceled,
        "running" | "ongoing" | "active" => Status::Running,
        "queued" | "pending" | "waiting" => Status::Queued,
        _ => return None,
    })
}

fn tool_word(w: &str) -> Option<Tool> {
    match w {
        "golang" | "gotest" => Some(Tool::Go),
        _ => Tool::parse(w),
    }
}

/// Whether a word means something to the grammar (so it is not a test name after `test`).
fn is_grammar(w: &str, vocab: &Vocabulary) -> bool {
    status_word(w).is_some()
        || tool_word(w).is_some()
        || FILLER.contains(&w)
        || vocab.workflows.iter().any(|n| n.eq_ignore_ascii_case(w))
        || matches!(
            w,
            "today"
                | "yesterday"
                | "this"
                | "last"
                | "past"
                | "since"
                | "workflow"
                | "team"
                | "label"
                | "tag"
                | "named"
                | "runs"
                | "results"
                | "history"
        )
}

struct Word {
    text: String,
    quoted: bool,
}

/// Words in lowercase without trailing punctuation; `"quoted text"` and `'quoted text'` stay
/// one word, as written.
fn tokenize(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            chars.next();
            let quoted: String = chars.by_ref().take_while(|&x| x != c).collect();
            if !quoted.is_empty() {
                out.push(Word {
                    text: quoted,
                    quoted: true,
                });
            }
            continue;
        }
        let mut word = String::new();
        while let Some(&x) = chars.peek() {
            if x.is_whitespace() {
                break;
            }
            word.push(x);
            chars.next();
        }
        let word = word.trim_end_matches(['?', '!', ',', '.', ';', ':']);
        let word = word
            .trim_start_matches(['(', '['])
            .trim_end_matches([')', ']']);
        if !word.is_empty() {
            out.push(Word {
                text: if word.contains('=') {
                    word.to_string()
                } else {
                    word.to_lowercase()
                },
                quoted: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wednesday 2026-12-02 15:00 UTC.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 15, 0, 0).unwrap()
    }

    fn ask(q: &str) -> Result<Query, AskError> {
        parse(
            q,
            now(),
            &Vocabulary {
                workflows: vec!["checkout-e2e".into()],
            },
        )
    }

    fn ms(y: i32, m: u32, d: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn the_issue_example() {
        let q = ask("failed playwright tests this week for team payments").unwrap();
        assert_eq!(q.subject, Subject::Tests);
        assert_eq!(q.statuses, [Status::Failed]);
        assert_eq!(q.tool, Some(Tool::Playwright));
        assert_eq!(q.labels, [("team".to_string(), "payments".to_string())]);
        assert_eq!(q.since, Some(ms(2026, 11, 30)), "monday");
        assert_eq!(q.until, None);
        assert_eq!(
            q.to_string(),
            "tests · status failed · tool playwright · label team=payments · this week (from 2026-11-30 00:00 UTC)"
        );
    }

    #[test]
    fn time_ranges() {
        let q = ask("runs yesterday").unwrap();
        assert_eq!(
            (q.since, q.until),
            (Some(ms(2026, 12, 1)), Some(ms(2026, 12, 2)))
        );
        let q = ask("runs today").unwrap();
        assert_eq!(q.since, Some(ms(2026, 12, 2)));
        let q = ask("failures in the last 3 days").unwrap();
        assert_eq!(q.since, Some(now().timestamp_millis() - 3 * 86_400_000));
        assert_eq!(q.subject, Subject::Executions);
        let q = ask("failing builds since 2026-11-15").unwrap();
        assert_eq!(q.since, Some(ms(2026, 11, 15)));
        let q = ask("last week").unwrap();
        assert_eq!(
            (q.since, q.until),
            (Some(ms(2026, 11, 23)), Some(ms(2026, 11, 30)))
        );
        let q = ask("passed runs last month").unwrap();
        assert_eq!(
            (q.since, q.until),
            (Some(ms(2026, 11, 1)), Some(ms(2026, 12, 1)))
        );
        let q = ask("last 24 hours").unwrap();
        assert_eq!(q.range.as_deref(), Some("last 24 hours"));
        assert_eq!(ask("since then"), Err(AskError::BadDate("then".into())));
        assert_eq!(ask("today yesterday"), Err(AskError::Twice("time range")));
    }

    #[test]
    fn filters_and_synonyms() {
        let q = ask("broken tests of workflow api tagged commit=abc12").unwrap();
        assert_eq!(q.statuses, [Status::Failed]);
        assert_eq!(q.workflow.as_deref(), Some("api"));
        assert_eq!(q.tags, [("commit".to_string(), "abc12".to_string())]);
        let q = ask("green checkout-e2e runs with env=staging").unwrap();
        assert_eq!(q.statuses, [Status::Passed]);
        assert_eq!(q.workflow.as_deref(), Some("checkout-e2e"));
        assert_eq!(q.tags, [("env".to_string(), "staging".to_string())]);
        let q = ask("history of test test_add").unwrap_err();
        assert_eq!(q, AskError::Unknown(vec!["history".into()]));
        let q = ask("test test_add").unwrap();
        assert_eq!(
            (q.subject, q.test.as_deref()),
            (Subject::Tests, Some("test_add"))
        );
        let q = ask("failures named \"Checkout Flow\" label tier=1").unwrap();
        assert_eq!(q.test.as_deref(), Some("Checkout Flow"));
        assert_eq!(q.subject, Subject::Tests);
        assert_eq!(q.labels, [("tier".to_string(), "1".to_string())]);
        let q = ask("flaky pytest tests").unwrap();
        assert_eq!((q.subject, q.tool), (Subject::Flaky, Some(Tool::Pytest)));
        let q = ask("newman runs").unwrap();
        assert_eq!(q.tool, Some(Tool::Postman));
        let q = ask("last 5 failed runs").unwrap();
        assert_eq!(
            (q.limit, q.statuses.as_slice()),
            (Some(5), &[Status::Failed][..])
        );
    }

    #[test]
    fn unknown_words_are_reported_never_dropped() {
        assert_eq!(
            ask("failed tests for the bananas team payments quickly"),
            Err(AskError::Unknown(vec!["bananas".into(), "quickly".into()]))
        );
        assert_eq!(
            AskError::Unknown(vec!["x".into()]).to_string(),
            "unknown word in the question: `x`"
        );
        assert_eq!(ask("  ?"), Err(AskError::Empty));
        assert!(matches!(
            ask("failed tests for team"),
            Err(AskError::Missing { .. })
        ));
    }

    #[test]
    fn queries_round_trip_as_json_and_bad_ones_are_found() {
        let q = ask("failed playwright tests this week for team payments").unwrap();
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<Query>(&json).unwrap(), q);
        assert!(serde_json::from_str::<Query>(r#"{"subject": "tests", "drop": "table"}"#).is_err());
        let bad = Query {
            since: Some(10),
            until: Some(5),
            limit: Some(0),
            ..Query::default()
        };
        assert_eq!(bad.problems().len(), 2);
    }
}
