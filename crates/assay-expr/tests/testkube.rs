//! Behaviour ported from Testkube's own `pkg/expressions` tests, plus the
//! operator and function semantics they imply.

use assay_expr::{
    ErrorKind, Expr, FnMachine, Lookup, Machine, Vars, parse, parse_template, render_template,
};
use serde_json::{Value, json};

/// Evaluates a bare expression with no variables.
fn ev(src: &str) -> Value {
    parse(src)
        .unwrap_or_else(|e| panic!("parse {src}: {e}"))
        .evaluate(&[])
        .unwrap_or_else(|e| panic!("eval {src}: {e}"))
}

fn ev_err(src: &str) -> String {
    match parse(src) {
        Err(e) => e.message,
        Ok(e) => e.evaluate(&[]).expect_err(src).message,
    }
}

/// Resolves with no machines and prints, like Testkube's `MustCompile(...).String()`.
fn compiled(src: &str) -> String {
    parse(src).unwrap().resolve(&[]).unwrap().to_string()
}

#[test]
fn basic_and_ternary() {
    assert_eq!(ev(r#""value""#), json!("value"));
    assert_eq!(ev(r#"true ? "value" : "another""#), json!("value"));
    assert_eq!(ev(r#"false ? "value" : "another""#), json!("another"));
    assert_eq!(ev(r#"5 == 3 ? "value" : "another""#), json!("another"));
    assert_eq!(
        ev(r#"5 == 3 && 2 == 4 ? "value" : "another""#),
        json!("another")
    );
    assert_eq!(
        ev(r#"5 == 3 || 2 == 4 ? "value" : "another""#),
        json!("another")
    );
    assert_eq!(
        ev(r#"3 == 3 || 2 == 4 ? "value" : "another""#),
        json!("value")
    );
    assert_eq!(
        ev(r#"false ? "value" : true ? "xyz" :"another""#),
        json!("xyz")
    );
    assert_eq!(
        ev(r#"false ? "value" : (true ? "xyz" :"another")"#),
        json!("xyz")
    );
    assert_eq!(ev("false ? 3 : (true ? 5.78 : 2)"), json!(5.78));
}

#[test]
fn math() {
    assert_eq!(ev("2 + 3"), json!(5));
    assert_eq!(ev("3 / 5"), json!(0.6));
    assert_eq!(ev("3 / 2"), json!(1.5));
    assert_eq!(ev("4 / 2"), json!(2));
    assert_eq!(ev("3 <> 5"), json!(true));
    assert_eq!(ev("3 != 5"), json!(true));
    assert_eq!(ev("3 == 5"), json!(false));
    assert_eq!(ev("3 = 5"), json!(false));
    assert_eq!(ev("7 % 3"), json!(1));
    assert_eq!(ev("-7 % 3"), json!(-10 % 3));
    assert_eq!(ev("7.5 % 2"), json!(1.5));
    assert_eq!(ev("2 ** 10"), json!(1024));
    assert_eq!(ev("2 ** 0.5"), json!(2f64.sqrt()));
    assert_eq!(ev("0.1 + 0.2"), json!(0.1 + 0.2));
    assert_eq!(
        ev("9007199254740993 + 1"),
        json!(9007199254740994i64),
        "integers stay exact"
    );
    assert_eq!(ev("9223372036854775807 + 1"), json!(9223372036854775808.0));
    assert!(ev_err("1 / 0").contains("cannot divide by zero"));
    assert!(ev_err("1 % 0").contains("cannot modulo by zero"));
    assert!(ev_err("10 ** 400").contains("not a finite number"));
}

#[test]
fn precedence_as_testkube() {
    assert_eq!(ev("1 + 2 * 3"), json!(7));
    assert_eq!(ev("1 + (2 * 3) + 4"), json!(11));
    assert_eq!(ev("1 + 2 * 3 + 4"), json!(11));
    assert_eq!(ev("1 + 2 * 3 * 4 + 5"), json!(30));
    assert_eq!(ev("1 + 2 * 3 * 4 + 5 <> 3"), json!(true));
    assert_eq!(ev("1 + 2 * 3 * 4 + 5 == 3"), json!(false));
    assert_eq!(ev("1 + 2 * 3 * 4 + 5 = 30"), json!(true));
    assert_eq!(ev("1 + 2 * 3 * 4 + 5 <> 20 + 10"), json!(false));
    assert_eq!(ev("1 + 2 * 3 * 4 + 5 = 2 + 3 * 6 + 10"), json!(true));
    assert_eq!(ev("5 + 3 / 3 * 3"), json!(8));
    assert_eq!(ev("5 + 3 * 3 / 3 = 2 + 3 * 2"), json!(true));
    assert_eq!(ev("5 + 3 * 3 / 3 = 3 + 3 * 2"), json!(false));
    assert_eq!(ev("true && false || false && true"), json!(false));
    assert_eq!(ev("true && false || true"), json!(true));
    assert_eq!(ev("1 && 0 && 2"), json!(0));
    assert_eq!(ev("1 && 0 || 2"), json!(2));
    assert_eq!(ev("1 || 0 || 2"), json!(1));
    assert_eq!(ev("10 > 2 && 5 <= 5"), json!(true));
    assert_eq!(ev("10 > 2 && 5 < 5"), json!(false));
    assert!(ev_err("10 > 2 > 3").contains("cannot convert `true` to a number"));
    assert_eq!(ev("1 + 2 * 3 ** 4 * 5 + 6"), json!(817));
    assert_eq!(ev("72 / 2 ** 4"), json!(4.5));
    let v = ev("3 * 5.2 % 4").as_f64().unwrap();
    assert!((v - 3.6).abs() < 1e-5);
    assert_eq!(ev("!0 && 500"), json!(500));
    assert_eq!(ev("!5 && 500"), json!(false));
    // `**` associates left, like every operator in Testkube.
    assert_eq!(ev("2 ** 3 ** 2"), json!(64));
    // `&&` and `||` share a level: `a || b && c` is `(a || b) && c`.
    assert_eq!(ev("true || false && false"), json!(false));
    // A unary minus takes everything after it.
    assert_eq!(ev("5 - -3 * 2"), json!(11));
    assert_eq!(ev("-1 + 2"), json!(-3));
    assert_eq!(ev("-4"), json!(-4));
    // `?:` branches stop at `&&`/`||`, and `?:` associates left.
    assert_eq!(ev("false ? 1 : 2 || 3"), json!(2));
    assert_eq!(ev("true ? 0 : 2 || 3"), json!(3));
    assert_eq!(ev("false ? 1 : 2 + 3"), json!(5));
    assert!(
        parse("a ? b || c : d").is_err(),
        "Testkube rejects `||` inside a `?:` branch"
    );
    assert_eq!(
        parse("A + B * (C + D) / E * F + G <> H ** I * J ** K")
            .unwrap()
            .to_string(),
        "A + B * (C + D) / E * F + G != H ** I * J ** K"
    );
}

#[test]
fn loose_typing() {
    assert_eq!(ev(r#""5" == 5"#), json!(true));
    assert_eq!(ev(r#"null == """#), json!(true));
    assert_eq!(ev(r#"[1, 2] == "1,2""#), json!(true));
    assert_eq!(ev(r#"{"b": 1, "a": 2} == {"a": 2, "b": 1}"#), json!(true));
    assert_eq!(ev("1 == 1.0"), json!(true));
    assert_eq!(ev("true == 'true'"), json!(true));
    assert_eq!(ev(r#""a" + 1"#), json!("a1"));
    assert_eq!(ev(r#"1 + "a""#), json!("1a"));
    assert_eq!(ev(r#"1.5 + "a""#), json!("1.5a"));
    assert_eq!(ev(r#"null + "a""#), json!("a"));
    assert_eq!(ev(r#"[1, 2] + "a""#), json!("1,2a"));
    assert_eq!(ev(r#""3" * "4""#), json!(12));
    assert_eq!(ev(r#""3" + 4"#), json!("34"));
    assert_eq!(ev("null + 1"), json!(1));
    assert_eq!(ev("[5] * 2"), json!(10));
    assert_eq!(ev(r#""10" > 9"#), json!(true));
    assert!(ev_err("true + 1").contains("cannot convert `true` to a number"));
    assert!(ev_err(r#""" < 1"#).contains("cannot convert"));
    assert_eq!(ev("!''"), json!(true));
    assert_eq!(ev("!'off'"), json!(true));
    assert_eq!(ev("!'False'"), json!(false));
    assert_eq!(ev("![]"), json!(true));
    assert_eq!(ev("!{}"), json!(true));
    assert_eq!(ev("!null"), json!(true));
    assert_eq!(ev("'' || 'x'"), json!("x"));
    assert_eq!(ev("'a' && 'b'"), json!("b"));
    assert_eq!(ev("0 || null"), json!(null));
    assert_eq!(ev("0.0 ? 'y' : 'n'"), json!("n"));
}

#[test]
fn logical_simplification_matches_testkube() {
    assert_eq!(compiled("!(false && r1)"), "true");
    assert_eq!(compiled("!true && r1"), "false");
    assert_eq!(compiled("true && r1"), "r1");
    assert_eq!(compiled("!true || r1"), "r1");
    assert_eq!(compiled("true || r1"), "true");
    assert_eq!(compiled("5 - -3 * 2"), "11");
    assert_eq!(compiled("r1 && false"), "r1 && false");
    assert_eq!(compiled("bool(r1) && true"), "bool(r1)");
    assert_eq!(compiled("bool(r1) && false"), "false");
    assert_eq!(compiled("r1 || false"), "r1 || false");
    assert_eq!(compiled("bool(r1) || false"), "bool(r1)");
    assert_eq!(compiled("r1 || true"), "r1 || true");
    assert_eq!(compiled("bool(r1) || true"), "true");
    assert_eq!(compiled("x == 1 || true"), "true");
    assert_eq!(compiled("x ? 1 : 1"), "1");
    assert_eq!(compiled("x ? 1 : 2"), "x ? 1 : 2");
    assert_eq!(compiled("string(string(x))"), "string(x)");
    assert_eq!(compiled("bool(!x)"), "!x");
    // A failure in a branch that may not run is left for run time...
    assert_eq!(compiled("x ? 1 / 0 : 2"), "x ? 1 / 0 : 2");
    assert_eq!(compiled("x || int('a')"), "x || int(\"a\")");
    // ...but one that will certainly run is reported now.
    assert!(parse("x + 1 / 0").unwrap().resolve(&[]).is_err());
}

#[test]
fn compile_partial_resolution() {
    let m = Vars::new()
        .with("someint", 555)
        .with("somestring", "foo")
        .with_expr("secrets.name", parse("secret(name)").unwrap());
    let env = FnMachine(|name: &str| match name.strip_prefix("env.") {
        Some(k) => Lookup::Value(format!("[placeholder:{k}]").into()),
        None => Lookup::Unknown,
    });
    let ms: [&dyn Machine; 2] = [&m, &env];
    let r = |src: &str| parse(src).unwrap().resolve(&ms).unwrap().to_string();
    assert_eq!(r("someint"), "555");
    assert_eq!(r("env.name"), r#""[placeholder:name]""#);
    assert_eq!(r("secrets.name"), "secret(name)");
    // Final evaluation: the unknown function inside the expansion is an error.
    let err = parse("secrets.name").unwrap().evaluate(&ms).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownVariable("name".into()));
}

#[test]
fn machine_functions_and_expression_variables() {
    struct Endpoint;
    impl Machine for Endpoint {
        fn lookup(&self, name: &str) -> Lookup {
            match name {
                "status" => Lookup::Value(json!("passed")),
                "passed" => Lookup::Expr(parse("status == 'passed'").unwrap()),
                _ => Lookup::Unknown,
            }
        }
        fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, assay_expr::ExprError>> {
            match name {
                "double" => Some(match args {
                    [Value::Number(n)] => Ok(json!(n.as_i64().unwrap_or(0) * 2)),
                    _ => Err(assay_expr::ExprError::eval("double expects one number")),
                }),
                _ => None,
            }
        }
    }
    let m = Endpoint;
    assert_eq!(
        parse("string(passed)").unwrap().evaluate(&[&m]).unwrap(),
        json!("true")
    );
    assert_eq!(
        parse("double(21)").unwrap().evaluate(&[&m]).unwrap(),
        json!(42)
    );
    let err = parse("double('x', 2)")
        .unwrap()
        .evaluate(&[&m])
        .unwrap_err();
    assert!(err.message.contains("double expects one number"), "{err}");
    // Unknown functions stay during partial resolution, and fail at the end.
    assert_eq!(
        parse("lenn([1])")
            .unwrap()
            .resolve(&[&m])
            .unwrap()
            .to_string(),
        "lenn([1])"
    );
    let err = parse("lenn([1])").unwrap().evaluate(&[&m]).unwrap_err();
    assert_eq!(err.message, "unknown function `lenn`; did you mean `len`?");
    assert_eq!(err.kind, ErrorKind::UnknownFunction("lenn".into()));
}

#[test]
fn circular_expansion_is_an_error_not_a_crash() {
    let m = Vars::new()
        .with_expr("a", parse("b + 1").unwrap())
        .with_expr("b", parse("a").unwrap());
    let err = parse("a").unwrap().evaluate(&[&m]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooDeep);
    let err = parse("a").unwrap().resolve(&[&m]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooDeep);
}

#[test]
fn multiline_and_single_quoted_strings() {
    assert_eq!(compiled("\"\nabc\ndef\n\""), r#""\nabc\ndef\n""#);
    assert_eq!(compiled("'foobar'"), r#""foobar""#);
    assert_eq!(compiled(r"'foo\'bar'"), r#""foo'bar""#);
    assert_eq!(compiled(r#"'foo"bar'"#), r#""foo\"bar""#);
    assert!(parse(r"'foobar\'").is_err());
    assert_eq!(compiled("'\nabc\ndef\n'"), r#""\nabc\ndef\n""#);
}

#[test]
fn standard_library() {
    let cases: &[(&str, &str)] = &[
        ("bool(0)", "false"),
        ("bool(500)", "true"),
        ("string(500)", r#""500""#),
        ("string(1.5, 'x', null, [1, 2])", r#""1.5x1,2""#),
        ("int(500)", "500"),
        ("int(500.888)", "500"),
        ("int(-1.9)", "-1"),
        (r#"int("500")"#, "500"),
        (r#"float("500.44")"#, "500.44"),
        (r#"json("500")"#, "500"),
        (r#"json("{\"a\": 500}")"#, r#"{"a":500}"#),
        (r#"tojson({"a": 500})"#, r#""{\"a\":500}""#),
        (r#"tojson({"b": 1, "a": 2})"#, r#""{\"a\":2,\"b\":1}""#),
        ("tojson(500.8)", r#""500.8""#),
        (r#"tojson("500.8")"#, r#""\"500.8\"""#),
        (r#"shellquote("abc")"#, r#""abc""#),
        (r#"shellquote("a b c")"#, r#""'a b c'""#),
        (r#"shellquote("a b c", "d e f")"#, r#""'a b c' 'd e f'""#),
        ("shellquote(null)", r#""''""#),
        (r#"shellparse("a b c 'a b c'")"#, r#"["a","b","c","a b c"]"#),
        (r#"trim("   abc  d  \n  ")"#, r#""abc  d""#),
        (r#"yaml("\"abc\"")"#, r#""abc""#),
        (r#"yaml("foo:\n  bar: 'baz'")"#, r#"{"foo":{"bar":"baz"}}"#),
        ("yaml(\"\na:\n- b\n- v\n\")", r#"{"a":["b","v"]}"#),
        (
            r#"toyaml({"foo":{"bar":"baz"}})"#,
            r#""foo:\n    bar: baz\n""#,
        ),
        (r#"list("a", 10, ["a", 4])"#, r#"["a",10,["a",4]]"#),
        (r#"join(["a",10,["a",4]])"#, r#""a,10,a,4""#),
        (r#"join(["a",10,["a",4]], "---")"#, r#""a---10---a,4""#),
        ("join(null)", "null"),
        ("split(null)", r#"[""]"#),
        (r#"split("a,b,c")"#, r#"["a","b","c"]"#),
        (r#"split("a---b---c", "---")"#, r#"["a","b","c"]"#),
        (r#"split("abc", "")"#, r#"["a","b","c"]"#),
        (r#"len("abcde")"#, "5"),
        (r#"len("é")"#, "2"),
        (r#"len(["a", "b"])"#, "2"),
        (r#"len({"a": "b", "b": "c"})"#, "2"),
        ("floor(2.6)", "2"),
        ("floor(-2.5)", "-3"),
        ("ceil(1.6)", "2"),
        ("round(1.6)", "2"),
        ("round(1.5)", "2"),
        ("round(-1.5)", "-2"),
        ("round(1.4)", "1"),
        ("chunk([1,2,3,4,5], 2)", "[[1,2],[3,4],[5]]"),
        ("chunk([], 2)", "[]"),
        (r#"map([1,2,3,4,5], "_.value * 2")"#, "[2,4,6,8,10]"),
        (r#"map([10,20,30,40,50], "_.index * 2")"#, "[0,2,4,6,8]"),
        (
            r#"map([[1], [2, 3]], "map(_.value, '_.value + 1')")"#,
            "[[2],[3,4]]",
        ),
        (r#"filter([1,2,3,4,5], "_.value > 2")"#, "[3,4,5]"),
        (
            r#"entries({"A": "B", "C": 5})"#,
            r#"[{"key":"A","value":"B"},{"key":"C","value":5}]"#,
        ),
        ("at([1,2,3,4,5], 4)", "5"),
        (r#"at({"x": "value"}, "x")"#, r#""value""#),
        (r#"at({"x": "value"}, "unknown-key")"#, "null"),
        (r#"at("abc", 0)"#, r#""a""#),
        (r#"at("abc", 2)"#, r#""c""#),
        (r#"at("abc", 1) == "b""#, "true"),
        (r#"at("héllo", 1)"#, r#""é""#),
        (r#"at("日本語", 2)"#, r#""語""#),
        (r#"eval("\"abc\"")"#, r#""abc""#),
        (r#"eval("5 * 10")"#, "50"),
        (r#"eval("5 * 10 * something")"#, "50 * something"),
        (r#"relpath("/xyz/../xyz/abc", "/xyz")"#, r#""abc""#),
        (r#"relpath("/xyz", "/xyz")"#, r#"".""#),
        (r#"relpath("/abc", "/xyz")"#, r#""../abc""#),
        (r#"relpath("/data/abc/def", "/data")"#, r#""abc/def""#),
        (
            r#"relpath("/data/abc/def", "/data/abc/def/xyz")"#,
            r#""..""#,
        ),
        (
            r#"relpath("/data/abc/def/ccc", "/data/abc/def/xyz")"#,
            r#""../ccc""#,
        ),
        (
            r#"abspath("/data/abc/def/ccc", "/data")"#,
            r#""/data/abc/def/ccc""#,
        ),
        (
            r#"abspath("/data/abc/def/ccc", "/abc")"#,
            r#""/data/abc/def/ccc""#,
        ),
        (
            r#"abspath("def/ccc", "/data/abc")"#,
            r#""/data/abc/def/ccc""#,
        ),
        (r#"abspath("..", "/data/abc")"#, r#""/data""#),
        (r#"makepath("", "/data")"#, r#""/data""#),
        (r#"makepath("", "data")"#, r#""data""#),
        (r#"makepath("/parent", "data")"#, r#""/parent/data""#),
        (r#"makepath("/parent", "/data")"#, r#""/data""#),
        ("range(0, 0)", "[]"),
        ("range(0)", "[]"),
        ("range(0, -3)", "[]"),
        ("range(5, 3)", "[]"),
        ("range(5)", "[0,1,2,3,4]"),
        ("range(5, 8)", "[5,6,7]"),
        ("any(10, 20, 30, 10)", "10"),
        ("any(10, unknownVariable, 30, 10)", "10"),
        ("any([20, 44, 30]..., 10)", "20"),
        ("any([]..., null..., 10)", "10"),
        ("any()", "null"),
        ("default(null, 5)", "5"),
        ("default('', 5)", "5"),
        ("default(0, 5)", "0"),
        ("default('x', unknown)", r#""x""#),
        (
            r#"shellquote(["a", "b", "c", "a b c"]...)"#,
            r#""a b c 'a b c'""#,
        ),
        (
            "shellquote(shellparse(\"a b c\n'a b c'\")...)",
            r#""a b c 'a b c'""#,
        ),
        (r#"join([["a", "b"], "x"]...)"#, r#""axb""#),
        (r#"["v1", "v2"].0"#, r#""v1""#),
        (r#"map(["v1", "v2"], "_.value + \"abc\"").0"#, r#""v1abc""#),
        (r#"{"k": "v", "k2":"v2"}.k"#, r#""v""#),
        (r#"{"k": {"a": "v"}, "k2":"v2"}.k.a"#, r#""v""#),
    ];
    for (src, want) in cases {
        assert_eq!(compiled(src), *want, "{src}");
    }
    // Relative paths depend on the working directory, so they wait for run time...
    assert_eq!(
        compiled(r#"relpath("xyz/abc", "xyz")"#),
        r#"relpath("xyz/abc", "xyz")"#
    );
    // ...and then behave like Testkube's.
    assert_eq!(ev(r#"relpath("xyz/abc", "xyz")"#), json!("abc"));
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        ev(r#"abspath("a/b")"#),
        json!(cwd.join("a/b").to_string_lossy())
    );
}

#[test]
fn standard_library_errors() {
    let cases: &[(&str, &str)] = &[
        ("jq([1], '.')", "function `jq` is not supported"),
        ("trim(5)", "`trim` expects a string"),
        ("json(5)", "`json` expects a string"),
        ("json('{')", "`json` could not parse"),
        ("len(5)", "`len` expects a string, list or object"),
        ("chunk([1], 0)", "chunk size of at least 1"),
        ("at([1], 3)", "index 3 is out of bounds (length 1)"),
        ("at(5, 0)", "only lists, objects and strings can be indexed"),
        ("join('a')", "`join` expects a list"),
        ("int('x')", "cannot convert `\"x\"` to a number"),
        ("int(1, 2)", "`int` expects 1 argument, 2 given"),
        ("range(0, 10000000)", "more than the limit"),
        ("shellparse('a \"b')", "unbalanced quotes"),
        ("list(5...)", "spread operator (...) used on `5`"),
        ("map(5, '_.value')", "`map` expects a list"),
        ("map([1], '(')", "`map` expression"),
        ("eval('1 +')", "`eval`"),
        ("default(1)", "`default` expects 2 arguments"),
    ];
    for (src, want) in cases {
        let msg = ev_err(src);
        assert!(msg.contains(want), "{src}: {msg}");
    }
}

#[test]
fn date_is_runtime_only() {
    let e = parse("date('2006')").unwrap();
    assert_eq!(e.resolve(&[]).unwrap().to_string(), r#"date("2006")"#);
    let year = e.evaluate(&[]).unwrap();
    assert!(year.as_str().unwrap().starts_with("20"), "{year}");
    let full = ev("date()");
    let s = full.as_str().unwrap();
    assert_eq!(s.len(), "2024-01-01T00:00:00.000Z".len(), "{s}");
    assert!(s.ends_with('Z'));
}

#[test]
fn wildcards() {
    assert_eq!(
        parse("a.b.c.*.d.e").unwrap().to_string(),
        r#"_wc(a.b.c, "_.value.d.e")"#
    );
    assert_eq!(
        parse("a.b.c.*.*.d.e").unwrap().to_string(),
        r#"_wc(_wc(a.b.c, "_.value"), "_.value.d.e")"#
    );
    let m = Vars::new().with("a.b.c", json!([{"d": {"e": "v1"}}, {"d": {"e": "v2"}}]));
    assert_eq!(
        parse("a.b.c.*.d.e").unwrap().evaluate(&[&m]).unwrap(),
        json!(["v1", "v2"])
    );
    let m = Vars::new().with(
        "a.b",
        json!({"c": [{"d": {"e": "v1"}}, {"d": {"e": "v2"}}]}),
    );
    assert_eq!(
        parse("a.b.c.*.d.e").unwrap().evaluate(&[&m]).unwrap(),
        json!(["v1", "v2"])
    );
    // Extension: wildcards also walk object values, and work after any value.
    let m = Vars::new().with("services", json!({"db": {"ip": "1"}, "web": {"ip": "2"}}));
    assert_eq!(
        parse("services.*.ip").unwrap().evaluate(&[&m]).unwrap(),
        json!(["1", "2"])
    );
    assert_eq!(ev(r#"[{"n": 1}, {"n": 2}].*.n"#), json!([1, 2]));
    assert_eq!(ev(r#"[[1, 2], [3]].*.*"#), json!([[1, 2], [3]]));
}

#[test]
fn index_access_extension() {
    let m = Vars::new().with("config", json!({"a-b": [10, 20], "k": "v"}));
    let e = |src: &str| parse(src).unwrap().evaluate(&[&m]).unwrap();
    assert_eq!(e(r#"config["a-b"][1]"#), json!(20));
    assert_eq!(e(r#"config["k"]"#), json!("v"));
    assert_eq!(e("config.k"), json!("v"));
    assert_eq!(e("config.missing"), json!(null));
    // `a[k]` is printed as Testkube's `at(a, k)`.
    assert_eq!(parse("x[0].y").unwrap().to_string(), "at(x, 0).y");
    let err = parse("config.missing.deeper")
        .unwrap()
        .evaluate(&[&m])
        .unwrap_err();
    assert!(
        err.message.contains("cannot read `missing.deeper`"),
        "{err}"
    );
}

#[test]
fn dotted_name_resolution() {
    // The whole name first, then prefixes with property access.
    let whole = Vars::new().with("step.x.outputs.y", "whole");
    let prefix = Vars::new().with("step", json!({"x": {"outputs": {"y": "prefix"}}}));
    let r = |ms: &[&dyn Machine], src: &str| parse(src).unwrap().evaluate(ms).unwrap();
    assert_eq!(r(&[&whole], "step.x.outputs.y"), json!("whole"));
    assert_eq!(r(&[&prefix], "step.x.outputs.y"), json!("prefix"));
    assert_eq!(r(&[&prefix, &whole], "step.x.outputs.y"), json!("whole"));
    // A prefix standing for an expression keeps the rest as property access.
    let later = Vars::new().with_expr("step.x", parse("outputs_of(x)").unwrap());
    assert_eq!(
        parse("step.x.outputs.y")
            .unwrap()
            .resolve(&[&later])
            .unwrap()
            .to_string(),
        "outputs_of(x).outputs.y"
    );
    // Unknown variables are named in the error.
    let err = parse("1 + env.HOME").unwrap().evaluate(&[]).unwrap_err();
    assert_eq!(err.message, "unknown variable `env.HOME`");
}

#[test]
fn templates() {
    let t = |src: &str| parse_template(src).unwrap().resolve(&[]).unwrap();
    assert_eq!(t("").to_string(), r#""""#);
    assert_eq!(t("abc").to_string(), r#""abc""#);
    assert_eq!(t(r#"abc{{ "xyz" }}{{ 5 }}"#).to_string(), r#""abcxyz5""#);
    assert_eq!(t("abc{{ 5 + 45 }}").to_string(), r#""abc50""#);
    assert_eq!(t("abc{{ 5 + 45 }}def").to_string(), r#""abc50def""#);
    assert_eq!(
        t("abc{{ 5 + 45 }}def{{env.abc * 5}}20").to_string(),
        r#"string("abc50def", env.abc * 5, "20")"#
    );
    assert_eq!(t("{{ }}x{{}}").to_string(), r#""x""#);
    assert_eq!(t("a {{ [1, 2] }} {{ null }}|").to_string(), r#""a 1,2 |""#);
    assert_eq!(t(r#"{{ {"a": 1} }}"#).to_string(), r#""{\"a\":1}""#);
    assert_eq!(t(r#"{{"}}"}}"#).to_string(), r#""}}""#);
    assert_eq!(t("{{ x }}'s }} {").to_string(), r#"string(x, "'s }} {")"#);
    assert_eq!(t("{{ x }}").to_string(), "string(x)");
    assert_eq!(t("{{ 'a' + x }}").to_string(), r#""a" + x"#);
    // Hundreds of interpolations stay one flat call, not a deep tree.
    let many = parse_template(&"{{x}}-".repeat(500)).unwrap();
    let m = Vars::new().with("x", 1);
    assert_eq!(many.evaluate(&[&m]).unwrap(), json!("1-".repeat(500)));
    assert!(
        parse_template("a {{ x")
            .unwrap_err()
            .message
            .contains("unclosed `{{` at column 3")
    );
    assert!(parse_template("a {{ x } }}").is_err());
    assert!(parse_template("{{ 1 + }}").is_err());
}

#[test]
fn template_printing() {
    let tpl = |src: &str| {
        parse(src)
            .unwrap()
            .resolve(&[])
            .unwrap()
            .to_template_string()
    };
    assert_eq!(tpl(r#""abc""#), "abc");
    assert_eq!(tpl(r#""abc" + "def""#), "abcdef");
    assert_eq!(tpl(r#""abc" + 9"#), "abc9");
    assert_eq!(tpl(r#""abc" + env.xyz"#), "abc{{env.xyz}}");
    assert_eq!(tpl(r#"env.xyz + "abc""#), "{{env.xyz}}abc");
    assert_eq!(
        tpl(r#"env.xyz + env.abc + "abc""#),
        "{{env.xyz + env.abc}}abc"
    );
    assert_eq!(tpl("3 + env.xyz + env.abc"), "{{3 + env.xyz + env.abc}}");
    assert_eq!(
        tpl("string(3) + env.xyz + env.abc"),
        "3{{env.xyz}}{{env.abc}}"
    );
    assert_eq!(
        tpl("string(3) + (env.xyz + env.abc)"),
        "3{{env.xyz + env.abc}}"
    );
    assert_eq!(tpl(r#""3" + env.xyz + env.abc"#), "3{{env.xyz}}{{env.abc}}");
    assert_eq!(
        tpl(r#""3" + (env.xyz + env.abc)"#),
        "3{{env.xyz + env.abc}}"
    );
    assert_eq!(tpl("null"), "");
    // Escaping: the printed template reads back to the same string.
    let input = r#"{{"{{"}}- with secret "internal/data/database/config" -}}{{"{{"}} .Data.data.username }}@{{"{{"}} .Data.data.password }}{{"{{"}}- end -}}"#;
    let output = r#"{{- with secret "internal/data/database/config" -}}{{ .Data.data.username }}@{{ .Data.data.password }}{{- end -}}"#;
    let e = parse_template(input).unwrap();
    assert_eq!(e.to_template_string(), input);
    assert_eq!(e.evaluate(&[]).unwrap(), json!(output));
    let e = parse_template(r#"foo{{"{{bar"}}baz{{"{{"}}"#).unwrap();
    assert_eq!(e.to_template_string(), r#"foo{{"{{"}}barbaz{{"{{"}}"#);
    // A trailing `{` right before an expression must not open one.
    let e = parse_template(r#"a{{"{"}}{{x}}"#).unwrap();
    assert_eq!(e.to_template_string(), r#"a{{"{"}}{{x}}"#);
    let again = parse_template(&e.to_template_string()).unwrap();
    let m = Vars::new().with("x", 1);
    assert_eq!(again.evaluate(&[&m]).unwrap(), json!("a{1"));
}

#[test]
fn render_helpers() {
    let m = Vars::new().with("config", json!({"n": 3, "tags": ["a", "b"], "o": {"k": 1}}));
    assert_eq!(
        render_template(
            "n={{config.n}} tags={{config.tags}} o={{config.o}} none={{null}}",
            &[&m]
        )
        .unwrap(),
        r#"n=3 tags=a,b o={"k":1} none="#
    );
    assert_eq!(
        assay_expr::eval_template_static("a{{ 1 + 2 }}").unwrap(),
        Some("a3".into())
    );
    assert_eq!(assay_expr::eval_template_static("a{{ x }}").unwrap(), None);
    assert_eq!(
        assay_expr::eval_template_static("{{ date() }}").unwrap(),
        None
    );
    assert_eq!(assay_expr::stringify(&json!(0.5)), "0.5");
    assert!(assay_expr::truthy(&json!("on")));
}

#[test]
fn syntax_errors_carry_positions() {
    let err = parse("len(a, b))").unwrap_err();
    assert_eq!(err.message, "unexpected `)` at column 10");
    assert_eq!(err.span, Some(9..10));
    assert_eq!(err.kind, ErrorKind::Syntax);
    let err = parse("f(a b)").unwrap_err();
    assert_eq!(err.message, "expected `,` or `)`, found `b` at column 5");
    let err = parse("1 +").unwrap_err();
    assert_eq!(err.message, "unexpected end of expression at column 4");
    let err = parse("a ?\n b").unwrap_err();
    assert_eq!(
        err.message,
        "expected `:` of the conditional, found end of expression at line 2, column 3"
    );
    assert!(
        parse("{a: 1}")
            .unwrap_err()
            .message
            .starts_with("expected a string key")
    );
    assert_eq!(parse("").unwrap(), Expr::Lit(Value::Null));
    assert_eq!(parse("   ").unwrap(), Expr::Lit(Value::Null));
}

#[test]
fn nesting_limits() {
    let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
    assert_eq!(parse(&deep).unwrap_err().kind, ErrorKind::TooDeep);
    let deep = format!("{}1{}", "f(".repeat(130), ")".repeat(130));
    assert_eq!(parse(&deep).unwrap_err().kind, ErrorKind::TooDeep);
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    assert_eq!(parse(&deep).unwrap_err().kind, ErrorKind::TooDeep);
    let chain = vec!["x"; 5000].join(" + ");
    assert_eq!(parse(&chain).unwrap_err().kind, ErrorKind::TooDeep);
    let bangs = format!("{}x", "!".repeat(1000));
    assert_eq!(parse(&bangs).unwrap_err().kind, ErrorKind::TooDeep);
    // Just under the limit parses, resolves, prints and evaluates.
    let ok = vec!["1"; 100].join(" + ");
    assert_eq!(ev(&ok), json!(100));
    let nested = format!("{}x{}", "f(".repeat(100), ")".repeat(100));
    let e = parse(&nested).unwrap();
    assert_eq!(parse(&e.to_string()).unwrap(), e);
    assert_eq!(e.resolve(&[]).unwrap(), e);
    // Chains of variable expansions are bounded too.
    let mut m = Vars::new();
    for i in 0..1000 {
        m = m.with_expr(format!("v{i}"), parse(&format!("v{} + 1", i + 1)).unwrap());
    }
    let err = parse("v0").unwrap().evaluate(&[&m]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooDeep);
    // So are self-feeding `eval()` and `map()`.
    let m = Vars::new()
        .with("e", "eval(e)")
        .with("f", "map([1], f)")
        .with("g", "filter([1], g)");
    for src in ["eval(e)", "map([1], f)", "filter([1], g)"] {
        let err = parse(src).unwrap().evaluate(&[&m]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooDeep, "{src}: {err}");
        let err = parse(src).unwrap().resolve(&[&m]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooDeep, "{src}: {err}");
    }
    assert_eq!(err.kind, ErrorKind::TooDeep);
}

/// The deepest inputs the limits accept must run within the 2 MiB a spawned
/// thread (or a test) gets by default, with room to spare, even in debug builds.
#[test]
fn deepest_inputs_fit_in_one_and_a_half_mebibytes_of_stack() {
    let run = || {
        let n = assay_expr::MAX_DEPTH - 2;
        let shapes = [
            format!("{}x{}", "f(".repeat(n), ")".repeat(n)),
            format!("{}x{}", "[".repeat(n), "]".repeat(n)),
            format!("{}x{}", "(".repeat(n), ")".repeat(n)),
            format!("{}x", "!".repeat(n)),
            format!("{}x", "-".repeat(n)),
            vec!["x"; n].join(" + "),
            vec!["x"; n].join(" && "),
            format!("{}x", "x ? 1 : ".repeat(n / 2)),
            format!("x{}", ".a[0]".repeat(n / 2)),
            format!("{}x{}", "x - (".repeat(n), ")".repeat(n)),
            format!("{}x{}", "-(x + ".repeat(n / 2), ")".repeat(n / 2)),
        ];
        let m = Vars::new().with("x", json!({"a": [1]}));
        for src in &shapes {
            let e = parse(src).unwrap_or_else(|err| panic!("{}: {err}", &src[..20]));
            let printed = e.to_string();
            assert_eq!(parse(&printed).unwrap(), e, "{}", &src[..20]);
            let _ = e.resolve(&[]).unwrap();
            let _ = e.evaluate(&[&m]);
            let _ = parse_template(&format!("a{{{{{src}}}}}b"))
                .unwrap()
                .to_template_string();
        }
        let mut chain = Vars::new();
        for i in 0..1000 {
            chain = chain.with_expr(format!("v{i}"), parse(&format!("v{} + 1", i + 1)).unwrap());
        }
        assert_eq!(
            parse("v0").unwrap().evaluate(&[&chain]).unwrap_err().kind,
            ErrorKind::TooDeep
        );
        let m = Vars::new()
            .with("e", "eval(e)")
            .with("f", "map([1], f)")
            .with("g", "filter([1], g)");
        for src in ["eval(e)", "map([1], f)", "filter([1], g)"] {
            assert_eq!(
                parse(src).unwrap().evaluate(&[&m]).unwrap_err().kind,
                ErrorKind::TooDeep
            );
        }
    };
    std::thread::Builder::new()
        .stack_size(3 << 19)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}
