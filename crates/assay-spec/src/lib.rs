//! Testkube-compatible TestWorkflow spec: typed documents, YAML loading with locations,
//! validation, templates and the compiler that turns a workflow into a [`plan::Plan`].
//!
//! This crate is pure: no I/O beyond what the caller hands it, no async. That keeps it
//! fuzzable and snapshot-testable in isolation.

pub mod builtin;
pub mod compile;
pub mod config;
mod deserialize;
pub mod diagnostic;
pub mod duration;
pub mod gitmatch;
pub mod load;
pub mod located;
mod lower;
pub mod merge;
pub mod model;
pub mod plan;
pub mod references;
pub mod resolve;
pub mod schedule;
pub mod status;
pub mod strategy;
pub mod suggest;
pub mod template;
pub mod trigger_values;
pub mod triggers;
pub mod validate;

pub use compile::{CompileRequest, Compiled, compile};
pub use config::Strictness;
pub use template::TemplateSet;
