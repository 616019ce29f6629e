//! `assay quarantine add|list|remove`: quarantined tests still run and report, but a step
//! whose only failing tests are quarantined passes and says so. On the embedded store, or
//! through the server of a context (adding and removing need an admin token there).

use assay_api::quarantine::{QuarantineEntry, QuarantineRequest};
use assay_service::ServiceError;

use super::history::{Format, print_doc, print_table, table};
use crate::backend::Backend;
use crate::error::UserError;
use crate::remote::ConnArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Quarantine a test: it still runs and reports, but its failure no longer fails the run
    Add {
        /// The test, by key (`class::name`) or bare name, as `assay get tests` shows it
        test: String,
        /// Only in this workflow [default: every workflow]
        #[arg(long, short)]
        workflow: Option<String>,
        /// When the quarantine ends: RFC 3339 or YYYY-MM-DD (00:00 UTC) [default: never]
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Why (required): a ticket, a cause
        #[arg(long)]
        reason: String,
    },
    /// List quarantined tests
    List {
        /// Expired entries too
        #[arg(long)]
        all: bool,
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Lift a test's quarantine
    Remove {
        test: String,
        /// The workflow the entry was made for [default: the entry for every workflow]
        #[arg(long, short)]
        workflow: Option<String>,
    },
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    // Checked before anything is opened: bad input changes nothing.
    if let Command::Add { reason, until, .. } = &args.command {
        if reason.trim().is_empty() {
            return Err(
                UserError::invalid("--reason is empty: a quarantine needs a reason")
                    .with_hint(
                        "say why, e.g. --reason \"JIRA-123: times out on the shared runner\"",
                    )
                    .into(),
            );
        }
        if let Some(text) = until {
            assay_store::parse_until(text).map_err(|e| {
                UserError::invalid(format!("--until: {e}"))
                    .with_hint("e.g. --until 2026-12-31 or --until 2026-12-31T18:00:00Z")
            })?;
        }
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        let result = execute(backend.as_ref(), args.command).await;
        backend.close().await;
        result
    })
}

async fn execute(backend: &dyn Backend, command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Add {
            test,
            workflow,
            until,
            reason,
        } => {
            let request = QuarantineRequest {
                test,
                workflow,
                reason,
                until,
            };
            let who = std::env::var("USER").ok().filter(|u| !u.is_empty());
            let entry = backend
                .quarantine(&request, who.as_deref().unwrap_or("cli"))
                .await
                .map_err(|e| e.worded(service_err))?;
            eprintln!(
                "quarantined `{}` in {}{}: its failures no longer fail a run",
                entry.test,
                scope(&entry),
                entry
                    .until
                    .as_deref()
                    .map(|u| format!(" until {u}"))
                    .unwrap_or_default()
            );
        }
        Command::List { all, output } => {
            let entries = backend
                .quarantines(all)
                .await
                .map_err(|e| e.worded(service_err))?;
            match output {
                Format::Table => {
                    let mut t = table(&["TEST", "WORKFLOW", "UNTIL", "REASON", "BY"]);
                    for e in &entries {
                        let until = match (&e.until, e.active) {
                            (Some(u), true) => u.clone(),
                            (Some(u), false) => format!("{u} (expired)"),
                            (None, _) => "-".into(),
                        };
                        let reason = match &e.rule {
                            Some(rule) => format!("{} [{rule}]", e.reason),
                            None => e.reason.clone(),
                        };
                        t.add_row(vec![
                            e.test.clone(),
                            e.workflow.clone().unwrap_or_else(|| "*".into()),
                            until,
                            reason,
                            e.created_by.clone().unwrap_or_else(|| "-".into()),
                        ]);
                    }
                    if entries.is_empty() {
                        eprintln!("no quarantined tests");
                    } else {
                        print_table(&t);
                    }
                }
                format => print_doc(&entries, format)?,
            }
        }
        Command::Remove { test, workflow } => {
            backend
                .unquarantine(&test, workflow.as_deref())
                .await
                .map_err(|e| e.worded(service_err))?;
            let entry = QuarantineEntry {
                test: test.clone(),
                workflow,
                reason: String::new(),
                until: None,
                active: true,
                created_at: String::new(),
                created_by: None,
                rule: None,
            };
            eprintln!("lifted the quarantine of `{test}` in {}", scope(&entry));
        }
    }
    Ok(crate::exit::SUCCESS)
}

fn scope(entry: &QuarantineEntry) -> String {
    match &entry.workflow {
        Some(w) => format!("workflow `{w}`"),
        None => "every workflow".into(),
    }
}

fn service_err(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::BadRequest(m) => UserError::invalid(m)
            .with_hint("see `assay quarantine add --help`")
            .into(),
        ServiceError::NotFound(m) => UserError::invalid(m).into(),
        ServiceError::Store(s) => super::history::store_err(s),
        other => anyhow::anyhow!("failed to change quarantines: {other}"),
    }
}
