//! One module per subcommand. Each exposes an `Args` struct (clap) and `run(args) -> Result<u8>`
//! returning the exit code.

pub mod abort;
pub mod agent;
pub mod apply;
pub mod artifacts;
pub mod ask;
pub mod context;
pub mod delete;
pub mod explain;
pub mod gate;
pub mod get;
pub mod history;
pub mod init;
pub mod insights;
pub mod logs;
pub mod mcp;
pub mod plan;
pub mod pod;
mod pod_workers;
pub mod policy;
pub mod prune;
pub mod quarantine;
pub mod repeat_new;
pub mod rerun;
pub mod run;
pub mod run_remote;
pub mod scan;
pub mod secret;
pub mod server;
pub mod tests;
pub mod token;
pub mod validate;
