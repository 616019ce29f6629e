//! `assay init` (issue 18, the workflow assistant): real projects made here, the drafted
//! workflows validated by `assay validate` and, where the tool is on this machine, run green by
//! `assay run` with their JUnit cases recorded.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::run_support::assay;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn out(cmd: &mut Command) -> (i32, String, String) {
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The test venv's Python (with pytest), or `None` when the suite runs without Python.
fn test_python() -> Option<String> {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("ASSAY_TEST_SKIP_PYTHON").as_deref() == Ok("1") => None,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh, or set ASSAY_TEST_SKIP_PYTHON=1"
        ),
    }
}

/// The test cases `assay get tests EXEC -o json` lists: (name, status).
fn cases(data: &Path, exec: &str) -> Vec<(String, String)> {
    let (code, stdout, stderr) = out(assay()
        .env("ASSAY_DATA_DIR", data)
        .args(["get", "tests", exec, "-o", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let list = v.as_array().cloned().unwrap_or_else(|| {
        v["items"]
            .as_array()
            .or_else(|| v["tests"].as_array())
            .cloned()
            .unwrap_or_else(|| panic!("{stdout}"))
    });
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

const PYTEST_PROJECT: &[(&str, &str)] = &[
    ("pytest.ini", "[pytest]\n"),
    (
        "tests/test_calc.py",
        "def test_add():\n    assert 1 + 1 == 2\n\ndef test_sub():\n    assert 2 - 1 == 1\n",
    ),
    (
        "tests/test_text.py",
        "def test_upper():\n    assert 'a'.upper() == 'A'\n",
    ),
    (
        "tests/unit/test_more.py",
        "def test_more():\n    assert [1] * 2 == [1, 1]\n",
    ),
    ("src/calc.py", "def add(a, b):\n    return a + b\n"),
];

#[test]
fn init_drafts_a_pytest_workflow_that_runs_green_with_shards_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("myshop");
    write(&repo, PYTEST_PROJECT);
    let (code, stdout, stderr) = out(assay().arg("init").arg(&repo));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "data only on stdout: {stdout}");
    assert!(
        stderr.contains("found pytest: pytest.ini, 3 test files"),
        "{stderr}"
    );
    let file = repo.join("testworkflows.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(yaml.contains("name: myshop-pytest"), "{yaml}");
    assert!(
        yaml.contains("maxCount: 3"),
        "three files, three workers: {yaml}"
    );
    assert!(yaml.contains("--junitxml=/data/reports/"), "{yaml}");

    let (code, stdout, stderr) = out(assay().arg("validate").arg(&file));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("1 documents, 1 valid, 0 invalid"),
        "{stdout}"
    );

    let Some(python) = test_python() else { return };
    let data = dir.path().join("data");
    let (code, stdout, stderr) = out(assay()
        .env("ASSAY_DATA_DIR", &data)
        .arg("run")
        .arg(&file)
        .args(["--config", &format!("python={python}"), "-q", "-o", "json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let exec: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(exec["result"]["status"], "passed", "{stdout}");
    let name = exec["name"].as_str().unwrap();
    // Every test of the project, once, from the workers' JUnit reports.
    assert_eq!(
        cases(&data, name),
        [
            ("test_add".to_string(), "passed".to_string()),
            ("test_more".to_string(), "passed".to_string()),
            ("test_sub".to_string(), "passed".to_string()),
            ("test_upper".to_string(), "passed".to_string()),
        ]
    );
    let (code, stdout, stderr) = out(assay()
        .env("ASSAY_DATA_DIR", &data)
        .args(["artifacts", name]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.matches("junit-").count(),
        3,
        "one report per worker: {stdout}"
    );
}

#[test]
fn init_never_overwrites_without_force_and_stdout_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), PYTEST_PROJECT);
    let file = dir.path().join("testworkflows.yaml");
    std::fs::write(&file, "mine\n").unwrap();
    let (code, _, stderr) = out(assay().arg("init").arg(dir.path()));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(stderr.contains("hint: --force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine\n");

    let (code, stdout, stderr) = out(assay().arg("init").arg(dir.path()).arg("--stdout"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("# Drafted by `assay init` for pytest"),
        "{stdout}"
    );
    assert!(stdout.contains("kind: TestWorkflow"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine\n");

    let (code, _, stderr) = out(assay()
        .arg("init")
        .arg(dir.path())
        .args(["--force", "--shards", "1"]));
    assert_eq!(code, 0, "{stderr}");
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(!yaml.contains("parallel"), "--shards 1: {yaml}");
    assert!(
        yaml.contains("--junitxml=/data/reports/junit.xml"),
        "{yaml}"
    );
}

#[test]
fn init_in_a_folder_without_tests_says_what_it_looks_for() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("README.md", "# nothing here\n")]);
    let (code, stdout, stderr) = out(assay().arg("init").arg(dir.path()));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("error: found no test tool in"), "{stderr}");
    assert!(
        stderr.contains("hint: Assay knows pytest, node-test, jest"),
        "{stderr}"
    );
    assert!(!dir.path().join("testworkflows.yaml").exists());

    let (code, _, stderr) = out(assay().arg("init").arg(dir.path().join("README.md")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a folder"), "{stderr}");
    let (code, _, stderr) = out(assay()
        .arg("init")
        .arg(dir.path())
        .args(["--tool", "maven"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown tool `maven`"), "{stderr}");
}

/// A Node project on Node's own test runner: run green when `node` is here (split by
/// `--test-shard`, JUnit from its reporter), validated otherwise.
#[test]
fn init_drafts_a_node_test_workflow_that_runs_green() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("webapp");
    let test = |name: &str| {
        format!(
            "const test = require('node:test');\nconst assert = require('node:assert');\ntest('{name}', () => assert.strictEqual(1 + 1, 2));\n"
        )
    };
    write(
        &repo,
        &[
            (
                "package.json",
                r#"{"name": "webapp", "scripts": {"test": "node --test"}}"#,
            ),
            ("test/cart.test.js", &test("cart adds")),
            ("test/price.test.js", &test("price rounds")),
        ],
    );
    let (code, _, stderr) = out(assay().arg("init").arg(&repo).args(["--shards", "2"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("found node-test: package.json: scripts.test"),
        "{stderr}"
    );
    let file = repo.join("testworkflows.yaml");
    let (code, stdout, stderr) = out(assay().arg("validate").arg(&file));
    assert_eq!(code, 0, "{stdout}{stderr}");
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("node is not on this machine: validated only");
        return;
    }
    let data = dir.path().join("data");
    let (code, stdout, stderr) = out(assay()
        .env("ASSAY_DATA_DIR", &data)
        .arg("run")
        .arg(&file)
        .args(["-q", "-o", "json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let exec: Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<String> = cases(&data, exec["name"].as_str().unwrap())
        .into_iter()
        .map(|(n, s)| format!("{n} {s}"))
        .collect();
    assert_eq!(names, ["cart adds passed", "price rounds passed"]);
}

/// Every other tool, from one repository that has them all: each workflow validates, uses the
/// built-in template where one exists, and `--tool` picks some.
#[test]
fn init_drafts_valid_workflows_for_every_tool() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("monorepo");
    write(
        &repo,
        &[
            (
                "package.json",
                r#"{"devDependencies": {"@playwright/test": "1.56.1", "vitest": "3", "jest": "29", "cypress": "14"}}"#,
            ),
            ("package-lock.json", "{}"),
            ("playwright.config.ts", "export default {};\n"),
            ("go.mod", "module example.com/shop\n"),
            ("cart/cart_test.go", "package cart\n"),
            ("api/api_test.go", "package api\n"),
            ("Cargo.toml", "[package]\nname = \"shop\"\n"),
            (
                "load/checkout.js",
                "import http from 'k6/http';\nexport default function () {}\n",
            ),
            ("api/shop.postman_collection.json", "{}"),
            ("perf/checkout.jmx", "<jmeterTestPlan/>"),
        ],
    );
    let (code, stdout, stderr) = out(assay().arg("init").arg(&repo).arg("--stdout"));
    assert_eq!(code, 0, "{stderr}");
    for tool in [
        "jest",
        "vitest",
        "go",
        "nextest",
        "playwright",
        "cypress",
        "k6",
        "postman",
        "jmeter",
    ] {
        assert!(
            stdout.contains(&format!("name: monorepo-{tool}\n")),
            "{tool}: {stdout}"
        );
    }
    for template in [
        "official/cypress/v1",
        "official/k6/v1",
        "official/postman/v1",
        "official/jmeter/v2",
    ] {
        assert!(
            stdout.contains(&format!("name: {template}")),
            "{template}: {stdout}"
        );
    }
    assert!(
        stdout.contains("--shard={{ index + 1 }}/{{ count }}"),
        "{stdout}"
    );
    assert!(stdout.contains("packages: ['./api', './cart']"), "{stdout}");
    assert!(
        stderr.contains("note: jest writes JUnit through the jest-junit package"),
        "{stderr}"
    );
    let file = dir.path().join("all.yaml");
    std::fs::write(&file, &stdout).unwrap();
    let (code, out_v, err_v) = out(assay().arg("validate").arg(&file));
    assert_eq!(code, 0, "{out_v}{err_v}\n{stdout}");
    assert!(out_v.contains("9 documents, 9 valid, 0 invalid"), "{out_v}");

    let (code, stdout, stderr) = out(assay()
        .arg("init")
        .arg(&repo)
        .args(["--stdout", "--tool", "k6", "--tool", "newman"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches("kind: TestWorkflow").count(), 2, "{stdout}");
}

/// The README's `assay init` example, line by line as written, in a pytest project with a
/// `.venv` (the test venv, linked).
#[test]
fn readme_init_example_runs_as_written() {
    let Some(python) = test_python() else { return };
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("```sh\ncd myshop ")
        .expect("the README's assay init example");
    let body = &readme[start + "```sh\n".len()..];
    let block = &body[..body.find("```").unwrap()];

    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("myshop");
    write(&repo, PYTEST_PROJECT);
    let venv = Path::new(&python).parent().unwrap().parent().unwrap();
    std::os::unix::fs::symlink(venv, repo.join(".venv")).unwrap();

    let bin = Path::new(env!("CARGO_BIN_EXE_assay")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script: Vec<&str> = block
        .lines()
        .map(|l| l.split("  #").next().unwrap().trim_end())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(script.len(), 5, "{block}");
    let mut bash = Command::new("bash");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ASSAY_") && key != "ASSAY_STEP_USER" {
            bash.env_remove(&key);
        }
    }
    let (code, stdout, stderr) = out(bash
        .current_dir(dir.path())
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env("ASSAY_DATA_DIR", dir.path().join("data"))
        .arg("-e")
        .arg("-c")
        .arg(script.join("\n")));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("found pytest: pytest.ini, 3 test files"),
        "{stderr}"
    );
    assert!(stderr.contains("wrote "), "{stderr}");
    assert!(
        stdout.contains("1 documents, 1 valid, 0 invalid"),
        "{stdout}"
    );
    assert!(stderr.contains("myshop-pytest-1 passed"), "{stderr}");
    // The last line printed a draft without workers and left the file as it was.
    let draft = &stdout[stdout.find("# Drafted by").expect("the printed draft")..];
    assert!(!draft.contains("parallel:"), "{draft}");
    let file = std::fs::read_to_string(repo.join("testworkflows.yaml")).unwrap();
    assert!(file.contains("maxCount: 3"), "{file}");
    assert!(
        file.contains(&format!("default: '{}/.venv/bin/python'", repo.display())),
        "the repository's .venv: {file}"
    );
    let data = dir.path().join("data");
    assert_eq!(cases(&data, "myshop-pytest-1").len(), 4);
}

/// `assay ask` over real runs: a drafted pytest workflow with a failing test, asked about in
/// the README's words (each line of its example, as written).
#[test]
fn ask_answers_in_plain_words_from_real_runs() {
    let Some(python) = test_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("shop");
    write(&repo, PYTEST_PROJECT);
    write(
        &repo,
        &[(
            "tests/test_bad.py",
            "def test_refund():\n    assert 1 == 2, 'refund rounding'\n",
        )],
    );
    let data = dir.path().join("data");
    let (code, _, stderr) = out(assay().arg("init").arg(&repo).args(["--shards", "1"]));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = out(assay()
        .env("ASSAY_DATA_DIR", &data)
        .arg("run")
        .arg(repo.join("testworkflows.yaml"))
        .args(["--config", &format!("python={python}"), "-q"]));
    assert_eq!(code, 1, "{stderr}");

    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("```sh\nassay ask ")
        .expect("the README's assay ask example");
    let body = &readme[start + "```sh\n".len()..];
    let lines: Vec<&str> = body[..body.find("```").unwrap()]
        .lines()
        .map(|l| l.split("  #").next().unwrap().trim_end())
        .collect();
    let ask = |line: &str| {
        let words = shlex_split(line);
        assert_eq!(words[..2], ["assay", "ask"], "{line}");
        out(assay().env("ASSAY_DATA_DIR", &data).args(&words[1..]))
    };
    // 1: the failing test, found by status, tool and time.
    let (code, stdout, stderr) = ask(lines[0]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("query: tests · status failed · tool pytest · today"),
        "{stderr}"
    );
    assert!(
        stdout.contains("tests.test_bad::test_refund") && stdout.contains("refund rounding"),
        "{stdout}"
    );
    assert!(!stdout.contains("test_add"), "{stdout}");
    // 2: JSON, the run by its status and time range.
    let (code, stdout, stderr) = ask(lines[1]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["total"], 1, "{stdout}");
    assert_eq!(v["executions"][0]["workflow"], "shop-pytest", "{stdout}");
    assert_eq!(v["query"]["statuses"][0], "failed");
    // 3: a label the workflow does not have: nothing.
    let (code, stdout, stderr) = ask(lines[2]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.is_empty() && stderr.contains("nothing matches"),
        "{stdout}{stderr}"
    );
    assert!(stderr.contains("label team=payments"), "{stderr}");
    // 4: an unknown word is reported, never ignored.
    let (code, stdout, stderr) = ask(lines[3]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("error: unknown word in the question: `bananas`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the words assay ask knows"),
        "{stderr}"
    );
}

fn shlex_split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
