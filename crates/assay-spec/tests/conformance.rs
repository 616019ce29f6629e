//! The conformance corpus: 148 real files from kubeshop/testkube (see SOURCES.tsv). The two Helm
//! templates must give exactly one clean error each; every other TestWorkflow and
//! TestWorkflowTemplate document must load and validate without errors; and the number of
//! documents checked must match what SOURCES.tsv says each file holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assay_spec::diagnostic::Diagnostic;
use assay_spec::load::Loaded;
use assay_spec::model::Document;
use assay_spec::{CompileRequest, Strictness, TemplateSet};

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/testkube");
    assert!(
        dir.join("SOURCES.tsv").is_file(),
        "conformance corpus not found at {} (it lives in ../shared beside the repository)",
        dir.display()
    );
    dir
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// path → (TestWorkflow documents, TestWorkflowTemplate documents), from SOURCES.tsv.
fn expected_counts(dir: &Path) -> BTreeMap<String, (usize, usize)> {
    let tsv = std::fs::read_to_string(dir.join("SOURCES.tsv")).expect("read SOURCES.tsv");
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 5, "bad SOURCES.tsv line: {line}");
            let n = |s: &str| {
                s.parse::<usize>()
                    .unwrap_or_else(|_| panic!("bad count in: {line}"))
            };
            (cols[2].to_string(), (n(cols[3]), n(cols[4])))
        })
        .collect()
}

fn is_helm(rel: &str) -> bool {
    rel.starts_with("k8s/helm/")
}

#[test]
fn corpus_loads_and_validates() {
    let dir = corpus_dir();
    let expected = expected_counts(&dir);
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    assert_eq!(files.len(), 148, "the corpus should hold 148 YAML files");
    assert_eq!(
        expected.len(),
        files.len(),
        "SOURCES.tsv should list every file"
    );

    let loaded_files: Vec<(String, Loaded)> = files
        .iter()
        .map(|path| {
            let rel = path
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(path).expect("read corpus file");
            let loaded = assay_spec::validate::check_bytes(&rel, &bytes);
            (rel, loaded)
        })
        .collect();
    // Workflows use the official templates that the corpus ships (k8s/templates).
    let mut templates = TemplateSet::new();
    for (_, loaded) in &loaded_files {
        for doc in &loaded.documents {
            if let Document::TestWorkflowTemplate(t) = &doc.document {
                templates.insert(t.clone());
            }
        }
    }

    let mut failures = Vec::new();
    let (mut checked, mut valid, mut compiled) = (0usize, 0usize, 0usize);
    let mut helm_files = 0;
    for (rel, loaded) in loaded_files {
        let rel = rel.as_str();
        let loaded = compile_all(rel, loaded, &templates, &mut compiled);
        let errors: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        let (wf, tpl) = *expected
            .get(rel)
            .unwrap_or_else(|| panic!("{rel} missing from SOURCES.tsv"));
        checked += loaded.checked;
        valid += loaded.checked - loaded.invalid();
        if is_helm(rel) {
            helm_files += 1;
            if errors.len() != 1
                || !errors[0].contains("not valid YAML")
                || !errors[0].contains("helm template")
            {
                failures.push(format!("{rel}: expected exactly one 'not valid YAML' error with a Helm hint, got {errors:#?}"));
            }
            // A file that is not YAML counts as one invalid document.
            if loaded.checked != 1 {
                failures.push(format!(
                    "{rel}: checked {} documents, expected 1",
                    loaded.checked
                ));
            }
            continue;
        }
        if !errors.is_empty() {
            failures.push(format!("{rel}:\n{}", errors.join("\n")));
        }
        let got_wf = loaded
            .documents
            .iter()
            .filter(|d| d.kind == assay_spec::load::Kind::TestWorkflow)
            .count();
        let got_tpl = loaded.documents.len() - got_wf;
        if (got_wf, got_tpl) != (wf, tpl) || loaded.checked != wf + tpl {
            failures.push(format!(
                "{rel}: loaded {got_wf} workflows and {got_tpl} templates ({} checked), SOURCES.tsv says {wf} and {tpl}",
                loaded.checked
            ));
        }
    }
    let total: usize = expected.values().map(|(a, b)| a + b).sum();
    eprintln!(
        "conformance: {checked} documents checked, {valid} valid, {} invalid; {compiled} workflows compiled",
        checked - valid
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert_eq!(
        helm_files, 2,
        "expected the two Helm templates under k8s/helm"
    );
    assert_eq!(checked, total, "documents checked vs SOURCES.tsv totals");
    assert_eq!(valid, total - 2, "all but the two Helm templates are valid");
    assert_eq!(compiled, 216, "every TestWorkflow of the corpus compiles");
}

/// Compile every valid workflow of a file (config values left open, as `assay validate` does),
/// adding the compiler's problems to the file's diagnostics.
fn compile_all(
    file: &str,
    mut loaded: Loaded,
    templates: &TemplateSet,
    compiled: &mut usize,
) -> Loaded {
    let mut extra = Vec::new();
    for doc in &loaded.documents {
        let Document::TestWorkflow(wf) = &doc.document else {
            continue;
        };
        if !loaded.is_valid(doc.index) {
            continue;
        }
        let mut req = CompileRequest::new(wf, templates);
        req.strictness = Strictness::Lenient;
        match assay_spec::compile(&req) {
            Ok(_) => *compiled += 1,
            Err(errors) => {
                for e in errors {
                    let (line, column) = doc.locations.locate(&e.path).unwrap_or((doc.line, 1));
                    extra.push(
                        Diagnostic::error(file, line, column, format!("compile: {}", e.message))
                            .with_hint_opt(e.hint)
                            .in_document(doc.index),
                    );
                }
            }
        }
    }
    loaded.diagnostics.extend(extra);
    loaded
}
