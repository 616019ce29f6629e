//! The workflow assistant: what test tools a repository uses ([`detect`]) and a TestWorkflow for
//! each that passes `assay validate` ([`draft`]). Deterministic and offline: the same folder
//! gives the same YAML.

pub mod ask;
pub mod detect;
pub mod draft;

pub use detect::{Detected, Project, Tool, detect};
pub use draft::{Draft, DraftOptions, check, draft, render};
