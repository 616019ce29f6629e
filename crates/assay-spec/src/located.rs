//! A YAML document as a tree in which every key and value knows its line and column, and the
//! [`Locations`] side table that maps JSON paths (`spec.steps[0].shell`) back to them.
//!
//! serde-saphyr deserializes each document into [`Spanned<Node>`] through `deserialize_any`, so
//! nothing about the document's shape is assumed here; [`to_json`] then turns that tree into the
//! `serde_json::Value` the typed model is read from, recording where each path came from.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// One YAML node, whatever its shape. Mapping keys are nodes too (YAML allows `1: x` and
/// `[a, b]: x`); [`to_json`] turns scalar keys into strings as Kubernetes does and reports the rest.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        Ok(u64::try_from(v).map_or(Node::Float(v as f64), Node::UInt))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// 1-based line and column (in characters) of a spanned node.
pub(crate) fn position<T>(node: &Spanned<T>) -> (usize, usize) {
    (
        node.referenced.line() as usize,
        node.referenced.column() as usize,
    )
}

fn byte_range<T>(node: &Spanned<T>) -> Option<(usize, usize)> {
    let span = node.referenced.span();
    let start = span.byte_offset()? as usize;
    let len = span.byte_len()? as usize;
    (len > 0).then_some((start, start + len))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Where the mapping key naming this path is, for paths that end in a key.
    key: Option<(usize, usize)>,
    /// Where the value starts.
    value: (usize, usize),
    /// Byte range of the value's source text, for scalars.
    text: Option<(usize, usize)>,
}

/// Where each JSON path of a document came from in its file.
///
/// Paths are written as `serde_path_to_error` prints them: keys joined with `.`, sequence
/// indexes as `[n]` (`spec.steps[2].template.name`); the document root is `""` (or `"."`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations {
    entries: HashMap<String, Entry>,
}

impl Locations {
    /// Line and column (1-based) of the value at `json_path`; when the path does not exist in the
    /// document (a field the compiler expected but the user left out), those of its nearest
    /// ancestor that does.
    pub fn locate(&self, json_path: &str) -> Option<(usize, usize)> {
        self.nearest(json_path).map(|e| e.value)
    }

    /// Line and column of the value at exactly `json_path`, if the document has it.
    pub fn locate_exact(&self, json_path: &str) -> Option<(usize, usize)> {
        self.entries.get(normalize(json_path)).map(|e| e.value)
    }

    /// Line and column of the mapping key that names `json_path` (`shel` in `shel: echo`), falling
    /// back to [`Self::locate`] for sequence items and missing paths.
    pub fn locate_key(&self, json_path: &str) -> Option<(usize, usize)> {
        self.nearest(json_path).map(|e| e.key.unwrap_or(e.value))
    }

    /// Byte range of the scalar at exactly `json_path` in the source text.
    pub(crate) fn source_range(&self, json_path: &str) -> Option<(usize, usize)> {
        self.entries.get(normalize(json_path)).and_then(|e| e.text)
    }

    /// Number of recorded paths.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn nearest(&self, json_path: &str) -> Option<&Entry> {
        let mut path = normalize(json_path);
        loop {
            if let Some(entry) = self.entries.get(path) {
                return Some(entry);
            }
            if path.is_empty() {
                return None;
            }
            path = parent(path);
        }
    }
}

fn normalize(path: &str) -> &str {
    if path == "." { "" } else { path }
}

/// The path one level up: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``.
pub(crate) fn parent(path: &str) -> &str {
    if path.ends_with(']')
        && let Some(i) = path.rfind('[')
    {
        return &path[..i];
    }
    path.rfind('.').map_or("", |i| &path[..i])
}

/// `parent` + `.key`, or `key` at the root.
pub(crate) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

pub(crate) fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A problem found while turning the tree into JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeProblem {
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
    /// Warnings leave the document valid.
    pub warning: bool,
}

/// The JSON form of a document, where each path came from, and what was odd on the way.
pub(crate) struct Converted {
    pub value: Value,
    pub locations: Locations,
    pub problems: Vec<TreeProblem>,
}

/// Turn a located YAML tree into JSON. `source` is the text the tree was read from (to spell
/// non-string keys as written). A key repeated in one mapping keeps its last value, as Kubernetes
/// does, with a warning.
pub(crate) fn to_json(root: &Spanned<Node>, source: &str) -> Converted {
    let mut out = Converted {
        value: Value::Null,
        locations: Locations::default(),
        problems: Vec::new(),
    };
    let mut path = String::new();
    out.value = convert(
        root,
        None,
        source,
        &mut path,
        &mut out.locations,
        &mut out.problems,
    );
    out
}

