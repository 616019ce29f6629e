//! `assay get`: stored workflows and templates, executions.

use assay_store::testkube::TestWorkflowExecution;
use assay_store::{DefinitionKind, ExecutionStatus, now_ms};

use super::history::{self, Format};
use crate::backend::{Backend, ExecutionsWanted};
use crate::error::UserError;
use crate::remote::ConnArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// List stored workflows
    Workflows(ListDefinitions),
    /// List stored templates (`--builtin`: the templates that ship with Assay)
    Templates(ListTemplates),
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
    /// List runner agents (`assay agent`): labels, last seen, running executions
    Agents(ListAgents),
}

#[derive(Debug, clap::Args)]
struct ListAgents {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
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
struct ListTemplates {
    #[command(flatten)]
    list: ListDefinitions,
    /// The built-in templates (Testkube's `official/*` and `distribute/evenly`, written for
    /// Assay), used when no stored or given template has the name
    #[arg(long, conflicts_with = "selector")]
    builtin: bool,
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
    if let What::Templates(ListTemplates {
        builtin: true,
        list,
    }) = &args.what
    {
        list_builtin_templates(list.output)?;
        return Ok(crate::exit::SUCCESS);
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        let b = backend.as_ref();
        let result = match args.what {
            What::Workflows(l) => list_definitions(b, DefinitionKind::Workflow, l).await,
            What::Templates(l) => list_definitions(b, DefinitionKind::Template, l.list).await,
            What::Workflow(o) => one_definition(b, DefinitionKind::Workflow, o).await,
            What::Template(o) => one_definition(b, DefinitionKind::Template, o).await,
            What::Executions(l) => list_executions(b, l).await,
            What::Execution(o) => one_execution(b, o).await,
            What::Tests(a) => match b.store("`assay get tests`") {
                Ok(store) => super::tests::tests(store, a).await,
                Err(e) => Err(e),
            },
            What::TestHistory(a) => match b.store("`assay get test-history`") {
                Ok(store) => super::tests::test_history(store, a).await,
                Err(e) => Err(e),
            },
            What::Flaky(a) => match b.store("`assay get flaky`") {
                Ok(store) => super::tests::flaky(store, a).await,
                Err(e) => Err(e),
            },
            What::Agents(a) => list_agents(b, a).await,
        };
        backend.close().await;
        result.map(|()| crate::exit::SUCCESS)
    })
}

/// `assay get agents`: from the server, or from the store a server on this machine uses.
async fn list_agents(backend: &dyn Backend, args: ListAgents) -> anyhow::Result<()> {
    let agents = backend.list_agents().await?;
    match args.output {
        Format::Table => {
            let mut t = history::table(&[
                "NAME",
                "LABELS",
                "RUNTIME",
                "HOST",
                "RUNNING",
                "LAST SEEN",
                "STATE",
            ]);
            for a in &agents {
                let labels: Vec<String> =
                    a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let seen = chrono::DateTime::parse_from_rfc3339(&a.last_seen_at)
                    .map(|t| history::ago(t.timestamp_millis()))
                    .unwrap_or_else(|_| a.last_seen_at.clone());
                t.add_row(vec![
                    a.name.clone(),
                    labels.join(","),
                    a.runtime.clone(),
                    a.host.clone(),
                    a.running.to_string(),
                    seen,
                    if a.connected { "connected" } else { "gone" }.to_string(),
                ]);
            }
            history::print_table(&t);
            if agents.is_empty() {
                eprintln!(
                    "no agents yet: start one with `assay agent --server URL --token-file F --name N`"
                );
            }
            Ok(())
        }
        format => history::print_doc(&agents, format),
    }
}

/// `assay get templates --builtin`: name and description of every template built into Assay;
/// needs no store.
fn list_builtin_templates(output: Format) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct Row {
        name: String,
        description: String,
    }
    let rows: Vec<Row> = assay_spec::builtin::all()
        .iter()
        .map(|t| Row {
            name: assay_spec::template::display_name(&t.metadata.name),
            description: t.description.clone(),
        })
        .collect();
    match output {
        Format::Table => {
            let mut t = history::table(&["NAME", "DESCRIPTION"]);
            for r in &rows {
                t.add_row(vec![r.name.clone(), r.description.clone()]);
            }
            history::print_table(&t);
            Ok(())
        }
        format => history::print_doc(&rows, format),
    }
}

async fn list_definitions(
    backend: &dyn Backend,
    kind: DefinitionKind,
    args: ListDefinitions,
) -> anyhow::Result<()> {
    let rows = backend
        .list_definitions(kind, args.selector.as_deref())
        .await?;
    match args.output {
        Format::Table => {
            let mut t = history::table(&["NAME", "REVISION", "LABELS", "UPDATED"]);
            for d in &rows {
                let labels: Vec<String> =
                    d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                t.add_row(vec![
                    d.name.clone(),
                    d.revision
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into()),
                    labels.join(","),
                    d.updated.map(history::ago).unwrap_or_else(|| "-".into()),
                ]);
            }
            history::print_table(&t);
            if rows.is_empty() {
                eprintln!("no {}s stored", kind.noun());
            }
            Ok(())
        }
        format => {
            let docs: Vec<&serde_json::Value> = rows.iter().map(|d| &d.doc).collect();
            history::print_doc(&docs, format)
        }
    }
}

