//! Evaluates arbitrary expressions and templates under a small budget: whatever the input
//! (`map(range(…), …)` included), evaluation must end quickly, never panic, overflow the stack or
//! exhaust memory, and a budget error must name the expression. The budget here is a tenth of
//! the default so that each input stays fast; the default one is tested in
//! `crates/assay-expr/tests/budget.rs`.
#![no_main]

use assay_expr::{ErrorKind, Limits, Vars};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_steps: 100_000,
    max_bytes: 8 * 1024 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let vars = Vars::new()
        .with("config.name", "x")
        .with("config.list", serde_json::json!([1, "a", {"k": [true, null]}]));
    let parsed = [assay_expr::parse(src), assay_expr::parse_template(src)];
    for expr in parsed.into_iter().flatten() {
        for result in [
            expr.evaluate_within(&[&vars], LIMITS).map(|_| ()),
            expr.resolve_within(&[], LIMITS).map(|_| ()),
        ] {
            if let Err(e) = result
                && e.kind == ErrorKind::Budget
            {
                assert!(e.message.starts_with("expression `"), "{}", e.message);
            }
        }
    }
});
