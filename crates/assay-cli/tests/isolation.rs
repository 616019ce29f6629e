//! What a step's code can reach (issue 14 #1, #8): a step started by `assay server` must not
//! read the server's data folder (admin token, database, other executions' folders), its
//! environment or its `/proc`; as root it runs as an unprivileged user; and after `kill -9`
//! of `assay run` or `assay server` nothing of the run keeps running.

use crate::run_support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use run_support::{free_port, http, with_marker};
use serde_json::Value;

/// The server's secret in its own environment: a step must never see it.
const SERVER_SECRET: &str = "server-env-secret-5d1c07";

struct Server {
    child: Child,
    port: u16,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `assay server` on a free port with `SERVER_SECRET` in its environment; `step_user` is its
/// `ASSAY_STEP_USER` (`None`: unset, the default).
fn server(data: &Path, step_user: Option<&str>) -> Server {
    server_with(data, step_user, &[])
}

/// [`server`] with `env` added to its environment.
fn server_with(data: &Path, step_user: Option<&str>, env: &[(&str, &Path)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("assay"));
    cmd.args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .envs(env.iter().copied())
        .env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env("ASSAY_SERVER_SECRET", SERVER_SECRET)
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    match step_user {
        Some(u) => cmd.env("ASSAY_STEP_USER", u),
        None => cmd.env_remove("ASSAY_STEP_USER"),
    };
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited: {printed}"
        );
        printed.push_str(&line);
        if line.contains("listening on") {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = stderr.read_to_string(&mut sink);
    });
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    Server { child, port, admin }
}

impl Server {
    /// Stores a one-step workflow with `script`, runs it and returns (execution id).
    fn start(&self, name: &str, script: &str) -> String {
        let indented: String = script.lines().map(|l| format!("      {l}\n")).collect();
        self.start_yaml(
            name,
            &format!(
                "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {name}\nspec:\n  steps:\n  - name: probe\n    shell: |\n{indented}"
            ),
        )
    }

    /// Stores the workflow `yaml` named `name`, runs it and returns (execution id).
    fn start_yaml(&self, name: &str, yaml: &str) -> String {
        let (code, body) = http(
            self.port,
            "POST",
            "/v1/test-workflows",
            &self.admin,
            Some(("text/yaml", yaml)),
        );
        assert_eq!(code, 201, "{body}");
        self.run_stored(name)
    }

