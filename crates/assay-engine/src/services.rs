//! `services`: long-running processes next to a group's steps, with readiness probes.
//!
//! A service is a process the runtime starts ([`crate::runtime::LaunchKind::Service`]);
//! `services.<name>.<index>.ip` is the address the runtime gives it (on the host, every
//! service listens on this machine: `127.0.0.1`). Readiness follows Kubernetes: wait `initialDelaySeconds`, then probe every
//! `periodSeconds` with `timeoutSeconds` per try; `failureThreshold` failures in a row, the
//! service's own `timeout`, or the process ending first fail the service, and with it the step.

use std::time::{Duration, Instant};

use assay_spec::plan::{PlanServiceInstance, PlanStep, Probe};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::event::{Event, ServiceState};
use crate::parallel::ExpandError;
use crate::runner::{Attempt, Frame, PrepareError, Runner};
use crate::runtime::{LaunchKind, Output, Process, RemoteService, RuntimeError, Stop};

/// A started service instance.
pub(crate) struct Started {
    name: String,
    index: u64,
    reference: String,
    running: Box<dyn Process>,
    /// Without a readiness probe the service counts as ready at once, and, as in Testkube, it
    /// fails its step if it exits with a non-zero code within [`FAILURE_CHECK_WINDOW`].
    watched: bool,
}

/// How long after its start a service without a readiness probe must not fail (Testkube's
/// `serviceFailureCheckTimeout`). Testkube watches no service after that window.
const FAILURE_CHECK_WINDOW: Duration = Duration::from_secs(15);

