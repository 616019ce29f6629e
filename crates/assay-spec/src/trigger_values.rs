//! The values of a TestTrigger's `actionParameters` (`config`, `tags`, and `target`'s label
//! values), resolved from the event that fired it as Testkube resolves them:
//!
//! - `jsonpath=TEMPLATE` — a Kubernetes JSONPath template (`kubectl -o jsonpath=`): text with
//!   `{QUERY}` parts, each query (`.spec.template.spec.containers[0].image`, `$.a`, `..name`,
//!   `[*]`, `[?(@.type=="Ready")]`) run against the data, several results joined by a space,
//!   strings as they are and anything else as JSON; `{"\n"}` is the literal text. A query that
//!   finds nothing is an error (Testkube's default), and so are `range`/`end`.
//! - anything else — a Go `text/template` against the data (`{{ .metadata.name }}`,
//!   `{{ index .metadata.labels "app" }}`); text without `{{` stays as it is. Fields are the
//!   object's JSON names (`.metadata.name`); Testkube also accepts its Go field names
//!   (`.ObjectMeta.Name`), which do not exist here.
//!
//! Pure: the caller hands the data (the event's object for `config`/`tags`, Testkube's event
//! shape `{namespace, object, oldObject, eventLabels}` for `target`). The queries run over
//! RFC 9535 JSONPath (`jsonpath-rust`); the templates over `gotmpl`, whose parser and executor
//! bound their nesting, recursion and `range` iterations. A result is cut to [`MAX_LEN`] bytes.

use jsonpath_rust::JsonPath;
use serde_json::Value;

/// Testkube's prefix of a JSONPath value.
pub const JSONPATH_PREFIX: &str = "jsonpath=";

/// The longest value a resolution gives (64 KiB): a label value or a config value, not a file.
pub const MAX_LEN: usize = 64 * 1024;

/// The `range` iterations one template may take (gotmpl's default is 10 million).
const MAX_RANGE_ITERATIONS: u64 = 100_000;

/// Why a value cannot be resolved (or, from [`check`], parsed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("`{value}`: the JSONPath {reason}")]
    JsonPath { value: String, reason: String },
    #[error("`{value}`: the template {reason}")]
    Template { value: String, reason: String },
    #[error("`{value}` gives more than {MAX_LEN} bytes")]
    TooLong { value: String },
}

impl ValueError {
    /// What to write instead.
    pub fn hint(&self) -> &'static str {
        match self {
            ValueError::JsonPath { .. } => {
                "write `jsonpath={.path.to.field}` (kubectl's JSONPath), e.g. `jsonpath={.spec.template.spec.containers[0].image}`"
            }
            ValueError::Template { .. } => {
                "write a Go template over the object's JSON fields, e.g. `{{ .metadata.name }}` or `{{ index .metadata.labels \"app\" }}`"
            }
            ValueError::TooLong { .. } => "pick a single field rather than a whole object",
        }
    }
}

/// Checks the syntax of a value without data (when a trigger is applied).
pub fn check(value: &str) -> Result<(), ValueError> {
    if let Some(template) = value.strip_prefix(JSONPATH_PREFIX) {
        for part in jsonpath_parts(value, template)? {
            if let Part::Query(q) = part {
                jsonpath_rust::parser::parse_json_path(&q).map_err(|e| ValueError::JsonPath {
                    value: short(value),
                    reason: format!("`{q}` does not parse: {e}"),
                })?;
            }
        }
        Ok(())
    } else if value.contains("{{") {
        go_template(value).map(drop)
    } else {
        Ok(())
    }
}

