//! One pass over the service that produces every row of docs/contract.md's code
//! table (but 502, the gateway's) for a real reason. Run under any preset:
//! each step says what it expects under that preset.

use std::time::Duration;

use serde_json::json;
use verdict::{Preset, Situation};

use super::{Reply, Server};

/// Flags the tour's server needs.
pub const FLAGS: &[&str] = &[
    "--fault-injection",
    "--max-body",
    "16k",
    "--request-timeout",
    "1s",
    "--max-in-flight",
    "4",
    "--job-rate-limit",
    "2/1h",
    "--body-timeout",
    "300ms",
];

/// A POST whose body stops arriving after a few bytes, on a raw connection
/// (no client library sends less than it promised): the server's answer.
async fn stalled_body(s: &Server, token: &str) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/collections/books/records HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\": "
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse::<u16>().unwrap();
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            http::HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    Reply {
        status: http::StatusCode::from_u16(status).unwrap(),
        headers,
        bytes: bytes::Bytes::copy_from_slice(&raw[end + 4..]),
    }
}

/// What a step expects under a preset.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// This status, mapped by the preset.
    Status(u16),
    /// The preset's status for a situation.
    During(Situation),
    /// A redirect or 304 the service answers with the content itself (200)
    /// under presets without it.
    OrServed(u16),
}

impl Expect {
    pub fn status(self, preset: &Preset) -> u16 {
        let s = |c| http::StatusCode::from_u16(c).unwrap();
        match self {
            Expect::Status(c) => preset.map(s(c)).as_u16(),
            Expect::During(sit) => preset.status_for(sit).as_u16(),
            Expect::OrServed(c) if preset.allows(s(c)) => c,
            Expect::OrServed(_) => 200,
        }
    }
}

pub struct Step {
    pub row: &'static str,
    pub expect: Expect,
    pub reply: Reply,
}

fn ok(r: &Reply) -> bool {
    r.status.is_success()
}

