//! Every preset over one tour of requests: each situation gets the preset's
//! code, and no code outside the preset's set is ever sent.

mod common;

use std::collections::BTreeSet;

use common::*;
use http::StatusCode;
use verdict::{Preset, Situation};

/// What a step expects under `standard`; other presets map it.
enum Expect {
    Status(u16),
    During(Situation),
}

fn tour() -> Vec<(&'static str, Req, Expect)> {
    use Expect::*;
    let item = r#"{"name": "a", "price": 1}"#;
    vec![
        (
            "get",
            req("GET", "/items/1").token("reader-token"),
            Status(200),
        ),
        (
            "create",
            req("POST", "/items").token("writer-token").json(item),
            Status(201),
        ),
        (
            "accepted",
            req("GET", "/echo/202").token("reader-token"),
            Status(202),
        ),
        ("options", req("OPTIONS", "/items"), Status(204)),
        (
            "multi-status",
            req("GET", "/echo/207").token("reader-token"),
            Status(207),
        ),
        (
            "choices",
            req("GET", "/echo/300").token("reader-token"),
            Status(300),
        ),
        (
            "found",
            req("GET", "/echo/302").token("reader-token"),
            Status(302),
        ),
        (
            "see other",
            req("GET", "/echo/303").token("reader-token"),
            Status(303),
        ),
        (
            "bad query",
            req("GET", "/items?limit=x").token("reader-token"),
            Status(400),
        ),
        (
            "malformed",
            req("PUT", "/items/1").token("writer-token").json("{"),
            During(Situation::MalformedBody),
        ),
        (
            "no credentials",
            req("GET", "/items/1"),
            During(Situation::MissingCredentials),
        ),
        (
            "bad token",
            req("GET", "/items/1").token("nope"),
            Status(401),
        ),
        (
            "scope",
            req("PUT", "/items/1").token("reader-token").json(item),
            Status(403),
        ),
        (
            "missing",
            req("GET", "/items/7").token("reader-token"),
            Status(404),
        ),
        (
            "not allowed",
            req("DELETE", "/items/1").token("admin-token"),
            Status(405),
        ),
        (
            "not acceptable",
            req("GET", "/items/1")
                .token("reader-token")
                .header("accept", "text/html"),
            Status(406),
        ),
        (
            "conflict",
            req("PUT", "/items/1")
                .token("writer-token")
                .json(r#"{"name": "taken", "price": 1}"#),
            Status(409),
        ),
        (
            "retired",
            req("GET", "/v0/items"),
            During(Situation::RetiredVersion),
        ),
        (
            "precondition",
            req("PUT", "/items/1")
                .token("writer-token")
                .header("if-match", "\"x\"")
                .json(item),
            Status(412),
        ),
        (
            "too large",
            req("POST", "/imports")
                .token("writer-token")
                .header("content-type", "application/x-ndjson")
                .body(&"x".repeat(64)),
            Status(413),
        ),
        (
            "uri too long",
            req("GET", "/echo/414").token("reader-token"),
            Status(414),
        ),
        (
            "media type",
            req("POST", "/items")
                .token("writer-token")
                .header("content-type", "text/plain")
                .body("x"),
            Status(415),
        ),
        (
            "invalid",
            req("PUT", "/items/1")
                .token("writer-token")
                .json(r#"{"name": 1, "price": 1}"#),
            Status(422),
        ),
        (
            "precondition required",
            req("GET", "/echo/428").token("reader-token"),
            Status(428),
        ),
        (
            "headers too large",
            req("GET", "/echo/431").token("reader-token"),
            Status(431),
        ),
        (
            "panic",
            req("GET", "/panic").token("reader-token"),
            Status(500),
        ),
        ("unknown method", req("BREW", "/items"), Status(501)),
        (
            "bad gateway",
            req("GET", "/echo/502").token("reader-token"),
            Status(502),
        ),
        (
            "deadline",
            req("GET", "/slow").token("reader-token"),
            Status(504),
        ),
        // Rate limit last but one: the limited token's budget is 2.
        (
            "limited 1",
            req("GET", "/items/1").token("limited-token"),
            Status(200),
        ),
        (
            "limited 2",
            req("GET", "/items/1").token("limited-token"),
            Status(200),
        ),
        (
            "limited 3",
            req("GET", "/items/1").token("limited-token"),
            During(Situation::RateLimited),
        ),
    ]
}

#[tokio::test]
async fn every_preset_answers_each_situation_with_its_code_and_nothing_outside_its_set() {
    for preset in Preset::all() {
        let s = stack(preset.clone());
        let mut seen = BTreeSet::new();
        for (name, request, expect) in tour() {
            let r = request.send(&s.app).await;
            let want = match expect {
                Expect::Status(c) => preset.map(StatusCode::from_u16(c).unwrap()),
                Expect::During(sit) => preset.status_for(sit),
            };
            assert_eq!(r.status, want, "{preset} / {name}: {r:?}");
            if r.status.as_u16() >= 400 {
                assert_error_shape(&r);
                let ct = r.content_type();
                assert!(
                    ct == preset.format().content_type(),
                    "{preset} / {name}: {ct}"
                );
            }
            seen.insert(r.status.as_u16());
        }
        // Maintenance, and load shedding's 503 share a code: one is enough.
        s.maintenance.enable(3);
        let r = req("GET", "/items/1")
            .token("reader-token")
            .send(&s.app)
            .await;
        assert_eq!(r.status, preset.map(StatusCode::SERVICE_UNAVAILABLE));
        seen.insert(r.status.as_u16());
        // A conditional GET under this preset.
        s.maintenance.disable();
        let first = req("GET", "/items").token("admin-token").send(&s.app).await;
        let r = req("GET", "/items")
            .token("admin-token")
            .header("if-none-match", first.header("etag"))
            .send(&s.app)
            .await;
        let want = if preset.allows(StatusCode::NOT_MODIFIED) {
            304
        } else {
            200
        };
        assert_eq!(r.status.as_u16(), want, "{preset} conditional GET");
        seen.insert(r.status.as_u16());

        if let Some(allowed) = preset.allowed_codes() {
            let outside: Vec<_> = seen.iter().filter(|c| !allowed.contains(c)).collect();
            assert!(outside.is_empty(), "{preset} sent {outside:?}");
        } else {
            // `standard` sends every code of the catalog the tour reaches.
            assert!(seen.len() >= 30, "{seen:?}");
        }
    }
}
