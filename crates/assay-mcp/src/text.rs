//! Keeping answers small: clipping, cleaning log lines, and picking the lines of a failure's
//! output that matter (those that look like errors, then the tail).

use std::sync::LazyLock;

use regex::Regex;

/// Upper bound of an execution answer (`run_workflow`, `wait_for_execution`, `get_execution`).
pub const ANSWER_LIMIT: usize = 4000;
/// Upper bound of a logs or artifact answer.
pub const PAGE_LIMIT: usize = 16 * 1024;
/// Longest line shown; longer lines are cut with `…`.
pub const LINE_LIMIT: usize = 300;

static ANSI: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07").expect("regex"));

/// What makes a line look like part of an error report, across test tools (pytest, unittest,
/// cargo test, go test, Jest, JUnit, k6 thresholds, shells).
static ERROR_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"error|Error|ERROR|FAIL|Fail|fail|assert|Assert|panicked|Traceback|expected|Expected|Exception|exception|fatal|FATAL|not ok|✗|✕|✘|×|threshold|No such file|not found|denied",
    )
    .expect("regex")
});

/// A log line as an agent should read it: colours removed, a progress bar's last state kept
/// (text after the last `\r`), no line break, at most [`LINE_LIMIT`] bytes.
pub fn clean_line(line: &str) -> String {
    let line = line.trim_end_matches(['\n', '\r']);
    let line = line.rsplit('\r').next().unwrap_or(line);
    let line = ANSI.replace_all(line, "");
    clip_line(&line, LINE_LIMIT)
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn clip_line(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `text` cut to at most `max` bytes at a line break, followed by a line saying what to do to
/// see the rest.
pub fn clip_text(text: &str, max: usize, how_to_see_more: &str) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let note = format!("\n… (cut at {max} bytes; {how_to_see_more})\n");
    let mut end = max.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').unwrap_or(end);
    format!("{}{note}", &text[..end])
}

/// Whether a line looks like part of an error report.
pub fn looks_like_error(line: &str) -> bool {
    ERROR_LIKE.is_match(line)
}

/// Lines picked from a step's output, each with its 1-based line number.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Relevant {
    /// Lines that look like errors (the last ones, in log order).
    pub errors: Vec<(usize, String)>,
    /// The last lines, without those already in `errors`.
    pub tail: Vec<(usize, String)>,
    /// Lines in the whole output.
    pub total: usize,
}

impl Relevant {
    /// Pick at most `max_errors` error-like lines and the last `tail` lines, within `budget`
    /// bytes (error lines count first: they are what the reader needs).
    pub fn pick(lines: &[String], max_errors: usize, tail: usize, budget: usize) -> Relevant {
        let cleaned: Vec<String> = lines.iter().map(|l| clean_line(l)).collect();
        let mut used = 0usize;
        let mut errors: Vec<(usize, String)> = Vec::new();
        for (i, line) in cleaned.iter().enumerate().rev() {
            if errors.len() >= max_errors {
                break;
            }
            if looks_like_error(line) && used + line.len() + 8 <= budget {
                used += line.len() + 8;
                errors.push((i + 1, line.clone()));
            }
        }
        errors.reverse();
        let mut tail_lines: Vec<(usize, String)> = Vec::new();
        let start = cleaned.len().saturating_sub(tail);
        for (i, line) in cleaned.iter().enumerate().skip(start).rev() {
            if errors.iter().any(|(n, _)| *n == i + 1) {
                continue;
            }
            if used + line.len() + 8 > budget {
                break;
            }
            used += line.len() + 8;
            tail_lines.push((i + 1, line.clone()));
        }
        tail_lines.reverse();
        Relevant {
            errors,
            tail: tail_lines,
            total: cleaned.len(),
        }
    }

    /// The picked lines as text: error-like lines first, then the tail, numbered.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        if !self.errors.is_empty() {
            let _ = writeln!(out, "error-like lines:");
            for (n, l) in &self.errors {
                let _ = writeln!(out, "  {n:>4}| {l}");
            }
        }
        if !self.tail.is_empty() {
            let _ = writeln!(out, "last lines (of {}):", self.total);
            for (n, l) in &self.tail {
                let _ = writeln!(out, "  {n:>4}| {l}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn errors_first_then_the_tail_without_repeats() {
        let log = lines(&[
            "collecting",
            "Traceback (most recent call last):",
            "  File \"t.py\", line 3",
            "AssertionError: expected 3, got 4",
            "done",
        ]);
        let r = Relevant::pick(&log, 10, 3, 4000);
        assert_eq!(
            r.errors.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            vec![2, 4]
        );
        assert_eq!(
            r.tail.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            vec![3, 5]
        );
        let mut out = String::new();
        r.render(&mut out);
        assert!(out.contains("   4| AssertionError: expected 3, got 4"));
    }

    #[test]
    fn the_budget_keeps_the_last_error_lines() {
        let log: Vec<String> = (0..1000).map(|i| format!("error number {i}")).collect();
        let r = Relevant::pick(&log, 1000, 10, 500);
        assert!(r.errors.last().unwrap().1.ends_with("999"));
        let mut out = String::new();
        r.render(&mut out);
        assert!(out.len() < 700, "{}", out.len());
    }

    #[test]
    fn lines_lose_colours_and_progress_and_length() {
        assert_eq!(clean_line("\x1b[31mFAIL\x1b[0m x\n"), "FAIL x");
        assert_eq!(clean_line("10%\r50%\r100%"), "100%");
        let long = "é".repeat(400);
        let c = clean_line(&long);
        assert!(c.len() <= LINE_LIMIT && c.ends_with('…'));
    }

    #[test]
    fn text_is_cut_at_a_line_break_with_a_note() {
        let text = "line\n".repeat(100);
        let c = clip_text(&text, 120, "use tail");
        assert!(c.len() <= 120, "{}", c.len());
        assert!(c.contains("use tail"));
    }
}
