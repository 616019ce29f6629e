//! Typing a loaded document with every problem reported: `serde_path_to_error` gives the JSON
//! path of an error, [`explain`] turns serde's message into a located diagnostic with a hint,
//! and [`repair`] removes or replaces the offending node so deserialization can run again (at
//! most [`MAX_ERRORS_PER_DOCUMENT`] times). Split from `load.rs`, which reads the YAML.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::load::{Locations, MAX_ERRORS_PER_DOCUMENT};
use crate::located;
use crate::suggest;

pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub index: usize,
    pub locations: &'a Locations,
}

/// One step of a JSON path, as `serde_path_to_error` reports it.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_string(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => out = located::join_key(&out, k),
            Seg::Index(i) => out = located::join_index(&out, *i),
        }
    }
    out
}

fn node_at<'v>(value: &'v mut Value, segs: &[Seg]) -> Option<&'v mut Value> {
    let mut cur = value;
    for seg in segs {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(map)) => map.get_mut(k)?,
            (Seg::Index(i), Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Deserialize `T` from `work`, reporting every error rather than the first: after each error the
/// offending node is removed or replaced with a neutral value and deserialization runs again.
pub(crate) fn deserialize_all<T: DeserializeOwned>(
    ctx: &Ctx<'_>,
    work: Value,
    out: &mut Vec<Diagnostic>,
) -> Option<T> {
    match deserialize_repaired(ctx, work, out)? {
        (doc, true) => Some(doc),
        (_, false) => None,
    }
}

/// [`deserialize_all`], also giving the repaired value when there were errors (`false`: it is
/// the document without its bad parts).
pub(crate) fn deserialize_repaired<T: DeserializeOwned>(
    ctx: &Ctx<'_>,
    mut work: Value,
    out: &mut Vec<Diagnostic>,
) -> Option<(T, bool)> {
    let mut reported = 0usize;
    // Nodes we invented to get past a missing field: errors there are ours, not the user's.
    let mut invented: Vec<(Vec<Seg>, usize)> = Vec::new();
    for _ in 0..MAX_ERRORS_PER_DOCUMENT * 2 {
        let err = match serde_path_to_error::deserialize::<_, T>(&work) {
            Ok(doc) => return Some((doc, reported == 0)),
            Err(err) => err,
        };
        let segs: Vec<Seg> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                _ => None,
            })
            .collect();
        let message = err.inner().to_string();

        // An error inside something we invented: try the next stand-in, silently.
        if let Some(slot) = invented.iter_mut().find(|(p, _)| segs.starts_with(p)) {
            slot.1 += 1;
            let stand_in = STAND_INS.get(slot.1)?;
            let p = slot.0.clone();
            *node_at(&mut work, &p)? = stand_in();
            continue;
        }

        let problem = explain(ctx, &segs, &message);
        reported += 1;
        out.push(problem.diagnostic);
        if reported >= MAX_ERRORS_PER_DOCUMENT {
            return None;
        }
        if !repair(&mut work, &segs, &problem.repair, &mut invented) {
            return None;
        }
    }
    None
}

const STAND_INS: &[fn() -> Value] = &[
    || Value::String(String::new()),
    || Value::Object(Default::default()),
    || Value::Array(Vec::new()),
    || Value::from(0),
    || Value::Bool(false),
];

enum Repair {
    /// Remove the key at the path from its mapping.
    RemoveKey,
    /// Put this value where the bad one was.
    Replace(Value),
    /// Insert a stand-in for a missing field of the mapping at the path.
    Insert(String),
}

struct Explained {
    diagnostic: Diagnostic,
    repair: Repair,
}

