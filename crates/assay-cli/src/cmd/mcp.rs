//! `assay mcp [--data-dir DIR] [--database URL] [--artifacts URL]`: serve MCP over stdio for AI
//! agents, on the embedded store and the local engine. stdout carries only MCP's JSON-RPC;
//! everything else goes to stderr. The tools live in `assay-mcp`.

use std::sync::Arc;
use std::time::Duration;

use assay_mcp::{Tools, ToolsConfig};

use crate::exit;
use crate::store_args::StoreArgs;

/// How long runs still going when the client disconnects get to be recorded as aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = args.store.open().await?;
        eprintln!(
            "assay mcp: serving MCP on stdio (records: {}, files: {})",
            store.database_location(),
            store.files_location()
        );
        let tools = Arc::new(Tools::new(store.clone(), ToolsConfig::default()));
        let served = assay_mcp::serve_stdio(tools, SHUTDOWN_GRACE).await;
        store.close().await;
        served?;
        Ok(exit::SUCCESS)
    })
}
