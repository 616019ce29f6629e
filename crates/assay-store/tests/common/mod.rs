//! Test environments: every store test runs once on a SQLite file in a temp dir and once on a
//! fresh database in the PostgreSQL server named by `ASSAY_TEST_POSTGRES_URL` (started by
//! `scripts/pg.sh`). Without that variable the PostgreSQL half fails, unless
//! `ASSAY_TEST_SKIP_POSTGRES=1` says to skip it on purpose.

#![allow(dead_code)]

use assay_store::{Store, StoreConfig};
use sqlx::Connection;

/// A store plus what is needed to open a second handle on the same data.
pub struct Env {
    pub store: Store,
    pub config: StoreConfig,
    pub dir: tempfile::TempDir,
    pub backend: &'static str,
}

impl Env {
    pub async fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path().join("data"));
        let store = Store::open(config.clone())
            .await
            .expect("open SQLite store");
        Env {
            store,
            config,
            dir,
            backend: "sqlite",
        }
    }

    /// `None` only when skipping was asked for explicitly.
    pub async fn postgres() -> Option<Env> {
        let url = postgres_database().await?;
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path().join("data"));
        config.database_url = Some(url);
        let store = Store::open(config.clone())
            .await
            .expect("open PostgreSQL store");
        Some(Env {
            store,
            config,
            dir,
            backend: "postgres",
        })
    }

    /// A second, independent handle (its own pool) on the same database and files.
    pub async fn reopen(&self) -> Store {
        Store::open(self.config.clone()).await.unwrap()
    }
}

/// Create a fresh database on the test server and return its URL.
pub async fn postgres_database() -> Option<String> {
    let admin = match std::env::var("ASSAY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            if std::env::var("ASSAY_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
                eprintln!("skipping the PostgreSQL half: ASSAY_TEST_SKIP_POSTGRES=1");
                return None;
            }
            panic!(
                "ASSAY_TEST_POSTGRES_URL is not set: start a server with scripts/pg.sh (scripts/test.sh does) \
                 or set ASSAY_TEST_SKIP_POSTGRES=1 to skip the PostgreSQL half on purpose"
            );
        }
    };
    sqlx::any::install_default_drivers();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL at {admin}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    Some(url.to_string())
}

/// Generate a SQLite test and a PostgreSQL test that both run `async fn $name(env: Env)`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Env::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(env) = $crate::common::Env::postgres().await {
                    super::$name(env).await;
                }
            }
        }
    };
}
