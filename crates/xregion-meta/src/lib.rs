//! Metadata store of xregion, on [redb]: buckets, object versions and delete markers,
//! listing, multipart uploads and the replication outbox.
//!
//! **Owns**: one redb file per region. Every table is declared in `schema.rs`, every key
//! encoding in `keys.rs`, every value encoding in `codec.rs` (a format-version byte, then
//! postcard). The layout is described in `docs/design/metadata-layout.md`.
//!
//! **Never does**: network I/O, blob I/O (it only records [`xregion_types::BlobRef`]s and
//! reports blobs that became unreferenced as `freed`, for the caller to delete *after* the
//! commit), or HTTP/S3 error mapping (callers map [`MetaError`]).
//!
//! **Tables** (`‖` is concatenation, integers big-endian, `enc` the escaped key of `keys.rs`):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | `u64` counters: schema version, next bucket id, max stamp, next outbox seq |
//! | `buckets` | bucket name | `BucketRecord` |
//! | `bucket_ids` | bucket id | bucket name |
//! | `versions` | `bucket_id ‖ enc(key) ‖ !stamp` | `VersionRecord` (newest first within a key) |
//! | `heads` | `bucket_id ‖ enc(key)` | current `VersionRecord`, only if it is not a delete marker |
//! | `nulls` | `bucket_id ‖ enc(key)` | stamp of the key's `null` version |
//! | `uploads` | upload id | `UploadRecord` |
//! | `upload_index` | `bucket_id ‖ enc(key) ‖ upload_id` | `()` |
//! | `parts` | `enc(upload_id) ‖ part_number` | `PartRecord` |
//! | `outbox` | seq | `OutboxEntry` (replication task + version coordinates) |
//! | `outbox_index` | `stamp ‖ bucket_id ‖ enc(key) ‖ enc(version_id) ‖ seq` | `()`: a version's outbox rows |
//! | `replication_failures` | seq | `FailedTask` (task + IAM-8 reason) |
//!
//! **Reads** are synchronous, each one redb read transaction (a consistent snapshot), and
//! quick: point lookups or bounded range scans.
//!
//! **Writes and the group-commit contract**: every [`WriteOp`] goes to ONE writer thread. It
//! drains up to 256 queued ops, applies them in order in one write transaction, commits once
//! with `Durability::Immediate` (one fsync), then replies to each caller. A reply therefore
//! means durable. Each op validates fully before it writes, so an op that fails leaves nothing
//! behind and does not fail its neighbours; a storage error (or a failure after an op began
//! writing, or a failed commit) fails every op of the group and commits none. A version and
//! its outbox tasks are always in the same transaction (design invariant 2).
//!
//! **Version order**: the writer owns a [`xregion_types::VersionClock`], seeded on open from the
//! largest stamp ever committed (kept in `meta`), so stamps never go backwards across restarts.
//! A new version's stamp is larger than every stamp of its key; generated ids embed the stamp.
//!
//! ```no_run
//! # async fn demo() -> Result<(), xregion_meta::MetaError> {
//! use xregion_meta::{MetaStore, WriteOp, WriteOutcome};
//! use xregion_types::BucketName;
//!
//! let store = MetaStore::open(std::path::Path::new("/var/lib/xregion/meta.redb"))?;
//! let name = BucketName::parse("photos").expect("valid name");
//! let WriteOutcome::Bucket(bucket) = store.write(WriteOp::CreateBucket { name, created_ms: 0 }).await? else {
//!     unreachable!()
//! };
//! assert_eq!(store.get_bucket("photos")?, Some(bucket));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod buckets;
mod codec;
mod error;
mod fresh;
mod jobs;
mod journal;
mod keys;
pub mod listing;
pub mod multipart;
mod objects;
pub mod ops;
pub mod queue;
mod schema;
mod slot;
mod store;
mod writer;

#[cfg(test)]
mod tests;

pub use error::MetaError;
pub use fresh::{FreshTask, FreshTasks};
pub use listing::{ListObjectsPage, ListObjectsQuery, ListVersionsPage, ListVersionsQuery, VersionEntry};
pub use multipart::{ListUploadsPage, ListUploadsQuery, PartRecord, UploadRecord};
pub use ops::{Outbox, Plan, Planner, Precondition, WriteOp, WriteOutcome};
pub use queue::{FailedTask, OutboxEntry};
pub use store::{MetaStore, WriterStats};
