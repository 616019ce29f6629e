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
//! [`Entered::become_user`]) and spawns the process there itself, so a trivial execution
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

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Whether this machine lets us make private namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// As root: a mount namespace and a PID namespace.
    Root,
    /// Unprivileged: a user namespace mapping us to root, and a mount namespace in it (no PID
    /// namespace: joining one needs privileges in the namespace's owner).
    User,
    /// Not possible; the reason.
    Unavailable(String),
}

/// Detects support once per process (`unshare ... true`).
pub fn support() -> &'static Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    SUPPORT.get_or_init(detect)
}

fn detect() -> Support {
    let root = nix::unistd::geteuid().is_root();
    let mut args = vec!["-m", "--propagation", "private"];
    if root {
        args.extend(["-p", "-f"]);
    } else {
        args.splice(0..0, ["-U", "-r"]);
    }
    args.push("true");
    // As root, steps enter the namespaces from a thread of ours: only unprivileged runs need
    // `nsenter`.
    if !root
        && std::process::Command::new("nsenter")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
    {
        return Support::Unavailable("`nsenter` (util-linux) is not installed".into());
    }
    match std::process::Command::new("unshare")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => {
            if root {
                Support::Root
            } else {
                Support::User
            }
        }
        Ok(out) => Support::Unavailable(format!(
            "`unshare {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Support::Unavailable(format!("`unshare` could not be started: {e}")),
    }
}

/// Whether this machine's `nsenter` changes directory inside the namespace (`--wdns`,
/// util-linux 2.38 and later); asked once per process.
fn nsenter_has_wdns() -> bool {
    static WDNS: OnceLock<bool> = OnceLock::new();
    *WDNS.get_or_init(|| {
        std::process::Command::new("nsenter")
            .arg("--help")
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("--wdns"))
    })
}

/// The account steps run as when the engine runs as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The environment variable that chooses the account steps run as when Assay runs as root:
/// unset means `nobody`, `current` keeps root, anything else is a user name or a uid.
pub const STEP_USER_VAR: &str = "ASSAY_STEP_USER";

/// The account steps run as: `None` when Assay is not root (steps already run unprivileged)
/// or `ASSAY_STEP_USER=current`; an error when the variable names no user of this machine.
pub fn step_user() -> &'static Result<Option<StepUser>, StepUserError> {
    static USER: OnceLock<Result<Option<StepUser>, StepUserError>> = OnceLock::new();
    USER.get_or_init(|| {
        resolve_step_user(
            nix::unistd::geteuid().is_root(),
            std::env::var(STEP_USER_VAR).ok().as_deref(),
        )
    })
}

/// `ASSAY_STEP_USER` (its value here) names no user of this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{STEP_USER_VAR}={wanted} names no user of this machine, so steps cannot be dropped to it\n\nhint: set {STEP_USER_VAR} to an existing unprivileged user (the default is `nobody`), or to `current` to run steps as root"
)]
pub struct StepUserError {
    pub wanted: String,
}

fn resolve_step_user(root: bool, var: Option<&str>) -> Result<Option<StepUser>, StepUserError> {
    let wanted = var.map(str::trim).filter(|v| !v.is_empty());
    if !root || wanted == Some("current") {
        return Ok(None);
    }
    let wanted = wanted.unwrap_or("nobody");
    let found = match wanted.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(wanted),
    };
    match found {
        Ok(Some(u)) if u.uid.is_root() => Ok(None),
        Ok(Some(u)) => Ok(Some(StepUser {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })),
        _ => Err(StepUserError {
            wanted: wanted.to_string(),
        }),
    }
}

/// Where executions' work folders go instead of the data folder, when steps run as the step
/// user without namespaces (as root where `unshare` or `nsenter` is missing or refused, as in a
/// container without `CAP_SYS_ADMIN`): the data folder is root's alone (mode 0700, it keeps the
/// tokens and the database) and no sandbox binds a work folder back under it, so the step
/// user could not enter one there. Made once per process in the system's temporary folder,
/// with a random name (no link or folder planted there in advance is used) and mode 0711: a
/// step reaches its own execution's folder by its path but cannot list the others. `None`
/// when work folders stay in the data folder (steps in a sandbox, or steps that keep our user).
pub fn host_work_root() -> Option<&'static Result<PathBuf, WorkRootError>> {
    let shares_host = matches!(support(), Support::Unavailable(_));
    (shares_host && matches!(step_user(), Ok(Some(_)))).then(|| {
        HOST_WORK_ROOT.get_or_init(|| {
            use std::os::unix::fs::PermissionsExt;
            let dir = std::env::temp_dir();
            tempfile::Builder::new()
                .prefix("assay-work-")
                .permissions(std::fs::Permissions::from_mode(0o711))
                .tempdir_in(&dir)
                .map(tempfile::TempDir::keep)
                .map_err(|source| WorkRootError {
                    dir,
                    message: source.to_string(),
                })
        })
    })
}

