//! What this machine allows (namespaces, tools), who steps run as, and where their work
//! folders go when there are no namespaces.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

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
pub(super) fn nsenter_has_wdns() -> bool {
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

/// [`host_work_root`], once made (removed, empty, by [`end_kept`](super::end_kept)).
pub(super) static HOST_WORK_ROOT: OnceLock<Result<PathBuf, WorkRootError>> = OnceLock::new();

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

#[cfg(test)]
mod tests {
    use super::*;

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