fn convert(
    node: &Spanned<Node>,
    key_pos: Option<(usize, usize)>,
    source: &str,
    path: &mut String,
    locations: &mut Locations,
    problems: &mut Vec<TreeProblem>,
) -> Value {
    let is_scalar = !matches!(node.value, Node::Seq(_) | Node::Map(_));
    locations.entries.insert(
        path.clone(),
        Entry {
            key: key_pos,
            value: position(node),
            text: if is_scalar { byte_range(node) } else { None },
        },
    );
    match &node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::from(*i),
        Node::UInt(u) => Value::from(*u),
        Node::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(convert(item, None, source, path, locations, problems));
                path.truncate(len);
            }
            Value::Array(out)
        }
        Node::Map(entries) => {
            let keys: Vec<Option<String>> =
                entries.iter().map(|(k, _)| key_text(k, source)).collect();
            let mut out = Map::new();
            for (i, (key, value)) in entries.iter().enumerate() {
                let (line, column) = position(key);
                let Some(name) = &keys[i] else {
                    problems.push(TreeProblem {
                        line,
                        column,
                        path: path.clone(),
                        message: "mapping keys must be plain strings, found a list or a mapping"
                            .to_string(),
                        hint: None,
                        warning: false,
                    });
                    continue;
                };
                // An earlier occurrence of a repeated key is dropped; the later one warns.
                if keys[i + 1..].iter().any(|k| k.as_ref() == Some(name)) {
                    continue;
                }
                if keys[..i].iter().any(|k| k.as_ref() == Some(name)) {
                    problems.push(TreeProblem {
                        line,
                        column,
                        path: join_key(path, name),
                        message: format!(
                            "duplicate key `{name}`; the last one wins (as Kubernetes does)"
                        ),
                        hint: None,
                        warning: true,
                    });
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
                let v = convert(
                    value,
                    Some((line, column)),
                    source,
                    path,
                    locations,
                    problems,
                );
                path.truncate(len);
                out.insert(name.clone(), v);
            }
            Value::Object(out)
        }
    }
}

/// A mapping key as a JSON object key: strings as they are, other scalars as written in the
/// source (`on:` stays `on`, not `true`), collections not at all.
fn key_text(key: &Spanned<Node>, source: &str) -> Option<String> {
    let written = || {
        byte_range(key)
            .and_then(|(a, b)| source.get(a..b))
            .map(str::to_string)
    };
    match &key.value {
        Node::Str(s) => Some(s.clone()),
        Node::Null => Some(written().unwrap_or_else(|| "null".to_string())),
        Node::Bool(b) => Some(written().unwrap_or_else(|| b.to_string())),
        Node::Int(i) => Some(written().unwrap_or_else(|| i.to_string())),
        Node::UInt(u) => Some(written().unwrap_or_else(|| u.to_string())),
        Node::Float(f) => Some(written().unwrap_or_else(|| f.to_string())),
        Node::Seq(_) | Node::Map(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Converted {
        let mut options = serde_saphyr::Options::default();
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
        let docs: Vec<Spanned<Node>> =
            serde_saphyr::from_str_multiple_with_options(text, options).expect("valid yaml");
        to_json(&docs[0], text)
    }

    #[test]
    fn every_key_and_value_is_located() {
        let text = "kind: TestWorkflow\nspec:\n  steps:\n  - name: a\n    shel: echo hi\n";
        let c = parse(text);
        assert_eq!(c.value["spec"]["steps"][0]["shel"], "echo hi");
        let l = &c.locations;
        assert_eq!(l.locate("spec.steps[0].shel"), Some((5, 11)));
        assert_eq!(l.locate_key("spec.steps[0].shel"), Some((5, 5)));
        assert_eq!(l.locate("spec.steps[0]"), Some((4, 5)));
        assert_eq!(l.locate("kind"), Some((1, 7)));
        assert_eq!(l.locate_exact("spec.steps[0].missing"), None);
        // A missing path falls back to its nearest ancestor.
        assert_eq!(l.locate("spec.steps[0].template.name"), Some((4, 5)));
        assert_eq!(l.locate("."), Some((1, 1)));
        let (a, b) = l.source_range("spec.steps[0].shel").unwrap();
        assert_eq!(&text[a..b], "echo hi");
    }

    #[test]
    fn duplicate_key_keeps_the_last_and_warns() {
        let c = parse("a: 1\nb:\n  image: one\nb:\n  image: two\n");
        assert_eq!(c.value["b"]["image"], "two");
        assert_eq!(c.locations.locate("b.image"), Some((5, 10)));
        assert_eq!(c.problems.len(), 1);
        let p = &c.problems[0];
        assert!(p.warning);
        assert_eq!((p.line, p.column), (4, 1));
        assert_eq!(
            p.message,
            "duplicate key `b`; the last one wins (as Kubernetes does)"
        );
    }

    #[test]
    fn scalars_become_json_scalars() {
        let c = parse("a: yes\nb: off\nc: 3\nd: -4\ne: 1.5\nf: ~\ng: \"yes\"\n1: one\ntrue: t\n");
        let v = &c.value;
        assert_eq!(v["a"], true);
        assert_eq!(v["b"], false);
        assert_eq!(v["c"], 3);
        assert_eq!(v["d"], -4);
        assert_eq!(v["e"], 1.5);
        assert_eq!(v["f"], Value::Null);
        assert_eq!(v["g"], "yes");
        assert_eq!(v["1"], "one");
        assert_eq!(v["true"], "t");
    }

    #[test]
    fn collection_keys_are_reported() {
        let c = parse("? [a, b]\n: x\nok: 1\n");
        assert_eq!(c.value["ok"], 1);
        assert_eq!(c.problems.len(), 1);
        assert!(!c.problems[0].warning);
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent("a.b[2]"), "a.b");
        assert_eq!(parent("a.b"), "a");
        assert_eq!(parent("a"), "");
        assert_eq!(parent("a[0][1]"), "a[0]");
    }
}