/// Why a service's instances could not be made (the step's message puts `service NAME: `
/// before it).
#[derive(Debug, thiserror::Error)]
enum InstancesError {
    #[error("has neither instances nor a template")]
    NoTemplate,
    #[error(transparent)]
    Expand(#[from] ExpandError),
    /// A template of the service failed for one copy.
    #[error(transparent)]
    Resolve(#[from] assay_spec::resolve::PathError),
    /// The service does not go to JSON and back (a template made a field the wrong type).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Why one try of a readiness probe failed (the service's message says `last: ` before it).
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("tcp {addr}: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
    #[error("http {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("httpGet with scheme HTTPS is not supported by the local runtime")]
    Https,
    /// Sending the request or reading the answer failed.
    #[error("{0}")]
    Http(std::io::Error),
    #[error("not an HTTP response")]
    NotHttp,
    #[error("http {addr}{path} answered {code}")]
    Status {
        addr: String,
        path: String,
        code: u16,
    },
    #[error("the readiness probe has no exec, tcpSocket or httpGet")]
    NoKind,
    /// A port that is not a number (a named port), as written.
    #[error("port {0} is not a number (named ports need Kubernetes)")]
    Port(Value),
    #[error("timed out")]
    TimedOut,
}

enum Probed {
    Ready,
    Failed(String),
}

impl Runner {
    /// Starts every service of a step and waits until each is ready. On failure, the ones
    /// already started are stopped and `a` says why.
    pub(crate) async fn start_services(
        &mut self,
        step: &PlanStep,
        frame: &Frame,
        a: &mut Attempt,
    ) -> Vec<Started> {
        let full = self.full_ref(&step.reference);
        let mut started: Vec<Started> = Vec::new();
        for service in &step.services {
            let instances = match self.service_instances(service, &full, &frame.cwd).await {
                Ok(i) => i,
                Err(e) => {
                    a.fail(format!("service {}: {e}", service.name));
                    break;
                }
            };
            let mut ips = Vec::new();
            for inst in &instances {
                let index = inst.instance.index;
                let log_ref = format!("{full}/service/{}/{index}", service.name);
                self.emit(Event::Service {
                    reference: full.clone(),
                    name: service.name.clone(),
                    index,
                    state: ServiceState::Starting,
                })
                .await;
                // A service that runs elsewhere gets its content there.
                let remote = self.scope.services_elsewhere();
                if let Some(content) = inst.content.as_ref().filter(|_| !remote) {
                    self.content(content, &log_ref, frame, a).await;
                    if !a.ok {
                        break;
                    }
                }
                let kind = LaunchKind::Service {
                    name: service.name.clone(),
                    index,
                };
                let launch = match self.prepare(kind, &inst.process, frame.passed, &frame.cwd, None)
                {
                    Ok(l) => l,
                    Err(e) => {
                        a.fail(format!("service {}: {e}", service.name));
                        break;
                    }
                };
                let output = Output::new(&log_ref, &self.shared.masker, &self.shared.sink);
                let exec_probe = inst.readiness_probe.as_ref().and_then(|p| p.exec.as_ref());
                let launched = if remote {
                    let probe_command = match exec_probe {
                        None => None,
                        Some(cmd) => {
                            let process = assay_spec::plan::PlanProcess {
                                command: cmd.clone(),
                                ..Default::default()
                            };
                            let kind = LaunchKind::Probe {
                                service: service.name.clone(),
                                index,
                            };
                            match self.prepare(kind, &process, frame.passed, &frame.cwd, None) {
                                Ok(l) => Some(l.argv()),
                                Err(e) => {
                                    a.fail(format!("service {}: {e}", service.name));
                                    break;
                                }
                            }
                        }
                    };
                    let remote_service = RemoteService {
                        launch,
                        instance: inst.clone(),
                        probe_command,
                        output,
                        deadline: frame.deadline.as_ref().map(|d| d.0),
                        cancel: self.cancel.clone(),
                    };
                    self.scope.start_remote_service(remote_service).await
                } else {
                    self.scope.start(launch, output).await
                };
                let running = match launched {
                    Ok(r) => r,
                    Err(e) => {
                        // A wait elsewhere ended by an abort or a deadline is that interrupt.
                        if self.cancel.is_cancelled() {
                            self.interrupt_for(crate::runtime::StopReason::Abort, frame);
                        } else if frame
                            .deadline
                            .as_ref()
                            .is_some_and(|d| Instant::now() >= d.0)
                        {
                            self.interrupt_for(crate::runtime::StopReason::Timeout, frame);
                        }
                        a.fail(format!("service {}: {e}", service.name));
                        break;
                    }
                };
                let mut s = Started {
                    name: service.name.clone(),
                    index,
                    reference: full.clone(),
                    running,
                    watched: inst.readiness_probe.is_none(),
                };
                // An `exec` probe of a service elsewhere ran where the service runs: it is
                // ready once started.
                let ready = if remote && exec_probe.is_some() {
                    Probed::Ready
                } else {
                    self.wait_ready(&mut s, inst, frame).await
                };
                match ready {
                    Probed::Ready => {
                        let ip = s.running.address();
                        self.emit(Event::Service {
                            reference: full.clone(),
                            name: s.name.clone(),
                            index,
                            state: ServiceState::Ready { ip: ip.clone() },
                        })
                        .await;
                        ips.push(ip);
                        started.push(s);
                    }
                    Probed::Failed(reason) => {
                        let reason =
                            self.mask(&format!("service {} ({index}) {reason}", service.name));
                        self.emit(Event::Service {
                            reference: full.clone(),
                            name: s.name.clone(),
                            index,
                            state: ServiceState::Failed {
                                reason: reason.clone(),
                            },
                        })
                        .await;
                        started.push(s);
                        if self.interrupt.is_none() {
                            self.fatal.get_or_insert_with(|| reason.clone());
                            a.fail(reason);
                        } else {
                            a.ok = false;
                        }
                        break;
                    }
                }
            }
            self.services.insert(service.name.clone(), ips);
            if !a.ok {
                break;
            }
        }
        if !a.ok {
            // The step has failed already; that reason stands.
            let _ = self.stop_services(std::mem::take(&mut started)).await;
        }
        started
    }

    /// Concrete instances of a service (expanding a run-time strategy when needed).
    async fn service_instances(
        &self,
        service: &assay_spec::plan::PlanService,
        full: &str,
        cwd: &str,
    ) -> Result<Vec<PlanServiceInstance>, InstancesError> {
        if let Some(i) = &service.instances {
            return Ok(i.clone());
        }
        let Some(template) = &service.template else {
            return Err(InstancesError::NoTemplate);
        };
        let instances = self
            .strategy_instances(&service.strategy, full, cwd)
            .await?;
        instances
            .into_iter()
            .map(|instance| {
                let machine = assay_spec::strategy::instance_machine(&instance);
                let resolver = assay_spec::resolve::Resolver::new(vec![&machine], None);
                let mut value = serde_json::to_value(template.as_ref())?;
                let mut errors = Vec::new();
                resolver.value(&mut value, &mut String::new(), &mut errors);
                if let Some(e) = errors.into_iter().next() {
                    return Err(e.into());
                }
                let mut inst: PlanServiceInstance = serde_json::from_value(value)?;
                inst.instance = instance;
                Ok(inst)
            })
            .collect()
    }

    async fn wait_ready(
        &mut self,
        s: &mut Started,
        inst: &PlanServiceInstance,
        frame: &Frame,
    ) -> Probed {
        let Some(probe) = &inst.readiness_probe else {
            return Probed::Ready;
        };
        let limit = inst
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        if !self
            .sleep(
                Duration::from_secs(probe.initial_delay_seconds.into()),
                frame,
            )
            .await
        {
            return Probed::Failed("was stopped before it was ready".into());
        }
        let mut failures = 0u32;
        let threshold = probe.failure_threshold.max(1);
        loop {
            if let Some(code) = s.running.try_exit_code() {
                return Probed::Failed(format!("exited with code {code} before it was ready"));
            }
            let per_try = Duration::from_secs(probe.timeout_seconds.max(1).into());
            let address = s.running.address();
            let target = (s.name.as_str(), s.index, address.as_str());
            let result = tokio::time::timeout(per_try, self.probe_once(probe, frame, target))
                .await
                .unwrap_or(Err(ProbeError::TimedOut));
            match result {
                Ok(()) => return Probed::Ready,
                Err(e) => {
                    failures += 1;
                    if failures >= threshold {
                        return Probed::Failed(format!(
                            "never became ready: readiness probe failed {failures} times (last: {e})"
                        ));
                    }
                }
            }
            if limit.is_some_and(|l| Instant::now() >= l) {
                return Probed::Failed("did not become ready within its timeout".into());
            }
            if !self
                .sleep(
                    Duration::from_secs(probe.period_seconds.max(1).into()),
                    frame,
                )
                .await
            {
                return Probed::Failed("was stopped before it was ready".into());
            }
        }
    }

    /// One try of a readiness probe of the service instance `(name, index)` reached at
    /// `address`.
    async fn probe_once(
        &self,
        probe: &Probe,
        frame: &Frame,
        (service, index, address): (&str, u64, &str),
    ) -> Result<(), ProbeError> {
        if let Some(cmd) = &probe.exec {
            let process = assay_spec::plan::PlanProcess {
                command: cmd.clone(),
                ..Default::default()
            };
            let kind = LaunchKind::Probe {
                service: service.to_string(),
                index,
            };
            let launch = self.prepare(kind, &process, frame.passed, &frame.cwd, None)?;
            return Ok(self.scope.probe(launch).await?);
        }
        if let Some(tcp) = &probe.tcp_socket {
            let addr = target(tcp.host.as_deref(), &tcp.port, address)?;
            if let Err(source) = tokio::net::TcpStream::connect(&addr).await {
                return Err(ProbeError::Tcp { addr, source });
            }
            return Ok(());
        }
        if let Some(http) = &probe.http_get {
            if http.scheme.eq_ignore_ascii_case("https") {
                return Err(ProbeError::Https);
            }
            let addr = target(http.host.as_deref(), &http.port, address)?;
            let mut stream = match tokio::net::TcpStream::connect(&addr).await {
                Ok(s) => s,
                Err(source) => return Err(ProbeError::Connect { addr, source }),
            };
            let path = if http.path.is_empty() {
                "/"
            } else {
                http.path.as_str()
            };
            let request =
                format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: assay-probe\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(ProbeError::Http)?;
            let mut head = vec![0u8; 64];
            let n = stream.read(&mut head).await.map_err(ProbeError::Http)?;
            let line = String::from_utf8_lossy(&head[..n]);
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or(ProbeError::NotHttp)?;
            return if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(ProbeError::Status {
                    addr,
                    path: path.to_string(),
                    code,
                })
            };
        }
        Err(ProbeError::NoKind)
    }

    /// Stops services (SIGTERM, then SIGKILL after the grace period), newest first. Returns why
    /// the step fails when a service without a readiness probe had ended by itself with a
    /// non-zero code within [`FAILURE_CHECK_WINDOW`] of its start.
    pub(crate) async fn stop_services(&mut self, started: Vec<Started>) -> Option<String> {
        let mut failure = None;
        for mut s in started.into_iter().rev() {
            if s.watched
                && let Some((code, after)) = s.running.ended_by_itself().await
                && code != 0
                && after <= FAILURE_CHECK_WINDOW
            {
                let reason = self.mask(&format!(
                    "service {} ({}) exited with code {code} {:.1} s after it started",
                    s.name,
                    s.index,
                    after.as_secs_f64()
                ));
                self.emit(Event::Service {
                    reference: s.reference.clone(),
                    name: s.name.clone(),
                    index: s.index,
                    state: ServiceState::Failed {
                        reason: reason.clone(),
                    },
                })
                .await;
                failure = Some(reason);
            }
            let grace = self.shared.opts.kill_grace;
            let never = tokio_util::sync::CancellationToken::new();
            never.cancel();
            let _ = s
                .running
                .wait(Stop {
                    deadline: None,
                    cancel: never,
                    grace,
                })
                .await;
            self.emit(Event::Service {
                reference: s.reference,
                name: s.name,
                index: s.index,
                state: ServiceState::Stopped,
            })
            .await;
        }
        failure
    }
}

/// `host:port` of a probe; `service` (the service's address) when it names no host.
fn target(host: Option<&str>, port: &Value, service: &str) -> Result<String, ProbeError> {
    let port = match port {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.parse::<u16>().is_ok() => s.clone(),
        other => return Err(ProbeError::Port(other.clone())),
    };
    Ok(format!(
        "{}:{port}",
        host.filter(|h| !h.is_empty()).unwrap_or(service)
    ))
}
