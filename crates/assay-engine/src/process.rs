//! Starting, watching and stopping one process (and everything it starts).
//!
//! Every process gets its own process group (`process_group(0)`), so stopping it is one
//! `killpg`: SIGTERM, then SIGKILL after a grace period. When the main process ends, whatever
//! it left behind in its group is killed too, before the main process is reaped (its zombie
//! keeps the group id from being reused meanwhile): no orphans.
//!
//! Resource use, decided: CPU time is read from the main process's `/proc/<pid>/stat` while it
//! is a zombie (`waitid(WNOWAIT)`), as `utime + stime + cutime + cstime`, so it covers the
//! process and every descendant it waited for. `getrusage(RUSAGE_CHILDREN)` would mix up
//! steps that run at the same time (parallel workers, services) and `wait4` needs unsafe code.
//! Peak memory is sampled: the resident set summed over the process tree (from
//! `/proc/<pid>/task/<pid>/children`) 5 ms after the start and then every 50 ms, and at least
//! the main process's own high-water mark (`VmHWM`). A step shorter than 5 ms reports none.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runtime::{Output, ProcessOutcome, StopReason};
use crate::sandbox::{EnterError, Inside, StepUser};

/// What to start.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    /// Program and arguments, already wrapped for the sandbox when there is one.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory on the host (`None` when the sandbox wrapper sets it).
    pub cwd: Option<PathBuf>,
    /// The sandbox to start the process in directly (its namespaces and root); `cwd` is then a
    /// path as the process sees it.
    pub inside: Option<Arc<Inside>>,
    /// The user to run as: the thread that starts the process (inside the sandbox with
    /// `inside`, else on the host) becomes that user before it spawns.
    pub user: Option<StepUser>,
    /// The step's own program when `argv` wraps it (looked up first, so that a missing one
    /// is the same clear error with or without the wrapper).
    pub program: Option<String>,
}

struct Exit {
    status: Option<ExitStatus>,
    cpu: Option<Duration>,
    /// When the main process ended (before its group was killed and it was reaped).
    at: Instant,
}

/// Why a process was not started (the step fails with this text and exit code 127).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("the command is empty")]
    Empty,
    /// The program could not be started: not found on the child's `PATH` (`ENOENT`), not
    /// executable, ...
    #[error("failed to start `{program}`: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    /// The working directory, as the process would see it.
    #[error("working directory {} does not exist", .0.display())]
    NoWorkingDir(PathBuf),
    #[error("failed to create a pipe: {0}")]
    Pipe(nix::Error),
    #[error("failed to duplicate a pipe: {0}")]
    DupPipe(std::io::Error),
    #[error("failed to read the output pipe: {0}")]
    ReadPipe(std::io::Error),
    /// The thread that starts it inside the sandbox could not enter it.
    #[error(transparent)]
    Enter(#[from] EnterError),
}

/// A started process: its group id, a waiter that reaps it and the log pump.
pub(crate) struct Running {
    pub pid: i32,
    exit: oneshot::Receiver<Exit>,
    /// The exit, when [`Running::try_exit_code`] saw it first.
    finished: Option<Exit>,
    pump: JoinHandle<()>,
    started: Instant,
}

/// Starts a process whose stdout and stderr (one pipe, in order) go to `output`.
pub(crate) fn spawn(spec: &ProcessSpec, output: Output) -> Result<Running, SpawnError> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(SpawnError::Empty);
    };
    if let Some(p) = &spec.program
        && !p.contains('/')
        && find_on_path(
            p,
            spec.env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.as_str()),
        )
        .is_none()
    {
        return Err(SpawnError::Start {
            program: p.clone(),
            source: std::io::Error::from(nix::errno::Errno::ENOENT),
        });
    }
    // Close-on-exec, both ends: other threads start processes meanwhile (other executions'
    // steps, holders), and one that inherited the write end could write into this step's log
    // and would hold it open (its reader waits for the end of the stream) for as long as it
    // runs. The step gets its copies as its stdout and stderr, where exec keeps them.
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    // A command for `program` with `lead` before the arguments; std starts it with
    // `posix_spawn` (no copy of this process's page tables) when the program is a path and no
    // user is set, else by forking.
    let command = |program: &std::ffi::OsStr, lead: &[&std::ffi::OsStr]| {
        let out: OwnedFd = write.try_clone().map_err(SpawnError::DupPipe)?;
        let err: OwnedFd = write.try_clone().map_err(SpawnError::DupPipe)?;
        let mut cmd = Command::new(program);
        cmd.args(lead)
            .args(args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        Ok::<_, SpawnError>(cmd)
    };
    // Started by its absolute path when it is found on the child's `PATH` (so std uses
    // `posix_spawn`), and a file without `#!` run by the shell, as `execvp` would.
    let launch = |spawn: &dyn Fn(&mut Command) -> std::io::Result<std::process::Child>| {
        let found = (!program.contains('/'))
            .then(|| find_on_path(program, path))
            .flatten()
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from(program));
        Ok::<_, SpawnError>(match spawn(&mut command(found.as_os_str(), &[])?) {
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOEXEC as i32) => {
                spawn(&mut command("/bin/sh".as_ref(), &[found.as_os_str()])?)
            }
            spawned => spawned,
        })
    };
    let failed = |source| SpawnError::Start {
        program: program.clone(),
        source,
    };
    // The folder is looked for as root where the process is born (inside the sandbox, paths
    // are those the process sees), as `nsenter --wdns` did, and then entered as the step user.
    let check = || match &spec.cwd {
        Some(cwd) if !cwd.is_dir() => Err(SpawnError::NoWorkingDir(cwd.clone())),
        _ => Ok(()),
    };
    let child =
        crate::sandbox::start_as(spec.inside.as_deref(), spec.user.as_ref(), check, || {
            launch(&|cmd| cmd.spawn())
        })?
        .map_err(failed)?;
    // Our copy of the pipe's write end: dropped so the pipe closes when the process tree is
    // gone (the commands held the others and are dropped already).
    drop(write);
    let started = Instant::now();
    let pid = child.id() as i32;

    let receiver =
        tokio::net::unix::pipe::Receiver::from_owned_fd(read).map_err(SpawnError::ReadPipe)?;
    let pump = tokio::spawn(output.pump(receiver));

    let (tx, exit) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let _ = tx.send(reap(child));
    });
    Ok(Running {
        pid,
        exit,
        finished: None,
        pump,
        started,
    })
}

