//! The integration tests of this crate, in one binary (one link instead of one per file).
//! Add a test file here as a module.

#[macro_use]
mod common;
mod groups;
mod runtime;
mod steps;
mod tarball;