/// [`host_work_root`], once made (removed, empty, by [`end_kept`]).
static HOST_WORK_ROOT: OnceLock<Result<PathBuf, WorkRootError>> = OnceLock::new();

/// The folder for work folders outside the data folder ([`host_work_root`]) could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "failed to make a folder for work folders in {}: {message}\n\nhint: steps run as the step user without namespaces, so their folders cannot be in the data folder; set TMPDIR to a writable folder, or {STEP_USER_VAR}=current",
    dir.display()
)]
pub struct WorkRootError {
    pub dir: PathBuf,
    pub message: String,
}

/// What to say once at start when steps cannot be confined: `None` when they can.
pub fn isolation_warning() -> Option<String> {
    let user = matches!(step_user(), Ok(Some(_)));
    let why = match support() {
        Support::Unavailable(why) => why,
        _ => return None,
    };
    let root = nix::unistd::geteuid().is_root();
    Some(if user {
        format!(
            "steps run without private namespaces ({why}): they run as an unprivileged user but share this machine's /proc and file system, so they can see other processes' command lines and read whatever that user can read"
        )
    } else if root {
        format!(
            "steps run without private namespaces ({why}) and as root: a step can read the data directory (tokens, database), this process's environment and other executions' files\n\nhint: install util-linux's unshare (and give this process CAP_SYS_ADMIN), or set {STEP_USER_VAR} to an unprivileged user"
        )
    } else {
        format!(
            "steps run without private namespaces ({why}) as this user: a step can read the data directory (tokens, database), this process's environment and other executions' files\n\nhint: allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces), or run Assay as root"
        )
    })
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

/// What one mount of a new root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MountKind {
    /// A host folder and every mount below it; its mount point is created.
    Tree,
    /// One file or folder; its mount point exists already (a host file's is created first).
    Bind,
    /// One folder; its mount point is created.
    BindNew,
    /// An empty tmpfs over a hidden folder.
    Cover,
    /// The PID namespace's own `proc`.
    Proc,
}

/// One mount of a new root, in the order made: `target` is the path as steps see it.
#[derive(Debug)]
struct Mount {
    source: PathBuf,
    target: PathBuf,
    kind: MountKind,
}

/// A new root: its mounts in order, and the host's top-level files (mount points to create)
/// and symbolic links (copied).
struct NewRoot {
    mounts: Vec<Mount>,
    files: Vec<PathBuf>,
    links: Vec<PathBuf>,
}

/// Every mount of a new root for the host's `/` as it is now (see [`Holder`]), and the host's
/// top-level files and symbolic links.
fn mounts(
    data: &Path,
    outputs: &Path,
    confinement: &Confinement,
    own_proc: bool,
) -> Result<NewRoot, SandboxError> {
    let slash = Path::new("/");
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(slash)
        .map_err(|source| SandboxError::File {
            action: "read",
            path: slash.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    let skipped = |name: &std::ffi::OsStr| {
        name == "data" || name == "testkube" || (own_proc && name == "proc")
    };
    let (mut list, mut files, mut links) = (Vec::new(), Vec::new(), Vec::new());
    let mut add = |source: &Path, target: &Path, kind| {
        list.push(Mount {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
            kind,
        });
    };
    for name in &names {
        if skipped(name) {
            continue;
        }
        let host = slash.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            links.push(host);
        } else if meta.is_dir() {
            add(&host, &host, MountKind::Tree);
        } else {
            add(&host, &host, MountKind::Bind);
            files.push(host);
        }
    }
    if own_proc {
        // Our own PID namespace's processes only: no other process's environ or cmdline.
        add(Path::new("assay-proc"), Path::new("/proc"), MountKind::Proc);
    }
    for hidden in &confinement.hidden {
        let top = hidden.components().nth(1).map(|c| c.as_os_str());
        if !hidden.is_absolute() || top.is_none_or(skipped) {
            continue;
        }
        match std::fs::symlink_metadata(hidden) {
            Ok(m) if m.is_dir() => add(Path::new("assay-hidden"), hidden, MountKind::Cover),
            Ok(m) if m.is_file() => add(Path::new("/dev/null"), hidden, MountKind::Bind),
            _ => {}
        }
    }
    let work = &confinement.work_dir;
    add(work, work, MountKind::BindNew);
    add(data, Path::new("/data"), MountKind::BindNew);
    add(outputs, Path::new("/testkube/outputs"), MountKind::BindNew);
    Ok(NewRoot {
        mounts: list,
        files,
        links,
    })
}

/// An fstab field: octal escapes for what would end it (as `getmntent` reads them); the path's
/// bytes as they are otherwise.
fn fstab_field(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend(format!("\\{b:03o}").bytes()),
            b => out.push(b),
        }
    }
    out
}

