//! `assay abort ID`: ask the process that runs an execution to abort it (through the server
//! with a context).

use crate::backend::AbortOutcome as Outcome;
use crate::remote::ConnArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Execution id or name
    reference: String,
    #[command(flatten)]
    conn: ConnArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        let answer = backend.abort(&args.reference).await;
        backend.close().await;
        let (name, outcome) = answer?;
        match outcome {
            Outcome::Aborted => eprintln!("{name} aborted (it was queued: it will not run)"),
            Outcome::Requested => eprintln!(
                "abort requested for {name}; the process running it stops it within a few seconds"
            ),
            Outcome::Ended(status) => eprintln!("{name} has already ended ({status})"),
        }
        Ok(crate::exit::SUCCESS)
    })
}
