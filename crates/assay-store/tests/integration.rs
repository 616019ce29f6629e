//! The integration tests of this crate, in one binary (one link instead of one per file).
//! Add a test file here as a module.

#[macro_use]
mod common;
mod dashboard;
mod full_disk;
mod git_heads;
mod hooks;
mod insights;
mod named_secrets;
mod quarantines;
mod s3;
mod schedules;
mod secrets_at_rest;
mod selector;
mod store;
mod test_cases;
mod tokens;
