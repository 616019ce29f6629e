//! `assay rerun ID|NAME [--original] [--failed]`: run an execution's workflow again with the
//! same config values and tags — with the workflow's current stored definition when there is
//! one, or the definition recorded with the execution (`--original`, and for workflows run from
//! a file). `--failed` hands the execution's failed tests to the workflow as
//! `execution.selectedTests`, and refuses a workflow that does not use them.

use assay_store::{DefinitionKind, ExecutionRef};

use super::history::{self, store_err};
use super::run::{RunFormat, RunInputs, Target, execute, stored_templates};
use crate::cmd::plan::{parse_key_value, pick_workflow};
use crate::error::UserError;
use crate::files::LoadedFile;
use crate::remote::{ConnArgs, local_only};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Execution id or name (`workflow-N`)
    reference: String,

    /// Use the definition recorded with the execution even when the workflow is stored
    #[arg(long)]
    original: bool,

    /// Run only the tests that failed: they reach the workflow as `execution.selectedTests`,
    /// which a step turns into the tool's selector with `testSelector(TOOL,
    /// execution.selectedTests)`; a workflow that does not use them is refused
    #[arg(long)]
    failed: bool,

    /// Values of sensitive parameters, which are never recorded, `KEY=VALUE` (repeatable)
    #[arg(long = "secret", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    secrets: Vec<(String, String)>,

    /// Print the finished execution as JSON (Testkube's shape) on stdout
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<RunFormat>,

    /// Do not stream step output; show only the summary
    #[arg(long, short = 'q')]
    quiet: bool,

    /// With a context: stream the step changes and log lines as the server runs them (without
    /// it, wait for the verdict and show the summary). A rerun on this machine always streams
    #[arg(long, short = 'f')]
    follow: bool,

    #[command(flatten)]
    conn: ConnArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(rerun(args))
}

async fn rerun(args: Args) -> anyhow::Result<u8> {
    if let Some(remote) = args.conn.remote()? {
        // The server reruns with the workflow as stored now (or the recorded definition when
        // it was deleted); sensitive values cannot be sent again through the API yet.
        if args.original {
            return Err(local_only("`--original`", &remote));
        }
        if !args.secrets.is_empty() {
            return Err(local_only("`--secret`", &remote));
        }
        if args.failed {
            return Err(local_only("`--failed`", &remote));
        }
        return super::run_remote::rerun(
            &remote,
            &args.reference,
            args.follow,
            args.quiet,
            args.output,
        )
        .await;
    }
    let store = args.conn.store.open().await?;
    let found = history::find(&store, &ExecutionRef::parse(&args.reference)).await?;
    let exec = store
        .get_execution(&ExecutionRef::Id(found.id.clone()))
        .await
        .map_err(store_err)?;
    let current = if args.original {
        None
    } else {
        match store
            .get_definition(DefinitionKind::Workflow, &exec.summary.workflow, None)
            .await
        {
            Ok(d) => Some(d.yaml),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(store_err(e)),
        }
    };
    let (yaml, display) = match current {
        Some(y) => (y, format!("stored workflow {}", exec.summary.workflow)),
        None => (
            exec.definition.clone(),
            format!("the definition recorded with {}", exec.summary.name),
        ),
    };
    let file = LoadedFile {
        display: display.clone(),
        loaded: assay_spec::validate::check_bytes(&display, yaml.as_bytes()),
    };
    let (workflow, doc) = pick_workflow(&file, None)?;
    // The service's rules: sensitive values were never recorded, so they must be given again;
    // values of parameters the workflow no longer declares are dropped.
    let config: Vec<(String, String)> =
        match assay_service::rerun_config(&exec.summary, &workflow, &args.secrets) {
            Ok(config) => config.into_iter().collect(),
            Err(e) => {
                if let assay_service::ServiceError::SensitiveNotRecorded { keys, .. } = &e {
                    let hint = format!(
                        "give them again: {}",
                        keys.iter()
                            .map(|k| format!("--secret {k}=..."))
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                    return Err(UserError::invalid(e.to_string()).with_hint(hint).into());
                }
                return Err(anyhow::anyhow!(e));
            }
        };
    let tags = exec
        .summary
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let templates = stored_templates(&store).await?;
    let target = Target {
        workflow,
        display,
        doc: Some(doc.clone()),
    };
    let selected_tests = if args.failed {
        failed_tests(&store, &exec.summary, &target, &templates, &config).await?
    } else {
        Vec::new()
    };
    let inputs = RunInputs {
        config,
        tags,
        // A rerun keeps the original's tags, provenance included: it tests the same change.
        inferred: Default::default(),
        secrets: args.secrets.clone(),
        output: args.output,
        quiet: args.quiet,
        junit: None,
        selected_tests,
    };
    let done = execute(&inputs, &store, &templates, target).await?;
    store.close().await;
    Ok(done.code)
}

/// `--failed`: the execution's failed tests as `execution.selectedTests`. Refused (exit 2)
/// when there is nothing to select, or when the workflow would not use the selection and so
/// would run every test again.
async fn failed_tests(
    store: &assay_store::Store,
    exec: &assay_store::ExecutionSummary,
    target: &Target,
    templates: &assay_spec::TemplateSet,
    config: &[(String, String)],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let cases = store
        .test_cases(&ExecutionRef::Id(exec.id.clone()), &[])
        .await
        .map_err(store_err)?;
    let failed = assay_service::selection::failed_cases(&cases);
    if failed.is_empty() {
        let (why, hint) = if cases.is_empty() {
            (
                "recorded no test cases (no step wrote a JUnit report), so which tests failed is not known",
                "rerun it all without `--failed`, and have the step write JUnit (e.g. `pytest --junitxml=/data/artifacts/junit.xml` with an `artifacts` entry)",
            )
        } else {
            (
                "has no failed test case",
                "there is nothing to rerun; without `--failed` every test runs again",
            )
        };
        return Err(UserError::invalid(format!("execution {} {why}", exec.name))
            .with_hint(hint)
            .into());
    }
    let tests: Vec<serde_json::Value> = failed
        .iter()
        .map(assay_service::selection::selected)
        .collect();
    super::repeat_new::require_selection(target, templates, config, &tests, "--failed")?;
    eprintln!(
        "rerunning the {} failed test{} of {}: {}",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" },
        exec.name,
        failed
            .iter()
            .map(|c| c.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(tests)
}
