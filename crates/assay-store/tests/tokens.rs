//! API tokens on both databases: only hashes are stored, names are unique, revoked tokens stop
//! authenticating.

use crate::common;

use assay_store::{TokenRole, hash_token};
use common::Env;

async fn tokens_round_trip(env: Env) {
    let store = &env.store;
    assert!(store.list_tokens().await.unwrap().is_empty());
    let (admin, secret) = store.create_token("admin", TokenRole::Admin).await.unwrap();
    assert_eq!(admin.role, TokenRole::Admin);
    assert!(secret.starts_with("assay_") && secret.len() > 60);
    let (_, viewer) = store.create_token("ci", TokenRole::Viewer).await.unwrap();
    assert_ne!(secret, viewer);

    let found = store.authenticate(&secret).await.unwrap().unwrap();
    assert_eq!(
        (found.name.as_str(), found.role),
        ("admin", TokenRole::Admin)
    );
    assert!(store.authenticate("assay_wrong").await.unwrap().is_none());
    // The hash, not the secret, is what a second handle finds.
    assert_ne!(hash_token(&secret), secret);
    let again = env.reopen().await;
    let listed = again.list_tokens().await.unwrap();
    let names: Vec<_> = listed.iter().map(|t| (t.name.as_str(), t.role)).collect();
    assert_eq!(
        names,
        [("admin", TokenRole::Admin), ("ci", TokenRole::Viewer)]
    );
    assert!(listed[0].last_used_at.is_some());

    let dup = store
        .create_token("ci", TokenRole::Runner)
        .await
        .unwrap_err();
    assert!(dup.to_string().contains("already exists"), "{dup}");
    assert!(store.create_token("  ", TokenRole::Runner).await.is_err());

    assert!(store.revoke_token("ci").await.unwrap());
    assert!(!store.revoke_token("ci").await.unwrap());
    assert!(store.authenticate(&viewer).await.unwrap().is_none());
    assert!(TokenRole::Viewer < TokenRole::Runner && TokenRole::Runner < TokenRole::Admin);
}
both!(tokens_round_trip);
