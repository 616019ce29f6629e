//! Hostile and broken input: each case gives a clear, located error (or none, for an empty file),
//! never a panic, and finishes in bounded time and memory because the loader refuses oversized
//! input up front and serde-saphyr's budget limits depth, node count and alias expansion.

use assay_spec::load::{self, Loaded, MAX_INPUT_BYTES};
use assay_spec::validate::check_bytes;

const HEAD: &str =
    "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: w\n";

fn check(text: &str) -> Loaded {
    check_bytes("bad.yaml", text.as_bytes())
}

fn lines(loaded: &Loaded) -> Vec<String> {
    loaded.diagnostics.iter().map(ToString::to_string).collect()
}

/// Exactly one error, which contains `needle`; returns it.
fn one_error(loaded: &Loaded, needle: &str) -> String {
    let all = lines(loaded);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    assert!(
        all[0].contains(needle),
        "expected {needle:?} in {:?}",
        all[0]
    );
    assert!(all[0].starts_with("bad.yaml:"), "{}", all[0]);
    assert_eq!(loaded.invalid(), 1);
    all[0].clone()
}

#[test]
fn helm_template_is_one_error_with_a_hint() {
    let text = "{{- if .Values.enabled }}\napiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata:\n  name: x\n{{- end }}\n";
    let e = one_error(&check(text), "not valid YAML");
    assert!(e.starts_with("bad.yaml:1:3: "), "{e}");
    assert!(
        e.ends_with("hint: is this a Helm template? render it with `helm template` first"),
        "{e}"
    );
}

#[test]
fn text_that_is_not_yaml_at_all() {
    // Some "YAML" that is really a shell script with a colon in the wrong place.
    let e = one_error(&check("#!/bin/sh\necho: \"a\" b: c\n"), "not valid YAML");
    assert!(
        !e.contains("helm"),
        "no Helm hint without Helm markers: {e}"
    );
    // A JSON document is YAML, and a valid workflow at that.
    let json = r#"{"apiVersion": "testworkflows.testkube.io/v1", "kind": "TestWorkflow", "metadata": {"name": "j"}, "spec": {"steps": [{"shell": "true"}]}}"#;
    assert_eq!(lines(&check(json)), Vec::<String>::new());
}

#[test]
fn truncated_yaml() {
    let full = format!("{HEAD}spec:\n  steps:\n  - name: a\n    shell: \"echo hello\"\n");
    // Cut inside the quoted string: an unclosed quote at its line.
    let cut = &full[..full.len() - 8];
    let e = one_error(&check(cut), "not valid YAML");
    assert!(e.starts_with("bad.yaml:8:"), "{e}");
    // Cut inside a flow collection.
    let e = one_error(
        &check(&format!("{HEAD}spec:\n  steps: [{{shell: a}}, {{shel")),
        "not valid YAML",
    );
    assert!(e.contains("bad.yaml:"), "{e}");
    // Cutting at any byte never panics and always leaves a sensible result.
    for end in (0..full.len()).step_by(3) {
        if let Some(prefix) = full.get(..end) {
            let loaded = check(prefix);
            assert!(loaded.checked <= 1, "{end}: {:?}", lines(&loaded));
        }
    }
}

#[test]
fn wrong_types_and_unknown_fields_are_all_reported() {
    let text = format!(
        "{HEAD}spec:\n  steps:\n  - name: a\n    shel: echo\n    optional: sometimes\n  - name: b\n    retry: 3\n  after: run this\n"
    );
    assert_eq!(
        lines(&check(&text)),
        [
            "bad.yaml:8:5: unknown field `shel`\n  hint: did you mean `shell`?",
            "bad.yaml:9:15: expected a boolean (`true` or `false`), found a string",
            "bad.yaml:11:12: expected a mapping, found a number",
            "bad.yaml:12:10: expected a list of steps, found a string\n  hint: write each item on its own line starting with `- `",
        ]
    );
}

#[test]
fn ten_megabyte_document_is_refused_quickly() {
    let mut text = format!("{HEAD}spec:\n  steps:\n");
    while text.len() < 10 * 1024 * 1024 {
        text.push_str("  - shell: echo 0123456789012345678901234567890123456789\n");
    }
    let e = one_error(
        &check(&text),
        "file is too large (10.0 MiB; the limit is 4 MiB)",
    );
    assert!(e.starts_with("bad.yaml:1:1: "), "{e}");
}

