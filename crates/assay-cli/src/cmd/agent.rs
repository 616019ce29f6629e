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
    /// Where this agent's runs execute: `host` (this machine), `container` (each step in its
    /// image, through Docker or Podman) or `kubernetes` (each execution as a Job)
    #[arg(long, value_enum, env = "ASSAY_RUNTIME", default_value = "host")]
    runtime: AgentRuntime,
    /// With `--runtime kubernetes`: the kubeconfig file (default: KUBECONFIG, ~/.kube/config,
    /// or the pod's own service account in a cluster)
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// With `--runtime kubernetes`: the kubeconfig context (default: its current one)
    #[arg(long, value_name = "NAME")]
    kube_context: Option<String>,
    /// With `--runtime kubernetes`: the namespace of the Jobs (default: the context's, or the
    /// agent pod's own)
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// With `--runtime kubernetes`: the image holding the `assay` binary (copied into each
    /// execution's pod; runs the executions whose workflow names no image)
    #[arg(long, value_name = "IMAGE", default_value = "assay:latest")]
    image: String,
    /// With `--runtime kubernetes`: how long an execution's pod may stay stuck (image pull
    /// errors, unschedulable) before the execution fails with the reason
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pod_start_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AgentRuntime {
    Host,
    Container,
    Kubernetes,
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
        let kind = match args.runtime {
            AgentRuntime::Container => RuntimeKind::Container,
            AgentRuntime::Host | AgentRuntime::Kubernetes => RuntimeKind::Host,
        };
        crate::runtime_args::RuntimeArgs { runtime: kind }.install().await?;
        let runtime: Arc<dyn assay_engine::Runtime> =
            assay_runner::default_runtime().unwrap_or_else(|| Arc::new(assay_engine::HostRuntime));
        let runtime_name = match (args.runtime, crate::runtime_args::active()) {
            (AgentRuntime::Kubernetes, _) => "kubernetes",
            (_, RuntimeKind::Host) => "host",
            (_, RuntimeKind::Container) => "container",
        };
        let mut config = assay_agent::AgentConfig::new(&args.name, runtime, runtime_name);
        config.labels = args.labels.iter().cloned().collect::<BTreeMap<_, _>>();
        config.max_concurrent = args.max_concurrent.into();
        if let Some(dir) = args.work_dir.clone() {
            config.work_dir = dir;
        }
        if args.runtime == AgentRuntime::Kubernetes {
            config.executor = Some(kubernetes(&args, &config).await?);
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
            Err(e @ assay_agent::AgentError::WorkDirNotOwn { .. }) => {
                Err(UserError::invalid(format!("failed to {e}"))
                    .with_hint("remove it, or pass --work-dir with a folder of your own")
                    .into())
            }
            Err(e) => Err(anyhow::anyhow!("failed to {e}")),
        }
    })
}

/// Connects to the API server, sweeps what an earlier process of this agent left, and makes
/// the executor that runs each execution as a Job.
async fn kubernetes(
    args: &Args,
    config: &assay_agent::AgentConfig,
) -> anyhow::Result<Arc<dyn assay_agent::Executor>> {
    let connection = assay_kube::connect(
        args.kubeconfig.as_deref(),
        args.kube_context.as_deref(),
        args.namespace.as_deref(),
    )
    .await
    .map_err(|e| {
        let text = e.to_string();
        let (message, hint) = match text.split_once(" (hint: ") {
            Some((m, h)) => (m.to_string(), h.trim_end_matches(')').to_string()),
            None => (
                text,
                "give --kubeconfig FILE, or run the agent in a cluster".into(),
            ),
        };
        UserError::invalid(format!("failed to {message}")).with_hint(hint)
    })?;
    let jobs = assay_kube::runtime::sweep(&connection, &args.name)
        .await
        .map_err(|e| {
            UserError::invalid(format!(
                "failed to list this agent's Jobs in namespace {}: {e}",
                connection.namespace
            ))
            .with_hint("the agent's ServiceAccount needs the Role of deploy/kubernetes-runtime")
        })?;
    if jobs > 0 {
        eprintln!(
            "swept {jobs} Job(s) (with their pods and Secrets) an earlier process of agent `{}` left",
            args.name
        );
    }
    eprintln!(
        "executions run as Jobs in namespace {} (image {})",
        connection.namespace, args.image
    );
    let mut executor = assay_kube::runtime::KubeExecutor::new(
        connection,
        &args.name,
        &args.image,
        config.work_dir.clone(),
    );
    executor.pending_limit = std::time::Duration::from_secs(args.pod_start_timeout);
    Ok(Arc::new(executor))
}
