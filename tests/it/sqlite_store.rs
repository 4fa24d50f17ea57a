//! SQLite-specific guarantees of the embedded default: the file is created if missing and runs in WAL mode.

use sqlx::Connection;

#[tokio::test]
async fn sqlite_database_file_is_created_and_runs_in_wal_mode() {
    // Arrange: a path whose file does not exist yet.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    assert!(!path.exists());
    let url = format!("sqlite://{}", path.display());

    // Act: opening the store creates and migrates it.
    let store = opsledger::app::open_store(&url).await.expect("open");
    store.close().await;

    // Assert: the file exists, its journal is the write-ahead log, and the schema is there.
    assert!(path.exists(), "database file was not created");
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let (tables,): (i64,) = sqlx::query_as("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('records', 'audit', 'counters', 'chain_head', 'role_grants')")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(tables, 5);
}
