//! Binary operators on constant values, with Testkube's loose typing.

use std::cmp::Ordering;

use serde_json::Value;

use crate::ast::BinOp;
use crate::value::{ValueError, number, to_float, to_string};

/// Applies a non-short-circuit operator (`&&`/`||` are handled by the
/// resolver, but work here too for completeness).
pub fn binary(op: BinOp, l: &Value, r: &Value) -> Result<Value, ValueError> {
    match op {
        BinOp::And => Ok(if crate::value::truthy(l) {
            r.clone()
        } else {
            l.clone()
        }),
        BinOp::Or => Ok(if crate::value::truthy(l) {
            l.clone()
        } else {
            r.clone()
        }),
        // Equality compares string forms, so `"5" == 5` and `null == ""`.
        BinOp::Eq => Ok(Value::Bool(to_string(l) == to_string(r))),
        BinOp::Ne => Ok(Value::Bool(to_string(l) != to_string(r))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let (a, b) = (to_float(l)?, to_float(r)?);
            let ord = a.partial_cmp(&b);
            Ok(Value::Bool(match op {
                BinOp::Lt => ord == Some(Ordering::Less),
                BinOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                BinOp::Gt => ord == Some(Ordering::Greater),
                _ => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            }))
        }
        BinOp::Add if l.is_string() || r.is_string() => {
            Ok(Value::String(to_string(l) + &to_string(r)))
        }
        BinOp::Add => arith(l, r, i64::checked_add, |a, b| a + b),
        BinOp::Sub => arith(l, r, i64::checked_sub, |a, b| a - b),
        BinOp::Mul => arith(l, r, i64::checked_mul, |a, b| a * b),
        BinOp::Div => {
            let (a, b) = (to_float(l)?, to_float(r)?);
            if b == 0.0 {
                return Err(ValueError::DivideByZero);
            }
            number(a / b)
        }
        BinOp::Mod => {
            if to_float(r)? == 0.0 {
                return Err(ValueError::ModuloByZero);
            }
            arith(l, r, i64::checked_rem, |a, b| a % b)
        }
        BinOp::Pow => number(to_float(l)?.powf(to_float(r)?)),
    }
}

/// Integer arithmetic when both sides are integers and the result fits
/// (exact beyond 2^53), float arithmetic otherwise, as Testkube computes.
fn arith(
    l: &Value,
    r: &Value,
    int: fn(i64, i64) -> Option<i64>,
    float: fn(f64, f64) -> f64,
) -> Result<Value, ValueError> {
    if let (Some(a), Some(b)) = (l.as_i64(), r.as_i64())
        && let Some(v) = int(a, b)
    {
        return Ok(Value::from(v));
    }
    number(float(to_float(l)?, to_float(r)?))
}
