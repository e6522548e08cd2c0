//! Fresh trade stores for tests: a SQLite file in a temporary folder, or a new
//! database on the PostgreSQL server named by `DOUBLETIME_TEST_DATABASE_URL`
//! (scripts/test and .ci/run start one; see scripts/postgres).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use doubletime::store::{TradeRepository, TradeStore};
use sqlx::Connection;

pub struct TestStore {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub async fn open(&self) -> std::sync::Arc<dyn TradeRepository> {
        doubletime::store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("opening the test store: {e}"))
    }

    pub async fn for_host(&self, host: &str) -> TradeStore {
        TradeStore::new(self.open().await, host)
    }

    /// The SQLite store's folder.
    pub fn dir(&self) -> &std::path::Path {
        self._dir
            .as_ref()
            .expect("a SQLite test store has a folder")
            .path()
    }
}

pub fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    TestStore {
        url: format!("sqlite://{}", dir.path().join("trades.db").display()),
        _dir: Some(dir),
    }
}

/// A database of its own on the test server, so tests run in parallel.
pub async fn postgres() -> TestStore {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var("DOUBLETIME_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DOUBLETIME_TEST_DATABASE_URL is not set: run the suite with scripts/test, \
             which starts a throwaway PostgreSQL (scripts/postgres)"
        )
    });
    let name = format!(
        "dt_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connecting to the test PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
    let _ = conn.close().await;
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
    TestStore {
        url: format!("{base}/{name}"),
        _dir: None,
    }
}
