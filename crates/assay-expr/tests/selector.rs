//! `testSelector`'s patterns checked by a real JavaScript regex engine (Node.js, as Jest,
//! Vitest and Playwright use it): each selects exactly the chosen names, hostile ones included,
//! and none of their neighbours. Go's RE2 reads these escapes the same way (`regexp.QuoteMeta`
//! escapes the same characters); Go itself is not installed on the test machines. The nextest
//! filter is given to a real `cargo nextest list`.

use assay_expr::{Vars, parse};
use serde_json::{Value, json};

/// The words a shell would pass to the tool for `testSelector(tool, tests)`.
fn selector(tool: &str, tests: &Value) -> Vec<String> {
    let vars = Vars::new().with("tests", tests.clone());
    let out = parse(&format!("testSelector({tool:?}, tests)"))
        .unwrap()
        .evaluate(&[&vars])
        .unwrap();
    shlex::split(out.as_str().unwrap()).unwrap()
}

/// For each subject, whether `new RegExp(pattern)` matches it in Node.js; `None` without node.
fn node_matches(pattern: &str, subjects: &[String]) -> Option<Vec<bool>> {
    let script = "const [p, s] = JSON.parse(require('fs').readFileSync(0, 'utf8'));\
                  const re = new RegExp(p);\
                  console.log(JSON.stringify(s.map(x => re.test(x))));";
    let mut child = match std::process::Command::new("node")
        .args(["-e", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("node is not installed: the JavaScript regex check is skipped");
            return None;
        }
        Err(e) => panic!("node: {e}"),
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json!([pattern, subjects]).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node failed on {pattern:?}");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

const HOSTILE: &[&str] = &[
    "$(touch pwned)",
    "it's (1+1)",
    "a.*",
    "[x] | y",
    "back\\slash ^$",
    "{3} ?",
];

#[test]
fn jest_pattern_selects_exactly_the_chosen_full_names() {
    let chosen: Vec<String> = HOSTILE.iter().map(|h| format!("suite {h}")).collect();
    let mut others: Vec<String> = vec![
        "suite a.b".into(),
        "suite axx".into(),
        "suite it's (11)".into(),
        "suite x".into(),
        "prefix suite $(touch pwned)".into(),
        "suite $(touch pwned) suffix".into(),
    ];
    let tests: Vec<Value> = chosen.iter().map(|n| json!({"name": n})).collect();
    let words = selector("jest", &json!(tests));
    assert_eq!(words[0], "-t");
    let mut subjects = chosen.clone();
    subjects.append(&mut others);
    let Some(matched) = node_matches(&words[1], &subjects) else {
        return;
    };
    let expected: Vec<bool> = subjects.iter().map(|s| chosen.contains(s)).collect();
    assert_eq!(matched, expected, "{subjects:?} against {}", words[1]);
}

#[test]
fn playwright_pattern_matches_the_end_of_the_title_path() {
    // Playwright's JUnit names join describe blocks by ` › `; `--grep` sees the project, the
    // file and the titles joined by spaces.
    let tests = json!([{"name": "cart › adds (1+1) items"}, {"name": "it's"}]);
    let words = selector("playwright", &tests);
    assert_eq!(words[0], "--grep");
    let subjects: Vec<String> = [
        "chromium cart.spec.ts cart adds (1+1) items",
        "cart.spec.ts it's",
        "chromium cart.spec.ts cart adds 11 items",
        "chromium cart.spec.ts cart adds (1+1) items later",
        "chromium cart.spec.ts its",
        "chromium cart.spec.ts quit's",
    ]
    .map(String::from)
    .to_vec();
    let Some(matched) = node_matches(&words[1], &subjects) else {
        return;
    };
    assert_eq!(
        matched,
        [true, true, false, false, false, false],
        "{}",
        words[1]
    );
}

#[test]
fn go_pattern_selects_the_top_level_tests_only() {
    let tests = json!([{"name": "TestParse/empty"}, {"name": "TestA"}]);
    let words = selector("go", &tests);
    assert_eq!(words[0], "-run");
    let subjects: Vec<String> = ["TestParse", "TestA", "TestAB", "XTestA", "TestParser"]
        .map(String::from)
        .to_vec();
    let Some(matched) = node_matches(&words[1], &subjects) else {
        return;
    };
    assert_eq!(matched, [true, true, false, false, false], "{}", words[1]);
}

/// The nextest filter, given to a real `cargo nextest list` on a small crate: exactly the chosen
/// tests, not one whose name starts the same.
#[test]
fn nextest_filter_lists_exactly_the_chosen_tests() {
    let nextest = std::process::Command::new("cargo")
        .args(["nextest", "--version"])
        .output();
    if !nextest.is_ok_and(|o| o.status.success()) {
        eprintln!("cargo-nextest is not installed: the nextest filter check is skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("picked");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"picked\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        krate.join("src/lib.rs"),
        "#[cfg(test)]\nmod tests {\n    #[test]\n    fn open() {}\n    #[test]\n    fn open_all() {}\n    #[test]\n    fn close() {}\n}\n",
    )
    .unwrap();
    let words = selector(
        "nextest",
        &json!([{"name": "tests::open"}, {"name": "tests::close"}]),
    );
    assert_eq!(words[0], "-E");
    let out = std::process::Command::new("cargo")
        .args(["nextest", "list", "--offline"])
        .args(&words)
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    let mut tests: Vec<&str> = listed.lines().map(str::trim).collect();
    tests.sort();
    assert_eq!(
        tests,
        ["picked tests::close", "picked tests::open"],
        "{listed}"
    );
}

/// A workflow with two tools gives each only its own tests, filtered by the report's suite
/// (the README's example).
#[test]
fn selected_tests_filter_by_suite_per_tool() {
    let tests = json!([
        {"name": "test_a", "class": "tests.test_a", "suite": "pytest"},
        {"name": "cart adds", "suite": "cart"},
    ]);
    let vars = Vars::new().with("execution", json!({"selectedTests": tests}));
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let example =
        "testSelector(\"pytest\", filter(execution.selectedTests, \"_.value.suite == 'pytest'\"))";
    assert!(
        readme.contains(&format!("{{{{ {example} }}}}")),
        "the README shows it"
    );
    let out = parse(example).unwrap().evaluate(&[&vars]).unwrap();
    assert_eq!(out, json!("tests/test_a.py::test_a"));
}
