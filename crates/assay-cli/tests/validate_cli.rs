//! `assay validate` run as the real binary: output format, summary line, exit codes.

use std::path::Path;

use assert_cmd::Command;

const HEAD: &str =
    "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: w\n";

fn assay() -> Command {
    let mut cmd = Command::cargo_bin("assay").expect("assay binary");
    cmd.env("NO_COLOR", "1");
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
    path.to_string_lossy().into_owned()
}

/// Run `assay validate ARGS` in `dir`; (exit code, stdout, stderr).
fn validate(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = assay()
        .current_dir(dir)
        .arg("validate")
        .args(args)
        .output()
        .expect("run assay");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

#[test]
fn valid_file_exits_zero_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ok.yaml",
        &format!("{HEAD}spec:\n  steps:\n  - shell: echo hi\n"),
    );
    let (code, stdout, _) = validate(dir.path(), &["ok.yaml"]);
    assert_eq!(stdout, "1 documents, 1 valid, 0 invalid\n");
    assert_eq!(code, 0);
}

#[test]
fn typo_is_reported_at_its_line_and_column_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad.yaml",
        &format!("{HEAD}spec:\n  steps:\n  - name: a\n    shel: echo hi\n"),
    );
    let (code, stdout, _) = validate(dir.path(), &["bad.yaml"]);
    assert_eq!(
        stdout,
        "bad.yaml:8:5: unknown field `shel`\n  hint: did you mean `shell`?\n1 documents, 0 valid, 1 invalid\n"
    );
    assert_eq!(code, 2);
}

#[test]
fn folders_are_walked_in_order_and_other_kinds_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!("{HEAD}spec:\n  steps:\n  - shell: 'true'\n");
    write(dir.path(), "flows/b.yml", &good);
    write(
        dir.path(),
        "flows/a.yaml",
        &format!("{good}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n"),
    );
    write(
        dir.path(),
        "flows/nested/c.yaml",
        &format!("{HEAD}spec:\n  steps:\n  - timeout: 5min\n"),
    );
    write(dir.path(), "flows/readme.txt", "not yaml: [");
    let (code, stdout, _) = validate(dir.path(), &["flows"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "flows/nested/c.yaml:7:14: unknown unit \"min\" in duration \"5min\" (use ns, us, ms, s, m or h)",
            "  hint: durations look like `30s`, `5m`, `1h30m` or `500ms`",
            "3 documents, 2 valid, 1 invalid",
        ]
    );
    assert_eq!(code, 2);
}

#[test]
fn several_files_report_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "one.yaml",
        &format!("{HEAD}spec:\n  stepz: []\n"),
    );
    write(
        dir.path(),
        "two.yaml",
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: Bad_Name\n",
    );
    let (code, stdout, _) = validate(dir.path(), &["two.yaml", "one.yaml"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines[0].starts_with("two.yaml:4:9: `Bad_Name` is not a valid Kubernetes name"),
        "{stdout}"
    );
    assert_eq!(lines[1], "  hint: use `bad-name`");
    assert_eq!(lines[2], "one.yaml:6:3: unknown field `stepz`");
    assert_eq!(lines[3], "  hint: did you mean `steps`?");
    assert_eq!(lines[4], "2 documents, 0 valid, 2 invalid");
    assert_eq!(code, 2);
}

