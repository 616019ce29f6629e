//! `assay policy test PATH... [--junit FILE] [--output text|json]`: run Kyverno CLI test suites
//! (`kyverno-test.yaml`, found at or under each PATH) and print one line per expected result.
//! Exit 0 when every expectation is reproduced, 1 when one is not, 2 on unreadable input.
//! The glue only: evaluation lives in `assay-policy`.

use std::io::Write;
use std::path::PathBuf;

use assay_policy::kyverno::suite::{self, Check, SuiteReport};

use crate::error::UserError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run Kyverno test suites (kyverno-test.yaml) offline: every expected pass/fail/skip per policy, rule and resource
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// kyverno-test.yaml files, or folders to search for them (hidden folders such as .kyverno-test included)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Also write the checks as JUnit XML (one test case per policy × rule × resource)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// text (one line per check) or json
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.command {
        Command::Test(t) => test(t),
    }
}

fn test(args: TestArgs) -> anyhow::Result<u8> {
    let mut files = Vec::new();
    for p in &args.paths {
        let found =
            suite::find_suites(p).map_err(|e| UserError::invalid(format!("failed to read {e}")))?;
        if found.is_empty() {
            return Err(UserError::invalid(format!(
                "no kyverno-test.yaml at or under {}",
                p.display()
            ))
            .with_hint("a Kyverno CLI test suite is a file named kyverno-test.yaml (kind: Test)")
            .into());
        }
        files.extend(found);
    }
    let mut reports: Vec<SuiteReport> = Vec::new();
    for f in &files {
        reports.push(
            suite::run_suite(f)
                .map_err(|e| UserError::invalid(format!("failed to load suite: {e}")))?,
        );
    }
    if let Some(path) = &args.junit {
        let cases = suite::test_cases(&reports);
        let mut buf = Vec::new();
        assay_reports::write_junit(&mut buf, "assay policy test", &cases)?;
        std::fs::write(path, buf)
            .map_err(|e| UserError::invalid(format!("failed to write {}: {e}", path.display())))?;
    }
    let mut out = std::io::stdout().lock();
    if args.output == "json" {
        serde_json::to_writer_pretty(&mut out, &reports)?;
        writeln!(out)?;
    } else {
        for r in &reports {
            writeln!(out, "{}", r.path.display())?;
            for c in &r.checks {
                writeln!(out, "  {}", line(c))?;
            }
        }
    }
    let checks: Vec<&Check> = reports.iter().flat_map(|r| &r.checks).collect();
    let passed = checks.iter().filter(|c| c.ok).count();
    let unsupported = checks
        .iter()
        .filter(|c| !c.ok && c.unsupported.is_some())
        .count();
    let failed = checks.len() - passed;
    let mut summary = format!("{passed} passed, {failed} failed");
    if unsupported > 0 {
        summary.push_str(&format!(" ({unsupported} not evaluated by Assay)"));
    }
    if args.output == "json" {
        eprintln!("{summary}");
    } else {
        writeln!(out, "{summary}")?;
    }
    Ok(if failed == 0 {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
}

fn line(c: &Check) -> String {
    let verdict = if c.ok {
        "ok  "
    } else if c.unsupported.is_some() {
        "n/a "
    } else {
        "FAIL"
    };
    let got = c.actual.map_or("excluded".to_string(), |s| s.to_string());
    let mut s = format!(
        "{verdict} {} {} {}: expected {}, got {got}",
        c.policy, c.rule, c.resource, c.expected
    );
    if !c.ok && !c.message.is_empty() {
        s.push_str(&format!(" ({})", c.message.replace('\n', " ")));
    }
    s
}
