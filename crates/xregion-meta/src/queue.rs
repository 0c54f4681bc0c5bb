//! The replication outbox: opaque tasks committed in the same transaction as the version they
//! describe (design invariant 2), the ops that finish them (`CompleteTask`, `FailTask`), and the
//! record a permanently failed task leaves behind.
//!
//! Status aggregation per version (STS-7): any failed task → `Failed` (sticky); else any task
//! left in the outbox → `Pending`; else `Completed`. A replica's tasks are replica
//! modification syncs (TWO-4); it goes `ReplicaPending` → `Replica`, or `ReplicaFailed`
//! (STS-10). The `outbox_index` table makes "any task
//! left for this version?" a range scan over that version's rows only.
//!
//! Only a failure is written into the version row. Success is not: a version stored as
//! `Pending` (`ReplicaPending`) with no task left *reads* `Completed` (`Replica`), see
//! [`settle`]. Finishing a task is then two deletes instead of rewriting the version and its
//! head, which was a third of the source writer's work per replicated PUT.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use xregion_types::{ReplicationStatus, VersionId, VersionRecord};

use crate::codec::decode;
use crate::error::MetaError;
use crate::keys;
use crate::objects::find_version;
use crate::ops::WriteOutcome;
use crate::writer::WTables;

/// One stored outbox task, wrapped with the coordinates of the version it was committed with
/// (the caller cannot know a generated version id before the commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Sequence number, increasing in commit order, never reused.
    pub seq: u64,
    /// Bucket id of the version.
    pub bucket_id: u64,
    /// Object key of the version.
    pub key: String,
    /// The version (or delete marker) the write created; `None` if it created none.
    pub version_id: Option<VersionId>,
    /// The caller's opaque task.
    pub task: Vec<u8>,
}

impl OutboxEntry {
    /// This entry's `outbox_index` key.
    pub(crate) fn index_key(&self) -> Vec<u8> {
        keys::outbox_index_key(self.bucket_id, &self.key, self.version_id.as_ref(), self.seq)
    }
}

/// A task that failed permanently (`FailTask`): kept for inspection and for a later batch
/// re-replication (BAT-1c). Keyed by the task's sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedTask {
    /// The task as it was in the outbox.
    pub entry: OutboxEntry,
    /// Failure reason (IAM-8 code, e.g. `DstBucketUnversioned`).
    pub reason: String,
    /// When it failed, unix milliseconds.
    pub failed_ms: i64,
}

