//! The write vocabulary: every mutation of the store is one [`WriteOp`] applied by the writer
//! thread, answered by one [`WriteOutcome`].

use xregion_types::job::{JobRecord, JobTask};
use xregion_types::{
    BlobSegment, BucketName, BucketRecord, Encryption, ObjectData, ReplicationStatus, VersionId, VersionRecord,
    VersioningState,
};

use crate::error::MetaError;
use crate::multipart::{PartRecord, UploadRecord};

/// Plans replication tasks under a bucket's replication configuration bytes (`None`: no
/// configuration). Provided by the caller; this crate never looks inside tasks or configs.
pub type Planner = dyn Fn(Option<&[u8]>) -> Result<Plan, String> + Send + Sync;

/// What a [`Planner`] decided for one write: the opaque tasks, and the names of the targets
/// they go to, which a new version records (`VersionRecord::replication_targets`, ELI-12).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Opaque tasks, committed into the outbox in this order.
    pub tasks: Vec<Vec<u8>>,
    /// Where the tasks go (one name per target, in plan order); empty when unknown.
    pub targets: Vec<String>,
}

/// The replication tasks a write commits with its version (design invariant 2), opaque here.
///
/// CON-5: a configuration change applies to every write that commits after it. The caller
/// plans before the write reaches the writer thread, so a configuration stored in between
/// would be missed; with [`Outbox::planned`], the writer compares the configuration inside
/// the transaction with the one the tasks were planned under and, if it changed, plans again
/// there with the caller's planner.
#[derive(Clone, Default)]
pub struct Outbox {
    plan: Plan,
    replan: Option<(Option<Vec<u8>>, std::sync::Arc<Planner>)>,
}

impl Outbox {
    /// Tasks that stand as they are, with no targets recorded (replica writes, tests).
    pub fn fixed(tasks: Vec<Vec<u8>>) -> Self {
        Self { plan: Plan { tasks, targets: Vec::new() }, replan: None }
    }

    /// A plan made under configuration bytes `planned_under`, with the planner to run again
    /// if the bucket's configuration is different at commit time.
    pub fn planned(plan: Plan, planned_under: Option<Vec<u8>>, planner: std::sync::Arc<Planner>) -> Self {
        Self { plan, replan: Some((planned_under, planner)) }
    }

    /// Number of tasks planned (before any re-planning).
    pub fn len(&self) -> usize {
        self.plan.tasks.len()
    }

    /// True if no task was planned.
    pub fn is_empty(&self) -> bool {
        self.plan.tasks.is_empty()
    }

    /// The plan under the bucket's current configuration bytes.
    pub(crate) fn resolve(self, current: Option<&[u8]>) -> Result<Plan, MetaError> {
        match self.replan {
            Some((planned_under, planner)) if planned_under.as_deref() != current => {
                planner(current).map_err(|e| MetaError::Corrupt(format!("replanning replication: {e}")))
            }
            _ => Ok(self.plan),
        }
    }
}

impl From<Vec<Vec<u8>>> for Outbox {
    fn from(tasks: Vec<Vec<u8>>) -> Self {
        Self::fixed(tasks)
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("tasks", &self.plan.tasks.len()).field("replan", &self.replan.is_some()).finish()
    }
}

