//! Machines: where variable values and extra functions come from.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::ast::Expr;
use crate::error::ExprError;

/// What a machine knows about a variable.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The variable has this value.
    Value(Value),
    /// The variable stands for this expression, which is resolved in turn
    /// (e.g. `passed` → `!failed`, or a secret reference left for later).
    Expr(Expr),
    /// The machine does not know the variable; it stays unresolved.
    Unknown,
}

/// A source of variables and, optionally, functions.
///
/// Dotted names are resolved like Testkube does: the whole name first
/// (`step.x.outputs.y`), then ever shorter prefixes (`step.x.outputs`,
/// `step.x`, `step`), reading the remaining segments as properties of the
/// value found. So a machine may know `config` as one object, or each
/// `config.name` on its own.
pub trait Machine {
    /// Looks up a (possibly dotted) variable name such as "config.name" or
    /// "env.HOME". Return [`Lookup::Unknown`] to leave it unresolved.
    fn lookup(&self, name: &str) -> Lookup;

    /// Calls an extra function with fully evaluated arguments (spreads
    /// already expanded). `None` means the machine does not provide it.
    /// Standard-library functions take precedence, as in Testkube, so this is
    /// only asked about names the standard library does not define. A failure is
    /// usually [`ExprError::eval`]; the caller adds which call it was.
    fn call(&self, _name: &str, _args: &[Value]) -> Option<Result<Value, ExprError>> {
        None
    }
}

/// A machine holding a fixed set of variables.
///
/// ```
/// use assay_expr::{parse, Vars};
/// use serde_json::json;
/// let vars = Vars::new().with("config", json!({"name": "x"}));
/// let value = parse("config.name + '!'").unwrap().evaluate(&[&vars]).unwrap();
/// assert_eq!(value, json!("x!"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Vars {
    entries: BTreeMap<String, Lookup>,
}

impl Vars {
    /// An empty set of variables.
    pub fn new() -> Self {
        Vars::default()
    }

    /// Adds (or replaces) a variable with a value.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    /// Adds (or replaces) a variable that stands for an expression.
    pub fn with_expr(mut self, name: impl Into<String>, expr: Expr) -> Self {
        self.entries.insert(name.into(), Lookup::Expr(expr));
        self
    }

    /// Adds (or replaces) a variable with a value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.entries.insert(
            name.into(),
            Lookup::Value(crate::value::normalize(value.into())),
        );
    }
}

impl Machine for Vars {
    fn lookup(&self, name: &str) -> Lookup {
        self.entries.get(name).cloned().unwrap_or(Lookup::Unknown)
    }
}

/// A machine answering variable lookups with a closure.
///
/// ```
/// use assay_expr::{parse, FnMachine, Lookup};
/// let env = FnMachine(|name: &str| match name.strip_prefix("env.") {
///     Some(key) => Lookup::Value(format!("<{key}>").into()),
///     None => Lookup::Unknown,
/// });
/// assert_eq!(parse("env.HOME").unwrap().evaluate(&[&env]).unwrap(), "<HOME>");
/// ```
pub struct FnMachine<F>(pub F);

impl<F: Fn(&str) -> Lookup> Machine for FnMachine<F> {
    fn lookup(&self, name: &str) -> Lookup {
        (self.0)(name)
    }
}

/// Several machines as one: the first that knows a variable or function wins.
pub struct Chain<'a> {
    machines: Vec<&'a dyn Machine>,
}

impl<'a> Chain<'a> {
    /// Chains the machines in order of precedence.
    pub fn new(machines: impl IntoIterator<Item = &'a dyn Machine>) -> Self {
        Chain {
            machines: machines.into_iter().collect(),
        }
    }
}

impl Machine for Chain<'_> {
    fn lookup(&self, name: &str) -> Lookup {
        self.machines
            .iter()
            .map(|m| m.lookup(name))
            .find(|l| !matches!(l, Lookup::Unknown))
            .unwrap_or(Lookup::Unknown)
    }

    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, ExprError>> {
        self.machines.iter().find_map(|m| m.call(name, args))
    }
}
