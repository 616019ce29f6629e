//! The stored definitions as typed values, read in one place: the workflow of a name, the
//! workflow of a YAML text (a stored definition, or the one an execution ran), and every stored
//! template. The runner's `execute` launcher, the service layer (server, MCP, CLI) and the queue
//! all read them through here.

use assay_spec::TemplateSet;
use assay_spec::model::{Document, TestWorkflow};
use assay_store::{DefinitionKind, LabelSelector, Store, StoreError};

/// Why a stored workflow could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The text is stored but holds no workflow that loads (a definition from an older version).
    #[error("{label} does not load: {problems}")]
    DoesNotLoad { label: String, problems: String },
}

impl StoredError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoredError::Store(e) if e.is_not_found())
    }
}

/// The first `TestWorkflow` of `yaml` (labelled `label` in problems): the loader knows `kind`
/// and `apiVersion` whatever the serializer wrote.
pub fn workflow_from_yaml(label: &str, yaml: &str) -> Result<TestWorkflow, StoredError> {
    let loaded = assay_spec::load::load(label, yaml);
    let problems: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
    loaded
        .documents
        .into_iter()
        .find_map(|d| match d.document {
            Document::TestWorkflow(w) => Some(w),
            Document::TestWorkflowTemplate(_) => None,
        })
        .ok_or_else(|| StoredError::DoesNotLoad {
            label: label.to_string(),
            problems: if problems.is_empty() {
                "it holds no TestWorkflow".into()
            } else {
                problems.join("; ")
            },
        })
}

/// The stored workflow `name`, loaded.
pub async fn workflow(store: &Store, name: &str) -> Result<TestWorkflow, StoredError> {
    let def = store
        .get_definition(DefinitionKind::Workflow, name, None)
        .await?;
    workflow_from_yaml(&format!("stored workflow {name}"), &def.yaml)
}

/// Every stored template (the built-in ones are found by [`TemplateSet::get`] anyway).
pub async fn templates(store: &Store) -> Result<TemplateSet, StoreError> {
    let mut templates = TemplateSet::new();
    for def in store
        .list_definitions(DefinitionKind::Template, &LabelSelector::default())
        .await?
    {
        let loaded = assay_spec::load::load(&format!("stored template {}", def.name), &def.yaml);
        for d in loaded.documents {
            if let Document::TestWorkflowTemplate(t) = d.document {
                templates.insert(t);
            }
        }
    }
    Ok(templates)
}
