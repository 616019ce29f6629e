//! `assay logs ID [--step REF_OR_NAME] [--follow]`: the stored log lines on stdout; with
//! `--follow`, new lines until the execution ends (works across processes, and through a
//! server's notification stream with a context).

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use assay_client::Followed;
use assay_store::Store;
use futures::StreamExt;

use super::history::{self, store_err};
use crate::error::UserError;
use crate::remote::{ConnArgs, Remote, Source};

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
    conn: ConnArgs,
}

/// One log line, whatever its source.
struct Line {
    /// RFC 3339.
    ts: String,
    step: String,
    text: String,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let source = args.conn.open().await?;
        let result = match &source {
            Source::Local(store) => local(store, &args).await,
            Source::Remote(r) => remote(r, &args).await,
        };
        source.close().await;
        result.map(|()| crate::exit::SUCCESS)
    })
}

/// Prints lines the same way for both sources: `[step name] text`, or the bare text with
/// `--step`; `--timestamps` puts the time first. Fails only when stdout is closed.
struct Printer {
    names: HashMap<String, String>,
    prefix: bool,
    timestamps: bool,
    /// Keep the lines' ANSI colour codes: only on a terminal without `NO_COLOR` (stored logs
    /// are raw; plain-text output is not).
    color: bool,
}

/// Whether `assay logs` writes colour codes: stdout is a terminal and `NO_COLOR` is unset.
fn stdout_color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

impl Printer {
    fn write(&self, lines: &[Line]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for l in lines {
            if self.timestamps {
                write!(out, "{} ", l.ts)?;
            }
            if self.prefix {
                let name = self.names.get(&l.step).unwrap_or(&l.step);
                write!(out, "[{name}] ")?;
            }
            if self.color {
                writeln!(out, "{}", l.text)?;
            } else {
                writeln!(out, "{}", anstream::adapter::strip_str(&l.text))?;
            }
        }
        out.flush()
    }
}

/// The step `--step` names (a ref or a name), among `(ref, name)` pairs.
fn pick_step(
    execution: &str,
    steps: &[(String, Option<String>)],
    wanted: &str,
) -> anyhow::Result<String> {
    steps
        .iter()
        .find(|(r, _)| r == wanted)
        .or_else(|| steps.iter().find(|(_, n)| n.as_deref() == Some(wanted)))
        .map(|(r, _)| r.clone())
        .ok_or_else(|| {
            let known: Vec<String> = steps
                .iter()
                .map(|(r, n)| match n {
                    Some(n) => format!("{r} ({n})"),
                    None => r.clone(),
                })
                .collect();
            UserError::invalid(format!("execution `{execution}` has no step `{wanted}`"))
                .with_hint(format!("its steps: {}", known.join(", ")))
                .into()
        })
}

fn from_store(lines: Vec<assay_store::LogLine>) -> Vec<Line> {
    lines
        .into_iter()
        .map(|l| Line {
            ts: assay_store::testkube::rfc3339(l.ts),
            step: l.step,
            text: l.text,
        })
        .collect()
}

async fn local(store: &Store, args: &Args) -> anyhow::Result<()> {
    let e = history::find(store, &assay_store::ExecutionRef::parse(&args.reference)).await?;
    let steps = store.steps(&e.id).await.map_err(store_err)?;
    let pairs: Vec<(String, Option<String>)> = steps
        .iter()
        .map(|s| (s.step_ref.clone(), s.name.clone()))
        .collect();
    let only = match &args.step {
        None => None,
        Some(wanted) => Some(pick_step(&e.name, &pairs, wanted)?),
    };
    let printer = Printer {
        names: pairs
            .iter()
            .filter_map(|(r, n)| n.clone().map(|n| (r.clone(), n)))
            .collect(),
        prefix: only.is_none(),
        timestamps: args.timestamps,
        color: stdout_color(),
    };
    if args.follow {
        let mut stream =
            Box::pin(store.follow_logs(&e.id, only.as_deref(), Duration::from_millis(250)));
        while let Some(batch) = stream.next().await {
            if printer
                .write(&from_store(batch.map_err(store_err)?))
                .is_err()
            {
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
            if printer.write(&from_store(batch)).is_err() {
                return Ok(());
            }
        }
        let rest = reader.read_to_end().await.map_err(store_err)?;
        if printer.write(&from_store(rest)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Through the server's notification stream: it replays what is stored, then sends the
/// current result, then follows live. Without `--follow` the replay is what is printed (step
/// by step in plan order, as from the store); with it every line is printed as it comes.
async fn remote(r: &Remote, args: &Args) -> anyhow::Result<()> {
    let e = r
        .client
        .get_execution(&args.reference)
        .await
        .map_err(|err| r.err(err))?;
    let steps = history::steps_in_order(&e);
    let pairs: Vec<(String, Option<String>)> = steps
        .iter()
        .map(|(r, n, _)| (r.clone(), n.clone()))
        .collect();
    let only = match &args.step {
        None => None,
        Some(wanted) => Some(pick_step(&e.name, &pairs, wanted)?),
    };
    let printer = Printer {
        names: history::step_names(&e),
        prefix: only.is_none(),
        timestamps: args.timestamps,
        color: stdout_color(),
    };
    let mut stream = Box::pin(r.client.follow(&e.id, 10));
    let mut replay: Vec<Line> = Vec::new();
    while let Some(item) = stream.next().await {
        match item.map_err(|err| r.err(err))? {
            Followed::Log(n) => {
                let step = n.step_ref.unwrap_or_default();
                if only.as_ref().is_some_and(|o| *o != step) {
                    continue;
                }
                let mut text = n.log.unwrap_or_default();
                if text.ends_with('\n') {
                    text.pop();
                }
                let line = Line {
                    ts: n.ts,
                    step,
                    text,
                };
                if args.follow {
                    if printer.write(&[line]).is_err() {
                        return Ok(());
                    }
                } else {
                    replay.push(line);
                }
            }
            Followed::Result(_) if !args.follow => break,
            Followed::Result(_) => {}
        }
    }
    if !args.follow {
        let position: HashMap<&str, usize> = pairs
            .iter()
            .enumerate()
            .map(|(i, (r, _))| (r.as_str(), i))
            .collect();
        // Stable: lines of one step keep their order.
        replay.sort_by_key(|l| position.get(l.step.as_str()).copied().unwrap_or(usize::MAX));
        let _ = printer.write(&replay);
    }
    Ok(())
}
