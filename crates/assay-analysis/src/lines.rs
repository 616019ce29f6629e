//! Picking the log lines that matter.

use std::sync::LazyLock;

use regex::Regex;

/// Longest line kept.
const LINE_LIMIT: usize = 240;

static ANSI: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07").expect("regex"));

/// What makes a line look like part of an error report, across test tools.
static ERROR_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"error|Error|ERROR|FAIL|Fail|fail|assert|Assert|panicked|Traceback|expected|Expected|Exception|exception|fatal|FATAL|not ok|Killed|killed|refused|timed out|denied|not found|No such file|MemoryError",
    )
    .expect("regex")
});

/// A log line without colours, line break or progress-bar history, cut at 240 bytes.
pub fn clean_line(line: &str) -> String {
    let line = line.trim_end_matches(['\n', '\r']);
    let line = line.rsplit('\r').next().unwrap_or(line);
    let line = ANSI.replace_all(line, "");
    clip(&line, LINE_LIMIT)
}

pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `text` cut to at most `max` bytes at a line break, saying so.
pub(crate) fn clip_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let note = "… (cut; `-o json` or the analysis endpoint has everything)\n";
    let mut end = max.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map_or(end, |p| p + 1);
    format!("{}{note}", &text[..end])
}

/// Whether a line looks like part of an error report.
pub fn looks_like_error(line: &str) -> bool {
    ERROR_LIKE.is_match(line)
}

/// At most `errors` error-like lines (the last ones) and the last `tail` other lines, in log
/// order, within `budget` bytes, each as `N: text` (1-based line number).
pub fn pick_lines(log: &[String], errors: usize, tail: usize, budget: usize) -> Vec<String> {
    let mut picked: Vec<usize> = Vec::new();
    let mut used = 0usize;
    let cleaned: Vec<String> = log.iter().map(|l| clean_line(l)).collect();
    for (i, line) in cleaned.iter().enumerate().rev() {
        if picked.len() >= errors {
            break;
        }
        if looks_like_error(line) && used + line.len() <= budget {
            used += line.len();
            picked.push(i);
        }
    }
    let mut tail_taken = 0;
    for (i, line) in cleaned.iter().enumerate().rev() {
        if tail_taken >= tail || used + line.len() > budget {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        // The tail is the log's last lines, whether or not an error line took one already.
        tail_taken += 1;
        if !picked.contains(&i) {
            used += line.len();
            picked.push(i);
        }
    }
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|i| format!("{}: {}", i + 1, cleaned[i]))
        .collect()
}

/// A line with its numbers, hex ids and timestamps folded, to tell "the same line" across runs.
pub(crate) fn shape(line: &str) -> String {
    static VARIABLE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+").expect("regex"));
    VARIABLE.replace_all(line.trim(), "#").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_then_the_tail_in_log_order() {
        let log: Vec<String> = [
            "collecting",
            "test_a PASSED",
            "E   AssertionError: 3 != 4",
            "noise",
            "1 failed",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            pick_lines(&log, 5, 2, 1000),
            ["3: E   AssertionError: 3 != 4", "4: noise", "5: 1 failed"]
        );
    }

    #[test]
    fn shapes_fold_numbers() {
        assert_eq!(shape("took 12ms at 0xdeadbeef"), shape("took 7ms at 0x1"));
    }
}
