//! Policy checks for Assay: Kyverno policies (and their `kyverno-test.yaml` suites) evaluated
//! offline against resource documents. Evaluation is pure; `docs` and `kyverno::suite` read the
//! files they are pointed at.

pub mod check;
pub mod docs;
pub mod kyverno;
pub mod rego;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}
