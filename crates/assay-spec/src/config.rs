//! Config parameters: values given by the caller checked against the workflow's (or a
//! template's) `config` schema, then offered to expressions as `config.NAME`.

use assay_expr::Machine;
use indexmap::IndexMap;
use serde_json::Value;

use crate::model::{ParameterSchema, ParameterType};
use crate::resolve::{ConfigEntry, ConfigMachine, PathError, Resolver, closest};

/// How strictly missing values are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// A parameter without default and without value is an error (running, planning).
    Require,
    /// Missing values stay unresolved (validating a workflow without values).
    Lenient,
}

/// Build the machine for `config.*` of one document.
///
/// `given` are the caller's values (strings from `--config k=v`, or JSON values from an API or a
/// template reference); `schema` the declared parameters; `owner` names the document in
/// messages. With `withhold_sensitive` (a workflow's own parameters), sensitive values are not
/// substituted: they stay `config.NAME` for the runtime and are returned in `secrets`. A
/// template's sensitive parameters are substituted: their value is whatever the workflow passed,
/// usually itself a reference to a secret.
///
/// Defaults are templates (`default: "{{ workflow.name }}-x"`). With `given_is_data` (values
/// from a run request: the CLI, the API, MCP, a schedule, a hook's payload) the given values are
/// data, never evaluated, as Testkube's `ApplyConfig` escapes them; without it (a template
/// reference's `config`, written in the workflow) they are templates like the rest of the YAML.
#[allow(clippy::too_many_arguments)]
pub fn config_machine(
    owner: &str,
    withhold_sensitive: bool,
    given_is_data: bool,
    schema: &IndexMap<String, ParameterSchema>,
    given: &IndexMap<String, Value>,
    strictness: Strictness,
    helpers: &[&dyn Machine],
    path: &str,
    errors: &mut Vec<PathError>,
) -> (ConfigMachine, IndexMap<String, String>) {
    let mut machine = ConfigMachine::new(owner);
    let mut secrets = IndexMap::new();
    let names: Vec<&str> = schema.keys().map(String::as_str).collect();
    for key in given.keys() {
        if !schema.contains_key(key) {
            let hint = closest(key, &names)
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    if names.is_empty() {
                        format!("the {owner} declares no config parameters")
                    } else {
                        format!("declared parameters: {}", names.join(", "))
                    }
                });
            errors.push(PathError {
                path: format!("{path}.{key}"),
                message: format!("the {owner} has no config parameter `{key}`"),
                hint: Some(hint),
            });
        }
    }
    let resolver = Resolver::new(helpers.to_vec(), None);
    for (key, param) in schema {
        let (raw, defaulted) = match (given.get(key), &param.default) {
            (Some(v), _) => (Some(v.clone()), false),
            (None, Some(d)) => (Some(d.clone()), true),
            (None, None) => (None, false),
        };
        let Some(raw) = raw else {
            let entry = match strictness {
                Strictness::Require => ConfigEntry::Missing,
                Strictness::Lenient => ConfigEntry::Later,
            };
            machine.values.insert(key.clone(), entry);
            continue;
        };
        // A default (or a value written in the YAML) may be a template over other known values.
        let text = scalar_text(&raw);
        let entry = if text.contains("{{") && (defaulted || !given_is_data) {
            match assay_expr::parse_template(&text)
                .map_err(|e| e.to_string())
                .and_then(|e| e.resolve(&resolver.machines).map_err(|e| e.to_string()))
            {
                Ok(e) => match e.as_static() {
                    Some(v) => cast(key, param, &assay_expr::stringify(v), path, errors),
                    None => Some(ConfigEntry::Expr(e)),
                },
                Err(message) => {
                    errors.push(PathError {
                        path: format!("{path}.{key}"),
                        message: format!("invalid expression in config `{key}`: {message}"),
                        hint: None,
                    });
                    None
                }
            }
        } else {
            cast(key, param, &text, path, errors)
        };
        let Some(entry) = entry else {
            machine.values.insert(key.clone(), ConfigEntry::Later);
            continue;
        };
        if param.sensitive && withhold_sensitive {
            if let ConfigEntry::Value(v) = &entry {
                secrets.insert(key.clone(), assay_expr::stringify(v));
            }
            machine.values.insert(key.clone(), ConfigEntry::Later);
            continue;
        }
        machine.values.insert(key.clone(), entry);
    }
    (machine, secrets)
}

