//! Identifiers for requests and incidents: unique, not secret.
//!
//! Made from the standard library's randomly keyed SipHash over a counter,
//! rather than with the `uuid` crate, so that the core of the library needs
//! no random-number crate: an id must never repeat and should not be
//! guessable in advance, and this gives both (the counter makes a thread's
//! ids distinct, its random keys make them unguessable and distinct from
//! other threads' and processes'). They read as version-4 UUIDs.
//!
//! The counter and keys are the thread's own: a counter shared by every
//! thread was one cache line the workers fought over on every request.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// A new id: 32 hex digits in UUID form (`8-4-4-4-12`), version 4.
pub(crate) fn new_id() -> String {
    String::from_utf8(new_id_bytes().to_vec()).expect("ids are ASCII")
}

/// [`new_id`] as bytes on the stack, for a caller that keeps them its own
/// way (the request id's header value makes one allocation of them).
pub(crate) fn new_id_bytes() -> [u8; 36] {
    thread_local! {
        static KEYS: RandomState = RandomState::new();
        static COUNTER: Cell<u64> = const { Cell::new(0) };
    }
    let n = COUNTER.with(|c| {
        let n = c.get();
        c.set(n.wrapping_add(1));
        n
    });
    let (hi, lo) = KEYS.with(|k| (k.hash_one((n, 0u8)), k.hash_one((n, 1u8))));
    let mut bits = (u128::from(hi) << 64) | u128::from(lo);
    // Version 4, variant 10xx: the shape of a random UUID.
    bits = (bits & !(0xf << 76)) | (0x4 << 76);
    bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let hex = lower_hex(bits);
    let mut out = [b'-'; 36];
    // 8-4-4-4-12, the dashes between.
    for (from, to, len) in [(0, 0, 8), (8, 9, 4), (12, 14, 4), (16, 19, 4), (20, 24, 12)] {
        out[to..to + len].copy_from_slice(&hex[from..from + len]);
    }
    out
}

/// `bits` as 32 lowercase hex digits, most significant first, on the stack
/// (ids and content ETags are made per request; `format!` allocates).
pub(crate) fn lower_hex(bits: u128) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_and_look_like_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert!(id
            .char_indices()
            .all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23)
                && (c == '-' || c.is_ascii_hexdigit())));
    }
}
