//! The engine: a small pool of read connections, and the one writer thread
//! that commits queued writes in groups (see the module above for why).

use std::sync::{mpsc, Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::*;

/// The most writes one commit takes (bounds the time a batch holds the lock).
const MAX_BATCH: usize = 256;

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// The read connections.
pub(super) struct Readers {
    pub(super) path: PathBuf,
    pub(super) idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn run<T>(
        &self,
        f: impl FnOnce(&Connection) -> StorageResult<T>,
    ) -> StorageResult<T> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
                let conn = open_connection(&self.path, flags).map_err(db_err)?;
                conn.pragma_update(None, "query_only", true)
                    .map_err(db_err)?;
                conn
            }
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// A write waiting for the writer thread.
pub(super) trait PendingWrite: Send {
    /// Runs the write inside the batch's transaction; whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch's commit is known.
    fn answer(self: Box<Self>, commit: Result<(), StorageError>);
    /// What it may change among the records (for the record cache).
    fn touches(&self) -> &Touches;
}

pub(super) struct Write<T, F> {
    pub(super) work: Option<F>,
    pub(super) outcome: Option<StorageResult<T>>,
    pub(super) reply: oneshot::Sender<StorageResult<T>>,
    pub(super) touches: Touches,
}

impl<T, F> PendingWrite for Write<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StorageResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let outcome = match self.work.take() {
            // A panicking write fails alone; the writer thread carries on.
            Some(work) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
                .unwrap_or_else(|_| Err(StorageError::Internal("a write panicked".into()))),
            None => Err(StorageError::Internal("a write ran twice".into())),
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn touches(&self) -> &Touches {
        &self.touches
    }

    fn answer(self: Box<Self>, commit: Result<(), StorageError>) {
        let answer = match (self.outcome, commit) {
            // The write's own failure says more than the commit's.
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(StorageError::Internal("a write was not run".into())),
        };
        // The caller may have gone (its request was cancelled): nothing to tell.
        let _ = self.reply.send(answer);
    }
}

/// The writer thread: batch, run, commit once, forget what the batch
/// touched in the record cache, answer.
pub(super) fn write_batches(
    conn: Connection,
    queue: mpsc::Receiver<Box<dyn PendingWrite>>,
    records: &RecordCache,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let commit = run_batch(&conn, &mut batch);
        if commit.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        } else if commit.is_ok() {
            // Writes per commit is the group commit's effect, seen on /metrics.
            metrics::counter!("verdict_sqlite_commits_total").increment(1);
            metrics::counter!("verdict_sqlite_batched_writes_total").increment(batch.len() as u64);
        }
        // Before anyone hears back: an acknowledged write is never followed
        // by a read of what it replaced. (After a rollback too: harmless.)
        for write in &batch {
            records.forget(write.touches());
        }
        for write in batch {
            write.answer(commit.clone());
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn PendingWrite>]) -> Result<(), StorageError> {
    execute(conn, "BEGIN IMMEDIATE", [])?;
    for write in batch.iter_mut() {
        execute(conn, "SAVEPOINT write", [])?;
        if !write.run(conn) {
            execute(conn, "ROLLBACK TO write", [])?;
        }
        execute(conn, "RELEASE write", [])?;
    }
    execute(conn, "COMMIT", [])?;
    Ok(())
}
