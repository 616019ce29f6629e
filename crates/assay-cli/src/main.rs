//! `assay`: run Testkube-compatible test workflows anywhere.
//!
//! This binary is not a library: it parses flags, wires the library crates together and prints.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backend;
mod cmd;
mod context;
mod error;
mod exit;
mod files;
mod llm;
mod remote;
mod runtime_args;
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
    /// Run a workflow (on this machine, or on the server of the context in use), record it, and exit with its verdict
    Run(cmd::run::Args),
    /// Store workflows and templates (a new revision when the content changed)
    Apply(cmd::apply::Args),
    /// Show stored workflows and templates, and the history of executions
    Get(cmd::get::Args),
    /// Delete a stored workflow or template (its executions stay)
    Delete(cmd::delete::Args),
    /// Print the logs of an execution, optionally following it live
    Logs(cmd::logs::Args),
    /// List or download the artifacts of an execution
    Artifacts(cmd::artifacts::Args),
    /// Ask the process running an execution to abort it
    Abort(cmd::abort::Args),
    /// Why an execution failed: class (regression, flaky, broken, infrastructure, new test) with the rule that fired, evidence, what changed since the last pass
    Explain(cmd::explain::Args),
    /// Quality gate: judge an execution or a commit's executions by rules (failing tests, policy violations, new flaky tests, secrets, pass rate, required workflows); exit 1 when a rule fails
    Gate(cmd::gate::Args),
    /// Run an execution's workflow again with the same config values and tags
    Rerun(cmd::rerun::Args),
    /// Delete old executions with their logs and artifacts (never running ones) [local: this machine's store]
    Prune(cmd::prune::Args),
    /// Serve the REST API (Testkube's /v1), live notifications and the run queue [default port: 8088]
    Server(cmd::server::Args),
    /// Run executions for a server: connect out, claim the runs that target this agent, send results back
    Agent(cmd::agent::Args),
    /// Create, list and revoke the server's API tokens [local: the server's store on this machine]
    Token(cmd::token::Args),
    /// Quarantine tests: they still run and report, but their failures no longer fail a run
    Quarantine(cmd::quarantine::Args),
    /// Set, list and delete named secrets that workflows read (`secretKeyRef`, `envFrom`) [local: this machine's store]
    Secret(cmd::secret::Args),
    /// Serve MCP on stdio for AI agents: run, watch and debug workflows (logs go to stderr) [local]
    Mcp(cmd::mcp::Args),
    /// Work through a server: add, use, list and remove contexts (`use embedded`: this machine)
    Context(cmd::context::Args),
    /// Policy checks: run Kyverno test suites offline [local]
    Policy(cmd::policy::Args),
    /// Find the repository's test tools and write a TestWorkflow for each [local]
    Init(cmd::init::Args),
    /// Ask the history a question in plain words ("failed pytest tests this week") [local]
    Ask(cmd::ask::Args),
    /// First-try pass rate, runs until green and rework per AI tool, team or workflow
    Insights(cmd::insights::Args),
    /// Scans: secrets in files, folders or git history (gitleaks-format rules) [local]
    Scan(cmd::scan::Args),
    /// The pod side of the Kubernetes runtime (the agent's Job runs it)
    #[command(hide = true)]
    Pod(cmd::pod::Args),
}

fn main() -> ExitCode {
    // Steps are started from this process: they must not inherit what its parent left open.
    assay_engine::close_inherited_descriptors();
    let cli = Cli::parse();
    let result: anyhow::Result<u8> = match cli.command {
        Command::Validate(args) => cmd::validate::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Apply(args) => cmd::apply::run(args),
        Command::Get(args) => cmd::get::run(args),
        Command::Delete(args) => cmd::delete::run(args),
        Command::Logs(args) => cmd::logs::run(args),
        Command::Artifacts(args) => cmd::artifacts::run(args),
        Command::Abort(args) => cmd::abort::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Gate(args) => cmd::gate::run(args),
        Command::Rerun(args) => cmd::rerun::run(args),
        Command::Prune(args) => cmd::prune::run(args),
        Command::Server(args) => cmd::server::run(args),
        Command::Agent(args) => cmd::agent::run(args),
        Command::Token(args) => cmd::token::run(args),
        Command::Quarantine(args) => cmd::quarantine::run(args),
        Command::Secret(args) => cmd::secret::run(args),
        Command::Mcp(args) => cmd::mcp::run(args),
        Command::Context(args) => cmd::context::run(args),
        Command::Policy(args) => cmd::policy::run(args),
        Command::Init(args) => cmd::init::run(args),
        Command::Ask(args) => cmd::ask::run(args),
        Command::Insights(args) => cmd::insights::run(args),
        Command::Scan(args) => cmd::scan::run(args),
        Command::Pod(args) => cmd::pod::run(args),
    };
    // What this process kept for more executions (as root: idle sandboxes) ends with it.
    assay_engine::sandbox::end_kept();
    finish(result)
}

/// Map a command's outcome to an exit code, printing errors on stderr.
fn finish(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // The reader of stdout went away (`| head`): nothing to say, and no one to say it to.
            let closed = err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if closed {
                return ExitCode::from(exit::CLOSED_STDOUT);
            }
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
