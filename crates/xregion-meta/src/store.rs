//! [`MetaStore`]: the handle. Reads run on the caller's thread in redb read transactions;
//! writes are queued to the single writer thread (see [`crate::writer`]).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Sender, channel, sync_channel};
use std::thread::JoinHandle;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tokio::sync::oneshot;
use xregion_types::{BucketRecord, InlineRef, VersionClock, VersionId, VersionRecord};

use crate::codec::decode;
use crate::error::MetaError;
use crate::fresh::{FreshHub, FreshTasks};
use crate::listing::{self, ListObjectsPage, ListObjectsQuery, ListVersionsPage, ListVersionsQuery};
use crate::multipart::{self, ListUploadsPage, ListUploadsQuery, PartRecord, UploadRecord};
use crate::ops::{WriteOp, WriteOutcome};
use crate::queue::{FailedTask, OutboxEntry};
use crate::schema::{
    BUCKET_IDS, BUCKETS, FAILURES, HEADS, INLINE_DATA, META_MAX_STAMP, META_SCHEMA, NULLS, OUTBOX, OUTBOX_INDEX, PARTS,
    SCHEMA_VERSION, SCHEMA_VERSION_1, UPLOAD_INDEX, UPLOADS, VERSIONS,
};
use crate::slot::{DbSlot, open_database};
use crate::writer::{self, Faults, Ops, Reply, Request, Stats, WTables};
use crate::{buckets, objects, queue};

/// Memory redb may use for its page cache and write buffer. redb's default (1 GiB) is sized
/// for a database that is mostly read; ours also holds the bytes of small objects
/// (`inline_data`), which are written once and rarely read again, and would otherwise fill
/// the default cache and keep a busy server's memory growing towards it. 32 MiB still holds
/// the hot part of the version tables many times over and covers the largest group commit
/// (256 ops of at most 64 KiB inline data each = 16 MiB). Measured with xregion-bench --quick:
/// 64 MiB → 32 MiB took server RSS max from 221 MiB to 143 MiB with the same 4 KiB PUT rate.
pub(crate) const META_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// The metadata store. Cheap to clone; all clones share one database and one writer thread.
/// The database file is closed when the last clone is dropped.
#[derive(Clone)]
pub struct MetaStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<DbSlot>,
    stats: Arc<Stats>,
    /// The handoff of committed replication tasks (`fresh.rs`).
    fresh: Arc<FreshHub>,
    /// Faults tests may arm in the writer.
    #[cfg_attr(not(any(test, feature = "fault-injection")), allow(dead_code))]
    faults: Arc<Faults>,
    /// Queue to the writer thread; taken on drop so the thread ends.
    requests: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!("metadata writer thread panicked");
        }
    }
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore").finish_non_exhaustive()
    }
}

impl MetaStore {
    /// Opens (or creates) the redb file at `path`, creates missing tables, seeds the version
    /// clock from the stored maximum stamp and spawns the writer thread.
    pub fn open(path: &Path) -> Result<MetaStore, MetaError> {
        Self::open_tagged(path, 0)
    }

    /// [`MetaStore::open`] with the region's stamp tag: every version id this store generates
    /// carries a stamp equal to `stamp_tag` modulo [`xregion_types::STAMP_TAGS`], so that no
    /// other region of the deployment generates the same one (see [`VersionClock`]).
    pub fn open_tagged(path: &Path, stamp_tag: u8) -> Result<MetaStore, MetaError> {
        let db = open_database(path)?;
        // Replay first: the journal holds acknowledged groups redb may not have durably.
        let (journal, _) = crate::journal::recover(&db, &crate::journal::path_for(path))?;
        let max_stamp = init_tables(&db)?;
        let db = Arc::new(DbSlot::new(path, db));
        let clock = VersionClock::with_tag(stamp_tag);
        clock.observe(max_stamp);
        let (tx, rx) = channel();
        let writer_db = Arc::clone(&db);
        let stats = Arc::new(Stats::default());
        let writer_stats = Arc::clone(&stats);
        let fresh = Arc::new(FreshHub::default());
        let writer_fresh = Arc::clone(&fresh);
        let faults = Arc::new(Faults::default());
        let writer_faults = Arc::clone(&faults);
        let writer = std::thread::Builder::new()
            .name("xregion-meta-writer".into())
            .spawn(move || {
                writer::run(writer_db, journal, clock, max_stamp, rx, writer_stats, writer_fresh, writer_faults)
            })
            .map_err(|e| MetaError::Storage(format!("cannot spawn metadata writer: {e}")))?;
        tracing::debug!(path = %path.display(), max_stamp, "metadata store open");
        Ok(MetaStore { inner: Arc::new(Inner { db, stats, fresh, faults, requests: Some(tx), writer: Some(writer) }) })
    }

