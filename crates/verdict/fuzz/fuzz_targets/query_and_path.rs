//! A query string and a path parameter from the client: the `Query` and
//! `Path` extractors answer 400 naming what is wrong, never a 500.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "app.rs"]
mod app;

/// Bytes as they may appear in a URI: unreserved ones as they are, the rest
/// percent-encoded (so every input reaches the extractors, not the URI parser).
fn uri_text(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::new();
    for b in bytes {
        if b.is_ascii_alphanumeric() || keep.contains(b) {
            out.push(*b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let split = data.len() / 2;
    let (query, segment) = data.split_at(split);
    let query = uri_text(query, b"-._~&=+");
    let segment = uri_text(segment, b"-._~");
    for uri in [format!("/items?{query}"), format!("/items/{segment}")] {
        let req = http::Request::get(uri)
            .header("authorization", "Bearer fuzz")
            .body(axum::body::Body::empty())
            .expect("a request");
        app::check(req);
    }
});
