//! A header value from the client in each header the library parses:
//! `Accept` (q-values), `If-Match` / `If-None-Match` (tag lists),
//! `If-Modified-Since` / `If-Unmodified-Since` (dates), `Authorization`,
//! `Content-Type`, `X-Request-Id`. The first byte picks the header.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "app.rs"]
mod app;

const HEADERS: [&str; 8] = [
    "accept",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "authorization",
    "content-type",
    "x-request-id",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, value)) = data.split_first() else {
        return;
    };
    let name = HEADERS[pick as usize % HEADERS.len()];
    let Ok(value) = http::HeaderValue::from_bytes(value) else {
        return;
    };
    let mut req = http::Request::get("/items/1");
    if name != "authorization" {
        req = req.header("authorization", "Bearer fuzz");
    }
    let req = req
        .header(name, value)
        .body(axum::body::Body::empty())
        .expect("a request");
    app::check(req);
});
