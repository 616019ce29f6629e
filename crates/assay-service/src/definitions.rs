//! Stored documents, every kind behind one [`DocumentKind`]: check a submitted text as
//! `assay validate` does (problems with line:col), then list, get, create, update and delete.
//! Workflows and templates are revisioned definitions; `Webhook` and `TestTrigger` documents are
//! stored resources (latest text only). The typed reads — the stored workflow of a name, every
//! stored template — are [`workflow`] and [`templates`].

use std::collections::BTreeMap;

use assay_spec::load::{Kind, ResourceKind};
use assay_spec::triggers::Resource;
use assay_store::{ApplyOutcome, DefinitionKind, DeleteMode, LabelSelector, Store};
use serde_json::Value;

pub use assay_runner::stored::{StoredError, templates, workflow, workflow_from_yaml};

use crate::error::{Problem, ServiceError, ServiceResult};

/// Every kind of document Assay stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    Workflow,
    Template,
    Webhook,
    TestTrigger,
}

/// Where a kind is kept.
enum Storage {
    Definition(DefinitionKind),
    Resource(ResourceKind),
}

impl DocumentKind {
    fn storage(self) -> Storage {
        match self {
            DocumentKind::Workflow => Storage::Definition(DefinitionKind::Workflow),
            DocumentKind::Template => Storage::Definition(DefinitionKind::Template),
            DocumentKind::Webhook => Storage::Resource(ResourceKind::Webhook),
            DocumentKind::TestTrigger => Storage::Resource(ResourceKind::TestTrigger),
        }
    }

    /// How messages name the kind (`workflow`, `template`, `Webhook`, `TestTrigger`).
    pub fn noun(self) -> &'static str {
        match self.storage() {
            Storage::Definition(k) => k.noun(),
            Storage::Resource(k) => k.as_str(),
        }
    }

    /// The kind of a stored definition.
    pub fn of_definition(kind: DefinitionKind) -> DocumentKind {
        match kind {
            DefinitionKind::Workflow => DocumentKind::Workflow,
            DefinitionKind::Template => DocumentKind::Template,
        }
    }

    /// The kind of a stored resource.
    pub fn of_resource(kind: ResourceKind) -> DocumentKind {
        match kind {
            ResourceKind::Webhook => DocumentKind::Webhook,
            ResourceKind::TestTrigger => DocumentKind::TestTrigger,
        }
    }
}

/// A checked document: its name, labels, the YAML text to store and its JSON.
#[derive(Debug, Clone)]
pub struct Checked {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub yaml: String,
    pub raw: Value,
}

fn invalid(kind: DocumentKind, problems: Vec<Problem>) -> ServiceError {
    let first = problems
        .first()
        .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
        .unwrap_or_default();
    ServiceError::Invalid {
        detail: format!(
            "the {} is not valid ({} problem(s)); first: {first}",
            kind.noun(),
            problems.len()
        ),
        problems,
    }
}

