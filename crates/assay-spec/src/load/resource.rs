//! The `TestTrigger` and `Webhook` documents: stored and acted on by the server, not compiled.

use serde_json::Value;

use crate::deserialize::{Ctx, deserialize_all};
use crate::diagnostic::Diagnostic;
use crate::triggers::{Resource, TestTrigger, Webhook};

use super::document::RawDoc;
use super::*;

/// The `TestTrigger` / `Webhook` half of [`load_document`]: the same checks (tree problems,
/// `apiVersion`, every serde error located) into [`Loaded::resources`].
pub(super) fn load_resource(doc: RawDoc<'_>, kind: ResourceKind, loaded: &mut Loaded) {
    let RawDoc {
        file,
        text,
        index,
        line,
        column,
        value,
        locations,
        problems,
    } = doc;
    for p in problems {
        let d = if p.warning {
            Diagnostic::warning(file, p.line, p.column, &p.message)
        } else {
            Diagnostic::error(file, p.line, p.column, &p.message)
        };
        loaded.diagnostics.push(
            d.with_hint_opt(p.hint.clone())
                .in_document(index)
                .at_path(&p.path),
        );
    }
    let mut ok = !problems.iter().any(|p| !p.warning);
    let expected = kind.api_version();
    match value.get("apiVersion") {
        Some(Value::String(v)) if v == expected => {}
        None | Some(Value::Null) => {
            ok = false;
            loaded.diagnostics.push(
                Diagnostic::error(file, line, column, "document has no `apiVersion`")
                    .with_hint(format!("add `apiVersion: {expected}`"))
                    .in_document(index),
            );
        }
        Some(other) => {
            ok = false;
            let (l, c) = locations.locate("apiVersion").unwrap_or((line, column));
            let shown = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_string);
            loaded.diagnostics.push(
                Diagnostic::error(file, l, c, format!("unsupported apiVersion `{shown}`"))
                    .with_hint(format!("a {} has `apiVersion: {expected}`", kind.as_str()))
                    .in_document(index)
                    .at_path("apiVersion"),
            );
        }
    }
    let work = typed_input(&value);
    let ctx = Ctx {
        file,
        text,
        index,
        locations: &locations,
    };
    let resource = match kind {
        ResourceKind::TestTrigger => {
            deserialize_all::<TestTrigger>(&ctx, work, &mut loaded.diagnostics)
                .map(|t| Resource::TestTrigger(Box::new(t)))
        }
        ResourceKind::Webhook => deserialize_all::<Webhook>(&ctx, work, &mut loaded.diagnostics)
            .map(|w| Resource::Webhook(Box::new(w))),
    };
    if let (Some(resource), true) = (resource, ok) {
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        loaded.resources.push(LoadedResource {
            index,
            kind,
            name,
            resource,
            raw: value,
            locations,
            line,
        });
    }
}