    /// The database, for tests that look at stored rows directly.
    #[cfg(test)]
    pub(crate) fn db(&self) -> Arc<Database> {
        self.inner.db.current().expect("database open")
    }

    fn read(&self) -> Result<ReadTransaction, MetaError> {
        Ok(self.inner.db.current()?.begin_read()?)
    }

    /// The bucket named `name`.
    pub fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, MetaError> {
        let txn = self.read()?;
        buckets::get(&txn.open_table(BUCKETS)?, name)
    }

    /// All buckets, sorted by name.
    pub fn list_buckets(&self) -> Result<Vec<BucketRecord>, MetaError> {
        let txn = self.read()?;
        let table = txn.open_table(BUCKETS)?;
        let mut out = Vec::new();
        for item in table.range::<&str>(..)? {
            let (_, v) = item?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// A version of `key`. `version: None` = the current version (may be a delete marker);
    /// `Some(VersionId::Null)` = the null version. A malformed id is `Err(InvalidArgument)`.
    pub fn get_version(
        &self,
        bucket_id: u64,
        key: &str,
        version: Option<&VersionId>,
    ) -> Result<Option<VersionRecord>, MetaError> {
        if let Some(id) = version {
            return Ok(self.get_versions([(bucket_id, key, id)])?.pop().flatten());
        }
        let txn = self.read()?;
        let Some(mut record) = objects::newest_version(&txn.open_table(VERSIONS)?, bucket_id, key)? else {
            return Ok(None);
        };
        queue::settle(&txn.open_table(OUTBOX_INDEX)?, bucket_id, key, &mut record)?;
        Ok(Some(record))
    }

    /// Several specific versions, `(bucket id, key, version id)`, each as [`Self::get_version`]
    /// would return it, read from one snapshot. For callers that read many versions at once
    /// (the replication worker): opening a read transaction and its tables cost more than the
    /// lookup itself, and this opens them once.
    pub fn get_versions<'a>(
        &self,
        wanted: impl IntoIterator<Item = (u64, &'a str, &'a VersionId)>,
    ) -> Result<Vec<Option<VersionRecord>>, MetaError> {
        let txn = self.read()?;
        let (versions, nulls, outbox_index) =
            (txn.open_table(VERSIONS)?, txn.open_table(NULLS)?, txn.open_table(OUTBOX_INDEX)?);
        wanted
            .into_iter()
            .map(|(bucket_id, key, id)| {
                let Some(mut record) = objects::find_version(&versions, &nulls, bucket_id, key, id)? else {
                    return Ok(None);
                };
                queue::settle(&outbox_index, bucket_id, key, &mut record)?;
                Ok(Some(record))
            })
            .collect()
    }

    /// One page of `ListObjects`: current versions that are not delete markers (VER-19).
    pub fn list_objects(&self, bucket_id: u64, q: &ListObjectsQuery) -> Result<ListObjectsPage, MetaError> {
        let txn = self.read()?;
        let mut page = listing::list_objects(&txn.open_table(HEADS)?, bucket_id, q)?;
        let outbox_index = txn.open_table(OUTBOX_INDEX)?;
        for (key, record) in &mut page.objects {
            queue::settle(&outbox_index, bucket_id, key, record)?;
        }
        Ok(page)
    }

    /// One page of `ListObjectVersions` (VER-20).
    pub fn list_versions(&self, bucket_id: u64, q: &ListVersionsQuery) -> Result<ListVersionsPage, MetaError> {
        let txn = self.read()?;
        let mut page = listing::list_versions(&txn.open_table(VERSIONS)?, &txn.open_table(NULLS)?, bucket_id, q)?;
        let outbox_index = txn.open_table(OUTBOX_INDEX)?;
        for entry in &mut page.entries {
            queue::settle(&outbox_index, bucket_id, &entry.key, &mut entry.record)?;
        }
        Ok(page)
    }

    /// The multipart upload `upload_id`.
    pub fn get_upload(&self, upload_id: &str) -> Result<Option<UploadRecord>, MetaError> {
        let txn = self.read()?;
        multipart::get(&txn.open_table(UPLOADS)?, upload_id)
    }

    /// Parts of an upload with numbers above `part_number_marker`, at most `max_parts`, and
    /// whether more follow. `Err(NoSuchUpload)` if the upload does not exist.
    pub fn list_parts(
        &self,
        upload_id: &str,
        part_number_marker: u32,
        max_parts: usize,
    ) -> Result<(Vec<PartRecord>, bool), MetaError> {
        let txn = self.read()?;
        multipart::list_parts(
            &txn.open_table(UPLOADS)?,
            &txn.open_table(PARTS)?,
            upload_id,
            part_number_marker,
            max_parts,
        )
    }

    /// One page of `ListMultipartUploads`.
    pub fn list_uploads(&self, bucket_id: u64, q: &ListUploadsQuery) -> Result<ListUploadsPage, MetaError> {
        let txn = self.read()?;
        multipart::list_uploads(&txn.open_table(UPLOAD_INDEX)?, &txn.open_table(UPLOADS)?, bucket_id, q)
    }

    /// From now on, every replication task committed is also handed over in memory, in
    /// sequence order, with its object version, through a channel of `capacity` tasks (see
    /// `fresh.rs` for the contract: the outbox stays the truth; a task that does not fit is
    /// dropped and flagged). One subscriber at a time: a new one replaces the old.
    pub fn subscribe_fresh(&self, capacity: usize) -> FreshTasks {
        self.inner.fresh.subscribe(capacity)
    }

    /// Number of tasks in the replication outbox.
    pub fn outbox_len(&self) -> Result<u64, MetaError> {
        let txn = self.read()?;
        Ok(txn.open_table(OUTBOX)?.len()?)
    }

    /// The sequence number of the outbox's last task, `None` if it is empty. Sequence numbers
    /// only grow, so a task above it was committed later.
    pub fn last_outbox_seq(&self) -> Result<Option<u64>, MetaError> {
        let txn = self.read()?;
        let table = txn.open_table(OUTBOX)?;
        let last = table.last()?;
        Ok(last.map(|(seq, _)| seq.value()))
    }

    /// Outbox entries with `seq > after_seq` (all if `None`), oldest first, at most `limit`.
    pub fn list_outbox(&self, after_seq: Option<u64>, limit: usize) -> Result<Vec<OutboxEntry>, MetaError> {
        self.scan_seq(OUTBOX, after_seq, limit)
    }

    /// The outbox row `seq`, if it is still queued.
    pub fn get_outbox(&self, seq: u64) -> Result<Option<OutboxEntry>, MetaError> {
        let txn = self.read()?;
        crate::queue::get(&txn.open_table(OUTBOX)?, seq)
    }

    /// Permanently failed replication tasks with `seq > after_seq`, oldest first, at most
    /// `limit` (each with its IAM-8 reason).
    pub fn list_failures(&self, after_seq: Option<u64>, limit: usize) -> Result<Vec<FailedTask>, MetaError> {
        self.scan_seq(FAILURES, after_seq, limit)
    }

    /// Every batch replication job, oldest first (BAT-6).
    pub fn list_jobs(&self) -> Result<Vec<xregion_types::job::JobRecord>, MetaError> {
        let txn = self.read()?;
        crate::jobs::all(&txn.open_table(crate::schema::JOBS)?)
    }

    /// Task rows of the job with sequence number `job_seq`, numbered `from` and up, at most
    /// `limit`, in order.
    pub fn job_tasks(
        &self,
        job_seq: u64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, xregion_types::job::JobTask)>, MetaError> {
        let txn = self.read()?;
        crate::jobs::tasks(&txn.open_table(crate::schema::JOB_TASKS)?, job_seq, from, limit)
    }

    /// Records of a seq-keyed table with `seq > after_seq` (all if `None`), in seq order, at
    /// most `limit`: the one range scan behind the outbox and failure listings.
    fn scan_seq<T: crate::codec::Stored>(
        &self,
        def: redb::TableDefinition<u64, &[u8]>,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<T>, MetaError> {
        let txn = self.read()?;
        let table = txn.open_table(def)?;
        let range = match after_seq {
            Some(seq) => table.range((std::ops::Bound::Excluded(seq), std::ops::Bound::Unbounded))?,
            None => table.range::<u64>(..)?,
        };
        let mut out = Vec::new();
        for item in range.take(limit) {
            let (_, v) = item?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// [`Self::get_inline`] of several objects from one snapshot, in order. For the
    /// replication worker, which sends many small objects at once (one read transaction per
    /// object cost more than the lookups).
    pub fn get_inlines(&self, ids: impl IntoIterator<Item = InlineRef>) -> Result<Vec<Option<Vec<u8>>>, MetaError> {
        let txn = self.read()?;
        let table = txn.open_table(INLINE_DATA)?;
        ids.into_iter().map(|inline| Ok(table.get(inline.id)?.map(|g| g.value().to_vec()))).collect()
    }

    /// The bytes of an inline object (`ObjectData::inline`), or `None` if no version references
    /// that row any more (the version was deleted after it was read).
    pub fn get_inline(&self, inline: InlineRef) -> Result<Option<Vec<u8>>, MetaError> {
        let txn = self.read()?;
        Ok(txn.open_table(INLINE_DATA)?.get(inline.id)?.map(|g| g.value().to_vec()))
    }

    /// Ids of every blob the metadata references: the segments of every version and of every
    /// multipart part (and upload template), read from one snapshot. For orphan collection.
    pub fn referenced_blobs(&self) -> Result<HashSet<String>, MetaError> {
        let txn = self.read()?;
        let mut ids = HashSet::new();
        for item in txn.open_table(VERSIONS)?.iter()? {
            let (_, v) = item?;
            let record: VersionRecord = decode(v.value())?;
            if let Some(object) = record.object() {
                ids.extend(object.blob.segments.iter().map(|s| s.id.clone()));
            }
        }
        for item in txn.open_table(PARTS)?.iter()? {
            let (_, v) = item?;
            let part: PartRecord = decode(v.value())?;
            ids.insert(part.blob.id);
        }
        for item in txn.open_table(UPLOADS)?.iter()? {
            let (_, v) = item?;
            let upload: UploadRecord = decode(v.value())?;
            ids.extend(upload.template.blob.segments.into_iter().map(|s| s.id));
        }
        Ok(ids)
    }

    /// Number of rows in the `inline_data` table (for tests and metrics).
    pub fn inline_rows(&self) -> Result<u64, MetaError> {
        let txn = self.read()?;
        Ok(txn.open_table(INLINE_DATA)?.len()?)
    }

    /// The name of the bucket with id `id`, if it still exists.
    pub fn bucket_name(&self, id: u64) -> Result<Option<String>, MetaError> {
        let txn = self.read()?;
        Ok(txn.open_table(BUCKET_IDS)?.get(id)?.map(|g| g.value().to_owned()))
    }

    /// Applies one write through the writer thread's group commit; resolves after the commit
    /// is durable. Dropping the future does not cancel the write.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, MetaError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Request { ops: Ops::One(op), reply: Reply::Async(tx) })?;
        rx.await.map_err(|_| stopped())?
    }

    /// Several [`MetaStore::write`]s in one round trip to the writer: the ops are applied in
    /// order, in the same group commit, and each succeeds or fails alone exactly as if it had
    /// been sent on its own (a failing op leaves no trace; a storage error fails the whole
    /// group). One result per op, in order. For a caller that has many small writes at once
    /// (a batch of replicas): each single write costs the writer a channel message and a
    /// wake-up of its caller.
    pub async fn write_all(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<WriteOutcome, MetaError>>, MetaError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let n = ops.len();
        let (tx, rx) = oneshot::channel();
        self.enqueue(Request { ops: Ops::Many(ops), reply: Reply::AsyncMany(tx) })?;
        let results = rx.await.map_err(|_| stopped())?;
        if results.len() != n {
            return Err(MetaError::OutcomeUnknown(format!(
                "the metadata writer answered {} of {n} ops",
                results.len()
            )));
        }
        Ok(results)
    }

    /// [`MetaStore::write`] for synchronous callers: blocks the current thread until the
    /// commit is durable (call it from `spawn_blocking` or a plain thread, not an async task).
    pub fn write_blocking(&self, op: WriteOp) -> Result<WriteOutcome, MetaError> {
        let (tx, rx) = sync_channel(1);
        self.enqueue(Request { ops: Ops::One(op), reply: Reply::Blocking(tx) })?;
        rx.recv().map_err(|_| stopped())?
    }

    /// Fault injection: the next group the writer takes commits and is then reported as
    /// [`MetaError::OutcomeUnknown`] to every op in it, as when a durable commit's final sync
    /// fails after its header reached the disk. For tests of what callers do with such an
    /// error (the `fault-injection` feature; nothing else arms it).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn inject_outcome_unknown(&self) {
        self.inner.faults.unknown_after_commit.store(true, Ordering::Relaxed);
    }

    /// Counters of the writer thread since open.
    pub fn writer_stats(&self) -> WriterStats {
        let stats = &self.inner.stats;
        let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        WriterStats {
            groups: get(&stats.groups),
            ops: get(&stats.ops),
            failed_groups: get(&stats.failed_groups),
            busy_us: get(&stats.busy_us),
            journal_syncs: get(&stats.journal_syncs),
            journal_us: get(&stats.journal_us),
            checkpoints: get(&stats.checkpoints),
            checkpoint_us: get(&stats.checkpoint_us),
        }
    }

    fn enqueue(&self, request: Request) -> Result<(), MetaError> {
        let requests = self.inner.requests.as_ref().ok_or(MetaError::WriterGone)?;
        requests.send(request).map_err(|_| MetaError::WriterGone)
    }
}

/// The error of a write whose request reached the writer but whose answer never came back:
/// the writer stopped (it panicked outside a group's guard), maybe after committing it.
fn stopped() -> MetaError {
    MetaError::OutcomeUnknown("the metadata writer stopped before answering".into())
}

/// Counters of the writer thread (group commit) since open, for metrics. Times are
/// microseconds; a counter divided by the time between two readings is a rate, a time
/// divided by its count a mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriterStats {
    /// Write transactions attempted (one per group).
    pub groups: u64,
    /// Ops received; `ops / groups` is the mean group size.
    pub ops: u64,
    /// Groups that failed as a whole (nothing committed).
    pub failed_groups: u64,
    /// Time spent committing groups: how busy the region's serial write path was.
    pub busy_us: u64,
    /// Groups made durable by a journal record (written and fsynced).
    pub journal_syncs: u64,
    /// Time spent writing and fsyncing journal records.
    pub journal_us: u64,
    /// Groups made durable by a checkpoint (a durable redb commit).
    pub checkpoints: u64,
    /// Time spent in checkpoints.
    pub checkpoint_us: u64,
}

/// Creates every table, checks the layout version, and returns the stored maximum stamp.
pub(crate) fn init_tables(db: &Database) -> Result<u64, MetaError> {
    let txn = db.begin_write()?;
    let max_stamp = {
        let mut tables = WTables::open(&txn, 0)?;
        let schema = tables.meta.get(META_SCHEMA)?.map(|g| g.value());
        match schema {
            Some(SCHEMA_VERSION) => {}
            Some(SCHEMA_VERSION_1) => {
                rebuild_outbox_index(&mut tables)?;
                tables.meta.insert(META_SCHEMA, SCHEMA_VERSION)?;
            }
            Some(other) => {
                return Err(MetaError::Corrupt(format!(
                    "metadata layout version {other} is not supported (expected {SCHEMA_VERSION})"
                )));
            }
            None => {
                tables.meta.insert(META_SCHEMA, SCHEMA_VERSION)?;
            }
        }
        tables.meta.get(META_MAX_STAMP)?.map(|g| g.value()).unwrap_or(0)
    };
    txn.commit()?;
    Ok(max_stamp)
}

/// Layout 1 → 2: drops every `outbox_index` row and writes each outbox row's layout-2 key, in
/// the same transaction as the new layout version (a crash leaves layout 1, migrated again).
fn rebuild_outbox_index(tables: &mut WTables<'_>) -> Result<(), MetaError> {
    use redb::ReadableTable as _;
    tables.outbox_index.retain(|_, ()| false)?;
    let mut rows = Vec::new();
    for item in tables.outbox.iter()? {
        let (_, value) = item?;
        let entry: crate::queue::OutboxEntry = crate::codec::decode(value.value())?;
        rows.push(entry.index_key());
    }
    for key in rows {
        tables.outbox_index.insert(key.as_slice(), ())?;
    }
    Ok(())
}
