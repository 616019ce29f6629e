//! Duration-aware shard planning: longest processing time first onto the least-loaded shard.
//!
//! Its own crate so that the compiler (`assay-spec`, which plans shards known at compile time)
//! and the reports (`assay-reports`, which gives durations from JUnit cases) share it without
//! the compiler depending on XML. Pure: no I/O, no clock.
//!
//! LPT is Graham's rule: its makespan is at most `4/3 − 1/(3m)` times the optimum, and far
//! better in practice on test suites (many short items, a few long ones). Items with no
//! history get the mean of the known durations; with no history at all the plan falls back to
//! Testkube's even split (contiguous chunks), so a workflow's shards look as they always did.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// One thing to place (a test file or a test name) and its expected duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub name: String,
    /// Expected duration in milliseconds from earlier executions; `None` when unknown.
    pub duration_ms: Option<f64>,
}

/// One shard of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shard {
    /// Indexes into the planned items, in their original order.
    pub items: Vec<usize>,
    /// Sum of the expected durations (ms).
    pub predicted_ms: f64,
}

/// How a plan was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Method {
    /// Longest first onto the least-loaded shard.
    Durations,
    /// No history: contiguous chunks of equal size.
    EvenSplit,
}

/// Items spread over shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardPlan {
    pub method: Method,
    pub shards: Vec<Shard>,
}

impl ShardPlan {
    /// The largest predicted load: when the last shard is expected to finish.
    pub fn makespan_ms(&self) -> f64 {
        self.shards
            .iter()
            .map(|s| s.predicted_ms)
            .fold(0.0, f64::max)
    }
}

/// `max(longest item, total / shards)`: no plan can finish before this.
pub fn lower_bound_ms(durations: &[f64], shards: usize) -> f64 {
    let total: f64 = durations.iter().sum();
    let longest = durations.iter().copied().fold(0.0, f64::max);
    longest.max(total / shards.max(1) as f64)
}

/// Spread `items` over `shards` shards (at least one).
pub fn plan(items: &[Item], shards: usize) -> ShardPlan {
    let shards = shards.max(1);
    let known: Vec<f64> = items
        .iter()
        .filter_map(|i| i.duration_ms.filter(|d| d.is_finite() && *d >= 0.0))
        .collect();
    if known.is_empty() {
        return even_split(items.len(), shards, |_| 0.0);
    }
    let mean = known.iter().sum::<f64>() / known.len() as f64;
    let duration = |i: usize| {
        items[i]
            .duration_ms
            .filter(|d| d.is_finite() && *d >= 0.0)
            .unwrap_or(mean)
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Longest first; ties by name so that plans are stable across runs.
    order.sort_by(|&a, &b| {
        duration(b)
            .partial_cmp(&duration(a))
            .unwrap_or(Ordering::Equal)
            .then_with(|| items[a].name.cmp(&items[b].name))
    });
    let mut out: Vec<Shard> = (0..shards)
        .map(|_| Shard {
            items: Vec::new(),
            predicted_ms: 0.0,
        })
        .collect();
    // Min-heap on (load, shard index); loads as integer microseconds for a total order.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> =
        (0..shards).map(|s| Reverse((0, s))).collect();
    for i in order {
        let Reverse((_, s)) = heap.pop().expect("one entry per shard");
        out[s].items.push(i);
        out[s].predicted_ms += duration(i);
        heap.push(Reverse(((out[s].predicted_ms * 1000.0) as u64, s)));
    }
    for shard in &mut out {
        shard.items.sort_unstable();
    }
    ShardPlan {
        method: Method::Durations,
        shards: out,
    }
}

/// Testkube's split: contiguous chunks, the first `len % shards` one item larger.
pub fn even_split(len: usize, shards: usize, duration: impl Fn(usize) -> f64) -> ShardPlan {
    let shards = shards.max(1);
    let size = len / shards;
    let bigger = len % shards;
    let mut start = 0;
    let shards = (0..shards)
        .map(|s| {
            let n = size + usize::from(s < bigger);
            let items: Vec<usize> = (start..start + n).collect();
            start += n;
            Shard {
                predicted_ms: items.iter().map(|&i| duration(i)).sum(),
                items,
            }
        })
        .collect();
    ShardPlan {
        method: Method::EvenSplit,
        shards,
    }
}

/// What earlier runs say about how long shard items take: the input of
/// `balance: durations`, matched to the items of a shard list by [`Durations::for_items`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    /// Each test's latest duration (ms) by key (`class::name`) and by bare name: for shard
    /// lists of tests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tests: BTreeMap<String, u64>,
    /// Durations (ms) summed by where the tests live as their report says it (see
    /// [`source_of`]): a file, a dotted module or class, a package, a suite.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, u64>,
}

