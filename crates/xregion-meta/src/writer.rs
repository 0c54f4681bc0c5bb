//! The single writer thread and its group commit.
//!
//! Every [`WriteOp`] is sent to one thread (one op per request, or several: `write_all`). It
//! takes the first queued request, drains more without waiting until the group holds
//! [`MAX_GROUP`] ops, applies them in queue order inside ONE redb write transaction (each op
//! sees the effects of the ops before it), makes the group durable with
//! one fsync (its redo record in the journal, then a `Durability::None` commit; or, at a
//! checkpoint, a `Durability::Immediate` commit: see `journal.rs`), and only then replies to
//! every caller.
//!
//! Contract per op: an op validates completely before it mutates anything, so a validation
//! error leaves no trace and the other ops of the group still commit. Mutations go through the
//! `WTables` methods, which mark the op dirty: if an op fails after it has started writing
//! (a storage error, or corrupt data found mid-write) the whole transaction is dropped and every
//! op of the group gets that error; none of them is committed. A commit failure likewise fails
//! the whole group.

use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Instant;

use redb::{Durability, ReadableTable, Table, WriteTransaction};
use tokio::sync::oneshot;
use xregion_types::{BlobSegment, BucketRecord, InlineRef, VersionClock, VersionId, VersionRecord};

use crate::codec::{decode, encode};
use crate::error::MetaError;
use crate::fresh::{FreshHub, FreshTask};
use crate::journal::{self, Journal, Redo, TableId};
use crate::keys;
use crate::multipart::{PartRecord, UploadRecord};
use crate::ops::{WriteOp, WriteOutcome};
use crate::queue::{FailedTask, OutboxEntry};
use crate::schema::{
    BUCKET_IDS, BUCKETS, FAILURES, HEADS, INLINE_DATA, JOB_TASKS, JOBS, META, META_JOURNAL_EPOCH, META_MAX_STAMP,
    META_NEXT_INLINE_ID, META_NEXT_OUTBOX_SEQ, NULLS, OUTBOX, OUTBOX_INDEX, PARTS, UPLOAD_INDEX, UPLOADS, VERSIONS,
};
use crate::slot::{self, DbSlot};
use crate::{buckets, jobs, multipart, objects, queue};

/// Most ops committed in one transaction (a group may pass it by the last request's ops).
pub(crate) const MAX_GROUP: usize = 256;

/// One queued write and where to send its result.
pub(crate) struct Request {
    /// The op, or several.
    pub(crate) ops: Ops,
    /// Where the result goes.
    pub(crate) reply: Reply,
}

/// What a request asks the writer to apply.
// A single op travels by value, as it always did: boxing it would cost every write an
// allocation to save the rare `Many` some bytes of channel slot.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Ops {
    /// One op.
    One(WriteOp),
    /// Several ops (`MetaStore::write_all`), applied one after the other in the same group,
    /// each succeeding or failing alone exactly as if each had been sent on its own; only the
    /// round trip is shared.
    Many(Vec<WriteOp>),
}

impl Ops {
    /// How many ops.
    fn len(&self) -> usize {
        match self {
            Ops::One(_) => 1,
            Ops::Many(ops) => ops.len(),
        }
    }
}

/// The caller's side of a request.
pub(crate) enum Reply {
    /// An async caller (`MetaStore::write`).
    Async(oneshot::Sender<Result<WriteOutcome, MetaError>>),
    /// A blocking caller (`MetaStore::write_blocking`).
    Blocking(SyncSender<Result<WriteOutcome, MetaError>>),
    /// An async caller of several ops (`MetaStore::write_all`): one result per op, in order.
    AsyncMany(oneshot::Sender<Vec<Result<WriteOutcome, MetaError>>>),
}

impl Reply {
    /// Sends the request's results, taking as many as it had ops.
    fn send(self, results: &mut impl Iterator<Item = Result<WriteOutcome, MetaError>>) {
        let lost = || Err(MetaError::OutcomeUnknown("the metadata writer lost a result".into()));
        // A caller that went away (dropped future) simply does not hear the result.
        match self {
            Reply::Async(tx) => drop(tx.send(results.next().unwrap_or_else(lost))),
            Reply::Blocking(tx) => drop(tx.send(results.next().unwrap_or_else(lost))),
            Reply::AsyncMany(tx) => drop(tx.send(results.collect())),
        }
    }
}

/// Counters of the writer thread, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Transactions attempted (one per group).
    pub(crate) groups: AtomicU64,
    /// Ops received.
    pub(crate) ops: AtomicU64,
    /// Groups that failed as a whole (nothing committed, or the outcome unknown).
    pub(crate) failed_groups: AtomicU64,
    /// Microseconds spent committing groups (from taking a group's requests to having its
    /// results, before the replies go out): how busy the region's serial write path was.
    pub(crate) busy_us: AtomicU64,
    /// Journal records written and fsynced, and the microseconds that took.
    pub(crate) journal_syncs: AtomicU64,
    pub(crate) journal_us: AtomicU64,
    /// Checkpoints (durable redb commits), and the microseconds they took.
    pub(crate) checkpoints: AtomicU64,
    pub(crate) checkpoint_us: AtomicU64,
}

