//! What a step's code can reach: a private `/data`, `/testkube/outputs` and `/proc` per
//! execution, the server's data directory hidden, and (as root) an unprivileged user.
//!
//! Decided after measuring on the project's machine (2 cores, shared): starting each step
//! through `bwrap` with a rebuilt root cost about 8 ms over `bash -c true`; `unshare -m` per
//! step about 2.5 ms but cannot add `/data` without creating it on the host. So each
//! execution gets one *holder*: a new root (a tmpfs) into which every top-level entry of the
//! host's `/` is bound (recursively), a fresh `/proc` of its own PID namespace, each hidden
//! path (the data directory: tokens, database, other executions' folders) covered with an
//! empty tmpfs, this execution's own work folder bound back at its host path, and `/data` and
//! `/testkube/outputs` bound to the execution's own folders; the holder waits in it as the PID
//! namespace's init.
//!
//! As root (the server's case), no process makes those mounts: a short-lived thread of ours
//! takes a mount namespace of its own (`unshare(CLONE_FS | CLONE_NEWNS)`, which changes no
//! other thread), mounts with system calls, changes its root to the new one and starts the
//! holder, `sh` waiting for its stdin, as the first process of a new PID namespace; then it
//! mounts that namespace's `/proc` itself, naming the namespace by path (`proc`'s `pidns=`
//! option, Linux 6.18). On an older kernel, which refuses the option (tried once per
//! process), the holder is `unshare -m --mount-proc` becoming `sh`, which says ready once the
//! `/proc` is mounted. Steps, services and exec probes are started the same way: a
//! short-lived thread enters the holder's mount namespace, root and PID namespace (`setns`,
//! `chroot`), becomes `ASSAY_STEP_USER` when steps run as one (the kernel's per-thread calls,
//! [`Entered::become_user`](inside::Entered::become_user)) and spawns the process there itself, so a trivial execution
//! starts two programs (`sh`, the step; three with `unshare` on older kernels) and no
//! `nsenter`. Unprivileged, the holder is `unshare -U -r -m` running [`HOLDER_SCRIPT`] (one
//! `mount -a` over a table), and steps enter it through `nsenter -U`. Every program is started by its absolute path, so that std uses
//! `posix_spawn` rather than a fork of this process (whose page tables are large). Every
//! step is still our direct child: exit codes, signals, process groups, timeouts and CPU/memory
//! figures are exactly those of a step without a namespace; only the pids a step sees (`$$`,
//! `$!`) are the namespace's.
//!
//! Nothing outlives the owner: the holder reads its stdin, a pipe only we hold, so when we end
//! — `kill -9` included — the holder reads end-of-file and exits, and the kernel kills every
//! process of a PID namespace whose init has ended. Nothing is created on the host's `/`, and
//! the mounts vanish with the namespace.
//!
//! As root, when steps run as the step user, an ended execution's sandbox serves the next one
//! ([`Reuse`]) if its PID namespace holds nothing but the holder: the execution's work folder,
//! `/data` and `/testkube/outputs` are unmounted and the next one's bound in their place,
//! instead of a new holder and its mounts (most of what a sandbox costs). Anything left running
//! ends the sandbox as above.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

mod inside;
mod mounts;
mod pool;
mod start;
mod support;

pub(crate) use inside::{EnterError, Inside, start_as};
use inside::{Namespaces, fresh_thread};
use mounts::{mount_table, tool};
pub use pool::end_kept;
use pool::{POOL, POOL_MAX, POOL_USES, Reuse, pool_root, reusable, take_pooled};
use start::{NO, PROC_BY_PIDNS, UNKNOWN, YES, spawn_holder, start_on_thread};
use support::nsenter_has_wdns;
pub use support::{
    STEP_USER_VAR, StepUser, StepUserError, Support, WorkRootError, host_work_root,
    isolation_warning, step_user, support,
};

/// A file error as the system's error number (`EIO` when it has none).
fn errno(e: std::io::Error) -> nix::Error {
    e.raw_os_error()
        .map_or(nix::Error::EIO, nix::Error::from_raw)
}

