//! `assay rerun --failed` and `assay run --repeat-new N` (issue 18) on a real pytest project:
//! the README's blocks as written, the recorded test cases of each run as the proof of what
//! ran, hostile test names, and the refusals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The Python of the test venv (`scripts/test.sh` makes it, with pytest from PyPI).
fn test_python() -> Option<PathBuf> {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var("ASSAY_TEST_SKIP_PYTHON").as_deref() == Ok("1") => None,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh (it makes the venv with pytest), or set ASSAY_TEST_SKIP_PYTHON=1"
        ),
    }
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap()
}

/// The README's section, from its heading to the next one.
fn section() -> String {
    let readme = readme();
    let start = readme
        .find("### Rerun only what failed, and new-test flake checks")
        .expect("the README has the section");
    let rest = &readme[start + 4..];
    rest[..rest.find("\n### ").unwrap()].to_string()
}

/// The fenced blocks of `lang` in `text`, in order.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    text.split(&fence)
        .skip(1)
        .map(|b| b[..b.find("```").unwrap()].to_string())
        .collect()
}

/// A command line of a README block and the exit code its comment promises.
fn command(line: &str) -> (String, i32) {
    let (cmd, comment) = line
        .split_once("  # ")
        .expect("a comment with the exit code");
    let code = comment
        .trim()
        .strip_prefix("exit ")
        .and_then(|c| c.parse().ok())
        .expect("`# exit N`");
    (cmd.trim().to_string(), code)
}

