//! Property tests: printing round-trips, partial evaluation never changes a
//! result, and no input makes the parser panic.

use assay_expr::{Arg, BinOp, Expr, Machine, Vars, parse, parse_template};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const OPS: [BinOp; 14] = [
    BinOp::And,
    BinOp::Or,
    BinOp::Eq,
    BinOp::Ne,
    BinOp::Lt,
    BinOp::Le,
    BinOp::Gt,
    BinOp::Ge,
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::Mod,
    BinOp::Pow,
];

fn ident() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,5}".prop_filter("keywords lex as literals", |s| {
        !matches!(s.as_str(), "null" | "true" | "false")
    })
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| {
                // Through the parser so that the value is normalized like a literal.
                let text = serde_json::to_string(&f).unwrap();
                parse(&text)
                    .unwrap()
                    .resolve(&[])
                    .unwrap()
                    .as_static()
                    .cloned()
                    .unwrap()
            }),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        any::<String>().prop_map(Value::String),
        "[a-z,{} ]{0,6}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Arbitrary canonical trees (built through the constructors the parser uses).
fn any_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        json_value().prop_map(Expr::Lit),
        prop::collection::vec(ident(), 1..4).prop_map(|segs| Expr::Var(segs.join("."))),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let arg = (inner.clone(), any::<bool>()).prop_map(|(expr, spread)| Arg { expr, spread });
        prop_oneof![
            (inner.clone(), "[a-z0-9_]{1,4}").prop_map(|(b, seg)| Expr::prop(b, seg)),
            prop::collection::vec(arg.clone(), 0..4).prop_map(Expr::list),
            prop::collection::vec((any::<String>(), inner.clone()), 0..3).prop_map(Expr::object),
            inner.clone().prop_map(Expr::negation),
            inner.clone().prop_map(Expr::negative),
            (
                prop::sample::select(OPS.to_vec()),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, l, r)| Expr::binary(op, l, r)),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, t, f)| Expr::cond(c, t, f)),
            (ident(), prop::collection::vec(arg, 0..3))
                .prop_map(|(name, args)| Expr::Call(name, args)),
        ]
    })
}

/// Variables the evaluation property works with.
const VARS: [&str; 5] = ["a", "b", "c", "d", "e"];

fn small_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..6).prop_map(Value::from),
        prop::sample::select(vec![0.5, -2.25, 1e-7]).prop_map(|f| json!(f)),
        prop::sample::select(vec!["", "0", "off", "x", "5", "a,b", "2.5"]).prop_map(|s| json!(s)),
        Just(json!([1, 2, 3])),
        Just(json!(["x", "y"])),
        Just(json!({"x": 1, "y": [true, "z"], "z": {"x": 2}})),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Expressions over `VARS` and a deterministic slice of the standard library.
