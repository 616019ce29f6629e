//! Expanding `count`/`maxCount`/`matrix`/`shards` into concrete copies, as Testkube's toolkit
//! does (`testworkflow-toolkit/common/combinations.go`): `count` shards (capped by `maxCount`
//! and by the shortest shard list) times every combination of the matrix. Copy `i` has
//! shard index `i % shardCount` and matrix index `i / shardCount`; the matrix varies its last
//! key fastest, in declaration order.
//!
//! Pure: the compiler expands strategies known before the run, and a runtime expands the rest
//! (for instance `shards: {files: 'glob(...)'}`) once their values exist.

use assay_expr::Machine;
use indexmap::IndexMap;
use serde_json::Value;

use crate::plan::{PlanStrategy, PlanWorker, StrategyInstance};
use crate::resolve::{PathError, Resolver};
use assay_expr::Vars;

/// A strategy with every list and count known.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyParams {
    pub matrix: IndexMap<String, Vec<Value>>,
    pub shards: IndexMap<String, Vec<Value>>,
    pub shard_count: u64,
    pub matrix_count: u64,
    /// Total copies: `shard_count * matrix_count`.
    pub count: u64,
}

/// Upper bound on copies of one strategy, so a typo (`count: 1e9`) is an error, not a hang.
pub const MAX_COPIES: u64 = 10_000;

/// Evaluate a strategy. `Ok(None)` when some part is only known at run time.
pub fn params(
    s: &PlanStrategy,
    machines: &[&dyn Machine],
) -> Result<Option<StrategyParams>, String> {
    let resolver = Resolver::new(machines.to_vec(), None);
    let Some(shards) = lists(&s.shards, &resolver).map_err(|e| format!("shards: {e}"))? else {
        return Ok(None);
    };
    let Some(matrix) = lists(&s.matrix, &resolver).map_err(|e| format!("matrix: {e}"))? else {
        return Ok(None);
    };
    let count = match &s.count {
        None => None,
        Some(v) => match read_count(v, &resolver).map_err(|e| format!("count: {e}"))? {
            Some(n) => Some(n),
            None => return Ok(None),
        },
    };
    let max_count = match &s.max_count {
        None => None,
        Some(v) => match read_count(v, &resolver).map_err(|e| format!("maxCount: {e}"))? {
            Some(n) => Some(n),
            None => return Ok(None),
        },
    };
    let min_shards = shards
        .values()
        .map(|l| l.len() as u64)
        .min()
        .unwrap_or(u64::MAX);
    let (mut count, mut max_count) = match (count, max_count) {
        (None, None) => (Some(1), None),
        (Some(c), Some(m)) if m < c => (Some(m), None),
        other => other,
    };
    if let Some(m) = max_count.take() {
        count = Some(if m > min_shards { min_shards } else { m });
    }
    let shard_count = count.unwrap_or(1);
    let matrix_count = matrix
        .values()
        .try_fold(1u64, |acc, l| acc.checked_mul(l.len() as u64))
        .ok_or("matrix: too many combinations")?;
    let total = shard_count
        .checked_mul(matrix_count)
        .filter(|t| *t <= MAX_COPIES)
        .ok_or_else(|| {
            format!("{shard_count} × {matrix_count} copies is more than the limit of {MAX_COPIES}")
        })?;
    Ok(Some(StrategyParams {
        matrix,
        shards,
        shard_count,
        matrix_count,
        count: total,
    }))
}

fn read_count(v: &Value, r: &Resolver) -> Result<Option<u64>, String> {
    let value = match v {
        Value::String(s) => match r.expression(s)? {
            Ok(v) => v,
            Err(_) => return Ok(None),
        },
        other => other.clone(),
    };
    let n = match &value {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("`{s}` is not a number"))?,
        other => return Err(format!("expected a number, got {other}")),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{value} should not be lower than zero"));
    }
    Ok(Some(n.trunc() as u64))
}

fn lists(
    src: &IndexMap<String, Value>,
    r: &Resolver,
) -> Result<Option<IndexMap<String, Vec<Value>>>, String> {
    let mut out = IndexMap::new();
    for (key, v) in src {
        let list = match v {
            Value::String(s) => match r.expression(s).map_err(|e| format!("{key}: {e}"))? {
                Ok(Value::Array(items)) => items,
                Ok(other) => return Err(format!("{key}: expected a list, got {other}")),
                Err(_) => return Ok(None),
            },
            Value::Array(items) => {
                let mut items = Value::Array(items.clone());
                let mut errors: Vec<PathError> = Vec::new();
                let mut path = key.clone();
                r.value(&mut items, &mut path, &mut errors);
                if let Some(e) = errors.first() {
                    return Err(format!("{key}: {}", e.message));
                }
                match items {
                    Value::Array(items) => items,
                    _ => unreachable_list(),
                }
            }
            other => {
                return Err(format!(
                    "{key}: expected a list or an expression, got {other}"
                ));
            }
        };
        if !list.is_empty() {
            out.insert(key.clone(), list);
        }
    }
    Ok(Some(out))
}

fn unreachable_list() -> Vec<Value> {
    // Resolving a JSON array keeps it an array; an empty list is the harmless answer.
    Vec::new()
}

