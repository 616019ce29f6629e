//! `assay apply -f PATH...`: store workflows and templates, and Testkube `Webhook` and
//! `TestTrigger` documents (which `assay server` acts on). Every file is checked first; nothing
//! is stored when any document has an error. What was done is a confirmation, not data: it goes
//! to stderr (README, "Output").

use std::collections::BTreeMap;
use std::path::PathBuf;

use assay_spec::load::{Kind, ResourceKind};
use assay_store::{ApplyOutcome, DefinitionKind};

use crate::error::Reported;
use crate::remote::ConnArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders (every .yaml/.yml file under a folder)
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    conn: ConnArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let mut docs = Vec::new();
    let mut resources = Vec::new();
    let mut errors = 0;
    for path in crate::files::expand(&args.files)? {
        let file = crate::files::load_file(&path)?;
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for d in &file.loaded.diagnostics {
            eprintln!("{d}");
        }
        if file.loaded.has_errors() {
            errors += file.loaded.invalid();
            continue;
        }
        for doc in &file.loaded.documents {
            let kind = match doc.kind {
                Kind::TestWorkflow => DefinitionKind::Workflow,
                Kind::TestWorkflowTemplate => DefinitionKind::Template,
            };
            let labels: BTreeMap<String, String> = match &doc.document {
                assay_spec::model::Document::TestWorkflow(w) => &w.metadata.labels,
                assay_spec::model::Document::TestWorkflowTemplate(t) => &t.metadata.labels,
            }
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
            docs.push((
                kind,
                doc.name.clone(),
                document_text(&text, doc.line),
                labels,
            ));
        }
        for doc in &file.loaded.resources {
            let labels: BTreeMap<String, String> = doc
                .resource
                .labels()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            resources.push((
                doc.kind,
                doc.name.clone(),
                document_text(&text, doc.line),
                labels,
            ));
        }
    }
    if errors > 0 {
        eprintln!("\n{errors} invalid document(s); nothing stored");
        return Err(Reported(crate::exit::INVALID).into());
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        let backend = args.conn.backend().await?;
        for (kind, name, yaml, labels) in docs {
            let (outcome, revision) = backend.apply(kind, &name, &yaml, &labels).await?;
            let what = match outcome {
                ApplyOutcome::Created => "created",
                ApplyOutcome::Updated => "updated",
                ApplyOutcome::Unchanged => "unchanged",
            };
            match revision {
                Some(revision) => eprintln!("{} {name} {what} (revision {revision})", kind.noun()),
                None => eprintln!("{} {name} {what}", kind.noun()),
            }
        }
        for (kind, name, yaml, labels) in resources {
            let outcome = backend.apply_resource(kind, &name, &yaml, &labels).await?;
            let (noun, what) = (resource_noun(kind), outcome_word(outcome));
            eprintln!("{noun} {name} {what}");
            if kind == ResourceKind::TestTrigger {
                eprintln!(
                    "note: {noun} {name} is stored; a git `content` trigger is polled by every \
                     `assay server` on this store, the others act on Kubernetes events where \
                     `assay server --kubernetes` watches its namespace"
                );
            }
        }
        backend.close().await;
        Ok(crate::exit::SUCCESS)
    })
}

fn resource_noun(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Webhook => "webhook",
        ResourceKind::TestTrigger => "test trigger",
    }
}

fn outcome_word(outcome: ApplyOutcome) -> &'static str {
    match outcome {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Updated => "updated",
        ApplyOutcome::Unchanged => "unchanged",
    }
}

/// The text of the YAML document whose content starts at 1-based `line`: the comments just
/// above it, then everything up to the next `---` or `...` line. Comments and formatting are
/// kept as written.
fn document_text(file: &str, line: usize) -> String {
    let lines: Vec<&str> = file.lines().collect();
    let is_marker = |l: &str| l.starts_with("---") || l.starts_with("...");
    let mut start = line.saturating_sub(1).min(lines.len());
    while start > 0 {
        let above = lines[start - 1].trim_start();
        if is_marker(lines[start - 1]) || !(above.is_empty() || above.starts_with('#')) {
            break;
        }
        start -= 1;
    }
    while start < lines.len() && (lines[start].trim().is_empty() || is_marker(lines[start])) {
        start += 1;
    }
    let mut out = String::new();
    for l in &lines[start..] {
        if is_marker(l) {
            break;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::document_text;

    #[test]
    fn documents_are_cut_at_separators() {
        let file = "kind: A\nx: 1\n---\n# c\nkind: B\n...\n---\nkind: C\n";
        assert_eq!(document_text(file, 1), "kind: A\nx: 1\n");
        assert_eq!(document_text(file, 5), "# c\nkind: B\n");
        assert_eq!(document_text(file, 8), "kind: C\n");
    }
}
