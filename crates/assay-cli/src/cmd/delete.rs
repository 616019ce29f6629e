//! `assay delete workflow|template NAME`: executions keep their own copy of the definition.

use assay_store::{DefinitionKind, DeleteMode};

use super::history::store_err;
use crate::error::UserError;
use crate::remote::{ConnArgs, Source, local_only};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `workflow` or `template`
    #[arg(value_enum)]
    kind: KindArg,
    name: String,
    /// Also forget every stored revision (by default they are kept for the record)
    #[arg(long)]
    purge: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KindArg {
    Workflow,
    Template,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let kind = match args.kind {
        KindArg::Workflow => DefinitionKind::Workflow,
        KindArg::Template => DefinitionKind::Template,
    };
    let mode = if args.purge {
        DeleteMode::Hard
    } else {
        DeleteMode::Soft
    };
    tokio::runtime::Runtime::new()?.block_on(async move {
        let source = args.conn.open().await?;
        let deleted = match &source {
            Source::Local(store) => store
                .delete_definition(kind, &args.name, mode)
                .await
                .map_err(store_err)?,
            Source::Remote(r) if args.purge => return Err(local_only("`--purge`", r)),
            Source::Remote(r) => match r.client.delete_definition(kind, &args.name).await {
                Ok(()) => true,
                Err(e) if e.status() == Some(404) => false,
                Err(e) => return Err(r.err(e)),
            },
        };
        source.close().await;
        if !deleted {
            return Err(
                UserError::invalid(format!("{} `{}` not found", kind.noun(), args.name))
                    .with_hint(format!("`assay get {}s` lists them", kind.noun()))
                    .into(),
            );
        }
        eprintln!("{} {} deleted", kind.noun(), args.name);
        Ok(crate::exit::SUCCESS)
    })
}
