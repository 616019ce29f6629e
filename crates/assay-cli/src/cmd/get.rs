//! `assay get`: stored workflows and templates, executions.

use std::collections::BTreeMap;

use assay_client::ExecutionQuery;
use assay_store::testkube::TestWorkflowExecution;
use assay_store::{DefinitionKind, ExecutionFilter, ExecutionStatus, LabelSelector, now_ms};

use super::history::{self, Format, store_err};
use crate::error::UserError;
use crate::remote::{ConnArgs, Remote, Source, local_only};

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
        let source = args.conn.open().await?;
        let result = match args.what {
            What::Workflows(l) => list_definitions(&source, DefinitionKind::Workflow, l).await,
            What::Templates(l) => list_definitions(&source, DefinitionKind::Template, l.list).await,
            What::Workflow(o) => one_definition(&source, DefinitionKind::Workflow, o).await,
            What::Template(o) => one_definition(&source, DefinitionKind::Template, o).await,
            What::Executions(l) => list_executions(&source, l).await,
            What::Execution(o) => one_execution(&source, o).await,
            What::Tests(a) => match &source {
                Source::Local(store) => super::tests::tests(store, a).await,
                Source::Remote(r) => Err(local_only("`assay get tests`", r)),
            },
            What::TestHistory(a) => match &source {
                Source::Local(store) => super::tests::test_history(store, a).await,
                Source::Remote(r) => Err(local_only("`assay get test-history`", r)),
            },
            What::Flaky(a) => match &source {
                Source::Local(store) => super::tests::flaky(store, a).await,
                Source::Remote(r) => Err(local_only("`assay get flaky`", r)),
            },
            What::Agents(a) => list_agents(&source, a).await,
        };
        source.close().await;
        result.map(|()| crate::exit::SUCCESS)
    })
}

