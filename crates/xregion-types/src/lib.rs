//! Vocabulary of xregion: bucket names, object keys, version ids, version records and
//! replication status. No I/O, no async: every other crate depends on this one.
#![warn(missing_docs)]

pub mod bucket;
pub mod checksum;
pub mod job;
pub mod key;
pub mod lifecycle;
pub mod object;
pub mod replication;
pub mod version_id;

pub use bucket::{BucketEncryption, BucketName, BucketRecord, VersioningState};
pub use checksum::{ChecksumAlgorithm, ChecksumValue};
pub use key::ObjectKey;
pub use object::{
    BlobRef, BlobSegment, DEFAULT_CONTENT_TYPE, Encryption, InlineRef, ObjectData, ReplicationStatus, VersionKind,
    VersionRecord, now_ms,
};
pub use version_id::{STAMP_TAGS, VersionClock, VersionId, stamp_tag};

/// True for an I/O error that means the filesystem (or the user's quota on it) is full:
/// `ENOSPC` or `EDQUOT`. The one definition the blob store, the metadata store and the use
/// cases share, so they cannot disagree on what a full disk is.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

/// Input that breaks a naming or format rule. Carries the AWS error code to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    /// AWS error code, e.g. `InvalidBucketName`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl InvalidInput {
    /// Builds an error with an AWS code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}
