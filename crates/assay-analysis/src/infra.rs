//! Rule 1: failures of the infrastructure rather than of the code under test.

use std::sync::LazyLock;

use assay_api::analysis::{FailingStep, FailureClass, Verdict};
use assay_store::{StepStatus, StoredTestCase};
use regex::Regex;

use crate::Facts;
use crate::lines::{clean_line, clip};

/// The text rules in the order they are tried: name, what it means, pattern.
static RULES: LazyLock<Vec<(&'static str, &'static str, Regex)>> = LazyLock::new(|| {
    let rule = |name, what, re: &str| (name, what, Regex::new(re).expect("regex"));
    vec![
        rule(
            "oom",
            "it ran out of memory",
            r"(?i)\bout of memory\b|MemoryError|Cannot allocate memory|OOMKilled|oom-kill|std::bad_alloc|heap out of memory|memory allocation of \d+ bytes failed",
        ),
        rule(
            "service-not-ready",
            "a service it needs never became ready",
            r"(?i)never became ready|readiness probe failed|service \S+ (is )?not ready",
        ),
        rule(
            "network",
            "it could not reach a host (connection refused or name resolution)",
            r"(?i)connection refused|ECONNREFUSED|name or service not known|temporary failure in name resolution|could not resolve host|no such host|getaddrinfo|network is unreachable|ENOTFOUND|EAI_AGAIN|connection reset by peer",
        ),
        rule(
            "image-or-permission",
            "it could not get its image, or was refused a permission",
            r"(?i)ImagePullBackOff|ErrImagePull|pull access denied|manifest unknown|no such image|image \S+ (is )?not (found|present)|permission denied|EACCES|operation not permitted",
        ),
        rule(
            "timeout",
            "it ran out of time",
            r"(?i)timed out|deadline exceeded|TimeoutError|Timeout >",
        ),
    ]
});

/// The infrastructure verdict, when a rule fires.
pub(crate) fn classify(
    facts: &Facts<'_>,
    step: Option<&FailingStep>,
    failing: &[&StoredTestCase],
) -> Option<Verdict> {
    let verdict = |rule: &str, summary: String, evidence: Vec<String>| Verdict {
        class: FailureClass::Infrastructure,
        rule: rule.into(),
        summary,
        evidence,
    };
    let label = step.map(|s| {
        let name = s.name.as_deref().unwrap_or(&s.step_ref);
        format!("step `{name}`")
    });
    let label = label.as_deref().unwrap_or("the execution");
    if let Some(s) = step {
        if s.exit_code == Some(137) {
            return Some(verdict(
                "oom",
                format!("{label} was killed (exit code 137, SIGKILL): most likely out of memory"),
                vec![format!(
                    "exit code 137 = 128 + 9: the process got SIGKILL, as the kernel's OOM killer sends{}",
                    s.error_message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )],
            ));
        }
        if s.status == StepStatus::Timeout {
            return Some(verdict(
                "timeout",
                format!("{label} ran out of time and was stopped"),
                vec![format!(
                    "step status timeout{}",
                    s.error_message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )],
            ));
        }
        if s.exit_code == Some(126) {
            return Some(verdict(
                "image-or-permission",
                format!("{label} could not run its command (exit code 126: not executable)"),
                vec!["exit code 126: the command was found but could not be executed".into()],
            ));
        }
    }
    // The text the rules read: the step's error, its error-like lines, the failed tests' messages.
    let mut texts: Vec<(String, String)> = Vec::new();
    if let Some(s) = step {
        if let Some(m) = &s.error_message {
            texts.push(("step error".into(), m.clone()));
        }
        let start = facts.step_log.len().saturating_sub(400);
        for (i, line) in facts.step_log.iter().enumerate().skip(start) {
            texts.push((format!("log line {}", i + 1), clean_line(line)));
        }
    }
    for t in failing {
        for text in [&t.case.message, &t.case.output].into_iter().flatten() {
            texts.push((format!("test {}", t.key), text.clone()));
        }
    }
    for (name, what, re) in RULES.iter() {
        let hits: Vec<String> = texts
            .iter()
            .filter_map(|(place, text)| {
                let m = re.find(text)?;
                let line = text[..m.start()].rfind('\n').map_or(0, |p| p + 1);
                let end = text[m.end()..]
                    .find('\n')
                    .map_or(text.len(), |p| m.end() + p);
                Some(format!("{place}: {}", clip(text[line..end].trim(), 200)))
            })
            .take(3)
            .collect();
        if !hits.is_empty() {
            return Some(verdict(
                name,
                format!("{label} failed because {what}"),
                hits,
            ));
        }
    }
    None
}
