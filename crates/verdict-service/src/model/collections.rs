//! Collections: what a name may be.

/// What a collection name may be.
pub const NAME_RULE: &str =
    "must be 1 to 64 characters: lower-case letters, digits, `_` or `-`, starting with a letter";

/// [`valid_name`] as a regular expression, for the OpenAPI document (a test
/// checks the two agree).
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9_-]{0,63}$";

/// Whether `name` is a valid collection name.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_and_the_validator_agree() {
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        let alphabet = ["a", "z", "A", "0", "_", "-", ".", "é", " "];
        let mut samples: Vec<String> = vec![String::new(), "a".repeat(64), "a".repeat(65)];
        for x in alphabet {
            samples.push(x.to_string());
            for y in alphabet {
                samples.push(format!("{x}{y}"));
                samples.push(format!("a{x}{y}"));
            }
        }
        for s in samples {
            assert_eq!(valid_name(&s), pattern.is_match(&s), "{s:?}");
        }
    }
}