/// Why an execution's namespaces (its private `/data`) could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SandboxError {
    /// This machine cannot make them (see [`Support::Unavailable`]).
    #[error("{0}")]
    Unavailable(String),
    /// `kind` is `mount` or `PID`.
    #[error("failed to make a {kind} namespace: {source}")]
    Namespace {
        kind: &'static str,
        source: nix::Error,
    },
    /// A call on a path of the new root refused (`action` says which: `mount`, `change root
    /// to`, ...).
    #[error("failed to {action} {}: {source}", path.display())]
    Call {
        action: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    /// A file operation failed (`action`: `read`, `create`, `write`, `open`, ...).
    #[error("failed to {action} {}: {source}", path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to start a thread: {0}")]
    Thread(std::io::Error),
    #[error("the sandbox thread panicked")]
    ThreadPanicked,
    #[error("failed to start the namespace holder: {0}")]
    Holder(std::io::Error),
    #[error("the namespace holder exited at once")]
    HolderExited,
    #[error("no holder stdout")]
    HolderStdout,
    /// One of the holder's `/proc/<pid>/` files (`ns/pid`, `root`, ...).
    #[error("failed to open the namespace holder's {what}: {source}")]
    HolderFile {
        what: String,
        source: std::io::Error,
    },
    /// Making the new root as root failed.
    #[error("failed to set up a private /data: {0}")]
    Private(#[source] Box<SandboxError>),
    /// The unprivileged holder did not say ready: the last line it wrote on stderr.
    #[error("failed to set up a private /data: {0}")]
    HolderSaid(String),
}

/// What one holder hides and exposes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Confinement {
    /// Paths steps must not see (covered by an empty tmpfs, or `/dev/null` for a file).
    pub hidden: Vec<PathBuf>,
    /// The execution's own work folder, bound back at its host path over the hidden ones.
    pub work_dir: PathBuf,
}

/// The script an unprivileged holder runs inside its new namespaces. `$1` is the new root (an empty
/// folder), `$2` the table of mounts to make in it ([`mount_table`]), `$3` how many of the
/// arguments after it are the host's top-level files (mount points to create); the arguments
/// after those are the host's top-level symbolic links (copied as they are).
///
/// Every mount is made by one `mount -a` (a table instead of a `mount` and a `mkdir` process
/// per entry: measured on the 2-core machine, setting up a holder went from about 75 ms of CPU
/// to about 11 ms, most of a trivial execution's cost).
const HOLDER_SCRIPT: &str = r#"set -e
umask 022
R="$1"; F="$2"; N="$3"
shift 3
# Unbindable: an rbind of a host folder that contains $R must not copy $R into itself.
mount -t tmpfs -o mode=755,unbindable assay-root "$R"
while [ "$N" -gt 0 ]; do : > "$R$1"; shift; N=$((N - 1)); done
if [ $# -gt 0 ]; then cp -d "$@" "$R/"; fi
mount -a -T "$F"
# Say "ready" only once inside the new root: steps join the holder's root (nsenter -r). The
# holder ends when its stdin closes (our end of the pipe: when we end, kill -9 included).
exec chroot "$R" /bin/sh -c 'echo ready; read _ || true'
"#;

/// What the holder makes of the host's `/` and of an execution's folders.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Holder {
    /// The fstab-format table `mount -a` reads: every top-level folder of the host bound
    /// (recursively) into the new root but `/data`, `/testkube` and (with a PID namespace of
    /// its own) `/proc`, which gets a fresh `proc`; each hidden path covered (an empty tmpfs
    /// for a folder, `/dev/null` for a file); the work folder bound back at its host path;
    /// `/data` and `/testkube/outputs` bound to the execution's folders.
    table: Vec<u8>,
    /// The host's top-level files (mount points to create in the new root).
    files: Vec<PathBuf>,
    /// The host's top-level symbolic links (copied into the new root).
    links: Vec<PathBuf>,
}

/// A running holder; steps enter its namespaces through [`Sandbox::inside`] (as root) or
/// [`Sandbox::wrap`] (unprivileged).
#[derive(Debug)]
pub(crate) struct Sandbox {
    holder: Child,
    /// The host pid of the process whose mount namespace and root steps join.
    target: u32,
    /// The holder's namespaces and root, which steps are started in directly (root only).
    inside: Option<Arc<Inside>>,
    user_ns: bool,
    /// What it takes to serve another execution once this one ended (see [`Reuse`]).
    reuse: Option<Reuse>,
}