/// Check a submitted text as `assay validate` does. JSON is YAML too, so both go through the
/// same loader and problems point into the text that was sent; `is_yaml` says which it claims
/// to be (JSON must parse as JSON). A webhook's templates must parse too.
pub fn check(kind: DocumentKind, body: &[u8], is_yaml: bool) -> ServiceResult<Checked> {
    if !is_yaml && serde_json::from_slice::<Value>(body).is_err() {
        return Err(ServiceError::BadRequest(
            "the body is not JSON; send YAML with `Content-Type: text/yaml`".into(),
        ));
    }
    let loaded = assay_spec::validate::check_bytes("request body", body);
    if loaded.has_errors() {
        let problems = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| Problem {
                line: d.line,
                column: d.column,
                message: d.message.clone(),
                hint: d.hint.clone(),
                path: d.path.clone(),
            })
            .collect();
        return Err(invalid(kind, problems));
    }
    let (name, labels, raw) = match kind.storage() {
        Storage::Definition(def) => {
            let [doc] = loaded.documents.as_slice() else {
                return Err(ServiceError::BadRequest(format!(
                    "send exactly one document (found {})",
                    loaded.documents.len()
                )));
            };
            let wanted = match def {
                DefinitionKind::Workflow => Kind::TestWorkflow,
                DefinitionKind::Template => Kind::TestWorkflowTemplate,
            };
            if doc.kind != wanted {
                return Err(ServiceError::BadRequest(format!(
                    "this endpoint takes a {wanted:?}, not a {:?}",
                    doc.kind
                )));
            }
            let labels = match &doc.document {
                assay_spec::model::Document::TestWorkflow(w) => &w.metadata.labels,
                assay_spec::model::Document::TestWorkflowTemplate(t) => &t.metadata.labels,
            };
            (doc.name.clone(), labels.clone(), doc.raw.clone())
        }
        Storage::Resource(wanted) => {
            if !loaded.documents.is_empty() || loaded.resources.len() != 1 {
                return Err(ServiceError::BadRequest(format!(
                    "send exactly one {} document",
                    wanted.as_str()
                )));
            }
            let doc = &loaded.resources[0];
            if doc.kind != wanted {
                return Err(ServiceError::BadRequest(format!(
                    "this endpoint takes a {}, not a {}",
                    wanted.as_str(),
                    doc.kind.as_str()
                )));
            }
            if let Resource::Webhook(w) = &doc.resource {
                check_webhook_templates(kind, doc, w)?;
            }
            (
                doc.name.clone(),
                doc.resource.labels().clone(),
                doc.raw.clone(),
            )
        }
    };
    let yaml = if is_yaml {
        String::from_utf8_lossy(body).into_owned()
    } else {
        serde_saphyr::to_string(&raw).map_err(|e| ServiceError::Internal(e.to_string()))?
    };
    Ok(Checked {
        name,
        labels: labels.into_iter().collect(),
        yaml,
        raw,
    })
}

/// A webhook's `uri`, `headers` and `payloadTemplate` are minijinja templates: they must parse;
/// its selector must be one.
fn check_webhook_templates(
    kind: DocumentKind,
    doc: &assay_spec::load::LoadedResource,
    w: &assay_spec::triggers::Webhook,
) -> ServiceResult<()> {
    let env = minijinja::Environment::new();
    let mut templates = vec![("spec.uri".to_string(), w.spec.uri.as_str())];
    templates.extend(
        w.spec
            .headers
            .iter()
            .map(|(k, v)| (format!("spec.headers.{k}"), v.as_str())),
    );
    templates.push((
        "spec.payloadTemplate".to_string(),
        w.spec.payload_template.as_str(),
    ));
    let mut problems = Vec::new();
    for (path, text) in templates {
        if let Err(e) = env.template_from_str(text) {
            let (line, column) = doc.locations.locate(&path).unwrap_or((doc.line, 1));
            problems.push(Problem {
                line,
                column,
                message: format!("the template does not parse: {e}"),
                hint: Some(
                    "templates are Jinja-like (minijinja), not Go templates: `{{ executionName }}`, not `{{ .TestWorkflowExecution.Name }}`"
                        .to_string(),
                ),
                path: Some(path),
            });
        }
    }
    if !problems.is_empty() {
        return Err(invalid(kind, problems));
    }
    if LabelSelector::parse(&w.spec.selector).is_err() {
        return Err(ServiceError::BadRequest(format!(
            "`spec.selector` `{}` is not a label selector",
            w.spec.selector
        )));
    }
    Ok(())
}

/// The JSON of a stored text.
fn to_json(kind: DocumentKind, name: &str, yaml: &str) -> ServiceResult<Value> {
    let loaded = assay_spec::load::load(name, yaml);
    let raw = match kind.storage() {
        Storage::Definition(_) => loaded.documents.into_iter().next().map(|d| d.raw),
        Storage::Resource(_) => loaded.resources.into_iter().next().map(|d| d.raw),
    };
    raw.ok_or_else(|| {
        ServiceError::Internal(format!("stored {} `{name}` does not load", kind.noun()))
    })
}

