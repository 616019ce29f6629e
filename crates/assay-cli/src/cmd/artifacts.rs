//! `assay artifacts ID [--download DIR]`: list an execution's artifacts, or download them with a
//! progress bar on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;

use super::history::{self, Format, store_err};
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Execution id or name
    reference: String,
    /// Download every artifact into this folder (keeping their paths)
    #[arg(long, value_name = "DIR")]
    download: Option<PathBuf>,
    /// Output format of the list
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = args.store.open().await?;
        let e = history::find(&store, &assay_store::ExecutionRef::parse(&args.reference)).await?;
        let artifacts = store.list_artifacts(&e.id).await.map_err(store_err)?;
        let Some(dir) = &args.download else {
            match args.output {
                Format::Table => {
                    let mut t = history::table(&["PATH", "SIZE", "STEP"]);
                    for a in &artifacts {
                        t.add_row(vec![
                            a.path.clone(),
                            a.size.to_string(),
                            a.step_ref.clone().unwrap_or_default(),
                        ]);
                    }
                    history::print_table(&t);
                    if artifacts.is_empty() {
                        eprintln!("execution {} has no artifacts", e.name);
                    }
                }
                format => history::print_doc(&artifacts, format)?,
            }
            store.close().await;
            return Ok(crate::exit::SUCCESS);
        };
        let total: u64 = artifacts.iter().map(|a| a.size).sum();
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        for a in &artifacts {
            bar.set_message(a.path.clone());
            let target = dir.join(&a.path);
            download(&store, &e.id, &a.path, &target, &bar).await?;
            println!("{}", target.display());
        }
        bar.finish_and_clear();
        eprintln!(
            "downloaded {} artifact(s), {} bytes, into {}",
            artifacts.len(),
            total,
            dir.display()
        );
        store.close().await;
        Ok(crate::exit::SUCCESS)
    })
}

async fn download(
    store: &assay_store::Store,
    id: &str,
    path: &str,
    target: &Path,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("failed to create {}: {e}", parent.display()))?;
    }
    let mut download = store.open_artifact(id, path).await.map_err(store_err)?;
    // Write to a temporary name first: an interrupted download never looks complete.
    let partial = target.with_extension("assay-partial");
    let mut file = std::fs::File::create(&partial)
        .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", partial.display()))?;
    while let Some(chunk) = download.stream.next().await {
        let chunk = chunk.map_err(store_err)?;
        file.write_all(&chunk)
            .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", partial.display()))?;
        bar.inc(chunk.len() as u64);
    }
    file.sync_all().ok();
    std::fs::rename(&partial, target)
        .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", target.display()))?;
    Ok(())
}
