//! What an `Idempotency-Key` may be.

/// [`valid_idempotency_key`] as a regular expression, for the OpenAPI
/// document (a test checks the two agree).
pub const KEY_PATTERN: &str = "^[!-~]([ -~]{0,253}[!-~])?$";

/// Whether `key` may be an `Idempotency-Key`: 1 to 255 visible ASCII
/// characters, spaces allowed inside (not at either end, where HTTP would
/// have trimmed them anyway).
pub fn valid_idempotency_key(key: &str) -> bool {
    let visible = |b: &u8| (b'!'..=b'~').contains(b);
    (1..=255).contains(&key.len())
        && key.bytes().all(|b| b == b' ' || visible(&b))
        && key.as_bytes().first().is_some_and(visible)
        && key.as_bytes().last().is_some_and(visible)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes at all: the validator never panics, and it agrees with
        /// the pattern the OpenAPI document publishes.
        #[test]
        fn the_validator_and_the_pattern_agree_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let pattern = regex::Regex::new(KEY_PATTERN).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            prop_assert_eq!(valid_idempotency_key(&text), pattern.is_match(&text));
        }

        #[test]
        fn printable_keys_agree_too(key in "[ -~]{0,300}") {
            let pattern = regex::Regex::new(KEY_PATTERN).unwrap();
            prop_assert_eq!(valid_idempotency_key(&key), pattern.is_match(&key));
        }
    }

    #[test]
    fn examples() {
        assert!(valid_idempotency_key("a"));
        assert!(valid_idempotency_key("order 42"));
        assert!(!valid_idempotency_key(""));
        assert!(!valid_idempotency_key(" a"));
        assert!(!valid_idempotency_key("a\tb"));
        assert!(!valid_idempotency_key(&"k".repeat(256)));
        assert!(valid_idempotency_key(&"k".repeat(255)));
    }
}
