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
    BucketAlreadyExists(Box<BucketRecord>),
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
    /// A write failed because the disk (or the quota) is full: `ENOSPC` or `EDQUOT`. Like
    /// [`MetaError::Storage`], the group it was in committed nothing.
    #[error("metadata storage full: {0}")]
    StorageFull(String),
    /// Storage failed while the write was being made durable, at a point where it may have
    /// reached the disk anyway: a durable redb commit that failed in its final sync, a journal
    /// record that could not be cut back after a failed commit, a writer that panicked or
    /// stopped mid-group. The write may be visible now, or after the next open, or never.
    /// Callers must not undo what it would reference (a body's blob file): the orphan
    /// collection at the next open decides by what the metadata then holds.
    #[error("metadata write outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The writer thread is gone (store shut down or crashed); the write was never taken.
    #[error("metadata writer is gone")]
    WriterGone,
}

impl MetaError {
    /// A storage failure: [`MetaError::StorageFull`] if `io` says the disk is full, else
    /// [`MetaError::Storage`].
    pub(crate) fn storage(message: String, io: Option<&std::io::Error>) -> Self {
        match io {
            Some(e) if xregion_types::is_storage_full(e) => MetaError::StorageFull(message),
            _ => MetaError::Storage(message),
        }
    }

    /// True for any kind of storage failure (the writer drops the whole group on one).
    pub(crate) fn is_storage(&self) -> bool {
        matches!(self, MetaError::Storage(_) | MetaError::StorageFull(_) | MetaError::OutcomeUnknown(_))
    }

    /// True if the write may have happened despite this error ([`MetaError::OutcomeUnknown`]);
    /// every other error means it changed nothing.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, MetaError::OutcomeUnknown(_))
    }
}

/// The I/O error under a redb storage error, if that is what it is.
fn storage_io(e: &redb::StorageError) -> Option<&std::io::Error> {
    match e {
        redb::StorageError::Io(io) => Some(io),
        _ => None,
    }
}

impl From<redb::StorageError> for MetaError {
    fn from(e: redb::StorageError) -> Self {
        MetaError::storage(e.to_string(), storage_io(&e))
    }
}

impl From<redb::Error> for MetaError {
    fn from(e: redb::Error) -> Self {
        let io = match &e {
            redb::Error::Io(io) => Some(io),
            _ => None,
        };
        MetaError::storage(e.to_string(), io)
    }
}

/// redb errors whose `Storage` variant wraps a [`redb::StorageError`].
macro_rules! storage_from {
    ($($t:ident),*) => {$(
        impl From<redb::$t> for MetaError {
            fn from(e: redb::$t) -> Self {
                let io = match &e {
                    redb::$t::Storage(s) => storage_io(s),
                    _ => None,
                };
                MetaError::storage(e.to_string(), io)
            }
        }
    )*};
}

storage_from!(DatabaseError, TransactionError, TableError, CommitError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_storage_failures() {
        let full = redb::StorageError::Io(std::io::Error::from_raw_os_error(28)); // ENOSPC
        assert!(matches!(MetaError::from(full), MetaError::StorageFull(_)));
        let quota = redb::CommitError::Storage(redb::StorageError::Io(std::io::Error::from_raw_os_error(122))); // EDQUOT
        assert!(matches!(MetaError::from(quota), MetaError::StorageFull(_)));
        let other = redb::StorageError::Io(std::io::Error::from_raw_os_error(5)); // EIO
        assert!(matches!(MetaError::from(other), MetaError::Storage(_)));
        assert!(matches!(MetaError::from(redb::StorageError::PreviousIo), MetaError::Storage(_)));
        assert!(MetaError::StorageFull(String::new()).is_storage());
        assert!(MetaError::OutcomeUnknown(String::new()).is_storage());
        assert!(MetaError::OutcomeUnknown(String::new()).outcome_unknown());
        assert!(!MetaError::Storage(String::new()).outcome_unknown());
    }
}
