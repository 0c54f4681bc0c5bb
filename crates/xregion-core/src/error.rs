//! Errors of the use-case layer. Each variant is one thing a client can be told; the S3
//! mapping (status, AWS code, message) lives in exactly one place, `xregion-s3api`.

use xregion_types::{InvalidInput, VersionId};

/// An error of a use case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// Input broke a naming or format rule; carries the AWS code.
    #[error("{0}")]
    Invalid(#[from] InvalidInput),
    /// The bucket does not exist (in this region).
    #[error("the specified bucket does not exist")]
    NoSuchBucket,
    /// The bucket name is taken by another owner or region.
    #[error("the requested bucket name is not available")]
    BucketAlreadyExists,
    /// The bucket already exists in this deployment and belongs to the caller.
    #[error("your previous request to create the named bucket succeeded and you already own it")]
    BucketAlreadyOwnedByYou,
    /// The bucket still holds versions or delete markers (VER-18).
    #[error("the bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// Another region created the same bucket name at the same moment; try again.
    #[error("a conflicting operation is in progress against this resource")]
    OperationAborted,
    /// CreateBucket named a location other than this region.
    #[error(
        "the {requested} location constraint is incompatible for the region specific endpoint this request was sent to"
    )]
    IllegalLocationConstraint {
        /// The constraint that was asked for.
        requested: String,
    },
    /// No such key; `delete_marker` is set when the current version is a delete marker (VER-12).
    #[error("the specified key does not exist")]
    NoSuchKey {
        /// Id of the delete marker that hides the key, if any.
        delete_marker: Option<VersionId>,
    },
    /// The version does not exist (VER-13).
    #[error("the specified version does not exist")]
    NoSuchVersion,
    /// The operation is not allowed on a delete marker (VER-13, VER-14).
    #[error("the specified method is not allowed against this resource")]
    DeleteMarkerNotAllowed {
        /// Id of the delete marker.
        version_id: VersionId,
        /// Its Last-Modified, unix ms.
        last_modified_ms: i64,
    },
    /// The multipart upload does not exist.
    #[error("the specified upload does not exist")]
    NoSuchUpload,
    /// A part named in CompleteMultipartUpload is missing or has another ETag.
    #[error("{0}")]
    InvalidPart(String),
    /// Parts of CompleteMultipartUpload are not in ascending order.
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB.
    #[error("your proposed upload is smaller than the minimum allowed object size")]
    EntityTooSmall,
    /// The body did not match Content-MD5 or an `x-amz-checksum-*` value.
    #[error("{0}")]
    BadDigest(String),
    /// A precondition header failed.
    #[error("at least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    /// If-None-Match / If-Modified-Since on a read matched: 304.
    #[error("not modified")]
    NotModified,
    /// The Range header cannot be satisfied.
    #[error("the requested range is not satisfiable")]
    InvalidRange,
    /// The bucket state forbids the change (VER-4).
    #[error("{0}")]
    InvalidBucketState(String),
    /// The request may not do this (`403 AccessDenied`): an SSE-C key that is not the one the
    /// object was written with.
    #[error("{0}")]
    AccessDenied(String),
    /// The bucket has no replication configuration (CFG-2).
    #[error("the replication configuration was not found")]
    ReplicationConfigurationNotFound,
    /// The bucket has no lifecycle configuration.
    #[error("the lifecycle configuration does not exist")]
    NoSuchLifecycleConfiguration,
    /// The bucket has no default encryption rule.
    #[error("the server side encryption configuration was not found")]
    NoSuchEncryptionConfiguration,
    /// The request asks for something S3 has and xregion does not (`501 NotImplemented`).
    #[error("{0}")]
    NotImplemented(String),
    /// No batch replication job has this id (S3 Control `NotFoundException`).
    #[error("the job {0} does not exist")]
    NoSuchJob(String),
    /// The job's status does not allow the change (S3 Control `JobStatusException`).
    #[error("{0}")]
    JobStatus(String),
    /// A `CreateJob` reused a `ClientRequestToken` with other parameters (S3 Control
    /// `IdempotencyException`).
    #[error("{0}")]
    Idempotency(String),
    /// A job tag set of more than 50 tags (S3 Control `TooManyTagsException`).
    #[error("{0}")]
    TooManyTags(String),
    /// A malformed or unsupported request value.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request body was not what it claimed (length, framing).
    #[error("{0}")]
    IncompleteBody(String),
    /// Reading the request body failed (client went away, bad chunk signature, …); the
    /// original error is kept so the protocol layer can report it as it was.
    #[error("error reading request body: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Another region needed for the answer cannot be reached; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The region's disk is full (or below its reserve, see `RegionOptions::min_free_bytes`):
    /// the write was refused and changed nothing. Deletes still work and free space.
    #[error("{0}")]
    StorageFull(String),
    /// Storage failed underneath; the request changed nothing that is visible.
    #[error("internal error: {0}")]
    Internal(String),
    /// Storage failed while the write was being made durable, at a point where it may have
    /// happened anyway (`MetaError::OutcomeUnknown`). The client is told to retry, as S3 tells
    /// it after a 500; what the write references (a body's blob) is kept, and the orphan
    /// collection at the next start decides by what the metadata then holds.
    #[error("write outcome unknown: {0}")]
    OutcomeUnknown(String),
}

impl CoreError {
    /// True if the write may have happened despite this error; every other error means it
    /// changed nothing, so what it wrote for itself (a blob file) may be deleted.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, CoreError::OutcomeUnknown(_))
    }
}

impl From<xregion_meta::MetaError> for CoreError {
    fn from(e: xregion_meta::MetaError) -> Self {
        use xregion_meta::MetaError as M;
        match e {
            M::NoSuchBucket => Self::NoSuchBucket,
            M::BucketAlreadyExists(_) => Self::BucketAlreadyOwnedByYou,
            M::BucketNotEmpty => Self::BucketNotEmpty,
            M::NoSuchKey => Self::NoSuchKey { delete_marker: None },
            M::NoSuchVersion => Self::NoSuchVersion,
            M::NoSuchUpload => Self::NoSuchUpload,
            M::InvalidPart(m) => Self::InvalidPart(m),
            M::PreconditionFailed => Self::PreconditionFailed,
            M::MethodNotAllowed => Self::DeleteMarkerNotAllowed { version_id: VersionId::Null, last_modified_ms: 0 },
            M::InvalidBucketState(m) => Self::InvalidBucketState(m),
            M::InvalidArgument(m) => Self::InvalidArgument(m),
            M::InvalidRequest(m) => Self::Invalid(InvalidInput::new("InvalidRequest", m)),
            M::StorageFull(m) => {
                tracing::warn!(error = %m, "metadata write refused: disk full");
                Self::StorageFull("the region's disk is full".into())
            }
            M::OutcomeUnknown(m) => Self::OutcomeUnknown(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<xregion_blob::BlobError> for CoreError {
    fn from(e: xregion_blob::BlobError) -> Self {
        if e.is_storage_full() {
            tracing::warn!(error = %e, "body write refused: disk full");
            return Self::StorageFull("the region's disk is full".into());
        }
        Self::Internal(e.to_string())
    }
}

/// Result of a use case.
pub type CoreResult<T> = Result<T, CoreError>;
