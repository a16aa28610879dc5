//! Tokens.

use super::*;

#[async_trait]
impl TokenStore for PgStorage {
    async fn insert_token(&self, t: &TokenRow) -> StorageResult<()> {
        self.write_token(
            "INSERT INTO tokens (id, secret_hash, scopes, collections, rate_requests, rate_per_seconds, write_quota, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            t,
        )
        .await
    }

    async fn upsert_token(&self, t: &TokenRow) -> StorageResult<()> {
        self.write_token(
            "INSERT INTO tokens (id, secret_hash, scopes, collections, rate_requests, rate_per_seconds, write_quota, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes,
               collections = excluded.collections, revoked_at = NULL",
            t,
        )
        .await
    }

    async fn get_token(&self, id: &str) -> StorageResult<Option<TokenRow>> {
        fetch_opt(
            self.pool()?,
            sqlx::query("SELECT * FROM tokens WHERE id = $1").bind(id),
            token_from_row,
        )
        .await
    }

    async fn list_tokens(&self) -> StorageResult<Vec<TokenRow>> {
        fetch_all(
            self.pool()?,
            sqlx::query("SELECT * FROM tokens ORDER BY created_at, id"),
            token_from_row,
        )
        .await
    }

    async fn revoke_token(&self, id: &str, at: i64) -> StorageResult<()> {
        let r = execute(
            self.pool()?,
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id),
        )
        .await?;
        if r == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }
}
