//! The evaluation budget (issue 14, attack 3): a short expression must not be able to take
//! the process down. Each test here would run out of memory, or run for minutes, without it.

use assay_expr::{ErrorKind, Limits, Vars, parse, parse_template};
use serde_json::json;

/// The attack from the issue: 40 bytes that build a hundred million values.
const BOMB: &str = r#"len(map(range(10000), "range(10000)"))"#;

#[test]
fn security_expression_budget_stops_the_range_bomb_with_a_clear_error() {
    let e = parse(BOMB).unwrap().evaluate(&[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Budget);
    assert!(
        e.message
            .starts_with(r#"expression `len(map(range(10000), "range(10000)"))`"#),
        "{}",
        e.message
    );
    assert!(e.message.contains("evaluation budget"), "{}", e.message);
}

#[test]
fn security_expression_budget_holds_in_partial_evaluation_and_templates() {
    // Compile time resolves templates partially: the bomb must not be folded there either,
    // nor hidden in a branch that is kept for later.
    let tpl = parse_template(&format!("a {{{{ {BOMB} }}}} b")).unwrap();
    let e = tpl.resolve(&[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Budget, "{}", e.message);
    let guarded = parse(&format!("env.X ? {BOMB} : 1")).unwrap();
    let e = guarded.resolve(&[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Budget, "{}", e.message);
}

#[test]
fn security_expression_budget_counts_bytes_of_copied_values() {
    // Few steps, many bytes: a 1 MiB variable copied into every item.
    let vars = Vars::new().with("big", "x".repeat(1 << 20));
    let e = parse(r#"len(map(range(100), "big"))"#)
        .unwrap()
        .evaluate(&[&vars])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Budget);
    assert!(e.message.contains("64 MiB"), "{}", e.message);
    // Splitting a long string into characters counts its parts before making them.
    let e = parse(r#"len(split(join(range(1000000), ""), ""))"#)
        .unwrap()
        .evaluate(&[])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Budget, "{}", e.message);
}

#[test]
fn security_expression_budget_nested_eval_shares_one_budget() {
    // `eval` and `map` inside `map` draw from the same count.
    let e = parse(r#"len(map(range(1000), "eval('len(range(2000))')"))"#)
        .unwrap()
        .evaluate(&[])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Budget, "{}", e.message);
}

#[test]
fn the_budget_is_configurable_and_ordinary_expressions_fit() {
    let small = Limits {
        max_steps: 50,
        max_bytes: 1 << 20,
    };
    let e = parse("len(range(100))")
        .unwrap()
        .evaluate_within(&[], small)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Budget);
    assert!(
        e.message.contains("more than 50 evaluation steps"),
        "{}",
        e.message
    );
    assert_eq!(
        parse("len(range(10))")
            .unwrap()
            .evaluate_within(&[], small)
            .unwrap(),
        json!(10)
    );
    // What real workflows do fits the default budget with room to spare.
    assert_eq!(
        parse(r#"len(map(range(1000), "string(_.value) + '-' + string(_.index)"))"#)
            .unwrap()
            .evaluate(&[])
            .unwrap(),
        json!(1000)
    );
    assert_eq!(
        parse("len(range(1000000))")
            .unwrap()
            .evaluate(&[])
            .unwrap_err()
            .kind,
        ErrorKind::Budget,
        "a million items are a million steps: the whole default budget"
    );
}

#[test]
fn a_long_expression_is_cut_in_the_message() {
    let long = format!(
        "len(map(range(10000), \"range(10000)\")) + {}",
        "1 + ".repeat(100) + "1"
    );
    let e = parse(&long).unwrap().evaluate(&[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Budget);
    assert!(e.message.contains('…'), "{}", e.message);
    assert!(e.message.len() < 400, "{}", e.message);
}
