//! Issue 14 #11: the data directory was 0755 and `assay.db` 0644 with hook secrets in clear
//! text. Now: the directory 0700, the database and the key file 0600 (wider modes found on
//! open are narrowed, with a warning), hook secrets sealed with the key, clear-text rows from
//! before sealed on open, and the secret still readable for verification.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assay_store::{KEY_FILE, NewHook, SQLITE_FILE, Store, StoreConfig};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every byte of the SQLite database and its journals.
fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(dir.join(format!("{SQLITE_FILE}{suffix}"))) {
            out.extend(b);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn security_data_dir_private_and_hook_secrets_sealed() {
    const SECRET: &str = "hook-secret-5be1c0ffee";
    const OLD: &str = "old-clear-secret-77aa";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // A data dir made by an older Assay: world-readable.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    let store = Store::open(StoreConfig::new(&data)).await.unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join(SQLITE_FILE)), 0o600);
    assert_eq!(mode(&data.join(KEY_FILE)), 0o600);
    assert!(
        store.warnings().iter().any(|w| w.contains("755")),
        "{:?}",
        store.warnings()
    );
    let hook = |name: &str, secret: &str| NewHook {
        name: name.into(),
        secret: secret.into(),
        selector: "app=web".into(),
        events: vec![],
        config: BTreeMap::new(),
    };
    store.put_hook(&hook("github", SECRET)).await.unwrap();
    assert_eq!(store.hook_secret("github").await.unwrap().1, SECRET);
    // A row as an older Assay wrote it: the secret in clear text.
    store
        .put_hook(&hook("legacy", "placeholder"))
        .await
        .unwrap();
    store.close().await;
    {
        use sqlx::Connection;
        let url = format!("sqlite://{}", data.join(SQLITE_FILE).display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE hooks SET secret = ? WHERE name = 'legacy'")
            .bind(OLD)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    assert!(contains(&db_bytes(&data), OLD), "the old row is clear text");
    // Someone widened the files since.
    std::fs::set_permissions(
        data.join(SQLITE_FILE),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let store = Store::open(StoreConfig::new(&data)).await.unwrap();
    assert_eq!(mode(&data.join(SQLITE_FILE)), 0o600);
    assert_eq!(store.hook_secret("legacy").await.unwrap().1, OLD);
    assert_eq!(store.hook_secret("github").await.unwrap().1, SECRET);
    store.close().await;
    let bytes = db_bytes(&data);
    assert!(
        !contains(&bytes, SECRET),
        "the hook secret is in the database file"
    );
    assert!(
        !contains(&bytes, OLD),
        "the migrated secret is in the database file"
    );
}

/// A new data directory is private from the start: nothing to narrow, so no warning on a first
/// run (before, SQLite made `assay.db` and its journals 0644 and every first open warned).
#[tokio::test]
async fn a_new_data_dir_is_private_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(StoreConfig::new(&data)).await.unwrap();
    assert_eq!(store.warnings(), &[] as &[String]);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join(SQLITE_FILE)), 0o600);
    for suffix in ["-wal", "-shm"] {
        let journal = data.join(format!("{SQLITE_FILE}{suffix}"));
        if journal.exists() {
            assert_eq!(mode(&journal), 0o600, "{}", journal.display());
        }
    }
    drop(store);
    let again = Store::open(StoreConfig::new(&data)).await.unwrap();
    assert_eq!(again.warnings(), &[] as &[String]);
}
