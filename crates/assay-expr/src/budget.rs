//! How much work and memory one evaluation may use.
//!
//! Expressions come from people with very different rights (a viewer
//! validating a document, a runner's config values, a webhook's payload), so
//! a short one must not be able to take the process down:
//! `len(map(range(10000), "range(10000)"))` is 40 bytes and would build a
//! hundred million values. Depth is bounded elsewhere ([`crate::MAX_DEPTH`],
//! [`crate::MAX_EVAL_DEPTH`]); this bounds breadth: evaluation steps, and the
//! bytes of every value the evaluator builds or copies.

use std::cell::Cell;

use serde_json::Value;

use crate::error::ExprError;

/// The budget of one evaluation ([`crate::Expr::resolve_within`]).
///
/// Every node visited and every item `range`, `map` and `filter` produce is
/// a step; every value built, copied out of a variable or passed to a
/// function counts its approximate size in bytes (counted when made, never
/// given back, so the figure bounds the work done as well as the memory
/// held). Going over either limit ends the evaluation with an error of kind
/// [`crate::ErrorKind::Budget`] that names the expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most evaluation steps.
    pub max_steps: u64,
    /// Most bytes of values built or copied.
    pub max_bytes: u64,
}

impl Limits {
    /// One million steps and 64 MiB: far above what a workflow's expressions
    /// need (the largest in Testkube's corpus take a few hundred steps), and
    /// well under a second of work.
    pub const DEFAULT: Limits = Limits {
        max_steps: 1_000_000,
        max_bytes: 64 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// What a value is counted as beyond its text: one `serde_json::Value`.
const NODE_BYTES: u64 = 32;

/// The running count of one evaluation, shared by every nested resolver.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: Limits,
    steps: Cell<u64>,
    bytes: Cell<u64>,
}

impl Budget {
    pub fn new(limits: Limits) -> Self {
        Budget {
            limits,
            steps: Cell::new(0),
            bytes: Cell::new(0),
        }
    }

    /// Charges `n` steps.
    pub fn steps(&self, n: u64) -> Result<(), ExprError> {
        let used = self.steps.get().saturating_add(n);
        self.steps.set(used);
        if used > self.limits.max_steps {
            return Err(ExprError::budget(format!(
                "takes more than {} evaluation steps",
                self.limits.max_steps
            )));
        }
        Ok(())
    }

    /// Charges `n` bytes, before they are allocated when the caller can tell.
    pub fn bytes(&self, n: u64) -> Result<(), ExprError> {
        let used = self.bytes.get().saturating_add(n);
        self.bytes.set(used);
        if used > self.limits.max_bytes {
            return Err(ExprError::budget(format!(
                "builds more than {} of values",
                human_bytes(self.limits.max_bytes)
            )));
        }
        Ok(())
    }

    /// Charges `n` items of about `each` bytes (a list about to be built).
    pub fn items(&self, n: u64, each: u64) -> Result<(), ExprError> {
        self.steps(n)?;
        self.bytes(n.saturating_mul(NODE_BYTES.saturating_add(each)))
    }

    /// Charges the size of a value that was built or copied. The walk stops
    /// as soon as the budget is exceeded, so a huge value costs no more
    /// time to refuse than the budget allows.
    pub fn value(&self, v: &Value) -> Result<(), ExprError> {
        let left = self
            .limits
            .max_bytes
            .saturating_sub(self.bytes.get())
            .saturating_add(1);
        self.bytes(size_up_to(v, left))
    }
}

/// The approximate size of `v` in bytes, or some figure above `cap` once it
/// is clear the size is above `cap`. Iterative: values may be deep.
fn size_up_to(v: &Value, cap: u64) -> u64 {
    let mut total: u64 = 0;
    let mut pending: Vec<&Value> = vec![v];
    while let Some(v) = pending.pop() {
        total = total.saturating_add(NODE_BYTES);
        match v {
            Value::String(s) => total = total.saturating_add(s.len() as u64),
            Value::Array(items) => pending.extend(items.iter()),
            Value::Object(map) => {
                for (k, item) in map {
                    total = total.saturating_add(NODE_BYTES + k.len() as u64);
                    pending.push(item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        if total > cap {
            break;
        }
    }
    total
}

fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_count_nodes_and_text() {
        assert_eq!(size_up_to(&json!(null), u64::MAX), NODE_BYTES);
        assert_eq!(size_up_to(&json!("abc"), u64::MAX), NODE_BYTES + 3);
        assert_eq!(size_up_to(&json!([1, 2]), u64::MAX), 3 * NODE_BYTES);
        assert_eq!(size_up_to(&json!({"k": "v"}), u64::MAX), 3 * NODE_BYTES + 2);
    }

    #[test]
    fn the_walk_stops_past_the_cap() {
        let big = Value::Array(vec![Value::Null; 10_000]);
        let size = size_up_to(&big, 100);
        assert!((100..=100 + 2 * NODE_BYTES).contains(&size), "{size}");
    }

    #[test]
    fn a_budget_refuses_past_its_limits() {
        let b = Budget::new(Limits {
            max_steps: 2,
            max_bytes: 100,
        });
        assert!(b.steps(2).is_ok());
        assert!(b.steps(1).is_err());
        assert!(b.bytes(100).is_ok());
        let e = b.bytes(1).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Budget);
        assert!(e.message.contains("100 bytes"), "{}", e.message);
    }
}
