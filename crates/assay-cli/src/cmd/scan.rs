//! `assay scan secrets PATH... [--config FILE] [--git] [--junit FILE] [-o text|json]`: secret
//! scanning with gitleaks-format rules. Exit 0 when nothing is found, 1 on findings, 2 on
//! unreadable input or configuration. The glue only: scanning lives in `assay-scan`, and a
//! finding holds no secret, so nothing printed or written here can show one.

use std::io::Write;
use std::path::PathBuf;

use crate::error::UserError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Find secrets (tokens, keys, passwords) in files and folders, or in a git repository's history
    Secrets(SecretsArgs),
}

#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    /// Files or folders to scan (`.git` folders left out); with --git, repositories
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Rules in gitleaks' TOML format (`[extend] useDefault = true` adds Assay's defaults);
    /// default: `.gitleaks.toml` in the first PATH, else Assay's default rules
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Scan the lines every commit added (git log -p --all) instead of the files as they are
    #[arg(long)]
    pub git: bool,
    /// With --git: the commits to read, as `git log` takes them (`main..HEAD`); default: --all
    #[arg(long, value_name = "RANGE", requires = "git")]
    pub log_opts: Option<String>,
    /// Skip files larger than this many bytes
    #[arg(long, default_value_t = 10 * 1024 * 1024, value_name = "BYTES")]
    pub max_file_size: u64,
    /// Also write the findings as JUnit XML (a failed case per finding, a passed one per clean rule)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// text (one line per finding) or json
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.command {
        Command::Secrets(a) => secrets(a),
    }
}

fn secrets(args: SecretsArgs) -> anyhow::Result<u8> {
    let (rules, source) = assay_scan::load_rules(
        args.config.as_deref(),
        args.paths.first().map(|p| p.as_path()),
    )
    .map_err(|e| {
        UserError::invalid(format!("failed to load rules: {e}")).with_hint(
            "rules follow gitleaks' configuration format: [[rules]] with id and regex; \
                     `[extend] useDefault = true` keeps Assay's default rules",
        )
    })?;
    let options = assay_scan::Options {
        max_file_size: args.max_file_size,
        log_opts: args
            .log_opts
            .as_deref()
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    };
    let report = assay_scan::scan(&rules, &args.paths, args.git, &options).map_err(|e| {
        let err = UserError::invalid(format!("failed to scan: {e}"));
        if matches!(e, assay_scan::Error::Git { .. }) {
            err.with_hint("--git scans a repository's history: give the folder of a git repository")
        } else {
            err
        }
    })?;
    if let Some(path) = &args.junit {
        let mut buf = Vec::new();
        assay_reports::write_junit(
            &mut buf,
            "assay scan secrets",
            &assay_scan::test_cases(&report),
        )?;
        std::fs::write(path, buf)
            .map_err(|e| UserError::invalid(format!("failed to write {}: {e}", path.display())))?;
    }
    let what = if args.git {
        format!("{} commits", report.commits)
    } else {
        format!("{} files", report.files)
    };
    let summary = format!(
        "{} secrets found in {what} ({} rules: {source})",
        report.findings.len(),
        report.rules.len()
    );
    let mut out = std::io::stdout().lock();
    if args.output == "json" {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        for f in &report.findings {
            let commit = f
                .commit
                .as_deref()
                .map(|c| format!(" @{}", &c[..c.len().min(12)]))
                .unwrap_or_default();
            writeln!(
                out,
                "SECRET {} {}:{}{commit}: {}: {}",
                f.rule, f.file, f.line, f.description, f.line_text
            )?;
        }
    }
    for s in &report.skipped {
        eprintln!("skipped {}: {}", s.file, s.reason);
    }
    if args.output == "json" {
        eprintln!("{summary}");
    } else {
        writeln!(out, "{summary}")?;
    }
    Ok(if report.findings.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
}
