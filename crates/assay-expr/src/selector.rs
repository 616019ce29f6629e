//! `testSelector(tool, tests)`: the arguments that make a test tool run only `tests` (an
//! Assay extension). `tests` is `execution.selectedTests` (the failed tests of an earlier
//! execution for `assay rerun --failed`, the new tests of a `--repeat-new` repetition), whose
//! names come from JUnit files a step wrote: they are attacker-controlled. So the result is
//! shell words, each quoted, and names inside a pattern are regex-escaped; a name that cannot
//! be selected safely is an error, never a broader selection. An empty list gives `""`: the
//! tool runs everything, as on a normal run.

use serde_json::Value;

/// The tools `testSelector` knows, as its first argument takes them.
pub const TOOLS: &[&str] = &["pytest", "go", "jest", "vitest", "playwright", "nextest"];

/// Why `testSelector` refused: never a broader selection instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The tests argument (described) is not a list.
    #[error("`testSelector` expects a list of tests (`execution.selectedTests`), not {0}")]
    NotAList(String),
    /// An object in the list has no `name`.
    #[error(
        "`testSelector`: a test without a `name` (expected objects of `execution.selectedTests`)"
    )]
    NoName,
    /// An item (described) is neither an object nor a string.
    #[error("`testSelector`: a test is an object or a name, not {0}")]
    NotATest(String),
    /// The tool is not one of [`TOOLS`].
    #[error("`testSelector` does not know the tool `{0}` (known: {known})", known = TOOLS.join(", "))]
    UnknownTool(String),
    /// A word the shell cannot quote (a NUL byte).
    #[error("`testSelector` cannot quote {word:?}: {reason}")]
    Unquotable {
        /// The word.
        word: String,
        /// shlex's reason.
        reason: String,
    },
    /// A name nextest's filter language could be escaped from.
    #[error("`testSelector`: {0:?} is not a Rust test path (letters, digits, `_` and `::`)")]
    NotARustPath(String),
    /// A pytest case whose report names neither its file nor its module.
    #[error(
        "`testSelector`: cannot make a pytest node id for {0:?}: its report gives neither a file nor a module (`classname`)"
    )]
    NoPytestModule(String),
}

impl From<SelectorError> for crate::ExprError {
    fn from(e: SelectorError) -> Self {
        crate::ExprError::eval(e.to_string())
    }
}

/// One selected test as the JUnit report named it.
#[derive(Debug, Default, PartialEq)]
struct Test {
    name: String,
    class: Option<String>,
    file: Option<String>,
}

fn tests_of(v: &Value) -> Result<Vec<Test>, SelectorError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(SelectorError::NotAList(crate::value::describe(other)));
        }
    };
    let text = |o: &serde_json::Map<String, Value>, k: &str| match o.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(name) => Ok(Test {
                name: name.clone(),
                ..Test::default()
            }),
            Value::Object(o) => Ok(Test {
                name: text(o, "name").ok_or(SelectorError::NoName)?,
                class: text(o, "class"),
                file: text(o, "file"),
            }),
            other => Err(SelectorError::NotATest(crate::value::describe(other))),
        })
        .collect()
}

