//! `verdict::test`, the helpers adopters test their apps with, checked
//! against a real router: they pass what keeps the contract and catch what
//! does not.

use axum::routing::get;
use axum::Router;
use verdict::test::TestClient;
use verdict::{Contract, Preset};

fn client(preset: Preset) -> TestClient {
    TestClient::new(
        Contract::new(preset).apply(
            Router::new()
                .route(
                    "/todos",
                    get(|| async { axum::Json(serde_json::json!([])) }),
                )
                .route(
                    "/plain",
                    get(|| async { (http::StatusCode::CONFLICT, "plain text") }),
                ),
        ),
    )
}

#[tokio::test]
async fn contract_errors_pass_in_every_format() {
    for preset in ["standard", "seed-000", "seed-001"] {
        let c = client(Preset::by_name(preset).unwrap());
        c.delete("/todos").send().await.assert_problem(
            if preset == "seed-000" { 400 } else { 405 },
            "method_not_allowed",
        );
        c.get("/nope").send().await.assert_problem(404, "not_found");
        // A handler's bare status leaves as a contract error too.
        c.get("/plain")
            .send()
            .await
            .assert_problem(if preset == "standard" { 409 } else { 422 }, "conflict");
    }
}

#[tokio::test]
#[should_panic(expected = "not_found")]
async fn a_wrong_code_is_caught() {
    client(Preset::standard())
        .get("/nope")
        .send()
        .await
        .assert_problem(404, "record_not_found");
}

#[tokio::test]
#[should_panic]
async fn a_success_is_not_a_problem() {
    client(Preset::standard())
        .get("/todos")
        .send()
        .await
        .assert_problem(200, "ok");
}
