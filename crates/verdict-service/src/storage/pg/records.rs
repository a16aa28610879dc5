//! Records with their unique values, and idempotent answers.

use super::*;

/// Inserts the unique values of `record`; a taken value is a 409 naming the field.
pub(super) async fn insert_unique_values(
    tx: &mut sqlx::PgConnection,
    collection_id: i64,
    unique: &[String],
    record: &RecordRow,
) -> StorageResult<()> {
    for field in unique {
        let Some(value) = unique_value(&record.data, field) else {
            continue;
        };
        let r = sqlx::query(
            "INSERT INTO unique_values (collection_id, field, value, record_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(collection_id)
        .bind(field)
        .bind(value)
        .bind(&record.id)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StorageError::Conflict(Conflict::Unique {
                    field: field.clone(),
                }))
            }
            Err(e) => return Err(db_err(e)),
        }
    }
    Ok(())
}

/// Inserts a record and its unique values.
pub(super) async fn insert_record(
    tx: &mut sqlx::PgConnection,
    collection_id: i64,
    unique: &[String],
    r: &RecordRow,
) -> StorageResult<()> {
    let res = sqlx::query(
        "INSERT INTO records (collection_id, id, data, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(collection_id)
    .bind(&r.id)
    .bind(json_text(&r.data))
    .bind(r.version)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(&mut *tx)
    .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StorageError::Conflict(Conflict::RecordExists))
        }
        Err(e) => return Err(db_err(e)),
    }
    insert_unique_values(tx, collection_id, unique, r).await
}