/// Runs `line` with `sh` in `dir`, as a user would: `assay` and the venv's `python3` on PATH.
fn sh(dir: &Path, data: &Path, python: &Path, line: &str) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_assay")).parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        python.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .env("PATH", path)
        .env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn assay(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assay"));
    c.env("ASSAY_DATA_DIR", data).env("NO_COLOR", "1");
    c
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The recorded test cases of an execution: `(key, status)` in report order.
fn cases(data: &Path, execution: &str) -> Vec<(String, String)> {
    let out = assay(data)
        .args(["get", "tests", execution, "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = v
        .as_array()
        .or_else(|| v["items"].as_array())
        .unwrap_or_else(|| panic!("a list of cases: {v:#}"));
    items
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

const CALC_V1: &str = r#"import pytest


def add(a, b):
    return a + b


def test_adds():
    assert add(2, 2) == 4


def test_adds_negatives():
    assert add(-1, -1) == -2


@pytest.mark.parametrize("a,b,total", [(1, 1, 2), (2, 3, 6)], ids=["small", "off-by-one"])
def test_sums(a, b, total):
    assert add(a, b) == total


class TestDiv:
    def test_exact(self):
        assert 6 / 3 == 2

    def test_rounds(self):
        assert 7 // 2 == 4, "floor division rounds down"
"#;

const TEXT: &str = r#"def test_upper():
    assert "a".upper() == "A"


def test_strip():
    assert " a ".strip() == "a"
"#;

/// The README's blocks, as written, on a real pytest project in a git repository: 2 of 8
/// tests fail, `rerun --failed` runs exactly those 2 (by the recorded cases); after a commit
/// that fixes them and adds a test that fails on its second run, `--repeat-new 3` runs only the
/// new test 3 more times and reports it flaky.
#[test]
fn readme_rerun_failed_and_repeat_new_on_a_real_pytest_project() {
    let Some(python) = test_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let repo = dir.path().join("project");
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("tests/test_calc.py"), CALC_V1).unwrap();
    std::fs::write(repo.join("tests/test_text.py"), TEXT).unwrap();
    let section = section();
    let yaml = &blocks(&section, "yaml")[0];
    assert!(yaml.contains("name: pytest-rerun"), "{yaml}");
    std::fs::write(repo.join("pytest-rerun.yaml"), yaml).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "calc"]);

    let sh_blocks = blocks(&section, "sh");
    assert_eq!(sh_blocks.len(), 2, "{section}");
    let first: Vec<&str> = sh_blocks[0].lines().collect();
    assert_eq!(first.len(), 2, "{first:?}");

    // The first run: 8 cases, 2 failed.
    let (cmd, code) = command(first[0]);
    let out = sh(&repo, &data, &python, &cmd);
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    let run1 = cases(&data, "pytest-rerun-1");
    assert_eq!(run1.len(), 8, "{run1:?}");
    let failed: Vec<&str> = run1
        .iter()
        .filter(|(_, s)| s == "failed")
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "tests.test_calc::test_sums[off-by-one]",
            "tests.test_calc.TestDiv::test_rounds"
        ],
        "{run1:?}"
    );

    // Only those 2 again: the recorded cases of the rerun are exactly them.
    let (cmd, code) = command(first[1]);
    let out = sh(&repo, &data, &python, &cmd);
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rerunning the 2 failed tests of pytest-rerun-1: tests.test_calc::test_sums[off-by-one], tests.test_calc.TestDiv::test_rounds"),
        "{err}"
    );
    let run2 = cases(&data, "pytest-rerun-2");
    let keys: Vec<&str> = run2.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, failed, "{run2:?}");
    // The rerun kept the commit tag: the same commit, so the same history.
    let exec = assay(&data)
        .args(["get", "execution", "pytest-rerun-2", "-o", "json"])
        .output()
        .unwrap();
    let exec: Value = serde_json::from_slice(&exec.stdout).unwrap();
    assert_eq!(
        exec["tags"]["commit"].as_str().map(str::len),
        Some(40),
        "{exec:#}"
    );

    // A fix and a new test that fails on its second run only (a counter outside /data).
    let counter = dir.path().join("runs");
    std::fs::write(
        repo.join("tests/test_calc.py"),
        CALC_V1
            .replace("(2, 3, 6)", "(2, 3, 5)")
            .replace("7 // 2 == 4", "7 // 2 == 3"),
    )
    .unwrap();
    std::fs::write(
        repo.join("tests/test_cache.py"),
        format!(
            "import pathlib\n\nCOUNTER = pathlib.Path({:?})\n\n\ndef test_cache_warms():\n    \
             n = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1\n    \
             COUNTER.write_text(str(n))\n    assert n != 2, \"the cache was cold\"\n",
            counter.display().to_string()
        ),
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "fix rounding, cache"]);

    let second: Vec<&str> = sh_blocks[1].lines().collect();
    assert_eq!(second.len(), 1, "{second:?}");
    let (cmd, code) = command(second[0]);
    let out = sh(&repo, &data, &python, &cmd);
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("repeat-new: 1 new test on this commit, running 3 more times: tests.test_cache::test_cache_warms"),
        "{err}"
    );
    assert!(
        err.contains("flaky    tests.test_cache::test_cache_warms  failed 1 of 4: pytest-rerun-3 passed, pytest-rerun-4 failed, pytest-rerun-5 passed, pytest-rerun-6 passed"),
        "{err}"
    );
    assert!(err.contains("error: 1 new test is flaky"), "{err}");
    // The run itself passed with all 9 tests; each repetition ran the new test only.
    let run3 = cases(&data, "pytest-rerun-3");
    assert_eq!(run3.len(), 9, "{run3:?}");
    assert!(run3.iter().all(|(_, s)| s == "passed"), "{run3:?}");
    for (name, status) in [
        ("pytest-rerun-4", "failed"),
        ("pytest-rerun-5", "passed"),
        ("pytest-rerun-6", "passed"),
    ] {
        assert_eq!(
            cases(&data, name),
            [(
                "tests.test_cache::test_cache_warms".to_string(),
                status.to_string()
            )],
            "{name}"
        );
    }
    let rep = assay(&data)
        .args(["get", "execution", "pytest-rerun-5", "-o", "json"])
        .output()
        .unwrap();
    let rep: Value = serde_json::from_slice(&rep.stdout).unwrap();
    assert_eq!(rep["tags"]["repeat-of"], "pytest-rerun-3", "{rep:#}");
    assert_eq!(rep["tags"]["repeat"], "2/3", "{rep:#}");
    // The flaky rule sees the repetitions (the same commit): the new test is flaky.
    let flaky = assay(&data)
        .args(["get", "flaky", "--workflow", "pytest-rerun", "-o", "json"])
        .output()
        .unwrap();
    let flaky_text = String::from_utf8_lossy(&flaky.stdout);
    assert!(
        flaky_text.contains("tests.test_cache::test_cache_warms"),
        "{}",
        text(&flaky)
    );
}

