//! Semantic validation of loaded documents: what the typed model alone cannot say.
//!
//! - `metadata.name` present and a valid Kubernetes name (lowercase RFC 1123 subdomain).
//! - Step `id`s match `^[a-z0-9][a-z0-9_]*$` and are unique: across `setup`/`steps`/`after` of a
//!   spec (nested steps included), with a namespace of their own inside each `parallel`.
//! - A `TestWorkflowTemplate` contains no `use` and no step `template` anywhere (Testkube's
//!   `IndependentStep` has neither).
//! - Durations (`timeout`, `delay`, service `timeout`, git retry `delay`) in Go's syntax, unless
//!   they hold `{{` (resolved later).
//! - Expressions: `condition`, `retry.until`, `logs`, string `count`/`maxCount` and string
//!   matrix/shard values parse as bare expressions; every other string holding `{{` parses as a
//!   template.
//! - Config parameters: `default` of the declared type (unless it holds `{{`), consistent with
//!   `enum` and `pattern` (which must be a valid regular expression).
//! - `retry.count` is at least 1.
//! - `events[].cronjob`: `cron` is a pattern and `timezone` an IANA name ([`crate::schedule`]).
//!
//! Template references are checked by the compiler ([`crate::compile`]), which needs the set of
//! templates; `assay validate` runs it on every workflow that passes these checks.
//!
//! Every problem is located at the field it is about, through the document's
//! [`Locations`](crate::located::Locations).

use std::collections::HashMap;
use std::sync::LazyLock;

use indexmap::IndexMap;
use regex::Regex;
use serde_json::Value;

use crate::diagnostic::{self, Diagnostic};
use crate::duration::parse_duration;
use crate::load::{self, Kind, Loaded, LoadedDocument};
use crate::located::{join_index, join_key};
use crate::model::{
    Content, Event, ParameterSchema, ParameterType, RetryPolicy, ServiceSpec, Step, StepParallel,
    WorkflowSpec,
};
use crate::schedule::Schedule;
use crate::suggest;

static STEP_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[a-z0-9][a-z0-9_]*$").expect("valid regex"));
static DNS_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("valid regex")
});

/// Load and validate every document of a file: [`load::load`] followed by [`validate_document`]
/// for each document that loaded.
pub fn check(file: &str, text: &str) -> Loaded {
    finish(file, load::load(file, text))
}

/// [`check`] for raw bytes (invalid UTF-8 is a located error).
pub fn check_bytes(file: &str, bytes: &[u8]) -> Loaded {
    finish(file, load::load_bytes(file, bytes))
}

fn finish(file: &str, mut loaded: Loaded) -> Loaded {
    // Repaired documents too: their semantic problems come in the same pass as the others.
    let extra: Vec<Diagnostic> = loaded
        .documents
        .iter()
        .chain(&loaded.repaired)
        .flat_map(|doc| validate_document(file, doc))
        .collect();
    for d in extra {
        if !diagnostic::is_follow_on(&loaded.diagnostics, &d) {
            loaded.diagnostics.push(d);
        }
    }
    let extra: Vec<Diagnostic> = loaded
        .resources
        .iter()
        .flat_map(|doc| crate::triggers::validate_resource(file, doc))
        .collect();
    loaded.diagnostics.extend(extra);
    diagnostic::sort(&mut loaded.diagnostics);
    loaded
}

/// All semantic problems of one loaded document.
pub fn validate_document(file: &str, doc: &LoadedDocument) -> Vec<Diagnostic> {
    let mut v = Validator {
        file,
        doc,
        template: doc.kind == Kind::TestWorkflowTemplate,
        out: Vec::new(),
    };
    v.metadata();
    let spec = match &doc.document {
        crate::model::Document::TestWorkflow(wf) => &wf.spec,
        crate::model::Document::TestWorkflowTemplate(t) => &t.spec,
    };
    v.spec("spec", spec);
    // Only the spec holds expressions; metadata (annotations may hold anything) does not.
    if let Some(spec) = doc.raw.get("spec") {
        v.expressions("spec", spec, Region::Spec);
    }
    diagnostic::sort(&mut v.out);
    v.out
}

struct Validator<'a> {
    file: &'a str,
    doc: &'a LoadedDocument,
    template: bool,
    out: Vec<Diagnostic>,
}

/// Step ids seen in one namespace, with the path of their first use.
type Ids = HashMap<String, String>;