    /// Runs the stored workflow `name`; returns the execution's id.
    fn run_stored(&self, name: &str) -> String {
        let (code, body) = http(
            self.port,
            "POST",
            &format!("/v1/test-workflows/{name}/executions"),
            &self.admin,
            Some(("application/json", "{}")),
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn status(&self, id: &str) -> String {
        let (code, body) = http(
            self.port,
            "GET",
            &format!("/v1/test-workflow-executions/{id}"),
            &self.admin,
            None,
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["result"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Runs `script` as a stored workflow to its end; returns its status and its log.
    fn run(&self, name: &str, script: &str) -> (String, String) {
        self.finish(self.start(name, script))
    }

    /// Waits for execution `id` to end; returns its status and its log.
    fn finish(&self, id: String) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            let s = self.status(&id);
            if !matches!(s.as_str(), "queued" | "running" | "") {
                break s;
            }
            assert!(Instant::now() < deadline, "{id} is still {s}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let (code, log) = http(
            self.port,
            "GET",
            &format!("/v1/test-workflow-executions/{id}/logs"),
            &self.admin,
            None,
        );
        assert_eq!(code, 200, "{log}");
        (status, log)
    }
}

/// The data folder as the server sees it (the path a step would try).
fn data_dir(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    data.canonicalize().unwrap()
}

#[test]
fn security_step_cannot_read_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let server = server(&data, Some("current"));
    let token = data.join("admin.token");
    let db = data.join("assay.db");
    let (status, log) = server.run(
        "steal-token",
        &format!(
            "cat {t} || echo no-token\nhead -c 16 {db} || echo no-database\nls -a {d} | sed 's/^/entry: /'\necho probe-done",
            t = token.display(),
            db = db.display(),
            d = data.display()
        ),
    );
    assert_eq!(status, "passed", "{log}");
    assert!(log.contains("probe-done"), "{log}");
    assert!(
        !log.contains(&server.admin),
        "the step read the admin token: {log}"
    );
    assert!(
        log.contains("no-token") && log.contains("no-database"),
        "{log}"
    );
    assert!(
        !log.contains("SQLite format"),
        "the step read the database: {log}"
    );
    // The data folder shows only this execution's own work folder.
    let entries: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("entry: ").map(|(_, e)| e))
        .collect();
    assert!(entries.contains(&"work"), "{log}");
    assert!(
        !entries
            .iter()
            .any(|e| e.starts_with("admin.token") || e.starts_with("assay.db")),
        "{log}"
    );
}

#[test]
fn security_step_cannot_read_other_executions_folders() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let server = server(&data, Some("current"));
    // A first execution leaves a secret in its work folder and waits.
    let first = server.start(
        "holds-secret",
        "echo other-execution-secret > $TMPDIR/secret\necho ready\nsleep 30",
    );
    let work = data.join("work").join(&first);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !work.join("tmp/secret").exists() {
        assert!(
            Instant::now() < deadline,
            "the first execution never wrote its secret"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, log) = server.run(
        "snoops",
        &format!(
            "cat {w}/tmp/secret || echo not-visible\nls {d}/work | sed 's/^/entry: /'\necho probe-done",
            w = work.display(),
            d = data.display()
        ),
    );
    assert_eq!(status, "passed", "{log}");
    assert!(log.contains("not-visible"), "{log}");
    assert!(!log.contains("other-execution-secret"), "{log}");
    let entries: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("entry: ").map(|(_, e)| e))
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "only the step's own execution folder: {log}"
    );
    assert!(
        !entries.contains(&first.as_str()),
        "the other execution's folder is listed: {log}"
    );
}

#[test]
fn security_step_cannot_read_server_env() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let server = server(&data, Some("current"));
    let pid = server.child.id();
    let (status, log) = server.run(
        "read-env",
        &format!(
            "env\ncat /proc/{pid}/environ || echo no-server-proc\nfor p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null; tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done\necho probe-done"
        ),
    );
    assert_eq!(status, "passed", "{log}");
    assert!(log.contains("probe-done"), "{log}");
    assert!(
        !log.contains(SERVER_SECRET),
        "a step read the server's environment: {log}"
    );
    assert!(!log.contains("ASSAY_SERVER_SECRET"), "{log}");
    // Not even the server's command line: its /proc is not the step's.
    assert!(
        !log.contains("--listen"),
        "a step saw the server's process: {log}"
    );
}

#[test]
fn security_step_cannot_see_the_servers_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let server = server(&data, Some("current"));
    let (status, log) = server.run(
        "list-processes",
        "for p in /proc/[0-9]*; do echo \"pid ${p#/proc/} $(tr '\\0' ' ' < $p/cmdline)\"; done\necho probe-done",
    );
    assert_eq!(status, "passed", "{log}");
    assert!(
        !log.contains("assay"),
        "a step saw assay's processes: {log}"
    );
    let pids = log.lines().filter(|l| l.contains("pid ")).count();
    assert!(pids < 10, "a step sees more than its own processes: {log}");
}

/// A step holds no file descriptor but its own stdin, stdout and stderr: not the ends of its
/// output pipe (through which a process of another execution, started at the same moment,
/// could write into this step's log and keep it open), nor what the server inherited.
#[test]
fn security_a_step_holds_no_descriptor_but_its_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    // A descriptor the server inherits from whatever started it (a shell's, a CI runner's).
    let inherited = std::fs::File::open(&data).unwrap();
    nix::fcntl::fcntl(
        &inherited,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let server = server(&data, Some("current"));
    drop(inherited);
    let (status, log) = server.run("descriptors", "ls -l /proc/self/fd");
    assert_eq!(status, "passed", "{log}");
    let fds: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(" -> ")?.0.split_whitespace().last())
        .collect();
    // 3 is `ls`'s own, reading the folder.
    assert_eq!(fds, ["0", "1", "2", "3"], "{log}");
}

