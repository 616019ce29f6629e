//! Runs that select tests (issue 18): `assay rerun --failed` runs the failed tests of an earlier
//! execution, `assay run --repeat-new N` runs the tests new on this commit N more times. Both
//! hand the tests to the workflow as `execution.selectedTests`, which a step turns into the
//! tool's own selector with `testSelector(tool, execution.selectedTests)`.

use std::collections::BTreeMap;

use assay_reports::CaseStatus;
use assay_spec::TemplateSet;
use assay_spec::model::TestWorkflow;
use assay_store::{ExecutionRef, Store, StoredTestCase};
use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::ServiceResult;

/// A test as `execution.selectedTests` holds it: `name`, and `class`, `suite`, `file` where
/// the JUnit report gave them.
pub fn selected(case: &StoredTestCase) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("name".into(), json!(case.case.name));
    if let Some(c) = &case.case.class {
        o.insert("class".into(), json!(c));
    }
    if !case.case.suite.is_empty() {
        o.insert("suite".into(), json!(case.case.suite));
    }
    if let Some(f) = &case.case.file {
        o.insert("file".into(), json!(f));
    }
    Value::Object(o)
}

/// The tests whose last result in the execution is a failure (`failed` or `error`): a test that
/// failed and then passed on a step retry is not among them. In report order, once each.
pub fn failed_cases(cases: &[StoredTestCase]) -> Vec<StoredTestCase> {
    let mut last: BTreeMap<&str, &StoredTestCase> = BTreeMap::new();
    for c in cases {
        last.insert(c.key.as_str(), c);
    }
    let mut out: Vec<StoredTestCase> = Vec::new();
    for c in cases {
        let final_case = last[c.key.as_str()];
        if matches!(
            final_case.case.status,
            CaseStatus::Failed | CaseStatus::Error
        ) && !out.iter().any(|o| o.key == c.key)
        {
            out.push(final_case.clone());
        }
    }
    out
}

/// How a workflow takes a selection of tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Its plan changes with `execution.selectedTests`.
    Used,
    /// Its plan is the same with and without them: it would run every test again, so
    /// `--failed` and `--repeat-new` refuse it rather than do that.
    Unused,
    /// Its plan does not compile with these tests (a name `testSelector` cannot select exactly,
    /// an unknown tool): the errors, `path: message`.
    Fails(Vec<String>),
}

/// Whether the workflow's plan depends on `execution.selectedTests`: the plan compiled with
/// `tests` differs from the plan compiled with none. A plan that does not compile without them
/// either counts as using them (the run then reports its own errors).
pub fn uses_selected_tests(
    workflow: &TestWorkflow,
    templates: &TemplateSet,
    config: &IndexMap<String, Value>,
    tests: &[Value],
) -> Selection {
    let plan = |tests: &[Value]| {
        let mut req = assay_spec::CompileRequest::new(workflow, templates);
        req.config = config.clone();
        req.execution = Some(json!({
            "id": "selection-probe",
            "name": "selection-probe",
            "number": 0,
            "scheduledAt": "1970-01-01T00:00:00Z",
            "tags": {},
            "selectedTests": tests,
        }));
        assay_spec::compile(&req)
            .map(|c| serde_json::to_value(&c.plan).unwrap_or_default())
            .map_err(|errors| {
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect::<Vec<_>>()
            })
    };
    match (plan(tests), plan(&[])) {
        (Ok(with), Ok(without)) if with == without => Selection::Unused,
        (Err(errors), Ok(_)) => Selection::Fails(errors),
        _ => Selection::Used,
    }
}

/// The tests of execution `id` that are new on its commit (no execution on another commit
/// recorded them before), once each, in report order; `None` when the workflow has no history
/// on another commit to compare with.
pub async fn new_cases(store: &Store, id: &str) -> ServiceResult<Option<Vec<StoredTestCase>>> {
    let Some(known) = store.known_test_keys(id).await? else {
        return Ok(None);
    };
    let cases = store.test_cases(&ExecutionRef::Id(id.into()), &[]).await?;
    let mut out: Vec<StoredTestCase> = Vec::new();
    for c in cases {
        if !known.contains(&c.key) && !out.iter().any(|o| o.key == c.key) {
            out.push(c);
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_reports::TestCase;

    fn stored(name: &str, status: CaseStatus, retry: bool) -> StoredTestCase {
        StoredTestCase {
            case: TestCase {
                suite: "pytest".into(),
                class: Some("tests.test_a".into()),
                name: name.into(),
                file: None,
                status,
                duration_ms: None,
                message: None,
                output: None,
                failed_reruns: 0,
            },
            key: format!("tests.test_a::{name}"),
            step_ref: None,
            report_file: None,
            retry,
            quarantined: false,
        }
    }

    #[test]
    fn failed_cases_are_the_last_results_that_failed() {
        use CaseStatus::*;
        let cases = [
            stored("a", Failed, false),
            stored("b", Failed, false),
            stored("c", Passed, false),
            stored("d", Error, false),
            stored("b", Passed, true),
            stored("a", Failed, true),
        ];
        let names: Vec<String> = failed_cases(&cases)
            .iter()
            .map(|c| c.case.name.clone())
            .collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(
            selected(&cases[0]),
            json!({"name": "a", "class": "tests.test_a", "suite": "pytest"})
        );
    }

    #[test]
    fn a_workflow_uses_the_selection_only_when_its_plan_changes() {
        let load = |yaml: &str| {
            let loaded = assay_spec::validate::check_bytes("wf.yaml", yaml.as_bytes());
            match &loaded.documents[0].document {
                assay_spec::model::Document::TestWorkflow(w) => w.clone(),
                _ => panic!("not a workflow"),
            }
        };
        let tests = [json!({"name": "test_x", "class": "tests.test_a"})];
        let templates = TemplateSet::default();
        let uses = load(
            "kind: TestWorkflow\napiVersion: testworkflows.testkube.io/v1\nmetadata: {name: w}\n\
             spec:\n  steps:\n  - shell: pytest {{ testSelector(\"pytest\", execution.selectedTests) }}\n",
        );
        let ignores = load(
            "kind: TestWorkflow\napiVersion: testworkflows.testkube.io/v1\nmetadata: {name: w}\n\
             spec:\n  steps:\n  - shell: pytest {{ execution.name }}\n",
        );
        let config = IndexMap::new();
        assert_eq!(
            uses_selected_tests(&uses, &templates, &config, &tests),
            Selection::Used
        );
        assert_eq!(
            uses_selected_tests(&ignores, &templates, &config, &tests),
            Selection::Unused
        );
        // A case pytest cannot be given exactly: the plan fails, it does not select more.
        match uses_selected_tests(&uses, &templates, &config, &[json!({"name": "test_x"})]) {
            Selection::Fails(errors) => {
                assert!(
                    errors[0].contains("neither a file nor a module"),
                    "{errors:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
