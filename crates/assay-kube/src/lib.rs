//! Assay's Kubernetes side, over the `kube` client: how a process reaches the API server
//! ([`connect`]), the labels Assay puts on everything it creates there ([`labels`]), CRD mode
//! ([`crd`]: the TestWorkflow, TestWorkflowTemplate and TestTrigger objects of a namespace,
//! watched) and the TestTrigger watcher ([`triggers`]: Testkube's events on the resources
//! triggers name; [`probes`]: their HTTP probes).
//! The Job runtime of agents: [`job`] (an execution's Job and Secret, pure), [`podlog`] (the
//! line protocol of `assay pod run`'s stdout) and [`runtime`] (the agent side: create, follow
//! the pod's log, report, delete).
//!
//! No Kubernetes API server can be had on the machines Assay is built on: what is here is
//! tested against a fake API server (named as such in the tests), never a real cluster.

use std::path::Path;

pub mod crd;
pub mod job;
pub mod podlog;
pub mod probes;
pub mod runtime;
pub mod services;
pub mod triggers;
pub mod workers;

/// A client for one API server, and the namespace to work in.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    /// The namespace given, else the kubeconfig context's (or the pod's own, in a cluster).
    pub namespace: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Why Assay could not reach or use the API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("read the kubeconfig {path}: {source} (hint: check --kubeconfig or KUBECONFIG)")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error(
        "find the Kubernetes API server: {0} (hint: run inside a cluster, or give --kubeconfig)"
    )]
    Infer(String),
    #[error("connect to the Kubernetes API server: {0}")]
    Client(#[from] kube::Error),
}

/// Connects to an API server: with `kubeconfig`, that file (and its `context`, else its
/// current one); without, the environment as `kubectl` reads it (`KUBECONFIG`,
/// `~/.kube/config`) or the in-cluster service account. `namespace` overrides the default one.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<Connection, KubeError> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                KubeError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|source| KubeError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| KubeError::Infer(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Infer(e.to_string()))?,
    };
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    Ok(Connection { client, namespace })
}

/// What [`secret_value`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretKey {
    /// The key's value (its `data`, as text).
    Value(String),
    /// No Secret of that name in the namespace.
    NoSecret,
    /// The Secret exists and has no such key.
    NoKey,
}

/// The value of `key` in the Secret `name` of `namespace`, or which of the two is missing.
/// Git TestTriggers read their credentials so.
pub async fn secret_value(
    conn: &Connection,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<SecretKey, KubeError> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(conn.client.clone(), namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(SecretKey::NoSecret);
    };
    let value = secret
        .data
        .and_then(|d| {
            d.get(key)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        })
        .or_else(|| secret.string_data.and_then(|d| d.get(key).cloned()));
    Ok(value.map_or(SecretKey::NoKey, SecretKey::Value))
}

/// The labels on every object Assay creates in a cluster, so it can find (and sweep) them.
pub mod labels {
    /// `app.kubernetes.io/managed-by: assay`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// The value of [`MANAGED_BY`].
    pub const ASSAY: &str = "assay";
    /// The execution an object belongs to (its id).
    pub const EXECUTION: &str = "assay.io/execution";
    /// The agent that created it (its name).
    pub const AGENT: &str = "assay.io/agent";
    /// What a pod of the execution is for: [`EXECUTION_ROLE`] (the steps) or [`SERVICE_ROLE`].
    pub const ROLE: &str = "assay.io/role";
    /// The value of [`ROLE`] on the Job (and pod, Secret) that runs the steps.
    pub const EXECUTION_ROLE: &str = "execution";
    /// The value of [`ROLE`] on the objects of one service instance.
    pub const SERVICE_ROLE: &str = "service";
    /// The value of [`ROLE`] on the objects of one parallel worker.
    pub const WORKER_ROLE: &str = "worker";
    /// The parallel step's ref (on a worker's objects).
    pub const WORKER: &str = "assay.io/worker";
    /// The service's name (on a service instance's objects).
    pub const SERVICE: &str = "assay.io/service";
    /// The instance's index (on a service instance's or a worker's objects).
    pub const INDEX: &str = "assay.io/index";
}
