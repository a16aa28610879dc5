//! The engine and migrations, tested on real databases.

use super::migrate::MIGRATIONS;
use super::*;

fn record(id: &str, n: i64) -> RecordRow {
    RecordRow {
        id: id.into(),
        data: serde_json::json!({ "n": n }).as_object().unwrap().clone(),
        version: 1,
        created_at: 0,
        updated_at: 0,
    }
}

fn collection() -> CollectionRow {
    CollectionRow {
        id: 0,
        version: 0,
        name: "things".into(),
        schema: None,
        unique: vec!["n".into()],
        created_at: 0,
        updated_at: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_commit_together_and_a_failure_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let c = storage.create_collection(&collection()).await.unwrap();
    // 64 writers at once, every other one reusing a unique value.
    let writes = (0..64).map(|i| {
        let (storage, c) = (storage.clone(), c.clone());
        tokio::spawn(async move {
            storage
                .create_record(&c, &record(&format!("r{i:02}"), i / 2), None)
                .await
        })
    });
    let mut ok = 0;
    let mut conflicts = 0;
    for w in writes {
        match w.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StorageError::Conflict(Conflict::Unique { field })) => {
                assert_eq!(field, "n");
                conflicts += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, conflicts), (32, 32));
    let listed = storage
        .list_records(
            c.id,
            &ListRequest {
                filters: &[],
                sort: &[SortKey::BY_ID],
                after: None,
                limit: 100,
                max_bytes: usize::MAX,
            },
        )
        .await
        .unwrap()
        .rows;
    assert_eq!(
        listed.len(),
        32,
        "each acknowledged write is there, no other"
    );
    // A conflicting write left no unique value behind: all 32 values are taken once.
    let all_n: std::collections::BTreeSet<_> = listed
        .iter()
        .map(|r| r.data["n"].as_i64().unwrap())
        .collect();
    assert_eq!(all_n.len(), 32);
}

#[tokio::test]
async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let panicked = storage
        .write(|conn| -> StorageResult<()> {
            execute(
                conn,
                "INSERT INTO tokens (id, secret_hash, scopes, created_at) VALUES ('t', x'00', '[]', 1)",
                [],
            )?;
            panic!("boom")
        })
        .await;
    assert!(matches!(panicked, Err(StorageError::Internal(_))));
    storage.create_collection(&collection()).await.unwrap();
    assert!(storage.get_token("t").await.unwrap().is_none());
    assert!(storage.get_collection("things").await.unwrap().is_some());
}

#[tokio::test]
async fn a_database_migrated_by_sqlx_is_adopted_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, success BOOLEAN NOT NULL);
             INSERT INTO _sqlx_migrations VALUES (1, TRUE);
             INSERT INTO collections (name, uniq, created_at, updated_at) VALUES ('kept', '[]', 0, 0);",
        )
        .unwrap();
    }
    let storage = SqliteStorage::open(&path).await.unwrap();
    assert!(storage.get_collection("kept").await.unwrap().is_some());
}

#[tokio::test]
async fn a_version_1_database_moves_to_collection_ids_keeping_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            r#"PRAGMA user_version = 1;
             INSERT INTO collections (name, uniq, created_at, updated_at) VALUES ('books', '["isbn"]', 0, 5);
             INSERT INTO collections (name, uniq, created_at, updated_at) VALUES ('films', '[]', 1, 1);
             INSERT INTO records VALUES ('books', 'b1', '{"isbn":"1"}', 1, 0, 0);
             INSERT INTO records VALUES ('books', 'b2', '{"isbn":"2"}', 3, 0, 7);
             INSERT INTO unique_values VALUES ('books', 'isbn', '"1"', 'b1');
             INSERT INTO unique_values VALUES ('books', 'isbn', '"2"', 'b2');
             INSERT INTO aliases VALUES ('novels', 'books', 9999999999999);
             INSERT INTO tokens (id, secret_hash, scopes, collections, created_at)
               VALUES ('t1', x'00', '["read"]', '["films","gone"]', 0);
             INSERT INTO jobs (id, kind, collection, token_id, state, processed, total, result, created_at, updated_at)
               VALUES ('j1', 'export', 'books', 't1', 'succeeded', 2, NULL,
                       '{"collection":"books","count":2,"records":[{"id":"b1"},{"id":"b2"}]}', 0, 0);
             INSERT INTO jobs (id, kind, collection, token_id, state, processed, total, input, created_at, updated_at)
               VALUES ('j2', 'import', 'films', 't1', 'running', 1, 2, x'7b7d0a7b7d', 0, 0);"#,
        )
        .unwrap();
    }
    let storage = SqliteStorage::open(&path).await.unwrap();
    let books = storage.get_collection("books").await.unwrap().unwrap();
    let films = storage.get_collection("films").await.unwrap().unwrap();
    assert_ne!(books.id, films.id);
    assert_eq!(books.unique, vec!["isbn".to_string()]);
    let b2 = storage.get_record(books.id, "b2").await.unwrap().unwrap();
    assert_eq!((b2.version, b2.updated_at), (3, 7));
    // The unique index came along: a taken value is still taken.
    let clash = RecordRow {
        id: "b3".into(),
        data: serde_json::json!({"isbn": "1"})
            .as_object()
            .unwrap()
            .clone(),
        version: 1,
        created_at: 0,
        updated_at: 0,
    };
    assert!(matches!(
        storage.create_record(&books, &clash, None).await,
        Err(StorageError::Conflict(Conflict::Unique { .. }))
    ));
    assert_eq!(
        storage
            .resolve_alias("novels", 0)
            .await
            .unwrap()
            .unwrap()
            .id,
        books.id
    );
    // Grants name ids now; the grant to a collection that does not exist is gone.
    let t1 = storage.get_token("t1").await.unwrap().unwrap();
    assert_eq!(t1.collections, Some(vec![films.id]));
    // The export's records are served from its chunk, as they were.
    let export = storage.get_job("j1").await.unwrap().unwrap();
    assert_eq!(export.collection_id, Some(books.id));
    let chunk = storage.job_result("j1", 0).await.unwrap().unwrap();
    assert_eq!(chunk, br#"{"id":"b1"},{"id":"b2"}"#);
    // The running import starts again from its first line, with its input.
    let import = storage.get_job("j2").await.unwrap().unwrap();
    assert_eq!((import.state, import.processed), (JobState::Queued, 0));
    assert_eq!(storage.job_input("j2").await.unwrap().unwrap(), b"{}\n{}");
}