/// The text of a scalar config value as Testkube's `IntOrString` would carry it.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A numeric bound of a parameter: its value, how it reads, and whether `n` satisfies it.
type Bound = (Option<i64>, &'static str, fn(f64, f64) -> bool);

/// Cast a value to the parameter's type and check it against the schema.
fn cast(
    key: &str,
    p: &ParameterSchema,
    text: &str,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Option<ConfigEntry> {
    let at = format!("{path}.{key}");
    let mut fail = |message: String, hint: Option<String>| {
        errors.push(PathError {
            path: at.clone(),
            message,
            hint,
        });
        None
    };
    let value = match p.kind.unwrap_or_default() {
        ParameterType::String => Value::String(text.to_string()),
        ParameterType::Integer => match text.trim().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => {
                return fail(
                    format!("config `{key}` must be an integer, got `{text}`"),
                    None,
                );
            }
        },
        ParameterType::Number => match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => {
                if n.fract() == 0.0 && n.abs() < 9e15 {
                    Value::from(n as i64)
                } else {
                    Value::from(n)
                }
            }
            _ => {
                return fail(
                    format!("config `{key}` must be a number, got `{text}`"),
                    None,
                );
            }
        },
        ParameterType::Boolean => match text.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => {
                return fail(
                    format!("config `{key}` must be a boolean, got `{text}`"),
                    Some("use `true` or `false`".into()),
                );
            }
        },
    };
    if !p.r#enum.is_empty() && !p.r#enum.iter().any(|e| e == text) {
        let options: Vec<&str> = p.r#enum.iter().map(String::as_str).collect();
        return fail(
            format!(
                "config `{key}` must be one of: {}; got `{text}`",
                options.join(", ")
            ),
            closest(text, &options).map(|s| format!("did you mean `{s}`?")),
        );
    }
    if let Value::String(s) = &value {
        let len = s.chars().count() as i64;
        if let Some(min) = p.min_length
            && len < min
        {
            return fail(
                format!("config `{key}` must be at least {min} characters long"),
                None,
            );
        }
        if let Some(max) = p.max_length
            && len > max
        {
            return fail(
                format!("config `{key}` must be at most {max} characters long"),
                None,
            );
        }
        if !p.pattern.is_empty() {
            match regex::Regex::new(&p.pattern) {
                Ok(re) if !re.is_match(s) => {
                    return fail(
                        format!(
                            "config `{key}` must match the pattern `{}`, got `{s}`",
                            p.pattern
                        ),
                        None,
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    return fail(format!("config `{key}` has an invalid pattern: {e}"), None);
                }
            }
        }
    }
    if let Some(n) = value.as_f64().filter(|_| value.is_number()) {
        let checks: [Bound; 4] = [
            (p.minimum, "at least", |n, b| n >= b),
            (p.maximum, "at most", |n, b| n <= b),
            (p.exclusive_minimum, "greater than", |n, b| n > b),
            (p.exclusive_maximum, "less than", |n, b| n < b),
        ];
        for (bound, words, ok) in checks {
            if let Some(b) = bound
                && !ok(n, b as f64)
            {
                return fail(
                    format!("config `{key}` must be {words} {b}, got {text}"),
                    None,
                );
            }
        }
        if let Some(m) = p.multiple_of
            && m != 0
            && (n / m as f64).fract() != 0.0
        {
            return fail(
                format!("config `{key}` must be a multiple of {m}, got {text}"),
                None,
            );
        }
    }
    Some(ConfigEntry::Value(value))
}
