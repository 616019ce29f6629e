//! One step's or service's container as the engine's `Process`: its logs pumped into the step's
//! output, its exit code, and a stop that kills it; and an `exec` probe run in a container.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assay_engine::runtime::{
    BoxFuture, Launch, Output, Process, ProcessOutcome, RuntimeError, Stop, StopReason,
};
use bollard::query_parameters::{
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{Engine, describe};

/// A started container.
pub(super) struct ContainerProcess {
    pub(super) docker: bollard::Docker,
    pub(super) id: String,
    pub(super) address: String,
    /// Exit code and when it was seen, once the container has stopped.
    pub(super) exit: watch::Receiver<Option<(i32, Instant)>>,
    pub(super) started: Instant,
    pub(super) pump: JoinHandle<()>,
    pub(super) containers: Arc<Mutex<Vec<String>>>,
}

impl ContainerProcess {
    async fn exited(&mut self) -> (i32, Instant) {
        loop {
            if let Some(e) = *self.exit.borrow_and_update() {
                return e;
            }
            if self.exit.changed().await.is_err() {
                return (-1, Instant::now());
            }
        }
    }
}

impl Process for ContainerProcess {
    fn address(&self) -> String {
        self.address.clone()
    }

    fn try_exit_code(&mut self) -> Option<i32> {
        self.exit.borrow().map(|(code, _)| code)
    }

    fn ended_by_itself(&mut self) -> BoxFuture<'_, Option<(i32, Duration)>> {
        Box::pin(async move {
            if self.exit.borrow().is_none() {
                // Exact rather than by time: ask the engine whether it still runs.
                let running = self
                    .docker
                    .inspect_container(&self.id, None)
                    .await
                    .ok()
                    .and_then(|c| c.state)
                    .and_then(|s| s.running)
                    .unwrap_or(false);
                if running {
                    return None;
                }
            }
            let (code, at) = self.exited().await;
            Some((code, at.saturating_duration_since(self.started)))
        })
    }

    fn wait(mut self: Box<Self>, stop: Stop) -> BoxFuture<'static, ProcessOutcome> {
        Box::pin(async move {
            let far = Instant::now() + Duration::from_secs(86400 * 365);
            let deadline = stop.deadline.unwrap_or(far);
            let mut stopped = None;
            let exit = tokio::select! {
                e = self.exited() => Some(e),
                _ = stop.cancel.cancelled() => { stopped = Some(StopReason::Abort); None }
                _ = tokio::time::sleep_until(deadline.into()) => { stopped = Some(StopReason::Timeout); None }
            };
            let (code, _) = match exit {
                Some(e) => e,
                None => {
                    // SIGTERM, then SIGKILL after the grace period (the engine does both).
                    let grace = stop.grace.as_secs_f64().ceil() as i32;
                    let options = StopContainerOptionsBuilder::default().t(grace).build();
                    let _ = self.docker.stop_container(&self.id, Some(options)).await;
                    match tokio::time::timeout(stop.grace + Duration::from_secs(10), self.exited())
                        .await
                    {
                        Ok(e) => e,
                        Err(_) => {
                            let _ = self
                                .docker
                                .kill_container(
                                    &self.id,
                                    None::<bollard::query_parameters::KillContainerOptions>,
                                )
                                .await;
                            self.exited().await
                        }
                    }
                }
            };
            if tokio::time::timeout(Duration::from_secs(2), &mut self.pump)
                .await
                .is_err()
            {
                self.pump.abort();
            }
            let _ = self
                .docker
                .remove_container(
                    &self.id,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                )
                .await;
            self.containers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|c| c != &self.id);
            ProcessOutcome {
                exit_code: Some(code),
                stopped,
                peak_rss_bytes: None,
                cpu_time: None,
            }
        })
    }
}

/// Copies a container's output (stdout and stderr in the order written) into its log.
pub(super) async fn pump_logs(docker: bollard::Docker, id: String, output: Output) {
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let feed = async move {
        let mut stream = docker.logs(&id, Some(options));
        while let Some(Ok(chunk)) = stream.next().await {
            if writer.write_all(&chunk.into_bytes()).await.is_err() {
                break;
            }
        }
        drop(writer);
    };
    tokio::join!(feed, output.pump(reader));
}

/// The exit code the engine recorded for a container.
pub(super) async fn exit_code_of(docker: &bollard::Docker, id: &str) -> Option<i32> {
    let state = docker.inspect_container(id, None).await.ok()?.state?;
    state.exit_code.map(|c| c as i32)
}

/// Runs an `exec` readiness probe in a service's container: `Ok` when it exits 0.
pub(super) async fn exec_probe(
    engine: &Engine,
    container: &str,
    launch: &Launch,
) -> Result<(), RuntimeError> {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let docker = engine.docker();
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(launch.argv()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| RuntimeError::Failed(format!("exec probe: {}", describe(&e))))?;
    match docker
        .start_exec(&exec.id, None)
        .await
        .map_err(|e| RuntimeError::Failed(format!("exec probe: {}", describe(&e))))?
    {
        StartExecResults::Attached { mut output, .. } => while output.next().await.is_some() {},
        StartExecResults::Detached => {}
    }
    let code = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(|e| RuntimeError::Failed(format!("exec probe: {}", describe(&e))))?
        .exit_code;
    match code {
        Some(0) => Ok(()),
        Some(c) => Err(RuntimeError::ProbeExited(c.to_string())),
        None => Err(RuntimeError::Failed("exec probe did not finish".into())),
    }
}