/// The outbox row `seq`, if it is still there.
pub(crate) fn get<T>(outbox: &T, seq: u64) -> Result<Option<OutboxEntry>, MetaError>
where
    T: ReadableTable<u64, &'static [u8]>,
{
    match outbox.get(seq)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// True if any `outbox_index` row of this version is left.
fn any_task_left<T>(outbox_index: &T, bucket_id: u64, key: &str, version_id: &VersionId) -> Result<bool, MetaError>
where
    T: ReadableTable<&'static [u8], ()>,
{
    let prefix = keys::outbox_version_prefix(bucket_id, key, Some(version_id));
    let (lower, upper) = keys::prefix_range(&prefix);
    Ok(outbox_index.range::<&[u8]>(keys::bounds(&lower, &upper))?.next().transpose()?.is_some())
}

/// The status a stored version reads with (STS-4, STS-7, STS-10): a `Pending` version whose
/// tasks are all finished is `Completed`, a `ReplicaPending` one is `Replica`. Every record
/// handed out by the store goes through this; see the module comment for why success is not
/// written.
pub(crate) fn settle<T>(
    outbox_index: &T,
    bucket_id: u64,
    key: &str,
    record: &mut VersionRecord,
) -> Result<(), MetaError>
where
    T: ReadableTable<&'static [u8], ()>,
{
    let finished = match record.replication {
        ReplicationStatus::Pending => ReplicationStatus::Completed,
        ReplicationStatus::ReplicaPending => ReplicationStatus::Replica,
        _ => return Ok(()),
    };
    if !any_task_left(outbox_index, bucket_id, key, &record.version_id)? {
        record.replication = finished;
    }
    Ok(())
}

/// `CompleteTask`: the destination acknowledged the task. Removes the row; if it was the
/// version's last row, the version reads `Completed` unless a task of it failed (STS-4,
/// STS-7). Idempotent: an unknown `seq` (already finished) is `Done`.
pub(crate) fn complete(t: &mut WTables<'_>, seq: u64) -> Result<WriteOutcome, MetaError> {
    Ok(WriteOutcome::TaskFinished { status: finish(t, seq, None)? })
}

/// `FailTask`: the task failed permanently (STS-5, IAM-8). Removes the row, records the failure
/// with its reason, and marks the version `Failed` (terminal, STS-6). Idempotent like
/// [`complete`].
pub(crate) fn fail(t: &mut WTables<'_>, seq: u64, reason: String) -> Result<WriteOutcome, MetaError> {
    Ok(WriteOutcome::TaskFinished { status: finish(t, seq, Some(reason))? })
}

/// `FinishTasks`: [`complete`] or [`fail`] for each task, in order, without working out the
/// version's status afterwards: a completed task is only its two deletes (reading the version
/// and scanning its other tasks for a status nobody asked for cost the source writer, the
/// serial bottleneck, a few per cent of its work per replicated PUT). A task's error (corrupt
/// data, storage) after an earlier one wrote fails the whole group, as any op that fails
/// half-way does.
pub(crate) fn finish_many(t: &mut WTables<'_>, tasks: Vec<(u64, Option<String>)>) -> Result<WriteOutcome, MetaError> {
    let finished = tasks
        .into_iter()
        .map(|(seq, failure)| match failure {
            None => remove(t, seq),
            Some(reason) => {
                let present = get(&t.outbox, seq)?.is_some();
                finish(t, seq, Some(reason)).map(|_| present)
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(WriteOutcome::TasksFinished { finished })
}

/// `ReplicateVersion` (batch replication, BAT-1/BAT-3): see the op. The status is judged as
/// it reads (settled), so `Completed` means "every task finished", and a version with tasks
/// still in the outbox is never queued twice.
pub(crate) fn replicate_again(
    t: &mut WTables<'_>,
    bucket: &str,
    key: &str,
    version_id: &VersionId,
    statuses: &[ReplicationStatus],
    outbox: crate::ops::Outbox,
    clear_failures: &[u64],
) -> Result<WriteOutcome, MetaError> {
    let bucket = crate::buckets::by_name(t, bucket)?;
    let crate::ops::Plan { tasks, targets } = outbox.resolve(bucket.replication.as_deref())?;
    let Some(mut record) = find_version(&t.versions, &t.nulls, bucket.id, key, version_id)? else {
        return Ok(WriteOutcome::Queued(false));
    };
    settle(&t.outbox_index, bucket.id, key, &mut record)?;
    let in_flight = matches!(record.replication, ReplicationStatus::Pending | ReplicationStatus::ReplicaPending);
    // BAT-3: `Replica` asks for every replica, whether its last sync failed or not.
    let asked = match record.replication {
        ReplicationStatus::ReplicaFailed => statuses.contains(&ReplicationStatus::Replica),
        ref status => statuses.contains(status),
    };
    if tasks.is_empty() || in_flight || !asked {
        return Ok(WriteOutcome::Queued(false));
    }

    // Validation done: write. A replica stays a replica (BAT-1d, STS-10): it reads PENDING
    // while its tasks run, then REPLICA again (or ReplicaFailed).
    if record.replication.is_replica() {
        record.replication = ReplicationStatus::ReplicaPending;
    } else {
        record.replication = ReplicationStatus::Pending;
        if record.object().is_some() {
            record.replication_targets = targets;
        }
    }
    t.replace_version(bucket.id, key, &record)?;
    for &seq in clear_failures {
        t.del_failure(seq)?;
    }
    let version = record.object().is_some().then_some(&record);
    t.push_outbox(bucket.id, key, Some(&record.version_id), version, tasks)?;
    Ok(WriteOutcome::Queued(true))
}

/// Removes outbox row `seq` (a completed task; success is not written, see [`settle`]).
/// False if it was already gone.
fn remove(t: &mut WTables<'_>, seq: u64) -> Result<bool, MetaError> {
    let Some(entry) = get(&t.outbox, seq)? else {
        return Ok(false);
    };
    t.del_outbox(&entry)?;
    Ok(true)
}

/// Finishes one task; the version's status afterwards (`None`: task or version gone).
fn finish(t: &mut WTables<'_>, seq: u64, failure: Option<String>) -> Result<Option<ReplicationStatus>, MetaError> {
    let Some(entry) = get(&t.outbox, seq)? else {
        return Ok(None);
    };
    let version = match &entry.version_id {
        Some(id) => find_version(&t.versions, &t.nulls, entry.bucket_id, &entry.key, id)?,
        None => None,
    };

    // Validation done: write.
    t.del_outbox(&entry)?;
    if let Some(reason) = &failure {
        t.put_failure(&FailedTask {
            entry: entry.clone(),
            reason: reason.clone(),
            failed_ms: xregion_types::now_ms(),
        })?;
    }
    // The version may be gone (deleted by id before its task ran): nothing to mark.
    let Some(mut record) = version else {
        return Ok(None);
    };
    // A replica's tasks are replica modification syncs (TWO-4); it stays a replica (STS-10).
    let failed = match (&failure, &record.replication) {
        (_, ReplicationStatus::None) | (None, _) => None,
        (Some(_), status) if status.is_replica() => Some(ReplicationStatus::ReplicaFailed),
        (Some(_), _) => Some(ReplicationStatus::Failed),
    };
    match failed {
        // A failure is sticky (STS-6) and written into the version.
        Some(status) if status != record.replication => {
            record.replication = status;
            t.replace_version(entry.bucket_id, &entry.key, &record)?;
        }
        Some(_) => {}
        // Success is not written: the version reads settled (see `settle`).
        None => settle(&t.outbox_index, entry.bucket_id, &entry.key, &mut record)?,
    }
    Ok(Some(record.replication))
}
