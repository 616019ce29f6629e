//! Built-in templates (issue 13): Testkube's `official/*` and `distribute/evenly` resolve
//! without `--templates`, a given or stored template of the same name wins, and
//! `assay get templates --builtin` lists them.

use crate::run_support;

use std::path::{Path, PathBuf};

use run_support::{assay, files_under};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/testkube")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// (exit code, stdout, stderr) of `assay ARGS` in `dir`.
fn assay_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = assay()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run assay");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const WF: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: load\nspec:\n  use:\n  - name: official/k6/v1\n    config:\n      run: echo k6-from-$((40 + 2))\n";

const MINE: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata:\n  name: official--k6--v1\nspec:\n  config:\n    run:\n      type: string\n      default: x\n  steps:\n  - name: mine\n    shell: echo mine-{{ config.run }}\n";

#[test]
fn conformance_workflows_using_official_and_distribute_templates_validate_without_templates_flag() {
    let corpus = corpus_dir();
    let mut checked = 0;
    for path in files_under(&corpus.join("test")) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.contains("name: official/") && !text.contains("name: distribute/") {
            continue;
        }
        let (code, stdout, stderr) = assay_in(&corpus, &["validate", &path.display().to_string()]);
        assert!(
            !stdout.contains("not found"),
            "{}:\n{stdout}",
            path.display()
        );
        assert_eq!(code, 0, "{}:\n{stdout}{stderr}", path.display());
        checked += 1;
    }
    // k6, jmeter, cypress, playwright, gradle, maven, postman, artillery, locust, soapui,
    // the k6-perf and showcase examples.
    assert!(
        checked >= 12,
        "only {checked} files use official/ templates"
    );

    // And one compiles to a plan with the built-in's steps.
    let k6 = corpus.join("test/k6/crd-workflow/smoke.yaml");
    let (code, stdout, stderr) = assay_in(
        &corpus,
        &[
            "plan",
            &k6.display().to_string(),
            "--name",
            "k6-workflow-smoke",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("k6 run"), "{stdout}");
}

#[test]
fn a_builtin_template_runs_on_the_host_with_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let wf = write(dir.path(), "wf.yaml", WF);
    let (code, stdout, stderr) = assay_in(
        dir.path(),
        &[
            "run",
            &wf.display().to_string(),
            "--data-dir",
            &data.path().display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("k6-from-42"), "{stdout}{stderr}");
}

#[test]
fn a_given_template_of_the_same_name_wins_over_the_builtin() {
    let dir = tempfile::tempdir().unwrap();
    let wf = write(dir.path(), "wf.yaml", WF);
    let mine = write(dir.path(), "mine.yaml", MINE);
    let (wf, mine) = (wf.display().to_string(), mine.display().to_string());
    let (code, stdout, stderr) = assay_in(
        dir.path(),
        &["plan", &wf, "--templates", &mine, "-o", "json"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("echo mine-echo k6-from"), "{stdout}");
    assert!(!stdout.contains("summary-export"), "{stdout}");
    // Without it, the built-in.
    let (code, stdout, _) = assay_in(dir.path(), &["plan", &wf, "-o", "json"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("echo mine"), "{stdout}");
}

#[test]
fn a_stored_template_of_the_same_name_wins_over_the_builtin() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data = data.path().display().to_string();
    let wf = write(dir.path(), "wf.yaml", WF).display().to_string();
    let mine = write(dir.path(), "mine.yaml", MINE).display().to_string();
    let (code, stdout, stderr) = assay_in(dir.path(), &["apply", "-f", &mine, "--data-dir", &data]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = assay_in(dir.path(), &["run", &wf, "--data-dir", &data]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("mine-echo k6-from-42"), "{stdout}{stderr}");
}

#[test]
fn get_templates_builtin_lists_every_builtin_as_the_readme_shows() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let example = readme
        .split("\n$ assay get templates --builtin\n")
        .nth(1)
        .expect("the README's example");
    let shown: Vec<&str> = example.lines().take_while(|l| *l != "...").collect();
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = assay_in(dir.path(), &["get", "templates", "--builtin"]);
    assert_eq!(code, 0, "{stderr}");
    // The lines the README shows are the output's first lines, as written.
    assert!(shown.len() >= 3, "{shown:?}");
    assert_eq!(stdout.lines().take(shown.len()).collect::<Vec<_>>(), shown);
    assert!(stdout.starts_with("NAME"), "{stdout}");
    for name in assay_spec::builtin::SOURCES
        .iter()
        .map(|s| s.name.replace("--", "/"))
    {
        assert!(
            stdout.contains(&format!("\n{name} ")),
            "{name} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("official/k6/v1"), "{stdout}");

    let (code, stdout, _) = assay_in(dir.path(), &["get", "templates", "--builtin", "-o", "json"]);
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows.len(), 19);
    assert!(rows.iter().any(
        |r| r["name"] == "distribute/evenly" && !r["description"].as_str().unwrap().is_empty()
    ));
}

#[test]
fn every_builtin_template_validates_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    for s in assay_spec::builtin::SOURCES {
        let path = write(dir.path(), &format!("{}.yaml", s.name), s.yaml);
        let (code, stdout, stderr) =
            assay_in(dir.path(), &["validate", &path.display().to_string()]);
        assert_eq!(code, 0, "{}: {stdout}{stderr}", s.name);
        assert!(
            stdout.ends_with("1 documents, 1 valid, 0 invalid\n"),
            "{}: {stdout}",
            s.name
        );
    }
}
