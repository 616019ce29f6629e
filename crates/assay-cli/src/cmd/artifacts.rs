//! `assay artifacts ID [--download DIR]`: list an execution's artifacts, or download them with a
//! progress bar on stderr (from the store, or from the server with a context).

use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use futures::StreamExt;
use futures::stream::BoxStream;

use super::history::{self, Format};
use crate::backend::{Artifacts, Backend};
use crate::remote::ConnArgs;

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
    conn: ConnArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        let result = artifacts(backend.as_ref(), &args).await;
        backend.close().await;
        result.map(|()| crate::exit::SUCCESS)
    })
}

async fn artifacts(backend: &dyn Backend, args: &Args) -> anyhow::Result<()> {
    let Artifacts {
        id,
        name,
        list: artifacts,
    } = backend.artifacts(&args.reference).await?;
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
                    eprintln!("execution {name} has no artifacts");
                }
            }
            format => history::print_doc(&artifacts, format)?,
        }
        return Ok(());
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
    // One artifact that cannot be had (a path that leaves the folder, a server error) is a
    // warning: the others are still downloaded, and the exit code says something was missed.
    let mut failed = 0usize;
    for a in &artifacts {
        bar.set_message(a.path.clone());
        match download_one(backend, &id, &a.path, dir, &bar).await {
            Ok(target) => {
                bar.suspend(|| println!("{}", target.display()));
            }
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("warning: skipped {:?}: {e:#}", a.path));
            }
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "downloaded {} of {} artifact(s), {} bytes, into {}",
        artifacts.len() - failed,
        artifacts.len(),
        total,
        dir.display()
    );
    if failed > 0 {
        return Err(crate::error::UserError::invalid(format!(
            "failed to download {failed} of {} artifact(s) of {name} (each one is named above)",
            artifacts.len()
        ))
        .into());
    }
    Ok(())
}

/// Download the artifact `path` of execution `id` into `dir`; the file written.
async fn download_one(
    backend: &dyn Backend,
    id: &str,
    path: &str,
    dir: &Path,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<PathBuf> {
    // A path that leaves the folder (from a server one should not trust) is refused.
    if Path::new(path)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        anyhow::bail!("the path leaves {}", dir.display());
    }
    let target = dir.join(path);
    let stream = backend.download(id, path).await?;
    write_download(stream, &target, bar).await?;
    Ok(target)
}

/// Write a download to `target`, through a temporary name: an interrupted download never
/// looks complete.
async fn write_download(
    mut stream: BoxStream<'_, anyhow::Result<Vec<u8>>>,
    target: &Path,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("failed to create {}: {e}", parent.display()))?;
    }
    let partial = target.with_extension("assay-partial");
    let mut file = std::fs::File::create(&partial)
        .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", partial.display()))?;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        file.write_all(&chunk)
            .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", partial.display()))?;
        bar.inc(chunk.len() as u64);
    }
    file.sync_all().ok();
    std::fs::rename(&partial, target)
        .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", target.display()))?;
    Ok(())
}
