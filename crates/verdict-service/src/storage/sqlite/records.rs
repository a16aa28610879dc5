//! Records with their unique values, and idempotent answers.

use super::*;

/// The `(field, canonical value)` pairs `data` holds in `unique` fields.
pub(super) fn unique_pairs(unique: &[String], data: &Map<String, Value>) -> Vec<(String, String)> {
    unique
        .iter()
        .filter_map(|field| unique_value(data, field).map(|v| (field.clone(), v)))
        .collect()
}

/// Inserts a record's unique values; a taken value is a 409 naming the field.
pub(super) fn insert_unique_values(
    conn: &Connection,
    collection_id: i64,
    record_id: &str,
    pairs: &[(String, String)],
) -> StorageResult<()> {
    for (field, value) in pairs {
        insert(
            conn,
            "INSERT INTO unique_values (collection_id, field, value, record_id) VALUES (?1, ?2, ?3, ?4)",
            params![collection_id, field, value, record_id],
            || Conflict::Unique {
                field: field.clone(),
            },
        )?;
    }
    Ok(())
}

/// The compare-and-swap on a collection that every record write makes, in
/// its own transaction: the write stands only if the collection is still
/// the version its checks (schema, unique fields) were made against.
pub(super) fn check_collection(conn: &Connection, id: i64, version: i64) -> StorageResult<()> {
    let now = query_opt(
        conn,
        "SELECT version FROM collections WHERE id = ?1",
        [id],
        |r| col::<i64>(r, "version"),
    )?;
    match now {
        None => Err(StorageError::CollectionGone),
        Some(v) if v != version => Err(StorageError::CollectionChanged),
        Some(_) => Ok(()),
    }
}

/// Inserts a record and its unique values.
pub(super) fn insert_record(
    conn: &Connection,
    collection_id: i64,
    r: &RecordRow,
    unique: &[String],
) -> StorageResult<()> {
    insert(
        conn,
        "INSERT INTO records (collection_id, id, data, version, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![collection_id, r.id, json_text(&r.data), r.version, r.created_at, r.updated_at],
        || Conflict::RecordExists,
    )?;
    insert_unique_values(conn, collection_id, &r.id, &unique_pairs(unique, &r.data))
}

#[async_trait]
impl RecordStore for SqliteStorage {
    async fn create_record(
        &self,
        c: &CollectionRow,
        r: &RecordRow,
        idempotent: Option<&IdempotentAnswer>,
    ) -> StorageResult<()> {
        let (collection_id, version, unique) = (c.id, c.version, c.unique.clone());
        let r = r.clone();
        let idempotent = idempotent.cloned();
        let touches = Touches::Records(vec![(collection_id, r.id.clone())]);
        self.write_touching(touches, move |conn| {
            check_collection(conn, collection_id, version)?;
            if let Some(i) = &idempotent {
                let stored = execute(
                    conn,
                    "INSERT INTO idempotency (token_id, key, fingerprint, status, headers, body, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (token_id, key) DO NOTHING",
                    params![
                        i.token_id,
                        i.key,
                        i.response.fingerprint,
                        i.response.status as i64,
                        json_text(&i.response.headers),
                        i.response.body,
                        i.at
                    ],
                )?;
                if stored == 0 {
                    return Err(StorageError::Conflict(Conflict::IdempotencyKeyTaken));
                }
            }
            insert_record(conn, collection_id, &r, &unique)
        })
        .await
    }

    async fn get_record(&self, collection_id: i64, id: &str) -> StorageResult<Option<RecordRow>> {
        self.records.get_or_read(collection_id, id, || {
            self.read(|conn| {
                query_opt(
                    conn,
                    "SELECT * FROM records WHERE collection_id = ?1 AND id = ?2",
                    params![collection_id, id],
                    record_from_row,
                )
            })
        })
    }

    async fn update_record(
        &self,
        c: &CollectionRow,
        r: &RecordRow,
        expected_version: i64,
    ) -> StorageResult<()> {
        let (collection_id, collection_version) = (c.id, c.version);
        let pairs = unique_pairs(&c.unique, &r.data);
        let (id, data, version, updated_at) =
            (r.id.clone(), json_text(&r.data), r.version, r.updated_at);
        let touches = Touches::Records(vec![(collection_id, id.clone())]);
        self.write_touching(touches, move |conn| {
            check_collection(conn, collection_id, collection_version)?;
            let changed = execute(
                conn,
                "UPDATE records SET data = ?1, version = ?2, updated_at = ?3 WHERE collection_id = ?4 AND id = ?5 AND version = ?6",
                params![data, version, updated_at, collection_id, id, expected_version],
            )?;
            if changed == 0 {
                return Err(StorageError::VersionMismatch);
            }
            execute(
                conn,
                "DELETE FROM unique_values WHERE collection_id = ?1 AND record_id = ?2",
                params![collection_id, id],
            )?;
            insert_unique_values(conn, collection_id, &id, &pairs)
        })
        .await
    }

    async fn delete_record(
        &self,
        collection_id: i64,
        id: &str,
        expected_version: i64,
    ) -> StorageResult<()> {
        let id = id.to_owned();
        let touches = Touches::Records(vec![(collection_id, id.clone())]);
        self.write_touching(touches, move |conn| {
            // Its unique values go by the foreign key's cascade.
            let changed = execute(
                conn,
                "DELETE FROM records WHERE collection_id = ?1 AND id = ?2 AND version = ?3",
                params![collection_id, id, expected_version],
            )?;
            if changed == 0 {
                return Err(StorageError::VersionMismatch);
            }
            Ok(())
        })
        .await
    }

