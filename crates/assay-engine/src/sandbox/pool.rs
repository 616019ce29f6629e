//! Sandboxes kept after their execution ended, to serve the next one.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Sandbox;
use super::start::{PROC_BY_PIDNS, YES};
use super::support::{HOST_WORK_ROOT, Support, step_user, support};

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
pub(super) struct Reuse {
    /// The new root's mount point on the host ([`pool_root`]).
    pub(super) root: PathBuf,
    /// The PID namespace's own `/proc`, opened inside: what runs in the namespace.
    pub(super) proc: File,
    /// What it hides (a sandbox serves only executions that hide the same).
    pub(super) hidden: Vec<PathBuf>,
    /// The work folder bound now (its host path, also its path inside).
    pub(super) work: PathBuf,
    /// Executions served so far.
    pub(super) uses: u32,
}

/// Ended sandboxes waiting for the next execution (each an idle `sh` and its namespaces).
pub(super) static POOL: std::sync::Mutex<Vec<Sandbox>> = std::sync::Mutex::new(Vec::new());
/// How many ended sandboxes wait at most.
pub(super) const POOL_MAX: usize = 32;
/// How many executions one sandbox serves at most.
pub(super) const POOL_USES: u32 = 1000;

/// Numbers the mount points of reusable sandboxes' roots.
static NEXT_ROOT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An ended sandbox that hides `hidden`, taken from the pool.
pub(super) fn take_pooled(hidden: &[PathBuf]) -> Option<Sandbox> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let at = pool
        .iter()
        .position(|s| s.reuse.as_ref().is_some_and(|r| r.hidden == hidden))?;
    Some(pool.swap_remove(at))
}

/// Ends the sandboxes kept for another execution and removes their mount points, and the
/// folder of [`host_work_root`](super::host_work_root) (when empty): called once no execution of this process runs any
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
pub(super) fn reusable() -> bool {
    matches!(support(), Support::Root)
        && PROC_BY_PIDNS.load(std::sync::atomic::Ordering::Relaxed) == YES
        && matches!(step_user(), Ok(Some(_)))
}

/// The mount point of a reusable sandbox's new root: a folder beside the executions' folders
/// (`.sandbox-<pid>-<n>` in the parent of `work_dir`), not in one, which is removed with its
/// execution. It is a mount point in the sandbox's namespace only: on the host it stays empty,
/// and it is removed when the sandbox ends. Those of processes that are gone (killed) are
/// removed the first time a folder is chosen in that parent.
pub(super) fn pool_root(work_dir: &Path) -> PathBuf {
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
    pub(super) fn quiet(&self) -> bool {
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
