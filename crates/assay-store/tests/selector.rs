//! The label selector grammar: what `LabelSelector::parse` accepts is exactly what the pattern
//! published in the API description (`LABEL_SELECTOR_PATTERN`) matches, so a client that
//! follows the document is never refused and a refused selector is outside it.

use assay_store::{LABEL_SELECTOR_PATTERN, LabelSelector};
use proptest::prelude::*;

fn pattern() -> regex::Regex {
    regex::Regex::new(LABEL_SELECTOR_PATTERN).unwrap()
}

#[test]
fn examples_agree() {
    let re = pattern();
    for ok in [
        "",
        "team=qa",
        "team==qa, tier!=slow",
        "!legacy",
        "app",
        " a = b ,",
        "example.com/tier=x",
    ] {
        assert!(LabelSelector::parse(ok).is_ok(), "{ok}");
        assert!(re.is_match(ok), "{ok}");
    }
    for bad in ["=", "=x", "a=b=c", "!k=v", "a b", "a!b", "k=v\t", "-a"] {
        assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        assert!(!re.is_match(bad), "{bad}");
    }
}

proptest! {
    #[test]
    fn parse_accepts_exactly_the_pattern(text in "[a-c0-9 =!,./_\\-\t]{0,12}") {
        let re = pattern();
        prop_assert_eq!(LabelSelector::parse(&text).is_ok(), re.is_match(&text), "{:?}", text);
    }
}