/// Test names are written by the code under test. A rerun hands hostile names to the shell
/// through `testSelector`: each reaches pytest as one node id, the tests run, and nothing in
/// the names is executed.
#[test]
fn security_hostile_test_names_reach_pytest_as_arguments_only() {
    let Some(python) = test_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let repo = dir.path().join("project");
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    let hostile = [
        "$(touch pwned)",
        "it's",
        "`touch pwned`",
        "x;touch pwned",
        "a\" b",
    ];
    std::fs::write(
        repo.join("tests/test_names.py"),
        format!(
            "import pytest\n\n\n@pytest.mark.parametrize(\"n\", range({}), ids={})\ndef test_named(n):\n    assert False, n\n\n\ndef test_fine():\n    pass\n",
            hostile.len(),
            serde_json::to_string(&hostile).unwrap()
        ),
    )
    .unwrap();
    let yaml = blocks(&section(), "yaml")[0].clone();
    let wf = dir.path().join("wf.yaml");
    std::fs::write(
        &wf,
        format!(
            "{yaml}  - name: Nothing ran\n    condition: always\n    shell: test ! -e pwned && test ! -e /data/pwned && test ! -e \"{{{{ config.repo }}}}/pwned\" && echo \"clean $((40+2))\"\n"
        ),
    )
    .unwrap();
    let out = assay(&data)
        .arg("run")
        .arg(&wf)
        .arg("--config")
        .arg(format!("repo={}", repo.display()))
        .arg("--config")
        .arg(format!("python={}", python.display()))
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(cases(&data, "pytest-rerun-1").len(), hostile.len() + 1);

    let out = assay(&data)
        .args(["rerun", "pytest-rerun-1", "--failed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rerun = cases(&data, "pytest-rerun-2");
    let expected: Vec<(String, String)> = hostile
        .iter()
        .map(|h| {
            (
                format!("tests.test_names::test_named[{h}]"),
                "failed".to_string(),
            )
        })
        .collect();
    assert_eq!(rerun, expected);
    // The check step ran after the tests and found no file the names asked for.
    let logs = assay(&data)
        .args(["logs", "pytest-rerun-2"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("clean 42"),
        "{}",
        text(&logs)
    );
    assert!(!repo.join("pwned").exists() && !dir.path().join("pwned").exists());
}

/// A workflow that does not use the selection would run every test again: refused with a
/// hint, nothing recorded. So are an execution without failed tests and one without reports.
#[test]
fn rerun_failed_refuses_what_would_rerun_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = dir.path().join("wf.yaml");
    let report = |selector: &str| {
        format!(
            "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: fixed\nspec:\n  steps:\n  - shell: |\n      echo {selector}\n      mkdir -p r\n      printf '%s' '<testsuite name=\"pytest\"><testcase classname=\"tests.test_a\" name=\"test_x\"><failure message=\"no\"/></testcase><testcase classname=\"tests.test_a\" name=\"test_y\"/></testsuite>' > r/junit.xml\n      exit 1\n    artifacts:\n      paths: [\"r/*.xml\"]\n"
        )
    };
    std::fs::write(&wf, report("all")).unwrap();
    let out = assay(&data).arg("run").arg(&wf).arg("-q").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = assay(&data)
        .args(["rerun", "fixed-1", "--failed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("workflow `fixed` does not use `execution.selectedTests`, so `--failed` would run every test instead of the selected ones"),
        "{err}"
    );
    assert!(
        err.contains("testSelector(\"pytest\", execution.selectedTests)"),
        "{err}"
    );
    let list = assay(&data)
        .args(["get", "executions", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("fixed-2"),
        "nothing was run"
    );
    // `--repeat-new` refuses the same workflow before it runs anything.
    let out = assay(&data)
        .arg("run")
        .arg(&wf)
        .args(["--repeat-new", "2", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--repeat-new` would run every test"));

    // With the selector (a rerun of a file's workflow uses the definition it recorded), the
    // rerun works and selects the failed test's node id.
    std::fs::write(
        &wf,
        report("{{ testSelector(\"pytest\", execution.selectedTests) }}"),
    )
    .unwrap();
    let out = assay(&data).arg("run").arg(&wf).arg("-q").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = assay(&data)
        .args(["rerun", "fixed-2", "--failed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let logs = assay(&data).args(["logs", "fixed-3"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("tests/test_a.py::test_x"),
        "{}",
        text(&logs)
    );

    // No failed case, no report: nothing to select.
    let passing = dir.path().join("pass.yaml");
    std::fs::write(
        &passing,
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: plain\nspec:\n  steps:\n  - shell: 'true'\n",
    )
    .unwrap();
    let out = assay(&data)
        .arg("run")
        .arg(&passing)
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = assay(&data)
        .args(["rerun", "plain-1", "--failed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("execution plain-1 recorded no test cases"),
        "{}",
        text(&out)
    );
}

/// A failed case `testSelector` cannot select exactly (pytest without a module) refuses the
/// rerun with exit 2 before anything runs, rather than running more tests.
#[test]
fn rerun_failed_refuses_a_test_the_selector_cannot_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = dir.path().join("wf.yaml");
    std::fs::write(
        &wf,
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: nameless\nspec:\n  steps:\n  - shell: |\n      echo {{ testSelector(\"pytest\", execution.selectedTests) }}\n      mkdir -p r\n      printf '%s' '<testsuite name=\"pytest\"><testcase name=\"test_x\"><failure message=\"no\"/></testcase></testsuite>' > r/junit.xml\n      exit 1\n    artifacts:\n      paths: [\"r/*.xml\"]\n",
    )
    .unwrap();
    let out = assay(&data).arg("run").arg(&wf).arg("-q").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = assay(&data)
        .args(["rerun", "nameless-1", "--failed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("workflow `nameless` does not compile with the selected tests")
            && err.contains("neither a file nor a module"),
        "{err}"
    );
    let list = assay(&data)
        .args(["get", "executions", "-o", "json"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains("nameless-2"));
}