/// The first executable file named `program` in `path`'s folders (the default `PATH` when
/// there is none).
pub(crate) fn find_on_path(program: &str, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.unwrap_or(crate::env::DEFAULT_PATH)
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Waits for the main process to end, records its CPU time, kills what is left of its group
/// and reaps it.
fn reap(mut child: std::process::Child) -> Exit {
    let pid = Pid::from_raw(child.id() as i32);
    let mut cpu = None;
    let mut at = Instant::now();
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => {
                at = Instant::now();
                cpu = cpu_time(pid.as_raw());
                break;
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    let _ = killpg(pid, Signal::SIGKILL);
    Exit {
        status: child.wait().ok(),
        cpu,
        at,
    }
}

impl Running {
    /// The exit code if the process has ended (without waiting).
    pub(crate) fn try_exit_code(&mut self) -> Option<i32> {
        if self.finished.is_none()
            && let Ok(exit) = self.exit.try_recv()
        {
            self.finished = Some(exit);
        }
        self.finished
            .as_ref()
            .map(|e| e.status.map(exit_code).unwrap_or(-1))
    }

    /// If the process ended by itself (it is not running now), its exit code and how long
    /// after its start it ended. Exact, not a guess by time: asks the kernel whether our child
    /// has exited (without reaping it) and then takes the reaper's report.
    pub(crate) async fn ended_by_itself(&mut self) -> Option<(i32, Duration)> {
        if self.finished.is_none() {
            let pid = Pid::from_raw(self.pid);
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            let alive = loop {
                match waitid(Id::Pid(pid), flags) {
                    Ok(nix::sys::wait::WaitStatus::StillAlive) => break true,
                    Err(nix::errno::Errno::EINTR) => continue,
                    // Exited (or already reaped by the reaper thread).
                    _ => break false,
                }
            };
            if alive {
                return None;
            }
            self.finished = (&mut self.exit).await.ok();
        }
        let e = self.finished.as_ref()?;
        Some((
            e.status.map(exit_code).unwrap_or(-1),
            e.at.saturating_duration_since(self.started),
        ))
    }

    /// Waits for the process, stopping it (SIGTERM, then SIGKILL after `grace`) when the
    /// deadline passes or the token is cancelled.
    pub(crate) async fn wait(
        mut self,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
        grace: Duration,
    ) -> ProcessOutcome {
        let mut peak: u64 = 0;
        let mut stopped = None;
        let mut next_sample = self.started + Duration::from_millis(5);
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        let exit = loop {
            if let Some(exit) = self.finished.take() {
                break Some(exit);
            }
            let sleep_until = next_sample.min(deadline.unwrap_or(far));
            tokio::select! {
                exit = &mut self.exit => break exit.ok(),
                _ = cancel.cancelled(), if stopped.is_none() => {
                    stopped = Some(StopReason::Abort);
                    break self.stop(grace).await;
                }
                _ = tokio::time::sleep_until(sleep_until.into()) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        stopped = Some(StopReason::Timeout);
                        break self.stop(grace).await;
                    }
                    peak = peak.max(tree_rss(self.pid));
                    next_sample = Instant::now() + Duration::from_millis(50);
                }
            }
        };
        self.finish_pump().await;
        let (status, cpu) = match exit {
            Some(e) => (e.status, e.cpu),
            None => (None, None),
        };
        ProcessOutcome {
            exit_code: status.map(exit_code),
            stopped,
            peak_rss_bytes: (peak > 0).then_some(peak),
            cpu_time: cpu,
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`; returns once the main process is reaped.
    async fn stop(&mut self, grace: Duration) -> Option<Exit> {
        let group = Pid::from_raw(self.pid);
        let _ = killpg(group, Signal::SIGTERM);
        match tokio::time::timeout(grace, &mut self.exit).await {
            Ok(exit) => exit.ok(),
            Err(_) => {
                let _ = killpg(group, Signal::SIGKILL);
                (&mut self.exit).await.ok()
            }
        }
    }

    /// Lets the log pump drain what is left. The group is dead by now, so the pipe closes
    /// unless a process escaped it (`setsid`); do not wait for such a one forever.
    async fn finish_pump(&mut self) {
        if tokio::time::timeout(Duration::from_secs(2), &mut self.pump)
            .await
            .is_err()
        {
            self.pump.abort();
        }
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// `utime + stime + cutime + cstime` of a (zombie) process.
fn cpu_time(pid: i32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: field 3 (state) is index 0, so field n is index n - 3.
    let ticks: u64 = [11, 12, 13, 14]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Resident memory of a process and all its descendants, at least its own high-water mark.
fn tree_rss(pid: i32) -> u64 {
    let mut total = 0;
    let mut stack = vec![pid];
    let mut seen = 0;
    while let Some(p) = stack.pop() {
        seen += 1;
        if seen > 4096 {
            break;
        }
        total += status_kib(p, "VmRSS:") * 1024;
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            stack.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    total.max(status_kib(pid, "VmHWM:") * 1024)
}

fn status_kib(pid: i32, key: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