    async fn list_records(
        &self,
        collection_id: i64,
        list: &ListRequest<'_>,
    ) -> StorageResult<Page> {
        // Only placeholders are added to the text; field names and values are bound.
        let mut sql = String::from("SELECT * FROM records WHERE collection_id = ?");
        let mut args = vec![SqlValue::Integer(collection_id)];
        filter_sql(list.filters, &mut sql, &mut args);
        if let Some(after) = list.after {
            let condition = keyset::after(&mut Binds(&mut args), list.sort, after);
            sql.push_str(&format!(" AND {condition}"));
        }
        let order = keyset::order_by(&mut Binds(&mut args), list.sort);
        // The limit is written into the text, not bound: SQLite plans for a
        // bound LIMIT's value and so re-prepares such a statement on every
        // run (a seventh of a page read's time, measured). It is a number
        // this function formats, so nothing from the client enters the SQL.
        sql.push_str(&format!(" ORDER BY {order} LIMIT {}", list.limit));
        let max_bytes = list.max_bytes;
        let run = move |conn: &Connection| {
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let mut rows = stmt.query(params_from_iter(args)).map_err(db_err)?;
            let mut page = Page::default();
            let mut bytes = 0;
            while let Some(row) = rows.next().map_err(db_err)? {
                if bytes >= max_bytes {
                    // Rows are read one at a time: past the budget, none more.
                    page.cut_short = true;
                    break;
                }
                let record = record_from_row(row)?;
                bytes += record_size(&record);
                page.rows.push(record);
            }
            Ok(page)
        };
        if list.is_plain() {
            // Walks the primary key: at most `limit` rows are read.
            self.read(run)
        } else {
            // A filter or an order may read the whole collection to find a page.
            self.scan(run).await
        }
    }

    async fn count_records(&self, collection_id: i64, filters: &[Filter]) -> StorageResult<u64> {
        let mut sql = String::from("SELECT COUNT(*) FROM records WHERE collection_id = ?");
        let mut args = vec![SqlValue::Integer(collection_id)];
        filter_sql(filters, &mut sql, &mut args);
        self.scan(move |conn: &Connection| {
            let n: i64 = conn
                .prepare_cached(&sql)
                .map_err(db_err)?
                .query_row(params_from_iter(args), |r| r.get(0))
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }
}

/// Appends the filters' conditions to `sql`, binding their fields and values.
fn filter_sql(filters: &[Filter], sql: &mut String, args: &mut Vec<SqlValue>) {
    for f in filters {
        sql.push_str(" AND (json_extract(data, ?) = ? OR json_extract(data, ?) = ?)");
        let path = data_path(&f.field);
        // The value as text, and as the JSON scalar it spells (number, bool).
        let typed = match f.value.as_str() {
            "true" => SqlValue::Real(1.0),
            "false" => SqlValue::Real(0.0),
            v => v.parse::<f64>().map_or(SqlValue::Null, SqlValue::Real),
        };
        args.extend([
            SqlValue::Text(path.clone()),
            SqlValue::Text(f.value.clone()),
            SqlValue::Text(path),
            typed,
        ]);
    }
}

/// The JSON path of a top-level field.
fn data_path(field: &str) -> String {
    format!("$.\"{field}\"")
}

/// SQLite's keyset SQL: `?` placeholders, bound in the order written.
struct Binds<'a>(&'a mut Vec<SqlValue>);

impl keyset::Placeholders for Binds<'_> {
    fn key(&mut self, field: &SortField) -> String {
        match field {
            SortField::Id => "id".into(),
            SortField::CreatedAt => "created_at".into(),
            SortField::UpdatedAt => "updated_at".into(),
            SortField::Data(f) => {
                self.0.push(SqlValue::Text(data_path(f)));
                "json_extract(data, ?)".into()
            }
        }
    }

    /// The value as `json_extract` gives it (true is 1, an object its JSON text).
    fn value(&mut self, _field: &SortField, v: &Value) -> String {
        self.0.push(match v {
            Value::Null => SqlValue::Null,
            Value::Bool(b) => SqlValue::Integer(*b as i64),
            Value::Number(n) => match n.as_i64() {
                Some(i) => SqlValue::Integer(i),
                None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => SqlValue::Text(s.clone()),
            other => SqlValue::Text(other.to_string()),
        });
        "?".into()
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStorage {
    async fn get_idempotent(
        &self,
        token_id: &str,
        key: &str,
    ) -> StorageResult<Option<StoredResponse>> {
        self.read(|conn| {
            query_opt(
                conn,
                "SELECT * FROM idempotency WHERE token_id = ?1 AND key = ?2",
                [token_id, key],
                |row| {
                    let headers: String = col(row, "headers")?;
                    let status: i64 = col(row, "status")?;
                    Ok(StoredResponse {
                        fingerprint: col(row, "fingerprint")?,
                        status: status as u16,
                        headers: parse_json(&headers)?,
                        body: col(row, "body")?,
                    })
                },
            )
        })
    }

    async fn purge_idempotent(&self, before: i64) -> StorageResult<u64> {
        self.write_touching(Touches::NoRecord, move |conn| {
            execute(
                conn,
                "DELETE FROM idempotency WHERE created_at < ?1",
                [before],
            )
            .map(|n| n as u64)
        })
        .await
    }
}
