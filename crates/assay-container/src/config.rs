//! How a plan's Kubernetes fields become a container's settings: the environment a container
//! starts from, `securityContext` as a user, `resources` quantities as bytes and nanoCPUs.

use std::collections::BTreeMap;

use serde_json::Value;

/// The environment processes start from in a container: the caller's, without what describes
/// this machine (`PATH`, `HOME`, the user, the temporary folder): those are the image's.
pub(crate) fn container_env(base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = base
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "PATH" | "HOME" | "USER" | "LOGNAME" | "TMPDIR" | "SHELL" | "PWD"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.entry("CI".into()).or_insert_with(|| "1".into());
    env
}

/// `runAsUser[:runAsGroup]` of a securityContext, for the container's `User`.
pub(crate) fn run_as(security_context: Option<&Value>) -> Result<Option<String>, String> {
    let Some(sc) = security_context else {
        return Ok(None);
    };
    let id = |key: &str| -> Result<Option<u64>, String> {
        match sc.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .map(Some)
                .ok_or_else(|| {
                    format!("securityContext.{key}: `{}` is not a numeric id", plain(v))
                }),
        }
    };
    Ok(match (id("runAsUser")?, id("runAsGroup")?) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!("0:{g}")),
        (None, None) => None,
    })
}

pub(crate) fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Kubernetes memory quantity in bytes (`64Mi`, `1G`, `128974848`, `129e6`).
pub(crate) fn parse_memory(q: &Value) -> Option<i64> {
    let s = plain(q);
    let s = s.trim();
    let units: [(&str, f64); 12] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, factor) = units
        .iter()
        .find_map(|(u, f)| s.strip_suffix(u).map(|n| (n, *f)))
        .unwrap_or((s, 1.0));
    let value: f64 = number.parse().ok()?;
    let bytes = (value * factor).ceil();
    (bytes.is_finite() && bytes > 0.0 && bytes < i64::MAX as f64).then_some(bytes as i64)
}

/// A Kubernetes CPU quantity in billionths of a CPU (`500m`, `1.5`, `2`).
pub(crate) fn parse_cpu(q: &Value) -> Option<i64> {
    let s = plain(q);
    let s = s.trim();
    let cpus: f64 = match s.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok()? / 1000.0,
        None => s.parse().ok()?,
    };
    let nano = (cpus * 1e9).round();
    (nano.is_finite() && nano >= 1e6 && nano < i64::MAX as f64).then_some(nano as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        assert_eq!(parse_memory(&json!("64Mi")), Some(64 << 20));
        assert_eq!(parse_memory(&json!("1G")), Some(1_000_000_000));
        assert_eq!(parse_memory(&json!(1024)), Some(1024));
        assert_eq!(parse_memory(&json!("129e6")), Some(129_000_000));
        assert_eq!(parse_memory(&json!("lots")), None);
        assert_eq!(parse_memory(&json!("-1Mi")), None);
        assert_eq!(parse_cpu(&json!("500m")), Some(500_000_000));
        assert_eq!(parse_cpu(&json!(2)), Some(2_000_000_000));
        assert_eq!(parse_cpu(&json!("1.5")), Some(1_500_000_000));
        assert_eq!(parse_cpu(&json!("fast")), None);
    }

    #[test]
    fn run_as_users() {
        assert_eq!(run_as(None).unwrap(), None);
        assert_eq!(
            run_as(Some(&json!({"runAsUser": 1000, "runAsGroup": 1000}))).unwrap(),
            Some("1000:1000".into())
        );
        assert_eq!(
            run_as(Some(&json!({"runAsUser": 7}))).unwrap(),
            Some("7".into())
        );
        assert!(run_as(Some(&json!({"runAsUser": "root"}))).is_err());
    }
}
