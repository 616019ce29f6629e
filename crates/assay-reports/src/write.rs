//! JUnit XML out: one report for a whole execution, for CI systems that read JUnit.

use std::io::{self, Write};

use quick_xml::escape::escape;

use crate::case::{CaseStatus, Summary, TestCase};

/// Write `cases` as one `<testsuites name=…>` document, one `<testsuite>` per distinct suite
/// (in order of first appearance).
pub fn write_junit(out: &mut impl Write, name: &str, cases: &[TestCase]) -> io::Result<()> {
    let mut suites: Vec<(&str, Vec<&TestCase>)> = Vec::new();
    for case in cases {
        match suites.iter_mut().find(|(s, _)| *s == case.suite) {
            Some((_, list)) => list.push(case),
            None => suites.push((&case.suite, vec![case])),
        }
    }
    let mut total = Summary::default();
    cases.iter().for_each(|c| total.add(c));
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="{}" tests="{}" failures="{}" errors="{}" skipped="{}" time="{}">"#,
        escape(name),
        total.tests,
        total.failed,
        total.errored,
        total.skipped,
        secs(total.duration)
    )?;
    for (suite, list) in suites {
        let mut s = Summary::default();
        list.iter().for_each(|c| s.add(c));
        writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}" errors="{}" skipped="{}" time="{}">"#,
            escape(if suite.is_empty() { name } else { suite }),
            s.tests,
            s.failed,
            s.errored,
            s.skipped,
            secs(s.duration)
        )?;
        for case in list {
            write_case(out, case)?;
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}

fn write_case(out: &mut impl Write, case: &TestCase) -> io::Result<()> {
    write!(out, r#"    <testcase name="{}""#, escape(&case.name))?;
    if let Some(class) = &case.class {
        write!(out, r#" classname="{}""#, escape(class))?;
    }
    if let Some(file) = &case.file {
        write!(out, r#" file="{}""#, escape(file))?;
    }
    if let Some(ms) = case.duration_ms {
        write!(out, r#" time="{}""#, secs(ms))?;
    }
    let element = match case.status {
        CaseStatus::Passed => None,
        CaseStatus::Failed => Some("failure"),
        CaseStatus::Error => Some("error"),
        CaseStatus::Skipped => Some("skipped"),
    };
    let Some(element) = element else {
        if let Some(output) = &case.output {
            writeln!(out, ">")?;
            writeln!(
                out,
                "      <system-out>{}</system-out>",
                escape(clean(output))
            )?;
            return writeln!(out, "    </testcase>");
        }
        return writeln!(out, "/>");
    };
    writeln!(out, ">")?;
    write!(out, "      <{element}")?;
    if let Some(message) = &case.message {
        write!(out, r#" message="{}""#, escape(clean(message)))?;
    }
    match &case.output {
        Some(output) => writeln!(out, ">{}</{element}>", escape(clean(output)))?,
        None => writeln!(out, "/>")?,
    }
    writeln!(out, "    </testcase>")
}

/// XML 1.0 cannot carry most control characters, even escaped: drop them.
fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
    if text.chars().any(bad) {
        text.chars().filter(|&c| !bad(c)).collect::<String>().into()
    } else {
        text.into()
    }
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ParseOptions, parse_all};

    #[test]
    fn written_reports_read_back_equal() {
        let cases = vec![
            TestCase {
                suite: "api".into(),
                class: Some("api.Users".into()),
                name: "creates <users> & \"groups\"".into(),
                file: Some("tests/users.py".into()),
                status: CaseStatus::Failed,
                duration_ms: Some(1250),
                message: Some("expected 201, got 500".into()),
                output: Some("Traceback\n  at line 3\u{1b}[0m".into()),
                failed_reruns: 0,
            },
            TestCase {
                suite: "api".into(),
                class: None,
                name: "lists".into(),
                file: None,
                status: CaseStatus::Passed,
                duration_ms: Some(3),
                message: None,
                output: None,
                failed_reruns: 0,
            },
            TestCase {
                suite: "".into(),
                class: None,
                name: "step 1".into(),
                file: None,
                status: CaseStatus::Skipped,
                duration_ms: None,
                message: None,
                output: None,
                failed_reruns: 0,
            },
        ];
        let mut buf = Vec::new();
        write_junit(&mut buf, "smoke-1", &cases).unwrap();
        let (back, err) = parse_all(&buf[..], ParseOptions::default());
        assert_eq!(err, None);
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].name, cases[0].name);
        assert_eq!(back[0].status, CaseStatus::Failed);
        assert_eq!(back[0].output.as_deref(), Some("Traceback\n  at line 3[0m"));
        assert_eq!(back[1].duration_ms, Some(3));
        assert_eq!(back[2].suite, "smoke-1");
        assert_eq!(back[2].status, CaseStatus::Skipped);
    }
}
