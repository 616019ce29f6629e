//! One TestWorkflow per detected tool, written as YAML text with comments (so a person can read
//! and edit it), using the built-in `official/*` templates where one exists, writing JUnit
//! reports to `/data/reports` (kept as artifacts, so their test cases are recorded), and
//! sharding over parallel workers where the tool can split its tests.
//!
//! The project is addressed by the `repo` config value, which defaults to the folder the draft
//! was made from: `assay run` runs the tests in place. On a server or in CI, `content.git`
//! fetches the repository instead (Testkube's `/data/repo`).

use std::fmt::Write;

use assay_spec::diagnostic::Diagnostic;
use assay_spec::load::Kind;
use assay_spec::model::Document;
use assay_spec::{CompileRequest, Strictness, TemplateSet};
use serde::Serialize;

use crate::detect::{Detected, Project, Tool};

/// The most parallel workers a draft asks for.
pub const DEFAULT_SHARDS: u32 = 4;

/// What to draft.
#[derive(Debug, Clone)]
pub struct DraftOptions {
    /// Parallel workers for tools that can split their tests (1: no sharding).
    pub shards: u32,
    /// Only these tools (empty: every tool found).
    pub tools: Vec<Tool>,
}

impl Default for DraftOptions {
    fn default() -> Self {
        DraftOptions {
            shards: DEFAULT_SHARDS,
            tools: Vec::new(),
        }
    }
}

/// One drafted workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Draft {
    pub name: String,
    pub tool: Tool,
    /// One YAML document (no `---`).
    pub yaml: String,
    /// What the user should know (a reporter that is missing, a step to adapt).
    pub notes: Vec<String>,
}

/// A draft per detected tool (in [`Tool::ALL`] order), each checked by [`check`] in the tests.
pub fn draft(project: &Project, options: &DraftOptions) -> Vec<Draft> {
    project
        .tools
        .iter()
        .filter(|d| options.tools.is_empty() || options.tools.contains(&d.tool))
        .map(|d| draft_one(project, d, options.shards.max(1)))
        .collect()
}

