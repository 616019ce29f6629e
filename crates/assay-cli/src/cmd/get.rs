//! `assay get`: stored workflows and templates, executions.

use assay_store::testkube::TestWorkflowExecution;
use assay_store::{DefinitionKind, ExecutionFilter, ExecutionStatus, LabelSelector, now_ms};

use super::history::{self, Format, store_err};
use crate::error::UserError;
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// List stored workflows
    Workflows(ListDefinitions),
    /// List stored templates
    Templates(ListDefinitions),
    /// Show one stored workflow (its YAML by default)
    Workflow(OneDefinition),
    /// Show one stored template (its YAML by default)
    Template(OneDefinition),
    /// List executions, newest first
    Executions(ListExecutions),
    /// Show one execution: by ID, by NAME (`workflow-N`), or by --workflow W --number N
    Execution(OneExecution),
    /// List an execution's test cases from its JUnit reports, failures first
    Tests(super::tests::TestsArgs),
    /// Show one test's result and duration in each execution of a workflow
    TestHistory(super::tests::HistoryArgs),
    /// List flaky tests: passed and failed on one commit, or passed only on a retry
    Flaky(super::tests::FlakyArgs),
}

#[derive(Debug, clap::Args)]
struct ListDefinitions {
    /// Label selector: `key=value`, `key!=value`, `key`, `!key`, comma-separated
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    selector: Option<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Debug, clap::Args)]
struct OneDefinition {
    name: String,
    /// A past revision instead of the latest
    #[arg(long)]
    revision: Option<i64>,
    /// Output format (`table` lists the revisions)
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: Format,
}

#[derive(Debug, clap::Args)]
struct ListExecutions {
    #[arg(long)]
    workflow: Option<String>,
    /// Only executions with this status (repeatable)
    #[arg(long, value_parser = parse_status)]
    status: Vec<ExecutionStatus>,
    /// Only executions with this tag (repeatable; all must match)
    #[arg(long, value_name = "KEY=VALUE", value_parser = history::parse_pair)]
    tag: Vec<(String, String)>,
    /// Only executions scheduled within this long (30m, 2h, 7d)
    #[arg(long, value_name = "AGE", value_parser = history::parse_age)]
    since: Option<i64>,
    /// At most this many
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Debug, clap::Args)]
struct OneExecution {
    /// Execution id or name
    reference: Option<String>,
    #[arg(long)]
    workflow: Option<String>,
    #[arg(long)]
    number: Option<i64>,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

fn parse_status(text: &str) -> Result<ExecutionStatus, String> {
    text.parse()
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = args.store.open().await?;
        let result = match args.what {
            What::Workflows(l) => list_definitions(&store, DefinitionKind::Workflow, l).await,
            What::Templates(l) => list_definitions(&store, DefinitionKind::Template, l).await,
            What::Workflow(o) => one_definition(&store, DefinitionKind::Workflow, o).await,
            What::Template(o) => one_definition(&store, DefinitionKind::Template, o).await,
            What::Executions(l) => list_executions(&store, l).await,
            What::Execution(o) => one_execution(&store, o).await,
            What::Tests(a) => super::tests::tests(&store, a).await,
            What::TestHistory(a) => super::tests::test_history(&store, a).await,
            What::Flaky(a) => super::tests::flaky(&store, a).await,
        };
        store.close().await;
        result.map(|()| crate::exit::SUCCESS)
    })
}

async fn list_definitions(
    store: &assay_store::Store,
    kind: DefinitionKind,
    args: ListDefinitions,
) -> anyhow::Result<()> {
    let selector = match &args.selector {
        Some(s) => LabelSelector::parse(s).map_err(UserError::invalid)?,
        None => LabelSelector::default(),
    };
    let defs = store
        .list_definitions(kind, &selector)
        .await
        .map_err(store_err)?;
    match args.output {
        Format::Table => {
            let mut t = history::table(&["NAME", "REVISION", "LABELS", "UPDATED"]);
            for d in &defs {
                let labels: Vec<String> =
                    d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                t.add_row(vec![
                    d.name.clone(),
                    d.revision.to_string(),
                    labels.join(","),
                    history::ago(d.created_at),
                ]);
            }
            history::print_table(&t);
            if defs.is_empty() {
                eprintln!("no {}s stored", kind.noun());
            }
            Ok(())
        }
        format => {
            let docs: Vec<serde_json::Value> = defs
                .iter()
                .map(definition_json)
                .collect::<anyhow::Result<_>>()?;
            history::print_doc(&docs, format)
        }
    }
}