/// The shell words selecting `tests` for `tool`, joined by spaces (`""` for no tests).
pub fn render(tool: &str, tests: &Value) -> Result<String, SelectorError> {
    let tests = tests_of(tests)?;
    if !TOOLS.contains(&tool) {
        return Err(SelectorError::UnknownTool(tool.to_string()));
    }
    if tests.is_empty() {
        return Ok(String::new());
    }
    let words: Vec<String> = match tool {
        "pytest" => {
            let mut ids = Vec::new();
            for t in &tests {
                push_unique(&mut ids, pytest_node_id(t)?);
            }
            ids
        }
        "go" => {
            // `-run` splits its pattern at unbracketed `/` into one pattern per subtest
            // level: select the top-level tests (their subtests run again with them).
            let mut names = Vec::new();
            for t in &tests {
                let top = t.name.split('/').next().unwrap_or_default();
                push_unique(&mut names, regex_escape(top));
            }
            vec!["-run".into(), format!("^({})$", names.join("|"))]
        }
        // Jest matches `-t` against the full name (describe blocks and title, joined by
        // spaces), which is what jest-junit writes as the case name by default.
        "jest" => vec!["-t".into(), alternatives(&tests, " ", "^")],
        // Vitest's JUnit names join the describe blocks by ` > `, its `-t` matches them
        // joined by spaces; Playwright's join by ` › `, and `--grep` matches the title path
        // (project, file, describe blocks, title) joined by spaces: match the end of it.
        "vitest" => vec!["-t".into(), alternatives(&tests, " > ", r"(?:^|\s)")],
        "playwright" => vec!["--grep".into(), alternatives(&tests, " › ", r"(?:^|\s)")],
        "nextest" => {
            let mut filters = Vec::new();
            for t in &tests {
                push_unique(&mut filters, format!("test(={})", nextest_name(&t.name)?));
            }
            vec!["-E".into(), filters.join(" | ")]
        }
        _ => unreachable!("checked against TOOLS above"),
    };
    words
        .iter()
        .map(|w| {
            shlex::try_quote(w)
                .map(|q| q.into_owned())
                .map_err(|e| SelectorError::Unquotable {
                    word: w.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|w| w.join(" "))
}

fn push_unique(out: &mut Vec<String>, item: String) {
    if !out.contains(&item) {
        out.push(item);
    }
}

/// `^(?:a|b)$`-like: each name regex-escaped, its suite separator made a space.
fn alternatives(tests: &[Test], separator: &str, start: &str) -> String {
    let mut names = Vec::new();
    for t in tests {
        push_unique(&mut names, regex_escape(&t.name.replace(separator, " ")));
    }
    format!("{start}(?:{})$", names.join("|"))
}

/// Escapes what RE2 (Go's `regexp.QuoteMeta`) and JavaScript regular expressions treat as
/// special, so the name matches itself only.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Rust test path (`module::test_name`) as nextest names it. Only path characters are
/// accepted, so nothing can end the `test(=…)` matcher early or start another one.
fn nextest_name(name: &str) -> Result<&str, SelectorError> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        Ok(name)
    } else {
        Err(SelectorError::NotARustPath(name.to_string()))
    }
}

/// A pytest node id (`tests/test_a.py::TestX::test_y[param]`) from a JUnit case. pytest
/// writes `classname` as the dotted module path, then the classes; with `junit_family=xunit1`
/// it also writes `file`. Without `file`, the trailing segments that start with a capital
/// letter are classes (pytest's default `python_classes = Test*`), the rest is the module.
fn pytest_node_id(t: &Test) -> Result<String, SelectorError> {
    let class = t.class.as_deref().unwrap_or_default();
    let segments: Vec<&str> = if class.is_empty() {
        Vec::new()
    } else {
        class.split('.').collect()
    };
    let (file, classes): (String, Vec<&str>) = match &t.file {
        Some(file) => {
            let module = file.trim_end_matches(".py").replace(['/', '\\'], ".");
            let classes = class
                .strip_prefix(module.as_str())
                .map(|rest| rest.split('.').filter(|s| !s.is_empty()).collect())
                .unwrap_or_else(|| trailing_classes(&segments));
            (file.clone(), classes)
        }
        None => {
            let classes = trailing_classes(&segments);
            let module = &segments[..segments.len() - classes.len()];
            if module.is_empty() {
                return Err(SelectorError::NoPytestModule(t.name.clone()));
            }
            (format!("{}.py", module.join("/")), classes)
        }
    };
    let mut id = file;
    for c in classes {
        id.push_str("::");
        id.push_str(c);
    }
    id.push_str("::");
    id.push_str(&t.name);
    // A node id is a positional argument: one that starts with `-` would be read as an
    // option (`-p MODULE` loads a plugin), so it is made a relative path.
    if id.starts_with('-') {
        id.insert_str(0, "./");
    }
    Ok(id)
}

fn trailing_classes<'a>(segments: &[&'a str]) -> Vec<&'a str> {
    let n = segments
        .iter()
        .rev()
        .take_while(|s| s.chars().next().is_some_and(char::is_uppercase))
        .count();
    segments[segments.len() - n..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(tool: &str, tests: Value) -> String {
        render(tool, &tests).unwrap()
    }

    /// What a POSIX shell would pass to the tool.
    fn words(rendered: &str) -> Vec<String> {
        shlex::split(rendered).unwrap()
    }

    #[test]
    fn empty_or_null_selects_nothing_so_everything_runs() {
        for tool in TOOLS {
            assert_eq!(sel(tool, json!([])), "");
            assert_eq!(sel(tool, Value::Null), "");
        }
    }

    #[test]
    fn pytest_node_ids_from_classname_and_file() {
        let out = sel(
            "pytest",
            json!([
                {"class": "tests.test_math", "name": "test_add"},
                {"class": "tests.test_math.TestDiv", "name": "test_zero[a-b]"},
                {"class": "pkg.test_x.TestA", "name": "test_b", "file": "pkg/test_x.py"},
                {"class": "tests.test_math", "name": "test_add"},
            ]),
        );
        assert_eq!(
            words(&out),
            [
                "tests/test_math.py::test_add",
                "tests/test_math.py::TestDiv::test_zero[a-b]",
                "pkg/test_x.py::TestA::test_b",
            ]
        );
    }

    #[test]
    fn pytest_without_module_is_an_error_not_everything() {
        let e = render("pytest", &json!([{"name": "test_a"}])).unwrap_err();
        assert_eq!(e, SelectorError::NoPytestModule("test_a".into()));
        assert!(e.to_string().contains("neither a file nor a module"), "{e}");
    }

    #[test]
    fn go_selects_top_level_tests_anchored_and_escaped() {
        let out = sel(
            "go",
            json!([{"name": "TestParse/empty_input"}, {"name": "TestParse/nil"}, {"name": "TestA.b"}]),
        );
        assert_eq!(words(&out), ["-run", r"^(TestParse|TestA\.b)$"]);
    }

    #[test]
    fn js_tools_match_full_names() {
        let tests = json!([{"name": "math adds (1+1)"}, {"name": "math > divides"}]);
        assert_eq!(
            words(&sel("jest", tests.clone())),
            ["-t", r"^(?:math adds \(1\+1\)|math > divides)$"]
        );
        assert_eq!(
            words(&sel("vitest", tests)),
            ["-t", r"(?:^|\s)(?:math adds \(1\+1\)|math divides)$"]
        );
        assert_eq!(
            words(&sel("playwright", json!([{"name": "cart › adds an item"}]))),
            ["--grep", r"(?:^|\s)(?:cart adds an item)$"]
        );
    }

    #[test]
    fn nextest_filters_and_refuses_what_is_not_a_test_path() {
        let out = sel(
            "nextest",
            json!([{"name": "store::tests::open"}, {"name": "a_b"}]),
        );
        assert_eq!(
            words(&out),
            ["-E", "test(=store::tests::open) | test(=a_b)"]
        );
        let e = render("nextest", &json!([{"name": "x) | all()"}])).unwrap_err();
        assert_eq!(e, SelectorError::NotARustPath("x) | all()".into()));
        assert!(e.to_string().contains("not a Rust test path"), "{e}");
    }

    #[test]
    fn unknown_tool_and_bad_lists_are_errors() {
        let e = render("maven", &json!([])).unwrap_err();
        assert!(e.to_string().contains("known: pytest, go"), "{e}");
        assert_eq!(
            render("go", &json!("TestA")),
            Err(SelectorError::NotAList("`\"TestA\"`".into()))
        );
        assert_eq!(
            render("go", &json!([{"class": "x"}])),
            Err(SelectorError::NoName)
        );
        assert_eq!(
            render("go", &json!([3])),
            Err(SelectorError::NotATest("`3`".into()))
        );
    }

    /// Test names are written by the code under test: whatever they hold, each selector word
    /// reaches the tool as one argument with the name inside, and nothing else.
    #[test]
    fn security_hostile_names_stay_single_quoted_arguments() {
        let hostile = [
            "$(touch /tmp/pwned)",
            "`id`",
            "it's; rm -rf ~",
            "a\nb",
            "x\" || true",
            ".*",
        ];
        for name in hostile {
            let t = json!([{"class": "tests.test_a", "name": name}]);
            assert_eq!(
                words(&sel("pytest", t.clone())),
                [format!("tests/test_a.py::{name}")]
            );
            let w = words(&sel("jest", t.clone()));
            assert_eq!(w.len(), 2, "{w:?}");
            assert_eq!(w[1], format!("^(?:{})$", regex_escape(name)));
            assert!(
                !w[1].contains("(?:.*)"),
                "a wildcard name stays literal: {w:?}"
            );
        }
        // A module named like an option cannot become one.
        let out = sel("pytest", json!([{"class": "-p.evil", "name": "t"}]));
        assert_eq!(words(&out), ["./-p/evil.py::t"]);
    }
}
