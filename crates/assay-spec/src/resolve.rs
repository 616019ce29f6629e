//! Resolving the expressions of a document or a plan as far as the known values allow.
//!
//! Documents are resolved in their JSON form: every string is a template (`"a {{ x }} b"`)
//! except the fields Testkube evaluates as bare expressions (`condition`, `until`, `logs`,
//! string `count`/`maxCount`, string `matrix`/`shards` entries) and the few it never evaluates
//! (`id`, parameter schemas other than their `default`). Working on the JSON form means one walk
//! serves the model, templates and the plan alike.

use std::cell::RefCell;
use std::collections::BTreeSet;

use assay_expr::{Expr, ExprError, Lookup, Machine};
use indexmap::IndexMap;
use serde_json::Value;

/// A problem found while resolving, at a JSON path such as `spec.steps[2].shell`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PathError {
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

/// How a string field is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Template,
    /// A bare expression that stays text (`condition`, `until`, `logs`): a resolved value is
    /// written back as expression text (`true`, `"a"`).
    Expression,
    /// A bare expression whose resolved value replaces it (`count`, `maxCount`, strategy lists).
    Value,
    Ignore,
}

fn kind_of_key(key: &str) -> Kind {
    match key {
        "condition" | "until" | "logs" => Kind::Expression,
        "count" | "maxCount" => Kind::Value,
        "id" | "ref" => Kind::Ignore,
        _ => Kind::Template,
    }
}

/// What `config.NAME` means while resolving one document (a workflow or a template).
#[derive(Debug, Default)]
pub struct ConfigMachine {
    /// Who declares these parameters, for messages (`workflow`, `template "official/k6/v1"`).
    pub owner: String,
    /// Known values (already cast to their type), or expressions to substitute.
    pub values: IndexMap<String, ConfigEntry>,
    /// Names that are not ours but must stay as they are (the workflow's unknown parameters
    /// passed into a template through its `config`).
    pub passthrough: BTreeSet<String>,
    problems: RefCell<Vec<(String, Option<String>)>>,
}

#[derive(Debug, Clone)]
pub enum ConfigEntry {
    Value(Value),
    Expr(Expr),
    /// Known at run time only (sensitive), or not given while checking without values.
    Later,
    /// Declared, no default, not given.
    Missing,
}

impl ConfigMachine {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            ..Self::default()
        }
    }

    fn take_problems(&self) -> Vec<(String, Option<String>)> {
        std::mem::take(&mut *self.problems.borrow_mut())
    }
}

impl Machine for ConfigMachine {
    fn lookup(&self, name: &str) -> Lookup {
        // `config` as a whole is not offered: reading `config.x` through it would turn an
        // undeclared parameter into `null` instead of an error.
        let Some(rest) = name.strip_prefix("config.") else {
            return Lookup::Unknown;
        };
        let key = rest.split('.').next().unwrap_or(rest);
        match self.values.get(key) {
            Some(ConfigEntry::Value(v)) if key == rest => Lookup::Value(v.clone()),
            // `config.a.b`: the expression engine reads `.b` from the value of `config.a`.
            Some(ConfigEntry::Value(_)) => Lookup::Unknown,
            Some(ConfigEntry::Expr(e)) if key == rest => Lookup::Expr(e.clone()),
            Some(ConfigEntry::Expr(_)) | Some(ConfigEntry::Later) => Lookup::Unknown,
            Some(ConfigEntry::Missing) => {
                self.problems.borrow_mut().push((
                    format!(
                        "{} needs config `{key}`, which has no default and was not given",
                        self.owner
                    ),
                    Some(format!(
                        "pass it, e.g. `config: {{{key}: ...}}` or `--config {key}=...`"
                    )),
                ));
                Lookup::Unknown
            }
            None if self.passthrough.contains(key) => Lookup::Unknown,
            None => {
                let known: Vec<&str> = self.values.keys().map(String::as_str).collect();
                let hint = closest(key, &known)
                    .map(|s| format!("did you mean `config.{s}`?"))
                    .or_else(|| {
                        if known.is_empty() {
                            Some(format!(
                                "declare it under `spec.config` of the {}",
                                self.owner
                            ))
                        } else {
                            Some(format!("declared parameters: {}", known.join(", ")))
                        }
                    });
                self.problems.borrow_mut().push((
                    format!("{} has no config parameter `{key}`", self.owner),
                    hint,
                ));
                Lookup::Unknown
            }
        }
    }
}

/// Resolves strings in JSON trees with a set of machines.
pub struct Resolver<'a> {
    pub machines: Vec<&'a dyn Machine>,
    pub config: Option<&'a ConfigMachine>,
}

impl<'a> Resolver<'a> {
    pub fn new(machines: Vec<&'a dyn Machine>, config: Option<&'a ConfigMachine>) -> Self {
        Self { machines, config }
    }

    fn all(&self) -> Vec<&dyn Machine> {
        let mut v: Vec<&dyn Machine> = Vec::with_capacity(self.machines.len() + 1);
        if let Some(c) = self.config {
            v.push(c);
        }
        v.extend(self.machines.iter().copied());
        v
    }