/// The stored YAML as a JSON document.
fn definition_json(d: &assay_store::Definition) -> anyhow::Result<serde_json::Value> {
    Ok(serde_saphyr::from_str::<serde_json::Value>(&d.yaml)?)
}

async fn one_definition(
    store: &assay_store::Store,
    kind: DefinitionKind,
    args: OneDefinition,
) -> anyhow::Result<()> {
    if args.output == Format::Table {
        let revisions = store
            .definition_revisions(kind, &args.name)
            .await
            .map_err(store_err)?;
        if revisions.is_empty() {
            return Err(
                UserError::invalid(format!("{} `{}` not found", kind.noun(), args.name)).into(),
            );
        }
        let mut t = history::table(&["REVISION", "STORED", "LABELS"]);
        for d in &revisions {
            let labels: Vec<String> = d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            t.add_row(vec![
                d.revision.to_string(),
                history::ago(d.created_at),
                labels.join(","),
            ]);
        }
        history::print_table(&t);
        return Ok(());
    }
    let def = store
        .get_definition(kind, &args.name, args.revision)
        .await
        .map_err(store_err)?;
    match args.output {
        Format::Yaml => {
            print!("{}", def.yaml);
            if !def.yaml.ends_with('\n') {
                println!();
            }
            Ok(())
        }
        format => history::print_doc(&definition_json(&def)?, format),
    }
}

async fn list_executions(store: &assay_store::Store, args: ListExecutions) -> anyhow::Result<()> {
    let filter = ExecutionFilter {
        workflow: args.workflow,
        statuses: args.status,
        tags: args.tag,
        since: args.since.map(|age| now_ms() - age),
        limit: Some(args.limit),
        before_id: None,
    };
    let executions = store.list_executions(&filter).await.map_err(store_err)?;
    match args.output {
        Format::Table => {
            let mut t = history::table(&["NAME", "STATUS", "STARTED", "DURATION", "TAGS", "ID"]);
            for e in &executions {
                let end = e.finished_at.unwrap_or_else(now_ms);
                let tags: Vec<String> = e.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                t.add_row(vec![
                    e.name.clone(),
                    e.status.to_string(),
                    history::ago(e.scheduled_at),
                    e.started_at
                        .map(|s| history::duration(end - s))
                        .unwrap_or_default(),
                    tags.join(","),
                    e.id.clone(),
                ]);
            }
            history::print_table(&t);
            if executions.is_empty() {
                eprintln!("no executions match");
            }
            Ok(())
        }
        format => {
            let docs: Vec<TestWorkflowExecution> =
                executions.iter().map(TestWorkflowExecution::from).collect();
            history::print_doc(&docs, format)
        }
    }
}

async fn one_execution(store: &assay_store::Store, args: OneExecution) -> anyhow::Result<()> {
    let reference = history::execution_ref(
        args.reference.as_deref(),
        args.workflow.as_deref(),
        args.number,
    )?;
    let e = store.get_execution(&reference).await.map_err(store_err)?;
    if args.output != Format::Table {
        return history::print_doc(&TestWorkflowExecution::from(&e), args.output);
    }
    let end = e.finished_at.unwrap_or_else(now_ms);
    println!("Name:      {}", e.name);
    println!("Id:        {}", e.id);
    println!("Workflow:  {}", e.workflow);
    println!("Status:    {}", e.status);
    println!(
        "Scheduled: {} ({})",
        assay_store::testkube::rfc3339(e.scheduled_at),
        history::ago(e.scheduled_at)
    );
    if let Some(s) = e.started_at {
        println!("Duration:  {}", history::duration(end - s));
    }
    if !e.tags.is_empty() {
        let tags: Vec<String> = e.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("Tags:      {}", tags.join(","));
    }
    if let Some(err) = &e.error_message {
        println!("Error:     {err}");
    }
    if !e.steps.is_empty() {
        println!();
        let mut t = history::table(&["STEP", "REF", "STATUS", "EXIT", "DURATION", "ERROR"]);
        for s in &e.steps {
            let dur = match (s.started_at, s.finished_at) {
                (Some(a), Some(b)) => history::duration(b - a),
                _ => String::new(),
            };
            t.add_row(vec![
                s.name.clone().unwrap_or_default(),
                s.step_ref.clone(),
                s.status.to_string(),
                s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                dur,
                s.error_message.clone().unwrap_or_default(),
            ]);
        }
        history::print_table(&t);
    }
    if !e.artifacts.is_empty() {
        println!(
            "\nArtifacts: {} (`assay artifacts {}`)",
            e.artifacts.len(),
            e.name
        );
    }
    Ok(())
}
