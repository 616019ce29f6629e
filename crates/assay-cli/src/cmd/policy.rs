//! `assay policy test PATH... [--junit FILE] [--output text|json]`: run Kyverno CLI test suites
//! (`kyverno-test.yaml`, found at or under each PATH) and print one line per expected result.
//! Exit 0 when every expectation is reproduced, 1 when one is not, 2 on unreadable input.
//! `assay policy check --policy PATH... INPUT...`: Kyverno policies and Rego against plain
//! inputs; exit 1 when a rule fails or errs (warnings pass).
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
    /// Check inputs (manifests, Kustomize/Helm output, Terraform plan JSON, any JSON/YAML) against Kyverno policies and Rego (deny/violation/warn)
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Policy files or folders: Kyverno policies in YAML/JSON, Rego in .rego files (repeatable)
    #[arg(long = "policy", short = 'p', required = true, value_name = "PATH")]
    pub policies: Vec<PathBuf>,
    /// Input files or folders (every .yaml/.yml/.json under a folder; `-` reads stdin)
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Also write the findings as JUnit XML (one test case per rule × input document)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// text (one line per finding) or json
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
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
        Command::Check(c) => check(c),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<u8> {
    use assay_policy::kyverno::Status;
    let mut set = assay_policy::check::load_policies(&args.policies)
        .map_err(|e| UserError::invalid(format!("failed to load policies: {e}")))?;
    let mut inputs = Vec::new();
    for p in &args.inputs {
        let docs = if p.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            assay_policy::docs::parse(&text, std::path::Path::new("stdin"))
        } else {
            assay_policy::docs::read_path(p)
        };
        inputs.extend(docs.map_err(|e| UserError::invalid(format!("failed to read input: {e}")))?);
    }
    let findings = assay_policy::check::check(&mut set, &inputs)
        .map_err(|e| UserError::invalid(format!("failed to evaluate: {e}")))?;
    if let Some(path) = &args.junit {
        let mut buf = Vec::new();
        assay_reports::write_junit(
            &mut buf,
            "assay policy check",
            &assay_policy::check::test_cases(&findings),
        )?;
        std::fs::write(path, buf)
            .map_err(|e| UserError::invalid(format!("failed to write {}: {e}", path.display())))?;
    }
    let mut out = std::io::stdout().lock();
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let failed = count(Status::Fail) + count(Status::Error);
    let summary = format!(
        "{} passed, {failed} failed, {} warnings, {} skipped",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Skip)
    );
    if args.output == "json" {
        serde_json::to_writer_pretty(&mut out, &findings)?;
        writeln!(out)?;
        eprintln!("{summary}");
    } else {
        for f in &findings {
            let mut line = format!(
                "{:<5} {} {} {}",
                f.status.as_str().to_uppercase(),
                f.policy,
                f.rule,
                f.resource
            );
            if f.status != Status::Pass && !f.message.is_empty() {
                line.push_str(&format!(": {}", f.message.replace('\n', " ")));
            }
            writeln!(out, "{line}")?;
        }
        writeln!(out, "{summary}")?;
    }
    Ok(if failed == 0 {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
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
