//! CEL for Kyverno (`validate.cel`, `celPreconditions`, `ValidatingPolicy`) through the `cel`
//! crate, with the strings, lists and math extensions Kubernetes' CEL environment also has.

use serde_json::Value;
use std::sync::{Arc, LazyLock};

static ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| {
    let mut env = cel::Env::stdlib();
    for ext in [
        cel::extensions::strings,
        cel::extensions::lists,
        cel::extensions::math,
    ] {
        // an extension that cannot be declared leaves its functions out; expressions using them
        // then fail with a clear "undeclared" error
        let _ = env.add_extension(ext);
    }
    Arc::new(env)
});

/// Evaluates `expression` with the named JSON values as variables.
pub fn eval(expression: &str, vars: &[(&str, &Value)]) -> Result<Value, String> {
    let program = ENV
        .compile(expression)
        .map_err(|e| format!("invalid CEL `{expression}`: {}", first_line(&e.to_string())))?;
    let mut ctx = cel::Context::with_env(Arc::clone(&ENV));
    for (name, value) in vars {
        let v = cel::to_value(value).map_err(|e| format!("cannot hand `{name}` to CEL: {e}"))?;
        ctx.add_variable_from_value(*name, v);
    }
    let out = program
        .execute(&ctx)
        .map_err(|e| format!("CEL `{expression}` failed: {}", first_line(&e.to_string())))?;
    out.json()
        .map_err(|e| format!("CEL `{expression}` gave a value JSON cannot hold: {e}"))
}

/// Evaluates a list of `{name, expression}` variables in order, each seeing the earlier ones
/// under `variables`.
pub fn eval_variables(defs: &[Value], base: &[(&str, &Value)]) -> Result<Value, String> {
    let mut vars = serde_json::Map::new();
    for d in defs {
        let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
        let expr = d
            .get("expression")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let current = Value::Object(vars.clone());
        let mut all: Vec<(&str, &Value)> = base.to_vec();
        all.push(("variables", &current));
        let v = eval(expr, &all)?;
        vars.insert(name.to_string(), v);
    }
    Ok(Value::Object(vars))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_over_json() {
        let obj = json!({"spec": {"containers": [{"name": "a", "image": "nginx:latest"}]}});
        let r = eval(
            "object.spec.containers.all(c, !c.image.endsWith(':latest'))",
            &[("object", &obj)],
        )
        .unwrap();
        assert_eq!(r, json!(false));
        let r = eval("has(object.spec.hostNetwork)", &[("object", &obj)]).unwrap();
        assert_eq!(r, json!(false));
        assert!(eval("object.spec.(", &[("object", &obj)]).is_err());
    }
}