/// Where a test lives as its report says it, for matching shard items (files, folders,
/// packages) against reports that name no file:
///
/// - the `file` attribute when there is one (pytest's xunit1, jest-junit with
///   `addFileAttribute`);
/// - else `classname`: pytest's xunit2 dotted module path (`tests.test_api.TestX`), Surefire's
///   class (`com.example.CalculatorTest`), go-junit-report's package
///   (`example.com/shop/cart`), Playwright's file (`login.spec.ts`); for nextest the binary id
///   followed by the test's module path (`shop::cart::tests`);
/// - else, when `classname` only repeats the name (jest-junit's default), the outermost suite:
///   jest-junit names it after the file's top `describe`, which conventionally names the file.
pub fn source_of(
    file: Option<&str>,
    class: Option<&str>,
    name: &str,
    suite: &str,
) -> Option<String> {
    if let Some(f) = file.map(str::trim).filter(|f| !f.is_empty()) {
        return Some(f.to_string());
    }
    if let Some(c) = class
        .map(str::trim)
        .filter(|c| !c.is_empty() && *c != name.trim())
    {
        return Some(match name.rsplit_once("::") {
            Some((module, _)) => format!("{c}::{module}"),
            None => c.to_string(),
        });
    }
    let outer = suite.split(" › ").next().unwrap_or("").trim();
    (!outer.is_empty()).then(|| outer.to_string())
}

/// File extensions dropped before matching (`login.spec.ts` and `login.spec` are one place).
const SOURCE_EXTENSIONS: &[&str] = &[
    "py", "pyw", "js", "jsx", "mjs", "cjs", "ts", "tsx", "mts", "cts", "go", "rs", "java", "kt",
    "kts", "scala", "groovy", "rb", "cs", "php", "swift", "c", "cc", "cpp", "feature", "robot",
];

/// A place as comparable words: paths, dotted modules, `::` paths and package paths all split
/// into segments; extensions and a trailing `.test`/`.spec` dropped; lowercase letters and
/// digits only (`shopping-cart.test.ts` and a `describe("Shopping cart")` meet as
/// `shoppingcart`).
fn segments(text: &str) -> Vec<String> {
    let text = text.replace("::", "/").replace('\\', "/");
    let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty()).collect();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let mut dotted: Vec<&str> = part.split('.').collect();
        if i + 1 == parts.len() {
            if dotted.len() > 1
                && SOURCE_EXTENSIONS
                    .contains(&dotted[dotted.len() - 1].to_ascii_lowercase().as_str())
            {
                dotted.pop();
            }
            if dotted.len() > 1 && matches!(dotted[dotted.len() - 1], "test" | "spec") {
                dotted.pop();
            }
        }
        for d in dotted {
            let word: String = d
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            if !word.is_empty() {
                out.push(word);
            }
        }
    }
    out
}

/// How well an item names a source: the length of the longest tail of the item's segments that
/// appears, in order, somewhere in the source's (`tests/test_api.py` in
/// `tests.test_api.TestX` scores 2; `./cart` in `example.com/shop/cart` scores 1).
fn score(item: &[String], source: &[String]) -> usize {
    (1..=item.len())
        .rev()
        .find(|&n| {
            let tail = &item[item.len() - n..];
            source.windows(n).any(|w| w == tail)
        })
        .unwrap_or(0)
}

