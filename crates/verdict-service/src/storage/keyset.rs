//! Keyset pagination over a sort of several keys: the rule both engines
//! write as SQL.
//!
//! A page starts strictly after the last row of the page before, in the
//! list's order. With keys `k1..kn` (the last always the id, so the order is
//! total) and the last row's values `v1..vn`, a row comes after when, for
//! some `i`, its `k1..k(i-1)` equal `v1..v(i-1)` and its `ki` is past `vi`.
//! "Past" depends on the direction and on `NULL` (a missing field or JSON
//! `null`), which sorts first ascending and last descending in both engines
//! (`NULLS FIRST` / `NULLS LAST` are written out, PostgreSQL's defaults
//! being the other way round).

/// What "past the cursor's value" is for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Past {
    /// Ascending after `NULL`: any value that is not `NULL`.
    NotNull,
    /// Descending after `NULL`: nothing (`NULL`s are last).
    Nothing,
    /// Ascending after a value: a greater value (`NULL`s came first).
    Greater,
    /// Descending after a value: a smaller value, or `NULL`.
    SmallerOrNull,
}

/// The rule for a key, given whether the cursor's value is `NULL`.
pub fn past(after_is_null: bool, descending: bool) -> Past {
    match (after_is_null, descending) {
        (true, false) => Past::NotNull,
        (true, true) => Past::Nothing,
        (false, false) => Past::Greater,
        (false, true) => Past::SmallerOrNull,
    }
}