impl Sandbox {
    /// Starts a holder for one execution, or hands over one whose execution ended (see
    /// [`Reuse`]).
    pub(crate) async fn start(
        root: &Path,
        data: &Path,
        outputs: &Path,
        confinement: &Confinement,
    ) -> Result<Self, SandboxError> {
        let user_ns = match support() {
            Support::Root => false,
            Support::User => true,
            Support::Unavailable(why) => return Err(SandboxError::Unavailable(why.clone())),
        };
        let reusable = !user_ns && reusable();
        if reusable && let Some(pooled) = take_pooled(&confinement.hidden) {
            let (data, outputs) = (data.to_owned(), outputs.to_owned());
            let work = confinement.work_dir.clone();
            let (pooled, attached) = tokio::task::spawn_blocking(move || {
                let mut pooled = pooled;
                let attached = pooled.attach(&data, &outputs, &work);
                (pooled, attached)
            })
            .await
            .map_err(|_| SandboxError::ThreadPanicked)?;
            if attached {
                return Ok(pooled);
            }
            // It could not take this execution: it ends, and a new one is started.
            pooled.stop().await;
        }
        let pool_root = reusable.then(|| pool_root(&confinement.work_dir));
        let root = pool_root.as_deref().unwrap_or(root);
        std::fs::create_dir_all(root).map_err(|source| SandboxError::File {
            action: "create",
            path: root.to_path_buf(),
            source,
        })?;
        // Unprivileged, the table is read by `mount -a`; it is removed once the holder said
        // ready (or failed).
        let mut table = None;
        let mut proc = None;
        let (mut holder, says_ready) = if user_ns {
            let holder = mount_table(root, data, outputs, confinement, false)?;
            // Beside the new root, not in it: the tmpfs mounted over the root would hide it.
            let path = root.with_extension("fstab");
            std::fs::write(&path, &holder.table).map_err(|source| SandboxError::File {
                action: "write",
                path: path.clone(),
                source,
            })?;
            table = Some(path.clone());
            let child = spawn_holder(
                Command::new(tool("unshare"))
                    .args(["-U", "-r", "-m", "--propagation", "private"])
                    .args(["sh", "-c", HOLDER_SCRIPT, "sh"])
                    .arg(root)
                    .arg(&path)
                    .arg(holder.files.len().to_string())
                    .args(&holder.files)
                    .args(&holder.links),
                true,
            )?;
            (child, true)
        } else {
            let known = PROC_BY_PIDNS.load(std::sync::atomic::Ordering::Relaxed);
            match start_on_thread(root, data, outputs, confinement, known != NO).await {
                Err(e) if e.proc_option && known == UNKNOWN => {
                    // The first holder, on a kernel older than the `pidns=` option of `proc`:
                    // from now on the holder mounts it (the failed attempt's mounts went with
                    // its namespace).
                    PROC_BY_PIDNS.store(NO, std::sync::atomic::Ordering::Relaxed);
                    let (child, _) = start_on_thread(root, data, outputs, confinement, false)
                        .await
                        .map_err(|e| SandboxError::Private(Box::new(e.error)))?;
                    (child, true)
                }
                Err(e) => return Err(SandboxError::Private(Box::new(e.error))),
                Ok((child, own_proc)) => {
                    if known == UNKNOWN {
                        PROC_BY_PIDNS.store(YES, std::sync::atomic::Ordering::Relaxed);
                    }
                    proc = own_proc;
                    (child, known == NO)
                }
            }
        };
        let pid = holder.id().ok_or(SandboxError::HolderExited)?;
        if says_ready {
            Self::wait_ready(&mut holder, table).await?;
        }
        if user_ns {
            return Ok(Sandbox {
                holder,
                target: pid,
                inside: None,
                user_ns,
                reuse: None,
            });
        }
        // The holder is our child and the new PID namespace's init.
        let inside = Inside::new(Arc::new(Namespaces::of(pid)?));
        let reuse = match (pool_root, proc) {
            (Some(root), Some(proc)) => Some(Reuse {
                root,
                proc,
                hidden: confinement.hidden.clone(),
                work: confinement.work_dir.clone(),
                uses: 1,
            }),
            _ => None,
        };
        Ok(Sandbox {
            holder,
            target: pid,
            inside: Some(Arc::new(inside)),
            user_ns,
            reuse,
        })
    }

