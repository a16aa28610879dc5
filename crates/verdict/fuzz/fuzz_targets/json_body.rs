//! A request body: the strict JSON parser (400 or 422, never a panic), and
//! the 422's hunt for every failing field, straight and through the app.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "app.rs"]
mod app;

fuzz_target!(|data: &[u8]| {
    let _ = verdict::extract::parse_value(data);
    if let Err(e) = verdict::extract::parse_json::<app::Item>(data) {
        assert!(matches!(e.status().as_u16(), 400 | 422), "{e}");
    }
    let req = http::Request::put("/items/1")
        .header("authorization", "Bearer fuzz")
        .header("content-type", "application/json")
        .header("content-length", data.len())
        .body(axum::body::Body::from(data.to_vec()))
        .expect("a request");
    app::check(req);
});