fn eval_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        small_value().prop_map(Expr::Lit),
        prop::sample::select(VARS.to_vec()).prop_map(|v| Expr::Var(v.to_string())),
        prop::sample::select(vec!["d.x", "d.y", "d.z.x", "d.y.1", "c.0", "e.*.x"])
            .prop_map(|v| parse(v).unwrap()),
    ];
    let item_exprs = vec![
        "_.value",
        "_.index * 2",
        "_.value + a",
        "bool(_.value) && b",
        "_.key",
        "_.value && a ? b : c",
    ];
    leaf.prop_recursive(4, 32, 3, move |inner| {
        let arg = (inner.clone(), prop::bool::weighted(0.15))
            .prop_map(|(expr, spread)| Arg { expr, spread });
        prop_oneof![
            (
                prop::sample::select(OPS.to_vec()),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, l, r)| Expr::binary(op, l, r)),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, t, f)| Expr::cond(c, t, f)),
            inner.clone().prop_map(Expr::negation),
            inner.clone().prop_map(Expr::negative),
            (inner.clone(), prop::sample::select(vec!["x", "0", "y"]))
                .prop_map(|(b, s)| Expr::prop(b, s.to_string())),
            prop::collection::vec(arg.clone(), 0..3).prop_map(Expr::list),
            (
                prop::sample::select(vec![
                    "len",
                    "string",
                    "int",
                    "bool",
                    "join",
                    "split",
                    "any",
                    "default",
                    "at",
                    "tojson",
                    "list",
                    "floor",
                    "chunk",
                    "trim",
                    "float",
                    "entries",
                    "eval",
                    "shellquote",
                    "round",
                    "makepath",
                ]),
                prop::collection::vec(arg, 0..3)
            )
                .prop_map(|(name, args)| Expr::Call(name.to_string(), args)),
            (
                inner.clone(),
                prop::sample::select(item_exprs.clone()),
                any::<bool>()
            )
                .prop_map(|(list, body, filter)| {
                    Expr::call(
                        if filter { "filter" } else { "map" },
                        vec![list, Expr::string(body)],
                    )
                }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// (1) Printing any tree and parsing the text gives the same tree.
    #[test]
    fn print_then_parse_round_trips(e in any_expr()) {
        let text = e.to_string();
        let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(&back, &e, "printed as {}", text);
    }

    /// Templates printed from a tree read back to the same value.
    #[test]
    fn template_printing_keeps_the_value(e in eval_expr(), values in prop::collection::vec(small_value(), VARS.len())) {
        let mut all = Vars::new();
        for (name, v) in VARS.iter().zip(&values) {
            all.insert(*name, v.clone());
        }
        let Ok(expected) = e.evaluate(&[&all]) else { return Ok(()) };
        let tpl = e.to_template_string();
        let back = parse_template(&tpl).map_err(|err| TestCaseError::fail(format!("{tpl}: {err}")))?;
        let got = back.evaluate(&[&all]).map_err(|err| TestCaseError::fail(format!("{tpl}: {err}")))?;
        prop_assert_eq!(got, Value::String(assay_expr::stringify(&expected)), "template {}", tpl);
    }

    /// (2) Resolving with some variables and then evaluating with the rest
    /// equals evaluating with all of them at once.
    #[test]
    fn partial_then_final_equals_full(
        e in eval_expr(),
        values in prop::collection::vec(small_value(), VARS.len()),
        known_now in prop::collection::vec(any::<bool>(), VARS.len()),
    ) {
        let (mut now, mut later, mut all) = (Vars::new(), Vars::new(), Vars::new());
        for ((name, v), k) in VARS.iter().zip(&values).zip(&known_now) {
            all.insert(*name, v.clone());
            if *k { now.insert(*name, v.clone()) } else { later.insert(*name, v.clone()) }
        }
        let Ok(expected) = e.evaluate(&[&all]) else { return Ok(()) };
        let partial = e.resolve(&[&now]).map_err(|err| TestCaseError::fail(format!("resolve {e}: {err}")))?;
        // The partial result is itself printable and parseable.
        let text = partial.to_string();
        let reparsed = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(&reparsed, &partial, "printed as {}", text);
        let machines: [&dyn Machine; 1] = [&later];
        let got = partial.evaluate(&machines).map_err(|err| TestCaseError::fail(format!("{e} -> {partial}: {err}")))?;
        prop_assert_eq!(&got, &expected, "{} resolved to {}", e, partial);
        // Knowing everything up front folds to the same constant.
        let folded = e.resolve(&[&all]).map_err(|err| TestCaseError::fail(format!("{e}: {err}")))?;
        prop_assert_eq!(folded.as_static(), Some(&expected), "{}", e);
    }

    /// (3) The parsers never panic, and what they accept prints back to itself.
    #[test]
    fn parse_never_panics(src in any::<String>()) {
        let _ = parse_template(&src);
        if let Ok(e) = parse(&src) {
            let text = e.to_string();
            prop_assert_eq!(parse(&text).ok(), Some(e), "{} printed as {}", src, text);
        }
    }

    #[test]
    fn parse_never_panics_on_syntax_soup(src in r#"[(){}\[\]"'.,!?:+\-*/%<>=&|0-9a-c_ \n\\]{0,40}"#) {
        let _ = parse_template(&src);
        if let Ok(e) = parse(&src) {
            let text = e.to_string();
            prop_assert_eq!(parse(&text).ok(), Some(e.clone()), "{} printed as {}", src, text);
            // Evaluating whatever parsed must not panic either.
            let _ = e.resolve(&[]);
            let _ = e.evaluate(&[]);
        }
    }
}
