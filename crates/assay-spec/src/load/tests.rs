use super::*;

const HEAD: &str =
    "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: w\n";

fn lines(loaded: &Loaded) -> Vec<String> {
    loaded.diagnostics.iter().map(ToString::to_string).collect()
}

#[test]
fn valid_workflow_loads() {
    let text =
        format!("{HEAD}spec:\n  steps:\n  - name: a\n    shell: echo hi\n    optional: yes\n");
    let loaded = load("w.yaml", &text);
    assert_eq!(lines(&loaded), Vec::<String>::new());
    assert_eq!(loaded.checked, 1);
    assert_eq!(loaded.documents.len(), 1);
    let doc = &loaded.documents[0];
    assert_eq!(doc.name, "w");
    assert_eq!(doc.kind, Kind::TestWorkflow);
    let Document::TestWorkflow(wf) = &doc.document else {
        panic!("not a workflow")
    };
    assert_eq!(wf.spec.steps[0].shell, "echo hi");
    assert!(wf.spec.steps[0].optional, "`yes` is a YAML 1.1 boolean");
    assert_eq!(doc.locations.locate("spec.steps[0].shell"), Some((8, 12)));
}

#[test]
fn every_unknown_field_is_reported_with_a_suggestion() {
    let text = format!(
        "{HEAD}spec:\n  steps:\n  - name: a\n    shel: echo hi\n    conditon: always\n  - name: b\n    banana: 1\n"
    );
    let loaded = load("w.yaml", &text);
    assert_eq!(
        lines(&loaded),
        [
            "w.yaml:8:5: unknown field `shel`\n  hint: did you mean `shell`?",
            "w.yaml:9:5: unknown field `conditon`\n  hint: did you mean `condition`?",
            "w.yaml:11:5: unknown field `banana`",
        ]
    );
    let text = format!("{HEAD}spec:\n  steps:\n  - image: node:22\n");
    assert_eq!(
        lines(&load("w.yaml", &text)),
        [
            "w.yaml:7:5: unknown field `image`\n  hint: `image` belongs under `container:` (defaults for the step and its children) or `run:`"
        ]
    );
    assert!(loaded.documents.is_empty());
    assert_eq!(loaded.invalid(), 1);
}

#[test]
fn wrong_types_say_what_was_expected() {
    let text =
        format!("{HEAD}spec:\n  steps: echo hi\n  after:\n  - name: a\n    negative: maybe\n");
    let loaded = load("w.yaml", &text);
    assert_eq!(
        lines(&loaded),
        [
            "w.yaml:6:10: expected a list of steps, found a string\n  hint: write each item on its own line starting with `- `",
            "w.yaml:9:15: expected a boolean (`true` or `false`), found a string",
        ]
    );
}

#[test]
fn unquoted_number_in_a_string_field_gets_a_quoting_hint() {
    let text = format!("{HEAD}spec:\n  container:\n    env:\n    - name: X\n      value: 0755\n");
    let loaded = load("w.yaml", &text);
    assert_eq!(loaded.diagnostics.len(), 1, "{:?}", lines(&loaded));
    let d = &loaded.diagnostics[0];
    assert_eq!(d.message, "expected a string, found a number");
    assert_eq!(
        d.hint.as_deref(),
        Some("YAML reads `0755` as a number; quote it (\"0755\") to keep it a string")
    );
}

#[test]
fn unknown_parameter_type_is_suggested() {
    let text = format!("{HEAD}spec:\n  config:\n    n:\n      type: integr\n");
    let loaded = load("w.yaml", &text);
    assert_eq!(
        lines(&loaded),
        ["w.yaml:8:13: unknown value `integr` for `type`\n  hint: did you mean `integer`?"]
    );
}

#[test]
fn missing_required_field_is_reported_once() {
    let text = format!("{HEAD}spec:\n  use:\n  - config: {{a: 1}}\n  - name: t\n    extra: 2\n");
    let loaded = load("w.yaml", &text);
    assert_eq!(
        lines(&loaded),
        [
            "w.yaml:7:5: missing required field `name`",
            "w.yaml:9:5: unknown field `extra`",
        ]
    );
}

