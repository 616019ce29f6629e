//! Kubernetes references to Secrets and ConfigMaps (`valueFrom`, `envFrom`, `contentFrom`,
//! git `tokenFrom`), read from the named secrets the caller hands over
//! ([`RunOptions::named_secrets`](crate::RunOptions::named_secrets)): outside Kubernetes a
//! ConfigMap and a Secret of the same name are one and the same named secret, so workflows
//! written for Testkube run unchanged. What only a pod has (`fieldRef`, `resourceFieldRef`) is
//! an error that says so.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Values by secret name, then key.
pub type NamedSecrets = BTreeMap<String, BTreeMap<String, String>>;

const KEY_REFS: [&str; 2] = ["secretKeyRef", "configMapKeyRef"];
const SOURCE_REFS: [&str; 2] = ["secretRef", "configMapRef"];

/// Names of every Secret or ConfigMap the value (a plan, as JSON) refers to, sorted: the
/// caller loads exactly these.
pub fn referenced_names(plan: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if (KEY_REFS.contains(&k.as_str()) || SOURCE_REFS.contains(&k.as_str()))
                        && let Some(name) = child.get("name").and_then(Value::as_str)
                    {
                        out.insert(name.to_string());
                    }
                    walk(child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(plan, &mut out);
    out.into_iter().collect()
}

/// Why a reference to a Secret or ConfigMap gave no value. `what` names the field
/// (`` env `P` ``, `content.git tokenFrom`, ...); the text says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// A `secretKeyRef`/`configMapKeyRef` without its `name` or `key`.
    #[error("{what}: {kind} needs a `name` and a `key`")]
    Incomplete { what: String, kind: &'static str },
    /// The named secret exists without this key.
    #[error(
        "{what}: secret `{name}` has no key `{key}` (set it with `assay secret set {name} {key}=…` on the machine that holds the history)"
    )]
    NoKey {
        what: String,
        name: String,
        key: String,
    },
    /// No named secret of that name.
    #[error(
        "{what}: there is no secret `{name}` (set it with `assay secret set {name} {key}=…` on the machine that holds the history)"
    )]
    NoSecret {
        what: String,
        name: String,
        key: String,
    },
    /// A source only a pod has (`fieldRef`, `resourceFieldRef`, ...), named by its key.
    #[error(
        "{what}: `{kind}` needs Kubernetes (a pod's own fields); outside it use `secretKeyRef` or `configMapKeyRef` (read from `assay secret`), a `value`, or config"
    )]
    NeedsKubernetes { what: String, kind: String },
    /// An `envFrom` source with neither `secretRef` nor `configMapRef`.
    #[error("envFrom: each source needs `secretRef` or `configMapRef`")]
    EnvFromKind,
    /// An `envFrom` reference without its `name`.
    #[error("envFrom: {kind} needs a `name`")]
    EnvFromName { kind: &'static str },
    /// No named secret of the name an `envFrom` gives.
    #[error(
        "envFrom: there is no secret `{name}` (set it with `assay secret set {name} KEY=…` on the machine that holds the history)"
    )]
    EnvFromSecret { name: String },
}

