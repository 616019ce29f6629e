//! `assay ask "failed playwright tests this week for team payments"`: a question in plain words
//! (glue over `assay-assist`'s grammar and `assay-service`'s answer). The structured query it
//! understood goes to stderr, the answer to stdout (`-o json` for the whole answer).

use std::io::Write;

use assay_assist::ask::{self, AskError, Vocabulary};
use assay_service::Service;

use crate::cmd::history::{Format, ago, print_doc, print_table, table};
use crate::error::UserError;
use crate::exit;
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The question (several words, quoted or not)
    #[arg(required = true, value_name = "QUESTION")]
    pub words: Vec<String>,

    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,

    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let question = args.words.join(" ");
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = args.store.open().await?;
        let service = Service::new(store);
        let vocab = Vocabulary {
            workflows: service
                .workflow_names()
                .await
                .map_err(|e| anyhow::anyhow!("failed to {e}"))?,
        };
        let now = chrono::Utc::now();
        let query = match ask::parse(&question, now, &vocab) {
            Ok(query) => {
                eprintln!("query: {query}");
                query
            }
            // Words the grammar does not know: the LLM, when one is configured, may turn the
            // question into the same structured query (checked like input, and shown).
            Err(e) => {
                let refused = UserError::invalid(e.to_string()).with_hint(AskError::hint());
                let Some(llm) = crate::llm::configured() else {
                    return Err(refused.into());
                };
                match llm.query(&question, &vocab, now.timestamp_millis()).await {
                    Ok(query) => {
                        eprintln!("query (by the LLM, {}): {query}", llm.describe());
                        query
                    }
                    Err(llm_err) => {
                        return Err(UserError::invalid(e.to_string())
                            .with_hint(format!(
                                "{}; the LLM could not read it either: {llm_err}",
                                AskError::hint()
                            ))
                            .into());
                    }
                }
            }
        };
        let answer = service
            .answer(&query)
            .await
            .map_err(|e| UserError::invalid(e.to_string()))?;
        if args.output != Format::Table {
            print_doc(&answer, args.output)?;
            return Ok(exit::SUCCESS);
        }
        if !answer.executions.is_empty() {
            let mut t = table(&["EXECUTION", "WORKFLOW", "STATUS", "SCHEDULED"]);
            for e in &answer.executions {
                let status = serde_json::to_value(e.status)?;
                t.add_row(vec![
                    e.name.clone(),
                    e.workflow.clone(),
                    status.as_str().unwrap_or_default().to_string(),
                    ago(e.scheduled_at),
                ]);
            }
            print_table(&t);
        } else if !answer.tests.is_empty() {
            let mut t = table(&["STATUS", "TEST", "EXECUTION", "SCHEDULED", "MESSAGE"]);
            for c in &answer.tests {
                let status = serde_json::to_value(c.status)?;
                t.add_row(vec![
                    status.as_str().unwrap_or_default().to_string(),
                    c.key.clone(),
                    c.execution.clone(),
                    ago(c.scheduled_at),
                    c.message.clone().unwrap_or_default(),
                ]);
            }
            print_table(&t);
        } else if !answer.flaky.is_empty() {
            let mut t = table(&["WORKFLOW", "TEST", "RUNS", "FAILURES"]);
            for f in &answer.flaky {
                t.add_row(vec![
                    f.workflow.clone(),
                    f.key.clone(),
                    f.runs.to_string(),
                    f.failures.to_string(),
                ]);
            }
            print_table(&t);
        }
        let mut err = std::io::stderr().lock();
        let shown = answer.executions.len() + answer.tests.len() + answer.flaky.len();
        if answer.total == 0 {
            let _ = writeln!(err, "nothing matches");
        } else if answer.truncated {
            let _ = writeln!(err, "{shown} of {} shown", answer.total);
        }
        Ok(exit::SUCCESS)
    })
}