    fn flush(&self, path: &str, errors: &mut Vec<PathError>) {
        if let Some(c) = self.config {
            for (message, hint) in c.take_problems() {
                let e = PathError {
                    path: path.to_string(),
                    message,
                    hint,
                };
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
    }

    /// Resolve a template string; `Ok(None)` when it has no `{{`.
    pub fn template(&self, s: &str) -> Result<Option<String>, ExprError> {
        if !s.contains("{{") {
            return Ok(None);
        }
        let resolved = assay_expr::parse_template(s)?.resolve(&self.all())?;
        Ok(Some(match resolved.as_static() {
            // The plan holds templates (the runtime renders them again), so a value that
            // contains `{{` — from data, or an escaped `{{"{{"}}` — is written escaped, as
            // Testkube's `Template()` does; otherwise it would be evaluated a second time.
            Some(v) => {
                let text = assay_expr::stringify(v);
                if text.contains("{{") {
                    Expr::Lit(Value::String(text)).to_template_string()
                } else {
                    text
                }
            }
            None => resolved.to_template_string(),
        }))
    }

    /// Resolve a bare expression; returns the static value or the remaining expression.
    pub fn expression(&self, s: &str) -> Result<Result<Value, Expr>, ExprError> {
        let resolved = assay_expr::parse(s)?.resolve(&self.all())?;
        Ok(match resolved.as_static() {
            Some(v) => Ok(v.clone()),
            None => Err(resolved),
        })
    }

    /// Resolve one template string field, recording problems at `path`.
    pub fn template_field(&self, s: &mut String, path: &str, errors: &mut Vec<PathError>) {
        match self.template(s) {
            Ok(Some(v)) => *s = v,
            Ok(None) => {}
            Err(message) => errors.push(PathError {
                path: path.to_string(),
                message: format!("invalid expression: {message}"),
                hint: None,
            }),
        }
        self.flush(path, errors);
    }

    /// Resolve one bare-expression field, keeping it as printed expression text.
    pub fn expression_field(&self, s: &mut String, path: &str, errors: &mut Vec<PathError>) {
        if s.trim().is_empty() {
            return;
        }
        match self.expression(s) {
            Ok(Ok(v)) => *s = expression_text(&v),
            Ok(Err(e)) => *s = e.to_string(),
            Err(message) => errors.push(PathError {
                path: path.to_string(),
                message: format!("invalid expression: {message}"),
                hint: None,
            }),
        }
        self.flush(path, errors);
    }

    /// Resolve every string in `value` (see the module docs for which strings are what).
    pub fn value(&self, value: &mut Value, path: &mut String, errors: &mut Vec<PathError>) {
        self.walk(value, Kind::Template, path, errors);
    }

    fn walk(&self, value: &mut Value, kind: Kind, path: &mut String, errors: &mut Vec<PathError>) {
        match value {
            Value::String(s) => match kind {
                Kind::Ignore => {}
                Kind::Template => self.template_field(s, path, errors),
                Kind::Expression => self.expression_field(s, path, errors),
                Kind::Value => {
                    let mut text = std::mem::take(s);
                    match self.expression(&text) {
                        Ok(Ok(v)) => {
                            *value = v;
                        }
                        Ok(Err(e)) => {
                            *value = Value::String(e.to_string());
                        }
                        Err(message) => {
                            errors.push(PathError {
                                path: path.clone(),
                                message: format!("invalid expression: {message}"),
                                hint: None,
                            });
                            *value = Value::String(std::mem::take(&mut text));
                        }
                    }
                    self.flush(path, errors);
                }
            },
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.walk(item, kind, path, errors);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    match key.as_str() {
                        // Parameter schemas: only `default` is a template.
                        "config" if is_schema_map(item) => {
                            if let Value::Object(params) = item {
                                for (name, schema) in params.iter_mut() {
                                    if let Some(d) = schema.get_mut("default") {
                                        let l2 = path.len();
                                        path.push_str(&format!(".{name}.default"));
                                        self.walk(d, Kind::Template, path, errors);
                                        path.truncate(l2);
                                    }
                                }
                            }
                        }
                        // Strategy lists: a string is an expression giving a list; a list
                        // holds templates.
                        "matrix" | "shards" => {
                            if let Value::Object(params) = item {
                                for (name, list) in params.iter_mut() {
                                    let l2 = path.len();
                                    path.push_str(&format!(".{name}"));
                                    let k = if list.is_string() {
                                        Kind::Value
                                    } else {
                                        Kind::Template
                                    };
                                    self.walk(list, k, path, errors);
                                    path.truncate(l2);
                                }
                            }
                        }
                        k => {
                            let kind = match (kind, kind_of_key(k)) {
                                (_, Kind::Ignore) => Kind::Ignore,
                                (_, Kind::Expression) if item.is_string() => Kind::Expression,
                                (_, Kind::Value) if item.is_string() => Kind::Value,
                                _ => Kind::Template,
                            };
                            self.walk(item, kind, path, errors);
                        }
                    }
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
}

/// `config:` holds parameter schemas when its values are objects (a `TemplateRef.config`
/// holds scalars).
fn is_schema_map(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty() && m.values().all(Value::is_object),
        _ => false,
    }
}

/// A static value written back into a bare-expression field.
pub fn expression_text(v: &Value) -> String {
    match v {
        Value::String(s) => Expr::string(s.clone()).to_string(),
        other => other.to_string(),
    }
}

/// The closest of `candidates` to `name`, when it is close enough to be a likely typo.
pub(crate) fn closest<'c>(name: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
