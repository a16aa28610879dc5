//! Probes answer whatever the server is refusing everyone else: load
//! shedding, maintenance, rate limits.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use verdict::maintenance::MaintenanceSwitch;
use verdict::rate_limit::{InMemoryStore, Quota};
use verdict::test::TestClient;
use verdict::{Contract, Preset};

fn app(maintenance: MaintenanceSwitch) -> verdict::ContractService {
    let routes = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/work", get(|| async { "done" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        );
    Contract::new(Preset::standard())
        .probe("/health")
        .public("/work")
        .public("/slow")
        .max_in_flight(1)
        .maintenance(maintenance)
        .rate_limit(
            Arc::new(InMemoryStore::new()),
            Some(Quota::new(2, Duration::from_secs(60))),
        )
        .apply(routes)
}

#[tokio::test]
async fn a_probe_answers_past_the_rate_limit() {
    let client = TestClient::new(app(MaintenanceSwitch::new()));
    for _ in 0..2 {
        client.get("/work").send().await.assert_status(200);
    }
    client
        .get("/work")
        .send()
        .await
        .assert_problem(429, "rate_limited");
    for _ in 0..5 {
        let r = client.get("/health").send().await;
        r.assert_status(200);
        assert!(
            !r.headers.contains_key("ratelimit-remaining"),
            "a probe spends no budget"
        );
    }
}

#[tokio::test]
async fn a_probe_answers_in_maintenance() {
    let maintenance = MaintenanceSwitch::new();
    let client = TestClient::new(app(maintenance.clone()));
    maintenance.enable(60);
    client
        .get("/work")
        .send()
        .await
        .assert_problem(503, "maintenance");
    client.get("/health").send().await.assert_status(200);
}

#[tokio::test]
async fn a_probe_answers_while_the_server_sheds_load() {
    let client = TestClient::new(app(MaintenanceSwitch::new()));
    let busy = {
        let client = client.clone();
        tokio::spawn(async move { client.get("/slow").send().await.status })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .get("/work")
        .send()
        .await
        .assert_problem(503, "overloaded");
    client.get("/health").send().await.assert_status(200);
    assert_eq!(busy.await.unwrap(), 200);
}

#[test]
#[should_panic(expected = "Contract::probe(\"/healthz\") names no route")]
fn a_probe_that_names_no_route_is_refused_at_start() {
    let routes = Router::new().route("/health", get(|| async { "ok" }));
    let _ = Contract::new(Preset::standard())
        .probe("/healthz")
        .apply(routes);
}
