//! `assay server`: serve the REST API, live notifications and the queue on one port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use assay_server::{DEFAULT_PORT, HttpLimits, LocalDispatch, Options, Server};

use crate::error::UserError;
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to listen on
    #[arg(long, value_name = "ADDR:PORT", default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// At most this many executions run at once; the others wait queued
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent: u16,
    /// Serve /v1 without tokens (refused unless --listen is a loopback address)
    #[arg(long)]
    no_auth: bool,
    /// Also answer requests addressed to this host name or HOST:PORT (repeatable; the old name
    /// --mcp-allowed-host still works). A loopback listener answers only loopback names
    /// (localhost, 127.0.0.1, ::1) by default and refuses others with 421, against DNS
    /// rebinding; any listener given names answers only those and loopback ones
    #[arg(
        long = "allowed-host",
        visible_alias = "mcp-allowed-host",
        value_name = "NAME"
    )]
    allowed_hosts: Vec<String>,
    /// A request's head (request line and headers) must arrive within this time; it also closes
    /// keep-alive connections left unused that long
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// Close a connection on which nothing moved either way for this long
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Serve at most this many connections at once; more wait until one closes
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Let outbound webhooks reach loopback, private and link-local addresses (refused by
    /// default: a webhook author could otherwise reach services inside this network)
    #[arg(long)]
    allow_private_webhooks: bool,
    /// Hand every run to agents (`assay agent`), also those without an execution target;
    /// without it this server runs untargeted runs itself and only targeted ones wait for a
    /// matching agent
    #[arg(long)]
    agents_only: bool,
    /// How long an agent (or a process on another host) may send no heartbeat before its
    /// running executions end `aborted`
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    lease_timeout: Duration,
    /// How log lines (schedules, hooks, webhooks, recovered executions) are written on stderr:
    /// `text` for people, `json` (one object per line) for log collectors. `RUST_LOG` filters
    /// them (default `info`)
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Save a quality gate under NAME for the dashboard's badge
    /// (`/badges/gate.svg?gate=NAME&commit=SHA`); read once at start (repeatable)
    #[arg(long = "gate", value_name = "NAME=FILE")]
    gates: Vec<String>,
    /// CRD mode: keep the store in step with the TestWorkflow, TestWorkflowTemplate and
    /// TestTrigger objects of a Kubernetes namespace, and run the TestTriggers on the events of
    /// the resources they name (needs get/list/watch on those: see deploy/kubernetes)
    #[arg(long)]
    kubernetes: bool,
    /// With --kubernetes: the kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the
    /// pod's own service account in a cluster)
    #[arg(long, value_name = "FILE", requires = "kubernetes")]
    kubeconfig: Option<std::path::PathBuf>,
    /// With --kubernetes: the kubeconfig context (default: its current one)
    #[arg(long, value_name = "NAME", requires = "kubernetes")]
    kube_context: Option<String>,
    /// With --kubernetes: the namespace to watch (default: the context's, or the pod's own)
    #[arg(long, value_name = "NAMESPACE", requires = "kubernetes")]
    namespace: Option<String>,
    /// Read the stored TestTriggers again this often even when no change was signalled (a
    /// change made through this server, or another one on the same PostgreSQL, is acted on at
    /// once; one written by another process into a SQLite file is seen only then)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    trigger_reread: Duration,
    /// How often git `content` TestTriggers poll their repositories (`git ls-remote`)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    git_poll_interval: Duration,
    /// Let git `content` TestTriggers poll `file://` repositories on this machine's disk
    /// (refused by default: a trigger's author could read any repository the server can)
    #[arg(long)]
    git_allow_file: bool,
    /// `git-pull-request` TestTriggers: GitHub's REST API at this URL instead of the one each
    /// trigger's URI names (`https://api.github.com`, `https://HOST/api/v3` for GitHub
    /// Enterprise), for a proxy or a mirror of the API
    #[arg(long, value_name = "URL", value_parser = parse_api_url)]
    github_api_url: Option<String>,
    /// How long one request of a `git-pull-request` TestTrigger to GitHub's API may take
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    git_api_timeout: Duration,
    /// The ssh host keys git TestTriggers over ssh check repositories against (a known_hosts
    /// file, e.g. from `ssh-keyscan HOST`; an unknown or changed key is refused); default: the
    /// known_hosts of the user the server runs as
    #[arg(long, value_name = "FILE", value_parser = parse_known_hosts)]
    git_known_hosts: Option<std::path::PathBuf>,
    /// With --kubernetes: another namespace whose resources TestTriggers may watch
    /// (`resourceSelector.namespace`, `namespaceRegex`, a trigger's own namespace), besides the
    /// server's; its ServiceAccount needs get/list/watch there (repeatable). A trigger naming
    /// any other namespace is refused there, with a log line
    #[arg(long = "trigger-namespace", value_name = "NAMESPACE", requires = "kubernetes", value_parser = parse_namespace)]
    trigger_namespaces: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// Where the server's runs execute (`ASSAY_RUNTIME`)
    #[command(flatten)]
    runtime: crate::runtime_args::RuntimeArgs,
}

/// A Kubernetes namespace name (an RFC 1123 label).
fn parse_namespace(text: &str) -> Result<String, String> {
    let label = !text.is_empty()
        && text.len() <= 63
        && !text.contains('.')
        && assay_spec::validate::kubernetes_name_problem(text).is_none();
    if label {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a namespace name: at most 63 lowercase letters, digits and `-`, \
             starting and ending with a letter or digit"
        ))
    }
}

