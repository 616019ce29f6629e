//! Real-world JUnit flavours and malformed reports, read through the public API.

use std::path::Path;
use std::process::Command;

use assay_reports::{CaseStatus, ParseError, ParseOptions, Summary, TestCase, is_junit, parse_all};

fn read(name: &str) -> Vec<TestCase> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    assert!(is_junit(&bytes), "{name} is recognised as JUnit");
    let (cases, err) = parse_all(&bytes[..], ParseOptions::default());
    assert_eq!(err, None, "{name}");
    cases
}

fn summary(cases: &[TestCase]) -> Summary {
    let mut s = Summary::default();
    cases.iter().for_each(|c| s.add(c));
    s
}

fn find<'a>(cases: &'a [TestCase], name: &str) -> &'a TestCase {
    cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

#[test]
fn pytest() {
    let cases = read("pytest.xml");
    let s = summary(&cases);
    assert_eq!(
        (s.tests, s.passed, s.failed, s.errored, s.skipped),
        (6, 2, 1, 1, 2)
    );
    let divide = find(&cases, "test_divide");
    assert_eq!(divide.suite, "pytest");
    assert_eq!(divide.class.as_deref(), Some("tests.test_math"));
    assert_eq!(
        divide.message.as_deref(),
        Some("ZeroDivisionError: division by zero")
    );
    assert!(
        divide
            .output
            .as_deref()
            .unwrap()
            .contains(">       assert 1 / 0 == 0")
    );
    let db = find(&cases, "test_connect");
    assert_eq!(db.status, CaseStatus::Error);
    assert_eq!(db.duration_ms, Some(400));
    assert!(
        db.output
            .as_deref()
            .unwrap()
            .contains("connecting to 127.0.0.1:5432")
    );
    assert_eq!(db.key(), "tests.test_db::test_connect");
}

#[test]
fn surefire() {
    let cases = read("surefire.xml");
    let s = summary(&cases);
    assert_eq!((s.tests, s.passed, s.failed, s.skipped), (4, 2, 1, 1));
    let zero = find(&cases, "dividesByZero");
    assert_eq!(zero.message.as_deref(), Some("expected: <0> but was: <1>"));
    assert!(
        zero.output
            .as_deref()
            .unwrap()
            .contains("CalculatorTest.java:21")
    );
    assert!(zero.output.as_deref().unwrap().contains("dividing 1 by 0"));
    let retried = find(&cases, "retriesNetwork");
    assert_eq!(retried.status, CaseStatus::Passed);
    assert_eq!(retried.failed_reruns, 1);
    assert_eq!(retried.suite, "com.example.CalculatorTest");
}

#[test]
fn jest_nested_suites() {
    let cases = read("jest.xml");
    let s = summary(&cases);
    assert_eq!((s.tests, s.passed, s.failed, s.skipped), (4, 2, 1, 1));
    let empty = find(&cases, "Cart checkout rejects an empty cart");
    assert_eq!(empty.suite, "Cart › checkout");
    assert_eq!(empty.file.as_deref(), Some("src/cart.test.ts"));
    assert_eq!(
        empty.message.as_deref(),
        Some("Error: expect(received).toThrow()")
    );
    assert!(
        empty
            .output
            .as_deref()
            .unwrap()
            .contains("Object.<anonymous>")
    );
    assert_eq!(find(&cases, "Cart totals").suite, "Cart");
    assert_eq!(find(&cases, "sum adds 1 + 2 to equal 3").file, None);
}

#[test]
fn go_junit_report() {
    let cases = read("go.xml");
    let s = summary(&cases);
    assert_eq!((s.tests, s.passed, s.failed, s.skipped), (4, 2, 1, 1));
    let tax = find(&cases, "TestTotal/with_tax");
    assert_eq!(tax.suite, "example.com/shop/cart");
    assert_eq!(tax.message.as_deref(), Some("Failed"));
    assert!(tax.output.as_deref().unwrap().contains("cart_test.go:42"));
}

#[test]
fn nextest() {
    let cases = read("nextest.xml");
    let s = summary(&cases);
    assert_eq!((s.tests, s.passed, s.failed), (3, 2, 1));
    let network = find(&cases, "cart::tests::network");
    assert_eq!(network.status, CaseStatus::Passed);
    assert_eq!(network.failed_reruns, 1);
    // Output of the flaky attempt is not the passing case's output.
    assert_eq!(network.output, None);
    let total = find(&cases, "cart::tests::total");
    assert_eq!(total.failed_reruns, 1);
    assert_eq!(
        total.message.as_deref(),
        Some("thread 'cart::tests::total' panicked at src/cart.rs:52:9:")
    );
    assert!(total.output.as_deref().unwrap().contains("right: 11"));
}

