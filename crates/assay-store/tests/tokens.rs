//! API tokens on both databases: only hashes are stored, names are unique, revoked tokens stop
//! authenticating.

use crate::common;

use assay_store::{TOKEN_CACHE_TTL, TokenRole, hash_token};
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

/// A revoked token is refused on the next lookup of the handle that revoked it, and by every
/// other handle (another process: `assay token revoke` beside a server, or another server on
/// the same PostgreSQL) once `TOKEN_CACHE_TTL` has passed.
async fn security_a_revoked_token_is_refused_at_once_here_and_after_the_ttl_elsewhere(env: Env) {
    let store = &env.store;
    let (_, kept) = store.create_token("kept", TokenRole::Runner).await.unwrap();
    let (_, here) = store.create_token("here", TokenRole::Admin).await.unwrap();
    let (_, there) = store.create_token("there", TokenRole::Admin).await.unwrap();
    for secret in [&kept, &here, &there] {
        assert!(store.authenticate(secret).await.unwrap().is_some());
    }
    let other = env.reopen().await;
    assert!(other.revoke_token("there").await.unwrap());
    // `store` looked it up just before: it may trust that for TOKEN_CACHE_TTL, not longer.
    tokio::time::sleep(TOKEN_CACHE_TTL + std::time::Duration::from_millis(50)).await;
    assert!(
        store.authenticate(&there).await.unwrap().is_none(),
        "a token revoked by another process is still accepted"
    );
    assert!(store.revoke_token("here").await.unwrap());
    assert!(store.authenticate(&here).await.unwrap().is_none());
    let found = store.authenticate(&kept).await.unwrap().unwrap();
    assert_eq!(
        (found.name.as_str(), found.role),
        ("kept", TokenRole::Runner)
    );
}
both!(security_a_revoked_token_is_refused_at_once_here_and_after_the_ttl_elsewhere);

#[test]
fn token_hashes_are_hex_sha256() {
    assert_eq!(
        hash_token("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
