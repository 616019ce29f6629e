//! `assay prune`: delete old executions with their logs and artifacts (never running ones).

use super::history::store_err;
use crate::error::UserError;
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Delete executions that ended and were scheduled more than N days ago, and hook and
    /// webhook delivery records older than N days
    #[arg(long, value_name = "N")]
    keep_days: Option<u32>,
    /// Keep only the newest N executions of each workflow
    #[arg(long, value_name = "N")]
    keep_per_workflow: Option<u32>,
    /// List what would be deleted (one execution name a line) and delete nothing
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if args.keep_days.is_none() && args.keep_per_workflow.is_none() {
        return Err(UserError::invalid("say what to keep")
            .with_hint("pass --keep-days N, --keep-per-workflow N, or both")
            .into());
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = args.store.open().await?;
        if args.dry_run {
            let found = store
                .prune_candidates(args.keep_days, args.keep_per_workflow)
                .await
                .map_err(store_err);
            store.close().await;
            let found = found?;
            // The names are data (stdout); the count is a confirmation (stderr).
            for (_, name) in &found {
                println!("{name}");
            }
            eprintln!("would prune {} execution(s)", found.len());
            return Ok(crate::exit::SUCCESS);
        }
        let report = store
            .prune(args.keep_days, args.keep_per_workflow)
            .await
            .map_err(store_err)?;
        store.close().await;
        eprintln!("pruned {} execution(s)", report.executions);
        if report.deliveries > 0 {
            eprintln!("pruned {} delivery record(s)", report.deliveries);
        }
        Ok(crate::exit::SUCCESS)
    })
}
