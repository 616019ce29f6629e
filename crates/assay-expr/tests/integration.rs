//! The integration tests of this crate, in one binary (one link instead of one per file).
//! Add a test file here as a module.

mod budget;
mod props;
mod selector;
mod testkube;