/// Faults a test can arm (`MetaStore::inject_outcome_unknown`), to check what callers do
/// with an error after which a write may still have happened. Unarmed, each costs the writer
/// one atomic load per group.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// The next group commits, and is then reported as [`MetaError::OutcomeUnknown`], as a
    /// durable commit whose final sync failed after its header reached the disk would be.
    pub(crate) unknown_after_commit: AtomicBool,
}

/// Runs the writer loop until every sender is dropped.
#[allow(clippy::too_many_arguments)] // each is one piece of shared state, named at the call
pub(crate) fn run(
    db: Arc<DbSlot>,
    journal: Journal,
    clock: VersionClock,
    persisted_max_stamp: u64,
    rx: Receiver<Request>,
    stats: Arc<Stats>,
    fresh: Arc<FreshHub>,
    faults: Arc<Faults>,
) {
    let mut writer = Writer {
        db,
        journal,
        clock,
        persisted_max_stamp,
        stats,
        fresh,
        faults,
        timing: GroupTiming::default(),
        last_reopen: None,
    };
    while let Ok(first) = rx.recv() {
        // The ops of the group, and per request its reply and how many of the ops are its.
        let mut ops = Vec::with_capacity(32);
        let mut replies = Vec::with_capacity(32);
        let mut take = |request: Request| match request.ops {
            Ops::One(op) => {
                ops.push(op);
                replies.push((request.reply, 1));
            }
            Ops::Many(many) => {
                replies.push((request.reply, many.len()));
                ops.extend(many);
            }
        };
        let mut taken = first.ops.len();
        take(first);
        while taken < MAX_GROUP {
            match rx.try_recv() {
                Ok(request) => {
                    taken += request.ops.len();
                    take(request);
                }
                Err(_) => break,
            }
        }
        let group_size = ops.len();
        let started = Instant::now();
        writer.timing = GroupTiming::default();
        let results = match std::panic::catch_unwind(AssertUnwindSafe(|| writer.commit_group(ops))) {
            Ok(results) => results,
            Err(_) => {
                tracing::error!(group_size, "metadata writer panicked; group aborted");
                // It may have panicked after the commit: the outcome is unknown.
                vec![Err(MetaError::OutcomeUnknown("metadata writer panicked while committing".into())); group_size]
            }
        };
        let GroupTiming { apply_us, journal_us, commit_us, journal_bytes, checkpoint } = writer.timing;
        let elapsed_us = started.elapsed().as_micros() as u64;
        writer.stats.count_group(elapsed_us, &writer.timing);
        tracing::trace!(
            group_size,
            elapsed_us,
            apply_us,
            journal_us,
            commit_us,
            journal_bytes,
            checkpoint,
            "metadata group committed"
        );
        let mut results = results.into_iter();
        for (reply, n) in replies {
            reply.send(&mut results.by_ref().take(n));
        }
    }
    // A clean stop leaves everything in redb, so the next open has nothing to replay.
    if let Err(e) = writer.checkpoint() {
        tracing::warn!(error = %e, "final metadata checkpoint failed; the journal will be replayed on open");
    }
    tracing::debug!("metadata writer stopped");
}

/// Where the last group's time went (for the writer's trace line; see `bench/README.md`).
#[derive(Debug, Default, Clone, Copy)]
struct GroupTiming {
    /// Applying the ops to the open transaction.
    apply_us: u64,
    /// Writing and fsyncing the journal record (0 for a checkpoint).
    journal_us: u64,
    /// The redb commit (durable for a checkpoint).
    commit_us: u64,
    /// Bytes of the journal record.
    journal_bytes: u64,
    /// The group was a checkpoint (a durable redb commit; `commit_us` is its time).
    checkpoint: bool,
}

impl Stats {
    /// Adds a finished group's times to the counters.
    fn count_group(&self, elapsed_us: u64, timing: &GroupTiming) {
        self.busy_us.fetch_add(elapsed_us, Ordering::Relaxed);
        if timing.checkpoint {
            self.checkpoints.fetch_add(1, Ordering::Relaxed);
            self.checkpoint_us.fetch_add(timing.commit_us, Ordering::Relaxed);
        } else if timing.journal_bytes > 0 {
            self.journal_syncs.fetch_add(1, Ordering::Relaxed);
            self.journal_us.fetch_add(timing.journal_us, Ordering::Relaxed);
        }
    }
}

struct Writer {
    timing: GroupTiming,
    db: Arc<DbSlot>,
    /// When the database was last reopened after an I/O error (see `slot.rs`).
    last_reopen: Option<Instant>,
    /// Makes the groups between durable commits durable (see `journal.rs`).
    journal: Journal,
    clock: VersionClock,
    persisted_max_stamp: u64,
    stats: Arc<Stats>,
    /// Where committed replication tasks are handed over (see `fresh.rs`).
    fresh: Arc<FreshHub>,
    faults: Arc<Faults>,
}

