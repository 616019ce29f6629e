//! Starting a holder: as root from a thread of ours that makes the mounts itself, or as
//! `unshare` running the holder's script (unprivileged).

use std::fs::File;
use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::mounts::{COVER_OPTIONS, MountKind, mounts, tool};
use super::{Confinement, SandboxError};

/// What the holder (the namespace's first process, as root) runs once `unshare --mount-proc`
/// has mounted its `/proc`: say ready, then wait for its stdin (a pipe only we hold) to close.
const INIT_SCRIPT: &str = "echo ready; read _ || true";

/// Whether this kernel mounts a `proc` for a PID namespace named in its options (`pidns=`,
/// Linux 6.18): unknown until the first holder, then remembered for the process.
pub(super) static PROC_BY_PIDNS: std::sync::atomic::AtomicU8 =
    std::sync::atomic::AtomicU8::new(UNKNOWN);
pub(super) const UNKNOWN: u8 = 0;
pub(super) const YES: u8 = 1;
pub(super) const NO: u8 = 2;

/// How [`start_inside`] failed: `proc_option` when the kernel refused the `pidns=` option of
/// `proc` (older than 6.18), so the holder must mount its `/proc` itself.
pub(super) struct InsideError {
    pub(super) error: SandboxError,
    pub(super) proc_option: bool,
}

impl From<SandboxError> for InsideError {
    fn from(error: SandboxError) -> Self {
        InsideError {
            error,
            proc_option: false,
        }
    }
}

/// The options of the PID namespace's own `/proc`: those `unshare --mount-proc` uses.
fn proc_flags() -> nix::mount::MsFlags {
    use nix::mount::MsFlags;
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

/// As root, on a thread of its own (see [`Sandbox::start`](super::Sandbox::start)): makes the new root with mount
/// calls in a mount namespace of this thread's (no `mount`, `sh` or `cp` process), then starts
/// the holder in a new PID namespace inside that root. With `proc_by_pidns` the holder is
/// `sh` alone (it waits for its stdin to close) and this thread mounts the namespace's
/// `/proc` itself, naming the namespace by path (`pidns=`); the returned holder then says
/// nothing. Without, `unshare --mount-proc` mounts it and becomes `sh`, which says ready and
/// waits.
fn start_inside(
    root: &Path,
    data: &Path,
    outputs: &Path,
    confinement: &Confinement,
    runtime: &tokio::runtime::Handle,
    proc_by_pidns: bool,
) -> Result<(Child, Option<File>), InsideError> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    let new = mounts(data, outputs, confinement, true)?;
    let failed = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::Call {
            action,
            path,
            source,
        }
    };
    let file = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::File {
            action,
            path,
            source,
        }
    };
    let none: Option<&str> = None;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS).map_err(|source| {
        SandboxError::Namespace {
            kind: "mount",
            source,
        }
    })?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(failed("make private", Path::new("/")))?;
    // Unbindable: a recursive bind of a host folder that contains the root must not copy the
    // root into itself.
    mount(
        Some("assay-root"),
        root,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=755"),
    )
    .and_then(|()| mount(none, root, none, MsFlags::MS_UNBINDABLE, none))
    .map_err(failed("mount a tmpfs on", root))?;
    let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    for path in &new.files {
        File::create(inside(path)).map_err(file("create", &inside(path)))?;
    }
    for link in &new.links {
        std::fs::read_link(link)
            .and_then(|to| std::os::unix::fs::symlink(to, inside(link)))
            .map_err(file("copy the link", link))?;
    }
    for m in &new.mounts {
        let target = inside(&m.target);
        if matches!(
            m.kind,
            MountKind::Tree | MountKind::BindNew | MountKind::Proc
        ) {
            std::fs::create_dir_all(&target).map_err(file("create", &target))?;
        }
        let made = match m.kind {
            MountKind::Tree => mount(
                Some(&m.source),
                &target,
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            ),
            MountKind::Bind | MountKind::BindNew => {
                mount(Some(&m.source), &target, none, MsFlags::MS_BIND, none)
            }
            MountKind::Cover => mount(
                Some("assay-hidden"),
                &target,
                Some("tmpfs"),
                MsFlags::empty(),
                Some(COVER_OPTIONS),
            ),
            // Needs the PID namespace's first process: mounted below.
            MountKind::Proc => Ok(()),
        };
        made.map_err(failed("mount", &target))?;
    }
    unshare(CloneFlags::CLONE_NEWPID).map_err(|source| SandboxError::Namespace {
        kind: "PID",
        source,
    })?;
    // The host's /proc, kept open across the change of root: the new namespace's `/proc` is
    // mounted by naming it through there.
    let host_proc = File::open("/proc").map_err(file("open", Path::new("/proc")))?;
    nix::unistd::chroot(root)
        .and_then(|()| nix::unistd::chdir("/"))
        .map_err(failed("change root to", root))?;
    let _runtime = runtime.enter();
    if !proc_by_pidns {
        let holder = spawn_holder(
            Command::new(tool("unshare"))
                .args(["-m", "--propagation", "private", "--mount-proc=/proc"])
                .args(["/bin/sh", "-c", INIT_SCRIPT]),
            true,
        )?;
        return Ok((holder, None));
    }
    // The namespace's first process (it has one only once started): it waits for its stdin
    // (a pipe only we hold) to close. Then its `/proc`, the namespace named relative to our
    // working folder, the host's /proc; the path to mount on is in the new root.
    let holder = spawn_holder(Command::new("/bin/sh").args(["-c", HOLDER_WAIT]), false)?;
    let made = nix::unistd::fchdir(&host_proc)
        .and_then(|()| {
            mount(
                Some("assay-proc"),
                "/proc",
                Some("proc"),
                proc_flags(),
                Some("pidns=thread-self/ns/pid_for_children"),
            )
        })
        .map_err(|e| InsideError {
            error: failed("mount", Path::new("/proc"))(e),
            proc_option: true,
        });
    nix::unistd::chdir("/").map_err(failed("change directory to", Path::new("/")))?;
    made?;
    // The namespace's own `/proc`, kept to see what runs in it (see [`Reuse`]). On error the
    // holder is killed as it is dropped (`kill_on_drop`).
    let proc = File::open("/proc").map_err(file("open", Path::new("/proc")))?;
    Ok((holder, Some(proc)))
}