/// The holder's mounts for the host's `/` as it is now, as a table for `mount -a` (see
/// [`Holder`]).
pub(crate) fn mount_table(
    root: &Path,
    data: &Path,
    outputs: &Path,
    confinement: &Confinement,
    own_proc: bool,
) -> Result<Holder, SandboxError> {
    let new = mounts(data, outputs, confinement, own_proc)?;
    let r = fstab_field(root.as_os_str().as_bytes());
    let mut table = Vec::new();
    for m in new.mounts {
        let (fs, options) = match m.kind {
            MountKind::Tree => ("none", "rbind,X-mount.mkdir"),
            MountKind::Bind => ("none", "bind"),
            MountKind::BindNew => ("none", "bind,X-mount.mkdir"),
            MountKind::Cover => ("tmpfs", COVER_OPTIONS),
            MountKind::Proc => ("proc", "nosuid,nodev,noexec,X-mount.mkdir"),
        };
        table.extend(fstab_field(m.source.as_os_str().as_bytes()));
        table.push(b' ');
        table.extend_from_slice(&r);
        table.extend(fstab_field(m.target.as_os_str().as_bytes()));
        table.extend(format!(" {fs} {options} 0 0\n").bytes());
    }
    Ok(Holder {
        table,
        files: new.files,
        links: new.links,
    })
}

/// The options of the empty tmpfs over a hidden folder.
const COVER_OPTIONS: &str = "mode=755,size=64k";

/// The absolute path of one of util-linux's tools on our `PATH` (the name alone when it is not
/// found, which then fails to start as before). Absolute, so that std starts it with
/// `posix_spawn` rather than by forking this (large) process: std forks whenever the child's
/// environment sets `PATH` and the program is a bare name.
fn tool(name: &'static str) -> PathBuf {
    static FOUND: OnceLock<std::sync::Mutex<Vec<(&'static str, PathBuf)>>> = OnceLock::new();
    let found = FOUND.get_or_init(Default::default);
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = found.iter().find(|(n, _)| *n == name) {
        return path.clone();
    }
    let path = std::env::var("PATH")
        .ok()
        .and_then(|p| crate::process::find_on_path(name, Some(&p)))
        .or_else(|| crate::process::find_on_path(name, None))
        .unwrap_or_else(|| PathBuf::from(name));
    found.push((name, path.clone()));
    path
}

/// What the holder (the namespace's first process, as root) runs once `unshare --mount-proc`
/// has mounted its `/proc`: say ready, then wait for its stdin (a pipe only we hold) to close.
const INIT_SCRIPT: &str = "echo ready; read _ || true";

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
    ns: Arc<Namespaces>,
    /// Whether starts may still enter: shut when the execution's sandbox is handed on
    /// ([`Sandbox::detach`]), which waits for the starts under way; the next execution gets a
    /// handle of its own. So nothing an ended execution still held starts a process in the
    /// next one's sandbox.
    open: std::sync::RwLock<bool>,
}

/// A holder's mount namespace, root and PID namespace (open files in `/proc/<holder>/`).
#[derive(Debug)]
struct Namespaces {
    mnt: File,
    root: File,
    pid: File,
}