#[test]
fn playwright() {
    let cases = read("playwright.xml");
    let s = summary(&cases);
    assert_eq!((s.tests, s.passed, s.failed, s.skipped), (3, 1, 1, 1));
    assert_eq!(s.duration, 3900);
    let bad = find(&cases, "login › rejects a bad password");
    assert_eq!(bad.suite, "login.spec.ts");
    assert_eq!(
        bad.message.as_deref(),
        Some("login.spec.ts:14:5 rejects a bad password")
    );
    assert!(bad.output.as_deref().unwrap().contains("toBeVisible"));
    assert!(bad.output.as_deref().unwrap().contains("ATTACHMENT"));
}

#[test]
fn truncated_reports_keep_the_cases_before_the_cut() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/go.xml");
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    for (marker, complete) in [
        ("<testcase name=\"TestSlow\"", 2),
        ("cart_test.go:50", 2),
        ("<testsuite name=\"example.com/shop/api\"", 3),
        ("</testsuites>", 4),
    ] {
        let cut = text.find(marker).unwrap() + 5;
        let (cases, err) = parse_all(&text.as_bytes()[..cut], ParseOptions::default());
        assert_eq!(cases.len(), complete, "cut at {marker}");
        let err = err.expect("an error");
        assert!(
            matches!(err, ParseError::Truncated { .. }),
            "{marker}: {err}"
        );
        assert!(err.to_string().contains("truncated at byte"), "{err}");
    }
}

#[test]
fn wrong_encodings_are_named() {
    let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><testsuite><testcase name=\"caf\xe9\"/></testsuite>";
    let (cases, err) = parse_all(&latin1[..], ParseOptions::default());
    assert!(cases.is_empty());
    assert_eq!(
        err.unwrap().to_string(),
        "read the JUnit report: it is encoded as ISO-8859-1; only UTF-8 is supported"
    );

    let mut utf16 = vec![0xFF, 0xFE];
    for unit in "<testsuite/>".encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    let (_, err) = parse_all(&utf16[..], ParseOptions::default());
    assert!(matches!(err, Some(ParseError::Encoding(e)) if e == "UTF-16"));

    // Undeclared Latin-1 bytes after a good case.
    let bad = b"<testsuite><testcase name=\"ok\"/><testcase name=\"x\"><system-out>caf\xe9</system-out></testcase></testsuite>";
    let (cases, err) = parse_all(&bad[..], ParseOptions::default());
    assert_eq!(cases.len(), 1);
    assert!(
        matches!(err, Some(ParseError::InvalidUtf8 { .. })),
        "{err:?}"
    );
}

#[test]
fn huge_attributes_and_texts_are_refused_in_bounded_memory() {
    let options = ParseOptions {
        max_token_bytes: 64 << 10,
        ..ParseOptions::default()
    };
    let mut xml = String::from("<testsuite><testcase name=\"ok\"/><testcase name=\"");
    xml.push_str(&"x".repeat(1 << 20));
    xml.push_str("\"/></testsuite>");
    let (cases, err) = parse_all(xml.as_bytes(), options);
    assert_eq!(cases.len(), 1);
    let err = err.unwrap();
    assert!(
        matches!(err, ParseError::TooLarge { limit: 65536, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");

    // Long output under the limit is kept as a bounded excerpt.
    let mut xml = String::from("<testsuite><testcase name=\"chatty\"><system-out>");
    for i in 0..5000 {
        xml.push_str(&format!("line {i}\n"));
    }
    xml.push_str("</system-out></testcase></testsuite>");
    let (cases, err) = parse_all(xml.as_bytes(), ParseOptions::default());
    assert_eq!(err, None);
    let out = cases[0].output.as_deref().unwrap();
    assert!(out.len() < 4200 && out.starts_with("line 0\n") && out.ends_with("line 4999\n"));
}

#[test]
fn other_xml_is_not_junit() {
    let (cases, err) = parse_all(&b"<html><body/></html>"[..], ParseOptions::default());
    assert!(cases.is_empty());
    assert_eq!(err, Some(ParseError::NotJunit("<html>".into())));
    let (_, err) = parse_all(&b""[..], ParseOptions::default());
    assert!(matches!(err, Some(ParseError::NotJunit(_))));
    let (_, err) = parse_all(
        &b"<testsuite><testcase name=\"a\"></testsuite>"[..],
        ParseOptions::default(),
    );
    assert!(matches!(err, Some(ParseError::Xml { .. })), "{err:?}");
}

/// A real report from cargo-nextest on a throwaway crate (skipped when nextest is missing).
#[test]
fn real_nextest_report() {
    if !Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: cargo-nextest is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join(".config")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "#[test] fn passes() {}\n#[test] fn fails() { assert_eq!(1 + 1, 3, \"math is broken\"); }\n\
         #[test] #[ignore] fn ignored() {}\n",
    )
    .unwrap();
    std::fs::write(
        root.join(".config/nextest.toml"),
        "[profile.ci.junit]\npath = \"junit.xml\"\n",
    )
    .unwrap();
    let status = Command::new("cargo")
        .args([
            "nextest",
            "run",
            "--profile",
            "ci",
            "--offline",
            "--no-fail-fast",
        ])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", root.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let report = root.join("target/nextest/ci/junit.xml");
    let bytes = std::fs::read(&report).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}",
            String::from_utf8_lossy(&status.stderr)
        )
    });
    assert!(is_junit(&bytes));
    let (cases, err) = parse_all(&bytes[..], ParseOptions::default());
    assert_eq!(err, None);
    let fails = find(&cases, "fails");
    assert_eq!(fails.status, CaseStatus::Failed);
    assert!(
        fails
            .output
            .as_deref()
            .unwrap_or_default()
            .contains("math is broken"),
        "{fails:?}"
    );
    assert_eq!(find(&cases, "passes").status, CaseStatus::Passed);
    // The crate's `#[ignore]` test: nextest leaves it out of its JUnit report (it is not
    // run, nor listed as skipped), so it is no case at all.
    assert!(!cases.iter().any(|c| c.name == "ignored"), "{cases:?}");
    assert_eq!(fails.suite, "tiny");
}

