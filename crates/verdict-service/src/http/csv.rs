//! A page of records as CSV (`Accept: text/csv`): `id,created_at,updated_at`,
//! then every data field in name order; strings as they are, other values as
//! JSON, absent or `null` fields empty.
//!
//! Cells are neutralized against formula injection, as OWASP recommends: a
//! cell (a value or a field name) that starts with `=`, `+`, `-`, `@`, a tab
//! or a carriage return would be run as a formula by a spreadsheet that opens
//! the file, so it gets a leading `'`, which spreadsheets show as text.
//! Numbers are left as they are: a cell that is only a number (`-5`) is not
//! a formula.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use verdict::ApiError;

use crate::model::time::rfc3339;
use crate::storage::RecordRow;

/// The characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `text` safe to open in a spreadsheet.
pub fn neutralize(text: &str) -> String {
    if text.starts_with(FORMULA_STARTS) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => neutralize(s),
        Some(v) => neutralize(&v.to_string()),
    }
}

/// The CSV response of a page.
pub fn page(rows: &[RecordRow]) -> Result<Response, ApiError> {
    let mut fields: Vec<&String> = rows.iter().flat_map(|r| r.data.keys()).collect();
    fields.sort();
    fields.dedup();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head = vec!["id".to_string(), "created_at".into(), "updated_at".into()];
    head.extend(fields.iter().map(|f| neutralize(f)));
    w.write_record(&head).map_err(ApiError::internal)?;
    for r in rows {
        let mut line = vec![
            neutralize(&r.id),
            rfc3339(r.created_at),
            rfc3339(r.updated_at),
        ];
        line.extend(fields.iter().map(|f| cell(r.data.get(*f))));
        w.write_record(&line).map_err(ApiError::internal)?;
    }
    let bytes = w.into_inner().map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formulas_are_neutralized_and_numbers_kept() {
        assert_eq!(neutralize("=1+1"), "'=1+1");
        assert_eq!(neutralize("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralize("\tx"), "'\tx");
        assert_eq!(neutralize("plain"), "plain");
        assert_eq!(cell(Some(&json!(-5))), "-5");
        assert_eq!(cell(Some(&json!("-5+cmd"))), "'-5+cmd");
        assert_eq!(cell(Some(&json!(["=x"]))), "[\"=x\"]");
        assert_eq!(cell(None), "");
    }
}
