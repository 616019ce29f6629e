//! The new root of a holder: the mounts that make it, as system calls (root) or as the table
//! `mount -a` reads (unprivileged).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{Confinement, Holder, SandboxError};

/// What one mount of a new root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MountKind {
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
pub(super) struct Mount {
    pub(super) source: PathBuf,
    pub(super) target: PathBuf,
    pub(super) kind: MountKind,
}

/// A new root: its mounts in order, and the host's top-level files (mount points to create)
/// and symbolic links (copied).
pub(super) struct NewRoot {
    pub(super) mounts: Vec<Mount>,
    pub(super) files: Vec<PathBuf>,
    pub(super) links: Vec<PathBuf>,
}

/// Every mount of a new root for the host's `/` as it is now (see [`Holder`]), and the host's
/// top-level files and symbolic links.
pub(super) fn mounts(
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
pub(super) const COVER_OPTIONS: &str = "mode=755,size=64k";

/// The absolute path of one of util-linux's tools on our `PATH` (the name alone when it is not
/// found, which then fails to start as before). Absolute, so that std starts it with
/// `posix_spawn` rather than by forking this (large) process: std forks whenever the child's
/// environment sets `PATH` and the program is a bare name.
pub(super) fn tool(name: &'static str) -> PathBuf {
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
}
