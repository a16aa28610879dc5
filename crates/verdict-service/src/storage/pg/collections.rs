//! Collections, their aliases, and what a delete takes with it.

use super::records::insert_unique_values;
use super::*;
use crate::storage::sql;

#[async_trait]
impl CollectionStore for PgStorage {
    async fn create_collection(&self, c: &CollectionRow) -> StorageResult<CollectionRow> {
        let mut tx = self.begin().await?;
        // A live alias holds its old name: creating it would shadow the redirect.
        execute(
            &mut *tx,
            sqlx::query("DELETE FROM aliases WHERE old_name = $1 AND until <= $2")
                .bind(&c.name)
                .bind(c.created_at),
        )
        .await?;
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
        commit(tx).await?;
        Ok(created)
    }

    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>> {
        fetch_opt(
            self.pool()?,
            sqlx::query("SELECT * FROM collections WHERE name = $1").bind(name),
            collection_from_row,
        )
        .await
    }

    async fn get_collection_by_id(&self, id: i64) -> StorageResult<Option<CollectionRow>> {
        fetch_opt(
            self.pool()?,
            sqlx::query("SELECT * FROM collections WHERE id = $1").bind(id),
            collection_from_row,
        )
        .await
    }

    async fn list_collections(&self) -> StorageResult<Vec<CollectionRow>> {
        fetch_all(
            self.pool()?,
            sqlx::query("SELECT * FROM collections ORDER BY name"),
            collection_from_row,
        )
        .await
    }

    async fn update_collection(
        &self,
        id: i64,
        expected_version: i64,
        change: &CollectionChange,
    ) -> StorageResult<CollectionRow> {
        let mut tx = self.begin().await?;
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
                execute(&mut *tx, sqlx::query(sql::CLEAR_UNIQUE_VALUES).bind(id)).await?;
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
            let taken = sqlx::query(sql::NAME_TAKEN)
                .bind(new_name)
                .bind(change.updated_at)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if taken.is_some() {
                return Err(StorageError::Conflict(Conflict::CollectionExists));
            }
            execute(
                &mut *tx,
                sqlx::query(sql::ALIAS_OLD_NAME)
                    .bind(&current.name)
                    .bind(id)
                    .bind(until),
            )
            .await?;
            execute(&mut *tx, sqlx::query(sql::FREE_NEW_NAME).bind(new_name)).await?;
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
        commit(tx).await?;
        Ok(current)
    }

    async fn delete_collection(&self, id: i64, force: bool, now: i64) -> StorageResult<()> {
        let mut tx = self.begin().await?;
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
        execute(&mut *tx, sqlx::query(
            "DELETE FROM jobs WHERE collection_id = $1 AND state IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(id)).await?;
        execute(&mut *tx, sqlx::query(
            "UPDATE jobs SET state = 'failed', error = 'the collection was deleted while the job was waiting or running',
               updated_at = $2, lease_owner = NULL, lease_until = NULL
             WHERE collection_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(id)
        .bind(now)).await?;
        execute(&mut *tx, sqlx::query(
            "DELETE FROM job_inputs WHERE job_id IN (SELECT id FROM jobs WHERE collection_id = $1)",
        )
        .bind(id)).await?;
        // Records, their unique values and aliases go by the foreign keys' cascade.
        execute(
            &mut *tx,
            sqlx::query("DELETE FROM collections WHERE id = $1").bind(id),
        )
        .await?;
        commit(tx).await
    }

    async fn resolve_alias(
        &self,
        old_name: &str,
        now: i64,
    ) -> StorageResult<Option<CollectionRow>> {
        fetch_opt(
            self.pool()?,
            sqlx::query(
                "SELECT c.* FROM aliases a JOIN collections c ON c.id = a.collection_id
             WHERE a.old_name = $1 AND a.until > $2",
            )
            .bind(old_name)
            .bind(now),
            collection_from_row,
        )
        .await
    }
}
