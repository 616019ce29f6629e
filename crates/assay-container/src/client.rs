//! The Docker Engine API client: finding the engine, checking it answers, and making sure an
//! image is there (pulling it with progress when the pull policy says so).
//!
//! Every call goes through bollard. The engine is found the way the `docker` CLI finds it:
//! `DOCKER_HOST` when set (`unix://`, `tcp://`, `http://`), else the default Docker socket,
//! else Podman's sockets (rootless `$XDG_RUNTIME_DIR/podman/podman.sock`, then the system's
//! `/run/podman/podman.sock`).

use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;

/// The Docker socket the `docker` CLI uses when `DOCKER_HOST` is unset.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Podman's system socket (`podman system service` as root, `podman.socket`).
pub const PODMAN_SYSTEM_SOCKET: &str = "/run/podman/podman.sock";

/// How long a request may take. Waiting for a container is one long request, so the limit is
/// far above any step's timeout; a dead engine is found by [`Engine::connect`]'s ping.
const REQUEST_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
/// How long the first ping may take before the engine counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to the container engine. Every message says what to do next.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// No engine could be found or reached.
    #[error(
        "no container engine answers at {endpoint}: {reason}\n\nhint: start Docker or Podman (`podman system service --time=0 unix:///run/podman/podman.sock`), or set DOCKER_HOST to the engine's socket (e.g. unix:///run/user/1000/podman/podman.sock); without an engine, run with --runtime host"
    )]
    Unreachable { endpoint: String, reason: String },
    /// `imagePullPolicy: Never` and the image is not on this machine.
    #[error(
        "image {image} is not on this machine and its imagePullPolicy is Never\n\nhint: build or load it first (`docker pull {image}`, `podman load`), or allow pulling with imagePullPolicy: IfNotPresent"
    )]
    ImageNotPresent { image: String },
    /// The image could not be pulled.
    #[error(
        "failed to pull image {image}: {reason}\n\nhint: check the image's name and tag and that its registry can be reached (and logged in to); an image built on this machine needs imagePullPolicy: IfNotPresent or Never and a tag other than latest"
    )]
    PullFailed { image: String, reason: String },
    /// The engine refused a request.
    #[error("the container engine could not {action}: {message}")]
    Api { action: String, message: String },
}

impl EngineError {
    /// The engine's answer to a request, as an error naming what was being done.
    pub fn api(action: impl Into<String>, e: &bollard::errors::Error) -> Self {
        EngineError::Api {
            action: action.into(),
            message: describe(e),
        }
    }

    /// Whether the problem is with the user's input (an image that is not there) rather than
    /// with the machine: exit 2 rather than 3.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            EngineError::ImageNotPresent { .. } | EngineError::PullFailed { .. }
        )
    }
}

/// The readable part of a bollard error (the engine's own message when it sent one).
pub fn describe(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

/// Kubernetes' `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Pull only when the image is not on this machine.
    IfNotPresent,
    /// Never pull: the image must be on this machine.
    Never,
}

impl PullPolicy {
    /// The policy a container spec gives (`Always`, `IfNotPresent`, `Never`), or Kubernetes'
    /// default for the image when it gives none: `Always` for `:latest` or no tag,
    /// `IfNotPresent` otherwise. An unknown value is an error.
    pub fn for_image(policy: Option<&str>, image: &str) -> Result<PullPolicy, String> {
        match policy.map(str::trim).filter(|p| !p.is_empty()) {
            Some("Always") => Ok(PullPolicy::Always),
            Some("IfNotPresent") => Ok(PullPolicy::IfNotPresent),
            Some("Never") => Ok(PullPolicy::Never),
            Some(other) => Err(format!(
                "unknown imagePullPolicy `{other}` (expected Always, IfNotPresent or Never)"
            )),
            None if matches!(tag_of(image), None | Some("latest")) => Ok(PullPolicy::Always),
            None => Ok(PullPolicy::IfNotPresent),
        }
    }
}

/// The tag of an image reference (`None` when it has none or is pinned by digest only).
fn tag_of(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, t)| t)
}

/// Where to find the engine: `DOCKER_HOST`, else the first socket that exists among Docker's
/// and Podman's usual ones, else Docker's (so the error names it).
pub fn default_endpoint() -> String {
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.trim().is_empty()
    {
        return host;
    }
    let mut candidates = vec![DOCKER_SOCKET.to_string()];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR")
        && !dir.is_empty()
    {
        candidates.push(format!("{dir}/podman/podman.sock"));
    }
    candidates.push(PODMAN_SYSTEM_SOCKET.to_string());
    let found = candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or(&candidates[0]);
    format!("unix://{found}")
}