/// What a holder that mounts nothing runs: wait for its stdin (our end of the pipe) to close.
const HOLDER_WAIT: &str = "read _ || true";

/// [`start_inside`] on a thread of its own: it changes its mount namespace and root, and the
/// processes it starts are born in the new PID namespace.
pub(super) async fn start_on_thread(
    root: &Path,
    data: &Path,
    outputs: &Path,
    confinement: &Confinement,
    proc_by_pidns: bool,
) -> Result<(Child, Option<File>), InsideError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (root, data, outputs) = (root.to_owned(), data.to_owned(), outputs.to_owned());
    let confinement = confinement.clone();
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("assay-sandbox".into())
        .spawn(move || {
            let _ = tx.send(start_inside(
                &root,
                &data,
                &outputs,
                &confinement,
                &runtime,
                proc_by_pidns,
            ));
        })
        .map_err(SandboxError::Thread)?;
    rx.await
        .unwrap_or_else(|_| Err(SandboxError::ThreadPanicked.into()))
}

/// Starts a holder: it ends when its stdin (ours) closes; when `says_ready`, it says ready on
/// stdout first (or why not on stderr).
pub(super) fn spawn_holder(cmd: &mut Command, says_ready: bool) -> Result<Child, SandboxError> {
    let out = || {
        if says_ready {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    // The holder is the namespace's PID 1, whose environ every step can read: none of ours
    // (it may hold the server's secrets).
    cmd.env_clear()
        .env("PATH", crate::env::DEFAULT_PATH)
        .stdin(Stdio::piped())
        .stdout(out())
        .stderr(out())
        .kill_on_drop(true)
        .spawn()
        .map_err(SandboxError::Holder)
}
