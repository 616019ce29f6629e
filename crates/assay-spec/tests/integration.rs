//! The integration tests of this crate, in one binary (one link instead of one per file).
//! Add a test file here as a module.

mod architecture;
mod bad_input;
mod compile;
mod conformance;
mod plan_snapshots;