// ---------------------------------------------------------------------------------------------
// `balance: durations` with each tool's default report: shard items are files or packages, which
// most default reports never name; each case is placed by what its report does say.

fn placed(report: &str, items: &[&str]) -> Vec<Option<f64>> {
    let durations = assay_reports::shard_durations(&read(report));
    let items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    durations.for_items(&items)
}

#[test]
fn durations_place_pytest_xunit2_cases_by_dotted_module() {
    // pytest's default (xunit2) has no `file`: `classname="tests.test_math"`; glob() items are
    // absolute paths.
    assert_eq!(
        placed(
            "pytest.xml",
            &[
                "/data/repo/tests/test_math.py",
                "/data/repo/tests/test_db.py"
            ]
        ),
        [Some(5.0), Some(400.0)]
    );
}

#[test]
fn durations_place_jest_junit_default_cases_by_top_describe() {
    // jest-junit's default names no file and repeats the name as classname: the suite is the
    // file's top `describe`.
    assert_eq!(
        placed(
            "jest-default.xml",
            &[
                "src/shopping-cart.test.ts",
                "src/sum.test.js",
                "src/other.test.ts"
            ]
        ),
        [Some(1415.0), Some(2.0), None]
    );
    // With `addFileAttribute` (or a file on the suite) the file itself decides.
    assert_eq!(placed("jest.xml", &["src/cart.test.ts"]), [Some(36.0)]);
}

#[test]
fn durations_place_go_cases_by_package() {
    assert_eq!(
        placed("go.xml", &["./cart", "api/...", "./web"]),
        [Some(10.0), Some(2.0), None]
    );
}

#[test]
fn durations_place_nextest_cases_by_module_path() {
    assert_eq!(
        placed("nextest.xml", &["src/cart.rs", "src/lib.rs"]),
        [Some(57.0), None]
    );
}

#[test]
fn durations_place_playwright_cases_by_spec_file() {
    assert_eq!(
        placed(
            "playwright.xml",
            &["tests/login.spec.ts", "tests/home.spec.ts"]
        ),
        [Some(3900.0), None]
    );
}

#[test]
fn durations_place_surefire_cases_by_class() {
    assert_eq!(
        placed(
            "surefire.xml",
            &[
                "src/test/java/com/example/CalculatorTest.java",
                "src/test/java/com/example/ParserTest.java"
            ]
        ),
        [Some(316.0), None]
    );
}

/// pytest with colour on (`FORCE_COLOR=1 pytest --color=yes`, pytest 9) writes its escape codes
/// into the report as the text `#x1B[31m`; messages and output are read without them.
#[test]
fn colour_codes_are_not_kept_in_messages() {
    let cases = read("pytest-colour.xml");
    let red = find(&cases, "test_red");
    assert_eq!(red.status, CaseStatus::Failed);
    assert_eq!(
        red.message.as_deref(),
        Some("AssertionError: red message\nassert False")
    );
    let output = red.output.as_deref().unwrap();
    assert!(
        output.contains("E       AssertionError: red message"),
        "{output}"
    );
    assert!(
        !output.contains("#x1B") && !output.contains('\u{1b}'),
        "{output}"
    );
}
