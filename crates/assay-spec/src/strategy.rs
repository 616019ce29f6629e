//! Expanding `count`/`maxCount`/`matrix`/`shards` into concrete copies, as Testkube's toolkit
//! does (`testworkflow-toolkit/common/combinations.go`): `count` shards (capped by `maxCount`
//! and by the shortest shard list) times every combination of the matrix. Copy `i` has
//! shard index `i % shardCount` and matrix index `i / shardCount`; the matrix varies its last
//! key fastest, in declaration order.
//!
//! Pure: the compiler expands strategies known before the run, and a runtime expands the rest
//! (for instance `shards: {files: 'glob(...)'}`) once their values exist.

use assay_expr::{ExprError, Machine};
use assay_shard::{self as shard, Durations, Item, Method};
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
    /// With `balance: durations`: the indexes of the first shard list's items each shard
    /// index gets (see [`assay_shard::plan`]); `None` is Testkube's contiguous split.
    pub balanced: Option<Vec<Vec<usize>>>,
    /// The predicted load (ms) of each shard index, when some durations are known.
    pub predicted_ms: Vec<u64>,
    /// Shard keys whose list came out empty (e.g. a `glob()` that matched nothing). As in
    /// Testkube they do not limit the count; every copy sees them as an empty list.
    pub empty_shards: Vec<String>,
}

/// Why a strategy could not be evaluated. The message names the field first
/// (`shards: files: expected a list, got 3`); the caller adds where the strategy is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// A list of `matrix` or `shards` (`part`) under `key`.
    #[error("{part}: {key}: {problem}")]
    List {
        /// `matrix` or `shards`.
        part: &'static str,
        /// The list's name.
        key: String,
        /// What is wrong with it.
        problem: ListProblem,
    },
    /// `count` or `maxCount` (`field`).
    #[error("{field}: {problem}")]
    Count {
        /// `count` or `maxCount`.
        field: &'static str,
        /// What is wrong with it.
        problem: CountProblem,
    },
    /// The product of the matrix lists' lengths overflows.
    #[error("matrix: too many combinations")]
    TooManyCombinations,
    /// More copies than [`MAX_COPIES`].
    #[error("{shards} × {matrix} copies is more than the limit of {MAX_COPIES}")]
    TooManyCopies {
        /// Copies from `count`/`maxCount`/shards.
        shards: u64,
        /// Combinations of the matrix.
        matrix: u64,
    },
}

/// What is wrong with one list of `matrix` or `shards`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ListProblem {
    /// Its expression does not parse or evaluate.
    #[error(transparent)]
    Expression(ExprError),
    /// Its expression gave something else than a list.
    #[error("expected a list, got {0}")]
    NotAList(Value),
    /// A template inside the written list failed (the resolver's message, final as is).
    #[error("{0}")]
    Item(String),
    /// Neither a list nor an expression.
    #[error("expected a list or an expression, got {0}")]
    NotAListOrExpression(Value),
}

/// What is wrong with `count` or `maxCount`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CountProblem {
    /// Its expression does not parse or evaluate.
    #[error(transparent)]
    Expression(ExprError),
    /// A string that is not a number.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// A value that is not a number.
    #[error("expected a number, got {0}")]
    NotANumberValue(Value),
    /// Negative, or not finite.
    #[error("{0} should not be lower than zero")]
    Negative(Value),
}