/// Resolves one value against `data`.
pub fn resolve(value: &str, data: &Value) -> Result<String, ValueError> {
    let out = if let Some(template) = value.strip_prefix(JSONPATH_PREFIX) {
        let mut out = String::new();
        for part in jsonpath_parts(value, template)? {
            match part {
                Part::Text(t) => out.push_str(&t),
                Part::Query(q) => {
                    let found = data.query(&q).map_err(|e| ValueError::JsonPath {
                        value: short(value),
                        reason: format!("`{q}` does not parse: {e}"),
                    })?;
                    if found.is_empty() {
                        return Err(ValueError::JsonPath {
                            value: short(value),
                            reason: format!("`{q}` finds nothing in the object"),
                        });
                    }
                    let texts: Vec<String> = found.iter().map(|v| text_of(v)).collect();
                    out.push_str(&texts.join(" "));
                }
            }
            if out.len() > MAX_LEN {
                return Err(ValueError::TooLong {
                    value: short(value),
                });
            }
        }
        out
    } else if value.contains("{{") {
        let template = go_template(value)?;
        let data = gotmpl::to_value(data).map_err(|e| ValueError::Template {
            value: short(value),
            reason: format!("cannot take the object: {e}"),
        })?;
        template
            .execute_to_string(&data)
            .map_err(|e| ValueError::Template {
                value: short(value),
                reason: format!("fails: {e}"),
            })?
    } else {
        value.to_string()
    };
    if out.len() > MAX_LEN {
        return Err(ValueError::TooLong {
            value: short(value),
        });
    }
    Ok(out)
}

