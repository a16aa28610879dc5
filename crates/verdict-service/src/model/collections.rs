//! Collections: what a name may be.

/// What a collection name may be.
pub const NAME_RULE: &str =
    "must be 1 to 64 characters: lower-case letters, digits, `_` or `-`, starting with a letter";

/// Whether `name` is a valid collection name.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
