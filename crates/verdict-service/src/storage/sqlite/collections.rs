//! Collections, their aliases, and what a delete takes with it.

use super::records::{insert_unique_values, unique_pairs};
use super::*;
use crate::storage::sql;

const COLLECTION_BY_ID: &str = "SELECT * FROM collections WHERE id = ?1";

#[async_trait]
impl CollectionStore for SqliteStorage {
    async fn create_collection(&self, c: &CollectionRow) -> StorageResult<CollectionRow> {
        let c = c.clone();
        self.write(move |conn| {
            // A live alias holds its old name: creating it would shadow the redirect.
            execute(
                conn,
                "DELETE FROM aliases WHERE old_name = ?1 AND until <= ?2",
                params![c.name, c.created_at],
            )?;
            let alias = query_opt(
                conn,
                "SELECT 1 FROM aliases WHERE old_name = ?1",
                [&c.name],
                |_| Ok(()),
            )?;
            if alias.is_some() {
                return Err(StorageError::Conflict(Conflict::CollectionExists));
            }
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO collections (name, schema, uniq, version, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 1, ?4, ?5) RETURNING *",
                )
                .map_err(db_err)?;
            let schema = c.schema.as_ref().map(json_text);
            let unique = json_text(&c.unique);
            let mut rows = stmt
                .query(params![c.name, schema, unique, c.created_at, c.updated_at])
                .map_err(db_err)?;
            // SQLite reports the name's clash when the statement first steps.
            match rows.next() {
                Ok(Some(row)) => collection_from_row(row),
                Ok(None) => Err(StorageError::Internal(
                    "INSERT ... RETURNING gave no row".into(),
                )),
                Err(e) if is_unique_violation(&e) => {
                    Err(StorageError::Conflict(Conflict::CollectionExists))
                }
                Err(e) => Err(db_err(e)),
            }
        })
        .await
    }

    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>> {
        self.read(|conn| {
            query_opt(
                conn,
                "SELECT * FROM collections WHERE name = ?1",
                [name],
                collection_from_row,
            )
        })
    }

    async fn get_collection_by_id(&self, id: i64) -> StorageResult<Option<CollectionRow>> {
        self.read(|conn| query_opt(conn, COLLECTION_BY_ID, [id], collection_from_row))
    }

    async fn list_collections(&self) -> StorageResult<Vec<CollectionRow>> {
        self.scan(|conn| {
            query_all(
                conn,
                "SELECT * FROM collections ORDER BY name",
                [],
                collection_from_row,
            )
        })
        .await
    }

    async fn update_collection(
        &self,
        id: i64,
        expected_version: i64,
        change: &CollectionChange,
    ) -> StorageResult<CollectionRow> {
        let change = change.clone();
        self.write(move |conn| {
            let mut current = query_opt(conn, COLLECTION_BY_ID, [id], collection_from_row)?
                .ok_or(StorageError::NotFound)?;
            if current.version != expected_version {
                return Err(StorageError::VersionMismatch);
            }
            if let Some(schema) = &change.schema {
                current.schema = schema.clone();
            }
            if let Some(unique) = &change.unique {
                if unique != &current.unique {
                    // Rebuild the unique index from the records; a duplicate is a 409.
                    execute(conn, sql::CLEAR_UNIQUE_VALUES, [id])?;
                    current.unique = unique.clone();
                    let mut stmt = conn
                        .prepare_cached("SELECT * FROM records WHERE collection_id = ?1")
                        .map_err(db_err)?;
                    let mut rows = stmt.query([id]).map_err(db_err)?;
                    while let Some(row) = rows.next().map_err(db_err)? {
                        let r = record_from_row(row)?;
                        insert_unique_values(conn, id, &r.id, &unique_pairs(&current.unique, &r.data))?;
                    }
                }
            }
            if let Some((new_name, until)) = &change.rename {
                let taken = query_opt(
                    conn,
                    sql::NAME_TAKEN,
                    params![new_name, change.updated_at, id],
                    |_| Ok(()),
                )?;
                if taken.is_some() {
                    return Err(StorageError::Conflict(Conflict::CollectionExists));
                }
                // The old name points here for the alias period; the new one is no alias.
                execute(
                    conn,
                    sql::ALIAS_OLD_NAME,
                    params![current.name, id, until],
                )?;
                execute(conn, sql::FREE_NEW_NAME, [new_name])?;
                current.name = new_name.clone();
            }
            current.updated_at = change.updated_at;
            current.version += 1;
            execute(
                conn,
                "UPDATE collections SET name = ?1, schema = ?2, uniq = ?3, updated_at = ?4, version = ?5 WHERE id = ?6",
                params![
                    current.name,
                    current.schema.as_ref().map(json_text),
                    json_text(&current.unique),
                    current.updated_at,
                    current.version,
                    id
                ],
            )?;
            Ok(current)
        })
        .await
    }

    async fn delete_collection(&self, id: i64, force: bool, now: i64) -> StorageResult<()> {
        self.write(move |conn| {
            let exists = query_opt(conn, "SELECT 1 FROM collections WHERE id = ?1", [id], |_| Ok(()))?;
            if exists.is_none() {
                return Err(StorageError::NotFound);
            }
            let any = query_opt(
                conn,
                "SELECT 1 FROM records WHERE collection_id = ?1 LIMIT 1",
                [id],
                |_| Ok(()),
            )?;
            if any.is_some() && !force {
                return Err(StorageError::Conflict(Conflict::NotEmpty));
            }
            // Finished jobs described data that is gone; running ones stop and say why.
            execute(
                conn,
                "DELETE FROM jobs WHERE collection_id = ?1 AND state IN ('succeeded', 'failed', 'cancelled')",
                [id],
            )?;
            execute(
                conn,
                "UPDATE jobs SET state = 'failed', error = 'the collection was deleted while the job was waiting or running',
                   updated_at = ?2, lease_owner = NULL, lease_until = NULL
                 WHERE collection_id = ?1 AND state IN ('queued', 'running')",
                params![id, now],
            )?;
            execute(
                conn,
                "DELETE FROM job_inputs WHERE job_id IN (SELECT id FROM jobs WHERE collection_id = ?1)",
                [id],
            )?;
            // Records, their unique values and aliases go by the foreign keys' cascade.
            execute(conn, "DELETE FROM collections WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn resolve_alias(
        &self,
        old_name: &str,
        now: i64,
    ) -> StorageResult<Option<CollectionRow>> {
        self.read(|conn| {
            query_opt(
                conn,
                "SELECT c.* FROM aliases a JOIN collections c ON c.id = a.collection_id
                 WHERE a.old_name = ?1 AND a.until > ?2",
                params![old_name, now],
                collection_from_row,
            )
        })
    }
}