/// One mutation. Ops are validated completely before anything is written, so a failing op
/// leaves no trace and never fails the other ops of its commit group.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Creates a bucket (Unversioned, no tags). `Err(BucketAlreadyExists)` if the name exists.
    CreateBucket {
        /// Bucket name.
        name: BucketName,
        /// Creation time, unix milliseconds.
        created_ms: i64,
    },
    /// Deletes an empty bucket and aborts its in-progress uploads (outcome: `Freed` part blobs).
    /// `Err(NoSuchBucket | BucketNotEmpty)` (VER-18: any version or delete marker counts).
    DeleteBucket {
        /// Bucket name.
        name: String,
    },
    /// Sets the versioning state: `Enabled` or `Suspended` only (VER-2). `Suspended` while a
    /// replication configuration is present is `Err(InvalidBucketState)` (VER-4).
    SetVersioning {
        /// Bucket name.
        name: String,
        /// New state.
        state: VersioningState,
    },
    /// Replaces the bucket tags; an empty vec deletes them.
    SetBucketTags {
        /// Bucket name.
        name: String,
        /// New tag set.
        tags: Vec<(String, String)>,
    },
    /// Sets or removes the replication configuration (opaque document). Setting one on a bucket
    /// whose versioning is not `Enabled` is `Err(InvalidRequest)` (VAL-2).
    SetReplication {
        /// Bucket name.
        name: String,
        /// New configuration, `None` to delete it.
        config: Option<Vec<u8>>,
    },
    /// Stores (or with `None` removes) a bucket's lifecycle configuration.
    SetLifecycle {
        /// Bucket name.
        name: String,
        /// New configuration, `None` to delete it.
        config: Option<Vec<u8>>,
    },
    /// Stores (or with `None` removes) a bucket's default encryption rule.
    SetBucketEncryption {
        /// Bucket name.
        bucket: String,
        /// New rule, `None` to delete it.
        encryption: Option<xregion_types::BucketEncryption>,
    },
    /// Writes a new object version. The versioning state is read inside the transaction:
    /// Enabled → a new generated id (VER-8); Unversioned/Suspended → the `null` id, replacing
    /// an existing null version, object or delete marker (VER-9). The stored version is
    /// `Pending` when `outbox` is non-empty, else `ReplicationStatus::None`.
    ///
    /// `replica: Some(record)` stores exactly that version id, stamp, last-modified and
    /// replication status (replication writes). The stored kind is `data` unless `record` is a
    /// delete marker (delete-marker replication), in which case `data` is ignored. Idempotent:
    /// if that id is already present nothing changes (a `null` replica replaces an older null
    /// version only), and `data`'s blob is reported as freed.
    PutVersion {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Object data and metadata (blob already durable). `data.inline` is set by the writer.
        data: ObjectData,
        /// The whole body of a small object, stored in the `inline_data` table in the same
        /// transaction as the version (`data.blob` must then be empty and `data.size` its
        /// length). Not stored when the op stores nothing (an idempotent replica replay).
        inline: Option<Vec<u8>>,
        /// Replica record to store verbatim, for replication writes.
        replica: Option<VersionRecord>,
        /// Conditional write (VER-11).
        precondition: Option<Precondition>,
        /// Replication tasks, committed atomically with the version (design invariant 2).
        outbox: Outbox,
    },
    /// DELETE without versionId (VER-15).
    DeleteObject {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Replication tasks for the delete marker, committed atomically with it.
        outbox: Outbox,
        /// Only if the key's newest version is still this one (`PreconditionFailed` if not):
        /// lifecycle expiration decided on it, and must not hide a version written since.
        if_current: Option<VersionId>,
    },
    /// DELETE with versionId (VER-16). An unknown version is `Ok` with `removed: None`.
    DeleteVersion {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Version to remove permanently (`Null` for the null version).
        version_id: VersionId,
    },
    /// Replaces the tags of a version (`None` = current). A delete marker is
    /// `Err(MethodNotAllowed)` (VER-14). Creates no version (VER-10).
    ///
    /// `outbox`: replication tasks for the tag change (ELI-12), committed atomically with it. A
    /// `Completed` version goes back to `Pending` while they run (STS-8); `Failed` stays.
    SetObjectTags {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Version to tag, `None` for the current version.
        version_id: Option<VersionId>,
        /// New tag set (empty deletes the tags).
        tags: Vec<(String, String)>,
        /// `None`: a change made here, stamped now (and later than the stored tags). `Some`:
        /// a replicated change made at that time (unix ms) in another region, applied only if
        /// it is newer than the stored tags (TWO-8, last writer wins; see `objects::set_tags`).
        replicated_ms: Option<i64>,
        /// Replication tasks for the tag change.
        outbox: Outbox,
    },
    /// A replication task succeeded: removes outbox row `seq`; when it was its version's last
    /// row the version becomes `Completed` unless it is `Failed` (STS-4, STS-7). An unknown
    /// `seq` is a no-op (idempotent). Outcome: `TaskFinished`.
    CompleteTask {
        /// Outbox sequence number.
        seq: u64,
    },
    /// A replication task failed permanently: removes outbox row `seq`, records it with
    /// `reason` (see `MetaStore::list_failures`) and marks the version `Failed` (STS-5, STS-6).
    /// An unknown `seq` is a no-op. Outcome: `TaskFinished`.
    FailTask {
        /// Outbox sequence number.
        seq: u64,
        /// Failure reason (IAM-8 code).
        reason: String,
    },
    /// Several tasks finished at once, each exactly as `CompleteTask` (`None`) or `FailTask`
    /// (`Some(reason)`) would finish it, in order. One op for a whole replication batch, so
    /// that finishing it costs the writer one request, not one per task. Outcome:
    /// `TasksFinished`, per task in the same order whether it was still in the outbox.
    FinishTasks {
        /// Outbox sequence numbers, each with its failure reason if it failed.
        tasks: Vec<(u64, Option<String>)>,
    },
    /// Batch replication (BAT-1, BAT-3): queues `outbox` for an existing version or delete
    /// marker whose status (as it reads, settled) is one of `statuses`, and marks it `Pending`
    /// (an object version also records the plan's targets, ELI-12); a replica (`Replica` asked
    /// for; also one whose last sync failed) becomes `ReplicaPending` (BAT-1d). Versions with
    /// tasks in flight, with another status, or gone, and empty plans, are left alone.
    /// `clear_failures`: rows of the failure table this re-replication supersedes (BAT-1c),
    /// removed in the same transaction. Outcome: `Queued`.
    ReplicateVersion {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version or delete marker.
        version_id: VersionId,
        /// The statuses that may be replicated again.
        statuses: Vec<ReplicationStatus>,
        /// Replication tasks (re-planned if the configuration changed, CON-5).
        outbox: Outbox,
        /// Failure-table rows (task sequence numbers) to remove if the version is queued.
        clear_failures: Vec<u64>,
    },
    /// Records a new multipart upload. `Err(NoSuchBucket)` if `record.bucket_id` is gone.
    CreateUpload {
        /// The upload (its id must be new).
        record: UploadRecord,
    },
    /// Stores a part, replacing the same part number (the old blob is reported as freed).
    PutPart {
        /// Upload id.
        upload_id: String,
        /// The part (blob already durable).
        part: PartRecord,
    },
    /// Atomically removes the upload and its parts and inserts the version (same semantics as
    /// `PutVersion`). Parts whose blob is not referenced by `data.blob` are reported as freed.
    CompleteUpload {
        /// Upload id.
        upload_id: String,
        /// The assembled object's data; `data.blob` lists the used parts' segments.
        data: ObjectData,
        /// Part numbers the client listed; each must exist, else `Err(InvalidPart)`.
        used_parts: Vec<u32>,
        /// Conditional write (VER-11).
        precondition: Option<Precondition>,
        /// Replication tasks, committed atomically with the version.
        outbox: Outbox,
    },
    /// Removes the upload and its parts (outcome: `Freed` part blobs).
    AbortUpload {
        /// Upload id.
        upload_id: String,
    },
    /// Stores a new batch replication job under the next job sequence number (`record.seq` is
    /// ignored). Outcome: `Job` with the stored record.
    CreateJob {
        /// The job.
        record: JobRecord,
    },
    /// Replaces a job's record and stores task rows (`(task number, task)`, each replacing the
    /// same number), in one transaction: a manifest page with the listing position after it,
    /// or outcomes with the counts that include them. `Err(Corrupt)` if the job is unknown.
    /// Outcome: `Done`.
    UpdateJob {
        /// The job (by `seq`).
        record: JobRecord,
        /// Task rows to store.
        tasks: Vec<(u64, JobTask)>,
    },
    /// Removes up to `limit` task rows of a job, and the job's record once it has none left
    /// (a finished job past its retention). Outcome: `Forgot(true)` when the job is gone.
    ForgetJob {
        /// The job's sequence number.
        seq: u64,
        /// Most task rows removed in this transaction.
        limit: usize,
    },
    /// Replaces an encrypted version's wrapped data key (after a master key rotation, the
    /// same data key wrapped by the newest master key), if the version still has `from`;
    /// nothing else changes and no byte is rewritten. Outcome: `Rewrapped(false)` when the
    /// version is gone or has another key (a concurrent rewrap, a replaced null version).
    RewrapVersionKey {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version.
        version_id: VersionId,
        /// The wrapped key it must have.
        from: Encryption,
        /// The wrapped key it gets.
        to: Encryption,
    },
    /// The same for a multipart upload's data key (its completed version keeps the upload's).
    RewrapUploadKey {
        /// The upload.
        upload_id: String,
        /// The wrapped key it must have.
        from: Encryption,
        /// The wrapped key it gets.
        to: Encryption,
    },
}

