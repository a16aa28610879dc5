//! Collections, their aliases, and what a delete takes with it.

use super::records::insert_unique_values;
use super::*;

#[async_trait]
impl CollectionStore for PgStorage {
    async fn create_collection(&self, c: &CollectionRow) -> StorageResult<CollectionRow> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        // A live alias holds its old name: creating it would shadow the redirect.
        sqlx::query("DELETE FROM aliases WHERE old_name = $1 AND until <= $2")
            .bind(&c.name)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let alias = sqlx::query("SELECT 1 FROM aliases WHERE old_name = $1")
            .bind(&c.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if alias.is_some() {
            return Err(StorageError::Conflict(Conflict::CollectionExists));
        }
        let r = sqlx::query(
            "INSERT INTO collections (name, schema, uniq, version, created_at, updated_at)
             VALUES ($1, $2, $3, 1, $4, $5) RETURNING *",
        )
        .bind(&c.name)
        .bind(c.schema.as_ref().map(json_text))
        .bind(json_text(&c.unique))
        .bind(c.created_at)
        .bind(c.updated_at)
        .fetch_one(&mut *tx)
        .await;
        let created = match r {
            Ok(row) => collection_from_row(&row)?,
            Err(e) if is_unique_violation(&e) => {
                return Err(StorageError::Conflict(Conflict::CollectionExists))
            }
            Err(e) => return Err(db_err(e)),
        };
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>> {
        let row = sqlx::query("SELECT * FROM collections WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(collection_from_row).transpose()
    }

    async fn get_collection_by_id(&self, id: i64) -> StorageResult<Option<CollectionRow>> {
        let row = sqlx::query("SELECT * FROM collections WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(collection_from_row).transpose()
    }

    async fn list_collections(&self) -> StorageResult<Vec<CollectionRow>> {
        let rows = sqlx::query("SELECT * FROM collections ORDER BY name")
            .fetch_all(self.pool()?)
            .await
            .map_err(db_err)?;
        rows.iter().map(collection_from_row).collect()
    }

    async fn update_collection(
        &self,
        id: i64,
        expected_version: i64,
        change: &CollectionChange,
    ) -> StorageResult<CollectionRow> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let row = sqlx::query("SELECT * FROM collections WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut current = match row {
            Some(r) => collection_from_row(&r)?,
            None => return Err(StorageError::NotFound),
        };
        if current.version != expected_version {
            return Err(StorageError::VersionMismatch);
        }
        if let Some(schema) = &change.schema {
            current.schema = schema.clone();
        }
        if let Some(unique) = &change.unique {
            if unique != &current.unique {
                // Rebuild the unique index from the records; a duplicate is a 409.
                sqlx::query("DELETE FROM unique_values WHERE collection_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                current.unique = unique.clone();
                let rows = sqlx::query("SELECT * FROM records WHERE collection_id = $1")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                for r in &rows {
                    insert_unique_values(&mut tx, id, &current.unique, &record_from_row(r)?)
                        .await?;
                }
            }
        }
        if let Some((new_name, until)) = &change.rename {
            let taken = sqlx::query(
                "SELECT 1 FROM collections WHERE name = $1
                 UNION ALL SELECT 1 FROM aliases WHERE old_name = $1 AND until > $2 AND collection_id <> $3",
            )
            .bind(new_name)
            .bind(change.updated_at)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if taken.is_some() {
                return Err(StorageError::Conflict(Conflict::CollectionExists));
            }
            sqlx::query(
                "INSERT INTO aliases (old_name, collection_id, until) VALUES ($1, $2, $3)
                 ON CONFLICT (old_name) DO UPDATE SET collection_id = excluded.collection_id, until = excluded.until",
            )
            .bind(&current.name)
            .bind(id)
            .bind(until)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query("DELETE FROM aliases WHERE old_name = $1")
                .bind(new_name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            current.name = new_name.clone();
        }
        current.updated_at = change.updated_at;
        current.version += 1;
        let r = sqlx::query(
            "UPDATE collections SET name = $1, schema = $2, uniq = $3, updated_at = $4, version = $5 WHERE id = $6",
        )
        .bind(&current.name)
        .bind(current.schema.as_ref().map(json_text))
        .bind(json_text(&current.unique))
        .bind(current.updated_at)
        .bind(current.version)
        .bind(id)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StorageError::Conflict(Conflict::CollectionExists))
            }
            Err(e) => return Err(db_err(e)),
        }
        tx.commit().await.map_err(db_err)?;
        Ok(current)
    }

    async fn delete_collection(&self, id: i64, force: bool, now: i64) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let exists = sqlx::query("SELECT 1 FROM collections WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(StorageError::NotFound);
        }
        let any = sqlx::query("SELECT 1 FROM records WHERE collection_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if any.is_some() && !force {
            return Err(StorageError::Conflict(Conflict::NotEmpty));
        }
        // Finished jobs described data that is gone; running ones stop and say why.
        sqlx::query(
            "DELETE FROM jobs WHERE collection_id = $1 AND state IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE jobs SET state = 'failed', error = 'the collection was deleted while the job was waiting or running',
               updated_at = $2, lease_owner = NULL, lease_until = NULL
             WHERE collection_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "DELETE FROM job_inputs WHERE job_id IN (SELECT id FROM jobs WHERE collection_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // Records, their unique values and aliases go by the foreign keys' cascade.
        sqlx::query("DELETE FROM collections WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn resolve_alias(
        &self,
        old_name: &str,
        now: i64,
    ) -> StorageResult<Option<CollectionRow>> {
        let row = sqlx::query(
            "SELECT c.* FROM aliases a JOIN collections c ON c.id = a.collection_id
             WHERE a.old_name = $1 AND a.until > $2",
        )
        .bind(old_name)
        .bind(now)
        .fetch_optional(self.pool()?)
        .await
        .map_err(db_err)?;
        row.as_ref().map(collection_from_row).transpose()
    }
}