impl Validator<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = self
            .doc
            .locations
            .locate(path)
            .unwrap_or((self.doc.line, 1));
        self.out.push(
            Diagnostic::error(self.file, line, column, message)
                .with_hint_opt(hint)
                .in_document(self.doc.index)
                .at_path(path),
        );
    }

    /// Like [`Self::error`], pointing at the key (`use:`) rather than its value.
    fn error_at_key(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = self
            .doc
            .locations
            .locate_key(path)
            .unwrap_or((self.doc.line, 1));
        self.out.push(
            Diagnostic::error(self.file, line, column, message)
                .with_hint_opt(hint)
                .in_document(self.doc.index)
                .at_path(path),
        );
    }

    fn metadata(&mut self) {
        let name = self.doc.name.clone();
        if name.is_empty() {
            let path = if self.doc.raw.get("metadata").is_some() {
                "metadata"
            } else {
                ""
            };
            self.error(
                path,
                "missing `metadata.name`",
                Some(format!(
                    "add `metadata:` with `name: my-{}`",
                    kebab(self.doc.kind.as_str())
                )),
            );
            return;
        }
        if let Some(problem) = kubernetes_name_problem(&name) {
            self.error(
                "metadata.name",
                format!("`{name}` is not a valid Kubernetes name: {problem}"),
                Some(format!("use `{}`", fix_name(&name))),
            );
        }
    }

    fn no_templates_here(&mut self, path: &str, field: &str) {
        self.error_at_key(
            &join_key(path, field),
            format!("a TestWorkflowTemplate cannot contain `{field}`"),
            Some(
                "only a TestWorkflow can include templates; copy what you need into this template"
                    .to_string(),
            ),
        );
    }

    fn spec(&mut self, path: &str, spec: &WorkflowSpec) {
        if self.template && !spec.uses.is_empty() {
            self.no_templates_here(path, "use");
        }
        self.config(&join_key(path, "config"), &spec.config);
        self.content(&join_key(path, "content"), spec.content.as_ref());
        self.services(&join_key(path, "services"), &spec.services);
        self.events(&join_key(path, "events"), &spec.events);
        let mut ids = Ids::new();
        for (field, steps) in [
            ("setup", &spec.setup),
            ("steps", &spec.steps),
            ("after", &spec.after),
        ] {
            self.steps(&join_key(path, field), steps, &mut ids);
        }
    }

    fn steps(&mut self, path: &str, steps: &[Step], ids: &mut Ids) {
        for (i, step) in steps.iter().enumerate() {
            self.step(&join_index(path, i), step, ids);
        }
    }

    fn step(&mut self, path: &str, step: &Step, ids: &mut Ids) {
        self.step_id(path, &step.id, ids);
        if self.template {
            if !step.uses.is_empty() {
                self.no_templates_here(path, "use");
            }
            if step.template.is_some() {
                self.no_templates_here(path, "template");
            }
        }
        self.duration(&join_key(path, "timeout"), &step.timeout);
        self.duration(&join_key(path, "delay"), &step.delay);
        self.retry(&join_key(path, "retry"), step.retry.as_ref());
        self.content(&join_key(path, "content"), step.content.as_ref());
        self.services(&join_key(path, "services"), &step.services);
        self.steps(&join_key(path, "setup"), &step.setup, ids);
        self.steps(&join_key(path, "steps"), &step.steps, ids);
        if let Some(parallel) = &step.parallel {
            self.parallel(&join_key(path, "parallel"), parallel);
        }
    }

    fn step_id(&mut self, path: &str, id: &str, ids: &mut Ids) {
        if id.is_empty() {
            return;
        }
        let id_path = join_key(path, "id");
        if !STEP_ID.is_match(id) {
            let fixed = fix_id(id);
            self.error(
                &id_path,
                format!("step id `{id}` must start with a lowercase letter or digit and hold only lowercase letters, digits and `_`"),
                Some(format!("use `{fixed}`")),
            );
        }
        if let Some(first) = ids.get(id) {
            let hint =
                self.doc.locations.locate(first).map(|(l, c)| {
                    format!("the first step with this id is at {}:{l}:{c}", self.file)
                });
            self.error(&id_path, format!("duplicate step id `{id}`"), hint);
        } else {
            ids.insert(id.to_string(), id_path);
        }
    }

    fn parallel(&mut self, path: &str, p: &StepParallel) {
        if self.template {
            if !p.uses.is_empty() {
                self.no_templates_here(path, "use");
            }
            if p.template.is_some() {
                self.no_templates_here(path, "template");
            }
        }
        self.duration(&join_key(path, "timeout"), &p.timeout);
        self.duration(&join_key(path, "delay"), &p.delay);
        self.retry(&join_key(path, "retry"), p.retry.as_ref());
        self.config(&join_key(path, "config"), &p.config);
        self.content(&join_key(path, "content"), p.content.as_ref());
        self.services(&join_key(path, "services"), &p.services);
        // Each parallel worker runs its own spec: a fresh namespace of step ids.
        let mut ids = Ids::new();
        for (field, steps) in [
            ("setup", &p.setup),
            ("steps", &p.steps),
            ("after", &p.after),
        ] {
            self.steps(&join_key(path, field), steps, &mut ids);
        }
    }

    fn services(&mut self, path: &str, services: &IndexMap<String, ServiceSpec>) {
        for (name, service) in services {
            let path = join_key(path, name);
            if self.template && !service.uses.is_empty() {
                self.no_templates_here(&path, "use");
            }
            self.duration(&join_key(&path, "timeout"), &service.timeout);
            self.content(&join_key(&path, "content"), service.content.as_ref());
        }
    }

    fn content(&mut self, path: &str, content: Option<&Content>) {
        let Some(git) = content.and_then(|c| c.git.as_ref()) else {
            return;
        };
        if let Some(retry) = &git.retry {
            let retry_path = join_key(&join_key(path, "git"), "retry");
            self.duration(&join_key(&retry_path, "delay"), &retry.delay);
            if let Some(count) = retry.count
                && count < 0
            {
                self.error(
                    &join_key(&retry_path, "count"),
                    "`count` must not be negative",
                    None,
                );
            }
        }
    }

    fn retry(&mut self, path: &str, retry: Option<&RetryPolicy>) {
        let Some(retry) = retry else { return };
        if retry.count < 1 {
            let count_path = join_key(path, "count");
            let target = if self.doc.locations.locate_exact(&count_path).is_some() {
                count_path
            } else {
                path.to_string()
            };
            self.error(
                &target,
                format!("`retry.count` must be at least 1, found {}", retry.count),
                Some("`count` is how many more times the step runs after it fails".to_string()),
            );
        }
    }

    fn duration(&mut self, path: &str, value: &str) {
        if value.is_empty() || value.contains("{{") {
            return;
        }
        if let Err(e) = parse_duration(value) {
            self.error(
                path,
                e.to_string(),
                Some("durations look like `30s`, `5m`, `1h30m` or `500ms`".to_string()),
            );
        }
    }

    /// `events[].cronjob`: the pattern and the time zone must parse (the server's scheduler
    /// would otherwise skip the schedule at run time).
    fn events(&mut self, path: &str, events: &[Event]) {
        for (i, event) in events.iter().enumerate() {
            let Some(cron) = &event.cronjob else {
                continue;
            };
            let at = join_key(&join_index(path, i), "cronjob");
            if let Err(e) = Schedule::parse(&cron.cron, None) {
                self.error(&join_key(&at, "cron"), e.to_string(), Some(e.hint().into()));
            }
            if let Some(zone) = &cron.timezone
                && let Err(e) = Schedule::parse("* * * * *", Some(zone))
            {
                self.error(
                    &join_key(&at, "timezone"),
                    e.to_string(),
                    Some(e.hint().into()),
                );
            }
        }
    }

    fn config(&mut self, path: &str, config: &IndexMap<String, ParameterSchema>) {
        for (name, schema) in config {
            self.parameter(&join_key(path, name), name, schema);
        }
    }

    fn parameter(&mut self, path: &str, name: &str, schema: &ParameterSchema) {
        let kind = schema.kind.unwrap_or_default();
        let pattern = if schema.pattern.is_empty() {
            None
        } else {
            match Regex::new(&schema.pattern) {
                Ok(re) => Some(re),
                Err(e) => {
                    let first = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_lowercase();
                    self.error(
                        &join_key(path, "pattern"),
                        format!("`pattern` of parameter `{name}` is not a valid regular expression: {first}"),
                        None,
                    );
                    None
                }
            }
        };
        for (i, option) in schema.r#enum.iter().enumerate() {
            if !option.contains("{{")
                && let Err(e) = check_type(kind, &Value::String(option.clone()))
            {
                self.error(
                    &join_index(&join_key(path, "enum"), i),
                    format!("`enum` value of parameter `{name}` {e}"),
                    None,
                );
            }
        }
        let Some(default) = &schema.default else {
            return;
        };
        if holds_expression(default) {
            return;
        }
        let default_path = join_key(path, "default");
        if let Err(e) = check_type(kind, default) {
            self.error(
                &default_path,
                format!("default of parameter `{name}` {e}"),
                None,
            );
            return;
        }
        let text = scalar_text(default);
        if !schema.r#enum.is_empty() && !schema.r#enum.iter().any(|o| o == &text) {
            let hint = suggest::closest(&text, schema.r#enum.iter().map(String::as_str))
                .map(|c| format!("did you mean `{c}`?"))
                .or_else(|| {
                    Some(format!(
                        "use one of {}",
                        schema
                            .r#enum
                            .iter()
                            .map(|o| format!("`{o}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                });
            self.error(
                &default_path,
                format!("default `{text}` of parameter `{name}` is not one of its `enum` values"),
                hint,
            );
        }
        if let Some(re) = &pattern
            && kind == ParameterType::String
            && !re.is_match(&text)
        {
            self.error(
                &default_path,
                format!(
                    "default `{text}` of parameter `{name}` does not match its pattern `{}`",
                    schema.pattern
                ),
                None,
            );
        }
    }

    /// Parse every expression and template of the raw document.
    fn expressions(&mut self, path: &str, value: &Value, region: Region) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_path = join_key(path, key);
                    let child_region = region.enter(path, key);
                    self.expressions(&child_path, child, child_region);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.expressions(&join_index(path, i), item, region.item());
                }
            }
            Value::String(s) => self.expression(path, s, region),
            _ => {}
        }
    }

    fn expression(&mut self, path: &str, src: &str, region: Region) {
        if region == Region::Bare {
            if let Err(e) = assay_expr::parse(src) {
                let field = field_name(path);
                self.error(
                    path,
                    format!("invalid expression in `{field}`: {e}"),
                    expression_hint(src),
                );
            }
        } else if src.contains("{{")
            && let Err(e) = assay_expr::parse_template(src)
        {
            let field = field_name(path);
            self.error(
                path,
                format!("invalid template in `{field}`: {e}"),
                expression_hint(src),
            );
        }
    }
}