/// The value an `EnvVarSource` (`valueFrom`, `contentFrom`, `tokenFrom`, ...) gives; `None`
/// when it is `optional` and absent. `what` names the field in messages.
pub fn source_value(
    what: &str,
    source: &Value,
    secrets: &NamedSecrets,
) -> Result<Option<String>, RefError> {
    for kind in KEY_REFS {
        let Some(r) = source.get(kind) else { continue };
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() || key.is_empty() {
            return Err(RefError::Incomplete {
                what: what.to_string(),
                kind,
            });
        }
        let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
        return match secrets.get(name).and_then(|s| s.get(key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None if secrets.contains_key(name) => Err(RefError::NoKey {
                what: what.to_string(),
                name: name.to_string(),
                key: key.to_string(),
            }),
            None => Err(RefError::NoSecret {
                what: what.to_string(),
                name: name.to_string(),
                key: key.to_string(),
            }),
        };
    }
    let kind = source
        .as_object()
        .and_then(|m| m.keys().next())
        .map(String::as_str)
        .unwrap_or("an empty source");
    Err(RefError::NeedsKubernetes {
        what: what.to_string(),
        kind: kind.to_string(),
    })
}

/// The variables `envFrom` sources give, in order (a later source wins, as in Kubernetes;
/// the step's own `env` is applied after). Keys that are not variable names are left out.
pub fn env_from(
    sources: &[Value],
    secrets: &NamedSecrets,
) -> Result<Vec<(String, String)>, RefError> {
    let mut out = Vec::new();
    for source in sources {
        let prefix = source.get("prefix").and_then(Value::as_str).unwrap_or("");
        let Some((kind, r)) = SOURCE_REFS
            .iter()
            .find_map(|k| source.get(*k).map(|r| (*k, r)))
        else {
            return Err(RefError::EnvFromKind);
        };
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            return Err(RefError::EnvFromName { kind });
        }
        let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
        match secrets.get(name) {
            Some(keys) => out.extend(
                keys.iter()
                    .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
                    .filter(|(k, _)| is_env_name(k)),
            ),
            None if optional => {}
            None => {
                return Err(RefError::EnvFromSecret {
                    name: name.to_string(),
                });
            }
        }
    }
    Ok(out)
}

fn is_env_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secrets() -> NamedSecrets {
        let mut s = NamedSecrets::new();
        s.entry("db".into())
            .or_default()
            .insert("password".into(), "hunter2".into());
        s.entry("db".into())
            .or_default()
            .insert("1bad".into(), "x".into());
        s
    }

    #[test]
    fn names_are_found_anywhere() {
        let plan = json!({"a": [{"valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}],
            "b": {"envFrom": [{"configMapRef": {"name": "cm"}}]}});
        assert_eq!(referenced_names(&plan), vec!["cm", "db"]);
    }

    #[test]
    fn key_refs_resolve_or_say_what_to_do() {
        let s = secrets();
        let ok = json!({"secretKeyRef": {"name": "db", "key": "password"}});
        assert_eq!(
            source_value("env `P`", &ok, &s).unwrap().as_deref(),
            Some("hunter2")
        );
        let cm = json!({"configMapKeyRef": {"name": "db", "key": "password"}});
        assert_eq!(
            source_value("x", &cm, &s).unwrap().as_deref(),
            Some("hunter2")
        );
        let missing = json!({"secretKeyRef": {"name": "db", "key": "user"}});
        let e = source_value("env `U`", &missing, &s).unwrap_err();
        assert!(matches!(&e, RefError::NoKey { key, .. } if key == "user"));
        assert_eq!(
            e.to_string(),
            "env `U`: secret `db` has no key `user` (set it with `assay secret set db user=…` on the machine that holds the history)"
        );
        let optional = json!({"secretKeyRef": {"name": "nope", "key": "k", "optional": true}});
        assert_eq!(source_value("x", &optional, &s).unwrap(), None);
        let field = json!({"fieldRef": {"fieldPath": "metadata.name"}});
        let e = source_value("x", &field, &s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x: `fieldRef` needs Kubernetes (a pod's own fields); outside it use `secretKeyRef` or `configMapKeyRef` (read from `assay secret`), a `value`, or config"
        );
    }

    #[test]
    fn env_from_prefixes_and_skips_bad_names() {
        let s = secrets();
        let got = env_from(&[json!({"prefix": "DB_", "secretRef": {"name": "db"}})], &s).unwrap();
        assert_eq!(
            got,
            vec![
                ("DB_1bad".to_string(), "x".to_string()),
                ("DB_password".into(), "hunter2".into())
            ]
        );
        let bare = env_from(&[json!({"secretRef": {"name": "db"}})], &s).unwrap();
        assert_eq!(bare, vec![("password".to_string(), "hunter2".to_string())]);
        assert_eq!(
            env_from(&[json!({"secretRef": {"name": "gone"}})], &s),
            Err(RefError::EnvFromSecret {
                name: "gone".into()
            })
        );
        assert!(
            env_from(
                &[json!({"secretRef": {"name": "gone", "optional": true}})],
                &s
            )
            .unwrap()
            .is_empty()
        );
    }
}
