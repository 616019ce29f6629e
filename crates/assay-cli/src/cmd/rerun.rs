//! `assay rerun ID|NAME [--original]`: run an execution's workflow again with the same config
//! values and tags — with the workflow's current stored definition when there is one, or the
//! definition recorded with the execution (`--original`, and for workflows run from a file).

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
    let config = match assay_service::rerun_config(&exec.summary, &workflow, &args.secrets) {
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
    let inputs = RunInputs {
        config,
        tags,
        secrets: args.secrets.clone(),
        output: args.output,
        quiet: args.quiet,
        junit: None,
    };
    let templates = stored_templates(&store).await?;
    let doc = doc.clone();
    let code = execute(
        &inputs,
        &store,
        &templates,
        Target {
            workflow,
            display,
            doc: Some(doc),
        },
    )
    .await?;
    store.close().await;
    Ok(code)
}