/// Where a value sits, for the expression rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    /// Typed spec: field names mean what Testkube says.
    Spec,
    /// Value of a bare-expression field.
    Bare,
    /// A `matrix`/`shards` mapping: string values are bare expressions, lists hold templates.
    Strategy,
    /// Inside a `retry`: `until` is bare, `count` an integer.
    Retry,
    /// Free-form Kubernetes objects and plain data: only `{{` templates are parsed.
    Opaque,
}

impl Region {
    fn enter(self, _parent: &str, key: &str) -> Region {
        match self {
            Region::Opaque | Region::Bare => self,
            Region::Strategy => Region::Bare,
            Region::Retry => {
                if key == "until" {
                    Region::Bare
                } else {
                    Region::Spec
                }
            }
            Region::Spec => match key {
                "condition" | "logs" | "count" | "maxCount" => Region::Bare,
                "matrix" | "shards" => Region::Strategy,
                "retry" => Region::Retry,
                "pod" | "job" | "metadata" | "status" | "resources" | "securityContext"
                | "volumeMounts" | "envFrom" | "valueFrom" | "readinessProbe" | "pvcs"
                | "target" | "selector" | "tests" | "tarball" | "usernameFrom" | "tokenFrom"
                | "sshKeyFrom" | "contentFrom" | "config" | "tags" | "labels" | "annotations"
                | "env" | "files" | "paths" | "command" | "args" | "default" | "example"
                | "enum" | "description" | "events" => Region::Opaque,
                _ => Region::Spec,
            },
        }
    }

