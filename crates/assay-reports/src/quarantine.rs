//! The quarantine verdict: whether a failed step's JUnit reports explain its failure by
//! quarantined tests only. One rule for every path that runs steps (the engine asks it when a
//! step fails; the embedded runner, the server and agents all run the engine).

use std::collections::BTreeSet;
use std::io::Read;

use crate::{CaseStatus, JunitReader, is_junit};

/// Tests quarantined for one run, by key (`class::name`) or bare name.
pub type QuarantinedTests = BTreeSet<String>;

/// What the reports of a failed step say about quarantined tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Review {
    /// JUnit reports found among the step's files (each read to its end or its first error).
    pub reports: usize,
    /// Failed (or errored) tests covered by a quarantine, by key, in report order.
    pub quarantined: Vec<String>,
    /// Failed tests no quarantine covers.
    pub other: Vec<String>,
    /// A report that could not be read to its end: its failures are not all known.
    pub incomplete: bool,
}

impl Review {
    /// The quarantined failures that excuse the step's failure: only when at least one report
    /// was read whole, it has at least one failure, and every failure is quarantined.
    pub fn excuse(&self) -> Option<&[String]> {
        (self.reports > 0
            && !self.incomplete
            && self.other.is_empty()
            && !self.quarantined.is_empty())
        .then_some(self.quarantined.as_slice())
    }
}

/// Whether `key` or `name` is in `quarantined`.
pub fn is_quarantined(quarantined: &QuarantinedTests, key: &str, name: &str) -> bool {
    quarantined.contains(key) || quarantined.contains(name)
}

/// Reads the JUnit reports among `files` (others are skipped, recognised by content) and sorts
/// their failures into quarantined and not.
pub fn review<R: Read>(
    files: impl IntoIterator<Item = R>,
    quarantined: &QuarantinedTests,
) -> Review {
    let mut out = Review::default();
    for mut file in files {
        let mut head = Vec::with_capacity(1024);
        if (&mut file).take(1024).read_to_end(&mut head).is_err() || !is_junit(&head) {
            continue;
        }
        out.reports += 1;
        for item in JunitReader::new(std::io::Cursor::new(head).chain(file)) {
            let Ok(case) = item else {
                out.incomplete = true;
                continue;
            };
            if !matches!(case.status, CaseStatus::Failed | CaseStatus::Error) {
                continue;
            }
            let key = case.key();
            if is_quarantined(quarantined, &key, &case.name) {
                out.quarantined.push(key);
            } else {
                out.other.push(key);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3" failures="2">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_flaky" time="0.1"><failure message="boom">x</failure></testcase>
<testcase classname="tests.test_b" name="test_real" time="0.1"><failure message="bad">y</failure></testcase>
</testsuite></testsuites>"#;

    fn set(items: &[&str]) -> QuarantinedTests {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_failure_must_be_quarantined() {
        let files = || [&b"not a report"[..], REPORT.as_bytes()];

        let one = review(files(), &set(&["tests.test_a::test_flaky"]));
        assert_eq!(one.reports, 1);
        assert_eq!(one.quarantined, ["tests.test_a::test_flaky"]);
        assert_eq!(one.other, ["tests.test_b::test_real"]);
        assert_eq!(one.excuse(), None);

        // By bare name too.
        let both = review(files(), &set(&["test_flaky", "tests.test_b::test_real"]));
        assert_eq!(
            both.excuse(),
            Some(
                &[
                    "tests.test_a::test_flaky".to_string(),
                    "tests.test_b::test_real".to_string()
                ][..]
            )
        );

        // No report, or a report without failures, excuses nothing.
        assert_eq!(review([&b"text"[..]], &set(&["test_flaky"])).excuse(), None);
        let passing = REPORT
            .replace("<failure", "<skipped")
            .replace("</failure>", "</skipped>");
        assert_eq!(
            review([passing.as_bytes()], &set(&["test_flaky"])).excuse(),
            None
        );
        // A report cut short may hide failures: no excuse.
        let cut = &REPORT[..REPORT.find("tests.test_b").unwrap()];
        let r = review([cut.as_bytes()], &set(&["test_flaky"]));
        assert!(r.incomplete, "{r:?}");
        assert_eq!(r.excuse(), None);
    }
}
