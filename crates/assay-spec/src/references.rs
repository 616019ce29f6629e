//! Names an expression uses that nothing will ever define: unknown functions and `step.<id>`
//! of a step id the workflow does not have. Without this check both fail only when the run
//! reaches them; `assay validate` reports them with the rest.

use std::collections::BTreeSet;

use assay_expr::{Expr, FUNCTIONS};
use serde_json::Value;

use crate::model::{Step, WorkflowSpec};
use crate::resolve::{PathError, closest};

/// Functions a runtime adds to the standard library: the file system's `glob`, and Testkube's
/// `secret(name, key)`, which reads a Kubernetes secret (a Kubernetes runtime's; a local run
/// has none and says so when it gets there). Not typos, so not reported here.
const RUNTIME_FUNCTIONS: &[&str] = &["glob", "secret"];

/// `step.<word>` names that are not step ids (`step.results`: the current step's folder).
const STEP_WORDS: &[&str] = &["results"];

/// Every problem of the spec's expressions, after templates were applied and ids assigned.
pub fn check(spec: &WorkflowSpec, errors: &mut Vec<PathError>) {
    let mut ids = BTreeSet::new();
    for steps in [&spec.setup, &spec.steps, &spec.after] {
        collect_ids(steps, &mut ids);
    }
    let Ok(value) = serde_json::to_value(spec) else {
        return;
    };
    let mut checker = Checker { ids: &ids, errors };
    checker.walk(&value, Field::Template, &mut "spec".to_string());
}

fn collect_ids(steps: &[Step], out: &mut BTreeSet<String>) {
    for s in steps {
        if !s.id.is_empty() {
            out.insert(s.id.clone());
        }
        collect_ids(&s.setup, out);
        collect_ids(&s.steps, out);
        if let Some(p) = &s.parallel {
            collect_ids(&p.setup, out);
            collect_ids(&p.steps, out);
            collect_ids(&p.after, out);
        }
    }
}

#[derive(Clone, Copy)]
enum Field {
    Template,
    Expression,
    Ignore,
}

struct Checker<'a> {
    ids: &'a BTreeSet<String>,
    errors: &'a mut Vec<PathError>,
}

impl Checker<'_> {
    fn walk(&mut self, value: &Value, field: Field, path: &mut String) {
        match value {
            Value::String(s) => self.string(s, field, path),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.walk(item, field, path);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let len = path.len();
                    path.push('.');
                    path.push_str(key);
                    let field = match key.as_str() {
                        "id" | "ref" | "config" => Field::Ignore,
                        "condition" | "until" | "logs" | "count" | "maxCount" => Field::Expression,
                        "matrix" | "shards" => {
                            for (name, list) in item.as_object().into_iter().flatten() {
                                let l2 = path.len();
                                path.push_str(&format!(".{name}"));
                                let f = if list.is_string() {
                                    Field::Expression
                                } else {
                                    Field::Template
                                };
                                self.walk(list, f, path);
                                path.truncate(l2);
                            }
                            path.truncate(len);
                            continue;
                        }
                        _ => field,
                    };
                    self.walk(item, field, path);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn string(&mut self, s: &str, field: Field, path: &str) {
        let parsed = match field {
            Field::Ignore => return,
            Field::Template if !s.contains("{{") => return,
            Field::Template => assay_expr::parse_template(s),
            Field::Expression => assay_expr::parse(s),
        };
        // Syntax errors are reported where the expressions are resolved.
        let Ok(expr) = parsed else { return };
        let mut found: Vec<(String, Option<String>)> = Vec::new();
        expr.visit(&mut |e| match e {
            Expr::Call(name, _)
                if !FUNCTIONS.contains(&name.as_str())
                    && !RUNTIME_FUNCTIONS.contains(&name.as_str()) =>
            {
                let names: Vec<&str> = FUNCTIONS
                    .iter()
                    .chain(RUNTIME_FUNCTIONS)
                    .filter(|f| !f.starts_with('_'))
                    .copied()
                    .collect();
                found.push((
                    format!("unknown function `{name}`"),
                    closest(name, &names).map(|f| format!("did you mean `{f}`?")),
                ));
            }
            Expr::Var(name) => {
                let mut segs = name.split('.');
                if segs.next() != Some("step") {
                    return;
                }
                let Some(id) = segs.next() else { return };
                let rest = segs.next();
                if (rest.is_none() && STEP_WORDS.contains(&id)) || self.ids.contains(id) {
                    return;
                }
                let known: Vec<&str> = self.ids.iter().map(String::as_str).collect();
                let hint = closest(id, &known)
                    .map(|k| format!("did you mean `step.{k}`?"))
                    .unwrap_or_else(|| {
                        if known.is_empty() {
                            "no step has an id: give the step `id:` or a `name:`".to_string()
                        } else {
                            format!("step ids: {}", known.join(", "))
                        }
                    });
                found.push((
                    format!("`{name}` refers to step id `{id}`, which no step has"),
                    Some(hint),
                ));
            }
            _ => {}
        });
        for (message, hint) in found {
            let e = PathError {
                path: path.to_string(),
                message,
                hint,
            };
            if !self.errors.contains(&e) {
                self.errors.push(e);
            }
        }
    }
}
