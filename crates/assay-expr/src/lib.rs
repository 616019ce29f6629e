//! Testkube's `{{ }}` expression language, with partial evaluation.
//!
//! Workflow fields hold either bare expressions (`condition`, `retry.until`)
//! or templates (`"run {{ config.name }}"`). Both parse to an [`Expr`]. At
//! compile time, [`Expr::resolve`] replaces what the known [`Machine`]s can
//! answer and folds constants, leaving a smaller expression where run-time
//! values (`passed`, `env.X`, `step.x.outputs.y`) remain. At run time,
//! [`Expr::evaluate`] produces the final [`serde_json::Value`].
//!
//! ```
//! use assay_expr::{parse_template, Vars};
//! use serde_json::json;
//!
//! let tpl = parse_template("{{ config.name }} on {{ env.HOST }}").unwrap();
//! let config = Vars::new().with("config", json!({"name": "smoke"}));
//! let partial = tpl.resolve(&[&config]).unwrap();
//! assert_eq!(partial.to_template_string(), "smoke on {{env.HOST}}");
//!
//! let env = Vars::new().with("env.HOST", "ci-1");
//! assert_eq!(partial.evaluate(&[&env]).unwrap(), json!("smoke on ci-1"));
//! ```
//!
//! Semantics follow Testkube's Go implementation (`pkg/expressions`): loose
//! typing (`"5" == 5`, string `+` number concatenates), Testkube's operator
//! grouping (see [`parse`]), `&&`/`||` returning operands, and its standard
//! functions. Deliberate differences are listed in the crate's README.

#![forbid(unsafe_code)]

mod ast;
mod budget;
mod date;
mod error;
mod eval;
mod lexer;
mod machine;
mod ops;
mod parser;
mod paths;
mod print;
mod selector;
mod stdlib;
mod template;
mod value;
mod yaml;

use serde_json::Value;

pub use ast::{Arg, BinOp, Expr};
pub use budget::Limits;
pub use error::{ErrorKind, ExprError};
pub use eval::MAX_EVAL_DEPTH;
pub use machine::{Chain, FnMachine, Lookup, Machine, Vars};
pub use parser::MAX_DEPTH;
pub use selector::TOOLS as SELECTOR_TOOLS;
pub use stdlib::FUNCTIONS;
pub use template::parse_template;

/// Parses a bare expression such as `passed && config.retries > 2`.
///
/// Empty input is `null`. Operator grouping is Testkube's: `&&` and `||`
/// share one precedence level, all operators associate left, `?:` branches
/// stop at `&&`/`||`, and a unary minus takes the whole rest of the
/// expression (`-1 + 2` is `-3`). Nesting deeper than [`MAX_DEPTH`] is an
/// error rather than a stack overflow.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    parser::Parser::new(src, 0).parse_all()
}

impl Expr {
    /// Partially evaluates: replaces every variable the machines know,
    /// calls functions whose arguments are known, folds constants and cuts
    /// dead branches. Unknown variables, unknown functions and run-time-only
    /// functions (`date`, paths relative to the working directory) stay.
    ///
    /// Resolving with some machines and then evaluating with the others gives
    /// the same value as evaluating with all of them.
    ///
    /// The work is bounded by [`Limits::DEFAULT`]; see [`Expr::resolve_within`].
    pub fn resolve(&self, machines: &[&dyn Machine]) -> Result<Expr, ExprError> {
        self.resolve_within(machines, Limits::DEFAULT)
    }

    /// [`Expr::resolve`] with a budget: going over `limits` is an error of
    /// kind [`ErrorKind::Budget`] whose message names this expression.
    pub fn resolve_within(
        &self,
        machines: &[&dyn Machine],
        limits: Limits,
    ) -> Result<Expr, ExprError> {
        let budget = budget::Budget::new(limits);
        eval::Resolver {
            machines,
            finalize: false,
            budget: &budget,
        }
        .resolve(self, eval::Ctx::root())
        .map_err(|e| self.name_in(e))
    }

    /// Fully evaluates. A variable or function no machine knows is an error
    /// that names it.
    ///
    /// The work is bounded by [`Limits::DEFAULT`]; see [`Expr::evaluate_within`].
    pub fn evaluate(&self, machines: &[&dyn Machine]) -> Result<Value, ExprError> {
        self.evaluate_within(machines, Limits::DEFAULT)
    }

    /// [`Expr::evaluate`] with a budget: going over `limits` is an error of
    /// kind [`ErrorKind::Budget`] whose message names this expression.
    pub fn evaluate_within(
        &self,
        machines: &[&dyn Machine],
        limits: Limits,
    ) -> Result<Value, ExprError> {
        let budget = budget::Budget::new(limits);
        let resolved = eval::Resolver {
            machines,
            finalize: true,
            budget: &budget,
        }
        .resolve(self, eval::Ctx::root())
        .map_err(|e| self.name_in(e))?;
        match resolved {
            Expr::Lit(v) => Ok(v),
            // Unreachable in practice: final mode fails on anything unknown.
            other => Err(ExprError::eval(format!(
                "expression did not resolve to a value: `{other}`"
            ))),
        }
    }
}

impl Expr {
    fn name_in(&self, e: ExprError) -> ExprError {
        if e.kind == ErrorKind::Budget {
            e.naming(self)
        } else {
            e
        }
    }
}

/// Converts a value to a string as Testkube's `string()` and template
/// interpolation do: `null` is empty, lists join with `,`, objects are JSON.
pub fn stringify(value: &Value) -> String {
    value::to_string(value)
}

/// Testkube's truthiness (used by `condition`, `!`, `&&`, `||`, `?:`):
/// `null`, `false`, `0`, `""`, `"0"`, `"false"`, `"off"`, `[]` and `{}` are
/// false.
pub fn truthy(value: &Value) -> bool {
    value::truthy(value)
}

/// Parses and fully evaluates a template to its string.
pub fn render_template(src: &str, machines: &[&dyn Machine]) -> Result<String, ExprError> {
    parse_template(src)?
        .evaluate(machines)
        .map(|v| value::to_string(&v))
}

/// The template's string if it needs no variables (`"a{{ 1 + 2 }}"` →
/// `Some("a3")`), `None` if it does. Run-time-only functions such as `date()`
/// also give `None`.
pub fn eval_template_static(src: &str) -> Result<Option<String>, ExprError> {
    let resolved = parse_template(src)?.resolve(&[])?;
    Ok(resolved.as_static().map(value::to_string))
}