pub async fn run(s: &Server) -> Vec<Step> {
    use Expect::*;
    let mut steps = Vec::new();
    let mut step =
        |row: &'static str, expect: Expect, reply: Reply| steps.push(Step { row, expect, reply });

    // Setup (any 2xx: presets map 201 and 202).
    let r = s
        .admin("POST", "/v1/collections")
        .json(json!({"name": "books", "unique": ["isbn"], "schema": {
            "type": "object", "required": ["title"],
            "properties": {"title": {"type": "string"}, "year": {"type": "integer"}}}}))
        .send()
        .await;
    assert!(ok(&r), "{}", r.text());
    for body in [
        json!({"id": "b1", "title": "Dune", "isbn": "111", "author": "Frank"}),
        json!({"id": "b2", "title": "Emma", "author": "Ann"}),
        json!({"id": "b3", "title": "Persuasion", "author": "Ann"}),
    ] {
        let r = s
            .admin("POST", "/v1/collections/books/records")
            .json(body)
            .send()
            .await;
        assert!(ok(&r), "{}", r.text());
    }
    let mk = |body: serde_json::Value| async move {
        let r = s.admin("POST", "/v1/tokens").json(body).send().await;
        assert!(ok(&r), "{}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    };
    let reader = mk(json!({"scopes": ["read"]})).await;
    // A grant is to a collection that exists (by its id).
    let r = s
        .admin("POST", "/v1/collections")
        .json(json!({"name": "other"}))
        .send()
        .await;
    assert!(ok(&r), "{}", r.text());
    let other = mk(json!({"scopes": ["read", "write"], "collections": ["other"]})).await;
    let quota = mk(json!({"scopes": ["read", "write"], "write_quota": 1})).await;
    let limited =
        mk(json!({"scopes": ["read"], "rate_limit": {"requests": 1, "per_seconds": 60}})).await;
    let revoked = mk(json!({"scopes": ["read"]})).await;
    let revoked_id = revoked.split('.').next().unwrap().to_string();
    let r = s
        .admin("DELETE", &format!("/v1/tokens/{revoked_id}"))
        .send()
        .await;
    assert!(ok(&r));

    // 2xx
    let r = s
        .call("GET", "/v1/collections/books/records/b1")
        .token(&reader)
        .send()
        .await;
    let etag = r
        .headers
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    step("200 GET a record", Status(200), r);
    let r = s
        .admin("POST", "/v1/collections/books/records")
        .json(json!({"title": "Ulysses"}))
        .send()
        .await;
    let created = r.json()["id"].as_str().unwrap_or_default().to_string();
    step("201 POST creates a record", Status(201), r);
    let r = s
        .admin("POST", "/v1/collections/books/exports")
        .send()
        .await;
    let job = r.json()["id"].as_str().unwrap_or_default().to_string();
    step("202 POST starts an export", Status(202), r);
    step(
        "204 DELETE a record",
        Status(204),
        s.admin(
            "DELETE",
            &format!("/v1/collections/books/records/{created}"),
        )
        .send()
        .await,
    );
    step("429 the token's budget of jobs is used up", Status(429), {
        let second = s
            .admin("POST", "/v1/collections/books/exports")
            .send()
            .await;
        assert!(ok(&second), "{}", second.text());
        s.admin("POST", "/v1/collections/books/exports")
            .send()
            .await
    });
    step(
        "207 POST /v1/batch",
        Status(207),
        s.admin("POST", "/v1/batch")
            .json(json!({"operations": [
                {"method": "GET", "path": "/v1/collections/books/records/b1"},
                {"method": "GET", "path": "/v1/collections/books/records/nope"}]}))
            .send()
            .await,
    );
    step(
        "204 OPTIONS",
        Status(204),
        s.call("OPTIONS", "/v1/collections").send().await,
    );

    // 3xx
    step(
        "300 lookup with several matches",
        Status(300),
        s.admin("GET", "/v1/collections/books/lookup?author=Ann")
            .send()
            .await,
    );
    let r = s
        .admin("POST", "/v1/collections")
        .json(json!({"name": "oldname"}))
        .send()
        .await;
    assert!(ok(&r), "{}", r.text());
    let r = s
        .admin("PATCH", "/v1/collections/oldname")
        .merge_patch(json!({"name": "newname"}))
        .send()
        .await;
    assert!(ok(&r), "{}", r.text());
    step(
        "302 a renamed collection's old name",
        OrServed(302),
        s.admin("GET", "/v1/collections/oldname").send().await,
    );
    step(
        "303 lookup with one match",
        OrServed(303),
        s.admin("GET", "/v1/collections/books/lookup?isbn=111")
            .send()
            .await,
    );
    let mut done = None;
    for _ in 0..100 {
        let r = s.admin("GET", &format!("/v1/jobs/{job}")).send().await;
        if r.status == 303 || r.json()["state"] == "succeeded" {
            done = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    step(
        "303 a finished job's monitor",
        OrServed(303),
        done.expect("the export finishes"),
    );
    step(
        "304 conditional GET",
        OrServed(304),
        s.call("GET", "/v1/collections/books/records/b1")
            .token(&reader)
            .header("if-none-match", &etag)
            .send()
            .await,
    );

    // 4xx
    step(
        "400 a body that is not JSON",
        During(Situation::MalformedBody),
        s.admin("POST", "/v1/collections/books/records")
            .header("content-type", "application/json")
            .body("{\"title\": ")
            .send()
            .await,
    );
    step(
        "400 an invalid query parameter",
        Status(400),
        s.admin("GET", "/v1/collections/books/records?limit=abc")
            .send()
            .await,
    );
    step(
        "400 a malformed header",
        Status(400),
        s.admin("PUT", "/v1/collections/books/records/b1")
            .header("if-match", "no-quotes")
            .json(json!({"title": "x"}))
            .send()
            .await,
    );
    step(
        "401 no credentials",
        During(Situation::MissingCredentials),
        s.call("GET", "/v1/collections/books/records/b1")
            .send()
            .await,
    );
    step(
        "401 an unknown token",
        Status(401),
        s.call("GET", "/v1/collections/books/records/b1")
            .token("nope.nope")
            .send()
            .await,
    );
    step(
        "401 a revoked token",
        Status(401),
        s.call("GET", "/v1/collections/books/records/b1")
            .token(&revoked)
            .send()
            .await,
    );
    step(
        "403 a token without the scope",
        Status(403),
        s.call("POST", "/v1/collections/books/records")
            .token(&reader)
            .json(json!({"title": "x"}))
            .send()
            .await,
    );
    step(
        "403 a token without the collection grant",
        Status(403),
        s.call("GET", "/v1/collections/books/records/b1")
            .token(&other)
            .send()
            .await,
    );
    let first = s
        .call("POST", "/v1/collections/books/records")
        .token(&quota)
        .json(json!({"title": "q1"}))
        .send()
        .await;
    assert!(ok(&first), "{}", first.text());
    step(
        "403 the daily write quota is used up",
        Status(403),
        s.call("POST", "/v1/collections/books/records")
            .token(&quota)
            .json(json!({"title": "q2"}))
            .send()
            .await,
    );
    step(
        "404 an unknown path",
        Status(404),
        s.admin("GET", "/v1/nothing-here").send().await,
    );
    step(
        "404 a missing record",
        Status(404),
        s.admin("GET", "/v1/collections/books/records/zzz")
            .send()
            .await,
    );
    step(
        "405 a method the path does not support",
        Status(405),
        s.admin("DELETE", "/v1/collections").send().await,
    );
    step(
        "406 an Accept the resource cannot satisfy",
        Status(406),
        s.admin("GET", "/v1/collections/books/records/b1")
            .header("accept", "text/html")
            .send()
            .await,
    );
    step(
        "409 a collection that exists",
        Status(409),
        s.admin("POST", "/v1/collections")
            .json(json!({"name": "books"}))
            .send()
            .await,
    );
    step(
        "409 a unique value that is taken",
        Status(409),
        s.admin("POST", "/v1/collections/books/records")
            .json(json!({"title": "x", "isbn": "111"}))
            .send()
            .await,
    );
    step(
        "409 deleting a collection with records",
        Status(409),
        s.admin("DELETE", "/v1/collections/books").send().await,
    );
    step(
        "409 cancelling a finished job",
        Status(409),
        s.admin("DELETE", &format!("/v1/jobs/{job}")).send().await,
    );
    step(
        "410 the retired /v0",
        During(Situation::RetiredVersion),
        s.admin("GET", "/v0/books").send().await,
    );
    step(
        "408 a request body that stops arriving",
        Status(408),
        stalled_body(s, super::ADMIN).await,
    );
    step(
        "412 If-Match naming an old version",
        Status(412),
        s.admin("PUT", "/v1/collections/books/records/b1")
            .header("if-match", "\"old\"")
            .json(json!({"title": "x"}))
            .send()
            .await,
    );
    step(
        "413 a body over --max-body",
        Status(413),
        s.admin("POST", "/v1/collections/books/records")
            .json(json!({"title": "x".repeat(20_000)}))
            .send()
            .await,
    );
    step(
        "414 a URI over 8 KiB",
        Status(414),
        s.admin(
            "GET",
            &format!("/v1/collections/books/records?author={}", "a".repeat(9000)),
        )
        .send()
        .await,
    );
    step(
        "415 a body that is not JSON by Content-Type",
        Status(415),
        s.admin("POST", "/v1/collections/books/records")
            .header("content-type", "text/plain")
            .body("title=x")
            .send()
            .await,
    );
    step(
        "422 a record that breaks the schema",
        Status(422),
        s.admin("POST", "/v1/collections/books/records")
            .json(json!({"title": 5, "year": "x"}))
            .send()
            .await,
    );
    let first = s
        .call("GET", "/v1/collections/books/records/b1")
        .token(&limited)
        .send()
        .await;
    assert!(ok(&first), "{}", first.text());
    step(
        "429 the token's rate limit is used up",
        During(Situation::RateLimited),
        s.call("GET", "/v1/collections/books/records/b1")
            .token(&limited)
            .send()
            .await,
    );
    let mut big = s.admin("GET", "/health");
    for i in 0..40 {
        big = big.header(&format!("x-filler-{i}"), &"v".repeat(1000));
    }
    step("431 headers over 32 KiB", Status(431), big.send().await);

    // 5xx
    step(
        "500 a panic in a handler",
        Status(500),
        s.admin("GET", "/v1/collections/books")
            .header("fault-injection", "panic")
            .send()
            .await,
    );
    step(
        "200 the server still serves after a panic",
        Status(200),
        s.admin("GET", "/health").send().await,
    );
    step(
        "501 an unknown method",
        Status(501),
        s.admin("BREW", "/v1/collections").send().await,
    );
    let r = s
        .admin("PUT", "/v1/admin/maintenance")
        .json(json!({"enabled": true, "retry_after_seconds": 30}))
        .send()
        .await;
    assert!(ok(&r), "{}", r.text());
    step(
        "503 maintenance mode",
        Status(503),
        s.call("GET", "/v1/collections/books/records/b1")
            .token(&reader)
            .send()
            .await,
    );
    step(
        "200 admins pass maintenance",
        Status(200),
        s.admin("GET", "/v1/collections/books/records/b1")
            .send()
            .await,
    );
    let r = s
        .admin("PUT", "/v1/admin/maintenance")
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert!(ok(&r), "{}", r.text());
    step(
        "503 storage unreachable",
        Status(503),
        s.admin("GET", "/v1/collections/books")
            .header("fault-injection", "storage-unavailable")
            .send()
            .await,
    );
    step(
        "504 past the request deadline",
        Status(504),
        s.admin("GET", "/v1/collections/books")
            .header("fault-injection", "delay=1500")
            .send()
            .await,
    );
    // Overload: four slow requests hold every in-flight slot (not on a
    // probe: probes are never shed, so they hold no slot).
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let call = s
                .admin("GET", "/v1/collections")
                .header("fault-injection", "delay=700");
            async move { call.send().await }
        })
        .collect();
    let (shed, held) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(250)).await;
            s.call("GET", "/v1/collections/books/records/b1")
                .token(&reader)
                .send()
                .await
        },
        futures_util::future::join_all(slow)
    );
    assert!(held.iter().all(ok), "the slow requests finish");
    step("503 load shedding past --max-in-flight", Status(503), shed);
    steps
}