#[test]
fn duplicate_key_warns_and_the_document_stays_valid() {
    let text = format!("{HEAD}spec:\n  container:\n    image: a\n  container:\n    image: b\n");
    let loaded = load("w.yaml", &text);
    assert_eq!(
        lines(&loaded),
        ["w.yaml:8:3: warning: duplicate key `container`; the last one wins (as Kubernetes does)"]
    );
    assert_eq!(loaded.invalid(), 0);
    let Document::TestWorkflow(wf) = &loaded.documents[0].document else {
        panic!()
    };
    assert_eq!(wf.spec.container.as_ref().unwrap().image, "b");
}

#[test]
fn other_kinds_are_skipped_and_missing_kind_is_an_error() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\n---\n{HEAD}---\napiVersion: testworkflows.testkube.io/v1\nmetadata: {{name: x}}\n"
    );
    let loaded = load("m.yaml", &text);
    assert_eq!(loaded.checked, 2);
    assert_eq!(loaded.documents.len(), 1);
    assert_eq!(
        loaded.documents[0].index, 1,
        "empty documents are not documents"
    );
    assert_eq!(loaded.documents[0].line, 6);
    assert_eq!(
        lines(&loaded),
        [
            "m.yaml:11:1: document has no `kind`\n  hint: add `kind: TestWorkflow` or `kind: TestWorkflowTemplate`"
        ]
    );
}

#[test]
fn wrong_api_version_and_kind_typo() {
    let text = "apiVersion: testworkflows.testkube.io/v2\nkind: TestWorkflow\nmetadata: {name: a}\n---\napiVersion: testworkflows.testkube.io/v1\nkind: TestWorkfow\nmetadata: {name: b}\n";
    let loaded = load("v.yaml", text);
    let other_kinds = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowExecution\n---\nkind: TestWorkflows\n";
    let others = load("o.yaml", other_kinds);
    assert_eq!(others.checked, 1, "only the typo is checked");
    assert_eq!(
        others.diagnostics[0].message,
        "unknown kind `TestWorkflows`"
    );
    assert_eq!(
        lines(&loaded),
        [
            "v.yaml:1:13: unsupported apiVersion `testworkflows.testkube.io/v2`\n  hint: Assay reads `apiVersion: testworkflows.testkube.io/v1`",
            "v.yaml:6:7: unknown kind `TestWorkfow`\n  hint: did you mean `TestWorkflow`?",
        ]
    );
    assert_eq!(loaded.checked, 2);
    assert_eq!(loaded.invalid(), 2);
}

#[test]
fn empty_input_is_zero_documents() {
    for text in ["", "\n", "# just a comment\n", "---\n", "---\n---\n"] {
        let loaded = load("e.yaml", text);
        assert_eq!(loaded.checked, 0, "{text:?}");
        assert!(loaded.diagnostics.is_empty(), "{text:?}");
    }
}

#[test]
fn invalid_utf8_is_located() {
    let loaded = load_bytes("b.yaml", b"kind: TestWorkflow\nname: a\xffb\n");
    assert_eq!(
        lines(&loaded),
        [
            "b.yaml:2:8: not valid UTF-8 (byte 26 is not part of a UTF-8 character)\n  hint: save the file as UTF-8"
        ]
    );
    assert_eq!(loaded.invalid(), 1);
}

#[test]
fn nulls_are_absent_fields() {
    let text = format!("{HEAD}spec:\n  container:\n    env:\n  steps:\n  - name: a\n    shell:\n");
    let loaded = load("w.yaml", &text);
    assert!(loaded.diagnostics.is_empty(), "{:?}", lines(&loaded));
    assert_eq!(
        loaded.documents[0].raw["spec"]["container"]["env"],
        Value::Null
    );
}
