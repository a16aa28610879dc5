//! A collection is an identity, not a name: writes racing its rename or
//! deletion are never lost nor resurrected, two changes of it cannot both
//! win, and grants and job results follow the collection, not the name.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

/// Every record id of a collection, following pages.
async fn all_ids(s: &common::Server, collection: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/collections/{collection}/records?limit=1000&cursor={c}"),
            None => format!("/v1/collections/{collection}/records?limit=1000"),
        };
        let r = s.admin("GET", &path).send().await;
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json();
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn creates_racing_a_rename_all_land_under_the_new_name() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "before", "unique": ["n"]}))
        .await;
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let call = s
                .admin("POST", "/v1/collections/before/records")
                .json(json!({"id": format!("r{i}"), "n": i}));
            async move { (i, call.send().await) }
        })
        .collect();
    let rename = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.admin("PATCH", "/v1/collections/before")
            .merge_patch(json!({"name": "after"}))
            .send()
            .await
    };
    let (results, renamed) = tokio::join!(futures_util::future::join_all(writers), rename);
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    let landed = all_ids(&s, "after").await;
    let mut acknowledged = 0;
    for (i, r) in results {
        match r.status.as_u16() {
            201 => {
                acknowledged += 1;
                assert!(
                    landed.contains(&format!("r{i}")),
                    "acknowledged r{i} is not under the new name"
                );
            }
            // Sent to the old name after the rename: told where it went.
            302 | 404 => {}
            other => panic!("r{i}: {other} {}", r.text()),
        }
    }
    assert!(acknowledged > 0);
    assert_eq!(
        landed.len(),
        acknowledged,
        "nothing unacknowledged landed either"
    );
}

#[tokio::test]
async fn a_force_deleted_collections_data_never_comes_back() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "gone", "unique": ["email"]}))
        .await;
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let call = s
                .admin("POST", "/v1/collections/gone/records")
                .json(json!({"id": format!("g{i}"), "email": format!("{i}@x")}));
            async move { call.send().await }
        })
        .collect();
    let delete = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.admin("DELETE", "/v1/collections/gone?force=true")
            .send()
            .await
    };
    let (results, deleted) = tokio::join!(futures_util::future::join_all(writers), delete);
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    for r in &results {
        assert!(
            matches!(r.status.as_u16(), 201 | 404),
            "{} {}",
            r.status,
            r.text()
        );
    }
    // The same name again is a new, empty collection: no ghost records, no
    // ghost unique values.
    s.collection(json!({"name": "gone", "unique": ["email"]}))
        .await;
    assert!(all_ids(&s, "gone").await.is_empty());
    for i in 0..40 {
        let r = s
            .admin("POST", "/v1/collections/gone/records")
            .json(json!({"email": format!("{i}@x")}))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
}

/// Waits until a job is no longer queued or running; its state.
async fn settled(s: &common::Server, monitor: &str) -> Value {
    for _ in 0..600 {
        let r = s.admin("GET", monitor).send().await;
        let state = r.json();
        if !matches!(state["state"].as_str(), Some("queued" | "running")) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the job did not settle");
}

#[tokio::test]
async fn an_import_stops_and_says_so_when_its_collection_is_deleted() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "target"})).await;
    let ndjson: String = (0..60_000).map(|i| format!("{{\"n\": {i}}}\n")).collect();
    let r = s
        .admin("POST", "/v1/collections/target/imports")
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await;
    assert_eq!(r.status, 202);
    let monitor = r.header("location").to_string();
    for _ in 0..500 {
        if s.admin("GET", &monitor).send().await.json()["processed"].as_i64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = s
        .admin("DELETE", "/v1/collections/target?force=true")
        .send()
        .await;
    assert_eq!(r.status, 204);
    let state = settled(&s, &monitor).await;
    assert_eq!(state["state"], "failed", "{state}");
    assert!(
        state["error"].as_str().unwrap().contains("deleted"),
        "{state}"
    );
    // Nothing of it reappears under the name.
    s.collection(json!({"name": "target"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(all_ids(&s, "target").await.is_empty());
}

#[tokio::test]
async fn two_changes_with_the_same_if_match_cannot_both_win() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "shared"})).await;
    let etag = s
        .admin("GET", "/v1/collections/shared")
        .send()
        .await
        .header("etag")
        .to_string();
    let change = |schema: Value| {
        s.admin("PATCH", "/v1/collections/shared")
            .header("if-match", &etag)
            .merge_patch(json!({"schema": schema}))
            .send()
    };
    let (a, b) = tokio::join!(
        change(json!({"type": "object", "required": ["a"]})),
        change(json!({"type": "object", "required": ["b"]}))
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 412], "{} / {}", a.text(), b.text());
    let loser = if a.status == 412 { &a } else { &b };
    loser.assert_error(412, "precondition_failed");
}

#[tokio::test]
async fn a_grant_follows_its_collection_not_the_name() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "gone"})).await;
    s.collection(json!({"name": "kept"})).await;
    let granted = s
        .token(json!({"scopes": ["read", "write"], "collections": ["gone", "kept"]}))
        .await;
    // A rename keeps the grant.
    let r = s
        .admin("PATCH", "/v1/collections/kept")
        .merge_patch(json!({"name": "renamed"}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call("GET", "/v1/collections/renamed/records")
        .token(&granted)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A new collection under a deleted one's name is not granted.
    assert_eq!(
        s.admin("DELETE", "/v1/collections/gone")
            .send()
            .await
            .status,
        204
    );
    s.collection(json!({"name": "gone"})).await;
    s.record("gone", json!({"id": "fresh"})).await;
    let r = s
        .call("GET", "/v1/collections/gone/records/fresh")
        .token(&granted)
        .send()
        .await;
    r.assert_error(403, "collection_not_granted");
    // Its listing shows the grants by their current names.
    let tokens = s.admin("GET", "/v1/tokens").send().await.json();
    let id = granted.split('.').next().unwrap();
    let mine = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert_eq!(mine["collections"], json!(["renamed"]));
}

#[tokio::test]
async fn a_deleted_collections_export_results_go_with_it() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "exported"})).await;
    s.record("exported", json!({"id": "x", "secret": "TOPSECRET"}))
        .await;
    let r = s
        .admin("POST", "/v1/collections/exported/exports")
        .send()
        .await;
    let monitor = r.header("location").to_string();
    assert_eq!(settled(&s, &monitor).await["state"], "succeeded");
    assert_eq!(
        s.admin("GET", &format!("{monitor}/result"))
            .send()
            .await
            .status,
        200
    );
    let r = s
        .admin("DELETE", "/v1/collections/exported?force=true")
        .send()
        .await;
    assert_eq!(r.status, 204);
    s.admin("GET", &monitor)
        .send()
        .await
        .assert_error(404, "job_not_found");
    let r = s.admin("GET", &format!("{monitor}/result")).send().await;
    r.assert_error(404, "job_not_found");
    assert!(!r.text().contains("TOPSECRET"));
}