async fn one_definition(
    backend: &dyn Backend,
    kind: DefinitionKind,
    args: OneDefinition,
) -> anyhow::Result<()> {
    if args.output == Format::Table {
        let revisions = backend.revisions(kind, &args.name).await?;
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
                history::ago(d.stored),
                labels.join(","),
            ]);
        }
        history::print_table(&t);
        return Ok(());
    }
    let def = backend.definition(kind, &args.name, args.revision).await?;
    match (args.output, def.yaml) {
        (Format::Yaml, Some(yaml)) => {
            print!("{yaml}");
            if !yaml.ends_with('\n') {
                println!();
            }
            Ok(())
        }
        // A server's API answers JSON: shown as YAML without the text's comments.
        (format, _) => history::print_doc(&def.doc, format),
    }
}

async fn list_executions(backend: &dyn Backend, args: ListExecutions) -> anyhow::Result<()> {
    let output = args.output;
    let executions = backend
        .list_executions(ExecutionsWanted {
            since: args.since.map(|age| now_ms() - age),
            workflow: args.workflow,
            statuses: args.status,
            tags: args.tag,
            limit: args.limit,
        })
        .await?;
    match output {
        Format::Table => {
            let mut t = history::table(&["NAME", "STATUS", "STARTED", "DURATION", "TAGS", "ID"]);
            for e in &executions {
                let end = history::ms(e.result.finished_at.as_deref()).unwrap_or_else(now_ms);
                let tags: Vec<String> = e.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                t.add_row(vec![
                    e.name.clone(),
                    e.result.status.to_string(),
                    history::ms(Some(&e.scheduled_at))
                        .map(history::ago)
                        .unwrap_or_default(),
                    history::ms(e.started_at.as_deref())
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
        format => history::print_doc(&executions, format),
    }
}

async fn one_execution(backend: &dyn Backend, args: OneExecution) -> anyhow::Result<()> {
    let reference = history::execution_ref(
        args.reference.as_deref(),
        args.workflow.as_deref(),
        args.number,
    )?;
    let e = backend.execution(&reference).await?;
    if args.output != Format::Table {
        return history::print_doc(&e, args.output);
    }
    print_execution(&e);
    Ok(())
}

/// `assay get execution` as a table, from Testkube's shape (the same whatever the source).
fn print_execution(e: &TestWorkflowExecution) {
    let end = history::ms(e.result.finished_at.as_deref()).unwrap_or_else(now_ms);
    println!("Name:      {}", e.name);
    println!("Id:        {}", e.id);
    println!("Workflow:  {}", e.workflow.name);
    println!("Status:    {}", e.result.status);
    let scheduled = history::ms(Some(&e.scheduled_at)).unwrap_or_default();
    println!(
        "Scheduled: {} ({})",
        assay_store::testkube::rfc3339(scheduled),
        history::ago(scheduled)
    );
    if let Some(s) = history::ms(e.started_at.as_deref()) {
        println!("Duration:  {}", history::duration(end - s));
    }
    if !e.tags.is_empty() {
        let tags: Vec<String> = e.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("Tags:      {}", tags.join(","));
    }
    if let Some(err) = e
        .result
        .initialization
        .as_ref()
        .and_then(|i| i.error_message.as_ref())
    {
        println!("Error:     {err}");
    }
    for problem in &e.record_errors {
        println!("Not recorded: {problem}");
    }
    if let Some(p) = &e.parent {
        println!("Started by: {} (step {})", p.name, p.step_ref);
    }
    let steps = history::steps_in_order(e);
    if !steps.is_empty() {
        println!();
        let mut t = history::table(&["STEP", "REF", "STATUS", "EXIT", "DURATION", "ERROR"]);
        for (reference, name, s) in steps {
            let dur = match (
                history::ms(s.started_at.as_deref()),
                history::ms(s.finished_at.as_deref()),
            ) {
                (Some(a), Some(b)) => history::duration(b - a),
                _ => String::new(),
            };
            t.add_row(vec![
                name.unwrap_or_default(),
                reference,
                s.status.to_string(),
                s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                dur,
                s.error_message.clone().unwrap_or_default(),
            ]);
        }
        history::print_table(&t);
    }
    if !e.children.is_empty() {
        println!();
        let mut t = history::table(&["EXECUTED", "WORKFLOW", "STATUS", "STEP"]);
        for c in &e.children {
            t.add_row(vec![
                c.name.clone(),
                c.workflow.clone(),
                c.status.to_string(),
                c.step_ref.clone(),
            ]);
        }
        history::print_table(&t);
        println!("(`assay get execution NAME` shows one)");
    }
    if !e.artifacts.is_empty() {
        println!(
            "\nArtifacts: {} (`assay artifacts {}`)",
            e.artifacts.len(),
            e.name
        );
    }
}
