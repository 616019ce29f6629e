//! `assay gate EXECUTION | --commit SHA --rules gate.yaml`: a quality gate's verdict over one
//! execution or every execution of a commit (glue over `assay_service::gate`; through the
//! server of the context in use, `POST /v1/gates/evaluate`). Each rule's verdict with its
//! evidence on stdout (`-o json` for the structured verdict); exit 0 when the gate passes, 1
//! when a rule fails, 2 on a bad gate file or an unknown execution or commit.

use std::path::PathBuf;

use assay_service::ServiceError;
use assay_service::gate::{Gate, Target};

use super::history::{Format, print_doc};
use crate::backend::GateCall;
use crate::error::UserError;
use crate::exit;
use crate::remote::ConnArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Execution id or name (`workflow-N`) to judge
    #[arg(
        value_name = "EXECUTION",
        required_unless_present = "commit",
        conflicts_with = "commit"
    )]
    execution: Option<String>,
    /// Judge every execution tagged `commit=SHA` (the latest of each workflow)
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// The gate file (YAML): which rules to apply
    #[arg(long, value_name = "FILE")]
    rules: PathBuf,
    /// Output format (`table`: each rule's verdict with its evidence)
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Read and check a gate file; errors name the file, line and column.
pub fn load(path: &std::path::Path) -> anyhow::Result<Gate> {
    Ok(read(path)?.1)
}

fn read(path: &std::path::Path) -> anyhow::Result<(String, Gate)> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        UserError::invalid(format!("failed to read the gate file {file}: {e}"))
            .with_hint("a gate file is YAML such as `rules: {noFailingTests: true}`")
    })?;
    let gate = Gate::parse(&text).map_err(|e| service_err(e, &file))?;
    Ok((text, gate))
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let file = args.rules.display().to_string();
    // Checked here for both modes, so a bad file is reported with its own path and place.
    let (text, gate) = read(&args.rules)?;
    let target = Target::from_request(args.execution.as_deref(), args.commit.as_deref())
        .map_err(|e| service_err(e, &file))?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        let verdict = backend
            .evaluate_gate(GateCall {
                text: &text,
                gate: &gate,
                target: &target,
                execution: args.execution.as_deref(),
                commit: args.commit.as_deref(),
            })
            .await
            .map_err(|e| e.worded(|e| service_err(e, &file)));
        backend.close().await;
        let verdict = verdict?;
        match args.output {
            Format::Table => print!("{}", assay_service::gate::render_text(&verdict)),
            format => print_doc(&verdict, format)?,
        }
        Ok(if verdict.passed {
            exit::SUCCESS
        } else {
            exit::FAILED
        })
    })
}

fn service_err(e: ServiceError, file: &str) -> anyhow::Error {
    match e {
        ServiceError::Invalid { detail, problems } => {
            let Some(p) = problems.into_iter().next() else {
                return UserError::invalid(detail).into();
            };
            let place = if p.line > 0 {
                format!("{file}:{}:{}", p.line, p.column)
            } else {
                file.to_string()
            };
            let err = UserError::invalid(format!("{place}: {}", p.message));
            match p.hint {
                Some(h) => err.with_hint(h).into(),
                None => err.into(),
            }
        }
        ServiceError::BadRequest(m) => UserError::invalid(m).into(),
        ServiceError::NotFound(m) => UserError::invalid(m)
            .with_hint("tag runs with `assay run FILE --tag commit=SHA`; list them with `assay get executions --tag commit=SHA`")
            .into(),
        ServiceError::Store(s) => super::history::store_err(s),
        other => anyhow::anyhow!("failed to evaluate the gate: {other}"),
    }
}
