//! `assay abort ID`: ask the process that runs an execution to abort it.

use super::history::{self, store_err};
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Execution id or name
    reference: String,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = args.store.open().await?;
        let e = history::find(&store, &assay_store::ExecutionRef::parse(&args.reference)).await?;
        let requested = store
            .request_abort(&e.id, Some("aborted with `assay abort`"))
            .await
            .map_err(store_err)?;
        store.close().await;
        if requested {
            eprintln!(
                "abort requested for {}; the process running it stops it within a few seconds",
                e.name
            );
        } else {
            eprintln!("{} has already ended ({})", e.name, e.status);
        }
        Ok(crate::exit::SUCCESS)
    })
}