    /// Items of a list: a bare field holding a list (a static matrix) holds templates.
    fn item(self) -> Region {
        match self {
            Region::Bare | Region::Strategy => Region::Opaque,
            other => other,
        }
    }
}

fn field_name(path: &str) -> &str {
    let mut p = path;
    while p.ends_with(']') {
        p = crate::located::parent(p);
    }
    p.rsplit('.').next().unwrap_or(p)
}

fn expression_hint(src: &str) -> Option<String> {
    if src.contains("{{") && !src.contains("}}") {
        return Some("every `{{` needs a closing `}}`".to_string());
    }
    None
}

/// Whether a config value is (or holds) an expression resolved later.
fn holds_expression(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.contains("{{"))
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value that does not fit its parameter's type (the message follows the parameter's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {want}, found `{found}`")]
struct TypeMismatch {
    want: &'static str,
    found: String,
}

/// Whether a value fits a parameter type, with Testkube's leniency for strings that hold the
/// value (`"5"` is an integer).
fn check_type(kind: ParameterType, value: &Value) -> Result<(), TypeMismatch> {
    let text = scalar_text(value);
    let ok = match (kind, value) {
        (_, Value::Array(_) | Value::Object(_)) => false,
        (ParameterType::String, _) => true,
        (ParameterType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (ParameterType::Integer, _) => text.trim().parse::<i64>().is_ok(),
        (ParameterType::Number, Value::Number(_)) => true,
        (ParameterType::Number, _) => text.trim().parse::<f64>().is_ok(),
        (ParameterType::Boolean, Value::Bool(_)) => true,
        (ParameterType::Boolean, _) => matches!(text.trim(), "true" | "false"),
    };
    if ok {
        return Ok(());
    }
    let want = match kind {
        ParameterType::String => "a string",
        ParameterType::Integer => "an integer",
        ParameterType::Number => "a number",
        ParameterType::Boolean => "a boolean",
    };
    Err(TypeMismatch { want, found: text })
}

/// Why `name` is not a lowercase RFC 1123 subdomain, if it is not.
pub fn kubernetes_name_problem(name: &str) -> Option<&'static str> {
    if name.len() > 253 {
        return Some("at most 253 characters");
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Some("it must be lowercase");
    }
    if !DNS_SUBDOMAIN.is_match(name) {
        return Some(
            "only lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit",
        );
    }
    None
}

