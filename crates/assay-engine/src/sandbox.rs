//! A private `/data` and `/testkube/outputs` per execution, without touching the host's.
//!
//! Decided after measuring on the project's machine (2 cores, shared): starting each step
//! through `bwrap` with a rebuilt root cost about 8 ms over `bash -c true`; `unshare -m` per
//! step about 2.5 ms but cannot add `/data` without creating it on the host. So each
//! execution starts one *holder* process with `unshare -m --propagation private` (plus `-U -r`
//! when not root): it mounts a tmpfs as a new root, bind-mounts every top-level entry of the
//! host's `/` into it (recursively), adds `/data` and `/testkube/outputs` as bind mounts of the
//! execution's own folders, and then waits inside a `chroot` to it. Steps join it with
//! `nsenter -t <holder> -m -r -- env -C <dir> --` (two extra execs, ~2 ms). Nothing is created on
//! the host's `/`, and the mounts vanish with the namespace when the holder and its steps end.

use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Whether this machine lets us make private mount namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// As root: a mount namespace.
    Root,
    /// Unprivileged: a user namespace mapping us to root, and a mount namespace in it.
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
    if !root {
        args.splice(0..0, ["-U", "-r"]);
    }
    args.push("true");
    if std::process::Command::new("nsenter")
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

/// The script the holder runs inside its new mount namespace. `$1` is the new root (an empty
/// folder), `$2` the execution's data folder, `$3` its outputs folder.
const HOLDER_SCRIPT: &str = r#"set -e
R="$1"
mount -t tmpfs -o mode=755 assay-root "$R"
# An rbind of a host folder that contains $R must not copy $R into itself.
mount --make-unbindable "$R"
for e in /* /.[!.]*; do
  [ -e "$e" ] || [ -L "$e" ] || continue
  n="${e#/}"
  case "$n" in data|testkube) continue ;; esac
  if [ -L "$e" ]; then
    ln -s "$(readlink "$e")" "$R/$n"
  elif [ -d "$e" ]; then
    mkdir "$R/$n" && mount --rbind "$e" "$R/$n"
  else
    : > "$R/$n" && mount --bind "$e" "$R/$n"
  fi
done
mkdir -p "$R/data" "$R/testkube/outputs"
mount --bind "$2" "$R/data"
mount --bind "$3" "$R/testkube/outputs"
# Say "ready" only once inside the new root: steps join the holder's root (nsenter -r).
exec chroot "$R" /bin/sh -c 'echo ready; read _ || true'
"#;

/// A running holder; steps enter its namespace through [`Sandbox::wrap`].
#[derive(Debug)]
pub(crate) struct Sandbox {
    holder: Child,
    pid: u32,
    user_ns: bool,
}

impl Sandbox {
    /// Starts a holder for one execution.
    pub(crate) async fn start(root: &Path, data: &Path, outputs: &Path) -> Result<Self, String> {
        let user_ns = match support() {
            Support::Root => false,
            Support::User => true,
            Support::Unavailable(why) => return Err(why.clone()),
        };
        std::fs::create_dir_all(root)
            .map_err(|e| format!("failed to create {}: {e}", root.display()))?;
        let mut cmd = Command::new("unshare");
        if user_ns {
            cmd.args(["-U", "-r"]);
        }
        cmd.args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            HOLDER_SCRIPT,
            "sh",
        ])
        .arg(root)
        .arg(data)
        .arg(outputs)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut holder = cmd
            .spawn()
            .map_err(|e| format!("failed to start the namespace holder: {e}"))?;
        let pid = holder.id().ok_or("the namespace holder exited at once")?;
        let stdout = holder.stdout.take().ok_or("no holder stdout")?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).await;
        if read.is_err() || line.trim() != "ready" {
            let mut err = String::new();
            if let Some(mut stderr) = holder.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = stderr.read_to_string(&mut err).await;
            }
            let _ = holder.kill().await;
            return Err(format!(
                "failed to set up a private /data: {}",
                err.trim()
                    .lines()
                    .last()
                    .unwrap_or("the holder ended early")
            ));
        }
        Ok(Sandbox {
            holder,
            pid,
            user_ns,
        })
    }

    /// The argv that runs `argv` inside the namespace, in `cwd` (a path as steps see it).
    pub(crate) fn wrap(&self, argv: &[String], cwd: &str) -> Vec<String> {
        let mut out = vec!["nsenter".to_string(), "-t".into(), self.pid.to_string()];
        if self.user_ns {
            out.push("-U".into());
        }
        // nsenter opens a `--wd` folder before it enters the namespace, where /data does not
        // exist: change directory inside instead.
        out.extend([
            "-m".into(),
            "-r".into(),
            "--".into(),
            "env".into(),
            "-C".into(),
            cwd.to_string(),
            "--".into(),
        ]);
        out.extend(argv.iter().cloned());
        out
    }

    /// Ends the holder (steps still inside keep the namespace alive until they end).
    pub(crate) async fn stop(mut self) {
        drop(self.holder.stdin.take());
        let _ = self.holder.kill().await;
    }
}