    /// Hands this ended sandbox to the next execution (on the blocking pool: it makes a thread
    /// and mounts): binds its work folder, `/data` and `/testkube/outputs`. False when it
    /// cannot (it must then end).
    fn attach(&mut self, data: &Path, outputs: &Path, work: &Path) -> bool {
        let Some(reuse) = self.reuse.as_mut() else {
            return false;
        };
        let root = reuse.root.clone();
        let made = self.in_namespace(|| {
            use nix::mount::{MsFlags, mount};
            let none: Option<&str> = None;
            let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
            std::fs::create_dir_all(inside(work)).map_err(errno)?;
            for (source, target) in [
                (work, work),
                (data, Path::new("/data")),
                (outputs, Path::new("/testkube/outputs")),
            ] {
                mount(Some(source), &inside(target), none, MsFlags::MS_BIND, none)?;
            }
            Ok(())
        });
        match (made, self.reuse.as_mut()) {
            (Ok(()), Some(reuse)) => {
                reuse.work = work.to_path_buf();
                reuse.uses += 1;
                // A handle of the new execution's own (the last one's is shut).
                let ns = self.inside.as_ref().map(|i| i.ns.clone());
                self.inside = ns.map(|ns| Arc::new(Inside::new(ns)));
                true
            }
            (_, reuse) => {
                // Half attached, maybe: it ends (see [`Sandbox::detach`]).
                if let Some(reuse) = reuse {
                    reuse.uses = POOL_USES;
                }
                false
            }
        }
    }

