//! Errors of replication. The scheduler decides from [`ReplicationError::kind`] alone.

/// How the scheduler treats an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Transient (5xx, 503, throttling, bad digest in transit): retry this task after a
    /// back-off; the version stays `PENDING` (STS-5).
    Retryable,
    /// The destination cannot be reached (connection refused, timeout): retry, and pause the
    /// whole destination for the back-off so its other tasks do not hammer it.
    Unavailable,
    /// Permanent (IAM-8): the task is failed with [`ReplicationError::reason`] and the
    /// version becomes `FAILED` (STS-5, STS-6).
    Permanent,
}

/// A replication failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReplicationError {
    kind: ErrorKind,
    reason: Option<&'static str>,
    message: String,
}

impl ReplicationError {
    /// A transient error.
    #[track_caller]
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Retryable, reason: None, message: message.into() }
    }

    /// The destination cannot be reached.
    #[track_caller]
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Unavailable, reason: None, message: message.into() }
    }

    /// A permanent failure with its AWS failure reason (IAM-8), e.g. `DstBucketNotFound`.
    #[track_caller]
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Permanent, reason: Some(reason), message: message.into() }
    }

    /// How to treat it.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The IAM-8 failure reason of a permanent error.
    pub fn reason(&self) -> Option<&'static str> {
        self.reason
    }
}