#[test]
fn a_large_but_legitimate_workflow_loads() {
    // Half a MiB of steps (Kubernetes objects stop at 1.5 MiB; the benchmark covers speed).
    let mut text = format!("{HEAD}spec:\n  steps:\n");
    let mut n = 0;
    while text.len() < 512 * 1024 {
        text.push_str(&format!("  - name: step {n}\n    shell: echo {n}\n"));
        n += 1;
    }
    assert!(text.len() < MAX_INPUT_BYTES);
    let loaded = check(&text);
    assert_eq!(lines(&loaded), Vec::<String>::new());
    assert_eq!(loaded.documents.len(), 1);
}

#[test]
fn a_ten_megabyte_string_inside_the_limit_is_not_needed_to_fail_later() {
    // One scalar just under the limit: read once, no quadratic work, valid document.
    let big = "x".repeat(MAX_INPUT_BYTES - 1024);
    let text = format!("{HEAD}description: {big}\n");
    let loaded = check(&text);
    assert_eq!(lines(&loaded), Vec::<String>::new());
}

#[test]
fn deeply_nested_flow_collections() {
    let depth = 100_000;
    let text = format!(
        "{HEAD}spec:\n  pod: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    one_error(&check(&text), "YAML nested deeper than 32 levels");
}

#[test]
fn deeply_nested_block_mappings() {
    let mut text = format!("{HEAD}spec:\n  pod:\n");
    for level in 0..500 {
        text.push_str(&" ".repeat(4 + level));
        text.push_str("a:\n");
    }
    one_error(&check(&text), "YAML nested deeper than 32 levels");
}

#[test]
fn nesting_that_real_workflows_use_is_fine() {
    // 14 levels of nested steps is far deeper than any real workflow, and still accepted.
    let mut text = format!("{HEAD}spec:\n  steps:\n");
    let mut indent = 2;
    for _ in 0..14 {
        text.push_str(&format!("{}- steps:\n", " ".repeat(indent)));
        indent += 4;
    }
    text.push_str(&format!("{}- shell: 'true'\n", " ".repeat(indent)));
    assert_eq!(lines(&check(&text)), Vec::<String>::new());
}

#[test]
fn billion_laughs_alias_bomb() {
    let mut text = String::from(
        "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
    );
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    text.push_str(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata: {name: w}\n",
    );
    let e = one_error(&check(&text), "YAML aliases expand too much");
    assert!(e.starts_with("bad.yaml:"), "{e}");
}

#[test]
fn invalid_utf8_is_one_located_error() {
    let mut bytes = HEAD.as_bytes().to_vec();
    bytes.extend_from_slice(b"spec:\n  steps:\n  - shell: echo \xc3\x28\n");
    let loaded = check_bytes("bad.yaml", &bytes);
    let e = one_error(&loaded, "not valid UTF-8");
    assert!(e.starts_with("bad.yaml:7:17: "), "{e}");
    // UTF-16 with a byte order mark is not UTF-8 either.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("kind: x".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    one_error(&check_bytes("bad.yaml", &utf16), "not valid UTF-8");
}

#[test]
fn empty_file_is_zero_documents_and_no_error() {
    for text in ["", "   \n\n", "# only a comment\n", "---\n", "--- \n...\n"] {
        let loaded = check(text);
        assert_eq!(loaded.checked, 0, "{text:?}");
        assert!(
            loaded.diagnostics.is_empty(),
            "{text:?}: {:?}",
            lines(&loaded)
        );
    }
}

#[test]
fn non_mapping_documents_are_errors() {
    let e = one_error(&check("- just\n- a list\n"), "a document must be a mapping");
    assert!(e.contains("found a list"), "{e}");
    one_error(&check("hello\n"), "found a string");
}

#[test]
fn many_errors_are_capped_per_document() {
    let mut text = format!("{HEAD}spec:\n  steps:\n");
    for i in 0..500 {
        text.push_str(&format!("  - bogus{i}: 1\n"));
    }
    let loaded = load::load("bad.yaml", &text);
    assert_eq!(loaded.diagnostics.len(), load::MAX_ERRORS_PER_DOCUMENT);
    assert_eq!(loaded.invalid(), 1);
}

#[test]
fn too_many_nodes() {
    let mut text = format!("{HEAD}spec:\n  pod:\n    x: [");
    text.push_str(&"1,".repeat(260_000));
    text.push_str("1]\n");
    one_error(&check(&text), "YAML too large: too many nodes");
}