/// The compare-and-swap on a collection that every record write makes, in
/// its own transaction. `FOR SHARE` holds the row until the commit, so a
/// concurrent change or deletion of the collection waits for this write (and
/// this write for it): the check cannot go stale before the commit.
pub(super) async fn check_collection(
    tx: &mut sqlx::PgConnection,
    id: i64,
    version: i64,
) -> StorageResult<()> {
    let row = sqlx::query("SELECT version FROM collections WHERE id = $1 FOR SHARE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
    match row.map(|r| r.get::<i64, _>("version")) {
        None => Err(StorageError::CollectionGone),
        Some(v) if v != version => Err(StorageError::CollectionChanged),
        Some(_) => Ok(()),
    }
}

#[async_trait]
impl RecordStore for PgStorage {
    async fn create_record(
        &self,
        c: &CollectionRow,
        r: &RecordRow,
        idempotent: Option<&IdempotentAnswer>,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        check_collection(&mut tx, c.id, c.version).await?;
        if let Some(i) = idempotent {
            let stored = execute(&mut *tx, sqlx::query(
                "INSERT INTO idempotency (token_id, key, fingerprint, status, headers, body, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (token_id, key) DO NOTHING",
            )
            .bind(&i.token_id)
            .bind(&i.key)
            .bind(&i.response.fingerprint)
            .bind(i.response.status as i64)
            .bind(json_text(&i.response.headers))
            .bind(&i.response.body)
            .bind(i.at)).await?;
            if stored == 0 {
                return Err(StorageError::Conflict(Conflict::IdempotencyKeyTaken));
            }
        }
        insert_record(&mut tx, c.id, &c.unique, r).await?;
        commit(tx).await
    }

    async fn get_record(&self, collection_id: i64, id: &str) -> StorageResult<Option<RecordRow>> {
        fetch_opt(
            self.pool()?,
            sqlx::query("SELECT * FROM records WHERE collection_id = $1 AND id = $2")
                .bind(collection_id)
                .bind(id),
            record_from_row,
        )
        .await
    }

    async fn update_record(
        &self,
        c: &CollectionRow,
        r: &RecordRow,
        expected_version: i64,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        check_collection(&mut tx, c.id, c.version).await?;
        let res = execute(&mut *tx, sqlx::query(
            "UPDATE records SET data = $1, version = $2, updated_at = $3 WHERE collection_id = $4 AND id = $5 AND version = $6",
        )
        .bind(json_text(&r.data))
        .bind(r.version)
        .bind(r.updated_at)
        .bind(c.id)
        .bind(&r.id)
        .bind(expected_version)).await?;
        if res == 0 {
            return Err(StorageError::VersionMismatch);
        }
        execute(
            &mut *tx,
            sqlx::query("DELETE FROM unique_values WHERE collection_id = $1 AND record_id = $2")
                .bind(c.id)
                .bind(&r.id),
        )
        .await?;
        insert_unique_values(&mut tx, c.id, &c.unique, r).await?;
        commit(tx).await
    }

    async fn delete_record(
        &self,
        collection_id: i64,
        id: &str,
        expected_version: i64,
    ) -> StorageResult<()> {
        // Its unique values go by the foreign key's cascade.
        let res = execute(
            self.pool()?,
            sqlx::query(
                "DELETE FROM records WHERE collection_id = $1 AND id = $2 AND version = $3",
            )
            .bind(collection_id)
            .bind(id)
            .bind(expected_version),
        )
        .await?;
        if res == 0 {
            return Err(StorageError::VersionMismatch);
        }
        Ok(())
    }

    async fn list_records(
        &self,
        collection_id: i64,
        list: &ListRequest<'_>,
    ) -> StorageResult<Page> {
        use futures_util::TryStreamExt;
        let mut q = Statement::new(
            "SELECT * FROM records WHERE collection_id = ",
            collection_id,
        );
        q.filters(list.filters);
        if let Some(after) = list.after {
            let condition = keyset::after(&mut q, list.sort, after);
            q.text.push_str(&format!(" AND {condition}"));
        }
        let order = keyset::order_by(&mut q, list.sort);
        let limit = q.bind(Arg::I64(list.limit as i64));
        q.text.push_str(&format!(" ORDER BY {order} LIMIT {limit}"));
        let pool = self.pool()?;
        let (text, args) = (q.text, q.args);
        let mut rows = Statement::bound(&text, args).fetch(pool);
        let mut page = Page::default();
        let mut bytes = 0;
        // Rows are taken one at a time: past the byte budget, none more.
        while let Some(row) = rows.try_next().await.map_err(db_err)? {
            if bytes >= list.max_bytes {
                page.cut_short = true;
                break;
            }
            let record = record_from_row(&row)?;
            bytes += record_size(&record);
            page.rows.push(record);
        }
        Ok(page)
    }

    async fn count_records(&self, collection_id: i64, filters: &[Filter]) -> StorageResult<u64> {
        let mut q = Statement::new(
            "SELECT COUNT(*) FROM records WHERE collection_id = ",
            collection_id,
        );
        q.filters(filters);
        let row = Statement::bound(&q.text, q.args)
            .fetch_one(self.pool()?)
            .await
            .map_err(db_err)?;
        let n: i64 = row.try_get(0).map_err(db_err)?;
        Ok(n as u64)
    }
}

/// A value bound to a `$n` placeholder.
enum Arg {
    I64(i64),
    Text(String),
    OptText(Option<String>),
}

/// A statement built with its placeholders numbered as they are written:
/// only placeholders enter the text; field names and values are bound.
struct Statement {
    text: String,
    args: Vec<Arg>,
}

impl Statement {
    fn new(head: &str, collection_id: i64) -> Self {
        let mut q = Statement {
            text: head.to_string(),
            args: Vec::new(),
        };
        let p = q.bind(Arg::I64(collection_id));
        q.text.push_str(&p);
        q
    }

    /// Binds `arg`, giving its placeholder.
    fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn bound(
        text: &str,
        args: Vec<Arg>,
    ) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let mut q = sqlx::query(AssertSqlSafe(text));
        for a in args {
            q = match a {
                Arg::I64(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::OptText(v) => q.bind(v),
            };
        }
        q
    }

    fn filters(&mut self, filters: &[Filter]) {
        for f in filters {
            // The value as text, and as the JSON scalar it spells (number, bool).
            let typed = match f.value.as_str() {
                "true" | "false" => Some(f.value.clone()),
                // Only what JSON itself calls a number (`.5` or `01` would not cast).
                v => serde_json::from_str::<serde_json::Number>(v)
                    .ok()
                    .map(|n| n.to_string()),
            };
            let field = self.bind(Arg::Text(f.field.clone()));
            let text = self.bind(Arg::Text(f.value.clone()));
            let typed = self.bind(Arg::OptText(typed));
            self.text.push_str(&format!(
                " AND ((data::jsonb ->> {field}) = {text} OR (data::jsonb -> {field}) = {typed}::jsonb)"
            ));
        }
    }
}

/// PostgreSQL's keyset SQL: numbered placeholders (JSON `null` read as SQL
/// `NULL`, as SQLite's `json_extract` reads it).
impl keyset::Placeholders for Statement {
    fn key(&mut self, field: &SortField) -> String {
        match field {
            SortField::Id => "id".into(),
            SortField::CreatedAt => "created_at".into(),
            SortField::UpdatedAt => "updated_at".into(),
            SortField::Data(f) => {
                let p = self.bind(Arg::Text(f.clone()));
                format!("NULLIF(data::jsonb -> {p}, 'null'::jsonb)")
            }
        }
    }

    /// The value typed as its key's column.
    fn value(&mut self, field: &SortField, v: &Value) -> String {
        match field {
            SortField::Id => self.bind(Arg::Text(v.as_str().unwrap_or_default().to_string())),
            SortField::CreatedAt | SortField::UpdatedAt => {
                self.bind(Arg::I64(v.as_i64().unwrap_or_default()))
            }
            SortField::Data(_) => {
                let p = self.bind(Arg::Text(v.to_string()));
                format!("{p}::jsonb")
            }
        }
    }
}

#[async_trait]
impl IdempotencyStore for PgStorage {
    async fn get_idempotent(
        &self,
        token_id: &str,
        key: &str,
    ) -> StorageResult<Option<StoredResponse>> {
        let row = sqlx::query("SELECT * FROM idempotency WHERE token_id = $1 AND key = $2")
            .bind(token_id)
            .bind(key)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let headers: String = col(&row, "headers")?;
        let status: i64 = col(&row, "status")?;
        Ok(Some(StoredResponse {
            fingerprint: col(&row, "fingerprint")?,
            status: status as u16,
            headers: parse_json(&headers)?,
            body: col(&row, "body")?,
        }))
    }

    async fn purge_idempotent(&self, before: i64) -> StorageResult<u64> {
        execute(
            self.pool()?,
            sqlx::query("DELETE FROM idempotency WHERE created_at < $1").bind(before),
        )
        .await
    }
}