impl Durations {
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty() && self.sources.is_empty()
    }

    /// Adds one test's duration: by key (`class::name`) and bare name, and to its source
    /// ([`source_of`]).
    pub fn add_test(
        &mut self,
        name: &str,
        class: Option<&str>,
        file: Option<&str>,
        suite: &str,
        ms: u64,
    ) {
        self.tests.insert(name.to_string(), ms);
        if let Some(class) = class {
            self.tests.insert(format!("{class}::{name}"), ms);
        }
        if let Some(source) = source_of(file, class, name, suite) {
            *self.sources.entry(source).or_default() += ms;
        }
    }

    /// The expected duration (ms) of each item: a test's own when the item is a test key or
    /// name, else the sum of the sources that match this item better than any other (see
    /// [`source_of`]); `None` when nothing matches. A source that two items match equally
    /// well counts for neither.
    pub fn for_items(&self, items: &[String]) -> Vec<Option<f64>> {
        let mut out: Vec<Option<f64>> = items
            .iter()
            .map(|i| self.tests.get(i).map(|d| *d as f64))
            .collect();
        let item_segments: Vec<Vec<String>> = items.iter().map(|i| segments(i)).collect();
        // Candidates by last segment: a source can only match items whose last word it has.
        let mut by_last: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, segs) in item_segments.iter().enumerate() {
            if out[i].is_none()
                && let Some(last) = segs.last()
            {
                by_last.entry(last.as_str()).or_default().push(i);
            }
        }
        for (source, ms) in &self.sources {
            let segs = segments(source);
            let mut best = (0usize, Vec::new());
            let mut seen = HashSet::new();
            for word in &segs {
                for &i in by_last.get(word.as_str()).into_iter().flatten() {
                    if !seen.insert(i) {
                        continue;
                    }
                    let s = score(&item_segments[i], &segs);
                    if s > best.0 {
                        best = (s, vec![i]);
                    } else if s == best.0 && s > 0 {
                        best.1.push(i);
                    }
                }
            }
            if let [i] = best.1[..] {
                *out[i].get_or_insert(0.0) += *ms as f64;
            }
        }
        out
    }

    /// Only what matters for `items` (a plan carries these for a static shard list).
    pub fn for_list(&self, items: &[String]) -> Durations {
        let wanted: HashSet<&String> = items.iter().collect();
        let item_segments: Vec<Vec<String>> = items.iter().map(|i| segments(i)).collect();
        Durations {
            tests: self
                .tests
                .iter()
                .filter(|(k, _)| wanted.contains(k))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            sources: self
                .sources
                .iter()
                .filter(|(k, _)| {
                    let segs = segments(k);
                    item_segments.iter().any(|i| score(i, &segs) > 0)
                })
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items(durations: &[Option<f64>]) -> Vec<Item> {
        durations
            .iter()
            .enumerate()
            .map(|(i, d)| Item {
                name: format!("t{i:03}"),
                duration_ms: *d,
            })
            .collect()
    }

    #[test]
    fn places_match_across_spellings() {
        assert_eq!(
            segments("/data/repo/tests/test_api.py"),
            ["data", "repo", "tests", "testapi"]
        );
        assert_eq!(
            segments("src/shopping-cart.test.ts"),
            ["src", "shoppingcart"]
        );
        assert_eq!(
            segments("example.com/shop/cart"),
            ["example", "com", "shop", "cart"]
        );
        assert_eq!(segments("./cart/..."), ["cart"]);
        let s = |i: &str, src: &str| score(&segments(i), &segments(src));
        assert_eq!(s("/data/repo/tests/test_api.py", "tests.test_api.TestX"), 2);
        assert_eq!(s("tests/test_api.py", "tests.test_apis.TestX"), 0);
        assert_eq!(s("src/app.py", "tests.test_app"), 0);
    }

    #[test]
    fn a_source_two_items_match_equally_counts_for_neither() {
        let d = Durations {
            sources: [
                ("util.TestX".to_string(), 10),
                ("a.util.TestY".to_string(), 5),
            ]
            .into(),
            ..Default::default()
        };
        let items = ["x/a/util.py".to_string(), "y/b/util.py".to_string()];
        assert_eq!(d.for_items(&items), vec![Some(5.0), None]);
    }

    #[test]
    fn no_history_is_testkubes_even_split() {
        let p = plan(&items(&[None; 7]), 3);
        assert_eq!(p.method, Method::EvenSplit);
        let got: Vec<Vec<usize>> = p.shards.iter().map(|s| s.items.clone()).collect();
        assert_eq!(got, vec![vec![0, 1, 2], vec![3, 4], vec![5, 6]]);
    }

    #[test]
    fn longest_first_balances_a_skewed_suite() {
        let p = plan(
            &items(&[Some(10.0), Some(1.0), Some(1.0), Some(9.0), Some(1.0)]),
            2,
        );
        assert_eq!(p.method, Method::Durations);
        assert_eq!(p.makespan_ms(), 11.0);
    }

    #[test]
    fn unknown_items_get_the_mean() {
        let p = plan(&items(&[Some(4.0), None, Some(2.0)]), 3);
        let mut loads: Vec<f64> = p.shards.iter().map(|s| s.predicted_ms).collect();
        loads.sort_by(f64::total_cmp);
        assert_eq!(loads, vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn more_shards_than_items_leaves_some_empty() {
        let p = plan(&items(&[Some(1.0)]), 4);
        assert_eq!(p.shards.iter().filter(|s| s.items.is_empty()).count(), 3);
    }

    proptest! {
        #[test]
        fn every_item_is_placed_exactly_once(
            durations in prop::collection::vec(prop::option::weighted(0.9, 0.0f64..10_000.0), 0..200),
            shards in 1usize..16,
        ) {
            let p = plan(&items(&durations), shards);
            prop_assert_eq!(p.shards.len(), shards);
            let mut seen: Vec<usize> = p.shards.iter().flat_map(|s| s.items.clone()).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..durations.len()).collect::<Vec<_>>());
        }

        #[test]
        fn makespan_is_within_grahams_bound(
            durations in prop::collection::vec(0.0f64..10_000.0, 1..200),
            shards in 1usize..16,
        ) {
            let known: Vec<Option<f64>> = durations.iter().copied().map(Some).collect();
            let p = plan(&items(&known), shards);
            let lower = lower_bound_ms(&durations, shards);
            // OPT >= lower, and LPT <= (4/3 - 1/3m) OPT; so LPT <= 4/3 * OPT is checked against
            // the only OPT we can compute cheaply, plus the classic list-scheduling bound.
            let m = shards as f64;
            prop_assert!(p.makespan_ms() >= lower - 1e-6);
            let total: f64 = durations.iter().sum();
            let longest = durations.iter().copied().fold(0.0, f64::max);
            prop_assert!(p.makespan_ms() <= total / m + longest * (1.0 - 1.0 / m) + 1e-6);
            prop_assert!(p.makespan_ms() <= (4.0 / 3.0) * lower.max(longest) * 2.0);
            // Loads add up.
            let sum: f64 = p.shards.iter().map(|s| s.predicted_ms).sum();
            prop_assert!((sum - total).abs() < 1e-6 * total.max(1.0));
        }

        #[test]
        fn lpt_matches_brute_force_bound_on_small_inputs(
            durations in prop::collection::vec(1u32..100, 1..9),
            shards in 2usize..4,
        ) {
            let d: Vec<f64> = durations.iter().map(|&x| f64::from(x)).collect();
            let p = plan(&items(&d.iter().copied().map(Some).collect::<Vec<_>>()), shards);
            let opt = brute_force_opt(&d, shards);
            let bound = (4.0 / 3.0 - 1.0 / (3.0 * shards as f64)) * opt;
            prop_assert!(p.makespan_ms() <= bound + 1e-9, "lpt {} opt {}", p.makespan_ms(), opt);
        }
    }

    /// The optimal makespan by trying every assignment (small inputs only).
    fn brute_force_opt(d: &[f64], m: usize) -> f64 {
        fn go(i: usize, d: &[f64], loads: &mut Vec<f64>, best: &mut f64) {
            if i == d.len() {
                *best = best.min(loads.iter().copied().fold(0.0, f64::max));
                return;
            }
            for s in 0..loads.len() {
                loads[s] += d[i];
                if loads[s] < *best {
                    go(i + 1, d, loads, best);
                }
                loads[s] -= d[i];
            }
        }
        let mut best = f64::INFINITY;
        go(0, d, &mut vec![0.0; m], &mut best);
        best
    }
}
