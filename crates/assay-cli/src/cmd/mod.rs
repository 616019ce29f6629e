//! One module per subcommand. Each exposes an `Args` struct (clap) and `run(args) -> Result<u8>`
//! returning the exit code.

pub mod plan;
pub mod run;
pub mod validate;