/// Resolves every string of a JSON value (the label values of a `target`) in place.
pub fn resolve_strings(v: &mut Value, data: &Value) -> Result<(), ValueError> {
    match v {
        Value::String(s) => *s = resolve(s, data)?,
        Value::Array(items) => {
            for item in items {
                resolve_strings(item, data)?;
            }
        }
        Value::Object(map) => {
            for (_, item) in map.iter_mut() {
                resolve_strings(item, data)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A value as an error names it: at most 80 characters.
fn short(value: &str) -> String {
    match value.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

/// How a JSONPath result is printed (kubectl's): a string as it is, anything else as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Testkube's templates run with sprig's functions, which `gotmpl` does not have: a template
/// naming one fails to parse, and says which function.
fn go_template(value: &str) -> Result<gotmpl::Template, ValueError> {
    gotmpl::Template::new("value")
        .max_range_iters(MAX_RANGE_ITERATIONS)
        .parse(value)
        .map_err(|e| ValueError::Template {
            value: short(value),
            reason: format!("does not parse: {e}"),
        })
}

#[derive(Debug, PartialEq)]
enum Part {
    Text(String),
    /// An RFC 9535 query (`$...`).
    Query(String),
}

/// Splits a Kubernetes JSONPath template into text and queries, each query written the RFC 9535
/// way: `$` first, and member names in brackets (Kubernetes' `.app-name` and `.app\.io/name`
/// are not RFC shorthand names).
fn jsonpath_parts(value: &str, template: &str) -> Result<Vec<Part>, ValueError> {
    let err = |reason: String| ValueError::JsonPath {
        value: short(value),
        reason,
    };
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '{' {
            text.push(c);
            continue;
        }
        let mut inner = String::new();
        let mut quote: Option<char> = None;
        let mut closed = false;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), '\\') => {
                    inner.push(c);
                    if let Some(n) = chars.next() {
                        inner.push(n);
                    }
                    continue;
                }
                (None, '"' | '\'') => quote = Some(c),
                (None, '}') => {
                    closed = true;
                    break;
                }
                _ => {}
            }
            inner.push(c);
        }
        if !closed {
            return Err(err("has a `{` without its `}`".into()));
        }
        let inner = inner.trim();
        if inner.starts_with('"') {
            // `{"\n"}`: literal text, with JSON's escapes.
            let literal: String = serde_json::from_str(inner)
                .map_err(|e| err(format!("has a string `{inner}` that does not parse: {e}")))?;
            text.push_str(&literal);
            continue;
        }
        let word = inner.split_whitespace().next().unwrap_or("");
        if matches!(word, "range" | "end") {
            return Err(err(format!(
                "uses `{word}`, which Assay does not support (write one query, e.g. `{{.items[*].name}}`)"
            )));
        }
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Query(to_rfc(inner).map_err(err)?));
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// The longest query and its deepest nesting of `[` and `(` handed to the JSONPath parser
/// (a recursive descent one: a hostile `((((…` must not exhaust its stack).
const MAX_QUERY: usize = 1024;
const MAX_NESTING: usize = 16;

/// `.a.b-c[0]..d` → `$['a']['b-c'][0]..['d']`; brackets are copied as they are.
/// (The error is the final text of one problem, which `ValueError::JsonPath` carries.)
fn to_rfc(query: &str) -> Result<String, String> {
    if query.len() > MAX_QUERY {
        return Err(format!("query is longer than {MAX_QUERY} bytes"));
    }
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None::<char>);
    for c in query.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | ')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(format!(
            "`{}…` nests `[`/`(` deeper than {MAX_NESTING}",
            query.chars().take(40).collect::<String>()
        ));
    }
    let mut out = String::from("$");
    let mut chars = query.strip_prefix('$').unwrap_or(query).chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if chars.peek() == Some(&'.') {
                    chars.next();
                    out.push_str("..");
                }
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    match n {
                        '\\' => {
                            chars.next();
                            if let Some(e) = chars.next() {
                                name.push(e);
                            }
                        }
                        '.' | '[' => break,
                        n if n.is_whitespace() => break,
                        _ => {
                            name.push(n);
                            chars.next();
                        }
                    }
                }
                match name.as_str() {
                    "" => {}
                    "*" => out.push_str("[*]"),
                    _ => {
                        out.push_str("['");
                        out.push_str(&name.replace('\\', "\\\\").replace('\'', "\\'"));
                        out.push_str("']");
                    }
                }
            }
            '[' => {
                out.push('[');
                let mut depth = 1;
                let mut quote: Option<char> = None;
                for n in chars.by_ref() {
                    out.push(n);
                    match (quote, n) {
                        (Some(q), n) if n == q => quote = None,
                        (None, '"' | '\'') => quote = Some(n),
                        (None, '[') => depth += 1,
                        (None, ']') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if depth != 0 {
                    return Err(format!("`{query}` has a `[` without its `]`"));
                }
            }
            c if c.is_whitespace() => {}
            other => {
                return Err(format!(
                    "`{query}`: `{other}` where a `.field` or `[...]` was expected"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "shop",
                          "labels": {"app": "web", "app.kubernetes.io/name": "shop-web", "zone-a": "eu"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.28"},
                {"name": "side", "image": "busybox:1.36"}
            ]}}},
            "status": {"conditions": [{"type": "Available", "status": "True"},
                                       {"type": "Progressing", "status": "False"}]}
        })
    }

    #[test]
    fn jsonpath_values_resolve_as_kubectl_prints_them() {
        let d = deployment();
        let r = |v: &str| resolve(v, &d);
        assert_eq!(
            r("jsonpath={.spec.template.spec.containers[0].image}").unwrap(),
            "nginx:1.28"
        );
        assert_eq!(
            r("jsonpath={.spec.template.spec.containers[*].name}").unwrap(),
            "nginx side"
        );
        assert_eq!(r("jsonpath={$.metadata.name}").unwrap(), "web");
        assert_eq!(r("jsonpath={.spec.replicas}").unwrap(), "3");
        assert_eq!(
            r("jsonpath={.metadata.labels.app\\.kubernetes\\.io/name}").unwrap(),
            "shop-web"
        );
        assert_eq!(r("jsonpath={.metadata.labels.zone-a}").unwrap(), "eu");
        assert_eq!(
            r("jsonpath={.metadata.labels['app.kubernetes.io/name']}").unwrap(),
            "shop-web"
        );
        assert_eq!(
            r("jsonpath={.status.conditions[?(@.type==\"Available\")].status}").unwrap(),
            "True"
        );
        assert_eq!(r("jsonpath={..image}").unwrap(), "nginx:1.28 busybox:1.36");
        assert_eq!(
            r("jsonpath=img={.spec.template.spec.containers[1].image}{\"\\n\"}").unwrap(),
            "img=busybox:1.36\n"
        );
        assert_eq!(
            r("jsonpath={.spec.template.spec.containers[0]}").unwrap(),
            r#"{"name":"nginx","image":"nginx:1.28"}"#
        );
    }

    #[test]
    fn jsonpath_errors_say_what_is_wrong() {
        let d = deployment();
        let e = resolve("jsonpath={.spec.nothing}", &d).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`jsonpath={.spec.nothing}`: the JSONPath `$['spec']['nothing']` finds nothing in the object"
        );
        assert!(e.hint().contains("jsonpath={.path.to.field}"));
        for bad in [
            "jsonpath={.a",
            "jsonpath={.a[0}",
            "jsonpath={range .items[*]}{.name}{end}",
            "jsonpath={.a[?(@.x ==)]}",
            "jsonpath={.a b}",
        ] {
            assert!(
                matches!(check(bad), Err(ValueError::JsonPath { .. })),
                "{bad}"
            );
            assert!(resolve(bad, &d).is_err(), "{bad}");
        }
        assert!(check("jsonpath={.spec.template.spec.containers[0].image}").is_ok());
    }

    #[test]
    fn templates_run_over_the_objects_json_fields() {
        let d = deployment();
        assert_eq!(
            resolve("{{ .metadata.namespace }}/{{ .metadata.name }}", &d).unwrap(),
            "shop/web"
        );
        assert_eq!(
            resolve(
                "{{ index .metadata.labels \"app.kubernetes.io/name\" }}",
                &d
            )
            .unwrap(),
            "shop-web"
        );
        assert_eq!(
            resolve(
                "{{ range .spec.template.spec.containers }}{{ .image }} {{ end }}",
                &d
            )
            .unwrap(),
            "nginx:1.28 busybox:1.36 "
        );
        assert_eq!(resolve("plain text", &d).unwrap(), "plain text");
        assert_eq!(resolve("", &d).unwrap(), "");
        let e = check("{{ .metadata.name ").unwrap_err();
        assert!(matches!(e, ValueError::Template { .. }), "{e}");
        // sprig is not there: the function is named.
        let e = resolve("{{ .metadata.name | upper }}", &d).unwrap_err();
        assert!(e.to_string().contains("upper"), "{e}");
    }

    #[test]
    fn hostile_values_end_in_an_error_not_a_crash() {
        let d = deployment();
        // deep nesting, recursion and huge output are bounded
        let nested = format!("{}{}", "{{ if true }}".repeat(500), "{{ end }}".repeat(500));
        assert!(resolve(&nested, &d).is_err());
        assert_eq!(resolve("{{ range 3 }}x{{ end }}", &d).as_deref(), Ok("xxx"));
        let e = resolve("{{ range 10000000 }}{{ end }}", &d).unwrap_err();
        assert!(e.to_string().contains("range"), "{e}");
        let recursive = "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}";
        assert!(resolve(recursive, &d).is_err());
        let wide = format!("jsonpath={}", "{..image}".repeat(5000));
        assert!(matches!(
            resolve(&wide, &d),
            Err(ValueError::TooLong { .. })
        ));
        let deep = format!("jsonpath={{.a{}}}", "[".repeat(10_000));
        assert!(resolve(&deep, &d).is_err());
        let parens = format!(
            "jsonpath={{.a[?({}@.x==1{})]}}",
            "(".repeat(100),
            ")".repeat(100)
        );
        let e = check(&parens).unwrap_err();
        assert!(e.to_string().contains("deeper than 16"), "{e}");
        assert!(resolve(&parens, &d).is_err());
        let long = format!("jsonpath={{.a{}}}", ".b".repeat(1_000));
        let e = resolve(&long, &d).unwrap_err().to_string();
        assert!(e.contains("longer than") && e.len() < 300, "{e}");
        // gotmpl caps a printf width at 65,535: two of them pass the cap on the result.
        let printf = "{{ printf \"%0999999999d\" 1 }}";
        assert_eq!(resolve(printf, &d).map(|s| s.len()), Ok(65_535));
        let twice = format!("{printf}{printf}");
        assert!(matches!(
            resolve(&twice, &d),
            Err(ValueError::TooLong { .. })
        ));
    }

    #[test]
    fn target_strings_are_resolved_in_place() {
        let mut target = json!({"match": {"zone": ["jsonpath={.object.metadata.labels.zone-a}", "fixed"]},
                                "replicate": ["{{ .namespace }}"]});
        let event = json!({"namespace": "shop", "object": deployment()});
        resolve_strings(&mut target, &event).unwrap();
        assert_eq!(
            target,
            json!({"match": {"zone": ["eu", "fixed"]}, "replicate": ["shop"]})
        );
    }
}
