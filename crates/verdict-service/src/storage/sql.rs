//! Statements both backends run word for word, so what a change touches is
//! written once. They use `$n` placeholders: PostgreSQL's own, and SQLite
//! reads `$1` as a named parameter, numbered in order of first use, so
//! positional binding works the same on both.

/// Whether a collection's new name is taken: by a collection, or by another
/// collection's alias still in its period. `$1` name, `$2` now, `$3` the
/// renamed collection's id.
pub const NAME_TAKEN: &str = "SELECT 1 FROM collections WHERE name = $1
     UNION ALL SELECT 1 FROM aliases WHERE old_name = $1 AND until > $2 AND collection_id <> $3";

/// A rename leaves the old name pointing at the collection for the alias
/// period. `$1` old name, `$2` collection id, `$3` until.
pub const ALIAS_OLD_NAME: &str = "INSERT INTO aliases (old_name, collection_id, until) VALUES ($1, $2, $3)
     ON CONFLICT (old_name) DO UPDATE SET collection_id = excluded.collection_id, until = excluded.until";

/// The new name is no one's alias any more. `$1` new name.
pub const FREE_NEW_NAME: &str = "DELETE FROM aliases WHERE old_name = $1";

/// Rebuilding a collection's unique index starts from nothing. `$1` collection id.
pub const CLEAR_UNIQUE_VALUES: &str = "DELETE FROM unique_values WHERE collection_id = $1";
