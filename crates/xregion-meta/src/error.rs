//! Errors of the metadata store.

use xregion_types::BucketRecord;

/// What can go wrong in the metadata store. Callers map these to S3 error codes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The bucket does not exist.
    #[error("the specified bucket does not exist")]
    NoSuchBucket,
    /// `CreateBucket` on a name that exists; carries the existing record.
    #[error("the requested bucket name is not available")]
    BucketAlreadyExists(BucketRecord),
    /// `DeleteBucket` while any version or delete marker remains (VER-18).
    #[error("the bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// The key has no current object (missing or a delete marker).
    #[error("the specified key does not exist")]
    NoSuchKey,
    /// The named version does not exist.
    #[error("the specified version does not exist")]
    NoSuchVersion,
    /// The multipart upload does not exist (completed, aborted or never created).
    #[error("the specified upload does not exist")]
    NoSuchUpload,
    /// A part named in `CompleteUpload` was never uploaded.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// A conditional write's precondition did not hold.
    #[error("at least one of the preconditions you specified did not hold")]
    PreconditionFailed,
    /// The target version is a delete marker (VER-14).
    #[error("the specified method is not allowed against this resource")]
    MethodNotAllowed,
    /// The bucket's state forbids the change (VER-4).
    #[error("invalid bucket state: {0}")]
    InvalidBucketState(String),
    /// The request is not valid in the bucket's current configuration (VAL-2).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An argument breaks a rule (bad key, bad version id, bad part number).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Stored data could not be decoded or breaks an invariant.
    #[error("metadata corrupt: {0}")]
    Corrupt(String),
    /// The storage engine failed (I/O, commit).
    #[error("metadata storage error: {0}")]
    Storage(String),
    /// The writer thread is gone (store shut down or crashed).
    #[error("metadata writer is gone")]
    WriterGone,
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for MetaError {
            fn from(e: $t) -> Self {
                MetaError::Storage(e.to_string())
            }
        }
    )*};
}

storage_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
