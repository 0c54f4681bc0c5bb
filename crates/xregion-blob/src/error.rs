//! Errors of the blob store.

use std::fmt;
use std::io;

/// Errors of the blob store.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// An I/O error. Its message names the operation and path; its kind is the OS error's kind.
    #[error("blob i/o: {0}")]
    Io(io::Error),
    /// A blob that should exist does not.
    #[error("blob not found: {0}")]
    NotFound(String),
    /// A blob or blob id is not what the store wrote (bad id, wrong length, ...).
    #[error("blob corrupt: {0}")]
    Corrupt(String),
}

impl BlobError {
    /// True if the error means the blob does not exist (also for an `Io` error of kind `NotFound`).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Io(e) => e.kind() == io::ErrorKind::NotFound,
            Self::NotFound(_) => true,
            Self::Corrupt(_) => false,
        }
    }
}

impl BlobError {
    /// True if the error means the disk is full (`xregion_types::is_storage_full`; the kind
    /// survives [`with_context`]).
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Self::Io(e) if xregion_types::is_storage_full(e))
    }
}

impl From<BlobError> for io::Error {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Io(e) => e,
            BlobError::NotFound(m) => io::Error::new(io::ErrorKind::NotFound, m),
            BlobError::Corrupt(m) => io::Error::new(io::ErrorKind::InvalidData, m),
        }
    }
}

/// An I/O error with a description of what was being done; keeps the source's kind.
pub(crate) fn with_context(context: impl Into<String>, source: io::Error) -> io::Error {
    let kind = source.kind();
    io::Error::new(kind, Context { context: context.into(), source })
}

/// [`BlobError::Io`] with context.
pub(crate) fn io_error(context: impl Into<String>, source: io::Error) -> BlobError {
    BlobError::Io(with_context(context, source))
}

/// The payload of a contextual I/O error: `"<context>: <source>"`, with `source()` set.
#[derive(Debug)]
struct Context {
    context: String,
    source: io::Error,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_kind_and_source() {
        let e = io_error("open /x", io::Error::from(io::ErrorKind::NotFound));
        assert!(e.is_not_found());
        let msg = e.to_string();
        assert!(msg.starts_with("blob i/o: open /x: "), "{msg}");
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert!(std::error::Error::source(&io).is_some());
    }

    #[test]
    fn into_io_error_kinds() {
        let nf: io::Error = BlobError::NotFound("b".into()).into();
        assert_eq!(nf.kind(), io::ErrorKind::NotFound);
        let c: io::Error = BlobError::Corrupt("c".into()).into();
        assert_eq!(c.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_full_disk_is_recognised_through_the_added_context() {
        assert!(io_error("write blob", io::Error::from_raw_os_error(28)).is_storage_full()); // ENOSPC
        assert!(io_error("write blob", io::Error::from_raw_os_error(122)).is_storage_full()); // EDQUOT
        assert!(!io_error("write blob", io::Error::from_raw_os_error(5)).is_storage_full()); // EIO
        assert!(!BlobError::NotFound("x".into()).is_storage_full());
    }
}
