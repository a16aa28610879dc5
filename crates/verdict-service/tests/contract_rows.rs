//! Every row of docs/contract.md's code table, driven over a real socket, with the
//! headers and body the contract says go with it.

mod common;

use common::tour::{self, Step};
use verdict::Preset;

fn find<'a>(steps: &'a [Step], row: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.row == row)
        .unwrap_or_else(|| panic!("no step {row}"))
}

#[tokio::test]
async fn every_contract_row_happens_for_a_real_reason_with_its_headers() {
    let s = common::start(tour::FLAGS).await;
    let steps = tour::run(&s).await;
    let preset = Preset::standard();
    for st in &steps {
        let want = st.expect.status(&preset);
        assert_eq!(
            st.reply.status.as_u16(),
            want,
            "{}: {}",
            st.row,
            st.reply.text()
        );
        assert!(st.reply.headers.contains_key("x-request-id"), "{}", st.row);
        if st.reply.status.as_u16() >= 400 {
            let code = st.reply.json()["code"].as_str().unwrap().to_string();
            st.reply.assert_error(want, &code);
            assert_eq!(st.reply.header("content-type"), "application/problem+json");
        }
    }
    let row = |r| &find(&steps, r).reply;

    let r = row("200 GET a record");
    assert!(r.header("etag").starts_with('"'));
    assert!(r.header("last-modified").ends_with("GMT"));
    assert_eq!(r.json()["id"], "b1");

    let r = row("201 POST creates a record");
    assert!(r
        .header("location")
        .starts_with("/v1/collections/books/records/"));
    assert!(r.headers.contains_key("etag"));

    let r = row("202 POST starts an export");
    assert!(r.header("location").starts_with("/v1/jobs/"));

    assert!(row("204 DELETE a record").bytes.is_empty());
    let r = row("207 POST /v1/batch");
    assert_eq!(r.json()["results"][0]["status"], 200);
    assert_eq!(r.json()["results"][1]["status"], 404);
    assert_eq!(r.json()["results"][1]["body"]["code"], "record_not_found");
    assert_eq!(
        row("204 OPTIONS").header("allow"),
        "POST, GET, HEAD, OPTIONS"
    );

    let r = row("300 lookup with several matches");
    assert_eq!(r.json()["choices"].as_array().unwrap().len(), 2);
    assert_eq!(
        row("302 a renamed collection's old name").header("location"),
        "/v1/collections/newname"
    );
    assert_eq!(
        row("303 lookup with one match").header("location"),
        "/v1/collections/books/records/b1"
    );
    assert!(row("303 a finished job's monitor")
        .header("location")
        .ends_with("/result"));
    let r = row("304 conditional GET");
    assert!(r.bytes.is_empty());
    assert!(r.headers.contains_key("etag"));

    assert_eq!(
        row("400 a body that is not JSON").json()["code"],
        "malformed_body"
    );
    assert_eq!(
        row("400 an invalid query parameter").json()["detail"],
        "The query parameter `limit` is not valid: must be an integer from 1 to 1000"
    );
    assert_eq!(
        row("401 no credentials").header("www-authenticate"),
        "Bearer realm=\"verdict\""
    );
    for r in ["401 an unknown token", "401 a revoked token"] {
        assert!(
            row(r)
                .header("www-authenticate")
                .contains("error=\"invalid_token\""),
            "{r}"
        );
    }
    assert_eq!(
        row("403 a token without the scope").json()["code"],
        "insufficient_scope"
    );
    assert_eq!(
        row("403 a token without the collection grant").json()["code"],
        "collection_not_granted"
    );
    assert_eq!(
        row("403 the daily write quota is used up").json()["code"],
        "write_quota_exceeded"
    );
    assert_eq!(
        row("404 a missing record").json()["detail"],
        "The record identified by zzz could not be found."
    );
    assert_eq!(
        row("405 a method the path does not support").header("allow"),
        "POST, GET, HEAD, OPTIONS"
    );
    assert_eq!(
        row("409 a unique value that is taken").json()["code"],
        "unique_violation"
    );
    assert_eq!(
        row("409 deleting a collection with records").json()["code"],
        "collection_not_empty"
    );
    assert_eq!(row("410 the retired /v0").json()["code"], "retired_version");
    let r = row("412 If-Match naming an old version");
    assert_eq!(
        r.header("etag"),
        find(&steps, "200 GET a record").reply.header("etag")
    );
    assert_eq!(
        row("415 a body that is not JSON by Content-Type").header("accept-post"),
        "application/json"
    );
    let r = row("422 a record that breaks the schema");
    let body = r.json();
    let mut pointers: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect();
    pointers.sort();
    assert_eq!(pointers, vec!["/title", "/year"], "{body}");
    let r = row("429 the token's rate limit is used up");
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(r.header("ratelimit-limit"), "1");
    assert_eq!(r.header("ratelimit-remaining"), "0");
    let r = row("500 a panic in a handler");
    let text = r.text();
    assert!(r.json()["incident_id"].is_string());
    assert!(!text.contains("panic") && !text.contains(".rs"), "{text}");
    assert_eq!(row("503 maintenance mode").header("retry-after"), "30");
    assert_eq!(
        row("503 storage unreachable").json()["code"],
        "storage_unavailable"
    );
    assert_eq!(
        row("503 load shedding past --max-in-flight").json()["code"],
        "overloaded"
    );
}
