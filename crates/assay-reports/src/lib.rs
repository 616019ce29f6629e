//! Test results for Assay: JUnit XML in (a streaming parser with bounded memory) and out,
//! Testkube's report summary, flaky-test detection over a test's history, and the durations
//! of cases for the shard planner ([`shard_durations`], into [`assay_shard::Durations`]).
//!
//! Pure and synchronous: no I/O beyond reading the [`std::io::Read`] a caller hands in, no
//! clock (callers pass "now"), no async. The store keeps the history; this crate judges it.
//!
//! ```
//! use assay_reports::{CaseStatus, JunitReader, Summary};
//! let xml = br#"<testsuite name="math"><testcase classname="m" name="adds" time="0.5"/>
//!   <testcase name="divides"><failure message="division by zero"/></testcase></testsuite>"#;
//! let mut summary = Summary::default();
//! for case in JunitReader::new(&xml[..]) {
//!     summary.add(&case.unwrap());
//! }
//! assert_eq!((summary.tests, summary.passed, summary.failed), (2, 1, 1));
//! ```

mod case;
mod excerpt;
pub mod flaky;
mod junit;
mod limit;
pub mod quarantine;
mod signature;
mod write;

pub use case::{CaseStatus, Summary, TestCase, shard_durations};
pub use excerpt::Excerpt;
pub use junit::{JunitReader, ParseError, ParseOptions, is_junit, parse_all};
pub use signature::{SIGNATURE_LIMIT, signature};
pub use write::write_junit;
