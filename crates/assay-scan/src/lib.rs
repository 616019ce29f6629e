//! Secret scanning for Assay: rules in gitleaks' configuration format (a default set written
//! for Assay, or the user's), matched over files and folders or over a git repository's
//! history, with allowlists and entropy checks. A finding never carries the secret (it is
//! masked when the finding is made), and findings become test cases like any test.

pub mod config;
mod files;
mod git;
pub mod rules;
pub mod scan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use rules::Rules;
pub use scan::{Finding, MASK, shannon_entropy};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration {}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("configuration {}: rule `{rule}`: {message}", path.display())]
    Rule {
        path: PathBuf,
        rule: String,
        message: String,
    },
    #[error("git history of {}: {message}", path.display())]
    Git { path: PathBuf, message: String },
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Files larger than this are skipped (listed in the report).
    pub max_file_size: u64,
    /// Extra arguments for `git log` (a range such as `main..HEAD`); none: `--all`.
    pub log_opts: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_file_size: 10 * 1024 * 1024,
            log_opts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Files scanned (for history: file changes read).
    pub files: usize,
    /// Commits read (history scans only).
    #[serde(skip_serializing_if = "is_zero")]
    pub commits: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// The ids of the rules applied, in order.
    pub rules: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The rules to scan with: the configuration file given, else `.gitleaks.toml` at the root of
/// the first path scanned, else the default rules. Returns where they came from too.
pub fn load_rules(
    config: Option<&Path>,
    first_path: Option<&Path>,
) -> Result<(Rules, String), Error> {
    let found = config.map(Path::to_path_buf).or_else(|| {
        first_path
            .filter(|p| p.is_dir())
            .map(|p| p.join(".gitleaks.toml"))
            .filter(|p| p.is_file())
    });
    match found {
        Some(path) => {
            let file = config::load(&path)?;
            Ok((Rules::compile(&file, &path)?, path.display().to_string()))
        }
        None => Ok((Rules::default_rules(), "default rules".into())),
    }
}

/// Scans files and folders (`git: false`) or the history of the repository at `paths[0]`.
/// Fingerprints listed in a `.gitleaksignore` at the root of a scanned folder are left out.
pub fn scan(
    rules: &Rules,
    paths: &[PathBuf],
    git: bool,
    options: &Options,
) -> Result<Report, Error> {
    let mut report = if git {
        let mut all = Report::default();
        for repo in paths {
            let r = git::scan_history(rules, repo, options)?;
            all.findings.extend(r.findings);
            all.files += r.files;
            all.commits += r.commits;
        }
        all
    } else {
        files::scan_paths(rules, paths, options)?
    };
    let mut ignored = std::collections::HashSet::new();
    for p in paths.iter().filter(|p| p.is_dir()) {
        if let Ok(text) = std::fs::read_to_string(p.join(".gitleaksignore")) {
            ignored.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
    }
    report
        .findings
        .retain(|f| !ignored.contains(&f.fingerprint));
    report.rules = rules.rules.iter().map(|r| r.id.clone()).collect();
    Ok(report)
}

/// The suite name of secret-scan test cases (the gate's `noSecrets` rule looks for it).
pub const SUITE: &str = "secret scan";

/// The report as test cases: one failed case per finding (suite `secret scan`, class the rule,
/// name `file:line`, with the commit when scanning history), and one passed case `no findings`
/// per rule that found nothing, so a clean scan is recorded too.
pub fn test_cases(report: &Report) -> Vec<assay_reports::TestCase> {
    use assay_reports::{CaseStatus, TestCase};
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for f in &report.findings {
        *by_rule.entry(&f.rule).or_default() += 1;
        let mut name = format!("{}:{}", f.file, f.line);
        if let Some(c) = &f.commit {
            name.push_str(&format!(" @{}", &c[..c.len().min(12)]));
        }
        out.push(TestCase {
            suite: SUITE.into(),
            class: Some(f.rule.clone()),
            name,
            file: Some(f.file.clone()),
            status: CaseStatus::Failed,
            duration_ms: None,
            message: Some(format!("{}: {}", f.description, f.line_text)),
            output: None,
            failed_reruns: 0,
        });
    }
    for rule in &report.rules {
        if !by_rule.contains_key(rule.as_str()) {
            out.push(TestCase {
                suite: SUITE.into(),
                class: Some(rule.clone()),
                name: "no findings".into(),
                file: None,
                status: CaseStatus::Passed,
                duration_ms: None,
                message: None,
                output: None,
                failed_reruns: 0,
            });
        }
    }
    out
}
