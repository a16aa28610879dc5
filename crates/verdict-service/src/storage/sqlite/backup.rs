//! `verdict backup` and `verdict restore` for the SQLite file.
//!
//! A backup is `VACUUM INTO`: SQLite copies the database as one read
//! transaction sees it, so the copy is consistent (every write committed
//! before the backup began, none half-written) while the service keeps
//! writing, and compact. A restore checks the copy (SQLite's integrity check,
//! a schema this build knows), writes it beside the target, flushes it, and
//! renames it into place, removing the old file's WAL and shared memory
//! (a stale WAL applied to another database would corrupt it).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::migrate::MIGRATIONS;

/// The path of a `--data` value that names a SQLite database, or why not.
pub fn sqlite_path(data: &str) -> Result<PathBuf, String> {
    if data.starts_with("postgres://") || data.starts_with("postgresql://") {
        return Err(
            "this is a PostgreSQL database: back it up with `pg_dump -Fc` and restore it with \
             `pg_restore` (see docs/production.md)"
                .into(),
        );
    }
    let path = data
        .strip_prefix("sqlite://")
        .or_else(|| data.strip_prefix("sqlite:"))
        .unwrap_or(data);
    Ok(PathBuf::from(path.split('?').next().unwrap_or_default()))
}

/// Copies the live database at `db` to `to` (which must not exist).
pub fn backup(db: &Path, to: &Path) -> Result<(), String> {
    if !db.exists() {
        return Err(format!("there is no database at {}", db.display()));
    }
    if to.exists() {
        return Err(format!("{} exists; choose a new file", to.display()));
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let target = to
        .to_str()
        .ok_or_else(|| format!("{} is not a UTF-8 path", to.display()))?;
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(|e| format!("the backup failed: {e}"))?;
    Ok(())
}

/// Puts the backup `from` in place of the database at `db`. Refuses while
/// the database looks open (its shared-memory file exists), unless `force`.
pub fn restore(from: &Path, db: &Path, force: bool) -> Result<(), String> {
    let sidecar = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (wal, shm) = (sidecar("-wal"), sidecar("-shm"));
    if shm.exists() && !force {
        return Err(format!(
            "{} seems to be in use ({} exists): stop the service first, or pass --force if it \
             is not running (a service that died leaves that file behind)",
            db.display(),
            shm.display()
        ));
    }
    check_backup(from)?;
    let staged = sidecar(".restoring");
    std::fs::copy(from, &staged).map_err(|e| format!("cannot write {}: {e}", staged.display()))?;
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot flush {}: {e}", staged.display()))?;
    for stale in [&wal, &shm] {
        match std::fs::remove_file(stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", stale.display())),
        }
    }
    std::fs::rename(&staged, db).map_err(|e| format!("cannot move the copy into place: {e}"))?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is flushed.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A backup is restorable if SQLite finds it whole and this build knows its schema.
fn check_backup(from: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open the backup {}: {e}", from.display()))?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("{} is not a SQLite database: {e}", from.display()))?;
    if verdict != "ok" {
        return Err(format!("{} is damaged: {verdict}", from.display()));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let has_records: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'records')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if !has_records || version < 1 {
        return Err(format!("{} is not a verdict database", from.display()));
    }
    if version as usize > MIGRATIONS.len() {
        return Err(format!(
            "{} has schema version {version}; this build knows {}",
            from.display(),
            MIGRATIONS.len()
        ));
    }
    Ok(())
}
