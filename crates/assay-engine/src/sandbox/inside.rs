//! Starting a process inside a holder's namespaces, from a short-lived thread that enters them
//! (`setns`, `chroot`) and becomes the step user, or on a fresh host thread as that user.

use std::fs::File;
use std::sync::Arc;

use super::SandboxError;
use super::support::StepUser;

/// Why a thread could not start something inside a holder's namespaces.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnterError {
    #[error("failed to enter the execution's namespace: {0}")]
    Enter(nix::Error),
    #[error("the spawning thread panicked")]
    Panicked,
    #[error("the execution's sandbox is closed")]
    Closed,
    #[error("failed to become the step user {name}: {source}")]
    User {
        name: String,
        source: std::io::Error,
    },
}

/// A holder's namespaces and root, for a step that a thread of ours starts directly inside it
/// (as root): no `nsenter` in between, also when the step runs as the step user
/// ([`Entered::become_user`]).
#[derive(Debug)]
pub(crate) struct Inside {
    pub(super) ns: Arc<Namespaces>,
    /// Whether starts may still enter: shut when the execution's sandbox is handed on
    /// ([`Sandbox::detach`](super::Sandbox::detach)), which waits for the starts under way; the next execution gets a
    /// handle of its own. So nothing an ended execution still held starts a process in the
    /// next one's sandbox.
    open: std::sync::RwLock<bool>,
}

/// A holder's mount namespace, root and PID namespace (open files in `/proc/<holder>/`).
#[derive(Debug)]
pub(super) struct Namespaces {
    pub(super) mnt: File,
    root: File,
    pid: File,
}

impl Namespaces {
    /// Those of the holder whose host pid is `pid` (our child).
    pub(super) fn of(pid: u32) -> Result<Self, SandboxError> {
        let open = |what: &str| {
            File::open(format!("/proc/{pid}/{what}")).map_err(|source| SandboxError::HolderFile {
                what: what.to_string(),
                source,
            })
        };
        Ok(Namespaces {
            mnt: open("ns/mnt")?,
            root: open("root")?,
            pid: open("ns/pid")?,
        })
    }
}

impl Inside {
    /// Runs `start` on a fresh thread that has entered the holder's mount namespace, root and
    /// PID namespace, and returns what it returns. The thread first takes a file-system context
    /// of its own (`unshare(CLONE_FS)`), so no other thread of ours changes root or namespace;
    /// the processes it starts (`posix_spawn`) are born inside and are still our children.
    /// `start` gets the thread's [`Entered`], which can also drop the thread's user.
    pub(crate) fn run<T: Send>(
        &self,
        start: impl FnOnce(&Entered) -> T + Send,
    ) -> Result<T, EnterError> {
        use nix::sched::{CloneFlags, setns, unshare};
        // Held until the start is over: the sandbox is not handed on meanwhile.
        let open = self.open.read().unwrap_or_else(|e| e.into_inner());
        if !*open {
            return Err(EnterError::Closed);
        }
        let ns = &self.ns;
        fresh_thread(
            || {
                unshare(CloneFlags::CLONE_FS)?;
                setns(&ns.mnt, CloneFlags::CLONE_NEWNS)?;
                nix::unistd::fchdir(&ns.root)?;
                nix::unistd::chroot(".")?;
                nix::unistd::chdir("/")?;
                setns(&ns.pid, CloneFlags::CLONE_NEWPID)
            },
            start,
        )
    }

    pub(super) fn new(ns: Arc<Namespaces>) -> Self {
        Inside {
            ns,
            open: std::sync::RwLock::new(true),
        }
    }

    /// Lets no more starts in, once those under way are over.
    pub(super) fn shut(&self) {
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

/// Runs `start` on a fresh thread on the host (no namespace entered), for a process started
/// as the step user without a sandbox (as root without namespaces): the thread becomes the
/// user ([`Entered::become_user`]) and the process is born with its credentials, started with
/// `posix_spawn` rather than by a fork of this process (std forks whenever it is to set the
/// child's uid).
pub(crate) fn on_host_thread<T: Send>(
    start: impl FnOnce(&Entered) -> T + Send,
) -> Result<T, EnterError> {
    fresh_thread(|| Ok(()), start)
}

/// Runs `start` where a process of an execution is born, and returns what it returns: on a
/// thread that entered `inside` (as root), else on a fresh host thread when it must become
/// `user` ([`on_host_thread`]), else on this one. `check` runs first on that thread, as root
/// (paths are those the process sees); then the thread becomes `user` when there is one.
pub(crate) fn start_as<T: Send, E: From<EnterError> + Send>(
    inside: Option<&Inside>,
    user: Option<&StepUser>,
    check: impl FnOnce() -> Result<(), E> + Send,
    start: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    let on_thread = move |entered: Option<&Entered>| {
        check()?;
        if let (Some(entered), Some(user)) = (entered, user) {
            entered.become_user(user)?;
        }
        start()
    };
    match inside {
        Some(inside) => inside.run(|entered| on_thread(Some(entered)))?,
        None if user.is_some() => on_host_thread(|entered| on_thread(Some(entered)))?,
        None => on_thread(None),
    }
}

/// Runs `start` on a fresh thread once `enter` succeeded on it, and waits for it: the thread
/// ends with the start, so what `enter` and [`Entered`] changed of it (namespaces, root,
/// credentials) ends with it.
pub(super) fn fresh_thread<T: Send>(
    enter: impl FnOnce() -> nix::Result<()> + Send,
    start: impl FnOnce(&Entered) -> T + Send,
) -> Result<T, EnterError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter().map_err(EnterError::Enter)?;
                Ok(start(&Entered {
                    _this_thread: std::marker::PhantomData,
                }))
            })
            .join()
            .unwrap_or(Err(EnterError::Panicked))
    })
}

/// The thread [`Inside::run`] or [`on_host_thread`] made for one start: the only thread whose
/// credentials may change. It cannot leave that thread (`!Send`, lent to `start` only).
pub(crate) struct Entered {
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Entered {
    /// Makes this thread, and so what it starts from now on, `user`: no supplementary groups,
    /// then its gid, then its uid (real, effective and saved, so no way back to root; the
    /// kernel clears the thread's capabilities with the uid). These are the kernel's per-thread
    /// calls, not the C library's `setuid`, which changes every thread of the process: the
    /// server's other threads keep root. A process started next with `posix_spawn` is born with
    /// this thread's credentials, as `nsenter -S -G` would leave them, without a program of its
    /// own to exec first.
    pub(crate) fn become_user(&self, user: &StepUser) -> Result<(), EnterError> {
        use rustix::thread::{Gid, Uid, set_thread_groups, set_thread_res_gid, set_thread_res_uid};
        let gid = Gid::from_raw(user.gid);
        let uid = Uid::from_raw(user.uid);
        set_thread_groups(&[])
            .and_then(|()| set_thread_res_gid(gid, gid, gid))
            .and_then(|()| set_thread_res_uid(uid, uid, uid))
            .map_err(|e| EnterError::User {
                name: user.name.clone(),
                source: e.into(),
            })
    }
}
