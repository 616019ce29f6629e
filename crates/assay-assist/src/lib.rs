//! The workflow assistant: what test tools a repository uses ([`detect`]) and a TestWorkflow for
//! each that passes `assay validate` ([`draft`]). Deterministic and offline: the same folder
//! gives the same YAML.

pub mod ask;
pub mod detect;
pub mod draft;

pub use detect::{Detected, Project, Tool, detect, detect_listing};
pub use draft::{Draft, DraftOptions, check, draft, render};

/// What to say when a repository shows no test tool: what detection looks at.
pub fn nothing_found_hint() -> String {
    let names: Vec<&str> = Tool::ALL.iter().map(|t| t.as_str()).collect();
    format!(
        "Assay knows {} by their configuration files, package.json and test file names",
        names.join(", ")
    )
}