    /// Unmounts what the execution that ended had bound (see [`Sandbox::attach`]) when nothing
    /// of it runs any more, and keeps the sandbox for the next; given back when it cannot be
    /// kept (it is then ended).
    fn detach(mut self) -> Option<Self> {
        // No start of the ended execution gets in any more, whatever still holds its handle.
        if let Some(inside) = &self.inside {
            inside.shut();
        }
        let holder_runs = matches!(self.holder.try_wait(), Ok(None));
        let Some(reuse) = self.reuse.as_ref() else {
            return Some(self);
        };
        if reuse.uses >= POOL_USES || !holder_runs || !reuse.quiet() {
            return Some(self);
        }
        let (root, work) = (reuse.root.clone(), reuse.work.clone());
        let covered = reuse
            .hidden
            .iter()
            .any(|h| work.starts_with(h) && work != *h);
        let made = self.in_namespace(|| {
            use nix::mount::{MntFlags, umount2};
            let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
            for target in [
                work.as_path(),
                Path::new("/data"),
                Path::new("/testkube/outputs"),
            ] {
                umount2(&inside(target), MntFlags::MNT_DETACH)?;
            }
            // Its mount point, in the empty tmpfs over the hidden folder: the next execution
            // does not see this one's name.
            if covered {
                std::fs::remove_dir(inside(&work)).map_err(errno)?;
            }
            Ok(())
        });
        if made.is_err() {
            return Some(self);
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= POOL_MAX {
            return Some(self);
        }
        pool.push(self);
        None
    }

    /// Runs `f` on a fresh thread in the holder's mount namespace, at its root (the host's
    /// tree as it was copied, where the new root is mounted at [`Reuse::root`]).
    fn in_namespace(&self, f: impl FnOnce() -> nix::Result<()> + Send) -> nix::Result<()> {
        use nix::sched::{CloneFlags, setns, unshare};
        let Some(inside) = self.inside.as_ref() else {
            return Err(nix::Error::EINVAL);
        };
        fresh_thread(
            || {
                unshare(CloneFlags::CLONE_FS)?;
                setns(&inside.ns.mnt, CloneFlags::CLONE_NEWNS)
            },
            |_| f(),
        )
        .map_err(|e| match e {
            EnterError::Enter(e) => e,
            _ => nix::Error::EIO,
        })?
    }

    /// Waits for a holder that says ready (see [`spawn_holder`]); removes the unprivileged
    /// holder's mount table then.
    async fn wait_ready(holder: &mut Child, table: Option<PathBuf>) -> Result<(), SandboxError> {
        let stdout = holder.stdout.take().ok_or(SandboxError::HolderStdout)?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).await;
        if let Some(table) = table {
            let _ = std::fs::remove_file(&table);
        }
        if read.is_ok() && line.trim() == "ready" {
            return Ok(());
        }
        let mut err = String::new();
        if let Some(mut stderr) = holder.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = stderr.read_to_string(&mut err).await;
        }
        let _ = holder.kill().await;
        Err(SandboxError::HolderSaid(
            err.trim()
                .lines()
                .last()
                .unwrap_or("the holder ended early")
                .to_string(),
        ))
    }

    /// The holder's namespaces and root, to start a step in directly (root only).
    pub(crate) fn inside(&self) -> Option<Arc<Inside>> {
        self.inside.clone()
    }

    /// The argv that runs `argv` inside the unprivileged holder's namespaces, in `cwd` (a path
    /// as steps see it). As root, steps are started by [`Inside::run`] instead.
    pub(crate) fn wrap(&self, argv: &[String], cwd: &str) -> Vec<String> {
        let mut out = vec![
            tool("nsenter").display().to_string(),
            "-t".into(),
            self.target.to_string(),
        ];
        if self.user_ns {
            out.push("-U".into());
        }
        out.extend(["-m".into(), "-r".into()]);
        // nsenter opens a `--wd` folder before it enters the namespace, where /data does not
        // exist: change directory inside instead, with `--wdns` where nsenter has it (one
        // process less per step), else through `env -C`.
        if nsenter_has_wdns() {
            out.extend([format!("--wdns={cwd}"), "--".into()]);
        } else {
            out.extend([
                "--".into(),
                "env".into(),
                "-C".into(),
                cwd.to_string(),
                "--".into(),
            ]);
        }
        out.extend(argv.iter().cloned());
        out
    }

    /// Ends the holder; the kernel then ends every process left in its PID namespace. Our last
    /// handles on its namespaces are closed on the blocking pool: closing the last one unmounts
    /// the namespace's mounts, and the kernel waits there for an RCU grace period, which on a
    /// runtime thread stalled every other execution.
    ///
    /// A reusable sandbox whose execution left nothing running is kept for the next one
    /// instead ([`Reuse`]).
    pub(crate) async fn stop(mut self) {
        if self.reuse.is_some() {
            match tokio::task::spawn_blocking(move || self.detach()).await {
                Ok(Some(ended)) => self = ended,
                // Kept, or lost with a panic (its holder was killed as it was dropped).
                Ok(None) | Err(_) => return,
            }
        }
        drop(self.holder.stdin.take());
        let _ = self.holder.kill().await;
        let root = self.reuse.take().map(|r| r.root);
        if let Some(inside) = self.inside.take() {
            let _ = tokio::task::spawn_blocking(move || {
                drop(inside);
                // The mount point of a reusable sandbox's root, beside the executions'.
                if let Some(root) = root {
                    let _ = std::fs::remove_dir(root);
                }
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of mounting a holder's `/proc` (the kernel's `pidns=` option, or `unshare
    /// --mount-proc` where the kernel refuses it) give a step only its own namespace's
    /// processes, with the holder as the first.
    #[tokio::test]
    async fn either_proc_mount_shows_only_the_namespaces_processes() {
        if support() != &Support::Root {
            eprintln!("skipped: needs root and namespaces");
            return;
        }
        for by_pidns in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (data, outputs) = (dir.path().join("data"), dir.path().join("outputs"));
            std::fs::create_dir_all(&data).unwrap();
            std::fs::create_dir_all(&outputs).unwrap();
            let confinement = Confinement {
                hidden: Vec::new(),
                work_dir: dir.path().to_path_buf(),
            };
            let root = dir.path().join(".root");
            std::fs::create_dir_all(&root).unwrap();
            let mut holder =
                match start_on_thread(&root, &data, &outputs, &confinement, by_pidns).await {
                    Ok((holder, _)) => holder,
                    // A kernel without the option: only the other way can be checked here.
                    Err(e) if by_pidns && e.proc_option => continue,
                    Err(e) => panic!("{}", e.error),
                };
            if !by_pidns {
                Sandbox::wait_ready(&mut holder, None).await.unwrap();
            }
            let pid = holder.id().unwrap();
            let inside = Inside::new(Arc::new(Namespaces::of(pid).unwrap()));
            let out = inside
                .run(|_| {
                    std::process::Command::new("/bin/sh")
                        .args(["-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc"])
                        .output()
                })
                .unwrap()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut lines = text.lines();
            let first = lines.next().unwrap_or_default();
            assert!(first.contains("read _"), "pid 1 is {first:?} ({by_pidns})");
            let pids: Vec<&str> = lines
                .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
                .collect();
            // The holder, the shell and `ls`: nothing of the host's.
            assert!(
                pids.contains(&"1") && pids.len() <= 3,
                "{pids:?} ({by_pidns})"
            );
            let _ = holder.kill().await;
        }
    }
}