#[test]
fn templates_come_from_other_files_and_the_templates_flag() {
    let dir = tempfile::tempdir().unwrap();
    let template = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata:\n  name: official--hello--v1\nspec:\n  steps:\n  - shell: echo hello\n";
    write(dir.path(), "lib/hello.yaml", template);
    write(
        dir.path(),
        "wf.yaml",
        &format!("{HEAD}spec:\n  use:\n  - name: official/hello/v1\n  steps:\n  - shell: 'true'\n"),
    );
    // Without the template: an error naming it, at the reference.
    let (code, stdout, _) = validate(dir.path(), &["wf.yaml"]);
    assert!(
        stdout.starts_with("wf.yaml:7:11: template `official/hello/v1` not found"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("1 documents, 0 valid, 1 invalid\n"),
        "{stdout}"
    );
    assert_eq!(code, 2);
    // With --templates: found through Testkube's name mapping; the library is not counted.
    let (code, stdout, _) = validate(dir.path(), &["wf.yaml", "--templates", "lib"]);
    assert_eq!(stdout, "1 documents, 1 valid, 0 invalid\n");
    assert_eq!(code, 0);
    // As another file given: found, and counted.
    let (code, stdout, _) = validate(dir.path(), &["wf.yaml", "lib/hello.yaml"]);
    assert_eq!(stdout, "2 documents, 2 valid, 0 invalid\n");
    assert_eq!(code, 0);
}

#[test]
fn duplicate_key_is_a_warning_and_still_valid() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "dup.yaml",
        &format!(
            "{HEAD}spec:\n  container:\n    image: a\n  container:\n    image: b\n  steps:\n  - shell: 'true'\n"
        ),
    );
    let (code, stdout, _) = validate(dir.path(), &["dup.yaml"]);
    assert_eq!(
        stdout,
        "dup.yaml:8:3: warning: duplicate key `container`; the last one wins (as Kubernetes does)\n1 documents, 1 valid, 0 invalid\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn helm_template_and_garbage_are_one_error_each() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "helm.yaml",
        "{{- if .Values.on }}\napiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\n{{- end }}\n",
    );
    std::fs::write(dir.path().join("binary.yaml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    write(dir.path(), "empty.yaml", "");
    let (code, stdout, _) = validate(dir.path(), &["binary.yaml", "empty.yaml", "helm.yaml"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines[0].starts_with("binary.yaml:1:1: not valid UTF-8"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("helm.yaml:1:3: not valid YAML: "),
        "{stdout}"
    );
    assert_eq!(
        lines[3],
        "  hint: is this a Helm template? render it with `helm template` first"
    );
    assert_eq!(lines[4], "2 documents, 0 valid, 2 invalid");
    assert_eq!(code, 2);
}

#[test]
fn missing_path_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = validate(dir.path(), &["nope.yaml"]);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("failed to read `nope.yaml`: no such file or directory"),
        "{stderr}"
    );
    assert_eq!(code, 2);
    let (code, _, stderr) = validate(dir.path(), &[]);
    assert!(stderr.contains("PATH"), "{stderr}");
    assert_eq!(code, 2);
}

#[test]
fn the_shipped_examples_are_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let (code, stdout, _) = validate(&examples, &["."]);
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or_default()
            .ends_with(" 0 invalid"),
        "{stdout}"
    );
    assert_eq!(code, 0, "{stdout}");
}

/// Issue 13 #11: problems of every phase — the YAML's shape, the checks of its values, the
/// compiler (templates), and names the expressions use — come in one pass, each at its line.
#[test]
fn every_phase_reports_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "multi.yaml",
        &format!(
            "{HEAD}spec:\n  container:\n    imagee: python:3\n  steps:\n  - name: Build\n    shell: echo {{{{ lenn(config.x) }}}}\n    timeout: 5 minutes\n  - name: Test\n    shell: echo {{{{ step.biuld.outputs.x }}}}\n    use:\n    - name: missing/template\n  - id: Bad-Id\n    shell: 'true'\n"
        ),
    );
    let (code, stdout, _) = validate(dir.path(), &["multi.yaml"]);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("  hint"))
        .collect();
    assert_eq!(
        lines,
        vec![
            "multi.yaml:7:5: unknown field `imagee`",
            "multi.yaml:10:12: unknown function `lenn`",
            "multi.yaml:11:14: unknown unit \" minutes\" in duration \"5 minutes\" (use ns, us, ms, s, m or h)",
            "multi.yaml:13:12: `step.biuld.outputs.x` refers to step id `biuld`, which no step has",
            "multi.yaml:15:13: template `missing/template` not found",
            "multi.yaml:16:9: step id `Bad-Id` must start with a lowercase letter or digit and hold only lowercase letters, digits and `_`",
            "1 documents, 0 valid, 1 invalid",
        ],
        "{stdout}"
    );
    assert!(stdout.contains("hint: did you mean `len`?"), "{stdout}");
    assert!(
        stdout.contains("hint: did you mean `step.build`?"),
        "{stdout}"
    );
    assert_eq!(code, 2);
}

#[test]
fn known_step_ids_and_runtime_functions_are_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ok.yaml",
        &format!(
            "{HEAD}spec:\n  steps:\n  - name: Build\n    shell: echo {{{{ step.results }}}}\n  - shell: echo {{{{ step.build.outputs.x }}}} {{{{ join(glob('*.py'), ' ') }}}} {{{{ len(map(list(1), 'string(_.value)')) }}}}\n    condition: step.build.passed\n"
        ),
    );
    let (code, stdout, _) = validate(dir.path(), &["ok.yaml"]);
    assert_eq!(stdout, "1 documents, 1 valid, 0 invalid\n");
    assert_eq!(code, 0);
}
