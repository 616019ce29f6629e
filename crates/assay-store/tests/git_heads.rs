//! The heads of git triggers: the first sight is recorded once, and a change is written by the
//! one handle whose compare-and-swap still holds the version it read.

use std::collections::BTreeMap;

use crate::common;

use common::Env;

fn refs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(r, s)| (r.to_string(), s.to_string()))
        .collect()
}

both!(heads_advance_by_compare_and_swap);
async fn heads_advance_by_compare_and_swap(env: Env) {
    let other = env.reopen().await;
    let first = refs(&[("refs/heads/main", "a1")]);
    assert_eq!(env.store.git_heads("t").await.unwrap(), None);
    // The first sight: one insert wins.
    assert!(
        env.store
            .advance_git_heads("t", "src", &first, None, "a")
            .await
            .unwrap()
    );
    assert!(
        !other
            .advance_git_heads("t", "src", &first, None, "b")
            .await
            .unwrap()
    );
    let seen = other.git_heads("t").await.unwrap().unwrap();
    assert_eq!((seen.source.as_str(), &seen.refs), ("src", &first));
    // Both saw version 1 and a push: only the first write of the change holds.
    let pushed = refs(&[("refs/heads/main", "b2"), ("refs/tags/v1", "b2")]);
    assert!(
        other
            .advance_git_heads("t", "src", &pushed, Some(seen.version), "b")
            .await
            .unwrap()
    );
    assert!(
        !env.store
            .advance_git_heads("t", "src", &pushed, Some(seen.version), "a")
            .await
            .unwrap()
    );
    let now = env.store.git_heads("t").await.unwrap().unwrap();
    assert_eq!(now.refs, pushed);
    assert_eq!(now.version, seen.version + 1);
    // Triggers that went are forgotten; the others stay.
    env.store
        .advance_git_heads("u", "src", &first, None, "a")
        .await
        .unwrap();
    assert_eq!(
        env.store
            .forget_git_heads_except(&["u".to_string()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(other.git_heads("t").await.unwrap(), None);
    assert!(other.git_heads("u").await.unwrap().is_some());
}