impl Writer {
    /// Applies a group; one result per op, in order.
    fn commit_group(&mut self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, MetaError>> {
        let n = ops.len();
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        self.stats.ops.fetch_add(n as u64, Ordering::Relaxed);
        match self.try_commit_group(ops) {
            Ok(results) => results,
            Err(e) => {
                self.stats.failed_groups.fetch_add(1, Ordering::Relaxed);
                if e.outcome_unknown() {
                    tracing::error!(group_size = n, error = %e, "metadata group failed; it may or may not have committed");
                } else {
                    tracing::warn!(group_size = n, error = %e, "metadata group failed; nothing committed");
                }
                vec![Err(e); n]
            }
        }
    }

    /// Commits the group: durably in redb if a checkpoint is due, else to redb without
    /// durability after its journal record is fsynced (see `journal.rs`).
    fn try_commit_group(&mut self, ops: Vec<WriteOp>) -> Result<Vec<Result<WriteOutcome, MetaError>>, MetaError> {
        if self.journal.broken {
            return Err(MetaError::Storage(
                "the metadata journal could not be repaired after a failed commit; restart the region".into(),
            ));
        }
        let checkpoint = self.journal.checkpoint_due();
        let mut txn = self.begin_write()?;
        let durability = if checkpoint { Durability::Immediate } else { Durability::None };
        txn.set_durability(durability).map_err(|e| MetaError::Storage(e.to_string()))?;
        let mut results = Vec::with_capacity(ops.len());
        let started = Instant::now();
        let group_max_stamp;
        let redo;
        let fresh;
        {
            let mut t = WTables::open(&txn, self.persisted_max_stamp)?;
            t.fresh = self.fresh.wanted().then(Vec::new);
            for op in ops {
                t.dirty = false;
                let result = apply(&mut t, &self.clock, op);
                match result {
                    Err(e) if t.dirty || e.is_storage() => {
                        // Partly applied: the transaction cannot be trusted; drop it (abort).
                        return Err(e);
                    }
                    other => results.push(other),
                }
            }
            t.store_counters()?;
            group_max_stamp = t.max_stamp;
            if group_max_stamp > self.persisted_max_stamp {
                journal::insert(&mut t.meta, &mut t.redo, TableId::Meta, &META_MAX_STAMP, &group_max_stamp)?;
            }
            if checkpoint {
                t.meta.insert(META_JOURNAL_EPOCH, self.journal.epoch + 1)?;
            }
            redo = std::mem::take(&mut t.redo);
            fresh = t.fresh.take().unwrap_or_default();
        }
        self.timing.apply_us = started.elapsed().as_micros() as u64;
        let mut committing = Instant::now();
        if checkpoint {
            // A durable commit that fails may still have reached the disk (its last sync
            // failed after the header was written): the outcome is unknown, not "nothing".
            txn.commit().map_err(|e| {
                MetaError::OutcomeUnknown(format!(
                    "a durable commit failed and may or may not have reached the disk: {e}"
                ))
            })?;
            self.journal.restart(self.journal.epoch + 1);
        } else if redo.is_empty() {
            // Nothing changed (every op failed validation): nothing to make durable.
            txn.commit()?;
        } else {
            // On error the transaction is dropped: nothing of the group is committed.
            let before = self.journal.append(&redo).map_err(|e| self.unless_cut(e))?;
            self.timing.journal_bytes = self.journal.len() - before;
            self.timing.journal_us = committing.elapsed().as_micros() as u64;
            committing = Instant::now();
            if let Err(e) = txn.commit() {
                self.journal.cut(before);
                return Err(self.unless_cut(e.into()));
            }
        }
        self.timing.commit_us = committing.elapsed().as_micros() as u64;
        self.timing.checkpoint = checkpoint;
        self.persisted_max_stamp = group_max_stamp;
        self.fresh.send(fresh);
        if self.faults.unknown_after_commit.swap(false, Ordering::Relaxed) {
            return Err(MetaError::OutcomeUnknown("injected: the group committed but is reported as failed".into()));
        }
        Ok(results)
    }

    /// The error of a group whose journal record was written, or half written, and whose
    /// commit then failed: the record was cut back (nothing of the group survives a replay),
    /// unless cutting failed too. Then the record may be replayed at the next open, and the
    /// group's outcome is unknown.
    fn unless_cut(&self, e: MetaError) -> MetaError {
        if self.journal.broken {
            MetaError::OutcomeUnknown(format!("{e}; its journal record could not be cut back and may be replayed"))
        } else {
            e
        }
    }

    /// A write transaction; if redb refuses it because an earlier write failed for an I/O
    /// reason, the database is reopened first (see `slot.rs`).
    fn begin_write(&mut self) -> Result<WriteTransaction, MetaError> {
        if let Ok(db) = self.db.current() {
            match db.begin_write() {
                Err(redb::TransactionError::Storage(redb::StorageError::PreviousIo)) => {}
                other => return Ok(other?),
            }
        }
        if self.last_reopen.is_some_and(|at| at.elapsed() < slot::RETRY_EVERY) {
            return Err(MetaError::Storage("the metadata database failed an earlier write; reopening shortly".into()));
        }
        self.last_reopen = Some(Instant::now());
        match self.db.reopen() {
            Ok(reopened) => {
                tracing::warn!(replayed = reopened.replayed, "reopened the metadata database after an I/O error");
                self.journal = reopened.journal;
                self.persisted_max_stamp = reopened.max_stamp;
                Ok(self.db.current()?.begin_write()?)
            }
            Err(e) => {
                tracing::error!(error = %e, "reopening the metadata database failed; writes are refused until it succeeds");
                Err(e)
            }
        }
    }

    /// A durable redb commit of everything so far; the journal starts over.
    fn checkpoint(&mut self) -> Result<(), MetaError> {
        if self.journal.broken {
            return Err(MetaError::Storage("the metadata journal is broken".into()));
        }
        let mut txn = self.begin_write()?;
        txn.set_durability(Durability::Immediate).map_err(|e| MetaError::Storage(e.to_string()))?;
        txn.open_table(META)?.insert(META_JOURNAL_EPOCH, self.journal.epoch + 1)?;
        txn.commit()?;
        self.journal.restart(self.journal.epoch + 1);
        Ok(())
    }
}

/// Applies one op inside the group's transaction.
fn apply(t: &mut WTables<'_>, clock: &VersionClock, op: WriteOp) -> Result<WriteOutcome, MetaError> {
    match op {
        WriteOp::CreateBucket { name, created_ms } => buckets::create(t, name, created_ms),
        WriteOp::DeleteBucket { name } => buckets::delete(t, &name),
        WriteOp::SetVersioning { name, state } => buckets::set_versioning(t, &name, state),
        WriteOp::SetBucketTags { name, tags } => buckets::set_tags(t, &name, tags),
        WriteOp::SetReplication { name, config } => buckets::set_replication(t, &name, config),
        WriteOp::SetLifecycle { name, config } => buckets::set_lifecycle(t, &name, config),
        WriteOp::SetBucketEncryption { bucket, encryption } => buckets::set_encryption(t, &bucket, encryption),
        WriteOp::PutVersion { bucket, key, data, inline, replica, precondition, outbox } => {
            let bucket = buckets::by_name(t, &bucket)?;
            let body = objects::Body { data, inline };
            let (record, freed) =
                objects::put_version(t, clock, &bucket, &key, body, replica, precondition.as_ref(), outbox)?;
            Ok(WriteOutcome::Version { record, freed })
        }
        WriteOp::DeleteObject { bucket, key, outbox, if_current } => {
            objects::delete_object(t, clock, &bucket, &key, outbox, if_current.as_ref())
        }
        WriteOp::DeleteVersion { bucket, key, version_id } => objects::delete_version(t, &bucket, &key, &version_id),
        WriteOp::SetObjectTags { bucket, key, version_id, tags, replicated_ms, outbox } => {
            objects::set_tags(t, &bucket, &key, version_id.as_ref(), tags, replicated_ms, outbox)
        }
        WriteOp::CompleteTask { seq } => queue::complete(t, seq),
        WriteOp::FailTask { seq, reason } => queue::fail(t, seq, reason),
        WriteOp::FinishTasks { tasks } => queue::finish_many(t, tasks),
        WriteOp::ReplicateVersion { bucket, key, version_id, statuses, outbox, clear_failures } => {
            queue::replicate_again(t, &bucket, &key, &version_id, &statuses, outbox, &clear_failures)
        }
        WriteOp::CreateUpload { record } => multipart::create(t, record),
        WriteOp::PutPart { upload_id, part } => multipart::put_part(t, &upload_id, part),
        WriteOp::CompleteUpload { upload_id, data, used_parts, precondition, outbox } => {
            multipart::complete(t, clock, &upload_id, data, &used_parts, precondition.as_ref(), outbox)
        }
        WriteOp::AbortUpload { upload_id } => multipart::abort(t, &upload_id).map(WriteOutcome::Freed),
        WriteOp::RewrapVersionKey { bucket, key, version_id, from, to } => {
            objects::rewrap_key(t, &bucket, &key, &version_id, &from, to)
        }
        WriteOp::RewrapUploadKey { upload_id, from, to } => multipart::rewrap_key(t, &upload_id, &from, to),
        WriteOp::CreateJob { record } => jobs::create(t, record),
        WriteOp::UpdateJob { record, tasks } => jobs::update(t, &record, &tasks),
        WriteOp::ForgetJob { seq, limit } => jobs::forget(t, seq, limit),
    }
}

/// All tables, open in one write transaction. Read freely through the fields; mutate ONLY
/// through the methods, which mark the current op dirty (see the module docs).
pub(crate) struct WTables<'t> {
    pub(crate) meta: Table<'t, &'static str, u64>,
    pub(crate) buckets: Table<'t, &'static str, &'static [u8]>,
    pub(crate) bucket_ids: Table<'t, u64, &'static str>,
    pub(crate) heads: Table<'t, &'static [u8], &'static [u8]>,
    pub(crate) versions: Table<'t, &'static [u8], &'static [u8]>,
    pub(crate) nulls: Table<'t, &'static [u8], u64>,
    pub(crate) uploads: Table<'t, &'static str, &'static [u8]>,
    pub(crate) upload_index: Table<'t, &'static [u8], ()>,
    pub(crate) parts: Table<'t, &'static [u8], &'static [u8]>,
    pub(crate) outbox: Table<'t, u64, &'static [u8]>,
    pub(crate) outbox_index: Table<'t, &'static [u8], ()>,
    pub(crate) failures: Table<'t, u64, &'static [u8]>,
    pub(crate) inline_data: Table<'t, u64, &'static [u8]>,
    pub(crate) jobs: Table<'t, u64, &'static [u8]>,
    pub(crate) job_tasks: Table<'t, &'static [u8], &'static [u8]>,
    /// Every insert and remove of this group, in order: the journal record (see `journal.rs`).
    pub(crate) redo: Vec<Redo>,
    /// `META` counters advanced in this group, with their next value (at most a few).
    counters: Vec<(&'static str, u64)>,
    /// The replication tasks this group queued, to hand over after the commit (`fresh.rs`);
    /// `None` while nobody is subscribed.
    pub(crate) fresh: Option<Vec<FreshTask>>,
    /// The current op has started writing.
    dirty: bool,
    /// Largest stamp stored in this group (or before it).
    max_stamp: u64,
}

impl<'t> WTables<'t> {
    /// Opens every table (creating missing ones).
    pub(crate) fn open(txn: &'t WriteTransaction, max_stamp: u64) -> Result<Self, MetaError> {
        Ok(Self {
            meta: txn.open_table(META)?,
            buckets: txn.open_table(BUCKETS)?,
            bucket_ids: txn.open_table(BUCKET_IDS)?,
            heads: txn.open_table(HEADS)?,
            versions: txn.open_table(VERSIONS)?,
            nulls: txn.open_table(NULLS)?,
            uploads: txn.open_table(UPLOADS)?,
            upload_index: txn.open_table(UPLOAD_INDEX)?,
            parts: txn.open_table(PARTS)?,
            outbox: txn.open_table(OUTBOX)?,
            outbox_index: txn.open_table(OUTBOX_INDEX)?,
            failures: txn.open_table(FAILURES)?,
            inline_data: txn.open_table(INLINE_DATA)?,
            jobs: txn.open_table(JOBS)?,
            job_tasks: txn.open_table(JOB_TASKS)?,
            redo: Vec::new(),
            counters: Vec::new(),
            fresh: None,
            dirty: false,
            max_stamp,
        })
    }

