//! `assay init [DIR]`: find the repository's test tools and write a TestWorkflow for each
//! (glue over `assay-assist`).
//!
//! stderr says what was found and where the file went; `--stdout` prints the YAML instead of
//! writing it. An existing file is replaced only with `--force`.

use std::io::Write;
use std::path::PathBuf;

use assay_assist::{DraftOptions, Tool};

use crate::error::UserError;
use crate::exit;

/// The file written in DIR when `--file` is not given.
pub const DEFAULT_FILE: &str = "testworkflows.yaml";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository's folder
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Where to write the workflows [default: DIR/testworkflows.yaml]
    #[arg(long, value_name = "PATH", conflicts_with = "stdout")]
    pub file: Option<PathBuf>,

    /// Print the workflows on stdout instead of writing a file
    #[arg(long)]
    pub stdout: bool,

    /// Replace the file if it exists
    #[arg(long)]
    pub force: bool,

    /// Only these tools (repeatable): pytest, node-test, jest, vitest, go, nextest, playwright,
    /// cypress, k6, postman, jmeter
    #[arg(long = "tool", value_name = "TOOL", value_parser = parse_tool)]
    pub tools: Vec<Tool>,

    /// Parallel workers for tools that can split their tests (1: no sharding)
    #[arg(long, value_name = "N", default_value_t = assay_assist::draft::DEFAULT_SHARDS,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub shards: u32,
}

fn parse_tool(text: &str) -> Result<Tool, String> {
    Tool::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Tool::ALL.iter().map(|t| t.as_str()).collect();
        format!("unknown tool `{text}` (one of: {})", names.join(", "))
    })
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let project = assay_assist::detect(&args.dir).map_err(|e| {
        UserError::invalid(format!("failed to look at {}: {e}", args.dir.display()))
    })?;
    let options = DraftOptions {
        shards: args.shards,
        tools: args.tools.clone(),
    };
    let drafts = assay_assist::draft(&project, &options);
    let mut err = std::io::stderr().lock();
    let (yaml, names) = if drafts.is_empty() {
        let what = if args.tools.is_empty() {
            "no test tool".to_string()
        } else {
            let asked: Vec<&str> = args.tools.iter().map(|t| t.as_str()).collect();
            format!("none of {}", asked.join(", "))
        };
        let nothing = || {
            UserError::invalid(format!("found {what} in {}", project.root.display()))
                .with_hint(assay_assist::nothing_found_hint())
        };
        // With an LLM configured, a repository of unknown tools gets a draft from it, checked
        // by `assay validate`'s rules and sent back to be fixed (--tool asked for known ones).
        let llm = match crate::llm::configured() {
            Some(llm) if args.tools.is_empty() => llm,
            _ => return Err(nothing().into()),
        };
        let files: Vec<String> = assay_assist::detect::list_files(&project.root)
            .into_iter()
            .collect();
        // Valid, and at least one TestWorkflow (other kinds are not checked by `validate`).
        let check = |yaml: &str| -> Vec<String> {
            let mut errors: Vec<String> = assay_assist::check(yaml)
                .iter()
                .map(|d| d.to_string())
                .collect();
            let workflows = assay_spec::load::load("draft.yaml", yaml)
                .documents
                .iter()
                .filter(|d| d.kind == assay_spec::load::Kind::TestWorkflow)
                .count();
            if errors.is_empty() && workflows == 0 {
                errors.push("no TestWorkflow document (kind: TestWorkflow) in the answer".into());
            }
            errors
        };
        let drafted = tokio::runtime::Runtime::new()?.block_on(llm.draft(
            &format!("{}-tests", project.name),
            &files,
            &check,
        ));
        match drafted {
            Ok((yaml, tries)) => {
                let _ = writeln!(
                    err,
                    "found {what}; drafted by the LLM ({}) in {tries} tr{}: review it before trusting it",
                    llm.describe(),
                    if tries == 1 { "y" } else { "ies" }
                );
                let names = assay_spec::load::load("draft.yaml", &yaml)
                    .documents
                    .into_iter()
                    .filter(|d| d.kind == assay_spec::load::Kind::TestWorkflow)
                    .map(|d| d.name)
                    .collect();
                (yaml, names)
            }
            Err(e) => {
                return Err(nothing()
                    .with_hint(format!(
                        "{}; the LLM could not draft one: {e}",
                        assay_assist::nothing_found_hint()
                    ))
                    .into());
            }
        }
    } else {
        let yaml = assay_assist::render(&drafts);
        // A draft that does not validate is our bug, never the user's file.
        let errors = assay_assist::check(&yaml);
        if !errors.is_empty() {
            let lines: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
            anyhow::bail!(
                "the drafted workflows do not validate:\n{}",
                lines.join("\n")
            );
        }
        for d in &drafts {
            let found = project
                .get(d.tool)
                .map(|f| f.evidence.join(", "))
                .unwrap_or_default();
            let _ = writeln!(err, "found {}: {found}", d.tool);
            for note in &d.notes {
                let _ = writeln!(err, "  note: {note}");
            }
        }
        let names: Vec<String> = drafts.iter().map(|d| d.name.clone()).collect();
        (yaml, names)
    };
    if args.stdout {
        std::io::stdout().lock().write_all(yaml.as_bytes())?;
        return Ok(exit::SUCCESS);
    }
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| project.root.join(DEFAULT_FILE));
    if path.exists() && !args.force {
        return Err(
            UserError::invalid(format!("{} already exists", path.display()))
                .with_hint("--force replaces it; --stdout prints the workflows instead")
                .into(),
        );
    }
    std::fs::write(&path, &yaml)
        .map_err(|e| UserError::invalid(format!("failed to write {}: {e}", path.display())))?;
    let _ = writeln!(
        err,
        "wrote {} ({} workflow{}: {})",
        path.display(),
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    let run = if names.len() == 1 {
        format!("assay run {}", path.display())
    } else {
        format!("assay run {} --all", path.display())
    };
    let _ = writeln!(
        err,
        "\nhint: `{run}` runs the tests here; `assay apply -f {}` stores them",
        path.display()
    );
    Ok(exit::SUCCESS)
}
