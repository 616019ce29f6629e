//! `assay`: run Testkube-compatible test workflows anywhere.
//!
//! This binary is not a library: it parses flags, wires the library crates together and prints.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod error;
mod exit;
mod files;
mod store_args;

#[derive(Parser)]
#[command(name = "assay", version, about = "Run Testkube-compatible test workflows anywhere", after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check TestWorkflow and TestWorkflowTemplate files: one line per problem, `path:line:col`
    Validate(cmd::validate::Args),
    /// Print the compiled plan of a workflow (templates applied, config checked, strategies expanded)
    Plan(cmd::plan::Args),
    /// Run a workflow on this machine, record it, and exit with its verdict
    Run(cmd::run::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<u8> = match cli.command {
        Command::Validate(args) => cmd::validate::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Run(args) => cmd::run::run(args),
    };
    finish(result)
}

/// Map a command's outcome to an exit code, printing errors on stderr.
fn finish(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if let Some(reported) = err.downcast_ref::<error::Reported>() {
                return ExitCode::from(reported.0);
            }
            if let Some(user) = err.downcast_ref::<error::UserError>() {
                eprintln!("error: {}", user.message);
                if let Some(hint) = &user.hint {
                    eprintln!("\nhint: {hint}");
                }
                return ExitCode::from(user.code);
            }
            eprintln!("error: {err:#}");
            ExitCode::from(exit::INTERNAL)
        }
    }
}
