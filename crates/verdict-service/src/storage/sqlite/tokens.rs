//! Tokens.

use super::*;

const INSERT_TOKEN: &str = "INSERT INTO tokens (id, secret_hash, scopes, collections, rate_requests, rate_per_seconds, write_quota, created_at, revoked_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

impl SqliteStorage {
    /// Writes a token with `sql`, whose nine placeholders take its columns in order.
    async fn write_token(&self, sql: &'static str, t: &TokenRow) -> StorageResult<()> {
        let t = t.clone();
        self.write_touching(Touches::NoRecord, move |conn| {
            execute(
                conn,
                sql,
                params![
                    t.id,
                    t.secret_hash,
                    json_text(&t.scopes),
                    t.collections.as_ref().map(json_text),
                    t.rate_limit.map(|r| r.0 as i64),
                    t.rate_limit.map(|r| r.1 as i64),
                    t.write_quota.map(|q| q as i64),
                    t.created_at,
                    t.revoked_at,
                ],
            )
            .map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl TokenStore for SqliteStorage {
    async fn insert_token(&self, t: &TokenRow) -> StorageResult<()> {
        self.write_token(INSERT_TOKEN, t).await
    }

    async fn upsert_token(&self, t: &TokenRow) -> StorageResult<()> {
        const UPSERT: &str = "INSERT INTO tokens (id, secret_hash, scopes, collections, rate_requests, rate_per_seconds, write_quota, created_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes,
               collections = excluded.collections, revoked_at = NULL";
        self.write_token(UPSERT, t).await
    }

    async fn get_token(&self, id: &str) -> StorageResult<Option<TokenRow>> {
        self.read(|conn| {
            query_opt(
                conn,
                "SELECT * FROM tokens WHERE id = ?1",
                [id],
                token_from_row,
            )
        })
    }

    async fn list_tokens(&self) -> StorageResult<Vec<TokenRow>> {
        self.scan(|conn| {
            query_all(
                conn,
                "SELECT * FROM tokens ORDER BY created_at, id",
                [],
                token_from_row,
            )
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at: i64) -> StorageResult<()> {
        let id = id.to_owned();
        self.write_touching(Touches::NoRecord, move |conn| {
            let changed = execute(
                conn,
                "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![at, id],
            )?;
            if changed == 0 {
                return Err(StorageError::NotFound);
            }
            Ok(())
        })
        .await
    }
}