/// A connection to a Docker Engine API (Docker or Podman).
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Engine {
    /// Connects to `endpoint` (or [`default_endpoint`]) and checks that the engine answers.
    pub async fn connect(endpoint: Option<&str>) -> Result<Engine, EngineError> {
        let endpoint = endpoint.map_or_else(default_endpoint, str::to_string);
        let unreachable = |reason: String| EngineError::Unreachable {
            endpoint: endpoint.clone(),
            reason,
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            if !Path::new(path).exists() {
                return Err(unreachable("the socket does not exist".into()));
            }
            Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, version)
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            Docker::connect_with_http(&endpoint, REQUEST_TIMEOUT_SECS, version)
        } else {
            return Err(unreachable(
                "only unix://, tcp:// and http:// endpoints are supported".into(),
            ));
        }
        .map_err(|e| unreachable(describe(&e)))?;
        match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => Ok(Engine { docker, endpoint }),
            Ok(Err(e)) => Err(unreachable(describe(&e))),
            Err(_) => Err(unreachable(format!(
                "no answer to a ping within {}s",
                PING_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The bollard client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Where the engine was found (`unix:///…`, `tcp://…`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether `image` is on this machine.
    pub async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(EngineError::api(format!("inspect image {image}"), &e)),
        }
    }

    /// Makes sure `image` is on this machine as `policy` says: pulls it when needed, telling
    /// `progress` one line per layer status change ("pulling IMAGE: LAYER Downloading 3 MB/40 MB").
    pub async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), EngineError> {
        let present = self.has_image(image).await?;
        match policy {
            PullPolicy::Never if present => Ok(()),
            PullPolicy::Never => Err(EngineError::ImageNotPresent {
                image: image.to_string(),
            }),
            PullPolicy::IfNotPresent if present => Ok(()),
            PullPolicy::IfNotPresent | PullPolicy::Always => self.pull(image, progress).await,
        }
    }

    /// Pulls `image`, reporting progress.
    pub async fn pull(
        &self,
        image: &str,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), EngineError> {
        let (name, tag) = split_reference(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(tag)
            .build();
        let failed = |reason: String| EngineError::PullFailed {
            image: image.to_string(),
            reason,
        };
        progress(format!("pulling image {image}"));
        let mut stream = self.docker.create_image(Some(options), None, None);
        let mut last = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| failed(describe(&e)))?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(failed(err));
            }
            let mut line = format!("pulling {image}:");
            if let Some(id) = &info.id {
                line.push(' ');
                line.push_str(id);
            }
            if let Some(status) = &info.status {
                line.push(' ');
                line.push_str(status);
            }
            if let Some(d) = &info.progress_detail
                && let (Some(cur), Some(total)) = (d.current, d.total)
                && total > 0
            {
                line.push_str(&format!(" {}%", cur * 100 / total));
            }
            if line != last {
                progress(line.clone());
                last = line;
            }
        }
        if self.has_image(image).await? {
            Ok(())
        } else {
            Err(failed(
                "the engine reported no error but has no such image".into(),
            ))
        }
    }
}

/// `name` and `tag` of a reference for the pull API (`latest` when it has no tag; a digest
/// reference is passed whole as the name).
fn split_reference(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (&image[..slash + i], &image[slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pull_policy_follows_kubernetes() {
        let p = |policy: Option<&str>, image: &str| PullPolicy::for_image(policy, image).unwrap();
        assert_eq!(p(None, "nginx"), PullPolicy::Always);
        assert_eq!(p(None, "nginx:latest"), PullPolicy::Always);
        assert_eq!(p(None, "nginx:1.27"), PullPolicy::IfNotPresent);
        assert_eq!(p(None, "localhost:5000/app"), PullPolicy::Always);
        assert_eq!(p(None, "localhost:5000/app:2"), PullPolicy::IfNotPresent);
        assert_eq!(p(Some("Never"), "nginx"), PullPolicy::Never);
        assert!(PullPolicy::for_image(Some("Sometimes"), "nginx").is_err());
    }

    #[test]
    fn splits_references() {
        assert_eq!(split_reference("nginx"), ("nginx", "latest"));
        assert_eq!(split_reference("nginx:1.27"), ("nginx", "1.27"));
        assert_eq!(
            split_reference("localhost:5000/a/b:2"),
            ("localhost:5000/a/b", "2")
        );
        assert_eq!(
            split_reference("localhost:5000/a/b"),
            ("localhost:5000/a/b", "latest")
        );
        assert_eq!(split_reference("a@sha256:00"), ("a@sha256:00", ""));
    }
}
