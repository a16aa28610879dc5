//! The SQLite record cache, over a socket: point reads come from memory, yet
//! a read after an acknowledged write never shows what the write replaced,
//! however many readers keep the cache warm meanwhile.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;

#[tokio::test]
async fn a_read_after_an_acknowledged_write_is_never_the_old_version_under_concurrent_readers() {
    for cache in ["64MiB", "0"] {
        let s = Arc::new(common::start(&["--record-cache", cache]).await);
        s.collection(json!({"name": "notes"})).await;
        s.record("notes", json!({"id": "n1", "n": 0})).await;
        let path = "/v1/collections/notes/records/n1";

        // Readers keep the record in memory all along.
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..4 {
            let (s, stop) = (s.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                let mut reads = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let r = s.admin("GET", path).send().await;
                    assert_eq!(r.status, 200);
                    reads += 1;
                }
                reads
            }));
        }
        for n in 1..=40 {
            let w = s
                .admin("PATCH", path)
                .merge_patch(json!({"n": n}))
                .send()
                .await;
            assert_eq!(w.status, 200, "{}", w.text());
            let r = s.admin("GET", path).send().await;
            assert_eq!(
                r.json()["n"],
                n,
                "with --record-cache {cache}: read after PATCH {n}"
            );
            assert_eq!(r.header("etag"), w.header("etag"));
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            assert!(reader.await.unwrap() > 0);
        }

        // A delete, a re-create under the same id, and the collection's own deletion.
        assert_eq!(s.admin("DELETE", path).send().await.status, 204);
        s.admin("GET", path)
            .send()
            .await
            .assert_error(404, "record_not_found");
        s.record("notes", json!({"id": "n1", "n": "again"})).await;
        assert_eq!(s.admin("GET", path).send().await.json()["n"], "again");
        let gone = s
            .admin("DELETE", "/v1/collections/notes?force=true")
            .send()
            .await;
        assert_eq!(gone.status, 204, "{}", gone.text());
        s.admin("GET", path)
            .send()
            .await
            .assert_error(404, "collection_not_found");
    }
}
