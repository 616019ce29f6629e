//! Execution and step statuses, with Testkube's names. They are wire types too, so they are
//! defined once in `assay-api` (which depends on no Assay crate) and named here for the engine.

pub use assay_api::status::{ExecutionStatus, StepStatus};