/// Turn one serde message into a user-facing diagnostic and a way to get past it.
fn explain(ctx: &Ctx<'_>, segs: &[Seg], message: &str) -> Explained {
    let path = path_string(segs);
    let field = match segs.last() {
        Some(Seg::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    let at_value = |m: String| {
        let (l, c) = ctx.locations.locate(&path).unwrap_or((1, 1));
        Diagnostic::error(ctx.file, l, c, m)
            .in_document(ctx.index)
            .at_path(&path)
    };

    if let Some(name) = backticked(message, "unknown field `") {
        let (l, c) = ctx.locations.locate_key(&path).unwrap_or((1, 1));
        let candidates = suggest::expected_names(message);
        let hint = suggest::closest(name, candidates.iter().copied())
            .map(|c| format!("did you mean `{c}`?"));
        let hint = hint.or_else(|| special_unknown_field_hint(name, segs));
        return Explained {
            diagnostic: Diagnostic::error(ctx.file, l, c, format!("unknown field `{name}`"))
                .with_hint_opt(hint)
                .in_document(ctx.index)
                .at_path(&path),
            repair: Repair::RemoveKey,
        };
    }
    if let Some(name) = backticked(message, "missing field `") {
        return Explained {
            diagnostic: at_value(format!("missing required field `{name}`")),
            repair: Repair::Insert(name.to_string()),
        };
    }
    if let Some(value) = backticked(message, "unknown variant `") {
        let candidates = suggest::expected_names(message);
        let what = field.map_or(String::new(), |f| format!(" for `{f}`"));
        let hint = match suggest::closest(value, candidates.iter().copied()) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!(
                "use one of {}",
                candidates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let replacement = candidates
            .first()
            .map_or(Value::Null, |c| Value::String(c.to_string()));
        return Explained {
            diagnostic: at_value(format!("unknown value `{value}`{what}")).with_hint(hint),
            repair: Repair::Replace(replacement),
        };
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let found_plain = describe_found(found);
        let expected_plain = describe_expected(expected, field);
        let mut hint = None;
        if expected_plain == "a string"
            && matches!(found_plain, "a boolean" | "a number")
            && let Some((a, b)) = ctx.locations.source_range(&path)
            && let Some(written) = ctx.text.get(a..b)
        {
            hint = Some(format!(
                "YAML reads `{written}` as {found_plain}; quote it (\"{written}\") to keep it a string"
            ));
        }
        if found_plain == "a string" && expected_plain.starts_with("a list") {
            hint = Some("write each item on its own line starting with `- `".to_string());
        }
        return Explained {
            diagnostic: at_value(format!("expected {expected_plain}, found {found_plain}"))
                .with_hint_opt(hint),
            repair: Repair::Replace(stand_in_for(expected)),
        };
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return Explained {
            diagnostic: at_value(format!(
                "expected {}, found {}",
                describe_expected(expected, field),
                found.replace('`', "")
            )),
            repair: Repair::Replace(stand_in_for(expected)),
        };
    }
    if message.starts_with("data did not match any variant of untagged enum DynamicList") {
        return Explained {
            diagnostic: at_value("expected a list or an expression string".to_string()),
            repair: Repair::Replace(Value::Array(Vec::new())),
        };
    }
    Explained {
        diagnostic: at_value(message.to_string()),
        repair: Repair::Replace(Value::Null),
    }
}

/// Fields people put in the wrong place, with where they belong.
fn special_unknown_field_hint(name: &str, segs: &[Seg]) -> Option<String> {
    let top_level = segs.len() == 1;
    match name {
        "steps" | "setup" | "after" | "container" | "content" | "config" | "services"
            if top_level =>
        {
            Some(format!("`{name}` belongs under `spec`"))
        }
        "name" if top_level => Some("`name` belongs under `metadata`".to_string()),
        "image" | "env" | "command" | "args" | "imagePullPolicy" | "envFrom" | "resources"
        | "securityContext" | "volumeMounts"
            if in_step(segs) =>
        {
            Some(format!(
                "`{name}` belongs under `container:` (defaults for the step and its children) or `run:`"
            ))
        }
        _ => None,
    }
}

/// Whether the mapping holding the last segment is a step (`...steps[2].x`).
fn in_step(segs: &[Seg]) -> bool {
    matches!(
        segs,
        [.., Seg::Key(list), Seg::Index(_), Seg::Key(_)] if matches!(list.as_str(), "steps" | "setup" | "after")
    )
}

/// The text between `prefix` and the next backtick.
fn backticked<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

fn describe_found(found: &str) -> &'static str {
    if found.starts_with("string") {
        "a string"
    } else if found.starts_with("boolean") {
        "a boolean"
    } else if found.starts_with("integer") || found.starts_with("floating point") {
        "a number"
    } else if found.starts_with("map") {
        "a mapping"
    } else if found.starts_with("sequence") {
        "a list"
    } else if found.starts_with("null") || found.starts_with("unit") {
        "nothing"
    } else {
        "something else"
    }
}

fn describe_expected(expected: &str, field: Option<&str>) -> String {
    let e = expected.trim();
    if e.contains("sequence") {
        let of = match field {
            Some("steps" | "setup" | "after") => " of steps",
            Some("env") => " of environment variables (`- name: X` and `value: ...`)",
            Some("use") => " of template references (`- name: ...`)",
            Some("paths" | "command" | "args" | "enum") => " of strings",
            Some("files") => " of files",
            Some("events") => " of events",
            Some("transfer" | "fetch") => " of transfers",
            _ => "",
        };
        return format!("a list{of}");
    }
    if e.starts_with("struct ") || e.contains("map") {
        return "a mapping".to_string();
    }
    if e == "a string" || e == "string" {
        return "a string".to_string();
    }
    if e.contains("boolean") || e == "bool" {
        return "a boolean (`true` or `false`)".to_string();
    }
    if matches!(
        e,
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize"
    ) || e.contains("integer")
    {
        let range = match e {
            "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
            _ => "an integer",
        };
        return range.to_string();
    }
    if matches!(e, "f32" | "f64") {
        return "a number".to_string();
    }
    e.to_string()
}

fn stand_in_for(expected: &str) -> Value {
    let e = expected.trim();
    if e.contains("sequence") {
        Value::Array(Vec::new())
    } else if e.starts_with("struct ") || e.contains("map") {
        Value::Object(Default::default())
    } else if e.contains("string") {
        Value::String(String::new())
    } else if e.contains("boolean") || e == "bool" {
        Value::Bool(false)
    } else if e.starts_with('i')
        || e.starts_with('u')
        || e.starts_with('f')
        || e.contains("integer")
    {
        Value::from(0)
    } else {
        Value::Null
    }
}

fn repair(
    work: &mut Value,
    segs: &[Seg],
    how: &Repair,
    invented: &mut Vec<(Vec<Seg>, usize)>,
) -> bool {
    match how {
        Repair::RemoveKey => {
            let Some((Seg::Key(key), parent)) = segs.split_last() else {
                return false;
            };
            match node_at(work, parent) {
                Some(Value::Object(map)) => map.shift_remove(key).is_some(),
                _ => false,
            }
        }
        Repair::Replace(with) => match node_at(work, segs) {
            Some(node) if node != with => {
                *node = with.clone();
                true
            }
            Some(_) => {
                // Replacing made no difference: drop the node instead, if it is a field.
                repair(work, segs, &Repair::RemoveKey, invented)
            }
            None => false,
        },
        Repair::Insert(name) => match node_at(work, segs) {
            Some(Value::Object(map)) if !map.contains_key(name) => {
                map.insert(name.clone(), STAND_INS[0]());
                let mut p = segs.to_vec();
                p.push(Seg::Key(name.clone()));
                invented.push((p, 0));
                true
            }
            _ => false,
        },
    }
}
