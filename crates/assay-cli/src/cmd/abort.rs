//! `assay abort ID`: ask the process that runs an execution to abort it (through the server
//! with a context).

use super::history::{self, store_err};
use crate::remote::{ConnArgs, Source};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Execution id or name
    reference: String,
    #[command(flatten)]
    conn: ConnArgs,
}

/// What became of an abort request.
enum Outcome {
    /// It was queued: aborted at once, it never runs.
    Aborted,
    /// It runs: whoever runs it stops it.
    Requested,
    /// It had already ended, with this status.
    Ended(String),
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let source = args.conn.open().await?;
        let (name, outcome) = match &source {
            Source::Local(store) => {
                let e = history::find(store, &assay_store::ExecutionRef::parse(&args.reference))
                    .await?;
                // A queued execution (a server's, sharing this data dir) is aborted at once.
                let outcome = match assay_runner::abort(store, &e.id, "aborted with `assay abort`")
                    .await
                    .map_err(store_err)?
                {
                    assay_runner::AbortOutcome::Aborted => Outcome::Aborted,
                    assay_runner::AbortOutcome::Requested => Outcome::Requested,
                    assay_runner::AbortOutcome::Finished => Outcome::Ended(e.status.to_string()),
                };
                (e.name, outcome)
            }
            Source::Remote(r) => {
                let e = r
                    .client
                    .get_execution(&args.reference)
                    .await
                    .map_err(|e| r.err(e))?;
                let answer = r.client.abort(&e.id).await.map_err(|e| r.err(e))?;
                let outcome = match answer.outcome.as_str() {
                    "aborted" => Outcome::Aborted,
                    "requested" => Outcome::Requested,
                    _ => {
                        let now = r.client.get_execution(&e.id).await.map_err(|e| r.err(e))?;
                        Outcome::Ended(now.result.status.to_string())
                    }
                };
                (e.name, outcome)
            }
        };
        source.close().await;
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