/// A server of ours as root with the default step user (`nobody`), or `None` (said) when the
/// tests do not run as root.
fn root_server() -> Option<(tempfile::TempDir, Server)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root, so there is no user to drop from");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let server = server(&data, None);
    Some((dir, server))
}

#[test]
fn security_steps_of_a_root_server_run_as_nobody() {
    let Some((_dir, server)) = root_server() else {
        return;
    };
    let (status, log) = server.run(
        "whoami",
        "id -u\nid -G\necho $USER\ntouch /data/mine && echo wrote-data\ntouch $TMPDIR/mine && echo wrote-tmp\ncat /etc/shadow > /dev/null 2>&1 || echo no-shadow",
    );
    assert_eq!(status, "passed", "{log}");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let lines: Vec<&str> = log
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, t)| t))
        .collect();
    assert!(lines.contains(&nobody.uid.to_string().as_str()), "{log}");
    assert!(!lines.contains(&"0"), "a step ran as root: {log}");
    assert!(
        log.contains("wrote-data") && log.contains("wrote-tmp"),
        "{log}"
    );
    assert!(log.contains("no-shadow"), "{log}");
}

/// A step, a service and its exec probe dropped to `nobody` by the thread that starts them:
/// no capability left, the step's `workingDir` entered as that user, and the server's own
/// threads still root afterwards (the kernel's per-thread calls, not libc's `setuid`).
#[test]
fn security_a_nobody_step_keeps_no_capability_and_the_server_keeps_root() {
    let Some((_dir, server)) = root_server() else {
        return;
    };
    let yaml = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: creds\nspec:\n  services:\n    db:\n      shell: sleep 60\n      readinessProbe:\n        exec:\n          command: [sh, -c, 'id -u > /data/probe-uid; grep ^CapEff /proc/self/status > /data/probe-caps']\n        periodSeconds: 1\n  steps:\n  - name: probe\n    workingDir: /data/sub\n    shell: |\n      echo cwd $(pwd) $(stat -c %u .)\n      echo probe-uid $(cat /data/probe-uid)\n      echo \"probe-$(cat /data/probe-caps)\"\n      grep -E '^(Cap(Inh|Prm|Eff|Amb)|Groups):' /proc/self/status\n      echo uid $(id -u) gid $(id -g) groups $(id -G)\n";
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    for round in 0..2 {
        let id = match round {
            0 => server.start_yaml("creds", yaml),
            _ => server.run_stored("creds"),
        };
        let (status, log) = server.finish(id);
        assert_eq!(status, "passed", "round {round}: {log}");
        let text: Vec<&str> = log.lines().map(str::trim_end).collect();
        let want = [
            format!("cwd /data/sub {}", nobody.uid),
            format!("probe-uid {}", nobody.uid),
            "probe-CapEff:\t0000000000000000".to_string(),
            "CapInh:\t0000000000000000".to_string(),
            "CapPrm:\t0000000000000000".to_string(),
            "CapEff:\t0000000000000000".to_string(),
            "CapAmb:\t0000000000000000".to_string(),
            "Groups:".to_string(),
            format!(
                "uid {} gid {} groups {}",
                nobody.uid, nobody.gid, nobody.gid
            ),
        ];
        for line in &want {
            assert!(
                text.contains(&line.as_str()),
                "round {round}: no line {line:?} in {log}"
            );
        }
    }
    // Every thread of the server is still root, so the second round's sandbox was made.
    every_thread_is_root(&server);
}

/// Every thread of `server` still has uid 0 in all four fields (the threads that dropped to the
/// step user to start a process have ended).
fn every_thread_is_root(server: &Server) {
    let task = format!("/proc/{}/task", server.child.id());
    let mut threads = 0;
    for entry in std::fs::read_dir(&task).unwrap() {
        let Ok(status) = std::fs::read_to_string(entry.unwrap().path().join("status")) else {
            continue; // a thread that ended meanwhile
        };
        let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            uids.split_whitespace().collect::<Vec<_>>(),
            ["Uid:", "0", "0", "0", "0"],
            "a thread of the server lost root: {status}"
        );
        threads += 1;
    }
    assert!(threads > 1, "{task}");
}