/// A conditional-write precondition, evaluated against the key's current version (VER-11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `If-None-Match: *`: fails if a current object exists; a current delete marker counts as
    /// absent.
    IfNoneMatchAny,
    /// `If-Match: <etag>` (without quotes): current missing or a delete marker → `NoSuchKey`,
    /// etag mismatch → `PreconditionFailed`.
    IfMatch(String),
}

/// The result of one [`WriteOp`].
#[allow(
    clippy::large_enum_variant,
    reason = "a short-lived value moved once from the writer thread to the caller; boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The bucket after the change (`CreateBucket`, `SetVersioning`, tags, replication).
    Bucket(BucketRecord),
    /// The version written (`PutVersion`, `CompleteUpload`). `freed`: blobs no longer
    /// referenced (replaced null version, unused parts), to delete AFTER the commit.
    Version {
        /// The stored version.
        record: VersionRecord,
        /// Blobs that became unreferenced.
        freed: Vec<BlobSegment>,
    },
    /// A delete (`DeleteObject`, `DeleteVersion`).
    Deleted {
        /// The version permanently removed, if any.
        removed: Option<VersionRecord>,
        /// The delete marker created, if any.
        marker: Option<VersionRecord>,
        /// Blobs that became unreferenced.
        freed: Vec<BlobSegment>,
    },
    /// Tags were replaced on this version.
    Tags {
        /// The version whose tags changed.
        version_id: VersionId,
    },
    /// A replication task was finished (`CompleteTask`, `FailTask`).
    TaskFinished {
        /// The version's replication status afterwards; `None` if the task was already gone
        /// or its version no longer exists.
        status: Option<ReplicationStatus>,
    },
    /// Tasks were finished (`FinishTasks`). The versions' statuses are not worked out (read
    /// them; a task finished here settles as `CompleteTask`/`FailTask` would settle it).
    TasksFinished {
        /// Per task, in the op's order: false if it was already gone (finished before).
        finished: Vec<bool>,
    },
    /// `ReplicateVersion`: whether tasks were queued for the version.
    Queued(bool),
    /// `CreateJob`: the job as stored.
    Job(JobRecord),
    /// `ForgetJob`: whether the job is gone (false: task rows remain).
    Forgot(bool),
    /// The upload was recorded.
    Upload(UploadRecord),
    /// Blobs that became unreferenced (`PutPart`, `AbortUpload`, `DeleteBucket`).
    Freed(Vec<BlobSegment>),
    /// `RewrapVersionKey`, `RewrapUploadKey`: whether the key was replaced.
    Rewrapped(bool),
    /// Nothing to report.
    Done,
}
