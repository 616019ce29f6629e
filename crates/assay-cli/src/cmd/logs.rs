//! `assay logs ID [--step REF_OR_NAME] [--follow]`: the stored log lines on stdout; with
//! `--follow`, new lines until the execution ends (works across processes).

use std::io::Write;
use std::time::Duration;

use assay_store::{LogLine, Store};
use futures::StreamExt;

use super::history::{self, store_err};
use crate::error::UserError;
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Execution id or name
    reference: String,
    /// Only this step (its ref or its name)
    #[arg(long)]
    step: Option<String>,
    /// Keep printing new lines until the execution ends
    #[arg(short, long)]
    follow: bool,
    /// Prefix each line with its time
    #[arg(long)]
    timestamps: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = args.store.open().await?;
        let result = print(&store, &args).await;
        store.close().await;
        result.map(|()| crate::exit::SUCCESS)
    })
}

async fn print(store: &Store, args: &Args) -> anyhow::Result<()> {
    let e = history::find(store, &assay_store::ExecutionRef::parse(&args.reference)).await?;
    let steps = store.steps(&e.id).await.map_err(store_err)?;
    let name_of = |r: &str| {
        steps
            .iter()
            .find(|s| s.step_ref == r)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| r.to_string())
    };
    let only = match &args.step {
        None => None,
        Some(wanted) => Some(
            steps
                .iter()
                .find(|s| &s.step_ref == wanted)
                .or_else(|| {
                    steps
                        .iter()
                        .find(|s| s.name.as_deref() == Some(wanted.as_str()))
                })
                .map(|s| s.step_ref.clone())
                .ok_or_else(|| {
                    let known: Vec<String> = steps
                        .iter()
                        .map(|s| match &s.name {
                            Some(n) => format!("{} ({n})", s.step_ref),
                            None => s.step_ref.clone(),
                        })
                        .collect();
                    UserError::invalid(format!("execution `{}` has no step `{wanted}`", e.name))
                        .with_hint(format!("its steps: {}", known.join(", ")))
                })?,
        ),
    };
    let prefix = only.is_none();
    let mut out = std::io::stdout().lock();
    let mut write = |lines: &[LogLine]| -> std::io::Result<()> {
        for l in lines {
            if args.timestamps {
                write!(out, "{} ", assay_store::testkube::rfc3339(l.ts))?;
            }
            if prefix {
                write!(out, "[{}] ", name_of(&l.step))?;
            }
            writeln!(out, "{}", l.text)?;
        }
        out.flush()
    };
    if args.follow {
        let mut stream =
            Box::pin(store.follow_logs(&e.id, only.as_deref(), Duration::from_millis(250)));
        while let Some(batch) = stream.next().await {
            if write(&batch.map_err(store_err)?).is_err() {
                break; // stdout closed (e.g. piped into head)
            }
        }
        return Ok(());
    }
    let refs = match only {
        Some(r) => vec![r],
        None => store.log_steps_in_order(&e.id).await.map_err(store_err)?,
    };
    for r in refs {
        let mut reader = store.log_reader(&e.id, &r, 0);
        loop {
            let batch = reader.read_available().await.map_err(store_err)?;
            if batch.is_empty() {
                break;
            }
            if write(&batch).is_err() {
                return Ok(());
            }
        }
        let rest = reader.read_to_end().await.map_err(store_err)?;
        if write(&rest).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