/// Why a worker template could not be made into one copy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// A template of the worker failed for this copy.
    #[error(transparent)]
    Resolve(#[from] PathError),
    /// The worker does not go to JSON and back (a bug, or a template that made a field the
    /// wrong type).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Upper bound on copies of one strategy, so a typo (`count: 1e9`) is an error, not a hang.
pub const MAX_COPIES: u64 = 10_000;

/// Evaluate a strategy. `Ok(None)` when some part is only known at run time.
pub fn params(
    s: &PlanStrategy,
    machines: &[&dyn Machine],
) -> Result<Option<StrategyParams>, StrategyError> {
    let resolver = Resolver::new(machines.to_vec(), None);
    let in_part = |part| move |(key, problem)| StrategyError::List { part, key, problem };
    let Some(mut shards) = lists(&s.shards, &resolver).map_err(in_part("shards"))? else {
        return Ok(None);
    };
    let Some(mut matrix) = lists(&s.matrix, &resolver).map_err(in_part("matrix"))? else {
        return Ok(None);
    };
    matrix.retain(|_, l| !l.is_empty());
    let count = match &s.count {
        None => None,
        Some(v) => match read_count(v, &resolver).map_err(|problem| StrategyError::Count {
            field: "count",
            problem,
        })? {
            Some(n) => Some(n),
            None => return Ok(None),
        },
    };
    let max_count = match &s.max_count {
        None => None,
        Some(v) => match read_count(v, &resolver).map_err(|problem| StrategyError::Count {
            field: "maxCount",
            problem,
        })? {
            Some(n) => Some(n),
            None => return Ok(None),
        },
    };
    // Testkube drops empty lists before counting (`readParams`).
    let empty_shards: Vec<String> = shards
        .iter()
        .filter(|(_, l)| l.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    shards.retain(|_, l| !l.is_empty());
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
        .ok_or(StrategyError::TooManyCombinations)?;
    let total = shard_count
        .checked_mul(matrix_count)
        .filter(|t| *t <= MAX_COPIES)
        .ok_or(StrategyError::TooManyCopies {
            shards: shard_count,
            matrix: matrix_count,
        })?;
    let (balanced, predicted_ms) = match shards.values().next() {
        Some(items) if s.balance => balance(items, &s.durations, shard_count),
        _ => (None, Vec::new()),
    };
    // Copies still see `shard.<key>`, as an empty list.
    for key in &empty_shards {
        shards.insert(key.clone(), Vec::new());
    }
    Ok(Some(StrategyParams {
        matrix,
        shards,
        shard_count,
        matrix_count,
        count: total,
        balanced,
        predicted_ms,
        empty_shards,
    }))
}

/// The name a shard item is known by in the durations: strings as they are, other values as
/// JSON.
pub fn item_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Spread `items` over `shards` by their known durations (longest first onto the least-loaded
/// shard). Without any known duration this is Testkube's split and no load is predicted.
fn balance(
    items: &[Value],
    durations: &Durations,
    shards: u64,
) -> (Option<Vec<Vec<usize>>>, Vec<u64>) {
    let names: Vec<String> = items.iter().map(item_name).collect();
    let known = durations.for_items(&names);
    let items: Vec<Item> = names
        .into_iter()
        .zip(known)
        .map(|(name, duration_ms)| Item { name, duration_ms })
        .collect();
    let plan = shard::plan(&items, shards.max(1) as usize);
    let predicted = match plan.method {
        Method::Durations => plan
            .shards
            .iter()
            .map(|s| s.predicted_ms.round() as u64)
            .collect(),
        Method::EvenSplit => Vec::new(),
    };
    (
        Some(plan.shards.into_iter().map(|s| s.items).collect()),
        predicted,
    )
}

fn read_count(v: &Value, r: &Resolver) -> Result<Option<u64>, CountProblem> {
    let value = match v {
        Value::String(s) => match r.expression(s).map_err(CountProblem::Expression)? {
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
            .map_err(|_| CountProblem::NotANumber(s.clone()))?,
        other => return Err(CountProblem::NotANumberValue(other.clone())),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(CountProblem::Negative(value));
    }
    Ok(Some(n.trunc() as u64))
}

/// Lists by name (the `matrix` or the `shards` of a strategy).
type Lists = IndexMap<String, Vec<Value>>;

fn lists(
    src: &IndexMap<String, Value>,
    r: &Resolver,
) -> Result<Option<Lists>, (String, ListProblem)> {
    let mut out = IndexMap::new();
    for (key, v) in src {
        let problem = |p| (key.clone(), p);
        let list = match v {
            Value::String(s) => match r
                .expression(s)
                .map_err(|e| problem(ListProblem::Expression(e)))?
            {
                Ok(Value::Array(items)) => items,
                Ok(other) => return Err(problem(ListProblem::NotAList(other))),
                Err(_) => return Ok(None),
            },
            Value::Array(items) => {
                let mut items = Value::Array(items.clone());
                let mut errors: Vec<PathError> = Vec::new();
                let mut path = key.clone();
                r.value(&mut items, &mut path, &mut errors);
                if let Some(e) = errors.first() {
                    return Err(problem(ListProblem::Item(e.message.clone())));
                }
                match items {
                    Value::Array(items) => items,
                    _ => unreachable_list(),
                }
            }
            other => {
                return Err(problem(ListProblem::NotAListOrExpression(other.clone())));
            }
        };
        out.insert(key.clone(), list);
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

    /// The predicted load (ms) of copy `index`'s shard, when shards are balanced by durations.
    pub fn predicted_ms(&self, index: u64) -> Option<u64> {
        let shard_index = index % self.shard_count.max(1);
        self.predicted_ms.get(shard_index as usize).copied()
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
        for (n, (k, values)) in self.shards.iter().enumerate() {
            let total = values.len() as u64;
            let planned = self.balanced.as_ref().filter(|_| n == 0);
            let part = if let Some(planned) = planned {
                planned
                    .get(index as usize)
                    .map(|items| items.iter().map(|&i| values[i].clone()).collect())
                    .unwrap_or_default()
            } else if index >= total {
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
) -> Result<PlanWorker, WorkerError> {
    let machine = instance_machine(&instance);
    let resolver = Resolver::new(vec![&machine], None);
    let mut value = serde_json::to_value(template)?;
    let mut errors = Vec::new();
    let mut path = String::new();
    resolver.value(&mut value, &mut path, &mut errors);
    if let Some(e) = errors.into_iter().next() {
        return Err(e.into());
    }
    let mut worker: PlanWorker = serde_json::from_value(value)?;
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

    fn files(p: &StrategyParams, count: u64) -> Vec<Value> {
        (0..count)
            .map(|i| p.instance(i).shard["f"].clone())
            .collect()
    }

    #[test]
    fn balance_spreads_skewed_durations() {
        let list = json!(["a.py", "b.py", "c.py", "d.py", "e.py", "f.py"]);
        let even = params(&strategy(json!({"shards": {"f": list}, "count": 2})), &[])
            .unwrap()
            .unwrap();
        let p = params(
            &strategy(json!({
                "shards": {"f": list, "g": [1, 2, 3, 4]},
                "count": 2,
                "balance": true,
                "durations": {"sources": {"a.py": 9000, "b.py": 100, "c.py": 100, "d.py": 100, "e.py": 100, "f.py": 100}}
            })),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            files(&even, 2),
            vec![
                json!(["a.py", "b.py", "c.py"]),
                json!(["d.py", "e.py", "f.py"])
            ]
        );
        let balanced = files(&p, 2);
        assert_ne!(balanced, files(&even, 2));
        assert_eq!(balanced[0], json!(["a.py"]));
        // Every item exactly once.
        let mut all: Vec<String> = balanced
            .iter()
            .flat_map(|v| v.as_array().unwrap().clone())
            .map(|v| item_name(&v))
            .collect();
        all.sort();
        assert_eq!(all, ["a.py", "b.py", "c.py", "d.py", "e.py", "f.py"]);
        assert_eq!(p.predicted_ms(0), Some(9000));
        assert_eq!(p.predicted_ms(1), Some(500));
        // Other keys keep Testkube's split.
        assert_eq!(p.instance(0).shard["g"], json!([1, 2]));
        assert_eq!(p.instance(1).shard["g"], json!([3, 4]));
    }

    #[test]
    fn balance_without_durations_is_testkubes_split() {
        for (n, count) in [(5, 2), (7, 3), (2, 4), (10, 4)] {
            let list: Vec<u64> = (0..n).collect();
            let plain = params(
                &strategy(json!({"shards": {"f": list}, "count": count})),
                &[],
            )
            .unwrap()
            .unwrap();
            let balanced = params(
                &strategy(json!({"shards": {"f": list}, "count": count, "balance": true})),
                &[],
            )
            .unwrap()
            .unwrap();
            assert_eq!(files(&plain, count), files(&balanced, count));
            assert_eq!(balanced.predicted_ms(0), None);
        }
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
        let negative = params(&strategy(json!({"count": -1})), &[]).unwrap_err();
        assert_eq!(
            negative,
            StrategyError::Count {
                field: "count",
                problem: CountProblem::Negative(json!(-1)),
            }
        );
        assert_eq!(
            negative.to_string(),
            "count: -1 should not be lower than zero"
        );
        let huge = params(&strategy(json!({"count": 100000000})), &[]).unwrap_err();
        assert_eq!(
            huge.to_string(),
            "100000000 × 1 copies is more than the limit of 10000"
        );
    }

    #[test]
    fn a_list_error_names_its_part_and_key() {
        let e = params(&strategy(json!({"shards": {"files": 3}})), &[]).unwrap_err();
        assert!(
            matches!(&e, StrategyError::List { part: "shards", key, problem: ListProblem::NotAListOrExpression(_) } if key == "files"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "shards: files: expected a list or an expression, got 3"
        );
    }
}