/// `assay get agents`: from the server, or from the store a server on this machine uses.
async fn list_agents(source: &Source, args: ListAgents) -> anyhow::Result<()> {
    let agents: Vec<assay_api::agents::Agent> = match source {
        Source::Remote(r) => r.client.list_agents().await.map_err(|e| r.err(e))?,
        Source::Local(store) => {
            let now = now_ms();
            let timeout = store.lease_timeout().as_millis() as i64;
            store
                .list_agents()
                .await
                .map_err(store_err)?
                .into_iter()
                .map(|a| assay_api::agents::Agent {
                    connected: now - a.last_seen_at <= timeout,
                    registered_at: assay_store::testkube::rfc3339(a.registered_at),
                    last_seen_at: assay_store::testkube::rfc3339(a.last_seen_at),
                    name: a.name,
                    labels: a.labels,
                    runtime: a.runtime,
                    host: a.host,
                    version: a.version,
                    running: a.running,
                })
                .collect()
        }
    };
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

/// One row of a definitions table; revision and time are known for the embedded store only.
struct DefinitionRow {
    name: String,
    revision: Option<i64>,
    labels: BTreeMap<String, String>,
    updated: Option<assay_store::UnixMs>,
}

async fn list_definitions(
    source: &Source,
    kind: DefinitionKind,
    args: ListDefinitions,
) -> anyhow::Result<()> {
    let (rows, docs): (Vec<DefinitionRow>, Vec<serde_json::Value>) = match source {
        Source::Local(store) => {
            let selector = match &args.selector {
                Some(s) => LabelSelector::parse(s).map_err(UserError::invalid)?,
                None => LabelSelector::default(),
            };
            let defs = store
                .list_definitions(kind, &selector)
                .await
                .map_err(store_err)?;
            let docs = defs
                .iter()
                .map(definition_json)
                .collect::<anyhow::Result<_>>()?;
            let rows = defs
                .into_iter()
                .map(|d| DefinitionRow {
                    name: d.name,
                    revision: Some(d.revision),
                    labels: d.labels.into_iter().collect(),
                    updated: Some(d.created_at),
                })
                .collect();
            (rows, docs)
        }
        Source::Remote(r) => {
            let docs = r
                .client
                .list_definitions(kind, args.selector.as_deref())
                .await
                .map_err(|e| r.err(e))?;
            let rows = docs
                .iter()
                .map(|d| DefinitionRow {
                    name: d["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    revision: None,
                    labels: d["metadata"]["labels"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_string())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    updated: None,
                })
                .collect();
            (rows, docs)
        }
    };
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
        format => history::print_doc(&docs, format),
    }
}

/// The stored YAML as a JSON document.
fn definition_json(d: &assay_store::Definition) -> anyhow::Result<serde_json::Value> {
    Ok(serde_saphyr::from_str::<serde_json::Value>(&d.yaml)?)
}

async fn one_definition(
    source: &Source,
    kind: DefinitionKind,
    args: OneDefinition,
) -> anyhow::Result<()> {
    let store = match source {
        Source::Local(store) => store,
        Source::Remote(r) => return one_remote_definition(r, kind, args).await,
    };
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

/// A stored definition from the server: its JSON, as YAML by default (the server keeps the
/// text, but its API answers JSON: comments are not shown). Revisions are not served.
async fn one_remote_definition(
    r: &Remote,
    kind: DefinitionKind,
    args: OneDefinition,
) -> anyhow::Result<()> {
    if args.output == Format::Table || args.revision.is_some() {
        return Err(local_only(
            "the revisions of a definition (`-o table`, `--revision`)",
            r,
        ));
    }
    let doc = r
        .client
        .get_definition(kind, &args.name)
        .await
        .map_err(|e| r.err(e))?;
    history::print_doc(&doc, args.output)
}

async fn list_executions(source: &Source, args: ListExecutions) -> anyhow::Result<()> {
    let since = args.since.map(|age| now_ms() - age);
    let output = args.output;
    let executions: Vec<TestWorkflowExecution> = match source {
        Source::Local(store) => {
            let filter = ExecutionFilter {
                workflow: args.workflow,
                statuses: args.status,
                tags: args.tag,
                since,
                limit: Some(args.limit),
                before_id: None,
            };
            let rows = store.list_executions(&filter).await.map_err(store_err)?;
            rows.iter().map(TestWorkflowExecution::from).collect()
        }
        Source::Remote(r) => remote_executions(r, args, since).await?,
    };
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

/// Executions from the server, page by page up to `--limit`; `--since` is applied here (the
/// API has no such filter), stopping at the first older one since pages are newest first.
async fn remote_executions(
    r: &Remote,
    args: ListExecutions,
    since: Option<i64>,
) -> anyhow::Result<Vec<TestWorkflowExecution>> {
    let mut query = ExecutionQuery {
        workflow: args.workflow,
        statuses: args.status.iter().map(|s| s.to_string()).collect(),
        tags: args.tag,
        page_size: Some(args.limit.clamp(1, 1000)),
        before: None,
    };
    let mut out = Vec::new();
    loop {
        let page = r
            .client
            .list_executions(&query)
            .await
            .map_err(|e| r.err(e))?;
        for e in page.results {
            if let Some(since) = since
                && history::ms(Some(&e.scheduled_at)).is_some_and(|at| at < since)
            {
                return Ok(out);
            }
            out.push(e);
            if out.len() >= args.limit as usize {
                return Ok(out);
            }
        }
        match page.next {
            Some(next) => query.before = Some(next),
            None => return Ok(out),
        }
    }
}

async fn one_execution(source: &Source, args: OneExecution) -> anyhow::Result<()> {
    let reference = history::execution_ref(
        args.reference.as_deref(),
        args.workflow.as_deref(),
        args.number,
    )?;
    let e = match source {
        Source::Local(store) => {
            TestWorkflowExecution::from(&store.get_execution(&reference).await.map_err(store_err)?)
        }
        Source::Remote(r) => r
            .client
            .get_execution(&history::ref_text(&reference))
            .await
            .map_err(|e| r.err(e))?,
    };
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
