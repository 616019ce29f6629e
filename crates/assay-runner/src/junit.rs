//! JUnit ingestion: an artifact that is JUnit XML (recognised by content) is parsed as a
//! stream on a blocking thread and its cases recorded in batches, so a 200 MB report costs
//! bounded memory; its summary becomes one of the execution's reports. A report that does not
//! parse to its end keeps the cases read before the error, and the error is recorded on the
//! report: it never fails or loses the execution. Every text of a case is masked with the
//! execution's masker before it is recorded: a test's output may print a secret.

use std::io::Read;
use std::path::Path;

use assay_engine::Masker;
use assay_reports::{JunitReader, Summary, TestCase, is_junit};
use assay_store::{CaseSource, Report, Store, StoreError};
use serde_json::json;
use tokio::sync::mpsc;

/// Cases recorded per transaction.
const BATCH: usize = 500;

/// Whether the file at `path` starts like a JUnit report.
fn sniff(path: &Path) -> bool {
    let mut head = [0u8; 1024];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    is_junit(&head[..len])
}

enum Message {
    Cases(Vec<TestCase>),
    End(Option<String>),
}

/// Every text field of `case` with the secrets masked.
fn mask_case(masker: &Masker, case: &mut TestCase) {
    let mask = |text: &mut String| {
        if let std::borrow::Cow::Owned(masked) = masker.mask(text) {
            *text = masked;
        }
    };
    mask(&mut case.suite);
    mask(&mut case.name);
    for text in [
        &mut case.class,
        &mut case.file,
        &mut case.message,
        &mut case.output,
    ]
    .into_iter()
    .flatten()
    {
        mask(text);
    }
}

/// Parse and record the artifact at `source` when it is JUnit; `Ok(None)` when it is not.
/// Only a failure to record is an error.
pub(crate) async fn ingest(
    store: &Store,
    id: &str,
    workflow: &str,
    source: CaseSource,
    file: &Path,
    masker: &Masker,
) -> Result<Option<Report>, StoreError> {
    let path = file.to_path_buf();
    let is_report = tokio::task::spawn_blocking({
        let path = path.clone();
        move || sniff(&path)
    })
    .await
    .unwrap_or(false);
    if !is_report {
        return Ok(None);
    }
    // Bounded channel: the parser waits for the store, so memory stays bounded.
    let (tx, mut rx) = mpsc::channel::<Message>(2);
    let parser = tokio::task::spawn_blocking(move || {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Message::End(Some(format!("open the report: {e}"))));
                return;
            }
        };
        let mut batch = Vec::with_capacity(BATCH);
        let mut error = None;
        for item in JunitReader::new(file) {
            match item {
                Ok(case) => {
                    batch.push(case);
                    if batch.len() == BATCH
                        && tx
                            .blocking_send(Message::Cases(std::mem::take(&mut batch)))
                            .is_err()
                    {
                        return;
                    }
                }
                Err(e) => error = Some(e.to_string()),
            }
        }
        if !batch.is_empty() && tx.blocking_send(Message::Cases(batch)).is_err() {
            return;
        }
        let _ = tx.blocking_send(Message::End(error));
    });
    let mut summary = Summary::default();
    let mut error = Some("the report parser stopped unexpectedly".to_string());
    while let Some(message) = rx.recv().await {
        match message {
            Message::Cases(mut cases) => {
                if !masker.is_empty() {
                    cases.iter_mut().for_each(|c| mask_case(masker, c));
                }
                cases.iter().for_each(|c| summary.add(c));
                store.add_test_cases(id, workflow, &source, &cases).await?;
            }
            Message::End(e) => error = e,
        }
    }
    let _ = parser.await;
    let mut data = json!({ "summary": summary });
    if let Some(e) = error {
        data["error"] = json!(masker.mask(&e));
    }
    let report = Report {
        step_ref: source.step_ref.clone(),
        kind: "junit".into(),
        file: source.report_file.clone(),
        data,
    };
    store.add_report(id, &report).await?;
    Ok(Some(report))
}
