//! `assay server`: serve the REST API, live notifications and the queue on one port.

use std::net::SocketAddr;
use std::sync::Arc;

use assay_server::{DEFAULT_PORT, LocalDispatch, Options, Server};

use crate::error::UserError;
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to listen on
    #[arg(long, value_name = "ADDR:PORT", default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// At most this many executions run at once; the others wait queued
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent: u16,
    /// Serve /v1 without tokens (refused unless --listen is a loopback address)
    #[arg(long)]
    no_auth: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if args.no_auth {
        assay_server::check_no_auth(&args.listen).map_err(|e| {
            UserError::invalid(e.to_string()).with_hint("drop --no-auth, or listen on 127.0.0.1")
        })?;
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = args.store.open().await?;
        if !args.no_auth
            && let Some((token, path)) =
                assay_server::bootstrap_admin(&store, &store.config().data_dir).await?
        {
            eprintln!("created the first admin token (shown once; also saved in {}):", path.display());
            eprintln!("  {token}");
        }
        let server = Server::start(
            store,
            Options {
                max_concurrent: args.max_concurrent.into(),
                auth: !args.no_auth,
            },
            Arc::new(LocalDispatch),
        )
        .await?;
        let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
            UserError::invalid(format!("failed to listen on {}: {e}", args.listen))
                .with_hint("pick another port with --listen 127.0.0.1:PORT")
        })?;
        eprintln!(
            "assay server listening on http://{} (API under /v1, docs at /docs, metrics at /metrics)",
            listener.local_addr()?
        );
        server
            .serve(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(crate::exit::SUCCESS)
    })
}
