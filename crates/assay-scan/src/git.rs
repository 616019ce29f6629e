//! Scanning a repository's history: the lines each commit added (`git log -p -U0 --all`),
//! grouped per commit and file, each finding naming its commit, author and date.

use std::path::Path;
use std::process::Command;

use crate::scan::{Fragment, scan_fragment};
use crate::{Error, Options, Report};

const COMMIT_MARK: char = '\u{1}';

pub fn scan_history(
    rules: &crate::rules::Rules,
    repo: &Path,
    options: &Options,
) -> Result<Report, Error> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args([
            "-c",
            "core.quotePath=false",
            "log",
            "-p",
            "-U0",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--full-history",
            "--format=%x01%H%x02%an <%ae>%x02%aI",
        ])
        .args(options.log_opts.iter())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    if options.log_opts.is_empty() {
        cmd.arg("--all");
    }
    let out = cmd.output().map_err(|e| Error::Git {
        path: repo.to_path_buf(),
        message: format!("could not run git: {e}"),
    })?;
    if !out.status.success() {
        return Err(Error::Git {
            path: repo.to_path_buf(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let log = String::from_utf8_lossy(&out.stdout);
    let mut report = Report::default();
    let mut parser = Parser::default();
    for line in log.lines() {
        parser.line(line, &mut |chunk| {
            report.findings.extend(scan_fragment(
                rules,
                &Fragment {
                    text: &chunk.text,
                    path: &chunk.path,
                    commit: Some(&chunk.commit),
                    author: Some(&chunk.author),
                    date: Some(&chunk.date),
                    line_numbers: Some(&chunk.lines),
                },
            ));
        });
    }
    parser.flush(&mut |chunk| {
        report.findings.extend(scan_fragment(
            rules,
            &Fragment {
                text: &chunk.text,
                path: &chunk.path,
                commit: Some(&chunk.commit),
                author: Some(&chunk.author),
                date: Some(&chunk.date),
                line_numbers: Some(&chunk.lines),
            },
        ));
    });
    report.commits = parser.commits;
    report.files = parser.files;
    Ok(report)
}

/// The lines one commit added to one file.
#[derive(Default)]
struct Chunk {
    commit: String,
    author: String,
    date: String,
    path: String,
    text: String,
    lines: Vec<usize>,
}

#[derive(Default)]
struct Parser {
    commit: String,
    author: String,
    date: String,
    path: Option<String>,
    text: String,
    lines: Vec<usize>,
    /// Lines left in the current hunk: (removed, added); next added line number.
    old_left: usize,
    new_left: usize,
    next_line: usize,
    commits: usize,
    files: usize,
}

impl Parser {
    fn line(&mut self, line: &str, emit: &mut impl FnMut(Chunk)) {
        if self.old_left > 0 || self.new_left > 0 {
            if let Some(added) = line.strip_prefix('+') {
                if self.new_left > 0 {
                    self.new_left -= 1;
                    if self.path.is_some() {
                        if !self.text.is_empty() || !self.lines.is_empty() {
                            self.text.push('\n');
                        }
                        self.text.push_str(added);
                        self.lines.push(self.next_line);
                    }
                    self.next_line += 1;
                    return;
                }
            } else if line.starts_with('-') && self.old_left > 0 {
                self.old_left -= 1;
                return;
            } else if line.starts_with('\\') {
                return;
            }
            self.old_left = 0;
            self.new_left = 0;
        }
        if let Some(header) = line.strip_prefix(COMMIT_MARK) {
            self.flush(emit);
            let mut parts = header.split('\u{2}');
            self.commit = parts.next().unwrap_or_default().to_string();
            self.author = parts.next().unwrap_or_default().to_string();
            self.date = parts.next().unwrap_or_default().to_string();
            self.commits += 1;
        } else if line.starts_with("diff --git ") {
            self.flush(emit);
        } else if let Some(path) = line.strip_prefix("+++ ") {
            self.flush(emit);
            self.path = path.strip_prefix("b/").map(str::to_string);
            if self.path.is_some() {
                self.files += 1;
            }
        } else if let Some(hunk) = line.strip_prefix("@@ ") {
            // `-a[,b] +c[,d] @@`
            let mut parts = hunk.split_whitespace();
            let old = parts.next().unwrap_or("-0");
            let new = parts.next().unwrap_or("+0");
            let count = |s: &str| -> (usize, usize) {
                let s = &s[1.min(s.len())..];
                let mut it = s.split(',');
                let start = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let len = it.next().map_or(1, |n| n.parse().unwrap_or(0));
                (start, len)
            };
            let (_, old_len) = count(old);
            let (new_start, new_len) = count(new);
            self.old_left = old_len;
            self.new_left = new_len;
            self.next_line = new_start;
        }
    }

    fn flush(&mut self, emit: &mut impl FnMut(Chunk)) {
        if let Some(path) = &self.path
            && !self.lines.is_empty()
        {
            emit(Chunk {
                commit: self.commit.clone(),
                author: self.author.clone(),
                date: self.date.clone(),
                path: path.clone(),
                text: std::mem::take(&mut self.text),
                lines: std::mem::take(&mut self.lines),
            });
        }
        self.text.clear();
        self.lines.clear();
        self.path = None;
    }
}
