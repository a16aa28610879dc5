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

use serde_json::Value;

use super::{SortField, SortKey};

/// How an engine writes a sort key and a cursor value as SQL, binding what
/// it needs (in the order the text is written: SQLite's `?` are positional).
pub trait Placeholders {
    /// The expression of a key (a missing field or JSON `null` reads as
    /// SQL `NULL` in both engines).
    fn key(&mut self, field: &SortField) -> String;
    /// A placeholder for the cursor's value `v` of `field`.
    fn value(&mut self, field: &SortField, v: &Value) -> String;
}

/// `ORDER BY`'s list for `sort`, `NULLS FIRST`/`LAST` written out for data
/// fields (the columns are never `NULL`).
pub fn order_by(p: &mut impl Placeholders, sort: &[SortKey]) -> String {
    sort.iter()
        .map(|k| {
            let expr = p.key(&k.field);
            match (&k.field, k.descending) {
                (SortField::Data(_), false) => format!("{expr} ASC NULLS FIRST"),
                (SortField::Data(_), true) => format!("{expr} DESC NULLS LAST"),
                (_, false) => format!("{expr} ASC"),
                (_, true) => format!("{expr} DESC"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The condition "strictly after the position `after` in `sort`'s order":
/// for some key, the keys before it equal and it past (see [`past`]).
pub fn after(p: &mut impl Placeholders, sort: &[SortKey], after: &[Value]) -> String {
    let mut branches = Vec::new();
    for (i, key) in sort.iter().enumerate() {
        let mut terms = Vec::new();
        for (k, v) in sort[..i].iter().zip(after) {
            let expr = p.key(&k.field);
            if v.is_null() {
                terms.push(format!("{expr} IS NULL"));
            } else {
                let value = p.value(&k.field, v);
                terms.push(format!("{expr} = {value}"));
            }
        }
        let v = after.get(i).unwrap_or(&Value::Null);
        match past(v.is_null(), key.descending) {
            Past::NotNull => {
                let expr = p.key(&key.field);
                terms.push(format!("{expr} IS NOT NULL"));
            }
            Past::Nothing => terms.push("1 = 0".into()),
            Past::Greater => {
                let expr = p.key(&key.field);
                let value = p.value(&key.field, v);
                terms.push(format!("{expr} > {value}"));
            }
            Past::SmallerOrNull => {
                let expr = p.key(&key.field);
                let value = p.value(&key.field, v);
                let again = p.key(&key.field);
                terms.push(format!("({expr} < {value} OR {again} IS NULL)"));
            }
        }
        branches.push(format!("({})", terms.join(" AND ")));
    }
    format!("({})", branches.join(" OR "))
}
