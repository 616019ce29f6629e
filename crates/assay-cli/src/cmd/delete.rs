//! `assay delete workflow|template NAME`: executions keep their own copy of the definition.

use assay_store::DefinitionKind;

use crate::error::UserError;
use crate::remote::ConnArgs;

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
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        let deleted = backend
            .delete_definition(kind, &args.name, args.purge)
            .await;
        backend.close().await;
        let deleted = deleted?;
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