/// Several drafts as one multi-document YAML file.
pub fn render(drafts: &[Draft]) -> String {
    drafts
        .iter()
        .map(|d| d.yaml.as_str())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The errors `assay validate` would report for `yaml` (structure, semantics, and a compile
/// against the built-in templates); warnings left out.
pub fn check(yaml: &str) -> Vec<Diagnostic> {
    const FILE: &str = "workflow.yaml";
    let mut loaded = assay_spec::validate::check_bytes(FILE, yaml.as_bytes());
    let mut templates = TemplateSet::new();
    for doc in &loaded.documents {
        if let Document::TestWorkflowTemplate(t) = &doc.document {
            templates.insert(t.clone());
        }
    }
    let mut extra = Vec::new();
    for doc in &loaded.documents {
        let Document::TestWorkflow(w) = &doc.document else {
            continue;
        };
        if doc.kind != Kind::TestWorkflow {
            continue;
        }
        let mut req = CompileRequest::new(w, &templates);
        req.strictness = Strictness::Lenient;
        if let Err(errors) = assay_spec::compile(&req) {
            for e in errors {
                let (line, column) = doc.locations.locate(&e.path).unwrap_or((doc.line, 1));
                extra.push(
                    Diagnostic::error(FILE, line, column, e.message)
                        .with_hint_opt(e.hint)
                        .in_document(doc.index)
                        .at_path(e.path),
                );
            }
        }
    }
    loaded.diagnostics.extend(extra);
    loaded
        .diagnostics
        .into_iter()
        .filter(|d| d.is_error())
        .collect()
}

/// A YAML scalar for any text: single-quoted when that needs no escapes (easier to read with
/// the double quotes of expressions inside), else a JSON string, which is a valid YAML
/// double-quoted scalar.
fn q(text: &str) -> String {
    if !text.contains('\'')
        && text
            .chars()
            .all(|c| c == ' ' || (!c.is_control() && !c.is_whitespace()))
    {
        format!("'{text}'")
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
    }
}

const REPORTS: &str = "/data/reports";
/// The report file of worker `index` (one file per worker: they are kept side by side).
const WORKER_REPORT: &str = "junit-{{ index + 1 }}.xml";

struct Writer {
    out: String,
    notes: Vec<String>,
}

impl Writer {
    fn line(&mut self, indent: usize, text: &str) {
        let _ = writeln!(self.out, "{:indent$}{text}", "");
    }

    /// `artifacts:` keeping the JUnit reports (their cases are recorded with the execution).
    fn report_artifacts(&mut self, indent: usize, patterns: &[&str]) {
        self.line(indent, "artifacts:");
        self.line(indent + 2, &format!("workingDir: {REPORTS}"));
        let list: Vec<String> = patterns.iter().map(|p| q(p)).collect();
        self.line(indent + 2, &format!("paths: [{}]", list.join(", ")));
    }

    /// The workers' own working directory (each worker is a workflow of its own).
    fn worker_dir(&mut self, indent: usize) {
        self.line(indent, "container:");
        self.line(indent + 2, "workingDir: \"{{ config.repo }}\"");
    }
}

fn draft_one(project: &Project, found: &Detected, shards: u32) -> Draft {
    let tool = found.tool;
    let name = workflow_name(&project.name, tool);
    let mut w = Writer {
        out: String::new(),
        notes: Vec::new(),
    };
    let evidence = found.evidence.join(", ");
    w.line(
        0,
        &format!("# Drafted by `assay init` for {tool}, found by: {evidence}."),
    );
    w.line(
        0,
        "# Run it with `assay run FILE --name NAME`; on a server or in CI, fetch the repository",
    );
    w.line(
        0,
        "# with `content.git` (workingDir /data/repo) instead of the `repo` folder.",
    );
    w.line(0, "apiVersion: testworkflows.testkube.io/v1");
    w.line(0, "kind: TestWorkflow");
    w.line(0, "metadata:");
    w.line(2, &format!("name: {name}"));
    w.line(2, "labels:");
    w.line(4, &format!("tool: {tool}"));
    w.line(4, "assay.io/drafted-by: init");
    w.line(
        0,
        &format!("description: {}", q(&description(project, found))),
    );
    w.line(0, "spec:");
    w.line(2, "config:");
    w.line(4, "repo:");
    w.line(6, "type: string");
    w.line(
        6,
        "description: the folder the tests run in (the repository's root)",
    );
    w.line(
        6,
        &format!("default: {}", q(&project.root.to_string_lossy())),
    );
    if tool == Tool::Pytest {
        let python = project
            .python
            .as_ref()
            .map(|p| project.root.join(p).to_string_lossy().into_owned())
            .unwrap_or_else(|| "python3".to_string());
        w.line(4, "python:");
        w.line(6, "type: string");
        w.line(6, "description: the Python interpreter that has pytest");
        w.line(6, &format!("default: {}", q(&python)));
    }
    if tool == Tool::Nextest {
        // nextest writes JUnit only when a profile says so: a tool config file adds one
        // without touching the repository's own `.config/nextest.toml`.
        w.line(2, "content:");
        w.line(4, "files:");
        w.line(4, "- path: /data/nextest-assay.toml");
        w.line(6, "content: |");
        w.line(8, "[profile.assay]");
        w.line(8, "fail-fast = false");
        w.line(8, "[profile.assay.junit]");
        w.line(8, "path = \"junit.xml\"");
    }
    w.line(2, "container:");
    w.line(4, "workingDir: \"{{ config.repo }}\"");
    w.line(2, "steps:");
    let workers = |units: usize| -> u32 { shards.min(units.max(1) as u32) };
    match tool {
        Tool::Pytest => {
            let n = workers(found.files.len());
            let run = "\"{{ config.python }}\" -m pytest -p no:cacheprovider";
            if n > 1 {
                w.line(2, "- name: pytest");
                w.line(4, "parallel:");
                w.line(6, &format!("maxCount: {n}"));
                w.line(6, "shards:");
                w.line(
                    8,
                    &format!("files: {}", q(&glob_call(&pytest_patterns(&found.files)))),
                );
                w.worker_dir(6);
                w.line(
                    6,
                    &format!(
                        "shell: {}",
                        q(&format!(
                            "{run} --junitxml={REPORTS}/{WORKER_REPORT} {{{{ join(shard.files, \" \") }}}}"
                        ))
                    ),
                );
                w.report_artifacts(6, &["*.xml"]);
            } else {
                w.line(2, "- name: pytest");
                w.line(
                    4,
                    &format!(
                        "shell: {}",
                        q(&format!("{run} --junitxml={REPORTS}/junit.xml"))
                    ),
                );
                w.report_artifacts(4, &["*.xml"]);
            }
        }
        Tool::NodeTest => {
            install_step(&mut w, project);
            let n = workers(found.files.len());
            let reporters = |file: &str| {
                format!(
                    "mkdir -p {REPORTS} && node --test --test-reporter=spec --test-reporter-destination=stdout --test-reporter=junit --test-reporter-destination={REPORTS}/{file}"
                )
            };
            w.line(2, "- name: node --test");
            if n > 1 {
                w.line(4, "parallel:");
                w.line(6, &format!("count: {n}"));
                w.worker_dir(6);
                let cmd = format!(
                    "{} --test-shard={{{{ index + 1 }}}}/{{{{ count }}}}",
                    reporters(WORKER_REPORT)
                );
                w.line(6, &format!("shell: {}", q(&cmd)));
                w.report_artifacts(6, &["*.xml"]);
            } else {
                w.line(4, &format!("shell: {}", q(&reporters("junit.xml"))));
                w.report_artifacts(4, &["*.xml"]);
            }
        }
        Tool::Jest => {
            install_step(&mut w, project);
            let junit = project.node_deps.contains("jest-junit");
            if !junit {
                w.notes.push(
                    "jest writes JUnit through the jest-junit package, which package.json does not list: `npm install --save-dev jest-junit` and add `--reporters=default --reporters=jest-junit` to record test cases".to_string(),
                );
            }
            let mut cmd = String::new();
            if junit {
                let _ = write!(
                    cmd,
                    "JEST_JUNIT_OUTPUT_DIR={REPORTS} JEST_JUNIT_OUTPUT_NAME={WORKER_REPORT} "
                );
            }
            cmd.push_str("npx jest --ci --shard={{ index + 1 }}/{{ count }}");
            if junit {
                cmd.push_str(" --reporters=default --reporters=jest-junit");
            }
            sharded_node_step(&mut w, "jest", shards, &cmd);
        }
        Tool::Vitest => {
            install_step(&mut w, project);
            let cmd = format!(
                "npx vitest run --shard={{{{ index + 1 }}}}/{{{{ count }}}} --reporter=default --reporter=junit --outputFile.junit={REPORTS}/{WORKER_REPORT}"
            );
            sharded_node_step(&mut w, "vitest", shards, &cmd);
        }
        Tool::Playwright => {
            // official/playwright/v1's steps (install, then `playwright test`), with the
            // tests split by Playwright's own `--shard`.
            install_step(&mut w, project);
            let cmd = format!(
                "PLAYWRIGHT_JUNIT_OUTPUT_NAME={REPORTS}/{WORKER_REPORT} npx playwright test --shard={{{{ index + 1 }}}}/{{{{ count }}}} --reporter=line,junit"
            );
            sharded_node_step(&mut w, "playwright test", shards, &cmd);
        }
        Tool::Cypress => {
            w.line(2, "- name: cypress");
            w.line(4, "template:");
            w.line(6, "name: official/cypress/v1");
            w.line(6, "config:");
            let install = project
                .node_install
                .clone()
                .unwrap_or_else(|| "npm install".to_string());
            w.line(8, &format!("dependencies_command: {}", q(&install)));
            w.line(
                8,
                &format!(
                    "run: {}",
                    q(&format!(
                        "npx cypress run --reporter junit --reporter-options mochaFile={REPORTS}/junit-[hash].xml"
                    ))
                ),
            );
            w.report_artifacts(4, &["*.xml"]);
            w.notes.push(
                "Cypress splits tests over machines only through Cypress Cloud: no shards"
                    .to_string(),
            );
        }
        Tool::Go => {
            let n = workers(found.files.len());
            let gotest = |pkgs: &str, report: &str| {
                format!(
                    "mkdir -p {REPORTS} && if command -v gotestsum >/dev/null; then gotestsum --junitfile {REPORTS}/{report} -- {pkgs}; else go test -v {pkgs}; fi"
                )
            };
            w.line(2, "- name: go test");
            if n > 1 {
                w.line(4, "parallel:");
                w.line(6, &format!("maxCount: {n}"));
                w.line(6, "shards:");
                let list: Vec<String> = found.files.iter().map(|p| q(p)).collect();
                w.line(8, &format!("packages: [{}]", list.join(", ")));
                w.worker_dir(6);
                let cmd = gotest("{{ join(shard.packages, \" \") }}", WORKER_REPORT);
                w.line(6, &format!("shell: {}", q(&cmd)));
                w.report_artifacts(6, &["*.xml"]);
            } else {
                w.line(4, &format!("shell: {}", q(&gotest("./...", "junit.xml"))));
                w.report_artifacts(4, &["*.xml"]);
            }
            w.notes.push(
                "go test writes JUnit through gotestsum (go install gotest.tools/gotestsum@latest); without it the tests run and only the step's verdict is recorded".to_string(),
            );
        }
        Tool::Nextest => {
            w.line(2, "- name: cargo nextest");
            let cmd = format!(
                "status=0; cargo nextest run --workspace --tool-config-file assay:/data/nextest-assay.toml --profile assay || status=$?; mkdir -p {REPORTS}; cp target/nextest/assay/junit.xml {REPORTS}/ || true; exit $status"
            );
            w.line(4, &format!("shell: {}", q(&cmd)));
            w.report_artifacts(4, &["*.xml"]);
        }
        Tool::K6 => {
            for script in &found.files {
                let label = file_stem(script);
                w.line(2, &format!("- name: {}", q(&format!("k6 {script}"))));
                w.line(4, "template:");
                w.line(6, "name: official/k6/v1");
                w.line(6, "config:");
                let cmd = format!(
                    "mkdir -p /data/artifacts && k6 run {} --summary-export /data/artifacts/{label}-summary.json",
                    shell_word(script)
                );
                w.line(8, &format!("run: {}", q(&cmd)));
            }
        }
        Tool::Postman => {
            for collection in &found.files {
                let label = file_stem(collection);
                w.line(
                    2,
                    &format!("- name: {}", q(&format!("newman {collection}"))),
                );
                w.line(4, "template:");
                w.line(6, "name: official/postman/v1");
                w.line(6, "config:");
                let cmd = format!(
                    "newman run {} -r cli,junit --reporter-junit-export {REPORTS}/{label}.xml",
                    shell_word(collection)
                );
                w.line(8, &format!("run: {}", q(&cmd)));
                w.report_artifacts(4, &[&format!("{label}.xml")]);
            }
        }
        Tool::Jmeter => {
            for plan in &found.files {
                let label = file_stem(plan);
                w.line(2, &format!("- name: {}", q(&format!("jmeter {plan}"))));
                w.line(4, "template:");
                w.line(6, "name: official/jmeter/v2");
                w.line(6, "config:");
                let cmd = format!(
                    "mkdir -p {REPORTS} && jmeter -n -t {} -l {REPORTS}/{label}.jtl",
                    shell_word(plan)
                );
                w.line(8, &format!("run: {}", q(&cmd)));
                w.report_artifacts(4, &[&format!("{label}.jtl")]);
            }
            w.notes.push(
                "JMeter writes no JUnit: the results (.jtl) are kept as artifacts".to_string(),
            );
        }
    }
    Draft {
        name,
        tool,
        yaml: w.out,
        notes: w.notes,
    }
}

/// `myshop-pytest`: the project's name and the tool's, within Kubernetes' 63 characters.
fn workflow_name(project: &str, tool: Tool) -> String {
    let tool = tool.as_str();
    let mut p = project.to_string();
    p.truncate(62 - tool.len());
    format!("{}-{tool}", p.trim_end_matches('-'))
}

fn description(project: &Project, found: &Detected) -> String {
    let what = match found.tool {
        Tool::Pytest => "pytest tests",
        Tool::NodeTest => "Node.js test runner tests",
        Tool::Jest => "Jest tests",
        Tool::Vitest => "Vitest tests",
        Tool::Go => "Go tests",
        Tool::Nextest => "Rust tests with cargo nextest",
        Tool::Playwright => "Playwright tests",
        Tool::Cypress => "Cypress tests",
        Tool::K6 => "k6 load tests",
        Tool::Postman => "Postman collections with Newman",
        Tool::Jmeter => "JMeter test plans",
    };
    format!("{what} of {}", project.name)
}

fn install_step(w: &mut Writer, project: &Project) {
    if let Some(install) = &project.node_install {
        w.line(2, "- name: install dependencies");
        w.line(4, &format!("shell: {}", q(install)));
    }
}

/// A step whose tool splits its tests itself (`--shard=i/n`) over `shards` workers.
fn sharded_node_step(w: &mut Writer, name: &str, shards: u32, cmd: &str) {
    w.line(2, &format!("- name: {}", q(name)));
    w.line(4, "parallel:");
    w.line(6, &format!("count: {shards}"));
    w.worker_dir(6);
    w.line(
        6,
        &format!("shell: {}", q(&format!("mkdir -p {REPORTS} && {cmd}"))),
    );
    w.report_artifacts(6, &["*.xml"]);
}

/// Glob patterns for pytest's test files, by the folders they are in (`tests/**/test_*.py`).
fn pytest_patterns(files: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in files {
        let dir = match f.split_once('/') {
            Some((top, _)) => format!("{top}/**/"),
            None => String::new(),
        };
        let name = f.rsplit('/').next().unwrap_or(f);
        let pattern = if name.starts_with("test_") {
            format!("{dir}test_*.py")
        } else {
            format!("{dir}*_test.py")
        };
        // A file at the top means every folder (`test_*.py` at the top only would miss them).
        let pattern = if dir.is_empty() {
            format!("**/{pattern}")
        } else {
            pattern
        };
        if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    out.sort();
    out
}

/// `glob("a", "b")` as an expression.
fn glob_call(patterns: &[String]) -> String {
    // Double-quoted expression strings, so the YAML scalar around them can be single-quoted.
    let args: Vec<String> = patterns
        .iter()
        .map(|p| serde_json::to_string(p).unwrap_or_default())
        .collect();
    format!("glob({})", args.join(", "))
}

fn file_stem(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.split('.').next().unwrap_or(name);
    crate::detect::sanitize_name(stem)
}

/// A path as one shell word.
fn shell_word(path: &str) -> String {
    if path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        path.to_string()
    } else {
        format!("'{}'", path.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::detect;

    #[test]
    fn every_tool_drafts_a_valid_workflow() {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [
            ("pytest.ini", "[pytest]\n"),
            ("tests/test_a.py", ""),
            ("tests/unit/test_b.py", ""),
            ("test_top.py", ""),
            (
                "package.json",
                r#"{"devDependencies": {"@playwright/test": "1", "vitest": "2", "jest": "29", "jest-junit": "16", "cypress": "13"}, "scripts": {"test": "node --test"}}"#,
            ),
            ("test/a.test.js", ""),
            ("test/b.test.js", ""),
            ("go.mod", "module x\n"),
            ("cart/cart_test.go", ""),
            ("api/api_test.go", ""),
            ("Cargo.toml", "[package]\n"),
            ("load/smoke.k6.js", ""),
            ("postman/my api.postman_collection.json", "{}"),
            ("perf/plan.jmx", "<jmeterTestPlan/>"),
        ] {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let project = detect(dir.path()).unwrap();
        let drafts = draft(&project, &DraftOptions::default());
        assert_eq!(drafts.len(), Tool::ALL.len());
        for d in &drafts {
            let errors = check(&d.yaml);
            assert!(errors.is_empty(), "{}:\n{}\n{errors:?}", d.name, d.yaml);
            assert!(d.yaml.contains(&format!("tool: {}", d.tool)));
        }
        let all = render(&drafts);
        assert!(check(&all).is_empty());
        let py = &drafts[0];
        assert!(py.yaml.contains("maxCount: 3"), "{}", py.yaml);
        assert!(
            py.yaml
                .contains(r#"files: 'glob("**/test_*.py", "tests/**/test_*.py")'"#),
            "{}",
            py.yaml
        );
        let one = draft(
            &project,
            &DraftOptions {
                shards: 1,
                tools: vec![Tool::Pytest],
            },
        );
        assert_eq!(one.len(), 1);
        assert!(!one[0].yaml.contains("parallel"));
        assert!(check(&one[0].yaml).is_empty());
    }

    #[test]
    fn check_reports_what_validate_reports() {
        let errors = check(
            "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: x\nspec:\n  steps:\n  - shel: echo\n",
        );
        assert!(!errors.is_empty());
        let errors = check(
            "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: x\nspec:\n  steps:\n  - template:\n      name: official/nope/v1\n",
        );
        assert!(
            !errors.is_empty(),
            "a missing template is found by the compile"
        );
    }
}