impl StrategyParams {
    /// The values copy `index` sees.
    pub fn instance(&self, index: u64) -> StrategyInstance {
        let shard_index = index % self.shard_count.max(1);
        let matrix_index = (index - shard_index) / self.shard_count.max(1);
        StrategyInstance {
            index,
            count: self.count,
            matrix_index,
            matrix_count: self.matrix_count,
            shard_index,
            shard_count: self.shard_count,
            matrix: self.matrix_at(matrix_index),
            shard: self.shards_at(shard_index),
        }
    }

    pub fn instances(&self) -> Vec<StrategyInstance> {
        (0..self.count).map(|i| self.instance(i)).collect()
    }

    fn matrix_at(&self, index: u64) -> IndexMap<String, Value> {
        let keys: Vec<&String> = self.matrix.keys().collect();
        let mut out = IndexMap::new();
        for (i, k) in keys.iter().enumerate() {
            let modulo = self.matrix[*k].len() as u64;
            let floor: u64 = keys[i + 1..]
                .iter()
                .map(|k2| self.matrix[*k2].len() as u64)
                .product();
            let idx = (index / floor.max(1)) % modulo.max(1);
            out.insert((*k).clone(), self.matrix[*k][idx as usize].clone());
        }
        out
    }

    fn shards_at(&self, index: u64) -> IndexMap<String, Value> {
        let count = self.shard_count.max(1);
        let mut out = IndexMap::new();
        for (k, values) in &self.shards {
            let total = values.len() as u64;
            let part = if index >= total {
                Vec::new()
            } else {
                let size = total / count;
                let bigger = total - size * count;
                let (start, len) = if bigger > index {
                    (index * (size + 1), size + 1)
                } else {
                    (bigger + index * size, size)
                };
                values[start as usize..(start + len) as usize].to_vec()
            };
            out.insert(k.clone(), Value::Array(part));
        }
        out
    }
}

/// The machine giving `index`, `count`, `matrix.*`, `shard.*` (and Testkube's
/// `matrixIndex`, `matrixCount`, `shardIndex`, `shardCount`) to expressions.
pub fn instance_machine(i: &StrategyInstance) -> Vars {
    Vars::new()
        .with("index", Value::from(i.index))
        .with("count", Value::from(i.count))
        .with("matrixIndex", Value::from(i.matrix_index))
        .with("matrixCount", Value::from(i.matrix_count))
        .with("shardIndex", Value::from(i.shard_index))
        .with("shardCount", Value::from(i.shard_count))
        .with(
            "matrix",
            Value::Object(i.matrix.clone().into_iter().collect()),
        )
        .with(
            "shard",
            Value::Object(i.shard.clone().into_iter().collect()),
        )
}

/// A concrete worker from a worker template (see [`crate::plan::PlanParallel::worker`]).
pub fn expand_worker(
    template: &PlanWorker,
    instance: StrategyInstance,
) -> Result<PlanWorker, String> {
    let machine = instance_machine(&instance);
    let resolver = Resolver::new(vec![&machine], None);
    let mut value = serde_json::to_value(template).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    let mut path = String::new();
    resolver.value(&mut value, &mut path, &mut errors);
    if let Some(e) = errors.first() {
        return Err(format!("{}: {}", e.path, e.message));
    }
    let mut worker: PlanWorker = serde_json::from_value(value).map_err(|e| e.to_string())?;
    worker.instance = instance;
    Ok(worker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strategy(v: Value) -> PlanStrategy {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_is_one_copy() {
        let p = params(&PlanStrategy::default(), &[]).unwrap().unwrap();
        assert_eq!(p.count, 1);
    }

    #[test]
    fn matrix_times_shards() {
        let p = params(
            &strategy(
                json!({"matrix": {"browser": ["chrome", "firefox"], "v": [1, 2, 3]}, "count": 2}),
            ),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.count, 12);
        let i = p.instance(5);
        assert_eq!(i.shard_index, 1);
        assert_eq!(i.matrix_index, 2);
        assert_eq!(i.matrix["browser"], json!("chrome"));
        assert_eq!(i.matrix["v"], json!(3));
    }

    #[test]
    fn shards_split_like_testkube() {
        let p = params(
            &strategy(json!({"shards": {"f": [1, 2, 3, 4, 5]}, "count": 2})),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.instance(0).shard["f"], json!([1, 2, 3]));
        assert_eq!(p.instance(1).shard["f"], json!([4, 5]));
    }

    #[test]
    fn max_count_is_capped_by_shards() {
        let p = params(
            &strategy(json!({"shards": {"f": [1, 2]}, "maxCount": 5})),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.count, 2);
        let p = params(&strategy(json!({"count": 5, "maxCount": 3})), &[])
            .unwrap()
            .unwrap();
        assert_eq!(p.count, 3);
    }

    #[test]
    fn unknown_values_defer_to_run_time() {
        let p = params(&strategy(json!({"shards": {"f": "glob('x/**')"}})), &[]).unwrap();
        assert!(p.is_none());
        let p = params(&strategy(json!({"count": "env.N"})), &[]).unwrap();
        assert!(p.is_none());
    }

    #[test]
    fn negative_and_huge_counts_are_errors() {
        assert!(params(&strategy(json!({"count": -1})), &[]).is_err());
        assert!(params(&strategy(json!({"count": 100000000})), &[]).is_err());
    }
}