/// The lines of a step's `/proc/self/status` that say its credentials, printed by bash alone.
const PRINT_CREDENTIALS: &str =
    "while read -r l; do case $l in Cap*|Groups*) echo \"$l\";; esac; done < /proc/self/status";

/// What [`PRINT_CREDENTIALS`] prints for a process with no capability and no group.
const NO_CREDENTIALS: [&str; 5] = [
    "CapInh:\t0000000000000000",
    "CapPrm:\t0000000000000000",
    "CapEff:\t0000000000000000",
    "CapAmb:\t0000000000000000",
    "Groups:",
];

/// A root server keeps an ended execution's sandbox for the next one only when nothing of that
/// execution is left in it: the next sees none of its files, folders or processes; an
/// execution that leaves a process behind gets a sandbox of its own, which ends with that
/// process. The holder's start time (field 22 of `/proc/1/stat`, the namespace's init) tells
/// which sandbox a step ran in.
#[test]
fn security_a_sandbox_serves_another_execution_only_when_nothing_of_the_last_is_left() {
    let Some((_dir, server)) = root_server() else {
        return;
    };
    let holder = |log: &str| -> String {
        log.lines()
            .find_map(|l| l.split("holder ").nth(1))
            .unwrap_or_else(|| panic!("no holder in {log}"))
            .trim()
            .to_string()
    };
    let line = |log: &str, key: &str| -> String {
        log.lines()
            .find_map(|l| l.split(&format!("{key} ")).nth(1))
            .unwrap_or_else(|| panic!("no {key} in {log}"))
            .trim()
            .to_string()
    };
    // Processes counted by the shell itself (a glob, no child): `ls /proc | grep` counted its
    // own pipeline, whose second process may or may not exist yet when the first reads.
    let report = "echo holder $(cut -d' ' -f22 /proc/1/stat)\necho work $(dirname $TMPDIR)\nn=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo procs $n";
    // The first sandbox of a process is not kept: it shows how the kernel mounts `/proc`.
    let (status, warm) = server.run("warms-up", report);
    assert_eq!(status, "passed", "{warm}");
    let (status, first) = server.run(
        "leaves-files",
        &format!("{report}\necho secret > /data/left\nmkdir -p /data/sub && echo x > /data/sub/f\necho secret > $TMPDIR/left"),
    );
    assert_eq!(status, "passed", "{first}");
    let (first_holder, first_work) = (holder(&first), line(&first, "work"));
    // The next executions, one at a time: one of them gets the first's sandbox (its close
    // and the next start may cross), and none sees what the first left.
    let check = format!(
        "{report}\nls -A /data\ntest -e {first_work} && echo saw-old-work || echo no-old-work\ncat /data/left 2>/dev/null || echo no-left"
    );
    let mut reused = false;
    for round in 0..5 {
        let (status, log) = server.run(&format!("looks-{round}"), &check);
        assert_eq!(status, "passed", "{log}");
        assert!(
            log.contains("no-old-work") && log.contains("no-left") && !log.contains("secret"),
            "round {round} saw the first execution's files: {log}"
        );
        assert!(!log.contains("sub"), "round {round}: {log}");
        assert_eq!(line(&log, "procs"), line(&first, "procs"), "{log}");
        reused |= holder(&log) == first_holder;
    }
    assert!(reused, "no execution got the first one's sandbox");
    // A process left behind: its sandbox serves no one, and ends with what it held.
    let marker = "left-behind-7c31";
    let (status, leaves) = server.run(
        "leaves-a-process",
        &format!(
            "{report}\nsetsid bash -c 'touch /data/up; sleep 300; : {marker}' > /dev/null 2>&1 &\nuntil [ -e /data/up ]; do sleep 0.01; done\necho started"
        ),
    );
    assert_eq!(status, "passed", "{leaves}");
    let left = all_gone(marker);
    assert!(
        left.is_empty(),
        "a process outlived its execution: {left:?}"
    );
    for round in 0..3 {
        let (status, log) = server.run(&format!("after-{round}"), report);
        assert_eq!(status, "passed", "{log}");
        assert_ne!(
            holder(&log),
            holder(&leaves),
            "round {round} got a sandbox that held a process: {log}"
        );
    }
}

