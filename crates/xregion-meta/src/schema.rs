//! Every redb table of the metadata store, in one place. See `docs/design/metadata-layout.md`.
//!
//! Keys are built in [`crate::keys`]; values are [`crate::codec`] bytes unless noted.

use redb::TableDefinition;

/// Counters and store-wide values (see the `META_*` names): `&str → u64`.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Bucket name → `BucketRecord`.
pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// Bucket id → bucket name (ids are never reused).
pub(crate) const BUCKET_IDS: TableDefinition<u64, &str> = TableDefinition::new("bucket_ids");
/// `bucket_id ‖ enc(key)` → copy of the current `VersionRecord`, only for keys whose current
/// version is an object (not a delete marker): `ListObjects` scans exactly what it returns.
pub(crate) const HEADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("heads");
/// `bucket_id ‖ enc(key) ‖ !stamp` → `VersionRecord` (objects and delete markers).
pub(crate) const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
/// `bucket_id ‖ enc(key)` → stamp of the key's null version (pointer into `versions`).
pub(crate) const NULLS: TableDefinition<&[u8], u64> = TableDefinition::new("nulls");
/// Upload id → `UploadRecord`.
pub(crate) const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
/// `bucket_id ‖ enc(key) ‖ upload_id` → `()`: `ListMultipartUploads` order.
pub(crate) const UPLOAD_INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("upload_index");
/// `enc(upload_id) ‖ part_number` → `PartRecord`.
pub(crate) const PARTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("parts");
/// Sequence number → `OutboxEntry` (replication tasks).
pub(crate) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// `stamp(8) ‖ bucket_id ‖ enc(key) ‖ enc(version_id) ‖ seq(8)` → `()`: the outbox rows of one
/// version, so "is any task of this version left?" is a bounded range scan, not an outbox scan.
pub(crate) const OUTBOX_INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("outbox_index");
/// Sequence number of a failed task → `FailedTask` (the task and its failure reason, IAM-8).
pub(crate) const FAILURES: TableDefinition<u64, &[u8]> = TableDefinition::new("replication_failures");

/// Inline-data id → the bytes of a small object, written in the same transaction as the one
/// version that references it (`ObjectData::inline`) and removed with it.
pub(crate) const INLINE_DATA: TableDefinition<u64, &[u8]> = TableDefinition::new("inline_data");

/// Job sequence number → `JobRecord` (batch replication jobs, BAT-2..BAT-7). Few rows: looked
/// up by job id with a scan.
pub(crate) const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
/// `job_seq(8) ‖ task_number(8)` (big-endian) → `JobTask`: a job's manifest and outcomes.
pub(crate) const JOB_TASKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("job_tasks");

/// `META` key: layout version of this database.
pub(crate) const META_SCHEMA: &str = "schema_version";
/// `META` key: the next bucket id to hand out.
pub(crate) const META_NEXT_BUCKET_ID: &str = "next_bucket_id";
/// `META` key: the largest version stamp ever committed (seeds the clock on open).
pub(crate) const META_MAX_STAMP: &str = "max_stamp";
/// `META` key: the next outbox sequence number.
pub(crate) const META_NEXT_OUTBOX_SEQ: &str = "next_outbox_seq";

/// `META` key: the epoch of the redo journal's records (see `journal.rs`).
pub(crate) const META_JOURNAL_EPOCH: &str = "journal_epoch";

/// `META` key: the next `inline_data` id (ids are never reused).
pub(crate) const META_NEXT_INLINE_ID: &str = "next_inline_id";

/// `META` key: the next job sequence number.
pub(crate) const META_NEXT_JOB_SEQ: &str = "next_job_seq";

/// The layout version written by this code. 2: `outbox_index` keys lead with the stamp
/// (layout 1 files are migrated on open, see `store::init_tables`).
pub(crate) const SCHEMA_VERSION: u64 = 2;
/// The previous layout, still opened (and migrated).
pub(crate) const SCHEMA_VERSION_1: u64 = 1;
