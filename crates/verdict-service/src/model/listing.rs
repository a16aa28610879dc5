//! How a list is ordered and where its next page starts: the `sort`
//! parameter and the cursors of sorted lists.
//!
//! `sort=-created_at,title` orders by `created_at` descending, then `title`;
//! the id always breaks ties (ascending, unless `id` or `-id` is the last key
//! given), so the order is total and every cursor names one position. A list
//! in id order keeps its cursor as it always was, the last id; a sorted list's
//! cursor carries the last row's sort values and the sort it belongs to, as
//! `~` and base64url JSON: opaque to clients, refused with another `sort`.

use base64::Engine;
use serde_json::{json, Value};

use crate::model::records::valid_field_name;
use crate::storage::{RecordRow, SortField, SortKey};

/// At most this many keys in one `sort`.
pub const MAX_SORT_KEYS: usize = 4;

/// The keys of a `sort` value, ending with the id.
pub fn parse_sort(text: &str) -> Result<Vec<SortKey>, String> {
    let mut keys: Vec<SortKey> = Vec::new();
    for item in text.split(',') {
        let (descending, name) = match item.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, item),
        };
        let field = match name {
            "id" => SortField::Id,
            "created_at" => SortField::CreatedAt,
            "updated_at" => SortField::UpdatedAt,
            f if valid_field_name(f) => SortField::Data(f.to_string()),
            "" => return Err("has an empty key: write fields separated by commas, such as `-created_at,title`".into()),
            f => return Err(format!("`{f}` is not a field name (letters, digits, `_`, `-`; `-` in front for descending)")),
        };
        if keys.iter().any(|k| k.field == field) {
            return Err(format!("names `{name}` twice"));
        }
        if keys.last().is_some_and(|k| k.field == SortField::Id) {
            return Err("has a key after `id`, which is unique: nothing can follow it".into());
        }
        keys.push(SortKey { field, descending });
    }
    if keys.len() > MAX_SORT_KEYS {
        return Err(format!("has more than {MAX_SORT_KEYS} keys"));
    }
    if keys.last().is_none_or(|k| k.field != SortField::Id) {
        keys.push(SortKey::BY_ID);
    }
    Ok(keys)
}

/// The `sort` text of `keys`, as a cursor records it.
pub fn sort_text(keys: &[SortKey]) -> String {
    keys.iter()
        .map(|k| {
            let name = match &k.field {
                SortField::Id => "id",
                SortField::CreatedAt => "created_at",
                SortField::UpdatedAt => "updated_at",
                SortField::Data(f) => f.as_str(),
            };
            if k.descending {
                format!("-{name}")
            } else {
                name.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The cursor after `row` in a list sorted by `keys` (not the plain id order).
pub fn sorted_cursor(keys: &[SortKey], row: &RecordRow) -> String {
    let after: Vec<Value> = keys.iter().map(|k| k.value_of(row)).collect();
    let text = json!({"sort": sort_text(keys), "after": after}).to_string();
    format!(
        "{SORTED}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    )
}

/// The first character of a sorted list's cursor: never in an id, so that
/// it cannot be taken for a position in id order.
const SORTED: char = '~';

/// The position a sorted list's cursor names, if it is one of this sort's.
pub fn read_sorted_cursor(keys: &[SortKey], cursor: &str) -> Result<Vec<Value>, String> {
    let bad = || "must be a `next_cursor` from an earlier page of this list".to_string();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.strip_prefix(SORTED).ok_or_else(bad)?)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v["sort"].as_str() != Some(sort_text(keys).as_str()) {
        return Err(format!(
            "belongs to a list with another `sort`; this one is sorted by `{}`",
            sort_text(keys)
        ));
    }
    let after = v["after"].as_array().ok_or_else(bad)?;
    let well_typed = after.len() == keys.len()
        && keys.iter().zip(after).all(|(k, v)| match k.field {
            SortField::Id => v.is_string(),
            SortField::CreatedAt | SortField::UpdatedAt => v.is_i64(),
            SortField::Data(_) => true,
        });
    if !well_typed {
        return Err(bad());
    }
    Ok(after.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_end_with_the_id_and_refuse_what_cannot_be_meant() {
        let keys = parse_sort("-created_at,title").unwrap();
        assert_eq!(sort_text(&keys), "-created_at,title,id");
        assert_eq!(sort_text(&parse_sort("-id").unwrap()), "-id");
        for bad in ["", "a,,b", "a,a", "id,a", "a$b", "a,b,c,d,e"] {
            assert!(parse_sort(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cursor_round_trips_and_belongs_to_its_sort() {
        let keys = parse_sort("-n").unwrap();
        let row = RecordRow {
            id: "r1".into(),
            data: json!({"n": 3}).as_object().unwrap().clone(),
            version: 1,
            created_at: 5,
            updated_at: 6,
        };
        let cursor = sorted_cursor(&keys, &row);
        assert_eq!(
            read_sorted_cursor(&keys, &cursor).unwrap(),
            vec![json!(3), json!("r1")]
        );
        assert!(read_sorted_cursor(&parse_sort("n").unwrap(), &cursor).is_err());
        assert!(read_sorted_cursor(&keys, "r1").is_err());
    }
}
