//! `assay insights [--since 30d] [--by tool|team|workflow]`: how changes fare per AI tool, team
//! or workflow (first-try pass rate, runs until green, rework rate, failure classes) and which
//! teams ran no system-level workflow on AI-made changes; through the server with a context.

use assay_service::insights::{self, By};

use super::history::{Format, print_doc};
use crate::error::UserError;
use crate::remote::ConnArgs;

/// Groups shown in the text output (the JSON has all).
const TEXT_GROUPS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ByArg {
    Tool,
    Team,
    Workflow,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The window: `30d`, `12h`, `2w`, or a date `YYYY-MM-DD` (UTC)
    #[arg(long, default_value = "30d")]
    since: String,
    /// Group by AI tool (`ai.tool` tag), team (`team` tag, else the workflow's `team` label) or
    /// workflow
    #[arg(long, value_enum, default_value = "tool")]
    by: ByArg,
    /// Output format (`table`: text)
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    #[command(flatten)]
    conn: ConnArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let by = match args.by {
        ByArg::Tool => By::Tool,
        ByArg::Team => By::Team,
        ByArg::Workflow => By::Workflow,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    // Checked here too, so a bad window is the same error with or without a server.
    let since = insights::parse_since(&args.since, now).map_err(|e| {
        UserError::invalid(format!("--since: {e}")).with_hint("for example `--since 30d`")
    })?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        let answer = backend.insights(&args.since, since, by).await.map_err(|e| {
            e.worded(|e| match e {
                assay_service::ServiceError::Store(s) => super::history::store_err(s),
                other => anyhow::anyhow!("failed to read insights: {other}"),
            })
        });
        backend.close().await;
        let answer = answer?;
        match args.output {
            Format::Table => print!("{}", insights::render_text(&answer, TEXT_GROUPS)),
            format => print_doc(&answer, format)?,
        }
        Ok(crate::exit::SUCCESS)
    })
}