/// A folder in `dir` with links to `tools` as found on our `PATH`, for a server's `PATH`
/// without the others; `dir` is made 0755, since steps inherit the server's `PATH` and the
/// step user must reach it.
fn bin_of(dir: &tempfile::TempDir, tools: &[&str]) -> std::path::PathBuf {
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in tools {
        let found = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no {tool} on PATH"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    bin
}

/// A server as root with the default step user whose `PATH` has only `tools` ([`bin_of`]): its
/// folder, data folder and the server; `None` (said) when the tests do not run as root.
fn root_server_with_only(
    tools: &[&str],
) -> Option<(tempfile::TempDir, std::path::PathBuf, Server)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root, so there is no user to drop from");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = bin_of(&dir, tools);
    let data = data_dir(&dir);
    // Work folders made outside the data folder go in this test's folder.
    let server = server_with(&data, None, &[("PATH", &bin), ("TMPDIR", dir.path())]);
    Some((dir, data, server))
}

/// As root, `nsenter` is not needed (steps enter the namespaces from a thread of the
/// server's): with `unshare` but no `nsenter` on the server's `PATH`, steps are still confined
/// (the data folder hidden, only their own processes in `/proc`, a private `/data`).
#[test]
fn security_as_root_namespaces_need_no_nsenter() {
    let Some((_dir, data, server)) =
        root_server_with_only(&["sh", "bash", "cat", "true", "unshare"])
    else {
        return;
    };
    let (status, log) = server.run(
        "confined",
        &format!(
            "cat {}/admin.token > /dev/null 2>&1 && echo read-token || echo no-token\np=(/proc/[0-9]*); echo procs ${{#p[@]}}\necho hi > /data/mine && echo wrote-data",
            data.display()
        ),
    );
    assert_eq!(status, "passed", "{log}");
    assert!(
        log.contains("no-token") && log.contains("wrote-data"),
        "{log}"
    );
    let procs: usize = log
        .lines()
        .find_map(|l| l.split("procs ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process count in {log}"));
    assert!(procs < 10, "a step sees more than its own processes: {log}");
}

/// As root without namespaces (no `unshare` or `nsenter` on the server's `PATH`, as in a
/// container without `CAP_SYS_ADMIN`): the step and a service's exec probe still run as the
/// step user, in a work folder that user can enter (the data folder is root's alone, so it is
/// elsewhere), which is gone once the run ends; the data folder stays out of reach.
#[test]
fn security_without_namespaces_steps_and_probes_run_as_the_step_user() {
    let Some((_dir, data, server)) = root_server_with_only(&["sh", "bash", "id", "cat", "sleep"])
    else {
        return;
    };
    let token = data.join("admin.token");
    let yaml = format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: bare\nspec:\n  services:\n    db:\n      shell: sleep 60\n      readinessProbe:\n        exec:\n          command: [sh, -c, 'id -u > probe-uid']\n        periodSeconds: 1\n  steps:\n  - name: probe\n    shell: |\n      echo uid $(id -u)\n      echo probe $(cat probe-uid)\n      echo cwd $(pwd)\n      cat {} > /dev/null 2>&1 && echo read-token || echo no-token\n      {PRINT_CREDENTIALS}\n",
        token.display()
    );
    let (status, log) = server.finish(server.start_yaml("bare", &yaml));
    assert_eq!(status, "passed", "{log}");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let text: Vec<&str> = log.lines().map(str::trim_end).collect();
    for line in [
        format!("uid {}", nobody.uid),
        format!("probe {}", nobody.uid),
        "no-token".to_string(),
    ]
    .into_iter()
    .chain(NO_CREDENTIALS.map(String::from))
    {
        assert!(text.contains(&line.as_str()), "no line {line:?} in {log}");
    }
    let cwd = text
        .iter()
        .find_map(|l| l.strip_prefix("cwd "))
        .unwrap_or_else(|| panic!("no cwd in {log}"));
    let cwd = Path::new(cwd);
    assert!(!cwd.starts_with(&data), "{}", cwd.display());
    assert!(!cwd.exists(), "{} outlived its run", cwd.display());
    every_thread_is_root(&server);
}

