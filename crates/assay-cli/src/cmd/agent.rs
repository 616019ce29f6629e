//! `assay agent`: a runner agent that connects out to a server and runs the executions that
//! target it (glue over `assay-agent`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use assay_client::Client;
use tokio_util::sync::CancellationToken;

use crate::error::UserError;
use crate::runtime_args::RuntimeKind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's URL (http:// or https://)
    #[arg(long, value_name = "URL", env = "ASSAY_SERVER")]
    server: String,
    /// A file holding a runner token (`assay token create NAME --role runner`)
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// This agent's name, unique among the server's agents (targets match it as `name`)
    #[arg(long, value_name = "NAME")]
    name: String,
    /// A label targets can match (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Run at most this many executions at once
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent: u16,
    /// Where executions get their folders (default: a folder named after the agent in the
    /// system's temporary directory)
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Where this agent's runs execute (`ASSAY_RUNTIME`)
    #[command(flatten)]
    runtime: crate::runtime_args::RuntimeArgs,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    super::server::init_logging("text");
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                UserError::invalid(format!("failed to read {}: {e}", path.display()))
                    .with_hint("give a file that holds a runner token: `assay token create NAME --role runner`")
            })?;
            Some(text.trim().to_string())
        }
        None => None,
    };
    let client = Client::new(&args.server, token).map_err(|e| {
        UserError::invalid(format!("failed to {e}"))
            .with_hint("e.g. --server http://127.0.0.1:8088")
    })?;
    if args.name.is_empty() {
        return Err(UserError::invalid("the agent needs a --name").into());
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        args.runtime.install().await?;
        let runtime: Arc<dyn assay_engine::Runtime> =
            assay_runner::default_runtime().unwrap_or_else(|| Arc::new(assay_engine::HostRuntime));
        let runtime_name = match crate::runtime_args::active() {
            RuntimeKind::Host => "host",
            RuntimeKind::Container => "container",
        };
        let mut config = assay_agent::AgentConfig::new(&args.name, runtime, runtime_name);
        config.labels = args.labels.into_iter().collect::<BTreeMap<_, _>>();
        config.max_concurrent = args.max_concurrent.into();
        if let Some(dir) = args.work_dir {
            config.work_dir = dir;
        }
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            super::server::shutdown_signal().await;
            eprintln!("stopping: aborting running executions");
            stop.cancel();
        });
        eprintln!(
            "assay agent `{}` connecting to {} (runtime {runtime_name})",
            config.name,
            client.base_url()
        );
        match assay_agent::run(client, config, shutdown).await {
            Ok(()) => Ok(crate::exit::SUCCESS),
            Err(e @ assay_agent::AgentError::Refused(_)) => Err(UserError::invalid(format!(
                "failed to {e}"
            ))
            .with_hint("use a runner token (`assay token create NAME --role runner`) and a --name no other running agent uses")
            .into()),
            Err(e) => Err(anyhow::anyhow!("failed to {e}")),
        }
    })
}
