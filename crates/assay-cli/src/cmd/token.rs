//! `assay token create|list|revoke`: API tokens of the server, kept hashed in the store.

use assay_store::TokenRole;

use super::history::store_err;
use crate::error::UserError;
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a token and print it once (stdout); only its hash is kept
    Create {
        /// viewer (read), runner (read, run, abort) or admin (everything)
        #[arg(long, value_parser = ["viewer", "runner", "admin"])]
        role: String,
        /// A name to list and revoke it by [default: ROLE-N]
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (names and roles, never the tokens)
    List,
    /// Revoke a token by name
    Revoke { name: String },
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = args.store.open().await?;
        match args.command {
            Command::Create { role, name } => {
                let role = TokenRole::parse(&role).expect("checked by clap");
                let name = match name {
                    Some(n) => n,
                    None => {
                        let taken = store.list_tokens().await.map_err(store_err)?;
                        (1..)
                            .map(|n| format!("{}-{n}", role.as_str()))
                            .find(|n| !taken.iter().any(|t| &t.name == n))
                            .expect("some number is free")
                    }
                };
                let (info, secret) = store.create_token(&name, role).await.map_err(store_err)?;
                eprintln!(
                    "created token `{}` with role {} (shown once)",
                    info.name,
                    role.as_str()
                );
                println!("{secret}");
            }
            Command::List => {
                for t in store.list_tokens().await.map_err(store_err)? {
                    println!("{}\t{}", t.name, t.role.as_str());
                }
            }
            Command::Revoke { name } => {
                if !store.revoke_token(&name).await.map_err(store_err)? {
                    return Err(UserError::invalid(format!("no token named `{name}`"))
                        .with_hint("see `assay token list`")
                        .into());
                }
                eprintln!("revoked token `{name}`");
            }
        }
        store.close().await;
        Ok(crate::exit::SUCCESS)
    })
}