/// A Kubernetes name close to `name`: lowercase, other characters turned into `-`.
fn fix_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut out = String::new();
    for c in mapped.chars() {
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_string();
    let out: String = out.chars().take(253).collect();
    if out.is_empty() {
        "my-workflow".to_string()
    } else {
        out
    }
}

fn fix_id(id: &str) -> String {
    let mapped: String = id
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = mapped.trim_start_matches('_').to_string();
    if out.is_empty() {
        "step".to_string()
    } else {
        out
    }
}

fn kebab(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: w\n";
    const THEAD: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata:\n  name: t\n";

    fn problems(text: &str) -> Vec<String> {
        let loaded = check("f.yaml", text);
        loaded.diagnostics.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_document_has_no_problems() {
        let text = format!(
            "{HEAD}spec:\n  config:\n    n: {{type: integer, default: 3}}\n  steps:\n  - id: a_1\n    timeout: 1h30m\n    condition: passed && config.n > 2\n    shell: echo {{{{ config.n }}}}\n    retry: {{count: 2, until: 'self.passed'}}\n  - parallel:\n      count: 'config.n'\n      matrix:\n        browser: ['chrome', '{{{{ config.n }}}}']\n        os: 'list(\"a\", \"b\")'\n      steps:\n      - id: a_1\n        shell: 'true'\n"
        );
        assert_eq!(problems(&text), Vec::<String>::new());
    }

    #[test]
    fn step_ids_are_checked_for_format_and_uniqueness() {
        let text = format!(
            "{HEAD}spec:\n  setup:\n  - id: Build-1\n  steps:\n  - id: run\n    steps:\n    - id: run\n  after:\n  - id: run\n"
        );
        assert_eq!(
            problems(&text),
            [
                "f.yaml:7:9: step id `Build-1` must start with a lowercase letter or digit and hold only lowercase letters, digits and `_`\n  hint: use `build_1`",
                "f.yaml:11:11: duplicate step id `run`\n  hint: the first step with this id is at f.yaml:9:9",
                "f.yaml:13:9: duplicate step id `run`\n  hint: the first step with this id is at f.yaml:9:9",
            ]
        );
    }

    #[test]
    fn templates_cannot_use_templates() {
        let text = format!(
            "{THEAD}spec:\n  use:\n  - name: other\n  steps:\n  - template: {{name: x}}\n  - parallel:\n      use: [{{name: other}}]\n"
        );
        let p = problems(&text);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(
            p[0].starts_with("f.yaml:6:3: a TestWorkflowTemplate cannot contain `use`"),
            "{}",
            p[0]
        );
        assert!(
            p[1].starts_with("f.yaml:9:5: a TestWorkflowTemplate cannot contain `template`"),
            "{}",
            p[1]
        );
        assert!(
            p[2].starts_with("f.yaml:11:7: a TestWorkflowTemplate cannot contain `use`"),
            "{}",
            p[2]
        );
    }

    #[test]
    fn durations_are_checked_unless_templated() {
        let text = format!(
            "{HEAD}spec:\n  services:\n    db:\n      timeout: '10'\n  steps:\n  - delay: 5min\n    timeout: '{{{{ config.t }}}}'\n"
        );
        assert_eq!(
            problems(&text),
            [
                "f.yaml:8:16: missing unit in duration \"10\"\n  hint: durations look like `30s`, `5m`, `1h30m` or `500ms`",
                "f.yaml:10:12: unknown unit \"min\" in duration \"5min\" (use ns, us, ms, s, m or h)\n  hint: durations look like `30s`, `5m`, `1h30m` or `500ms`",
            ]
        );
    }

    #[test]
    fn schedules_are_checked() {
        let text = format!(
            "{HEAD}spec:\n  events:\n  - cronjob:\n      cron: '15 */2 * * *'\n      timezone: Europe/Warsaw\n  - cronjob:\n      cron: '61 * * * *'\n      timezone: Mars/Olympus\n  steps:\n  - shell: 'true'\n"
        );
        let p = problems(&text);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].starts_with("f.yaml:11:13: invalid cron pattern `61 * * * *`: "),
            "{}",
            p[0]
        );
        assert!(p[0].contains("hint: use 5 fields"), "{}", p[0]);
        assert_eq!(
            p[1],
            "f.yaml:12:17: unknown time zone `Mars/Olympus`\n  hint: use an IANA time zone name such as `UTC`, `Europe/Warsaw` or `America/New_York`"
        );
    }

    #[test]
    fn expressions_and_templates_are_parsed() {
        let text = format!(
            "{HEAD}spec:\n  steps:\n  - condition: 'passed &&'\n    shell: 'echo {{{{ config.x + }}}}'\n  - run:\n      image: 'node:{{{{ config.v }}}}'\n"
        );
        let p = problems(&text);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].starts_with("f.yaml:7:16: invalid expression in `condition`: "),
            "{}",
            p[0]
        );
        assert!(
            p[1].starts_with("f.yaml:8:12: invalid template in `shell`: "),
            "{}",
            p[1]
        );
    }

    #[test]
    fn metadata_is_not_an_expression() {
        let text = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: w\n  annotations:\n    note: '{{ not testkube'\nspec: {}\n";
        assert_eq!(problems(text), Vec::<String>::new());
    }

    #[test]
    fn config_defaults_match_their_schema() {
        let text = format!(
            "{HEAD}spec:\n  config:\n    a: {{type: integer, default: abc}}\n    b: {{enum: [chrome, firefox], default: chrom}}\n    c: {{pattern: '^v[0-9]+$', default: x1}}\n    d: {{pattern: '(', default: x}}\n    e: {{type: boolean, default: '{{{{ env.X }}}}'}}\n"
        );
        assert_eq!(
            problems(&text),
            [
                "f.yaml:7:33: default of parameter `a` must be an integer, found `abc`",
                "f.yaml:8:43: default `chrom` of parameter `b` is not one of its `enum` values\n  hint: did you mean `chrome`?",
                "f.yaml:9:40: default `x1` of parameter `c` does not match its pattern `^v[0-9]+$`",
                "f.yaml:10:18: `pattern` of parameter `d` is not a valid regular expression: error: unclosed group",
            ]
        );
    }

    #[test]
    fn retry_count_must_be_positive() {
        let text = format!("{HEAD}spec:\n  steps:\n  - retry: {{count: 0}}\n    shell: 'true'\n");
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with("f.yaml:7:20: `retry.count` must be at least 1, found 0"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn metadata_name_must_be_a_kubernetes_name() {
        let text = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: My_Workflow\n";
        assert_eq!(
            problems(text),
            [
                "f.yaml:4:9: `My_Workflow` is not a valid Kubernetes name: it must be lowercase\n  hint: use `my-workflow`"
            ]
        );
        let text = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nspec: {}\n";
        assert_eq!(
            problems(text),
            [
                "f.yaml:1:1: missing `metadata.name`\n  hint: add `metadata:` with `name: my-test-workflow`"
            ]
        );
    }

    #[test]
    fn name_fixes() {
        assert_eq!(fix_name("My_Workflow"), "my-workflow");
        assert_eq!(fix_name("--A  b--"), "a-b");
        assert_eq!(fix_id("Build-1"), "build_1");
        assert_eq!(kebab("TestWorkflowTemplate"), "test-workflow-template");
        assert!(kubernetes_name_problem("official--k6--v1").is_none());
        assert!(kubernetes_name_problem("a.b-c").is_none());
        assert!(kubernetes_name_problem("-a").is_some());
    }
}
