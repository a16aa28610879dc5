//! The schema: one script per version, applied in order; `PRAGMA
//! user_version` counts those applied.

use rusqlite::Connection;

use super::*;

/// The schema, one script per version; `PRAGMA user_version` counts those applied.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../../migrations/sqlite/0002_collection_identity.sql"),
    include_str!("../../../migrations/sqlite/0003_retention.sql"),
];

/// Applies the migrations not yet applied, in one transaction.
pub(super) fn migrate(conn: &Connection) -> StorageResult<()> {
    let mut applied: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map_err(db_err)? as usize;
    if applied == 0 {
        // Databases written before the switch from sqlx keep their history in
        // sqlx's table; adopt it instead of re-running the first script.
        let by_sqlx = query_opt(
            conn,
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
            [],
            |r| r.get::<_, Option<i64>>(0).map_err(db_err),
        );
        if let Ok(Some(Some(v))) = by_sqlx {
            applied = v as usize;
        }
    }
    if applied > MIGRATIONS.len() {
        return Err(StorageError::Internal(format!(
            "the database has schema version {applied}; this build knows {}",
            MIGRATIONS.len()
        )));
    }
    let tx = conn.unchecked_transaction().map_err(db_err)?;
    for script in &MIGRATIONS[applied..] {
        tx.execute_batch(script)
            .map_err(|e| StorageError::Internal(format!("migration failed: {e}")))?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
        .map_err(db_err)?;
    tx.commit().map_err(db_err)
}