impl Namespaces {
    /// Those of the holder whose host pid is `pid` (our child).
    fn of(pid: u32) -> Result<Self, SandboxError> {
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

    fn new(ns: Arc<Namespaces>) -> Self {
        Inside {
            ns,
            open: std::sync::RwLock::new(true),
        }
    }

    /// Lets no more starts in, once those under way are over.
    fn shut(&self) {
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
fn fresh_thread<T: Send>(
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

/// Whether this kernel mounts a `proc` for a PID namespace named in its options (`pidns=`,
/// Linux 6.18): unknown until the first holder, then remembered for the process.
static PROC_BY_PIDNS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

/// How [`start_inside`] failed: `proc_option` when the kernel refused the `pidns=` option of
/// `proc` (older than 6.18), so the holder must mount its `/proc` itself.
struct InsideError {
    error: SandboxError,
    proc_option: bool,
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

/// As root, on a thread of its own (see [`Sandbox::start`]): makes the new root with mount
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
async fn start_on_thread(
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
fn spawn_holder(cmd: &mut Command, says_ready: bool) -> Result<Child, SandboxError> {
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

/// A sandbox that can serve the next execution once this one ended, instead of ending with it:
/// as root with the `pidns=` `/proc`, when steps run as the step user (who cannot change the
/// namespace's mounts). Starting a holder and its namespaces is most of what a sandbox costs
/// (the holder's `sh`, about 50 mounts made and unmounted); handing one over is three
/// unmounts and three binds.
///
/// It is handed over only if, when its execution ended, its PID namespace held no process but
/// the holder ([`Reuse::quiet`]: not even one that was killed and not yet reaped), so nothing of
/// that execution can act in the next; then the execution's work folder, `/data` and
/// `/testkube/outputs` are unmounted, and the next execution's bound in their place. Anything
/// else ends it as before: what it held ends with its holder.
#[derive(Debug)]
struct Reuse {
    /// The new root's mount point on the host ([`pool_root`]).
    root: PathBuf,
    /// The PID namespace's own `/proc`, opened inside: what runs in the namespace.
    proc: File,
    /// What it hides (a sandbox serves only executions that hide the same).
    hidden: Vec<PathBuf>,
    /// The work folder bound now (its host path, also its path inside).
    work: PathBuf,
    /// Executions served so far.
    uses: u32,
}

/// Ended sandboxes waiting for the next execution (each an idle `sh` and its namespaces).
static POOL: std::sync::Mutex<Vec<Sandbox>> = std::sync::Mutex::new(Vec::new());
/// How many ended sandboxes wait at most.
const POOL_MAX: usize = 32;
/// How many executions one sandbox serves at most.
const POOL_USES: u32 = 1000;

/// A file error as the system's error number (`EIO` when it has none).
fn errno(e: std::io::Error) -> nix::Error {
    e.raw_os_error()
        .map_or(nix::Error::EIO, nix::Error::from_raw)
}

/// Numbers the mount points of reusable sandboxes' roots.
static NEXT_ROOT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An ended sandbox that hides `hidden`, taken from the pool.
fn take_pooled(hidden: &[PathBuf]) -> Option<Sandbox> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let at = pool
        .iter()
        .position(|s| s.reuse.as_ref().is_some_and(|r| r.hidden == hidden))?;
    Some(pool.swap_remove(at))
}

/// Ends the sandboxes kept for another execution and removes their mount points, and the
/// folder of [`host_work_root`] (when empty): called once no execution of this process runs any
/// more (as it exits; a kept holder also ends by itself when this process does, as every
/// holder reads end-of-file then).
pub fn end_kept() {
    let kept = std::mem::take(&mut *POOL.lock().unwrap_or_else(|e| e.into_inner()));
    for mut sandbox in kept {
        let _ = sandbox.holder.start_kill();
        if let Some(reuse) = sandbox.reuse.take() {
            let _ = std::fs::remove_dir(reuse.root);
        }
    }
    if let Some(Ok(root)) = HOST_WORK_ROOT.get() {
        let _ = std::fs::remove_dir(root);
    }
}

/// Whether sandboxes made now can serve more than one execution (see [`Reuse`]): not before
/// the first holder showed that the kernel mounts a `proc` by `pidns=`.
fn reusable() -> bool {
    matches!(support(), Support::Root)
        && PROC_BY_PIDNS.load(std::sync::atomic::Ordering::Relaxed) == YES
        && matches!(step_user(), Ok(Some(_)))
}

/// The mount point of a reusable sandbox's new root: a folder beside the executions' folders
/// (`.sandbox-<pid>-<n>` in the parent of `work_dir`), not in one, which is removed with its
/// execution. It is a mount point in the sandbox's namespace only: on the host it stays empty,
/// and it is removed when the sandbox ends. Those of processes that are gone (killed) are
/// removed the first time a folder is chosen in that parent.
fn pool_root(work_dir: &Path) -> PathBuf {
    static SWEPT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let parent = work_dir.parent().unwrap_or(work_dir);
    let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
    if !swept.iter().any(|p| p == parent) {
        swept.push(parent.to_path_buf());
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix(".sandbox-"))
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
    let n = NEXT_ROOT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    parent.join(format!(".sandbox-{}-{n}", std::process::id()))
}

impl Reuse {
    /// Whether the namespace holds the holder (its `1`) and no other process.
    fn quiet(&self) -> bool {
        use std::os::fd::AsRawFd;
        let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", self.proc.as_raw_fd()))
        else {
            return false;
        };
        let mut pids = Vec::new();
        for entry in entries {
            let Ok(entry) = entry else { return false };
            let name = entry.file_name();
            if name.as_bytes().iter().all(u8::is_ascii_digit) {
                pids.push(name);
            }
        }
        pids == ["1"]
    }
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

    #[test]
    fn the_mount_table_escapes_paths_and_covers_the_hidden_ones() {
        assert_eq!(fstab_field(b"/a b\\c\td\ne"), b"/a\\040b\\134c\\011d\\012e");
        let dir = tempfile::tempdir().unwrap();
        let hidden = dir.path().join("data dir");
        std::fs::create_dir_all(hidden.join("work/x")).unwrap();
        std::fs::write(dir.path().join("db.sqlite"), b"").unwrap();
        let confinement = Confinement {
            hidden: vec![hidden.clone(), dir.path().join("db.sqlite")],
            work_dir: hidden.join("work/x"),
        };
        let root = hidden.join("work/x/.root");
        let holder =
            mount_table(&root, Path::new("/d"), Path::new("/o"), &confinement, true).unwrap();
        let table = String::from_utf8(holder.table).unwrap();
        let r = root.display().to_string().replace(' ', "\\040");
        let h = hidden.display().to_string().replace(' ', "\\040");
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines.contains(&format!("/usr {r}/usr none rbind,X-mount.mkdir 0 0").as_str()),
            "{table}"
        );
        assert!(
            lines.contains(
                &format!("assay-proc {r}/proc proc nosuid,nodev,noexec,X-mount.mkdir 0 0").as_str()
            ),
            "{table}"
        );
        assert!(!table.contains(" /proc none rbind"), "{table}");
        assert!(
            lines.contains(&format!("assay-hidden {r}{h} tmpfs mode=755,size=64k 0 0").as_str()),
            "{table}"
        );
        let db = dir.path().join("db.sqlite").display().to_string();
        assert!(
            lines.contains(&format!("/dev/null {r}{db} none bind 0 0").as_str()),
            "{table}"
        );
        // The work folder comes back after its data dir is covered; /data and the outputs last.
        let n = lines.len();
        assert_eq!(
            lines[n - 3],
            format!("{h}/work/x {r}{h}/work/x none bind,X-mount.mkdir 0 0")
        );
        assert_eq!(
            lines[n - 2],
            format!("/d {r}/data none bind,X-mount.mkdir 0 0")
        );
        assert_eq!(
            lines[n - 1],
            format!("/o {r}/testkube/outputs none bind,X-mount.mkdir 0 0")
        );
        assert!(
            holder
                .files
                .iter()
                .chain(&holder.links)
                .all(|p| p.parent() == Some(Path::new("/")))
        );
    }

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

    #[test]
    fn step_user_defaults_to_nobody_as_root_only() {
        assert_eq!(resolve_step_user(false, None), Ok(None));
        assert_eq!(resolve_step_user(false, Some("nobody")), Ok(None));
        assert_eq!(resolve_step_user(true, Some("current")), Ok(None));
        let nobody = resolve_step_user(true, None).unwrap().unwrap();
        assert_eq!(nobody.name, "nobody");
        assert_ne!(nobody.uid, 0);
        assert_eq!(
            resolve_step_user(true, Some("65534")).unwrap().unwrap().uid,
            65534
        );
        let err = resolve_step_user(true, Some("no-such-user-here")).unwrap_err();
        assert_eq!(err.wanted, "no-such-user-here");
        let text = err.to_string();
        assert!(
            text.starts_with("ASSAY_STEP_USER=no-such-user-here names no user"),
            "{text}"
        );
        assert!(text.contains("\n\nhint: set ASSAY_STEP_USER"), "{text}");
    }
}
