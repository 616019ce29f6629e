//! Named secrets on both databases: keys set, replaced and deleted; values sealed at rest and
//! opened only for the names asked for.

use crate::common;

use common::Env;

async fn named_secrets_round_trip(env: Env) {
    let store = &env.store;
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    store
        .set_named_secret(
            "db",
            &[pair("password", "pw-1"), pair("user", "app")],
            false,
        )
        .await
        .unwrap();
    store
        .set_named_secret("api", &[pair("token", "t-1")], false)
        .await
        .unwrap();
    // Setting a key again changes its value and keeps the others.
    store
        .set_named_secret("db", &[pair("password", "pw-2")], false)
        .await
        .unwrap();
    let listed = store.list_named_secrets().await.unwrap();
    let names: Vec<(&str, Vec<&str>)> = listed
        .iter()
        .map(|s| (s.name.as_str(), s.keys.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        names,
        vec![("api", vec!["token"]), ("db", vec!["password", "user"])]
    );

    let values = store
        .named_secret_values(&["db".into(), "absent".into()])
        .await
        .unwrap();
    assert_eq!(values.len(), 1, "only what was asked for and exists");
    assert_eq!(values["db"]["password"], "pw-2");
    assert_eq!(values["db"]["user"], "app");

    // Replace: exactly the keys given.
    store
        .set_named_secret("db", &[pair("url", "postgres://x")], true)
        .await
        .unwrap();
    let values = store.named_secret_values(&["db".into()]).await.unwrap();
    assert_eq!(values["db"].keys().collect::<Vec<_>>(), vec!["url"]);

    // Bad input changes nothing.
    assert!(
        store
            .set_named_secret("Bad Name", &[pair("k", "v")], false)
            .await
            .is_err()
    );
    assert!(
        store
            .set_named_secret("db", &[pair("bad key", "v")], false)
            .await
            .is_err()
    );
    assert!(store.set_named_secret("db", &[], false).await.is_err());
    let big = "x".repeat(assay_store::NAMED_SECRET_VALUE_MAX + 1);
    assert!(
        store
            .set_named_secret("db", &[pair("big", &big)], false)
            .await
            .is_err()
    );
    assert_eq!(store.list_named_secrets().await.unwrap().len(), 2);

    assert!(!store.delete_named_secret("db", Some("nope")).await.unwrap());
    assert!(store.delete_named_secret("db", Some("url")).await.unwrap());
    assert!(store.delete_named_secret("api", None).await.unwrap());
    assert!(!store.delete_named_secret("api", None).await.unwrap());
    assert!(store.list_named_secrets().await.unwrap().is_empty());
}
both!(named_secrets_round_trip);