#[test]
fn an_unknown_step_user_is_a_clear_error() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf.yaml");
    std::fs::write(&wf, "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: u\nspec:\n  steps:\n  - shell: echo hi\n").unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("assay"))
        .arg("run")
        .arg(&wf)
        .env("ASSAY_DATA_DIR", dir.path().join("data"))
        .env("ASSAY_STEP_USER", "no-such-user-xyz")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ASSAY_STEP_USER=no-such-user-xyz names no user"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// kill -9 of the owner (issue 14 #8): nothing of the run survives it.

const LONG: &str = "bash -c 'sleep 300; : MARKER' &\nsetsid bash -c 'sleep 300; : MARKER' &\necho started\nsleep 300";

/// Waits until the marker's background processes run.
fn wait_for_marker(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while with_marker(&format!("sleep 300; : {marker}")).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the step's processes never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether every process with `marker` has ended (the kernel takes a moment to kill a PID
/// namespace's processes after its init ends).
fn all_gone(marker: &str) -> Vec<(i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = with_marker(marker);
        if left.is_empty() || Instant::now() > deadline {
            for (pid, _) in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn security_kill_9_of_assay_run_leaves_no_process() {
    let trials = 3;
    for trial in 0..trials {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!(
            "kill9-run-{trial}-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let wf = dir.path().join("wf.yaml");
        let script: String = LONG
            .replace("MARKER", &marker)
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect();
        std::fs::write(&wf, format!("apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: long\nspec:\n  steps:\n  - shell: |\n{script}")).unwrap();
        let mut run = Command::new(assert_cmd::cargo::cargo_bin("assay"))
            .arg("run")
            .arg(&wf)
            .env("ASSAY_DATA_DIR", dir.path().join("data"))
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_marker(&marker);
        run.kill().unwrap();
        run.wait().unwrap();
        let left = all_gone(&marker);
        assert!(
            left.is_empty(),
            "trial {trial}: after kill -9 of assay run these survived: {left:?}"
        );
    }
}

#[test]
fn security_kill_9_of_assay_server_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let mut server = server(&data, Some("current"));
    let marker = format!(
        "kill9-server-{}",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    server.start("long", &LONG.replace("MARKER", &marker));
    wait_for_marker(&marker);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let left = all_gone(&marker);
    assert!(
        left.is_empty(),
        "after kill -9 of assay server these survived: {left:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// kill -9 of `assay run` (issue 14 #9): what was shown was stored first.

#[test]
fn security_kill_9_of_assay_run_loses_no_shown_log_line() {
    let trials = 12;
    let mut lost = Vec::new();
    for trial in 0..trials {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let wf = dir.path().join("wf.yaml");
        std::fs::write(&wf, "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: chatty\nspec:\n  steps:\n  - name: count\n    shell: for i in $(seq 1 100000); do echo line-$i; sleep 0.002; done\n").unwrap();
        let mut run = Command::new(assert_cmd::cargo::cargo_bin("assay"))
            .arg("run")
            .arg(&wf)
            .env("ASSAY_DATA_DIR", &data)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the terminal output until some lines were shown (a different number each
        // trial), kill -9 at once, then take whatever else it printed before it died.
        let mut stderr = BufReader::new(run.stderr.take().unwrap());
        let stdout = run.stdout.take().unwrap();
        let want = 20 + trial * 7;
        let mut shown = String::new();
        loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "assay run ended: {shown}"
            );
            shown.push_str(&line);
            if line.contains(&format!("line-{want}")) {
                break;
            }
        }
        run.kill().unwrap();
        stderr.read_to_string(&mut shown).unwrap();
        drop(stdout);
        run.wait().unwrap();
        let last = shown
            .lines()
            .filter_map(|l| l.split_once("| line-").map(|(_, n)| n.trim().to_string()))
            .next_back()
            .unwrap();
        let stored = Command::new(assert_cmd::cargo::cargo_bin("assay"))
            .args(["logs", "chatty-1"])
            .env("ASSAY_DATA_DIR", &data)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stored = String::from_utf8_lossy(&stored.stdout);
        if !stored
            .lines()
            .any(|l| l.trim_end().ends_with(&format!("line-{last}")))
        {
            lost.push((trial, last));
        }
    }
    assert!(
        lost.is_empty(),
        "shown but not stored, in {} of {trials} trials (trial, last line): {lost:?}",
        lost.len()
    );
}

// ---------------------------------------------------------------------------------------------
// A full disk (issue 14 #15): no work folder is left behind, and reading still works.

/// A 4 MiB tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "assay-small-disk"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn security_a_full_disk_leaves_no_work_folder_and_get_still_works() {
    let Some(disk) = SmallDisk::mount() else {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    let data = disk.dir.path().join("data");
    let wf = tempfile::tempdir().unwrap();
    let file = wf.path().join("fill.yaml");
    std::fs::write(&file, "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: fill\nspec:\n  steps:\n  - name: fill\n    shell: |\n      head -c 10M /dev/zero > /data/big || true\n      for i in $(seq 1 200); do echo \"line $i after the disk is full\"; done\n").unwrap();
    let assay = |args: &[&str]| {
        Command::new(assert_cmd::cargo::cargo_bin("assay"))
            .args(args)
            .env("ASSAY_DATA_DIR", &data)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let run = assay(&["run", file.to_str().unwrap()]);
    let run_err = String::from_utf8_lossy(&run.stderr);
    assert_ne!(
        run.status.code(),
        Some(0),
        "the run cannot pass on a full disk: {run_err}"
    );
    let left: Vec<_> = std::fs::read_dir(data.join("work"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "work folders left behind: {left:?}\n{run_err}"
    );
    // Whether the run's own last writes failed depends on where SQLite's write-ahead log
    // stood, so an abandoned execution is made for certain: a run killed while its step runs.
    let sleeper = wf.path().join("sleeper.yaml");
    std::fs::write(&sleeper, "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: sleeper\nspec:\n  steps:\n  - name: sleep\n    shell: sleep 60\n").unwrap();
    let mut killed = Command::new(assert_cmd::cargo::cargo_bin("assay"))
        .args(["run", sleeper.to_str().unwrap()])
        .env("ASSAY_DATA_DIR", &data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list = assay(&["get", "executions"]);
        let list = String::from_utf8_lossy(&list.stdout).into_owned();
        if list
            .lines()
            .any(|l| l.contains("sleeper-1") && l.contains("running"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sleeper never ran: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    killed.kill().unwrap();
    killed.wait().unwrap();
    // A reader holding a snapshot keeps SQLite from starting its write-ahead log over, so that
    // marking the execution aborted must append to the log, which needs new space: without it,
    // the write could land in the log's old pages and succeed on a full disk.
    let mut reader = Command::new("python3")
        .args(["-c", "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1],isolation_level=None)\nc.execute('BEGIN')\nc.execute('SELECT count(*) FROM sqlite_master').fetchall()\nprint('reading',flush=True)\nsys.stdin.read()"])
        .arg(data.join("assay.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    BufReader::new(reader.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said.trim(), "reading");
    // Removing the work folder gave its space back: fill the disk again, to the last byte.
    let filler = disk.dir.path().join("filler");
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 10M /dev/zero > {} 2>/dev/null",
            filler.display()
        ))
        .status();
    // The killed run's execution was left running: marking it aborted is a write that fails
    // now, which must not stop the read.
    let get = assay(&["get", "executions"]);
    let get_err = String::from_utf8_lossy(&get.stderr);
    let listed = String::from_utf8_lossy(&get.stdout);
    assert_eq!(get.status.code(), Some(0), "{get_err}");
    assert!(
        listed.contains("fill-1") && listed.contains("sleeper-1"),
        "{listed}\n{get_err}"
    );
    drop(reader.stdin.take());
    reader.wait().unwrap();
    assert!(
        get_err.contains("warning: failed to mark abandoned executions aborted"),
        "{listed}\n{get_err}"
    );
}