/// `10s`, `2m`, `500ms`, `1h`: a positive duration.
/// An `http(s)://` base URL (no query, no user or password: it is logged).
fn parse_api_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("`{text}` is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') || text.contains(['?', '#', ' ']) {
        return Err(format!(
            "`{text}` is not a base URL: write scheme, host and path only (e.g. https://github.example.com/api/v3)"
        ));
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// A readable file, named by a path ssh's `UserKnownHostsFile` takes as one file (no
/// whitespace: ssh splits the option's value there).
fn parse_known_hosts(text: &str) -> Result<std::path::PathBuf, String> {
    if text.contains(char::is_whitespace) {
        return Err(format!(
            "`{text}`: ssh takes a path with whitespace as several files; move the file to a path without any"
        ));
    }
    let path = std::path::absolute(text).map_err(|e| format!("`{text}`: {e}"))?;
    std::fs::File::open(&path).map_err(|e| format!("cannot read `{text}`: {e}"))?;
    Ok(path)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 10s, 2m, 500ms)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
            ));
        }
    };
    if d.is_zero() {
        return Err("the duration must be above 0".into());
    }
    Ok(d)
}

/// How long running executions get to stop and record their end on shutdown.
const STOP_GRACE: Duration = Duration::from_secs(15);

pub(crate) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// Log lines on stderr, filtered by `RUST_LOG` (default `info`); colours only on a terminal
/// and without `NO_COLOR`.
pub(crate) fn init_logging(format: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    init_logging(&args.log_format);
    if args.no_auth {
        assay_server::check_no_auth(&args.listen).map_err(|e| {
            UserError::invalid(e.to_string()).with_hint("drop --no-auth, or listen on 127.0.0.1")
        })?;
    }
    if let Some(w) = assay_engine::sandbox::isolation_warning() {
        eprintln!("warning: {w}");
    }
    let mut gates = std::collections::BTreeMap::new();
    for g in &args.gates {
        let Some((name, file)) = g
            .split_once('=')
            .filter(|(n, f)| !n.is_empty() && !f.is_empty())
        else {
            return Err(
                UserError::invalid(format!("--gate {g}: expected NAME=FILE"))
                    .with_hint("e.g. --gate release=gate.yaml")
                    .into(),
            );
        };
        gates.insert(
            name.to_string(),
            super::gate::load(std::path::Path::new(file))?,
        );
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        args.runtime.install().await?;
        // `Server::start` recovers abandoned executions and logs each one.
        let store = args.store.open_unrecovered_with(args.lease_timeout).await?;
        if !args.no_auth
            && let Some((token, path)) =
                assay_server::bootstrap_admin(&store, &store.config().data_dir).await?
        {
            eprintln!("created the first admin token (shown once; also saved in {}):", path.display());
            eprintln!("  {token}");
        }
        let server = Server::start(
            store,
            Options {
                max_concurrent: args.max_concurrent.into(),
                auth: !args.no_auth,
                agents_only: args.agents_only,
            },
            Arc::new(LocalDispatch::default()),
        )
        .await?
        .with_allowed_hosts(args.allowed_hosts)
        .with_http_limits(HttpLimits {
            header_read_timeout: args.header_read_timeout,
            idle_timeout: args.idle_timeout,
            max_connections: args.max_connections as usize,
        })
        .with_gates(gates);
        server
            .state
            .webhooks
            .set_allow_private(args.allow_private_webhooks);
        let triggers = assay_server::triggers::spawn_stored(&server.state, args.trigger_reread);
        let mut git = assay_server::git_triggers::Options {
            interval: args.git_poll_interval,
            allow_file: args.git_allow_file,
            github_api: args.github_api_url.clone(),
            api_timeout: args.git_api_timeout,
            known_hosts: args.git_known_hosts.clone(),
            ..Default::default()
        };
        if args.kubernetes {
            let conn = assay_kube::connect(
                args.kubeconfig.as_deref(),
                args.kube_context.as_deref(),
                args.namespace.as_deref(),
            )
            .await
            .map_err(|e| UserError::invalid(e.to_string()))?;
            eprintln!(
                "CRD mode: syncing TestWorkflows, TestWorkflowTemplates and TestTriggers of namespace {}",
                conn.namespace
            );
            if !args.trigger_namespaces.is_empty() {
                eprintln!(
                    "TestTriggers may also watch namespace(s) {}",
                    args.trigger_namespaces.join(", ")
                );
            }
            git.kube = Some(conn.clone());
            assay_server::kubernetes::spawn(
                server.state.clone(),
                conn,
                assay_server::kubernetes::Options {
                    trigger_namespaces: args.trigger_namespaces,
                },
                triggers.clone(),
            );
        }
        assay_server::git_triggers::spawn(server.state.clone(), triggers, git);
        let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
            UserError::invalid(format!("failed to listen on {}: {e}", args.listen))
                .with_hint("pick another port with --listen 127.0.0.1:PORT")
        })?;
        eprintln!(
            "assay server listening on http://{} (API under /v1, MCP at /mcp, docs at /docs, metrics at /metrics)",
            listener.local_addr()?
        );
        // Ctrl-C / SIGTERM: stop taking work, abort what runs (each records its end), then
        // stop serving; queued executions wait for the next start.
        let queue = server.state.queue.clone();
        let mcp_tools = server.mcp_tools.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(listener, async {
            let _ = stop_rx.await;
        }));
        shutdown_signal().await;
        eprintln!("stopping: aborting running executions (queued ones stay queued)");
        let (left, ()) = tokio::join!(queue.stop(STOP_GRACE), mcp_tools.shutdown(STOP_GRACE));
        if left > 0 {
            eprintln!("{left} execution(s) did not record their end in time; the next start marks them aborted");
        }
        let _ = stop_tx.send(());
        // Followers of executions that ended are done; others (queued ones) are cut.
        let _ = tokio::time::timeout(Duration::from_secs(2), serving).await;
        Ok(crate::exit::SUCCESS)
    })
}
