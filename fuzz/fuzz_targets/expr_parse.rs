//! Feeds arbitrary text to the expression and template parsers: they must
//! never panic or overflow the stack, and whatever parses must print back to
//! an equal tree. (Evaluation has its own target, `expr_eval`, under a
//! budget that keeps `map(range(…), …)` from drowning findings in timeouts.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expr) = assay_expr::parse(src) {
        let printed = expr.to_string();
        let again = assay_expr::parse(&printed).expect("printed expression must parse");
        assert_eq!(again, expr, "printing changed the tree: {printed}");
    }
    if let Ok(tpl) = assay_expr::parse_template(src) {
        let printed = tpl.to_template_string();
        assert!(
            assay_expr::parse_template(&printed).is_ok(),
            "printed template must parse: {printed}"
        );
    }
});
