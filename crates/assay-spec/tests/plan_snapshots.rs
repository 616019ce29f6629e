//! Plans of a representative set of real Testkube workflows (and the shipped example),
//! snapshotted: any change to what the compiler produces shows up as a reviewed diff.

use std::path::{Path, PathBuf};

use assay_spec::load::load;
use assay_spec::model::Document;
use assay_spec::{CompileRequest, Strictness, TemplateSet, compile};

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/testkube");
    assert!(
        dir.is_dir(),
        "the conformance corpus is missing at {}",
        dir.display()
    );
    dir
}

fn templates_from(dir: &Path, set: &mut TemplateSet) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for d in load(&path.display().to_string(), &text).documents {
                if let Document::TestWorkflowTemplate(t) = d.document {
                    set.insert(t);
                }
            }
        }
    }
}

/// The plan of workflow `name` in `file`, with the official templates and the file's folder
/// as template sources.
fn plan_of(file: &Path, name: &str) -> serde_json::Value {
    let mut templates = TemplateSet::new();
    templates_from(&corpus().join("k8s/templates"), &mut templates);
    templates_from(file.parent().unwrap(), &mut templates);
    let text = std::fs::read_to_string(file).unwrap();
    let loaded = load(&file.display().to_string(), &text);
    let wf = loaded
        .documents
        .iter()
        .find_map(|d| match &d.document {
            Document::TestWorkflow(w) if w.metadata.name == name => Some(w.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{name} not in {}", file.display()));
    let mut req = CompileRequest::new(&wf, &templates);
    req.strictness = Strictness::Require;
    match compile(&req) {
        Ok(c) => serde_json::to_value(c.plan).unwrap(),
        Err(e) => panic!("{name}: {e:#?}"),
    }
}

macro_rules! snapshot {
    ($test:ident, $file:expr, $name:expr) => {
        #[test]
        fn $test() {
            let plan = plan_of(&corpus().join($file), $name);
            insta::assert_yaml_snapshot!(stringify!($test), plan);
        }
    };
}

snapshot!(
    k6_with_official_template,
    "test/k6/crd-workflow/smoke.yaml",
    "k6-workflow-smoke-template"
);
snapshot!(
    cypress_sharded_by_glob,
    "test/cypress/crd-workflow/smoke.yaml",
    "distributed-cypress-workflow-smoke"
);
snapshot!(
    cypress_matrix,
    "test/cypress/crd-workflow/smoke.yaml",
    "cypress-workflow-smoke-matrix-junit"
);
snapshot!(
    selenium_services_count_from_config,
    "test/selenium/crd-workflow/smoke.yaml",
    "selenium-java-hub-and-nodes-workflow-smoke"
);
snapshot!(
    playwright_parallel,
    "test/playwright/crd-workflow/smoke.yaml",
    "distributed-playwright-workflow-smoke-junit"
);
snapshot!(
    showcase_template_with_secret,
    "test/examples/showcase/crd.yaml",
    "trigger-remote-workflow-with-template"
);
snapshot!(
    postman_template,
    "test/postman/crd-workflow/smoke.yaml",
    "postman-workflow-smoke-template"
);

#[test]
fn shipped_example() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.yaml");
    insta::assert_yaml_snapshot!("shipped_example", plan_of(&file, "hello"));
}