    /// Advances a `META` counter; returns the value before. The counter is read from the table
    /// once per group and written back once, by [`Self::store_counters`] before the commit
    /// (a read and a rewrite of the `meta` table per id was about 3 % of the writer's time at
    /// full speed: a replicated 4 KiB PUT takes two ids, its inline row's and its task's).
    /// Taking an id marks the op dirty, so an op that fails afterwards fails its whole group,
    /// and the advanced counters are dropped with the transaction.
    pub(crate) fn take_counter(&mut self, name: &'static str, first: u64) -> Result<u64, MetaError> {
        self.dirty = true;
        let at = match self.counters.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                let value = self.meta.get(name)?.map(|g| g.value()).unwrap_or(first);
                self.counters.push((name, value));
                self.counters.len() - 1
            }
        };
        let value = self.counters[at].1;
        self.counters[at].1 =
            value.checked_add(1).ok_or_else(|| MetaError::Corrupt(format!("counter {name} overflow")))?;
        Ok(value)
    }

    /// Marks the current op as having started writing (for writes made outside these methods,
    /// through `journal::insert`/`remove` on a table field).
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Writes the counters this group advanced (see [`Self::take_counter`]).
    pub(crate) fn store_counters(&mut self) -> Result<(), MetaError> {
        for (name, next) in std::mem::take(&mut self.counters) {
            journal::insert(&mut self.meta, &mut self.redo, TableId::Meta, &name, &next)?;
        }
        Ok(())
    }

    /// Inserts or replaces a bucket record (and its id → name entry).
    pub(crate) fn put_bucket(&mut self, record: &BucketRecord) -> Result<(), MetaError> {
        self.dirty = true;
        let bytes = encode(record)?;
        journal::insert(&mut self.buckets, &mut self.redo, TableId::Buckets, &record.name.as_str(), &bytes.as_slice())?;
        journal::insert(&mut self.bucket_ids, &mut self.redo, TableId::BucketIds, &record.id, &record.name.as_str())?;
        Ok(())
    }

    /// Removes a bucket record.
    pub(crate) fn del_bucket(&mut self, record: &BucketRecord) -> Result<(), MetaError> {
        self.dirty = true;
        journal::remove(&mut self.buckets, &mut self.redo, TableId::Buckets, &record.name.as_str())?;
        journal::remove(&mut self.bucket_ids, &mut self.redo, TableId::BucketIds, &record.id)?;
        Ok(())
    }

    /// Stores a version (and remembers its stamp for the clock).
    pub(crate) fn put_version(&mut self, bucket_id: u64, key: &str, record: &VersionRecord) -> Result<(), MetaError> {
        self.dirty = true;
        let bytes = encode(record)?;
        journal::insert(
            &mut self.versions,
            &mut self.redo,
            TableId::Versions,
            &keys::version_key(bucket_id, key, record.stamp).as_slice(),
            &bytes.as_slice(),
        )?;
        self.max_stamp = self.max_stamp.max(record.stamp);
        Ok(())
    }

    /// Removes a version.
    pub(crate) fn del_version(&mut self, bucket_id: u64, key: &str, stamp: u64) -> Result<(), MetaError> {
        self.dirty = true;
        journal::remove(
            &mut self.versions,
            &mut self.redo,
            TableId::Versions,
            &keys::version_key(bucket_id, key, stamp).as_slice(),
        )?;
        Ok(())
    }

    /// Points the key's null version at `stamp`.
    pub(crate) fn put_null(&mut self, bucket_id: u64, key: &str, stamp: u64) -> Result<(), MetaError> {
        self.dirty = true;
        journal::insert(
            &mut self.nulls,
            &mut self.redo,
            TableId::Nulls,
            &keys::object_key(bucket_id, key).as_slice(),
            &stamp,
        )?;
        Ok(())
    }

    /// Forgets the key's null version.
    pub(crate) fn del_null(&mut self, bucket_id: u64, key: &str) -> Result<(), MetaError> {
        self.dirty = true;
        journal::remove(&mut self.nulls, &mut self.redo, TableId::Nulls, &keys::object_key(bucket_id, key).as_slice())?;
        Ok(())
    }

    /// Makes `current` the key's head: stored if it is an object, removed if it is a delete
    /// marker or there is no version left.
    pub(crate) fn set_head(
        &mut self,
        bucket_id: u64,
        key: &str,
        current: Option<&VersionRecord>,
    ) -> Result<(), MetaError> {
        self.dirty = true;
        let k = keys::object_key(bucket_id, key);
        match current {
            Some(record) if !record.is_delete_marker() => {
                let bytes = encode(record)?;
                journal::insert(&mut self.heads, &mut self.redo, TableId::Heads, &k.as_slice(), &bytes.as_slice())?;
            }
            _ => {
                journal::remove(&mut self.heads, &mut self.redo, TableId::Heads, &k.as_slice())?;
            }
        }
        Ok(())
    }

    /// Recomputes the head from the newest remaining version (after a removal).
    pub(crate) fn refresh_head(&mut self, bucket_id: u64, key: &str) -> Result<(), MetaError> {
        self.dirty = true;
        let newest = objects::newest_version(&self.versions, bucket_id, key)?;
        self.set_head(bucket_id, key, newest.as_ref())
    }

    /// Stores an upload record and its index entry.
    pub(crate) fn put_upload(&mut self, record: &UploadRecord) -> Result<(), MetaError> {
        self.dirty = true;
        let bytes = encode(record)?;
        journal::insert(
            &mut self.uploads,
            &mut self.redo,
            TableId::Uploads,
            &record.upload_id.as_str(),
            &bytes.as_slice(),
        )?;
        let index = keys::upload_index_key(record.bucket_id, &record.key, &record.upload_id);
        journal::insert(&mut self.upload_index, &mut self.redo, TableId::UploadIndex, &index.as_slice(), &())?;
        Ok(())
    }

    /// Removes an upload, its index entry and all its parts; returns the removed parts.
    pub(crate) fn del_upload(&mut self, record: &UploadRecord) -> Result<Vec<PartRecord>, MetaError> {
        self.dirty = true;
        journal::remove(&mut self.uploads, &mut self.redo, TableId::Uploads, &record.upload_id.as_str())?;
        let index = keys::upload_index_key(record.bucket_id, &record.key, &record.upload_id);
        journal::remove(&mut self.upload_index, &mut self.redo, TableId::UploadIndex, &index.as_slice())?;
        let prefix = keys::part_prefix(&record.upload_id);
        let upper = keys::prefix_end(&prefix);
        let mut removed = Vec::new();
        let mut part_keys = Vec::new();
        for item in self.parts.range::<&[u8]>(keys::bounds(&Bound::Included(prefix.clone()), &upper))? {
            let (k, value) = item?;
            part_keys.push(k.value().to_vec());
            removed.push(decode::<PartRecord>(value.value())?);
        }
        for k in part_keys {
            journal::remove(&mut self.parts, &mut self.redo, TableId::Parts, &k.as_slice())?;
        }
        Ok(removed)
    }

    /// Stores a part (replacing the same part number).
    pub(crate) fn put_part(&mut self, upload_id: &str, part: &PartRecord) -> Result<(), MetaError> {
        self.dirty = true;
        let bytes = encode(part)?;
        journal::insert(
            &mut self.parts,
            &mut self.redo,
            TableId::Parts,
            &keys::part_key(upload_id, part.part_number).as_slice(),
            &bytes.as_slice(),
        )?;
        Ok(())
    }

    /// Appends replication tasks for the version just written. `version` is that version when
    /// the write stored an object version (it travels with the tasks to the worker).
    pub(crate) fn push_outbox(
        &mut self,
        bucket_id: u64,
        key: &str,
        version_id: Option<&VersionId>,
        version: Option<&VersionRecord>,
        tasks: Vec<Vec<u8>>,
    ) -> Result<(), MetaError> {
        for task in tasks {
            let seq = self.take_counter(META_NEXT_OUTBOX_SEQ, 1)?;
            let entry = OutboxEntry { seq, bucket_id, key: key.to_owned(), version_id: version_id.cloned(), task };
            if let Some(fresh) = &mut self.fresh {
                let version = version.filter(|v| v.object().is_some()).cloned();
                fresh.push(FreshTask { entry: entry.clone(), version });
            }
            journal::insert(&mut self.outbox, &mut self.redo, TableId::Outbox, &seq, &encode(&entry)?.as_slice())?;
            journal::insert(
                &mut self.outbox_index,
                &mut self.redo,
                TableId::OutboxIndex,
                &entry.index_key().as_slice(),
                &(),
            )?;
        }
        Ok(())
    }

    /// Removes an outbox row and its index row.
    pub(crate) fn del_outbox(&mut self, entry: &OutboxEntry) -> Result<(), MetaError> {
        self.dirty = true;
        journal::remove(&mut self.outbox, &mut self.redo, TableId::Outbox, &entry.seq)?;
        journal::remove(&mut self.outbox_index, &mut self.redo, TableId::OutboxIndex, &entry.index_key().as_slice())?;
        Ok(())
    }

    /// Records a permanently failed task.
    pub(crate) fn put_failure(&mut self, failed: &FailedTask) -> Result<(), MetaError> {
        self.dirty = true;
        journal::insert(
            &mut self.failures,
            &mut self.redo,
            TableId::Failures,
            &failed.entry.seq,
            &encode(failed)?.as_slice(),
        )?;
        Ok(())
    }

    /// Removes a failure-table row (a failure superseded by a batch re-replication).
    pub(crate) fn del_failure(&mut self, seq: u64) -> Result<(), MetaError> {
        self.dirty = true;
        journal::remove(&mut self.failures, &mut self.redo, TableId::Failures, &seq)?;
        Ok(())
    }

    /// Stores the bytes of an inline object under a new id.
    pub(crate) fn put_inline(&mut self, bytes: &[u8]) -> Result<InlineRef, MetaError> {
        let id = self.take_counter(META_NEXT_INLINE_ID, 1)?;
        journal::insert(&mut self.inline_data, &mut self.redo, TableId::InlineData, &id, &bytes)?;
        Ok(InlineRef { id })
    }

    /// Releases what a version removed in this transaction referenced: its inline row is
    /// deleted now (same transaction, so it can never leak); its blob files are returned for
    /// the caller to delete after the commit.
    pub(crate) fn free_version(&mut self, record: &VersionRecord) -> Result<Vec<BlobSegment>, MetaError> {
        let Some(object) = record.object() else { return Ok(Vec::new()) };
        if let Some(inline) = object.inline {
            self.dirty = true;
            journal::remove(&mut self.inline_data, &mut self.redo, TableId::InlineData, &inline.id)?;
        }
        Ok(object.blob.segments.clone())
    }

    /// Rewrites an existing version in place (same stamp), and its head if it is current.
    pub(crate) fn replace_version(
        &mut self,
        bucket_id: u64,
        key: &str,
        record: &VersionRecord,
    ) -> Result<(), MetaError> {
        let is_current =
            objects::newest_version(&self.versions, bucket_id, key)?.is_some_and(|n| n.stamp == record.stamp);
        self.put_version(bucket_id, key, record)?;
        if is_current {
            self.set_head(bucket_id, key, Some(record))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    use xregion_types::{BucketName, VersioningState};

    use super::*;
    use crate::ops::Precondition;
    use crate::tests::{data, put_op, upload};

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let db = redb::Database::create(&path).unwrap();
        let (journal, _) = journal::recover(&db, &journal::path_for(&path)).unwrap();
        let max = crate::store::init_tables(&db).unwrap();
        let writer = Writer {
            db: Arc::new(DbSlot::new(&path, db)),
            last_reopen: None,
            journal,
            clock: VersionClock::new(),
            persisted_max_stamp: max,
            stats: Arc::default(),
            fresh: Arc::default(),
            faults: Arc::default(),
            timing: GroupTiming::default(),
        };
        (dir, writer)
    }

    fn create(name: &str) -> WriteOp {
        WriteOp::CreateBucket { name: BucketName::parse(name).unwrap(), created_ms: 0 }
    }

    fn counts(writer: &Writer) -> (u64, u64, u64) {
        let txn = writer.db.current().unwrap().begin_read().unwrap();
        (
            txn.open_table(BUCKETS).unwrap().len().unwrap(),
            txn.open_table(VERSIONS).unwrap().len().unwrap(),
            txn.open_table(OUTBOX).unwrap().len().unwrap(),
        )
    }

    /// A failing op in a group leaves nothing behind and does not fail its neighbours; later
    /// ops see the effects of earlier ops of the same group.
    #[test]
    fn failing_op_fails_alone_within_its_group() {
        let (_dir, mut writer) = writer();
        let conditional = WriteOp::PutVersion {
            bucket: "grp".into(),
            key: "k".into(),
            data: data("x"),
            inline: None,
            replica: None,
            precondition: Some(Precondition::IfMatch("nope".into())),
            outbox: vec![b"t".to_vec()].into(),
        };
        let mut with_task = put_op("grp", "k2", "e2");
        if let WriteOp::PutVersion { outbox, .. } = &mut with_task {
            *outbox = vec![b"task".to_vec()].into();
        }
        let results =
            writer.commit_group(vec![create("grp"), conditional, put_op("grp", "k", "e1"), create("grp"), with_task]);
        assert!(matches!(results[0], Ok(WriteOutcome::Bucket(_))));
        assert_eq!(results[1], Err(MetaError::NoSuchKey));
        assert!(matches!(results[2], Ok(WriteOutcome::Version { .. })));
        assert!(matches!(results[3], Err(MetaError::BucketAlreadyExists(_))));
        assert!(matches!(results[4], Ok(WriteOutcome::Version { .. })));
        assert_eq!(counts(&writer), (1, 2, 1));
        assert_eq!(writer.stats.groups.load(Ordering::Relaxed), 1);
    }

    /// An op that fails after it started writing poisons the transaction: the whole group
    /// fails and nothing of it is committed.
    #[test]
    fn failure_after_writing_fails_the_whole_group() {
        let (_dir, mut writer) = writer();
        let results = writer.commit_group(vec![create("keep"), create("doomed")]);
        let Ok(WriteOutcome::Bucket(doomed)) = &results[1] else { panic!() };
        let setup = writer.commit_group(vec![
            WriteOp::CreateUpload { record: upload(doomed.id, "k", "u") },
            WriteOp::SetVersioning { name: "keep".into(), state: VersioningState::Enabled },
        ]);
        assert!(setup.iter().all(Result::is_ok));
        // Corrupt the upload's part: DeleteBucket validates, starts removing, then fails.
        {
            let txn = writer.db.current().unwrap().begin_write().unwrap();
            txn.open_table(PARTS).unwrap().insert(keys::part_key("u", 1).as_slice(), &b"\x09junk"[..]).unwrap();
            txn.commit().unwrap();
        }
        let results =
            writer.commit_group(vec![put_op("keep", "k", "e"), WriteOp::DeleteBucket { name: "doomed".into() }]);
        assert!(matches!(&results[0], Err(MetaError::Corrupt(_))));
        assert!(matches!(&results[1], Err(MetaError::Corrupt(_))));
        assert_eq!(counts(&writer), (2, 0, 0));
        assert_eq!(writer.stats.failed_groups.load(Ordering::Relaxed), 1);
        // The writer carries on with the next group.
        let results = writer.commit_group(vec![put_op("keep", "k", "e")]);
        assert!(results[0].is_ok());
        assert_eq!(counts(&writer), (2, 1, 0));
    }

    /// Counters advance once per id across the ops of a group, are stored with the group,
    /// and a group that fails takes none of its ids with it.
    #[test]
    fn counters_are_taken_per_group_and_stored_with_it() {
        let (_dir, mut writer) = writer();
        let with_tasks = |key: &str, n: usize| {
            let mut op = put_op("ctr", key, "e");
            if let WriteOp::PutVersion { outbox, .. } = &mut op {
                *outbox = vec![b"task".to_vec(); n].into();
            }
            op
        };
        let stored = |writer: &Writer| {
            let txn = writer.db.current().unwrap().begin_read().unwrap();
            txn.open_table(META).unwrap().get(META_NEXT_OUTBOX_SEQ).unwrap().map(|g| g.value())
        };
        let seqs = |writer: &Writer| -> Vec<u64> {
            let txn = writer.db.current().unwrap().begin_read().unwrap();
            let outbox = txn.open_table(OUTBOX).unwrap();
            outbox.iter().unwrap().map(|r| r.unwrap().0.value()).collect()
        };
        let first = writer.commit_group(vec![create("ctr"), create("doomed"), with_tasks("a", 2), with_tasks("b", 1)]);
        let Ok(WriteOutcome::Bucket(doomed)) = &first[1] else { panic!("{first:?}") };
        assert!(first.iter().all(Result::is_ok));
        assert_eq!(seqs(&writer), [1, 2, 3]);
        assert_eq!(stored(&writer), Some(4));
        // A group that fails after taking ids (DeleteBucket meets a corrupt part, as in
        // `failure_after_writing_fails_the_whole_group`): nothing of it is stored, the counter
        // included.
        let setup = writer.commit_group(vec![WriteOp::CreateUpload { record: upload(doomed.id, "k", "u") }]);
        assert!(setup[0].is_ok());
        {
            let txn = writer.db.current().unwrap().begin_write().unwrap();
            txn.open_table(PARTS).unwrap().insert(keys::part_key("u", 1).as_slice(), &b"\x09junk"[..]).unwrap();
            txn.commit().unwrap();
        }
        let failed = writer.commit_group(vec![with_tasks("c", 2), WriteOp::DeleteBucket { name: "doomed".into() }]);
        assert!(failed.iter().all(Result::is_err), "{failed:?}");
        assert_eq!(stored(&writer), Some(4));
        let next = writer.commit_group(vec![with_tasks("d", 1), with_tasks("e", 1), create("third")]);
        assert!(next.iter().all(Result::is_ok));
        assert_eq!(seqs(&writer), [1, 2, 3, 4, 5]);
        assert_eq!(stored(&writer), Some(6));
        // Each counter on its own: bucket ids went 1, 2 and now 3.
        let Ok(WriteOutcome::Bucket(third)) = &next[2] else { panic!("{next:?}") };
        assert_eq!(third.id, doomed.id + 1);
    }

    /// The largest stamp is persisted with the group that used it.
    #[test]
    fn max_stamp_is_persisted() {
        let (_dir, mut writer) = writer();
        let results = writer.commit_group(vec![create("stamp"), put_op("stamp", "k", "e")]);
        let Ok(WriteOutcome::Version { record, .. }) = &results[1] else { panic!() };
        let txn = writer.db.current().unwrap().begin_read().unwrap();
        let stored = txn.open_table(META).unwrap().get(META_MAX_STAMP).unwrap().unwrap().value();
        assert_eq!(stored, record.stamp);
    }
}
