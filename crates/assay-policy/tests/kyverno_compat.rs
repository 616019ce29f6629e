//! Compatibility with published Kyverno policies: runs every `kyverno-test.yaml` under the
//! folder named by `ASSAY_KYVERNO_POLICIES` (a checkout of github.com/kyverno/policies; not
//! shipped with Assay) and prints the share of expected results reproduced. Without the
//! variable the test has nothing to read and says so.

use assay_policy::kyverno::suite::{find_suites, run_suite};
use std::collections::BTreeMap;

#[test]
fn published_kyverno_suites() {
    let Ok(root) = std::env::var("ASSAY_KYVERNO_POLICIES") else {
        eprintln!("ASSAY_KYVERNO_POLICIES not set: nothing to compare");
        return;
    };
    let suites = find_suites(std::path::Path::new(&root)).expect("suites");
    let (mut total, mut ok, mut load_errors) = (0usize, 0usize, 0usize);
    let mut unsupported: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong: BTreeMap<String, usize> = BTreeMap::new();
    for s in &suites {
        match run_suite(s) {
            Ok(r) => {
                for c in &r.checks {
                    total += 1;
                    if c.ok {
                        ok += 1;
                    } else if let Some(u) = &c.unsupported {
                        *unsupported.entry(u.clone()).or_default() += 1;
                    } else {
                        let rel = s.strip_prefix(&root).unwrap_or(s).display().to_string();
                        *wrong.entry(rel).or_default() += 1;
                        if std::env::var("ASSAY_KYVERNO_VERBOSE").is_ok() {
                            eprintln!(
                                "{}: {} {} {} expected {} got {:?}: {}",
                                s.display(),
                                c.policy,
                                c.rule,
                                c.resource,
                                c.expected,
                                c.actual,
                                c.message
                            );
                        }
                    }
                }
            }
            Err(e) => {
                load_errors += 1;
                eprintln!("load error: {e}");
            }
        }
    }
    eprintln!(
        "suites {} (load errors {load_errors}), checks {total}, reproduced {ok} ({:.1}%)",
        suites.len(),
        100.0 * ok as f64 / total.max(1) as f64
    );
    eprintln!("unsupported: {unsupported:?}");
    let floor: f64 = std::env::var("ASSAY_KYVERNO_MIN_SHARE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.93);
    assert!(
        ok as f64 / total.max(1) as f64 >= floor,
        "reproduced {ok} of {total}, below {floor}"
    );
    for (k, v) in &wrong {
        eprintln!("wrong {v:4} {k}");
    }
}
