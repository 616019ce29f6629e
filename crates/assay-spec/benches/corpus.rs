//! Load + validate + compile the whole conformance corpus and print documents per second.
//!
//! Baseline in the same run: parsing the same files into untyped `serde_json::Value`s with
//! serde-saphyr (what any YAML reader must do); the ratio says what locations, typed
//! deserialization, validation and compilation cost on top. No timing is asserted.
//!
//!     cargo bench -p assay-spec --bench corpus

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assay_spec::model::Document;
use assay_spec::{CompileRequest, Strictness, TemplateSet};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
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

/// Run `pass` repeatedly for at least `min` and return (runs, elapsed).
fn measure(min: Duration, mut pass: impl FnMut()) -> (u32, Duration) {
    pass(); // warm up
    let start = Instant::now();
    let mut runs = 0;
    while start.elapsed() < min || runs < 3 {
        pass();
        runs += 1;
    }
    (runs, start.elapsed())
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/testkube");
    assert!(
        dir.is_dir(),
        "conformance corpus not found at {}",
        dir.display()
    );
    let mut paths = Vec::new();
    yaml_files(&dir, &mut paths);
    let files: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(p).expect("read"),
            )
        })
        .collect();
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();

    // Templates for compilation come from the corpus itself.
    let mut templates = TemplateSet::new();
    let mut documents = 0usize;
    for (name, text) in &files {
        let loaded = assay_spec::validate::check(name, text);
        documents += loaded.checked;
        for doc in &loaded.documents {
            if let Document::TestWorkflowTemplate(t) = &doc.document {
                templates.insert(t.clone());
            }
        }
    }
    let min = Duration::from_secs(3);

    let (base_runs, base_time) = measure(min, || {
        for (_, text) in &files {
            let docs: Result<Vec<serde_json::Value>, _> = serde_saphyr::from_str_multiple(text);
            std::hint::black_box(docs.ok());
        }
    });

    let (load_runs, load_time) = measure(min, || {
        for (name, text) in &files {
            std::hint::black_box(assay_spec::validate::check(name, text));
        }
    });

    let mut compiled = 0usize;
    let (full_runs, full_time) = measure(min, || {
        compiled = 0;
        for (name, text) in &files {
            let loaded = assay_spec::validate::check(name, text);
            for doc in &loaded.documents {
                if let Document::TestWorkflow(wf) = &doc.document {
                    let mut req = CompileRequest::new(wf, &templates);
                    req.strictness = Strictness::Lenient;
                    if assay_spec::compile(&req).is_ok() {
                        compiled += 1;
                    }
                }
            }
        }
    });

    let per_sec = |runs: u32, t: Duration| f64::from(runs) * documents as f64 / t.as_secs_f64();
    let base = per_sec(base_runs, base_time);
    let load = per_sec(load_runs, load_time);
    let full = per_sec(full_runs, full_time);
    println!(
        "corpus: {} files, {documents} documents, {:.0} KiB; {compiled} workflows compile",
        files.len(),
        bytes as f64 / 1024.0
    );
    println!("baseline  serde-saphyr -> Value        {base:>10.0} documents/s");
    println!(
        "assay     load + validate              {load:>10.0} documents/s  ({:.2}x the baseline's time)",
        base / load
    );
    println!(
        "assay     load + validate + compile    {full:>10.0} documents/s  ({:.2}x the baseline's time)",
        base / full
    );
}