/// The stored documents of every kind, as JSON.
#[derive(Clone)]
pub struct Definitions {
    store: Store,
}

impl Definitions {
    pub fn new(store: Store) -> Self {
        Definitions { store }
    }

    /// The documents of `kind` that `selector` picks (and whose name holds `text`, ignoring
    /// case), by name.
    pub async fn list(
        &self,
        kind: DocumentKind,
        selector: &str,
        text: Option<&str>,
    ) -> ServiceResult<Vec<Value>> {
        let selector = LabelSelector::parse(selector).map_err(ServiceError::BadRequest)?;
        let text = text.map(str::to_lowercase);
        let keep = |name: &str| {
            text.as_ref()
                .is_none_or(|t| name.to_lowercase().contains(t))
        };
        let mut out = Vec::new();
        match kind.storage() {
            Storage::Definition(k) => {
                for def in self.store.list_definitions(k, &selector).await? {
                    if keep(&def.name) {
                        out.push(to_json(kind, &def.name, &def.yaml)?);
                    }
                }
            }
            Storage::Resource(k) => {
                for r in self.store.list_resources(k).await? {
                    if selector.matches(&r.labels) && keep(&r.name) {
                        out.push(to_json(kind, &r.name, &r.yaml)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The stored text of `name` (404 when there is none).
    async fn text(&self, kind: DocumentKind, name: &str) -> ServiceResult<String> {
        Ok(match kind.storage() {
            Storage::Definition(k) => self.store.get_definition(k, name, None).await?.yaml,
            Storage::Resource(k) => self.store.get_resource(k, name).await?.yaml,
        })
    }

    /// One document as JSON.
    pub async fn get(&self, kind: DocumentKind, name: &str) -> ServiceResult<Value> {
        let yaml = self.text(kind, name).await?;
        to_json(kind, name, &yaml)
    }

    async fn apply(&self, kind: DocumentKind, doc: &Checked) -> ServiceResult<ApplyOutcome> {
        Ok(match kind.storage() {
            Storage::Definition(k) => {
                self.store
                    .apply(k, &doc.name, &doc.yaml, &doc.labels)
                    .await?
                    .0
            }
            Storage::Resource(k) => {
                self.store
                    .apply_resource(k, &doc.name, &doc.yaml, &doc.labels)
                    .await?
            }
        })
    }

    /// Store a new document; [`ServiceError::Conflict`] when one of its name exists.
    pub async fn create(&self, kind: DocumentKind, doc: &Checked) -> ServiceResult<()> {
        match self.text(kind, &doc.name).await {
            Ok(_) => {
                return Err(ServiceError::Conflict(format!(
                    "{} `{}` exists already; update it with PUT",
                    kind.noun(),
                    doc.name
                )));
            }
            Err(ServiceError::Store(e)) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.apply(kind, doc).await?;
        Ok(())
    }

    /// Replace the stored document `name` (a new revision of a definition).
    pub async fn update(&self, kind: DocumentKind, name: &str, doc: &Checked) -> ServiceResult<()> {
        if doc.name != name {
            return Err(ServiceError::BadRequest(format!(
                "the document is named `{}`, the path `{name}`",
                doc.name
            )));
        }
        self.text(kind, name).await?;
        self.apply(kind, doc).await?;
        Ok(())
    }

    /// Delete `name` (a definition keeps its revisions for the executions that ran them).
    pub async fn delete(&self, kind: DocumentKind, name: &str) -> ServiceResult<()> {
        let deleted = match kind.storage() {
            Storage::Definition(k) => {
                self.store
                    .delete_definition(k, name, DeleteMode::Soft)
                    .await?
            }
            Storage::Resource(k) => self.store.delete_resource(k, name).await?,
        };
        if deleted {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "{} `{name}` not found",
                kind.noun()
            )))
        }
    }
}
