//! `assay explain EXECUTION`: why an execution failed — class and rule, evidence, the diff
//! against the last pass, each failing test's history (through the server with a context).

use super::history::{Format, print_doc};
use crate::error::UserError;
use crate::remote::ConnArgs;

/// Upper bound of the text answer.
const TEXT_LIMIT: usize = 8 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Execution id or name (`workflow-N`)
    reference: String,
    /// Output format (`table`: the verdict as text)
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    #[command(flatten)]
    conn: ConnArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        let analysis = backend
            .analysis(&args.reference)
            .await
            .map_err(|e| e.worded(service_err));
        backend.close().await;
        let analysis = analysis?;
        let text = assay_analysis::render_text(&analysis, TEXT_LIMIT);
        // With an LLM configured, a narrative of the facts above (and only them); without
        // one, or when it fails, the deterministic answer alone.
        let mut narrative = None;
        if analysis.verdict.is_some()
            && let Some(llm) = crate::llm::configured()
        {
            match llm.narrate(&text).await {
                Ok(n) => narrative = Some((llm.describe(), n)),
                Err(e) => eprintln!("warning: no narrative: {e}"),
            }
        }
        match args.output {
            Format::Table => {
                print!("{text}");
                if let Some((by, n)) = &narrative {
                    println!("narrative (by the LLM, {by}):");
                    for line in n.lines() {
                        println!("  {line}");
                    }
                }
            }
            format => {
                let mut doc = serde_json::to_value(&analysis)?;
                if let (Some((by, n)), Some(obj)) = (&narrative, doc.as_object_mut()) {
                    obj.insert(
                        "narrative".into(),
                        serde_json::json!({"model": by, "text": n}),
                    );
                }
                print_doc(&doc, format)?
            }
        }
        Ok(crate::exit::SUCCESS)
    })
}

fn service_err(e: assay_service::ServiceError) -> anyhow::Error {
    match e {
        assay_service::ServiceError::NotFound(m) => UserError::invalid(m)
            .with_hint("list executions with `assay get executions`")
            .into(),
        assay_service::ServiceError::Store(s) => super::history::store_err(s),
        other => anyhow::anyhow!("failed to explain the execution: {other}"),
    }
}
