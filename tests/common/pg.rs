//! The PostgreSQL server of the tests: `CALLBACKD_TEST_DATABASE` (default
//! `postgres://postgres@127.0.0.1:5432/test`, trust authentication). Each test gets a
//! database of its own, `cb_test_<random>`, dropped with its connections at the end.
//!
//! Without a reachable server a test says `SKIPPED: PostgreSQL not reachable …` and passes,
//! except under `CI=true`, where it fails (see [`super::skip`]).

use sqlx::Connection;
use std::time::Duration;

/// The server's URL (its `test` database), from `CALLBACKD_TEST_DATABASE` or the default.
pub fn base_url() -> String {
    std::env::var("CALLBACKD_TEST_DATABASE")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of its own for one test, dropped (with its connections) at the end.
#[derive(Debug)]
pub struct TestDb {
    /// `cb_test_<16 hex digits>`.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// `None` (after [`super::skip`]) when PostgreSQL is not reachable outside CI.
    pub async fn create() -> Option<TestDb> {
        let base = base_url();
        let conn =
            tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&base)).await;
        let mut conn = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return unreachable(&base, &e.to_string()),
            Err(_) => return unreachable(&base, "connect timed out"),
        };
        let name = format!("cb_test_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let prefix = base.rsplit_once('/').map_or(base.as_str(), |(p, _)| p);
        let url = format!("{prefix}/{name}");
        Some(TestDb { name, url })
    }

    /// A new connection to the test's database.
    pub async fn conn(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url).await.expect("connect to the test database")
    }
}

fn unreachable(base: &str, why: &str) -> Option<TestDb> {
    super::skip(&format!("PostgreSQL not reachable at {base} ({why})"));
    None
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside the test's runtime: drop the database from a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&base_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(&sql).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}
