//! Shared by the store's test files.
#![allow(clippy::unwrap_used, dead_code)]

/// A fresh database on the local PostgreSQL server (CERTGATE_TEST_POSTGRES overrides the server).
pub async fn postgres_test_db() -> String {
    use sqlx::Connection;
    let server =
        std::env::var("CERTGATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must run at {server} (scripts/test starts it): {e}"));
    let name = format!(
        "certgate_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    // `name` is built above from digits only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    format!("{server}/{name}")
}
