//! `assay logs ID [--step REF_OR_NAME] [--follow]`: the stored log lines on stdout; with
//! `--follow`, new lines until the execution ends (works across processes, and through a
//! server's notification stream with a context).

use std::collections::HashMap;
use std::io::Write;

use futures::StreamExt;

use crate::backend::{Backend, LogLine};
use crate::error::UserError;
use crate::remote::ConnArgs;

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

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        let result = logs(backend.as_ref(), &args).await;
        backend.close().await;
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
    fn write(&self, lines: &[LogLine]) -> std::io::Result<()> {
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

/// Prints the execution's lines: stored ones step by step in plan order, or (`--follow`)
/// every line as it comes until the execution ends.
async fn logs(backend: &dyn Backend, args: &Args) -> anyhow::Result<()> {
    let steps = backend.log_steps(&args.reference).await?;
    let only = match &args.step {
        None => None,
        Some(wanted) => Some(pick_step(&steps.name, &steps.steps, wanted)?),
    };
    let printer = Printer {
        names: steps
            .steps
            .iter()
            .filter_map(|(r, n)| n.clone().map(|n| (r.clone(), n)))
            .collect(),
        prefix: only.is_none(),
        timestamps: args.timestamps,
        color: stdout_color(),
    };
    let mut lines = backend.log_lines(&steps, only.as_deref(), args.follow);
    while let Some(batch) = lines.next().await {
        if printer.write(&batch?).is_err() {
            break; // stdout closed (e.g. piped into head)
        }
    }
    Ok(())
}
