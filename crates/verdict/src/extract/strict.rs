//! Strict JSON: a key given twice in one object is an error (serde_json's
//! `Value` keeps the last one silently), and numbers that cannot be kept
//! exactly are found and named.
//!
//! Duplicate keys are caught while parsing, by a visitor that builds the same
//! `Value` serde_json would. Numbers need the text itself: serde_json turns an
//! integer past `u64` into an `f64` before any visitor sees it, so a short
//! scan of the bytes names the field, and runs only when the body holds a run
//! of 20 digits or more (no shorter integer is out of range).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value parsed with duplicate keys refused.
pub(super) struct Strict(pub(super) Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

const DUPLICATE: &str = "duplicate key `";

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE}{key}`")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The key a duplicate-key error names.
pub(super) fn duplicate_key_of(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let rest = message.strip_prefix(DUPLICATE).unwrap_or(&message);
    let key = rest.rsplit_once("` at line ").map_or(rest, |(k, _)| k);
    key.chars().take(100).collect()
}

/// Whether `bytes` has a run of 20 or more digits: only then may an integer
/// literal in it be out of `i64`/`u64` range.
pub(super) fn may_hold_a_long_integer(bytes: &[u8]) -> bool {
    let mut run = 0;
    for b in bytes {
        if b.is_ascii_digit() {
            run += 1;
            if run >= 20 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// An integer literal (no fraction, no exponent) outside `i64` and `u64`.
pub(super) fn integer_out_of_range(text: &str) -> bool {
    !text.contains(['.', 'e', 'E']) && text.parse::<i64>().is_err() && text.parse::<u64>().is_err()
}

/// A number literal outside `f64`'s range.
pub(super) fn float_out_of_range(text: &str) -> bool {
    text.parse::<f64>().is_ok_and(f64::is_infinite)
}

/// Where the walker is inside the document.
enum Frame {
    Object {
        key: Option<String>,
        seen: Vec<String>,
    },
    Array(usize),
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The JSON Pointer of the current position (`frames` up to the value being read).
fn pointer(frames: &[Frame]) -> String {
    let mut out = String::new();
    for frame in frames {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                out.push('/');
                out.push_str(&escape(k));
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array(i) => {
                out.push('/');
                out.push_str(&i.to_string());
            }
        }
    }
    out
}

/// The end (one past the closing quote) of the string starting at `start`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn decode_key(raw: &[u8]) -> String {
    // `raw` is a quoted string, or what is left of one at the end of the input.
    if raw.len() >= 2 && !raw.contains(&b'\\') {
        if let Ok(s) = std::str::from_utf8(&raw[1..raw.len() - 1]) {
            return s.to_owned();
        }
    }
    serde_json::from_slice::<String>(raw).unwrap_or_default()
}

enum Found {
    Number,
    DuplicateKey,
}

/// Walks the document's tokens until `stop` says so; the pointer where it stopped.
fn walk(
    bytes: &[u8],
    track_keys: bool,
    mut stop: impl FnMut(&str) -> bool,
) -> Option<(String, Found)> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut expecting_key = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                frames.push(Frame::Object {
                    key: None,
                    seen: Vec::new(),
                });
                expecting_key = true;
                i += 1;
            }
            b'[' => {
                frames.push(Frame::Array(0));
                i += 1;
            }
            b'}' | b']' => {
                frames.pop();
                expecting_key = false;
                i += 1;
            }
            b',' => {
                match frames.last_mut() {
                    Some(Frame::Array(n)) => *n += 1,
                    Some(Frame::Object { .. }) => expecting_key = true,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let end = string_end(bytes, i);
                if expecting_key {
                    let key = decode_key(&bytes[i..end]);
                    if let Some(Frame::Object { key: current, seen }) = frames.last_mut() {
                        if track_keys {
                            if seen.contains(&key) {
                                *current = None;
                                return Some((pointer(&frames), Found::DuplicateKey));
                            }
                            seen.push(key.clone());
                        }
                        *current = Some(key);
                    }
                    expecting_key = false;
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let end = bytes[i..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(bytes.len(), |n| i + n);
                let text = std::str::from_utf8(&bytes[i..end]).unwrap_or("");
                if stop(text) {
                    return Some((pointer(&frames), Found::Number));
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    None
}

/// The pointer of the first number whose text `bad` refuses.
pub(super) fn find_number(bytes: &[u8], bad: fn(&str) -> bool) -> Option<String> {
    match walk(bytes, false, bad)? {
        (pointer, Found::Number) => Some(pointer),
        _ => None,
    }
}

/// The pointer of the first object that gives a key twice.
pub(super) fn pointer_of_duplicate(bytes: &[u8]) -> Option<String> {
    match walk(bytes, true, |_| false)? {
        (pointer, Found::DuplicateKey) => Some(pointer),
        _ => None,
    }
}

/// Where each of `pointers` is in `bytes`: the offset its value starts at;
/// for a member that is absent, where its object ends (so it sorts after its
/// siblings); `usize::MAX` for anything else.
pub(super) fn positions(bytes: &[u8], pointers: &[String]) -> Vec<usize> {
    let mut found = vec![usize::MAX; pointers.len()];
    let mut ends = vec![usize::MAX; pointers.len()];
    let parent = |p: &str| {
        p.rsplit_once('/')
            .map_or(String::new(), |(a, _)| a.to_string())
    };
    let parents: Vec<String> = pointers.iter().map(|p| parent(p)).collect();
    let mut note_start = |here: &str, at: usize| {
        for (i, p) in pointers.iter().enumerate() {
            if p == here && found[i] == usize::MAX {
                found[i] = at;
            }
        }
    };
    let mut frames: Vec<Frame> = Vec::new();
    let mut expecting_key = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => {
                note_start(&pointer(&frames), i);
                frames.push(if bytes[i] == b'{' {
                    Frame::Object {
                        key: None,
                        seen: Vec::new(),
                    }
                } else {
                    Frame::Array(0)
                });
                expecting_key = bytes[i] == b'{';
                i += 1;
            }
            b'}' | b']' => {
                if let Some(Frame::Object { key, .. }) = frames.last_mut() {
                    *key = None;
                }
                let container = pointer(&frames);
                for (n, p) in parents.iter().enumerate() {
                    if *p == container && ends[n] == usize::MAX {
                        ends[n] = i;
                    }
                }
                frames.pop();
                expecting_key = false;
                i += 1;
            }
            b',' => {
                match frames.last_mut() {
                    Some(Frame::Array(n)) => *n += 1,
                    Some(Frame::Object { .. }) => expecting_key = true,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let end = string_end(bytes, i);
                if expecting_key {
                    let key = decode_key(&bytes[i..end]);
                    if let Some(Frame::Object { key: current, .. }) = frames.last_mut() {
                        *current = Some(key);
                    }
                    expecting_key = false;
                } else {
                    note_start(&pointer(&frames), i);
                }
                i = end;
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                note_start(&pointer(&frames), i);
                let end = bytes[i..]
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                    .map_or(bytes.len(), |n| i + n);
                i = end;
            }
            _ => i += 1,
        }
    }
    found
        .into_iter()
        .zip(ends)
        .map(|(start, end)| if start != usize::MAX { start } else { end })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(text: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str::<Strict>(text).map(|s| s.0)
    }

    #[test]
    fn a_string_cut_off_by_the_end_of_the_input_does_not_panic() {
        // Found by cargo-fuzz (json_body): a number out of range, then garbage
        // ending in a lone quote where a key goes.
        let input = b"44E4000e\x01nx{r\\\"";
        assert!(find_number(input, float_out_of_range).is_none());
        assert!(pointer_of_duplicate(b"{\"").is_none());
        let e = crate::extract::parse_value(input).unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn pointers_are_placed_where_they_are_in_the_text() {
        let text = br#"{"b": 1, "a": {"y": [true, null], "x": "s"}, "c": -2}"#;
        let wanted: Vec<String> = ["/c", "/a/y/1", "/a/x", "/b", "/a/missing", "/nope/deeper"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let at = positions(text, &wanted);
        let text = std::str::from_utf8(text).unwrap();
        assert_eq!(&text[at[0]..at[0] + 2], "-2");
        assert_eq!(&text[at[1]..at[1] + 4], "null");
        assert_eq!(&text[at[2]..at[2] + 3], "\"s\"");
        assert_eq!(&text[at[3]..at[3] + 1], "1");
        assert_eq!(
            &text[at[4]..at[4] + 1],
            "}",
            "a missing member sorts at its object's end"
        );
        assert_eq!(at[5], usize::MAX);
    }

    #[test]
    fn duplicate_keys_are_refused_anywhere_and_named() {
        assert!(strict(r#"{"a": 1, "b": {"c": [1, {"d": 2}]}}"#).is_ok());
        let e = strict(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(e.is_data());
        assert_eq!(duplicate_key_of(&e), "a");
        let text = r#"{"x": [0, {"k": 1, "k\u0000": 2, "k": 3}]}"#;
        assert!(strict(text).is_err());
        assert_eq!(pointer_of_duplicate(text.as_bytes()).unwrap(), "/x/1");
        assert_eq!(pointer_of_duplicate(br#"{"a":1,"\u0061":2}"#).unwrap(), "");
    }

    #[test]
    fn the_same_value_as_serde_json_when_keys_are_unique() {
        let text = r#"{"z": [1, -2, 3.5, "s", null, true], "a": {"n": 18446744073709551615}}"#;
        assert_eq!(
            strict(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn numbers_out_of_range_are_found_by_pointer() {
        let text = br#"{"ok": 18446744073709551615, "list": [1, {"n~/": 99999999999999999999}]}"#;
        assert!(may_hold_a_long_integer(text));
        assert_eq!(
            find_number(text, integer_out_of_range).unwrap(),
            "/list/1/n~0~1"
        );
        assert!(!may_hold_a_long_integer(br#"{"n": 1234567890123456789}"#));
        assert_eq!(
            find_number(br#"[1e400]"#, float_out_of_range).unwrap(),
            "/0"
        );
        assert_eq!(
            find_number(
                br#"{"s": "99999999999999999999", "f": 1.5e300}"#,
                integer_out_of_range
            ),
            None
        );
        assert_eq!(
            find_number(b"-99999999999999999999", integer_out_of_range).unwrap(),
            ""
        );
    }
}
