//! The open database, shared by readers and the writer, and its reopening after an I/O error.
//!
//! # Why reopen
//! When a redb write fails for an I/O reason (a full disk, `EFBIG`, an `EIO`), redb refuses
//! every later write transaction with "Previous I/O error occurred. Please close and re-open
//! the database", even once the cause is gone. Without a reopen the region would take no write
//! (not even the deletes that free space) until it was restarted. So when the writer meets that
//! answer it reopens the database in place ([`DbSlot::reopen`]), which is what a restart does:
//! redb recovers its last durable commit and the journal replays the groups acknowledged since
//! (`journal::recover`), so nothing acknowledged is lost and nothing unacknowledged appears (a
//! group whose commit failed had its journal record cut off before it was answered).
//!
//! # How
//! Readers take the current `Arc<Database>` under a read lock only to begin a read transaction.
//! The writer takes the database out of the slot (reads meanwhile fail at once rather than wait
//! on a runtime thread), waits for those clones to go, drops the database, and opens it again;
//! a read transaction still running keeps the file locked, so opening is retried for a while.
//! If the reopen fails (the disk still refuses writes), the slot stays empty: reads and writes
//! fail until a later group tries again (at most once per [`RETRY_EVERY`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use crate::error::MetaError;
use crate::journal::{self, Journal};
use crate::store::{META_CACHE_BYTES, init_tables};

/// How long a reopen waits for readers to let go of the old database.
const READERS_WAIT: Duration = Duration::from_secs(10);
/// Reopen attempts at most this often while they fail.
pub(crate) const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The database of a store: `None` only after a reopen that failed.
pub(crate) struct DbSlot {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
}

/// What a reopen hands back to the writer.
pub(crate) struct Reopened {
    pub journal: Journal,
    pub max_stamp: u64,
    pub replayed: usize,
}

/// Opens the redb file with the store's settings.
pub(crate) fn open_database(path: &Path) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(META_CACHE_BYTES).create(path)
}

impl DbSlot {
    pub(crate) fn new(path: &Path, db: Database) -> Self {
        Self { path: path.to_owned(), db: RwLock::new(Some(Arc::new(db))) }
    }

    /// The open database.
    pub(crate) fn current(&self) -> Result<Arc<Database>, MetaError> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        db.clone().ok_or_else(|| {
            MetaError::Storage(
                "the metadata database is closed after an I/O error; it is reopened on the next write".into(),
            )
        })
    }

    /// Closes and reopens the database and replays the journal (see the module doc).
    #[expect(clippy::disallowed_methods, reason = "runs on the metadata writer thread, never on a runtime thread")]
    pub(crate) fn reopen(&self) -> Result<Reopened, MetaError> {
        // Taken out under the lock, which is not held while the file is reopened: a read in
        // the meantime fails at once ("closed") instead of blocking a runtime thread.
        let taken = self.db.write().unwrap_or_else(PoisonError::into_inner).take();
        let deadline = Instant::now() + READERS_WAIT;
        if let Some(mut old) = taken {
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(shared) if Instant::now() < deadline => {
                        old = shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(shared) => {
                        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(shared);
                        return Err(MetaError::Storage("readers kept the metadata database open; not reopened".into()));
                    }
                }
            }
        }
        let db = loop {
            match open_database(&self.path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let (journal, replayed) = journal::recover(&db, &journal::path_for(&self.path))?;
        let max_stamp = init_tables(&db)?;
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
        Ok(Reopened { journal, max_stamp, replayed })
    }
}
