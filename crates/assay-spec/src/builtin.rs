//! Templates that ship inside Assay: equivalents of Testkube's `official/*` templates and
//! `distribute/evenly`, written for a host without Kubernetes (the tool runs from `PATH`; the
//! `version` config is accepted and not used to pick an image). A template stored or given
//! with the same name wins: [`crate::TemplateSet::get`] looks here last.

use std::sync::OnceLock;

use crate::load::load;
use crate::model::{Document, TestWorkflowTemplate};
use crate::template::{display_name, internal_name};

/// One built-in template: its internal name (`official--k6--v1`) and YAML source.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinSource {
    pub name: &'static str,
    pub yaml: &'static str,
}

macro_rules! builtin {
    ($name:literal) => {
        BuiltinSource {
            name: $name,
            yaml: include_str!(concat!("../templates/", $name, ".yaml")),
        }
    };
}

/// Every built-in template, sorted by name.
pub const SOURCES: &[BuiltinSource] = &[
    builtin!("assay--scan-secrets--v1"),
    builtin!("distribute--evenly"),
    builtin!("official--artillery--beta"),
    builtin!("official--artillery--v1"),
    builtin!("official--cypress--beta"),
    builtin!("official--cypress--v1"),
    builtin!("official--gradle--beta"),
    builtin!("official--gradle--v1"),
    builtin!("official--jmeter--beta"),
    builtin!("official--jmeter--v1"),
    builtin!("official--jmeter--v2"),
    builtin!("official--k6--beta"),
    builtin!("official--k6--v1"),
    builtin!("official--maven--beta"),
    builtin!("official--maven--v1"),
    builtin!("official--playwright--beta"),
    builtin!("official--playwright--v1"),
    builtin!("official--postman--beta"),
    builtin!("official--postman--v1"),
];

/// The YAML source of the built-in template `name` (`official/k6/v1` or `official--k6--v1`).
pub fn source(name: &str) -> Option<&'static BuiltinSource> {
    let name = internal_name(name);
    SOURCES.iter().find(|s| s.name == name)
}

/// Every built-in template, parsed once, in [`SOURCES`] order.
pub fn all() -> &'static [TestWorkflowTemplate] {
    static PARSED: OnceLock<Vec<TestWorkflowTemplate>> = OnceLock::new();
    PARSED.get_or_init(|| SOURCES.iter().filter_map(parse).collect())
}

/// The built-in template `name` (`official/k6/v1` or `official--k6--v1`).
pub fn get(name: &str) -> Option<&'static TestWorkflowTemplate> {
    let name = internal_name(name);
    all().iter().find(|t| t.metadata.name == name)
}

/// Display names of every built-in template (`official/k6/v1`).
pub fn names() -> impl Iterator<Item = String> {
    all().iter().map(|t| display_name(&t.metadata.name))
}

/// A source that does not load is left out (the crate's tests check every one loads).
fn parse(s: &BuiltinSource) -> Option<TestWorkflowTemplate> {
    let loaded = load(s.name, s.yaml);
    if loaded.has_errors() {
        return None;
    }
    loaded.documents.into_iter().find_map(|d| match d.document {
        Document::TestWorkflowTemplate(t) => Some(t),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_source_loads_without_problems_under_its_own_name() {
        for s in SOURCES {
            let loaded = load(s.name, s.yaml);
            assert!(
                loaded.diagnostics.is_empty(),
                "{}: {:?}",
                s.name,
                loaded.diagnostics
            );
            assert_eq!(loaded.documents.len(), 1, "{}", s.name);
            assert_eq!(loaded.documents[0].name, s.name);
            assert!(!get(s.name).unwrap().description.is_empty(), "{}", s.name);
        }
        assert_eq!(all().len(), SOURCES.len());
    }

    #[test]
    fn lookup_takes_display_and_internal_names() {
        assert_eq!(source("official/k6/v1").unwrap().name, "official--k6--v1");
        assert!(get("distribute/evenly").is_some());
        assert!(get("official--jmeter--v2").is_some());
        assert!(get("official/soapui/beta").is_none());
        assert_eq!(names().count(), SOURCES.len());
    }
}
